"""SIGKILL and SIGTERM under load: every call SIPp placed is accounted for.

The engine runs as a real ``acd serve`` subprocess; SIPp places calls 20 a
second that stay on the line 3 s (the flow plays prompts for longer, so the
caller hangs up), so about 60 are in progress at any moment.

- **SIGKILL** mid-load, after the first calls have ended: the engine cannot
  say anything. SIPp's remaining calls fail on their own. The engine is then
  started again on the same data directory, and its CDRs are compared with
  SIPp's message log, Call-ID by Call-ID: a call SIPp finished (its BYE got
  200) well before the kill has its real CDR; a call answered and still up
  at the kill is closed as ``failed`` (no end time); an INVITE that never
  got a final response has a failed CDR or none (the engine may have died
  before noting it); nothing else is in the table.
- **SIGTERM** mid-load: the engine hangs up every call in progress (SIPp
  sees its BYE), writes their CDRs and exits 0; the next start finds no
  call left open.

Both run with SQLite (the default) and PostgreSQL.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import RunningEngine, start_engine
from .pg import PgCluster, running_cluster
from .sipp_load import SippCall, all_call_records, calls_seen, load_config, start_load

pytestmark = pytest.mark.interop

CALLS = 200
RATE = 20
WAIT = 90.0

FLOW = """\
name: load
start: talk
nodes:
  talk:
    type: play
    prompts: [welcome, closed]
    next: bye
  bye:
    type: hangup
"""

FLUSH_WINDOW = 2.0
"""Seconds before a SIGKILL in which an ended call's CDR may still be in memory.

The RecordWriter batches CDRs for 200 ms before writing them; a call that
ended in that time before the kill was never written, is still noted as
open, and is closed as failed on restart. 2 s covers the batch interval and
a loaded machine's scheduling delays.
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    yield from running_cluster()


@pytest.fixture(params=["sqlite", "postgres"])
def storage_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None  # the default: data_dir/acd.db
    cluster: PgCluster = request.getfixturevalue("cluster")
    return cluster.create_database()


@pytest.fixture
def engines() -> Iterator[list[RunningEngine]]:
    """Engines a test started; any still running at the end is stopped."""
    started: list[RunningEngine] = []
    yield started
    for engine in started:
        if engine.process.poll() is None:
            engine.process.kill()
            engine.process.wait(timeout=10)


