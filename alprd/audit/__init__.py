"""Who may touch stored data, and the tamper-evident record of every time they did.

Any command that reads or changes stored data (search, export, report, alert
disposition, hotlist changes) goes through :func:`authorize` and then writes an
access record with the number of records it returned or changed::

    from alprd.audit import AuthError, DATA_ROLES, SUPERVISOR_ROLES, add_auth_args, authorize

    def register(sub):
        p = sub.add_parser("hotlist-add", help="...")
        add_auth_args(p)                      # --user --token --case --reason
        p.set_defaults(func=cmd_hotlist_add)

    def cmd_hotlist_add(args, config) -> int:
        store = Store(config.store.path)
        try:
            access = authorize(args, store, config, "hotlist.add",
                               roles=SUPERVISOR_ROLES, require_reason=True)
        except AuthError as err:
            print(f"alprd: {err}", file=sys.stderr)
            return 3
        n = ...do the work...
        access.record({"plate": args.plate}, records=n)   # user, UTC time, action, query, case/reason, count
        return 0

``authorize`` takes the login from ``--token``/$ALPRD_TOKEN (printed by
``alprd login``), else ``--user``/$ALPRD_USER with the password typed at a
prompt ($ALPRD_PASSWORD is read instead, for scripted tests). It refuses
disabled, locked, untrained and wrong-role users with a message saying why (the
refusal is audited), and with ``require_reason=True`` a case/CFS number or a
written reason of at least ``[policy] min_reason_chars`` characters. The
returned :class:`Access` has ``.user``, ``.username``, ``.role``,
``.case_number``, ``.reason`` and ``.record(query, records, action=None)``.

Role groups: ``DATA_ROLES`` (operator, supervisor, administrator: searches,
exports, holds, alert dispositions), ``SUPERVISOR_ROLES`` (supervisor,
administrator: approvals, hotlist changes), ``AUDIT_ROLES`` (auditor,
supervisor, administrator: logs and reports), ``ADMIN_ROLES``.

Daemon-side or other code without a person logged in records with
``AccessLog(store).record(None, "action", query, records=n)``.
"""

from alprd.audit.access import Access, add_auth_args, authorize, check_purpose, login_user
from alprd.audit.accesslog import AccessLog, AccessRecord, Problem, find_problems, record_hash
from alprd.audit.sessions import Sessions
from alprd.audit.users import (
    ADMIN_ROLES,
    AUDIT_ROLES,
    DATA_ROLES,
    SUPERVISOR_ROLES,
    AuthError,
    Role,
    User,
    Users,
    require_usable,
)

__all__ = [
    "ADMIN_ROLES", "AUDIT_ROLES", "DATA_ROLES", "SUPERVISOR_ROLES", "Access", "AccessLog", "AccessRecord",
    "AuthError", "Problem", "Role", "Sessions", "User", "Users", "add_auth_args", "authorize",
    "check_purpose", "find_problems", "login_user", "record_hash", "require_usable",
]
