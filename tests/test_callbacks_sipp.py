"""Callbacks that outlive the engine, proven with SIPp on both sides and a real restart.

A caller reaches maximum wait and takes a callback; the engine stops
(SIGTERM, so it drains) and starts again on the same data directory; the
request is back in its queue. The first dial finds the caller busy, the
retry reaches them. A supervisor can also take a waiting request back.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import jsonschema

from .conftest import RunningEngine, free_port, start_engine
from .interop_helpers import PeerProcess
from .test_acd_sipp import (
    SIPP_DIR,
    Sipp,
    acd_config,
    callers_done,
    login_all,
    queue,
    scenario_copy,
    sipp_factory,  # noqa: F401 - the fixture, used by name
    wait_records,
)

CALLBACK_QUEUE = queue(
    join_empty="true",
    max_wait=2,
    on_max_wait="callback",
    callback_attempts=2,
    callback_retry_delay=3,
)


def waiting_callbacks(engine: RunningEngine) -> list[dict[str, object]]:
    rows = engine.http_json("/api/v1/callbacks?state=waiting")["callbacks"]
    assert isinstance(rows, list)
    return rows


def queued(engine: RunningEngine) -> int:
    (q,) = engine.http_json("/api/v1/queues")["queues"]  # type: ignore[misc]
    return int(q["waiting"])


def assert_documented(engine: RunningEngine, path: str) -> None:
    """The answer to GET ``path`` is what the engine's OpenAPI description says it is."""
    document = engine.http_json("/api/v1/openapi.json")
    route = path.split("?", 1)[0]
    answer = document["paths"][route]["get"]["responses"]["200"]  # type: ignore[index]
    schema = answer["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator(
        {**schema, "components": document["components"]},  # type: ignore[dict-item]
    )
    validator.validate(engine.http_json(path))


def phone(sipp: Sipp, port: int, scenario: Path, name: str) -> PeerProcess:
    """The caller's own phone, reached again through the carrier trunk's host; one call."""
    return sipp._run(
        name,
        ["-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1",
         "-mp", str(free_port()), "-m", "1", "-timeout", "60s", "-timeout_error"],
    )  # fmt: skip


def test_a_callback_survives_a_restart_and_is_retried_until_the_caller_answers(
    tmp_path: Path,
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811 - the fixture by name
) -> None:
    callback_port = free_port()
    config = acd_config(tmp_path, queues={"q": CALLBACK_QUEUE}, callback_port=callback_port)
    first = start_engine(config, tmp_path)
    try:
        sipp = sipp_factory(first)
        assert callers_done(sipp.callers("200", 1))  # "we will call you back", then BYE
        first.wait_for(lambda: len(waiting_callbacks(first)) == 1, what="the stored request")
        (request,) = waiting_callbacks(first)
        assert_documented(first, "/api/v1/callbacks?state=waiting")
        assert (request["queue"], request["requested_by"], request["attempts"]) == (
            "q",
            "max-wait",
            0,
        )
        assert request["number"] == "0123456789"
    finally:
        assert first.stop(signal.SIGTERM) == 0, first.log()
    assert "Traceback" not in first.log(), first.log()[-4000:]

    second = start_engine(config, tmp_path)  # the same data directory, new ports
    try:
        second.wait_for(lambda: queued(second) == 1, what="the request back in its queue")
        assert [r["call_id"] for r in waiting_callbacks(second)] == [request["call_id"]]
        sipp = sipp_factory(second)
        busy = phone(sipp, callback_port, SIPP_DIR / "agent_busy.xml", "busy-phone")
        sipp.agent("1001", scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=10_000))
        login_all(second, ["1001"])
        assert busy.wait(30) == 0, busy.describe()
        # Offered again after callback_retry_delay (3 s): the phone answers this time.
        answering = phone(
            sipp,
            callback_port,
            scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=1500),
            "answering-phone",
        )
        assert answering.wait(60) == 0, answering.describe()
        path = f"/api/v1/calls/{request['call_id']}"  # the same call, completed
        second.wait_for(
            lambda: second.http_json(path)["agent"] == "1001", what="the record completed"
        )
        record = second.http_json(path)
        assert record["disposition"] == "callback" and record["answered_at"], record
        assert len(wait_records(second, 1)) == 1  # one record, not one per run
        steps = [
            (e.get("data") or {}).get("step")
            for e in record["events"]  # type: ignore[attr-defined]
            if e["event"] == "CALLBACK"
        ]
        assert steps[-4:] == ["restored", "unanswered", "retry", "connected"], steps
        second.wait_for(lambda: not waiting_callbacks(second), what="the request to be done")
        assert_documented(second, "/api/v1/callbacks?state=done")
        (done,) = second.http_json("/api/v1/callbacks?state=done")["callbacks"]  # type: ignore[misc]
        assert (done["attempts"], done["agent"]) == (2, "1001")
    finally:
        assert second.stop(signal.SIGTERM) == 0, second.log()
    assert "Traceback" not in second.log(), second.log()[-4000:]


def test_a_supervisor_cancels_a_waiting_callback(
    tmp_path: Path,
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811 - the fixture by name
) -> None:
    config = acd_config(tmp_path, queues={"q": CALLBACK_QUEUE}, callback_port=free_port())
    engine = start_engine(config, tmp_path)
    try:
        sipp = sipp_factory(engine)
        assert callers_done(sipp.callers("200", 1))
        engine.wait_for(lambda: len(waiting_callbacks(engine)) == 1, what="the stored request")
        (request,) = waiting_callbacks(engine)
        path = f"/api/v1/callbacks/{request['call_id']}"
        assert engine.request("DELETE", path)[0] == 204
        assert engine.request("DELETE", path)[0] == 409  # cancelled already
        assert engine.request("DELETE", "/api/v1/callbacks/nope")[0] == 404
        engine.wait_for(lambda: queued(engine) == 0, what="the request out of the queue")
        (record,) = wait_records(engine, 1)
        assert record["disposition"] == "failed"
        engine.wait_for(
            lambda: len(engine.http_json("/api/v1/callbacks?state=cancelled")["callbacks"]) == 1,  # type: ignore[arg-type]
            what="the cancelled request stored",
        )
        status, body = engine.request("GET", "/api/v1/callbacks?state=later")
        assert status == 400 and body["parameter"] == "state"  # type: ignore[index]
    finally:
        assert engine.stop(signal.SIGTERM) == 0, engine.log()