def wait_until(predicate: object, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def live_calls(engine: RunningEngine) -> int:
    rows = engine.http_json("/api/v1/live/calls")["calls"]
    assert isinstance(rows, list)
    return len(rows)


def records_by_sip_call_id(engine: RunningEngine) -> dict[str, list[dict[str, object]]]:
    found: dict[str, list[dict[str, object]]] = {}
    for record in all_call_records(engine):
        found.setdefault(str(record["sip_call_id"]), []).append(record)
    return found


def run_load_then(
    tmp_path: Path, storage_url: str | None, engines: list[RunningEngine], min_ended: int
) -> tuple[Path, RunningEngine, object]:
    config = load_config(tmp_path, FLOW, storage_url=storage_url)
    engine = start_engine(config, tmp_path)
    engines.append(engine)
    sipp = start_load(engine, tmp_path / "sipp", "caller_hangs_up.xml", calls=CALLS, rate=RATE)
    wait_until(
        lambda: len(all_call_records(engine)) >= min_ended and live_calls(engine) >= 30,
        f"{min_ended} calls ended and 30 in progress",
    )
    return config, engine, sipp


def test_sigkill_under_load_then_restart_accounts_for_every_call(
    tmp_path: Path, storage_url: str | None, engines: list[RunningEngine]
) -> None:
    config, engine, sipp = run_load_then(tmp_path, storage_url, engines, min_ended=60)
    with sipp:  # type: ignore[attr-defined]
        engine.process.send_signal(signal.SIGKILL)
        killed_at = time.time()
        assert engine.process.wait(timeout=10) == -signal.SIGKILL
        sipp.wait(WAIT)  # type: ignore[attr-defined]

    # The next start writes engine.log afresh: keep the killed run's log beside it.
    engine.log_path.rename(tmp_path / "engine-killed.log")
    restarted = start_engine(config, tmp_path)  # same data directory, fresh ports
    engines.append(restarted)
    placed = calls_seen(tmp_path / "sipp")
    assert len(placed) == CALLS
    records = records_by_sip_call_id(restarted)
    assert set(records) <= set(placed), "a CDR for a call SIPp never placed"

    finished, in_flight, near_kill, unanswered = [], [], [], []
    for call in placed.values():
        rows = records.get(call.call_id, [])
        assert len(rows) <= 1, f"{call.call_id}: {len(rows)} CDRs"
        if not call.answered:
            unanswered.append(call)
            # Died before it was answered: noted (failed) or not yet noted (no CDR).
            assert all(row["disposition"] == "failed" for row in rows), rows
            continue
        assert rows, f"{call.call_id} was answered but has no CDR"
        record = rows[0]
        if call.bye_answered_at is not None and call.bye_answered_at < killed_at - FLUSH_WINDOW:
            finished.append(call)
            assert record["disposition"] == "answered", record
            assert record["hangup_side"] == "caller", record
            assert record["ended_at"] is not None, record
        elif call.bye_answered_at is None:
            in_flight.append(call)
            assert record["disposition"] == "failed", record
            assert record["hangup_side"] == "system", record
            assert record["ended_at"] is None, record
        else:
            near_kill.append(call)
            assert record["disposition"] in ("answered", "failed"), record

    # The run really had both kinds, in numbers.
    assert len(finished) >= 10, describe(finished, in_flight, near_kill, unanswered)
    assert len(in_flight) >= 20, describe(finished, in_flight, near_kill, unanswered)
    log = restarted.log()
    assert "calls in flight at the last stop were closed as failed" in log
    assert restarted.stop() == 0, restarted.log()


def describe(*groups: list[SippCall]) -> str:
    names = ("finished", "in flight", "ended near the kill", "unanswered")
    return ", ".join(f"{len(group)} {name}" for name, group in zip(names, groups, strict=True))


def test_sigterm_under_load_hangs_up_and_records_every_call(
    tmp_path: Path, storage_url: str | None, engines: list[RunningEngine]
) -> None:
    config, engine, sipp = run_load_then(tmp_path, storage_url, engines, min_ended=10)
    with sipp:  # type: ignore[attr-defined]
        in_progress = live_calls(engine)
        assert engine.stop() == 0, engine.log()
        sipp.wait(WAIT)  # type: ignore[attr-defined]

    stopped_log = engine.log_path.rename(tmp_path / "engine-stopped.log").read_text()
    # A call arriving during the shutdown once outlived the writer: no traceback.
    assert "Traceback" not in stopped_log, stopped_log
    restarted = start_engine(config, tmp_path)
    engines.append(restarted)
    placed = calls_seen(tmp_path / "sipp")
    records = records_by_sip_call_id(restarted)
    assert set(records) <= set(placed)
    hung_up = 0
    for call in placed.values():
        rows = records.get(call.call_id, [])
        assert len(rows) <= 1, f"{call.call_id}: {len(rows)} CDRs"
        if not call.answered:
            assert all(row["disposition"] == "failed" for row in rows), rows
            continue
        assert rows, f"{call.call_id} was answered but has no CDR"
        record = rows[0]
        # Every answered call ended cleanly: by the caller, or by the engine's BYE.
        assert call.ended_cleanly, call
        assert record["disposition"] == "answered", record
        assert record["ended_at"] is not None, record
        if call.bye_answered_at is None:
            hung_up += 1
            assert record["hangup_side"] == "system", record
    assert hung_up >= min(20, in_progress), f"{hung_up} hung up of {in_progress} in progress"
    assert "closed as failed" not in restarted.log()
    assert restarted.stop() == 0, restarted.log()
