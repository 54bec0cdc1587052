"""Access control on a running engine: every route for every kind of caller, sign-in
throttling, cookie sessions with CSRF, API keys, expiry, the audit log, /metrics.

The expected matrix below is written independently of ``acd.api._access.ROUTE_RULES``,
and a test checks that the two name the same routes, so an endpoint added
without a rule (the engine refuses to start) or without a row here fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from acd.api._access import ROUTE_RULES

from .conftest import ADMIN_PASSWORD, ROOT, RunningEngine, agent_password, start_engine

EngineFactory = Callable[[Path], RunningEngine]
WINDOW = "since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z"
LEAD_PASSWORD = "lead-Password-4455"
SUP_PASSWORD = "sup-Password-7788"


def config(tmp_path: Path, extra: str = "") -> Path:
    """Agents 1001 and 1002 in team red, 1003 in team blue."""
    lines = ["sip:", "  domain: acd.local", "  transports: [udp]", "agents:"]
    for user, team in (("1001", "red"), ("1002", "red"), ("1003", "blue")):
        lines += [
            f'  - username: "{user}"',
            f'    password: "{agent_password(user)}"',
            f"    team: {team}",
        ]
    lines += ["queues:", "  sales: {skills: {}, join_empty: true}", extra]
    path = tmp_path / "acd.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


# Who asks: None is no credential at all.
CALLERS = ("anonymous", "revoked", "agent", "team_lead", "supervisor", "admin", "api_key")
SIGNED = CALLERS[2:]
STAFF = ("team_lead", "supervisor", "admin")
ALL_AGENTS = ("supervisor", "admin")
OUT_OF_REACH = ("agent", "team_lead")  # agent 1003 is in team blue
NEW_USER = {"username": "x1", "role": "agent", "password": "x1-Password-000"}
NEW_KEY = {"name": "crm", "scopes": ["calls:read"]}
A = "/api/v1/agents"
C = "/api/v1/config"
R = "/api/v1/reports"
NEW_AGENT = {"username": "2001", "password": "sip-Password-2001", "name": "New"}
PUT_AGENT = {"password": "sip-Password-2002", "skills": {"fr": 3}}
MONITOR = {"extension": "1002"}
REC = "recording"
CONSULT = {"extension": "1002"}
CON = "consult"
ME = ("agent",)  # an agent reaches only themselves
FAR = OUT_OF_REACH
PAUSES = {"pause_reasons": ["break", "lunch", "training"]}

# (method, route, concrete path, body, callers allowed, callers answered 404 for reach)
MATRIX: list[tuple[str, str, str, object, tuple[str, ...], tuple[str, ...]]] = [
    ("GET", "/healthz", "/healthz", None, CALLERS, ()),
    ("GET", "/metrics", "/metrics", None, CALLERS, ()),
    ("GET", "/api/v1/auth/me", "/api/v1/auth/me", None, SIGNED, ()),
    ("GET", "/api/v1/openapi.json", "/api/v1/openapi.json", None, SIGNED, ()),
    ("GET", "/", "/", None, CALLERS, ()),
    ("GET", "/agent/", "/agent/", None, CALLERS, ()),
    ("GET", "/wallboard/", "/wallboard/", None, CALLERS, ()),
    ("GET", "/admin/", "/admin/", None, CALLERS, ()),
    ("GET", "/reports/", "/reports/", None, CALLERS, ()),
    ("GET", "/assets/{name}", "/assets/agent.js", None, CALLERS, ()),
    # Allowed, then 404: this engine has no SIP WebSocket, and only 1001 an account.
    ("GET", "/api/v1/phone", "/api/v1/phone", None, SIGNED[:-1], ()),
    ("GET", "/api/v1/agents", "/api/v1/agents", None, SIGNED[:-1], ()),
    ("GET", "/api/v1/agents/{username}", "/api/v1/agents/1001", None, SIGNED[:-1], ()),
    ("GET", "/api/v1/agents/{username}", f"{A}/1003", None, ALL_AGENTS, OUT_OF_REACH),
    ("POST", "/api/v1/agents/{username}/login", f"{A}/1001/login", None, SIGNED[:-1], ()),
    ("POST", "/api/v1/agents/{username}/logout", f"{A}/1002/logout", None, STAFF, ("agent",)),
    ("POST", "/api/v1/agents/{username}/pause", f"{A}/1003/pause", None, ALL_AGENTS, OUT_OF_REACH),
    ("POST", "/api/v1/agents/{username}/unpause", f"{A}/1001/unpause", None, SIGNED[:-1], ()),
    ("POST", f"{A}/{{username}}/wrap-up", f"{A}/1001/wrap-up", {"end": True}, SIGNED[:-1], ()),
    ("GET", f"{A}/{{username}}/monitor", f"{A}/1001/monitor", None, STAFF, ()),
    ("POST", f"{A}/{{username}}/monitor", f"{A}/1001/monitor", MONITOR, STAFF, ()),
    ("POST", f"{A}/{{username}}/monitor", f"{A}/1003/monitor", MONITOR, ALL_AGENTS, ("team_lead",)),
    ("DELETE", f"{A}/{{username}}/monitor", f"{A}/1001/monitor", None, STAFF, ()),
    ("GET", f"{A}/{{username}}/consult", f"{A}/1001/consult", None, SIGNED[:-1], ()),
    ("POST", f"{A}/{{username}}/consult", f"{A}/1001/consult", CONSULT, SIGNED[:-1], ()),
    ("POST", f"{A}/{{username}}/consult", f"{A}/1003/consult", CONSULT, ALL_AGENTS, FAR),
    ("POST", f"{A}/{{username}}/{CON}/transfer", f"{A}/1001/{CON}/transfer", None, SIGNED[:-1], ()),
    ("POST", f"{A}/{{username}}/{CON}/conference", f"{A}/1002/{CON}/conference", None, STAFF, ME),
    ("POST", f"{A}/{{username}}/{CON}/cancel", f"{A}/1001/{CON}/cancel", None, SIGNED[:-1], ()),
    ("GET", f"{A}/{{username}}/{REC}", f"{A}/1001/{REC}", None, SIGNED[:-1], ()),
    ("POST", f"{A}/{{username}}/{REC}/pause", f"{A}/1001/{REC}/pause", None, SIGNED[:-1], ()),
    ("POST", f"{A}/{{username}}/{REC}/resume", f"{A}/1003/{REC}/resume", None, ALL_AGENTS, FAR),
    ("GET", "/api/v1/queues", "/api/v1/queues", None, SIGNED[:-1], ()),
    ("GET", "/api/v1/calls", f"/api/v1/calls?{WINDOW}", None, SIGNED, ()),
    ("GET", "/api/v1/calls/{call_id}", "/api/v1/calls/nope", None, SIGNED, ()),
    ("GET", "/api/v1/recordings/{recording_id}", "/api/v1/recordings/nope", None, STAFF, ()),
    ("GET", "/api/v1/reports/queues", f"/api/v1/reports/queues?{WINDOW}", None, STAFF, ()),
    ("GET", "/api/v1/reports/agents", f"/api/v1/reports/agents?{WINDOW}", None, STAFF, ()),
    ("GET", "/api/v1/reports/hourly", f"/api/v1/reports/hourly?{WINDOW}", None, STAFF, ()),
    ("GET", f"{R}/wrap-up-codes", f"{R}/wrap-up-codes?{WINDOW}", None, STAFF, ()),
    ("GET", "/api/v1/callbacks", "/api/v1/callbacks", None, STAFF, ()),
    ("DELETE", "/api/v1/callbacks/{call_id}", "/api/v1/callbacks/nope", None, ALL_AGENTS, ()),
    ("GET", "/api/v1/registrations", "/api/v1/registrations", None, SIGNED[:-1], ()),
    ("GET", "/api/v1/live/calls", "/api/v1/live/calls", None, SIGNED[:-1], ()),
    ("GET", "/api/v1/live/resources", "/api/v1/live/resources", None, ("admin",), ()),
    ("GET", "/api/v1/users", "/api/v1/users", None, ("admin",), ()),
    ("POST", "/api/v1/users", "/api/v1/users", NEW_USER, ("admin",), ()),
    ("GET", "/api/v1/users/{username}", "/api/v1/users/lead", None, ("admin",), ()),
    ("PATCH", "/api/v1/users/{username}", "/api/v1/users/lead", {"team": "red"}, ("admin",), ()),
    ("DELETE", "/api/v1/users/{username}", "/api/v1/users/doomed", None, ("admin",), ()),
    ("GET", "/api/v1/api-keys", "/api/v1/api-keys", None, ("admin",), ()),
    ("POST", "/api/v1/api-keys", "/api/v1/api-keys", NEW_KEY, ("admin",), ()),
    ("DELETE", "/api/v1/api-keys/{key_id}", "/api/v1/api-keys/nokey", None, ("admin",), ()),
    ("GET", "/api/v1/audit", "/api/v1/audit", None, ("admin",), ()),
    ("GET", "/api/v1/webhooks", "/api/v1/webhooks", None, ("admin",), ()),
    ("GET", "/api/v1/webhooks/deliveries", "/api/v1/webhooks/deliveries", None, ("admin",), ()),
    ("GET", C, C, None, ALL_AGENTS, ()),
    ("GET", f"{C}/agents", f"{C}/agents", None, ALL_AGENTS, ()),
    ("POST", f"{C}/agents", f"{C}/agents", NEW_AGENT, ("admin",), ()),
    ("GET", f"{C}/agents/{{name}}", f"{C}/agents/1003", None, ALL_AGENTS, ()),
    ("PUT", f"{C}/agents/{{name}}", f"{C}/agents/2002", PUT_AGENT, ("admin",), ()),
    ("PATCH", f"{C}/agents/{{name}}", f"{C}/agents/1002", {"skills": {"de": 2}}, ("admin",), ()),
    ("DELETE", f"{C}/agents/{{name}}", f"{C}/agents/2001", None, ("admin",), ()),
    ("GET", f"{C}/queues", f"{C}/queues", None, ALL_AGENTS, ()),
    ("POST", f"{C}/queues", f"{C}/queues", {"name": "support"}, ("admin",), ()),
    ("GET", f"{C}/queues/{{name}}", f"{C}/queues/sales", None, ALL_AGENTS, ()),
    ("PUT", f"{C}/queues/{{name}}", f"{C}/queues/sales", {"join_empty": True}, ("admin",), ()),
    ("PATCH", f"{C}/queues/{{name}}", f"{C}/queues/sales", {"wrap_up": 3}, ("admin",), ()),
    ("DELETE", f"{C}/queues/{{name}}", f"{C}/queues/support", None, ("admin",), ()),
    ("GET", f"{C}/routes", f"{C}/routes", None, ALL_AGENTS, ()),
    ("POST", f"{C}/routes", f"{C}/routes", {"match": "900", "queue": "sales"}, ("admin",), ()),
    ("GET", f"{C}/routes/{{name}}", f"{C}/routes/900", None, ALL_AGENTS, ()),
    ("PUT", f"{C}/routes/{{name}}", f"{C}/routes/901", {"hangup": 486}, ("admin",), ()),
    ("PATCH", f"{C}/routes/{{name}}", f"{C}/routes/901", {"hangup": 480}, ("admin",), ()),
    ("DELETE", f"{C}/routes/{{name}}", f"{C}/routes/900", None, ("admin",), ()),
    ("GET", f"{C}/pause-reasons", f"{C}/pause-reasons", None, ALL_AGENTS, ()),
    ("PUT", f"{C}/pause-reasons", f"{C}/pause-reasons", PAUSES, ("admin",), ()),
]  # fmt: skip
# Sign-in and sign-out change who is asking, so they have tests of their own below;
# the event streams stay open, and test_events_stream.py checks who sees what.
OWN_TESTS = {
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/logout"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/events/ws"),
}


def test_the_matrix_names_every_route_with_an_access_rule() -> None:
    assert {(m, r) for m, r, *_ in MATRIX} | OWN_TESTS == set(ROUTE_RULES)


def credentials(engine: RunningEngine) -> dict[str, str | None]:
    """A credential of each kind in CALLERS; sets up users lead, sup and doomed."""
    for body in (
        {"username": "lead", "role": "team_lead", "team": "red", "password": LEAD_PASSWORD},
        {"username": "sup", "role": "supervisor", "password": SUP_PASSWORD},
        {"username": "doomed", "role": "agent", "password": "doomed-Password-1"},
    ):
        status, answer = engine.request("POST", "/api/v1/users", body)
        assert status == 201, answer
    status, key = engine.request(
        "POST", "/api/v1/api-keys", {"name": "crm", "username": "sup", "scopes": ["calls:read"]}
    )
    assert status == 201 and isinstance(key, dict), key
    revoked = engine.sign_in("sup", SUP_PASSWORD)
    assert engine.request("POST", "/api/v1/auth/logout", token=revoked)[0] == 200
    return {
        "anonymous": None,
        "revoked": revoked,
        "agent": engine.sign_in("1001", agent_password("1001")),  # the SIP password
        "team_lead": engine.sign_in("lead", LEAD_PASSWORD),
        "supervisor": engine.sign_in("sup", SUP_PASSWORD),
        "admin": engine.token,
        "api_key": str(key["key"]),
    }


def test_every_route_for_every_kind_of_caller(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    engine = engine_factory(config(tmp_path))
    tokens = credentials(engine)
    wrong = []
    for method, _, path, body, allowed, hidden in MATRIX:
        for caller in CALLERS:
            status, answer = engine.request(method, path, body, token=tokens[caller])
            if caller in ("anonymous", "revoked") and caller not in allowed:
                expected = "401"
                ok = status == 401
            elif caller in hidden:
                expected = "404 (out of reach)"
                ok = status == 404
            elif caller not in allowed:
                expected = "403"
                ok = status == 403
            else:
                expected = "allowed"
                ok = status not in (401, 403) and status < 500
                if path.endswith(("/nope", "/nokey")):
                    ok = status == 404
            if not ok:
                wrong.append(
                    f"{caller:10} {method} {path}: {status}, expected {expected}: {answer}"
                )
    assert not wrong, "\n".join(wrong)
    # Changes an agent tried and may not make are in the audit log too.
    entries = engine.http_json("/api/v1/audit?actor=1001")["entries"]
    assert isinstance(entries, list)
    tried = {(e["action"], e["status"]) for e in entries}
    assert ("POST /api/v1/users", 403) in tried
    assert ("POST /api/v1/agents/{username}/logout", 404) in tried  # 1002's: out of reach
    assert ("POST /api/v1/agents/{username}/login", 200) in tried


def test_lists_show_only_what_the_caller_reaches(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    engine = engine_factory(config(tmp_path))
    tokens = credentials(engine)

    def agents(caller: str) -> list[object]:
        status, body = engine.request("GET", "/api/v1/agents", token=tokens[caller])
        assert status == 200 and isinstance(body, dict)
        return [a["username"] for a in body["agents"]]

    assert agents("agent") == ["1001"]
    assert agents("team_lead") == ["1001", "1002"]
    assert agents("supervisor") == ["1001", "1002", "1003"]
    status, me = engine.request("GET", "/api/v1/auth/me", token=tokens["team_lead"])
    assert status == 200 and isinstance(me, dict)
    assert me["user"]["role"] == "team_lead" and me["user"]["agents"] == ["1001", "1002", "lead"]


def test_sign_in_is_throttled_per_user_and_address(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    engine = engine_factory(config(tmp_path, "http: {auth: {sign_in_failures: 3}}"))
    attempts = []
    for _ in range(3):
        attempts.append(
            engine.request(
                "POST",
                "/api/v1/auth/token",
                {"username": "1001", "password": "wrong-guess"},
                token=None,
            )
        )
    unknown = engine.request(
        "POST", "/api/v1/auth/token", {"username": "9999", "password": "wrong-guess"}, token=None
    )
    assert [s for s, _ in attempts] == [401, 401, 401]
    assert unknown == attempts[0]  # an unknown user looks exactly like a wrong password
    status, body, _ = engine.send(
        "POST",
        "/api/v1/auth/token",
        {"username": "1001", "password": agent_password("1001")},
        token=None,
    )
    assert status == 429, body  # even the right password waits now
    # A colleague behind the same address is not locked out.
    assert engine.sign_in("1002", agent_password("1002"))
    status, audit = engine.request("GET", "/api/v1/audit?actor=1001")
    assert status == 200 and isinstance(audit, dict)
    assert [e["status"] for e in audit["entries"]] == [429, 401, 401, 401]
    assert all(e["action"] == "sign-in" for e in audit["entries"])


def test_a_cookie_session_needs_its_csrf_token_to_change_anything(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    engine = engine_factory(config(tmp_path))
    request = urllib.request.Request(
        engine.url + "/api/v1/auth/login",
        data=json.dumps({"username": "1001", "password": agent_password("1001")}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        cookie = response.headers["Set-Cookie"]
        body = json.loads(response.read())
    assert "token" not in body  # a browser's session lives only in the HttpOnly cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    csrf = body["csrf_token"]
    session = cookie.split(";", 1)[0]

    def call(method: str, path: str, **headers: str) -> int:
        return engine.send(method, path, token=None, headers={"Cookie": session, **headers})[0]

    assert call("GET", "/api/v1/agents/1001") == 200  # reading needs no CSRF token
    assert call("POST", "/api/v1/agents/1001/login") == 403
    assert call("POST", "/api/v1/agents/1001/login", **{"X-CSRF-Token": "forged"}) == 403
    assert (
        call(
            "POST",
            "/api/v1/agents/1001/login",
            **{"X-CSRF-Token": csrf, "Origin": "http://evil.example"},
        )
        == 403
    )
    assert call("POST", "/api/v1/agents/1001/login", **{"X-CSRF-Token": csrf}) == 200
    audit = engine.http_json("/api/v1/audit?actor=1001")["entries"]
    assert isinstance(audit, list)
    changes = [
        (e["action"], e["status"], e["detail"].get("reason"))
        for e in audit
        if e["action"] != "sign-in"
    ]
    login = "POST /api/v1/agents/{username}/login"
    # Newest first: the one that changed something, then the three forgeries, audited.
    assert changes == [(login, 200, None)] + [(login, 403, "csrf")] * 3, changes


def test_sessions_expire_keys_are_revoked_and_the_last_admin_stays(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    engine = engine_factory(config(tmp_path, "http: {auth: {session_lifetime: 1}}"))
    short = engine.sign_in("1001", agent_password("1001"))
    deadline = time.monotonic() + 10
    while engine.request("GET", "/api/v1/auth/me", token=short)[0] == 200:
        assert time.monotonic() < deadline, "the session never expired"
        time.sleep(0.1)
    assert engine.request("GET", "/api/v1/auth/me", token=short)[0] == 401
    admin = engine.sign_in("admin", ADMIN_PASSWORD)
    status, key = engine.request(
        "POST", "/api/v1/api-keys", {"name": "wallboard", "scopes": ["queues:read"]}, token=admin
    )
    assert status == 201 and isinstance(key, dict)
    assert engine.request("GET", "/api/v1/queues", token=str(key["key"]))[0] == 200
    assert engine.request("GET", "/api/v1/calls?" + WINDOW, token=str(key["key"]))[0] == 403
    status, refused = engine.request(
        "POST", "/api/v1/api-keys", {"name": "x", "username": "1001", "scopes": ["users:admin"]},
        token=admin,
    )  # fmt: skip
    assert status == 400 and isinstance(refused, dict) and refused["field"] == "scopes"
    assert engine.request("DELETE", f"/api/v1/api-keys/{key['id']}", token=admin)[0] == 200
    assert engine.request("GET", "/api/v1/queues", token=str(key["key"]))[0] == 401
    status, last = engine.request("DELETE", "/api/v1/users/admin", token=admin)
    assert status == 409 and isinstance(last, dict) and last["error"] == "last_admin"
    status, weak = engine.request(
        "POST", "/api/v1/users", {"username": "w", "role": "agent", "password": "short"},
        token=admin,
    )  # fmt: skip
    assert status == 400 and isinstance(weak, dict) and weak["field"] == "password"


def test_metrics_can_require_a_bearer_token(tmp_path: Path) -> None:
    secret = "metrics-token-0123456789"
    os.environ["ACD_METRICS_TOKEN"] = secret
    try:
        engine = start_engine(config(tmp_path), tmp_path)
    finally:
        del os.environ["ACD_METRICS_TOKEN"]
    try:
        assert engine.send("GET", "/metrics", token=None)[0] == 401
        assert engine.send("GET", "/metrics", token="wrong-token-0000000")[0] == 401
        status, body, _ = engine.send("GET", "/metrics", token=secret)
        assert status == 200 and b"acd_calls_offered_total" in body
    finally:
        assert engine.stop() == 0


def test_acd_users_add_makes_an_admin_who_signs_in(tmp_path: Path) -> None:
    path = config(tmp_path, "http: {auth: {session_recheck: 0.5}}")
    data = tmp_path / "data"
    added = subprocess.run(
        [sys.executable, "-m", "acd.cli", "users", "add", "boss", "--role", "admin",
         "--password-stdin", "--config", str(path)],
        input="Boss-Password-2026\n", capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**os.environ, "ACD_DATA_DIR": str(data), "ACD_PASSWORD_HASH_COST": "14"},
        check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "Boss-Password-2026" not in added.stdout + added.stderr
    engine = start_engine(path, tmp_path)
    try:
        token = engine.sign_in("boss", "Boss-Password-2026")
        status, users = engine.request("GET", "/api/v1/users", token=token)
        assert status == 200 and isinstance(users, dict)
        names = [u["username"] for u in users["users"]]
        # The table was not empty, so ACD_ADMIN_USER made no second admin.
        assert "boss" in names and "admin" not in names
        assert "Boss-Password-2026" not in engine.log()
        # A forgotten password is reset from a shell, and the old sessions end.
        reset = subprocess.run(
            [sys.executable, "-m", "acd.cli", "users", "passwd", "boss", "--password-stdin",
             "--config", str(path)],
            input="Boss-Password-2027\n", capture_output=True, text=True, cwd=ROOT, timeout=60,
            env={**os.environ, "ACD_DATA_DIR": str(data), "ACD_PASSWORD_HASH_COST": "14"},
            check=False,
        )  # fmt: skip
        assert reset.returncode == 0, reset.stderr
        assert "1 sessions ended" in reset.stdout
        deadline = time.monotonic() + 30  # a checked session is trusted for session_recheck
        while engine.request("GET", "/api/v1/auth/me", token=token)[0] == 200:
            assert time.monotonic() < deadline, "the old session outlived the reset"
            time.sleep(0.1)
        assert engine.sign_in("boss", "Boss-Password-2027")
    finally:
        assert engine.stop() == 0


@pytest.mark.parametrize(
    "body", [b"not json", b'{"username": "1001"}', b'{"username": 1, "password": 2}']
)
def test_a_bad_sign_in_body_is_a_400(
    tmp_path: Path, engine_factory: EngineFactory, body: bytes
) -> None:
    engine = engine_factory(config(tmp_path))
    status, answer = engine.request("POST", "/api/v1/auth/token", body, token=None)
    assert status == 400 and isinstance(answer, dict) and answer["error"] == "bad_request"
