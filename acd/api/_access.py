"""Access control for the HTTP server: who is asking, and may they.

``ROUTE_RULES`` is the one table of what every route needs: nothing
(``OPEN``), any signed-in principal (``SIGNED_IN``), the metrics token
(``METRICS``) or a permission. ``install_access_control`` adds the
middleware and the sign-in endpoints, and refuses to start an application
with a route the table does not name, so a new endpoint cannot be left
open by forgetting it.

Credentials, in the order they are looked at:

- ``Authorization: Bearer acd_…``: an API key, within its scope;
- ``Authorization: Bearer …``: a session token from ``POST /api/v1/auth/token``;
- the ``acd_session`` cookie from ``POST /api/v1/auth/login`` (HttpOnly,
  SameSite=Strict). A cookie is sent by the browser on its own, so a request
  that changes something must also carry the session's CSRF token in
  ``X-CSRF-Token``, and a cross-origin ``Origin`` is refused.

Agents reach only themselves and team leads their team: a path naming an
agent outside the caller's reach is a 404, the same answer as an agent that
does not exist. Every request that changes something is written to the audit
log with who, what, from where and the status.
"""

from __future__ import annotations

import dataclasses
import enum
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from ..identity import AccessService, AuditEntry, Permission, Principal, SignInRefused
from ._openapi import OPENAPI_PATH, OpenApiDocument
from ._params import error, from_storage, json_body
from ._principal import PRINCIPAL, principal_of

__all__ = [
    "ROUTE_RULES",
    "SESSION_COOKIE",
    "AccessRule",
    "AuthApi",
    "check_route_rules",
    "install_access_control",
]

log = logging.getLogger(__name__)

SESSION_COOKIE = "acd_session"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AccessRule(enum.Enum):
    """What a route needs besides a permission."""

    OPEN = "open"
    SIGNED_IN = "signed_in"
    METRICS = "metrics"


Rule = AccessRule | Permission

_AGENT_ACTIONS = ("login", "logout", "pause", "unpause")
_CONFIG_SECTIONS = ("agents", "queues", "routes")

