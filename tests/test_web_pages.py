"""The browser pages' server side: phone credentials, the phone's settings, the pages' headers.

The credential rules are checked on ``Authenticator`` directly (no sockets);
the routes on a running engine with a SIP WebSocket. The page itself runs in
Chromium in tests/test_browser_phone.py.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

from acd.authn import Authenticator
from acd.web import STATIC_DIR, WebSocketPorts
from sip.auth import build_authorization, parse_challenge
from sip.events import Address

from .conftest import RunningEngine, agent_password, free_port
from .test_authn import REALM, request
from .test_websocket_wire import ws_config

WS = Address("WS", "127.0.0.1", 40000)
UDP = Address("UDP", "127.0.0.1", 40000)


def register(
    auth: Authenticator, account: str, name: str, password: str, source: Address, now: float
) -> str | None:
    """REGISTER as ``account`` with digest user ``name``: the authenticated user, or None."""
    first = auth.authenticate(request(account), source, now)
    assert first.response is not None and first.response.status == 401
    challenge = parse_challenge(first.response.headers.get("www-authenticate") or "")
    value = build_authorization(challenge, "REGISTER", "sip:acd.local", name, password, "cn0nce")
    decision = auth.authenticate(request(account, value), source, now)
    return decision.user


def make() -> Authenticator:
    return Authenticator(REALM, {"1001": "the-account-password", "1002": "another-one-22"})


def test_a_phone_credential_is_the_account_over_a_websocket_only() -> None:
    auth = make()
    phone = auth.issue_phone_credential("1001", now=0.0, lifetime=3600)
    assert phone is not None
    assert phone.authorization_user.startswith("1001~") and phone.password
    assert phone.password != "the-account-password"
    name, password = phone.authorization_user, phone.password
    assert register(auth, "1001", name, password, WS, 1.0) == "1001"
    # Not over UDP, TCP or TLS: a leaked browser credential cannot work from a desk phone.
    assert register(auth, "1001", name, password, UDP, 2.0) is None
    assert register(auth, "1001", name, "not-it", WS, 3.0) is None
    # The account's own password still works as before.
    assert register(auth, "1001", "1001", "the-account-password", UDP, 4.0) == "1001"


def test_a_phone_credential_ends_with_its_lifetime_its_account_or_a_revocation() -> None:
    auth = make()
    assert auth.issue_phone_credential("1999", now=0.0, lifetime=60) is None
    phone = auth.issue_phone_credential("1001", now=0.0, lifetime=60)
    other = auth.issue_phone_credential("1002", now=0.0, lifetime=60)
    assert phone is not None and other is not None
    assert register(auth, "1001", phone.authorization_user, phone.password, WS, 59.0) == "1001"
    assert register(auth, "1001", phone.authorization_user, phone.password, WS, 61.0) is None

    phone = auth.issue_phone_credential("1001", now=100.0, lifetime=60)
    assert phone is not None
    auth.revoke_phone_credentials("1001")
    assert register(auth, "1001", phone.authorization_user, phone.password, WS, 101.0) is None

    phone = auth.issue_phone_credential("1001", now=100.0, lifetime=60)
    assert phone is not None
    auth.set_accounts({"1002": "another-one-22"})  # 1001 removed by the administrator
    assert register(auth, "1001", phone.authorization_user, phone.password, WS, 101.0) is None
    assert register(auth, "1002", other.authorization_user, other.password, WS, 30.0) == "1002"
    auth.prune(200.0)
    assert register(auth, "1002", other.authorization_user, other.password, WS, 30.0) is None


def test_an_account_keeps_only_its_newest_phone_credentials() -> None:
    auth = make()
    issued = [auth.issue_phone_credential("1001", now=0.0, lifetime=3600) for _ in range(9)]
    oldest, newest = issued[0], issued[-1]
    assert oldest is not None and newest is not None
    assert register(auth, "1001", oldest.authorization_user, oldest.password, WS, 1.0) is None
    assert register(auth, "1001", newest.authorization_user, newest.password, WS, 1.0) == "1001"


def test_a_credential_cannot_register_another_account() -> None:
    """1001's browser credential authenticates as 1001: REGISTER for 1002 is the
    registrar's 403 (tests/test_websocket_wire.py), since the user is 1001."""
    auth = make()
    phone = auth.issue_phone_credential("1001", now=0.0, lifetime=60)
    assert phone is not None
    assert register(auth, "1002", phone.authorization_user, phone.password, WS, 1.0) == "1001"


