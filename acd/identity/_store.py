"""Users, sign-in sessions, API keys and the audit log, kept in the engine's database.

Written straight to the database (not through the batching RecordWriter):
these changes are rare and the person making one waits for its answer. If
the database is down, the change fails with an error the API turns into a
503; nothing is half-applied. Secrets are stored only as hashes: scrypt for
passwords, SHA-256 for the random session tokens and API-key secrets (which
carry 256 bits, so a fast hash is enough).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from ..storage import Storage
from ._model import Permission, Role, User
from ._passwords import PasswordHasher

__all__ = ["ApiKey", "AuditEntry", "IdentityStore", "SessionRow", "token_hash"]

_USER_COLUMNS = "username, role, team, password_hash, disabled, created_at, updated_at"
_KEY_COLUMNS = (
    "key_id, username, name, scopes, created_at, expires_at, revoked_at, last_used_at, secret_hash"
)
_SCOPES = frozenset(p.value for p in Permission)
_API_KEY = re.compile(r"^acd_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$")


def token_hash(token: str) -> str:
    """What is stored of a random token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A signed-in browser or client: found by the hash of its token."""

    token_hash: str
    username: str
    csrf_token: str
    source: str
    created_at: float
    seen_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A credential for an integration, acting as ``username`` within ``scopes``."""

    key_id: str
    username: str
    name: str
    scopes: frozenset[Permission]
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None

    def public(self) -> dict[str, object]:
        return {
            "id": self.key_id,
            "username": self.username,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "last_used_at": self.last_used_at,
        }


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change someone made (or tried to), for the admins' audit log."""

    at: float
    actor: str
    role: str
    source: str
    action: str
    target: str
    status: int
    detail: dict[str, Any]
    id: int = 0

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "role": self.role,
            "source": self.source,
            "action": self.action,
            "target": self.target,
            "status": self.status,
            "detail": self.detail,
        }


