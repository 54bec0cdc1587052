"""The engine's browser pages: static assets built from ``web/`` and the phone's settings.

``scripts/build-web`` bundles ``web/src`` (JsSIP from npm, esbuild) into
``acd/web/static``; this module serves them:

- ``GET /`` sends a browser to the agent desktop;
- ``GET /agent/`` is the desktop (the browser phone, the agent's state, the
  screen pop, wrap-up), ``GET /wallboard/`` the supervisors' live board
  (queues, agents by team, live calls with listen, whisper and barge),
  ``GET /admin/`` the administrators' pages (agents, queues, routes, pause
  reasons, users, API keys, webhooks, the audit log, over the runtime
  administration API), ``GET /reports/`` the reports (by period: calls by
  hour, service level, abandons, queues, teams, agents, wrap-up codes, CSV,
  and a recording player): open, since they hold the sign-in form, and nothing
  else until the user signs in; every figure and every change on them goes
  through the API, under the user's role;
- ``GET /assets/{name}``: the bundle, its style sheet and source map;
- ``GET /api/v1/phone``: for a signed-in user with a SIP account, where the
  SIP WebSocket is and a fresh phone credential (``acd.authn``), so the
  page never needs, keeps or sees the account's own password, and the
  desktop's link to the CRM.

Every page goes out with a Content-Security-Policy that allows scripts and
styles from this origin only (no inline script anywhere), connections only
to this origin (the event stream's WebSocket included) and the SIP
WebSocket, and no framing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ..api._params import error
from ..api._principal import principal_of
from ..authn import PhoneCredential

__all__ = ["STATIC_DIR", "PhoneAccount", "WebPages", "WebSocketPorts"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

_ASSET = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".map": "application/json",
    ".txt": "text/plain",
    ".html": "text/html",
}
_PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), geolocation=(), microphone=(self)",
}


@dataclass(frozen=True, slots=True)
class WebSocketPorts:
    """Where the SIP WebSocket listens: ports of ws and wss (None when off) and the path."""

    ws: int | None
    wss: int | None
    path: str

    def url(self, host: str, *, secure_page: bool) -> str | None:
        """The URL a page at ``host`` connects to; an https page may only use wss."""
        if self.wss is not None and (secure_page or self.ws is None):
            return f"wss://{host}:{self.wss}{self.path}"
        if self.ws is not None and not secure_page:
            return f"ws://{host}:{self.ws}{self.path}"
        return None

    def sources(self, host: str) -> list[str]:
        """CSP connect-src entries for both listeners."""
        found = []
        if self.ws is not None:
            found.append(f"ws://{host}:{self.ws}")
        if self.wss is not None:
            found.append(f"wss://{host}:{self.wss}")
        return found


@dataclass(frozen=True, slots=True)
class PhoneAccount:
    """What the phone page shows of a user's SIP account."""

    display_name: str | None
    agent: bool


class WebPages:
    """The routes of the browser pages (their access rules are in acd/api/_access.py)."""

    def __init__(
        self,
        *,
        domain: str,
        websocket: WebSocketPorts,
        account: Callable[[str], PhoneAccount | None],
        issue: Callable[[str], PhoneCredential | None],
        pause_reasons: Callable[[], Sequence[str]],
        register_expires: int,
        crm_url: Callable[[], str | None] = lambda: None,
        static_dir: Path = STATIC_DIR,
    ) -> None:
        self.domain = domain
        self.websocket = websocket
        self.account = account
        self.issue = issue
        self.pause_reasons = pause_reasons
        self.register_expires = register_expires
        self.crm_url = crm_url
        self.static_dir = static_dir

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.root),
            web.get("/agent/", self.agent_page),
            web.get("/wallboard/", self.wallboard_page),
            web.get("/admin/", self.admin_page),
            web.get("/reports/", self.reports_page),
            web.get("/assets/{name}", self.asset),
            web.get("/api/v1/phone", self.phone_settings),
        ]

    async def root(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/agent/")

    def _csp(self, request: web.Request) -> str:
        host = request.url.host or "127.0.0.1"
        # 'self' covers this origin's WebSocket in CSP 3, not in older browsers: say it.
        own = f"{'wss' if request.secure else 'ws'}://{request.host}"
        connect = " ".join(["'self'", own, *self.websocket.sources(host)])
        return (
            "default-src 'none'; script-src 'self'; style-src 'self'; "
            f"connect-src {connect}; media-src 'self' blob: mediastream:; img-src 'self' data:; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )

    async def agent_page(self, request: web.Request) -> web.StreamResponse:
        return self._page(request, "agent.html")

    async def wallboard_page(self, request: web.Request) -> web.StreamResponse:
        return self._page(request, "wallboard.html")

    async def admin_page(self, request: web.Request) -> web.StreamResponse:
        return self._page(request, "admin.html")

    async def reports_page(self, request: web.Request) -> web.StreamResponse:
        return self._page(request, "reports.html")

    def _page(self, request: web.Request, name: str) -> web.StreamResponse:
        page = self.static_dir / name
        if not page.is_file():
            raise web.HTTPServiceUnavailable(
                text="The browser pages are not built: run scripts/build-web.\n",
                content_type="text/plain",
            )
        headers = {
            **_PAGE_HEADERS,
            "Content-Security-Policy": self._csp(request),
            "Cache-Control": "no-cache",
            "Content-Type": "text/html; charset=utf-8",
        }
        return web.FileResponse(page, headers=headers)

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = self.static_dir / name
        kind = _TYPES.get(path.suffix)
        if not _ASSET.fullmatch(name) or kind is None or kind == "text/html" or not path.is_file():
            raise web.HTTPNotFound(text="no such asset\n", content_type="text/plain")
        headers = {
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
            "Content-Type": f"{kind}; charset=utf-8",
        }
        return web.FileResponse(path, headers=headers)

    async def phone_settings(self, request: web.Request) -> web.Response:
        """Where and as whom the signed-in user's browser phone registers."""
        principal = principal_of(request)
        if principal.via == "api_key":
            error(web.HTTPForbidden, "forbidden", "a browser phone needs a signed-in user")
        account = self.account(principal.username)
        if account is None:
            error(web.HTTPNotFound, "no_phone", f"user {principal.username!r} has no SIP account")
        host = request.url.host or "127.0.0.1"
        url = self.websocket.url(host, secure_page=request.secure)
        if url is None:
            error(
                web.HTTPNotFound,
                "no_websocket",
                "the engine has no SIP WebSocket for this page: add ws"
                + (" or wss" if not request.secure else "")
                + " to sip.transports",
            )
        credential = self.issue(principal.username)
        if credential is None:
            error(web.HTTPNotFound, "no_phone", f"user {principal.username!r} has no SIP account")
        body = {
            "username": principal.username,
            "display_name": account.display_name,
            "agent": account.agent,
            "uri": f"sip:{principal.username}@{self.domain}",
            "domain": self.domain,
            "realm": self.domain,
            "websocket_url": url,
            "authorization_user": credential.authorization_user,
            "password": credential.password,
            "register_expires": self.register_expires,
            "pause_reasons": list(self.pause_reasons()),
            "crm_url": self.crm_url(),
        }
        # A secret: never kept by a cache on the way.
        return web.json_response(body, headers={"Cache-Control": "no-store"})
