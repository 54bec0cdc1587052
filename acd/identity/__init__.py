"""Who may use the HTTP API: users, roles, sessions, API keys and the audit log.

The model (roles, permissions, the ``Principal`` a request acts as) is in
``_model``; the tables in ``_store``; sign-in and credential checks in
``_access``; password hashing in ``_passwords``. The HTTP side (middleware,
sign-in endpoints, the route table of permissions) is ``acd.api._access``.
docs/security.md describes the roles and what each may do.
"""

from ._access import (
    AccessPolicy,
    AccessService,
    AgentAccount,
    SignedIn,
    SignInRefused,
    agent_accounts,
)
from ._model import PERMISSIONS, ROLE_PERMISSIONS, Permission, Principal, Role, User, reach_of
from ._passwords import (
    MIN_PASSWORD_LENGTH,
    PasswordHasher,
    PasswordTooWeak,
    check_password_strength,
)
from ._store import ApiKey, AuditEntry, IdentityStore, SessionRow, token_hash

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "PERMISSIONS",
    "ROLE_PERMISSIONS",
    "AccessPolicy",
    "AccessService",
    "AgentAccount",
    "ApiKey",
    "AuditEntry",
    "IdentityStore",
    "PasswordHasher",
    "PasswordTooWeak",
    "Permission",
    "Principal",
    "Role",
    "SessionRow",
    "SignInRefused",
    "SignedIn",
    "User",
    "agent_accounts",
    "check_password_strength",
    "reach_of",
    "token_hash",
]
