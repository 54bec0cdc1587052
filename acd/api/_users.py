"""Users, API keys and the audit log over HTTP: the admin's side of access control.

- ``GET /users``, ``POST /users``, ``GET|PATCH|DELETE /users/{username}``;
- ``GET /api-keys``, ``POST /api-keys`` (the key is in the answer, once),
  ``DELETE /api-keys/{key_id}`` (revokes);
- ``GET /audit?since=&until=&actor=&limit=``: newest first.

A bad body is a 400 naming the field. The last enabled admin cannot be
disabled, demoted or deleted (409), so the centre cannot lock itself out.
Changing a password or disabling a user ends their sessions.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, NoReturn

from aiohttp import web

from ..identity import (
    ROLE_PERMISSIONS,
    AccessService,
    PasswordTooWeak,
    Permission,
    Role,
    User,
)
from ._params import Params, error, from_storage, json_body
from ._principal import principal_of

__all__ = ["UsersApi"]

# fullmatch, not match with $: "$" also matches before a final newline ("bob\n").
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_TEAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ROLES = ", ".join(r.value for r in Role)


def _bad(field: str, message: str) -> NoReturn:
    error(web.HTTPBadRequest, "bad_field", f"{field}: {message}", field=field)


async def _body(request: web.Request, allowed: set[str], required: set[str]) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        error(web.HTTPBadRequest, "bad_request", "the body must be a JSON object")
    for field in body:
        if field not in allowed:
            _bad(field, f"unknown field; expected one of {', '.join(sorted(allowed))}")
    for field in sorted(required - set(body)):
        _bad(field, "required")
    return body


def _role(value: object) -> Role:
    if not isinstance(value, str) or value not in Role.__members__.values():
        _bad("role", f"must be one of {_ROLES}")
    return Role(value)


def _team(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _TEAM.fullmatch(value):
        _bad("team", "letters, digits, _ . - (up to 64), or null")
    return value


class UsersApi:
    """The admin endpoints over one ``AccessService``."""

    def __init__(self, access: AccessService) -> None:
        self.access = access
        self.store = access.store

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/users", self.list_users),
            web.post("/api/v1/users", self.create_user),
            web.get("/api/v1/users/{username}", self.get_user),
            web.patch("/api/v1/users/{username}", self.update_user),
            web.delete("/api/v1/users/{username}", self.delete_user),
            web.get("/api/v1/api-keys", self.list_keys),
            web.post("/api/v1/api-keys", self.create_key),
            web.delete("/api/v1/api-keys/{key_id}", self.revoke_key),
            web.get("/api/v1/audit", self.audit),
        ]

    # ---- users ---------------------------------------------------------------

    def _public(self, user: User, source: str = "database") -> dict[str, object]:
        return {**user.public(), "source": source, "agent": user.username in self.access.agents}

    async def list_users(self, request: web.Request) -> web.Response:
        Params(request, ())
        stored = await from_storage(self.store.list_users())
        names = {u.username for u in stored}
        rows = [self._public(u) for u in stored]
        for name, account in sorted(self.access.agents.items()):
            if name not in names:
                rows.append(self._public(User(name, Role.AGENT, account.team), "config"))
        rows.sort(key=lambda row: str(row["username"]))
        return web.json_response({"users": rows})

    async def _stored(self, username: str) -> User:
        user = await from_storage(self.store.get_user(username))
        if user is None:
            error(web.HTTPNotFound, "not_found", f"no user {username!r}")
        return user

    async def get_user(self, request: web.Request) -> web.Response:
        username = request.match_info["username"]
        user = await from_storage(self.store.get_user(username))
        if user is None:
            account = self.access.agents.get(username)
            if account is None:
                error(web.HTTPNotFound, "not_found", f"no user {username!r}")
            implicit = User(username, Role.AGENT, account.team)
            return web.json_response(self._public(implicit, "config"))
        return web.json_response(self._public(user))

    async def _password(self, value: object, username: str) -> str:
        if not isinstance(value, str):
            _bad("password", "must be a string")
        try:
            return await self.access.hash_password(value, username)
        except PasswordTooWeak as exc:
            _bad("password", str(exc))

    async def create_user(self, request: web.Request) -> web.Response:
        body = await _body(request, {"username", "role", "team", "password"}, {"username", "role"})
        username = body["username"]
        if not isinstance(username, str) or not _USERNAME.fullmatch(username):
            _bad("username", "letters, digits, _ . - (up to 64), starting with a letter or digit")
        role = _role(body["role"])
        team = _team(body.get("team"))
        if "password" not in body and username not in self.access.agents:
            _bad("password", "required for a user who is not a configured agent")
        hashed = await self._password(body["password"], username) if "password" in body else None
        created = await from_storage(
            self.store.create_user(username, role, team=team, password_hash=hashed)
        )
        if created is None:
            error(web.HTTPConflict, "conflict", f"user {username!r} exists")
        return web.json_response(self._public(created), status=201)

    async def _keep_an_admin(self, user: User) -> None:
        if user.role is not Role.ADMIN or user.disabled:
            return
        if await from_storage(self.store.count_admins()) <= 1:
            error(web.HTTPConflict, "last_admin", "this is the last enabled admin")

    async def update_user(self, request: web.Request) -> web.Response:
        user = await self._stored(request.match_info["username"])
        body = await _body(request, {"role", "team", "password", "disabled"}, set())
        role = _role(body["role"]) if "role" in body else user.role
        team = _team(body["team"]) if "team" in body else user.team
        disabled = body.get("disabled", user.disabled)
        if not isinstance(disabled, bool):
            _bad("disabled", "must be true or false")
        if role is not Role.ADMIN or disabled:
            await self._keep_an_admin(user)
        hashed = user.password_hash
        if "password" in body:
            hashed = await self._password(body["password"], user.username)
        updated = User(user.username, role, team, hashed, disabled, user.created_at)
        await from_storage(self.store.update_user(updated))
        if "password" in body or disabled or role is not user.role:
            await from_storage(self.store.revoke_sessions_of(user.username))
        self.access.forget(user.username)
        return web.json_response(self._public(await self._stored(user.username)))

    async def delete_user(self, request: web.Request) -> web.Response:
        user = await self._stored(request.match_info["username"])
        await self._keep_an_admin(user)
        await from_storage(self.store.delete_user(user.username))
        self.access.forget(user.username)
        return web.json_response({"deleted": user.username})

    # ---- API keys ------------------------------------------------------------

    async def list_keys(self, request: web.Request) -> web.Response:
        Params(request, ())
        keys = await from_storage(self.store.list_api_keys())
        return web.json_response({"api_keys": [key.public() for key in keys]})

    async def create_key(self, request: web.Request) -> web.Response:
        allowed = {"name", "username", "scopes", "expires_in"}
        body = await _body(request, allowed, {"name", "scopes"})
        name = body["name"]
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            _bad("name", "a text of 1 to 100 characters")
        owner_name = body.get("username", principal_of(request).username)
        if not isinstance(owner_name, str):
            _bad("username", "must be a user name")
        owner = await from_storage(self.access.user(owner_name))
        if owner is None or owner.disabled:
            _bad("username", f"no enabled user {owner_name!r}")
        scopes = body["scopes"]
        known = {p.value for p in Permission}
        if (
            not isinstance(scopes, list)
            or not scopes
            or not all(isinstance(s, str) and s in known for s in scopes)
        ):
            _bad("scopes", f"a non-empty list of: {', '.join(sorted(known))}")
        beyond = sorted(set(scopes) - {p.value for p in ROLE_PERMISSIONS[owner.role]})
        if beyond:
            _bad("scopes", f"{', '.join(beyond)} beyond what a {owner.role.value} may do")
        expires_in = body.get("expires_in")
        if expires_in is not None and (
            not isinstance(expires_in, int | float)
            or isinstance(expires_in, bool)
            or not 60 <= expires_in <= 5 * 365 * 86400
        ):
            _bad("expires_in", "seconds, from 60 to five years, or null for no expiry")
        expires_at = None if expires_in is None else self.access.clock() + float(expires_in)
        key, stored = await from_storage(
            self.store.create_api_key(
                owner.username, name, [Permission(s) for s in scopes], expires_at
            )
        )
        return web.json_response({"key": key, **stored.public()}, status=201)

    async def revoke_key(self, request: web.Request) -> web.Response:
        key_id = request.match_info["key_id"]
        if not await from_storage(self.store.revoke_api_key(key_id)):
            error(web.HTTPNotFound, "not_found", f"no active API key {key_id!r}")
        return web.json_response({"revoked": key_id})

    # ---- audit log -----------------------------------------------------------

    async def audit(self, request: web.Request) -> web.Response:
        params = Params(request, ("since", "until", "actor", "limit"))
        since, until = params.window(longest=timedelta(days=366))
        limit = params.integer("limit", 500, 1, 5000)
        entries = await from_storage(
            self.store.audit_log(
                since.timestamp(), until.timestamp(), actor=params.text("actor"), limit=limit
            )
        )
        return web.json_response({"entries": [e.public() for e in entries]})
