"""The department policy as code: search, retention, evidence, releases, reports.

Each module holds one rule and its queries; the commands in
``alprd.cli.policy`` put a login (``alprd.auth.authorize``) and an access
record around each of them. ``retention.RetentionService`` is the daemon's daily
purge.
"""
