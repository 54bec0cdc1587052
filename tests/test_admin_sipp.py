"""Runtime administration under live calls: SIPp callers wait while a queue and agents change.

The engine runs as ``acd serve`` on SQLite and on a private PostgreSQL
server; callers are SIPp from the carrier address, agents SIPp phones that
register and answer. The changes go through ``/api/v1/config`` as an admin
would send them. What must hold: nobody waiting moves or leaves while the
queue's settings change, an agent added over the API registers and logs in
with no restart, a skill change takes effect on the next offer, and every
caller is answered, each agent taking calls in the order they joined.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import RunningEngine, agent_password
from .pg import pg_cluster  # noqa: F401 - the session fixture, used by name
from .test_acd_sipp import (
    Sipp,
    acd_config,
    callers_done,
    login_all,
    queue,
    scenario_copy,
    sipp_factory,  # noqa: F401 - the fixture, used by name
    wait_records,
)

pytestmark = pytest.mark.interop

EngineFactory = Callable[[Path], RunningEngine]
CALLERS = 8


def waiting(engine: RunningEngine, name: str = "q") -> list[str]:
    """The call ids waiting in queue ``name``, in serving order."""
    rows = engine.http_json("/api/v1/queues")["queues"]
    assert isinstance(rows, list)
    (row,) = [r for r in rows if r["name"] == name]
    return [c["call_id"] for c in row["calls"]]


def change(engine: RunningEngine, method: str, path: str, body: object) -> dict[str, object]:
    status, answer = engine.request(method, f"/api/v1/config{path}", body)
    assert status in (200, 201), (method, path, status, answer)
    assert isinstance(answer, dict)
    return answer


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_queue_and_agent_changes_while_callers_wait(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    engine_factory: EngineFactory,
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811 - the fixture by name
) -> None:
    extra = ""
    if backend == "postgres":
        cluster = request.getfixturevalue("pg_cluster")
        extra = f"storage: {{url: '{cluster.create_database()}'}}"
    config = acd_config(
        tmp_path,
        agents={"1001": "{support: 3}"},
        queues={
            "q": queue(strategy="linear", skills="{sales: 5}", join_empty="true", max_wait=120)
        },
        extra=extra,
    )
    engine = engine_factory(config)
    sipp = sipp_factory(engine)
    phone = scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=1000)
    sipp.agent("1001", phone)
    login_all(engine, ["1001"])
    caller = scenario_copy(tmp_path, "queue_caller.xml", t20000=90000)
    callers = sipp.callers("200", CALLERS, scenario=caller, rate="20", concurrent=CALLERS)
    order: list[str] = []

    def all_waiting() -> bool:
        order[:] = waiting(engine)
        return len(order) == CALLERS

    engine.wait_for(all_waiting, timeout=30, what=f"{CALLERS} callers waiting")

    # Every routing setting of the queue changes while they wait: nobody moves or leaves.
    change(
        engine,
        "PATCH",
        "/queues/q",
        {"strategy": "round-robin", "ring_timeout": 4, "wrap_up": 0, "announce_every": 0},
    )
    (row,) = [r for r in engine.http_json("/api/v1/queues")["queues"] if r["name"] == "q"]  # type: ignore[union-attr]
    assert row["strategy"] == "round-robin"
    assert waiting(engine) == order

    # A new agent, created over the API, registers and logs in with no restart;
    # with sales at 2 it still cannot take these calls.
    created = change(
        engine,
        "POST",
        "/agents",
        {"username": "1004", "password": agent_password("1004"), "skills": {"sales": 2}},
    )
    assert "password" not in created
    sipp.agent("1004", phone)
    login_all(engine, ["1004"])
    assert waiting(engine) == order

    # The queue asks for less: 1004 takes the next offer, then 1001 once it has the skill.
    change(engine, "PATCH", "/queues/q", {"skills": {"sales": 2}})
    engine.wait_for(lambda: len(waiting(engine)) < CALLERS, timeout=10, what="a first offer")
    change(engine, "PATCH", "/agents/1001", {"skills": {"sales": 9}})
    assert callers_done(callers)

    records = wait_records(engine, CALLERS, timeout=90)
    assert {r["disposition"] for r in records} == {"answered"}, records
    assert {r["call_id"] for r in records} == set(order)
    by_agent: dict[object, list[int]] = {}
    for record in sorted(records, key=lambda r: str(r["answered_at"])):
        by_agent.setdefault(record["agent"], []).append(order.index(str(record["call_id"])))
    assert set(by_agent) == {"1001", "1004"}, by_agent
    for agent, places in by_agent.items():
        assert places == sorted(places), (agent, places)  # each agent took them in order
    assert by_agent["1004"][0] == 0  # the first offer after the change went to the head
    assert "Traceback" not in engine.log()
