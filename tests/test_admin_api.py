"""``/api/v1/config`` against a running ``acd serve``: edits, refusals, revisions, restarts, CLI.

The queue-under-load proof is in test_admin_sipp.py; here each answer is
checked for what an admin (or a UI built on the API) relies on: the field a
refusal names, the revision in ETag and If-Match, the password never read
back, a change that survives a restart and wins over the file, and
``acd config export`` / ``import`` round-tripping through the database
while the engine runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from .conftest import ROOT, RunningEngine, agent_password, start_engine, write_config

EngineFactory = Callable[[Path], RunningEngine]
C = "/api/v1/config"
QUEUES = """queues:
  sales: {skills: {sales: 1}, join_empty: true}
  support: {skills: {}}
routes:
  - {match: "200", queue: sales}
  - {match: "_3XX", queue: support}
pause_reasons: [break, lunch]
"""


def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "acd.yaml", agents=2, extra=QUEUES)


def ok(engine: RunningEngine, method: str, path: str, body: object = None) -> dict[str, object]:
    status, answer = engine.request(method, C + path, body)
    assert status in (200, 201), (method, path, status, answer)
    assert isinstance(answer, dict)
    return answer


def refused(
    engine: RunningEngine,
    method: str,
    path: str,
    body: object,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, object]]:
    status, answer = engine.request(method, C + path, body, headers=headers)
    assert status >= 400 and isinstance(answer, dict), (status, answer)
    return status, answer


def test_edits_are_checked_field_by_field_and_applied(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    engine = engine_factory(config(tmp_path))
    whole = ok(engine, "GET", "")
    assert whole["revision"] == 1  # seeded from the file
    request = urllib.request.Request(
        engine.url + C, headers={"Authorization": f"Bearer {engine.token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["ETag"] == '"1"'
    agents = whole["agents"]
    assert isinstance(agents, list) and [a["username"] for a in agents] == ["1001", "1002"]
    assert all("password" not in a for a in agents)
    assert [q["name"] for q in whole["queues"]] == ["sales", "support"]  # type: ignore[union-attr]

    # The schema's own words, with the field they concern.
    status, answer = refused(
        engine,
        "POST",
        "/agents",
        {"username": "1003", "password": "p-1003-pass", "skills": {"sales": 11}},
    )
    assert (status, answer["field"]) == (400, "skills.sales"), answer
    assert "less than or equal to 10" in str(answer["message"])
    status, answer = refused(engine, "POST", "/agents", {"username": "1003", "skils": {}})
    assert status == 400
    fields = {p["field"] for p in answer["problems"]}  # type: ignore[union-attr]
    assert fields == {"password", "skils"}, answer
    # Across sections: a weight for a queue that does not exist, a route to one.
    status, answer = refused(
        engine,
        "POST",
        "/agents",
        {"username": "1003", "password": "p-1003-pass", "weights": {"nope": 2}},
    )
    assert (status, answer["field"]) == (400, "agents.2.weights.nope"), answer
    status, answer = refused(engine, "POST", "/routes", {"match": "400", "queue": "nope"})
    assert (status, answer["field"]) == (400, "routes.2.queue"), answer
    # A queue still routed to cannot go; a name cannot be taken twice.
    status, answer = refused(engine, "DELETE", "/queues/sales", None)
    assert (status, answer["field"]) == (400, "routes.0.queue"), answer
    status, answer = refused(engine, "POST", "/queues", {"name": "sales"})
    assert status == 409
    assert ok(engine, "GET", "")["revision"] == 1  # nothing refused was written

    # Created, then merged: skills merge key by key and null takes one away.
    created = ok(
        engine,
        "POST",
        "/agents",
        {"username": "1003", "password": agent_password("1003"), "skills": {"sales": 4, "fr": 2}},
    )
    assert created["skills"] == {"sales": 4, "fr": 2} and "password" not in created
    patched = ok(engine, "PATCH", "/agents/1003", {"skills": {"fr": None, "de": 5}, "team": "red"})
    assert (patched["skills"], patched["team"]) == ({"sales": 4, "de": 5}, "red")
    # The running engine has the agent at once: it can sign in and log in.
    token = engine.sign_in("1003", agent_password("1003"))
    status, state = engine.request("POST", "/api/v1/agents/1003/login", token=token)
    assert status == 200, state

    # If-Match: a change against an older revision is refused, nothing written.
    revision = ok(engine, "GET", "")["revision"]
    assert revision == 3
    status, answer = refused(
        engine, "PATCH", "/queues/sales", {"wrap_up": 2}, headers={"If-Match": '"2"'}
    )
    assert (status, answer["revision"]) == (412, 3), answer
    assert ok(engine, "PATCH", "/queues/sales", {"wrap_up": 2})["wrap_up"] == 2

    # Routes keep their order: a new one placed first wins over the pattern.
    ok(engine, "POST", "/routes", {"match": "301", "queue": "sales", "position": 0})
    routes = ok(engine, "GET", "/routes")["routes"]
    assert [r["match"] for r in routes] == ["301", "200", "_3XX"]  # type: ignore[union-attr]

    # Pause reasons are one list; the agents' pause takes the new one at once.
    ok(engine, "PUT", "/pause-reasons", {"pause_reasons": ["break", "training"]})
    status, state = engine.request(
        "POST", "/api/v1/agents/1003/pause", {"reason": "training"}, token=token
    )
    assert status == 200, state
    status, answer = engine.request("POST", "/api/v1/agents/1003/pause", {"reason": "lunch"})
    assert status == 400, answer

    # Disabled: the agent is logged out and cannot sign in any more.
    ok(engine, "PATCH", "/agents/1003", {"enabled": False})
    assert engine.http_json("/api/v1/agents/1003")["state"] == "logged_out"
    status, _ = engine.request(
        "POST",
        "/api/v1/auth/token",
        {"username": "1003", "password": agent_password("1003")},
        token=None,
    )
    assert status == 401
    status, _ = engine.request("GET", "/api/v1/auth/me", token=token)
    assert status == 401  # the session ended with the account

    # Who changed what is in the audit log.
    entries = engine.http_json("/api/v1/audit?actor=admin")["entries"]
    actions = {e["action"] for e in entries}  # type: ignore[union-attr]
    assert {"PATCH /api/v1/config/agents/{name}", "PUT /api/v1/config/pause-reasons"} <= actions


def acd_cli(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ACD_DATA_DIR=str(tmp_path / "data"))
    return subprocess.run(
        [sys.executable, "-m", "acd.cli", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_database_wins_after_a_restart_and_the_cli_round_trips_it(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    path = config(tmp_path)
    engine = engine_factory(path)
    ok(engine, "POST", "/queues", {"name": "vip", "skills": {"vip": 1}, "ring_timeout": 7})
    ok(engine, "PATCH", "/agents/1001", {"skills": {"vip": 3}})
    assert engine.stop() == 0

    # The file still has two queues; the engine serves the three the database has.
    again = start_engine(path, tmp_path)
    try:
        queues = {q["name"]: q for q in ok(again, "GET", "/queues")["queues"]}  # type: ignore[union-attr]
        assert set(queues) == {"sales", "support", "vip"}
        assert queues["vip"]["ring_timeout"] == 7
        assert "revision 3 from the database" in again.log()

        # Export writes the file again with the live sections, passwords included.
        out = tmp_path / "export.yaml"
        done = acd_cli(tmp_path, "config", "export", "--config", str(path), "--out", str(out))
        assert done.returncode == 0, done.stderr
        assert out.stat().st_mode & 0o077 == 0
        exported = yaml.safe_load(out.read_text())
        assert set(exported["queues"]) == {"sales", "support", "vip"}
        first = exported["agents"][0]
        assert (first["username"], first["skills"], first["password"]) == (
            "1001",
            {"vip": 3},
            agent_password("1001"),
        )
        assert exported["sip"]["domain"] == "acd.local"  # the other keys as the file has them

        # Import a changed copy: the running engine takes it within its sync interval.
        exported["queues"]["vip"]["ring_timeout"] = 9
        exported["agents"].append({"username": "1009", "password": agent_password("1009")})
        changed = tmp_path / "changed.yaml"
        changed.write_text(yaml.safe_dump(exported))
        done = acd_cli(tmp_path, "config", "import", str(changed), "--config", str(path))
        assert done.returncode == 0, done.stderr
        assert "as revision 4" in done.stderr

        def taken() -> bool:
            names = [a["username"] for a in again.http_json("/api/v1/agents")["agents"]]  # type: ignore[union-attr]
            return "1009" in names

        again.wait_for(taken, timeout=20, what="the imported agent")
        assert ok(again, "GET", "/queues/vip")["ring_timeout"] == 9
        # A file that does not check out is refused and changes nothing.
        exported["routes"].append({"match": "999", "queue": "gone"})
        changed.write_text(yaml.safe_dump(exported))
        done = acd_cli(tmp_path, "config", "import", str(changed), "--config", str(path))
        assert done.returncode == 2 and "unknown queue 'gone'" in done.stderr, done.stderr
        assert ok(again, "GET", "")["revision"] == 4
    finally:
        assert again.stop() == 0
