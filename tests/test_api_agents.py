"""The agent and queue API of a running engine (``acd serve``), over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import RunningEngine, write_config

EngineFactory = Callable[[Path], RunningEngine]

QUEUES = """
queues:
  sales: {skills: {}, strategy: round-robin, join_empty: true}
pause_reasons: [break, lunch, no-answer]
"""


def request(
    engine: RunningEngine, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    status, raw, _ = engine.send(method, path, body)
    return status, json.loads(raw)


@pytest.fixture
def engine(tmp_path: Path, engine_factory: EngineFactory) -> RunningEngine:
    return engine_factory(write_config(tmp_path / "acd.yaml", agents=2, extra=QUEUES))


def test_agents_are_listed_logged_out_and_unreachable(engine: RunningEngine) -> None:
    status, body = request(engine, "GET", "/api/v1/agents")
    assert status == 200
    assert [(a["username"], a["state"], a["reachable"]) for a in body["agents"]] == [
        ("1001", "logged_out", False),
        ("1002", "logged_out", False),
    ]
    assert request(engine, "GET", "/api/v1/agents/9999")[0] == 404


def test_login_pause_unpause_logout(engine: RunningEngine) -> None:
    status, agent = request(engine, "POST", "/api/v1/agents/1001/login")
    assert (status, agent["state"], agent["logged_in"]) == (200, "available", True)
    status, agent = request(engine, "POST", "/api/v1/agents/1001/pause", b'{"reason": "lunch"}')
    assert (status, agent["state"], agent["reason"]) == (200, "paused", "lunch")
    status, agent = request(engine, "POST", "/api/v1/agents/1001/pause")  # the first reason
    assert (status, agent["reason"]) == (200, "break")
    status, agent = request(engine, "POST", "/api/v1/agents/1001/unpause")
    assert (status, agent["state"]) == (200, "available")
    status, agent = request(engine, "POST", "/api/v1/agents/1001/logout")
    assert (status, agent["state"]) == (200, "logged_out")
    assert request(engine, "GET", "/api/v1/agents/1001")[1]["state"] == "logged_out"


def test_pause_reasons_and_states_are_checked(engine: RunningEngine) -> None:
    status, body = request(engine, "POST", "/api/v1/agents/1002/pause", b'{"reason": "lunch"}')
    assert (status, body["error"]) == (409, "conflict")  # not logged in
    request(engine, "POST", "/api/v1/agents/1002/login")
    status, body = request(engine, "POST", "/api/v1/agents/1002/pause", b'{"reason": "nap"}')
    assert (status, body["error"], body["reasons"]) == (
        400,
        "bad_reason",
        ["break", "lunch", "no-answer"],
    )
    status, body = request(engine, "POST", "/api/v1/agents/1002/pause", b"not json")
    assert (status, body["error"]) == (400, "bad_request")
    status, body = request(engine, "POST", "/api/v1/agents/1002/pause", b'{"why": "lunch"}')
    assert status == 400
    assert request(engine, "GET", "/api/v1/agents/1002")[1]["state"] == "available"


def test_queues_show_live_figures(engine: RunningEngine) -> None:
    request(engine, "POST", "/api/v1/agents/1001/login")
    request(engine, "POST", "/api/v1/agents/1002/login")
    request(engine, "POST", "/api/v1/agents/1002/pause", b'{"reason": "break"}')
    status, body = request(engine, "GET", "/api/v1/queues")
    assert status == 200
    (sales,) = body["queues"]
    assert (sales["name"], sales["strategy"], sales["waiting"], sales["calls"]) == (
        "sales",
        "round-robin",
        0,
        [],
    )
    # Logged in: both; paused: 1002. (Reachability, a registered phone, is per agent.)
    assert (sales["logged_in"], sales["paused"], sales["available"]) == (2, 1, 1)
