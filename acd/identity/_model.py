"""Roles, permissions and the principal a request acts as.

Four roles, each a set of permissions and a reach over agents:

- ``agent``: their own state, calls and figures;
- ``team_lead``: the same over every agent of their team;
- ``supervisor``: everything operational (all agents, calls, recordings,
  reports, live views), no configuration;
- ``admin``: everything, including users, API keys and the audit log.

An API key carries a scope: some of its owner's permissions, never more.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "PERMISSIONS",
    "ROLE_PERMISSIONS",
    "Permission",
    "Principal",
    "Role",
    "User",
    "reach_of",
]


class Role(enum.StrEnum):
    """What a user is to the contact centre."""

    AGENT = "agent"
    TEAM_LEAD = "team_lead"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Permission(enum.StrEnum):
    """One kind of thing a request may do; API-key scopes are sets of these."""

    AGENTS_READ = "agents:read"
    AGENTS_CONTROL = "agents:control"
    QUEUES_READ = "queues:read"
    CALLS_READ = "calls:read"
    CALLS_MONITOR = "calls:monitor"
    RECORDINGS_READ = "recordings:read"
    REPORTS_READ = "reports:read"
    LIVE_READ = "live:read"
    REGISTRATIONS_READ = "registrations:read"
    DIAGNOSTICS_READ = "diagnostics:read"
    USERS_ADMIN = "users:admin"
    AUDIT_READ = "audit:read"
    WEBHOOKS_READ = "webhooks:read"
    CONFIG_READ = "config:read"
    CONFIG_ADMIN = "config:admin"
    CALLBACKS_READ = "callbacks:read"
    CALLBACKS_MANAGE = "callbacks:manage"


PERMISSIONS = frozenset(Permission)

_OPERATIONAL = frozenset(
    {
        Permission.AGENTS_READ,
        Permission.AGENTS_CONTROL,
        Permission.QUEUES_READ,
        Permission.CALLS_READ,
        Permission.LIVE_READ,
        Permission.REGISTRATIONS_READ,
    }
)

ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.AGENT: _OPERATIONAL,
    Role.TEAM_LEAD: _OPERATIONAL
    | {
        Permission.RECORDINGS_READ,
        Permission.REPORTS_READ,
        Permission.CALLBACKS_READ,
        Permission.CALLS_MONITOR,
    },
    Role.SUPERVISOR: _OPERATIONAL
    | {
        Permission.RECORDINGS_READ,
        Permission.REPORTS_READ,
        Permission.CONFIG_READ,
        Permission.CALLBACKS_READ,
        Permission.CALLBACKS_MANAGE,
        Permission.CALLS_MONITOR,
    },
    Role.ADMIN: PERMISSIONS,
}
"""What each role may do; where over agents is ``reach_of``'s answer."""


@dataclass(frozen=True, slots=True)
class User:
    """A person (or integration owner) who signs in to the HTTP API.

    An agent's web user has the agent's SIP user name: one person, one name.
    ``password_hash`` is None for a user who cannot sign in with a password
    (an agent account that signs in with its SIP password instead).
    """

    username: str
    role: Role
    team: str | None = None
    password_hash: str | None = None
    disabled: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0

    def public(self) -> dict[str, object]:
        """The user as the API shows it: never the hash."""
        return {
            "username": self.username,
            "role": self.role.value,
            "team": self.team,
            "disabled": self.disabled,
            "has_password": self.password_hash is not None,
        }


def reach_of(
    role: Role, username: str, team: str | None, team_of: Mapping[str, str | None]
) -> frozenset[str] | None:
    """The agents a user may see and act on: None for every agent.

    A team lead without a team reaches only themselves, never everyone.
    """
    if role in (Role.SUPERVISOR, Role.ADMIN):
        return None
    if role is Role.TEAM_LEAD and team is not None:
        return frozenset({username} | {a for a, t in team_of.items() if t == team})
    return frozenset({username})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as, after authentication: checked by every handler.

    ``agents`` is the reach (None: all agents); ``permissions`` is the role's,
    narrowed by an API key's scope; ``via`` says how the request proved who
    it is (``session``, ``token`` or ``api_key``) and ``credential`` which
    session or key, for the audit log.
    """

    username: str
    role: Role
    team: str | None
    permissions: frozenset[Permission]
    agents: frozenset[str] | None
    via: str
    credential: str = ""

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions

    def reaches(self, agent: str | None) -> bool:
        """Whether this principal may see or act on ``agent`` (a call with no agent: only
        those who reach everyone)."""
        if self.agents is None:
            return True
        return agent is not None and agent in self.agents

    def visible(self, agents: Iterable[str]) -> list[str]:
        return [a for a in agents if self.reaches(a)]
