"""Authentication: accounts and roles, password login with lockout, sessions, the authorize gate.

Any command that reads or changes stored data (search, export, report, alert
disposition, hotlist changes) logs the member in, authorizes the action and
then writes an access record with the number of records it returned or
changed. In a command (``alprd.cli.common`` reads the options, the environment
and the password prompt)::

    @guarded
    def cmd_hotlist_add(args, config, store) -> int:
        access = authorize(args, store, config, "hotlist.add", roles=SUPERVISOR_ROLES,
                           require_reason=True)   # raises AuthError: message, exit code 3
        n = ...do the work...
        access.record({"plate": args.plate}, records=n)   # user, UTC time, action, query, case/reason, count
        return 0

Underneath, :func:`login_user` takes a session token (printed by ``alprd
login``) or a username and a password, and refuses disabled, locked and
untrained users with a message saying why; :func:`authorize` refuses a wrong
role (the refusal is audited) and, with ``require_reason=True``, wants a
case/CFS number or a written reason of at least ``[policy] min_reason_chars``
characters. The returned :class:`Access` has ``.user``, ``.username``,
``.role``, ``.case_number``, ``.reason`` and ``.record(query, records, action=None)``.

Role groups: ``DATA_ROLES`` (operator, supervisor, administrator: searches,
exports, holds, alert dispositions), ``SUPERVISOR_ROLES`` (supervisor,
administrator: approvals, hotlist changes), ``AUDIT_ROLES`` (auditor,
supervisor, administrator: logs and reports), ``ADMIN_ROLES``.
"""

from alprd.auth.login import Access, authorize, check_purpose, login_user
from alprd.auth.sessions import Sessions
from alprd.auth.users import (
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
    "ADMIN_ROLES", "AUDIT_ROLES", "DATA_ROLES", "SUPERVISOR_ROLES", "Access", "AuthError", "Role", "Sessions",
    "User", "Users", "authorize", "check_purpose", "login_user", "require_usable",
]
