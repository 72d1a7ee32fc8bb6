"""The tamper-evident record of every time someone touched stored data.

Logins and the authorize gate are in :mod:`alprd.auth`; every access they let
through ends in an :class:`AccessLog` record. Daemon-side or other code without
a person logged in records with ``AccessLog(store).record(None, "action", query, records=n)``.
"""

from alprd.audit.accesslog import AccessLog, AccessRecord, Problem, find_problems, record_hash

__all__ = ["AccessLog", "AccessRecord", "Problem", "find_problems", "record_hash"]
