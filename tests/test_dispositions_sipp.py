"""Wrap-up codes end to end: a queue that requires one holds its agent until it is given.

SIPp callers come from the carrier on 127.0.0.1; the agent's phone answers
from there too and dials its feature code from 127.0.0.2, so that call is
not the carrier's but authenticated as the agent. Outcomes are read from the
agent API, the call records, their events and the wrap-up code report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import SIPP_DIR, RunningEngine, agent_password, free_port
from .test_acd_sipp import (
    Sipp,
    acd_config,
    agent_state,
    callers_done,
    events_of,
    login_all,
    queue,
    scenario_copy,
    sipp_factory,  # noqa: F401 - the fixture, used by name
    wait_records,
)

pytestmark = pytest.mark.interop

EngineFactory = Callable[[Path], RunningEngine]


def dial(sipp: Sipp, engine: RunningEngine, code: str) -> None:
    """Agent 1001's phone dials ``code`` (digest as 1001) from 127.0.0.2, not the carrier."""
    peer = sipp._run(
        f"dial{code[1:]}",
        ["-sf", str(SIPP_DIR / "feature_code.xml"), "-s", code, "-key", "agent", "1001",
         "-au", "1001", "-ap", agent_password("1001"),
         "-auth_uri", f"{code}@127.0.0.1:{engine.sip_port}",
         "-i", "127.0.0.2", "-p", str(free_port()), "-mi", "127.0.0.2",
         "-mp", str(free_port()), "-m", "1", "-timeout", "30s", "-timeout_error"],
    )  # fmt: skip
    assert callers_done(peer)


def wrap_up(engine: RunningEngine, body: object) -> tuple[int, dict[str, object]]:
    status, answer = engine.request("POST", "/api/v1/agents/1001/wrap-up", body)
    assert isinstance(answer, dict)
    return status, answer


def seconds(start: object, end: object) -> float:
    return (
        dt.datetime.fromisoformat(str(end)) - dt.datetime.fromisoformat(str(start))
    ).total_seconds()


def test_a_required_wrap_up_code_holds_the_agent_until_given_by_api_or_phone(
    tmp_path: Path,
    engine_factory: EngineFactory,
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811 - the fixture by name
) -> None:
    codes = "[sale, no-sale, callback]"
    engine = engine_factory(
        acd_config(
            tmp_path,
            agents={"1001": "{}"},
            queues={"q": queue(wrap_up_codes=codes, wrap_up_code_required="true", max_wait=90)},
            trunk_address="127.0.0.1/32",
        )
    )
    sipp = sipp_factory(engine)
    sipp.agent("1001", scenario_copy(tmp_path, "agent_uas.xml", t1000=100, t3000=500))
    login_all(engine, ["1001"])
    caller = scenario_copy(tmp_path, "queue_caller.xml", t20000=60000)
    callers = sipp.callers("200", 2, scenario=caller, rate="10", concurrent=2)

    def owes_a_code() -> bool:
        return agent_state(engine, "1001")["wrap_up_code_due"] is not None

    engine.wait_for(owes_a_code, timeout=30, what="the first call over, its code due")
    view = agent_state(engine, "1001")
    first = view["wrap_up_code_due"]
    assert view["state"] == "wrap_up" and view["ringing"] == [], view
    # The other caller waits, not offered to an agent who owes a code.
    (row,) = engine.http_json("/api/v1/queues")["queues"]  # type: ignore[misc]
    assert [c["ringing"] for c in row["calls"]] == [[]], row  # type: ignore[index]

    status, answer = wrap_up(engine, {"code": "nope"})
    assert status == 409 and "sale, no-sale, callback" in str(answer["message"]), answer
    status, answer = wrap_up(engine, {"end": True})
    assert status == 409 and "code first" in str(answer["message"]), answer
    status, answer = wrap_up(engine, {"code": "sale"})
    assert status == 200, answer

    # Freed, the agent takes the second call; its code comes from the phone: *252.
    engine.wait_for(
        lambda: agent_state(engine, "1001")["wrap_up_code_due"] not in (None, first),
        timeout=30,
        what="the second call over",
    )
    dial(sipp, engine, "*252")
    assert agent_state(engine, "1001")["state"] == "available"
    assert callers_done(callers)

    queued: list[dict[str, object]] = []

    def wrapped_up() -> bool:
        # Two callers and the feature-code call; each queued call's record is
        # written again when its wrap-up ends, with how long it lasted.
        records = wait_records(engine, 3)
        queued[:] = [r for r in records if r["queue"] == "q"]
        return all(r["wrap_up_s"] for r in queued)

    engine.wait_for(wrapped_up, timeout=10, what="the wrap-up times on the records")
    assert [r["wrap_up_code"] for r in queued] == ["sale", "no-sale"], queued
    events = [e for e in events_of(engine, queued[0]["call_id"]) if e["event"] == "WRAPUPCODE"]
    assert [(e["agent"], e["data"]) for e in events] == [("1001", {"code": "sale"})]
    day = dt.timedelta(days=1)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)
    window = f"since={(now - day).isoformat()}Z&until={(now + day).isoformat()}Z"
    report = engine.http_json(f"/api/v1/reports/wrap-up-codes?{window}")
    assert report["codes"] == [
        {"queue": "q", "code": "no-sale", "calls": 1},
        {"queue": "q", "code": "sale", "calls": 1},
    ]
    # Handle time is talk plus wrap-up, per call.
    (figures,) = engine.http_json(f"/api/v1/reports/queues?{window}")["queues"]  # type: ignore[misc]
    talk = sum(seconds(r["answered_at"], r["ended_at"]) for r in queued)
    wrap = sum(float(r["wrap_up_s"]) for r in queued)  # type: ignore[arg-type]
    assert figures["att_s"] == pytest.approx(talk / 2, abs=0.002), figures
    assert figures["acw_s"] == pytest.approx(wrap / 2, abs=0.002), figures
    assert figures["aht_s"] == pytest.approx((talk + wrap) / 2, abs=0.002), figures
    assert "Traceback" not in engine.log()