ROUTE_RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): AccessRule.OPEN,
    ("GET", "/metrics"): AccessRule.METRICS,
    ("POST", "/api/v1/auth/login"): AccessRule.OPEN,
    ("POST", "/api/v1/auth/token"): AccessRule.OPEN,
    ("POST", "/api/v1/auth/logout"): AccessRule.SIGNED_IN,
    ("GET", "/api/v1/auth/me"): AccessRule.SIGNED_IN,
    ("GET", OPENAPI_PATH): AccessRule.SIGNED_IN,
    # The browser pages (acd/web): the page holds the sign-in form, the
    # assets are the same code for everyone; what they show comes from the API.
    ("GET", "/"): AccessRule.OPEN,
    ("GET", "/agent/"): AccessRule.OPEN,
    ("GET", "/wallboard/"): AccessRule.OPEN,
    ("GET", "/admin/"): AccessRule.OPEN,
    ("GET", "/reports/"): AccessRule.OPEN,
    ("GET", "/assets/{name}"): AccessRule.OPEN,
    ("GET", "/api/v1/phone"): AccessRule.SIGNED_IN,
    ("GET", "/api/v1/agents"): Permission.AGENTS_READ,
    ("GET", "/api/v1/agents/{username}"): Permission.AGENTS_READ,
    **{
        ("POST", f"/api/v1/agents/{{username}}/{action}"): Permission.AGENTS_CONTROL
        for action in _AGENT_ACTIONS
    },
    ("POST", "/api/v1/agents/{username}/wrap-up"): Permission.AGENTS_CONTROL,
    ("GET", "/api/v1/agents/{username}/monitor"): Permission.CALLS_MONITOR,
    ("POST", "/api/v1/agents/{username}/monitor"): Permission.CALLS_MONITOR,
    ("DELETE", "/api/v1/agents/{username}/monitor"): Permission.CALLS_MONITOR,
    ("GET", "/api/v1/agents/{username}/consult"): Permission.AGENTS_READ,
    ("POST", "/api/v1/agents/{username}/consult"): Permission.AGENTS_CONTROL,
    **{
        ("POST", f"/api/v1/agents/{{username}}/consult/{step}"): Permission.AGENTS_CONTROL
        for step in ("transfer", "conference", "cancel")
    },
    ("GET", "/api/v1/agents/{username}/recording"): Permission.AGENTS_READ,
    ("POST", "/api/v1/agents/{username}/recording/pause"): Permission.AGENTS_CONTROL,
    ("POST", "/api/v1/agents/{username}/recording/resume"): Permission.AGENTS_CONTROL,
    ("GET", "/api/v1/queues"): Permission.QUEUES_READ,
    ("GET", "/api/v1/calls"): Permission.CALLS_READ,
    ("GET", "/api/v1/calls/{call_id}"): Permission.CALLS_READ,
    ("GET", "/api/v1/recordings/{recording_id}"): Permission.RECORDINGS_READ,
    ("GET", "/api/v1/reports/queues"): Permission.REPORTS_READ,
    ("GET", "/api/v1/reports/agents"): Permission.REPORTS_READ,
    ("GET", "/api/v1/reports/hourly"): Permission.REPORTS_READ,
    ("GET", "/api/v1/reports/wrap-up-codes"): Permission.REPORTS_READ,
    ("GET", "/api/v1/callbacks"): Permission.CALLBACKS_READ,
    ("DELETE", "/api/v1/callbacks/{call_id}"): Permission.CALLBACKS_MANAGE,
    ("GET", "/api/v1/registrations"): Permission.REGISTRATIONS_READ,
    ("GET", "/api/v1/live/calls"): Permission.LIVE_READ,
    ("GET", "/api/v1/live/resources"): Permission.DIAGNOSTICS_READ,
    ("GET", "/api/v1/users"): Permission.USERS_ADMIN,
    ("POST", "/api/v1/users"): Permission.USERS_ADMIN,
    ("GET", "/api/v1/users/{username}"): Permission.USERS_ADMIN,
    ("PATCH", "/api/v1/users/{username}"): Permission.USERS_ADMIN,
    ("DELETE", "/api/v1/users/{username}"): Permission.USERS_ADMIN,
    ("GET", "/api/v1/api-keys"): Permission.USERS_ADMIN,
    ("POST", "/api/v1/api-keys"): Permission.USERS_ADMIN,
    ("DELETE", "/api/v1/api-keys/{key_id}"): Permission.USERS_ADMIN,
    ("GET", "/api/v1/audit"): Permission.AUDIT_READ,
    ("GET", "/api/v1/webhooks"): Permission.WEBHOOKS_READ,
    ("GET", "/api/v1/webhooks/deliveries"): Permission.WEBHOOKS_READ,
    ("GET", "/api/v1/events"): Permission.LIVE_READ,
    ("GET", "/api/v1/events/ws"): Permission.LIVE_READ,
    ("GET", "/api/v1/config"): Permission.CONFIG_READ,
    ("GET", "/api/v1/config/pause-reasons"): Permission.CONFIG_READ,
    ("PUT", "/api/v1/config/pause-reasons"): Permission.CONFIG_ADMIN,
    **{
        rule: permission
        for section in _CONFIG_SECTIONS
        for rule, permission in (
            (("GET", f"/api/v1/config/{section}"), Permission.CONFIG_READ),
            (("POST", f"/api/v1/config/{section}"), Permission.CONFIG_ADMIN),
            (("GET", f"/api/v1/config/{section}/{{name}}"), Permission.CONFIG_READ),
            (("PUT", f"/api/v1/config/{section}/{{name}}"), Permission.CONFIG_ADMIN),
            (("PATCH", f"/api/v1/config/{section}/{{name}}"), Permission.CONFIG_ADMIN),
            (("DELETE", f"/api/v1/config/{section}/{{name}}"), Permission.CONFIG_ADMIN),
        )
    },
}
"""Every route of the engine's HTTP server and what it needs (HEAD as GET)."""


def _route_key(method: str, canonical: str) -> tuple[str, str]:
    return ("GET" if method == "HEAD" else method, canonical)


def check_route_rules(app: web.Application) -> None:
    """Raise if a route of ``app`` has no row in ``ROUTE_RULES``."""
    missing = sorted(
        f"{route.method} {route.resource.canonical}"
        for route in app.router.routes()
        if route.resource is not None
        and _route_key(route.method, route.resource.canonical) not in ROUTE_RULES
    )
    if missing:
        raise RuntimeError(f"routes without an access rule in ROUTE_RULES: {', '.join(missing)}")