class IdentityStore:
    """The identity tables over one open ``Storage`` (SQLite or PostgreSQL)."""

    def __init__(
        self,
        storage: Storage,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.hasher = hasher or PasswordHasher()
        self.clock = clock
        self._postgres = storage.dialect.name != "sqlite"

    def _sql(self, text: str) -> str:
        """``?`` placeholders as the dialect spells them."""
        if not self._postgres:
            return text
        count = iter(range(1, text.count("?") + 1))
        return re.sub(r"\?", lambda _: f"${next(count)}", text)

    async def _rows(self, sql: str, *params: object) -> list[Sequence[Any]]:
        return await self.storage.query(self._sql(sql), params)

    async def _change(self, sql: str, *params: object) -> int:
        return await self.storage.execute(self._sql(sql), params)

    # ---- users ---------------------------------------------------------------

    @staticmethod
    def _user(row: Sequence[Any]) -> User:
        username, role, team, password_hash, disabled, created, updated = row
        return User(username, Role(role), team, password_hash, bool(disabled), created, updated)

    async def get_user(self, username: str) -> User | None:
        rows = await self._rows(f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", username)
        return self._user(rows[0]) if rows else None

    async def list_users(self) -> list[User]:
        rows = await self._rows(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username")
        return [self._user(row) for row in rows]

    async def count_users(self) -> int:
        rows = await self._rows("SELECT count(*) FROM users")
        return int(rows[0][0])

    async def count_admins(self) -> int:
        rows = await self._rows(
            "SELECT count(*) FROM users WHERE role = ? AND disabled = ?", Role.ADMIN.value, False
        )
        return int(rows[0][0])

    async def create_user(
        self, username: str, role: Role, *, team: str | None = None, password_hash: str | None
    ) -> User | None:
        """The new user, or None when the name is taken."""
        now = self.clock()
        count = await self._change(
            f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (username) DO NOTHING",
            username,
            role.value,
            team,
            password_hash,
            False,
            now,
            now,
        )
        return await self.get_user(username) if count else None

    async def update_user(self, user: User) -> None:
        await self._change(
            "UPDATE users SET role = ?, team = ?, password_hash = ?, disabled = ?, updated_at = ? "
            "WHERE username = ?",
            user.role.value,
            user.team,
            user.password_hash,
            user.disabled,
            self.clock(),
            user.username,
        )

    async def delete_user(self, username: str) -> bool:
        await self.revoke_sessions_of(username)
        await self._change(
            "UPDATE api_keys SET revoked_at = ? WHERE username = ? AND revoked_at IS NULL",
            self.clock(),
            username,
        )
        return bool(await self._change("DELETE FROM users WHERE username = ?", username))

    # ---- sessions ------------------------------------------------------------

    async def create_session(self, username: str, source: str, lifetime: float) -> tuple[str, str]:
        """A new session's token and CSRF token; only the token's hash is stored."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        now = self.clock()
        await self._change(
            "INSERT INTO web_sessions (token_hash, username, csrf_token, source, created_at, "
            "seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            token_hash(token),
            username,
            csrf,
            source,
            now,
            now,
            now + lifetime,
        )
        return token, csrf

    async def session(self, token: str) -> SessionRow | None:
        rows = await self._rows(
            "SELECT token_hash, username, csrf_token, source, created_at, seen_at, expires_at "
            "FROM web_sessions WHERE token_hash = ?",
            token_hash(token),
        )
        return SessionRow(*rows[0]) if rows else None

    async def touch_session(self, hashed: str, now: float) -> None:
        await self._change("UPDATE web_sessions SET seen_at = ? WHERE token_hash = ?", now, hashed)

    async def revoke_session(self, hashed: str) -> None:
        await self._change("DELETE FROM web_sessions WHERE token_hash = ?", hashed)

    async def revoke_sessions_of(self, username: str) -> int:
        return await self._change("DELETE FROM web_sessions WHERE username = ?", username)

    async def prune_sessions(self, now: float, idle: float) -> int:
        return await self._change(
            "DELETE FROM web_sessions WHERE expires_at <= ? OR seen_at <= ?", now, now - idle
        )

    # ---- API keys ------------------------------------------------------------

    @staticmethod
    def _key(row: Sequence[Any]) -> ApiKey:
        key_id, username, name, scopes, created, expires, revoked, used, _ = row
        return ApiKey(
            key_id,
            username,
            name,
            frozenset(Permission(s) for s in str(scopes).split() if s in _SCOPES),
            created,
            expires,
            revoked,
            used,
        )

    async def create_api_key(
        self, username: str, name: str, scopes: Collection[Permission], expires_at: float | None
    ) -> tuple[str, ApiKey]:
        """The key as the client must send it (shown once) and what is kept of it."""
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        key_id = "".join(secrets.choice(alphabet) for _ in range(12))
        secret = secrets.token_urlsafe(32)
        await self._change(
            f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            key_id,
            username,
            name,
            " ".join(sorted(scopes)),
            self.clock(),
            expires_at,
            None,
            None,
            token_hash(secret),
        )
        key = await self.get_api_key(key_id)
        assert key is not None
        return f"acd_{key_id}_{secret}", key

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        rows = await self._rows(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", key_id)
        return self._key(rows[0]) if rows else None

    async def api_key_for(self, presented: str) -> ApiKey | None:
        """The key ``presented`` proves, if its secret matches (compared in constant time)."""
        found = _API_KEY.match(presented)
        if found is None:
            return None
        rows = await self._rows(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", found.group(1)
        )
        if not rows or not secrets.compare_digest(str(rows[0][-1]), token_hash(found.group(2))):
            return None
        return self._key(rows[0])

    async def list_api_keys(self) -> list[ApiKey]:
        rows = await self._rows(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at")
        return [self._key(row) for row in rows]

    async def revoke_api_key(self, key_id: str) -> bool:
        return bool(
            await self._change(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                self.clock(),
                key_id,
            )
        )

    async def touch_api_key(self, key_id: str, now: float) -> None:
        await self._change("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", now, key_id)

    # ---- audit log -----------------------------------------------------------

    async def audit(self, entry: AuditEntry) -> None:
        detail: object = entry.detail if self._postgres else json.dumps(entry.detail)
        await self._change(
            "INSERT INTO audit_log (at, actor, role, source, action, target, status, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            entry.at,
            entry.actor,
            entry.role,
            entry.source,
            entry.action,
            entry.target,
            entry.status,
            detail,
        )

    async def audit_log(
        self, since: float, until: float, *, actor: str | None = None, limit: int = 500
    ) -> list[AuditEntry]:
        """Entries in [since, until), newest first, optionally of one actor."""
        where = "at >= ? AND at < ?"
        params: list[object] = [since, until]
        if actor is not None:
            where += " AND actor = ?"
            params.append(actor)
        rows = await self._rows(
            "SELECT id, at, actor, role, source, action, target, status, detail FROM audit_log "
            f"WHERE {where} ORDER BY at DESC, id DESC LIMIT {int(limit)}",
            *params,
        )
        entries = []
        for id_, at, actor_, role, source, action, target, status, detail in rows:
            parsed = json.loads(detail) if isinstance(detail, str) else detail
            entries.append(
                AuditEntry(at, actor_, role, source, action, target, status, parsed, id_)
            )
        return entries