def test_websocket_urls_follow_the_page() -> None:
    both = WebSocketPorts(8088, 8089, "/ws")
    assert both.url("pbx.example", secure_page=False) == "ws://pbx.example:8088/ws"
    assert both.url("pbx.example", secure_page=True) == "wss://pbx.example:8089/ws"
    assert WebSocketPorts(8088, None, "/").url("h", secure_page=True) is None
    assert WebSocketPorts(None, 8089, "/").url("h", secure_page=False) == "wss://h:8089/"
    assert both.sources("h") == ["ws://h:8088", "wss://h:8089"]


def _page(engine: RunningEngine, path: str) -> tuple[int, dict[str, str], bytes]:
    return _page_with(engine, path, None)


def _page_with(
    engine: RunningEngine, path: str, token: str | None
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(engine.url + path, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_the_phone_settings_and_the_pages_headers(
    tmp_path: Path, engine_factory: Callable[[Path], RunningEngine]
) -> None:
    ws_port = free_port()
    engine = engine_factory(ws_config(tmp_path, ws_port))
    assert (STATIC_DIR / "agent.js").is_file(), "run scripts/build-web"

    http_port = engine.url.rsplit(":", 1)[1]
    for page in ("/agent/", "/wallboard/", "/admin/", "/reports/"):
        status, headers, body = _page(engine, page)
        assert status == 200 and headers["Content-Type"].startswith("text/html"), page
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "'unsafe-inline'" not in csp
        assert f"connect-src 'self' ws://127.0.0.1:{http_port} ws://127.0.0.1:{ws_port};" in csp
        assert "frame-ancestors 'none'" in csp and headers["X-Frame-Options"] == "DENY"
        assert b"<script" in body and b"<script>" not in body  # no inline script
    status, headers, body = _page(engine, "/assets/agent.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert headers["X-Content-Type-Options"] == "nosniff"
    for bad in ("/assets/agent.html", "/assets/nope.js", "/assets/..%2Facd.yaml", "/assets/.js"):
        assert _page(engine, bad)[0] == 404, bad
    assert _page(engine, "/phone/")[0] == 404  # the page is the desktop now

    assert engine.request("GET", "/api/v1/phone", token=None)[0] == 401
    # The admin has no SIP account.
    status, answer = engine.request("GET", "/api/v1/phone")
    assert (status, answer["error"]) == (404, "no_phone"), answer  # type: ignore[index]
    token = engine.sign_in("1001", agent_password("1001"))
    status, raw, _ = engine.send("GET", "/api/v1/phone", token=token)
    assert status == 200
    status, headers, _ = _page_with(engine, "/api/v1/phone", token)
    assert status == 200 and headers["Cache-Control"] == "no-store"
    settings = json.loads(raw)
    assert settings["uri"] == "sip:1001@acd.local" and settings["agent"] is True
    assert settings["websocket_url"] == f"ws://127.0.0.1:{ws_port}/ws"
    assert settings["authorization_user"].startswith("1001~")
    assert settings["password"] != agent_password("1001")
    assert settings["pause_reasons"], settings
    assert settings["crm_url"] is None
    # A second ask is a second credential; neither is in the engine's log.
    again = engine.request("GET", "/api/v1/phone", token=token)[1]
    assert again["password"] != settings["password"]  # type: ignore[index]
    log = engine.log()
    assert settings["password"] not in log and again["password"] not in log  # type: ignore[index]
