"""The department policy as code: search, retention, evidence, releases, reports.

Each module holds one rule and its queries; the commands in
``alprd.cli.policy`` put a login (``alprd.audit.authorize``) and an access
record around each of them. ``retention.purge_service`` is the daemon's daily
purge.
"""