def _unauthenticated(message: str = "sign in, or send a bearer token or API key") -> web.HTTPError:
    return web.HTTPUnauthorized(
        text=json.dumps({"error": "unauthenticated", "message": message}),
        content_type="application/json",
        headers={"WWW-Authenticate": 'Bearer realm="acd"'},
    )


class _Access:
    """The middleware's state: the access service and the metrics token."""

    def __init__(self, access: AccessService, metrics_token: str | None) -> None:
        self.access = access
        self.metrics_token = metrics_token
        self.audit_failures = 0

    async def authenticate(self, request: web.Request) -> Principal | None:
        header = request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if header:
            if scheme.lower() != "bearer" or not credential:
                raise _unauthenticated("use Authorization: Bearer <token or API key>")
            if credential.startswith("acd_"):
                found_key = await from_storage(self.access.api_key(credential))
                return found_key[0] if found_key else None
            found = await from_storage(self.access.session(credential))
            return found[0] if found else None
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        found = await from_storage(self.access.session(cookie))
        if found is None:
            return None
        principal, row = found
        # A browser sends Origin on cross-site requests and WebSocket upgrades
        # (a GET, so no CSRF token): another site's page never rides the cookie.
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            await self.refuse_forgery(request, principal, "cross-origin request refused")
        if request.method in _UNSAFE:
            presented = request.headers.get("X-CSRF-Token", "")
            if not hmac.compare_digest(presented.encode(), row.csrf_token.encode()):
                await self.refuse_forgery(
                    request, principal, "a cookie session needs X-CSRF-Token to change"
                )
        return principal

    async def refuse_forgery(self, request: web.Request, principal: Principal, why: str) -> None:
        """403 for a request that rode a session cookie without proving it came from us.

        Audited, whatever the method: a forged request is what an admin most
        wants to see in the log, with the session it tried to use.
        """
        await self.audit(request, principal, 403, reason="csrf")
        error(web.HTTPForbidden, "csrf", why)

    def check_metrics(self, request: web.Request) -> None:
        if self.metrics_token is None:
            return
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        given = credential.strip().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given, self.metrics_token.encode()
        ):
            raise _unauthenticated("/metrics needs the bearer token in http.auth.metrics_token")

    async def audit(
        self, request: web.Request, principal: Principal, status: int, *, reason: str | None = None
    ) -> None:
        route = request.match_info.route.resource
        detail: dict[str, object] = {"via": principal.via, "credential": principal.credential}
        if reason is not None:
            detail["reason"] = reason
        entry = AuditEntry(
            at=self.access.clock(),
            actor=principal.username,
            role=principal.role.value,
            source=request.remote or "",
            action=f"{request.method} {route.canonical if route else request.path}",
            target=request.path,
            status=status,
            detail=detail,
        )
        await self.write_audit(entry)

    async def write_audit(self, entry: AuditEntry) -> None:
        try:
            await self.access.store.audit(entry)
        except Exception:
            # The change has happened; losing its audit row is logged, not hidden.
            self.audit_failures += 1
            log.exception("audit log: could not record %s by %s", entry.action, entry.actor)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        if resource is None:
            return await handler(request)  # 404 or 405 from the router itself
        rule = ROUTE_RULES.get(_route_key(request.method, resource.canonical))
        if rule is None:
            log.error("no access rule for %s %s: refused", request.method, resource.canonical)
            error(web.HTTPInternalServerError, "internal", "this route has no access rule")
        if rule is AccessRule.OPEN:
            return await handler(request)
        if rule is AccessRule.METRICS:
            self.check_metrics(request)
            return await handler(request)
        principal = await self.authenticate(request)
        if principal is None:
            raise _unauthenticated()
        try:
            if isinstance(rule, Permission) and not principal.may(rule):
                error(web.HTTPForbidden, "forbidden", f"this needs the {rule.value} permission")
            agent = request.match_info.get("username")
            under_agents = resource.canonical.startswith("/api/v1/agents/")
            if agent is not None and under_agents and not principal.reaches(agent):
                error(web.HTTPNotFound, "not_found", f"no agent {agent!r}")
        except web.HTTPException as refused:
            if request.method in _UNSAFE:  # a change someone tried and may not make
                await self.audit(request, principal, refused.status)
            raise
        request[PRINCIPAL] = principal
        if request.method not in _UNSAFE:
            return await handler(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            await self.audit(request, principal, exc.status)
            raise
        await self.audit(request, principal, response.status)
        return response


class AuthApi:
    """Sign-in and sign-out: a browser session (cookie) or a bearer token."""

    def __init__(self, access: AccessService, state: _Access) -> None:
        self.access = access
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/auth/login", self.login),
            web.post("/api/v1/auth/token", self.token),
            web.post("/api/v1/auth/logout", self.logout),
            web.get("/api/v1/auth/me", self.me),
        ]

    async def _sign_in(self, request: web.Request) -> Any:
        body = await json_body(request)
        if not isinstance(body, dict) or set(body) != {"username", "password"}:
            error(
                web.HTTPBadRequest, "bad_request", 'the body must be {"username": …, "password": …}'
            )
        username, password = body["username"], body["password"]
        if not isinstance(username, str) or not isinstance(password, str):
            error(web.HTTPBadRequest, "bad_request", "username and password must be strings")
        if not username or len(username) > 64 or len(password) > 1024:
            error(web.HTTPBadRequest, "bad_request", "username or password of a bad length")
        source = request.remote or ""
        entry = AuditEntry(self.access.clock(), username, "", source, "sign-in", "", 200, {})
        try:
            signed = await self.access.sign_in(username, password, source)
        except (ValueError, web.HTTPException):
            raise
        except SignInRefused as refused:
            status: type[web.HTTPError] = web.HTTPUnauthorized
            code, message = "bad_credentials", "wrong user name or password"
            headers = {}
            if refused.retry_after:
                status, code = web.HTTPTooManyRequests, "throttled"
                message = "too many failed sign-ins; try again later"
                headers = {"Retry-After": str(int(refused.retry_after))}
            await self.state.write_audit(dataclasses.replace(entry, status=status.status_code))
            raise status(
                text=json.dumps({"error": code, "message": message}),
                content_type="application/json",
                headers=headers,
            ) from None
        except Exception:
            log.exception("sign-in: the user store did not answer")
            error(web.HTTPServiceUnavailable, "storage_unavailable", "the database did not answer")
        role = signed.principal.role.value
        await self.state.write_audit(dataclasses.replace(entry, role=role))
        return signed

    async def login(self, request: web.Request) -> web.Response:
        """A browser session: an HttpOnly cookie, and the CSRF token to send back."""
        signed = await self._sign_in(request)
        response = web.json_response(
            {
                "user": _me(signed.principal),
                "csrf_token": signed.csrf_token,
                "expires_at": signed.expires_at,
            }
        )
        response.set_cookie(
            SESSION_COOKIE,
            signed.token,
            max_age=int(self.access.policy.session_lifetime),
            path="/",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        return response

    async def token(self, request: web.Request) -> web.Response:
        """A bearer token for a script or a client that is not a browser."""
        signed = await self._sign_in(request)
        return web.json_response(
            {"user": _me(signed.principal), "token": signed.token, "expires_at": signed.expires_at}
        )

    async def logout(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        token = header.partition(" ")[2].strip() or request.cookies.get(SESSION_COOKIE, "")
        if token and not token.startswith("acd_"):
            await from_storage(self.access.sign_out(token))
        response = web.json_response({"signed_out": True})
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    async def me(self, request: web.Request) -> web.Response:
        return web.json_response({"user": _me(principal_of(request))})


def _me(principal: Principal) -> dict[str, object]:
    return {
        "username": principal.username,
        "role": principal.role.value,
        "team": principal.team,
        "permissions": sorted(p.value for p in principal.permissions),
        "agents": None if principal.agents is None else sorted(principal.agents),
        "via": principal.via,
    }


def install_access_control(
    app: web.Application, access: AccessService, *, metrics_token: str | None = None
) -> _Access:
    """Add the sign-in routes, the API's OpenAPI description and the access middleware
    to ``app`` (before it starts)."""
    state = _Access(access, metrics_token)
    app.router.add_routes(AuthApi(access, state).routes())
    app.router.add_routes(OpenApiDocument(ROUTE_RULES).routes())
    app.middlewares.append(state.middleware)
    app.on_startup.append(_check_on_startup)
    return state


async def _check_on_startup(app: web.Application) -> None:
    check_route_rules(app)
