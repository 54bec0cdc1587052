"""SIGKILL and SIGTERM under load: every call SIPp placed is accounted for.

The engine runs as a real ``acd serve`` subprocess; SIPp places calls 20 a
second that stay on the line 3 s (the flow plays prompts for longer, so the
caller hangs up), so about 60 are in progress at any moment.

- **SIGKILL** mid-load, after the first calls have ended, while the
  database stalls (the test holds a write lock on it, so the engine's
  batches wait in memory, as they would behind a slow or hung server): the
  engine cannot say anything. SIPp's remaining calls fail on their own. The
  engine is then
  started again on the same data directory, and its CDRs are compared with
  SIPp's message log, Call-ID by Call-ID: a call SIPp finished (its BYE got
  200) before the kill has its real CDR (``answered``, by the caller, with
  its end time and events), even though the batch holding it had not
  reached the database; only a call answered and still up at the kill is
  closed as ``failed`` (no end time); an INVITE that never got a final
  response has a failed CDR or none (the engine may have died before
  noting it); nothing else is in the table.
- **SIGTERM** mid-load with ``calls.drain_timeout: 0``: the engine hangs
  up every call in progress (SIPp sees its BYE), writes their CDRs and
  exits 0; an INVITE that arrives while it stops gets 503 with Retry-After
  (and no CDR: no call was made); the next start finds no call left open.
- **SIGTERM** with a drain time: new INVITEs and OPTIONS get 503 while
  the calls in progress end by themselves; then the engine exits alone.

Both run with SQLite (the default) and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from acd.calls._control import SHUTDOWN_RETRY_AFTER

from .conftest import RunningEngine, start_engine
from .pg import PgCluster, require_bindir, running_cluster
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

STALLED = 10
"""CDRs of ended calls held up in memory by the stalled database at the kill, at least."""

END_MARGIN = 0.3
"""Seconds before a SIGKILL in which a call SIPp saw end may not be durable yet.

The engine answers the BYE, then the call's script winds down and hands its
CDR to the RecordWriter, whose group commit fsyncs it to the open-call log
on its own thread: a few milliseconds in all (docs/storage.md). The margin
covers that and a loaded CI machine's scheduling, not the 200 ms batch
interval, which no longer matters.
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


@contextlib.contextmanager
def database_stalled(storage_url: str | None, data_dir: Path) -> Iterator[None]:
    """Hold a write lock on the engine's database: its writes wait, its reads go on.

    SQLite: a ``BEGIN IMMEDIATE`` transaction (the engine's writes wait out
    their 5 s busy timeout). PostgreSQL: ``LOCK TABLE calls IN EXCLUSIVE
    MODE`` from psql (the engine's writes wait out the writer's 30 s timeout).
    """
    if storage_url is None:
        db = sqlite3.connect(data_dir / "acd.db", isolation_level=None, timeout=WAIT)
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            db.execute("ROLLBACK")
            db.close()
        return
    psql = subprocess.Popen(
        [
            str(require_bindir() / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            storage_url,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert psql.stdin is not None and psql.stdout is not None
    try:
        psql.stdin.write("BEGIN; LOCK TABLE calls IN EXCLUSIVE MODE; SELECT 'locked';\n")
        psql.stdin.flush()
        assert psql.stdout.readline() == "locked\n", "psql could not lock the calls table"
        yield
    finally:
        psql.communicate("ROLLBACK;\n", timeout=WAIT)


def metric(engine: RunningEngine, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", engine.http_text("/metrics"), re.M)
    assert found is not None, f"no {name} in /metrics"
    return float(found[1])


def run_load_then(
    tmp_path: Path,
    storage_url: str | None,
    engines: list[RunningEngine],
    min_ended: int,
    *,
    drain: float = 0,
) -> tuple[Path, RunningEngine, object]:
    config = load_config(tmp_path, FLOW, storage_url=storage_url, drain=drain)
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
        with database_stalled(storage_url, tmp_path / "data"):
            # CDRs of the calls that end now wait in the writer's memory:
            # kill the engine once STALLED have, well inside SQLite's 5 s
            # busy timeout (after which the writer would journal them).
            wait_until(
                lambda: metric(engine, "storage_records_pending") >= STALLED,
                f"{STALLED} records held up by the stalled database",
            )
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
        if call.bye_answered_at is not None and call.bye_answered_at < killed_at - END_MARGIN:
            finished.append(call)
            assert record["disposition"] == "answered", (killed_at - call.bye_answered_at, record)
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
    # The CDRs held up in memory were restored from the open-call log.
    restored = re.search(r"restored (\d+) calls that had ended", log)
    assert restored is not None and int(restored[1]) >= STALLED, log
    assert restarted.stop() == 0, restarted.log()


def refusals(workdir: Path) -> dict[str, bool]:
    """Call-IDs that SIPp received a 503 for, and whether every such 503 had the shutdown's
    Retry-After (SIPp logs a retransmitted one again, as an unexpected message)."""
    text = "".join(log.read_text(errors="replace") for log in workdir.glob("*_messages.log"))
    found: dict[str, bool] = {}
    for block in re.split(r"^-{20,}.*$", text, flags=re.M):
        lines = [line.strip() for line in block.strip().splitlines()]
        status = next((n for n, line in enumerate(lines) if line.startswith("SIP/2.0 ")), None)
        if status is None or not lines[status].startswith("SIP/2.0 503 "):
            continue
        headers = [line.partition(":") for line in lines[status + 1 :]]
        call_id = next(value.strip() for name, _, value in headers if name.lower() == "call-id")
        retry = [value.strip() for name, _, value in headers if name.lower() == "retry-after"]
        found[call_id] = found.get(call_id, True) and retry == [str(SHUTDOWN_RETRY_AFTER)]
    return found


def describe(*groups: list[SippCall]) -> str:
    names = ("finished", "in flight", "ended near the kill", "unanswered")
    return ", ".join(f"{len(group)} {name}" for name, group in zip(names, groups, strict=True))


def test_sigterm_under_load_hangs_up_and_records_every_call(
    tmp_path: Path, storage_url: str | None, engines: list[RunningEngine]
) -> None:
    config, engine, sipp = run_load_then(tmp_path, storage_url, engines, min_ended=10)
    with sipp:  # type: ignore[attr-defined]
        in_progress = live_calls(engine)
        # calls.drain_timeout 0: a SIGTERM hangs up at once.
        assert engine.stop(signal.SIGTERM) == 0, engine.log()
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
    refused: set[str] = set()
    for call in placed.values():
        rows = records.get(call.call_id, [])
        assert len(rows) <= 1, f"{call.call_id}: {len(rows)} CDRs"
        if call.invite_status == 503:
            refused.add(call.call_id)
            assert rows == [], "a call refused during the shutdown has a CDR"
            continue
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
    # Every INVITE that reached the engine while it stopped was refused so
    # that a carrier fails over: 503, with Retry-After, on the wire.
    seen = refusals(tmp_path / "sipp")
    assert set(seen) == refused, (seen, refused)
    assert all(seen.values()), seen
    assert "closed as failed" not in restarted.log()
    assert restarted.stop() == 0, restarted.log()


def http_status(engine: RunningEngine, path: str) -> int:
    return engine.send("GET", path, token=None)[0]


def options_answer(engine: RunningEngine) -> str:
    """The engine's answer to one OPTIONS outside a dialog, sent over UDP from loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        sock.sendto(
            (
                f"OPTIONS sip:acd.local SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-drain-probe\r\n"
                "Max-Forwards: 70\r\n"
                "From: <sip:probe@127.0.0.1>;tag=probe\r\n"
                "To: <sip:acd.local>\r\n"
                "Call-ID: drain-probe@127.0.0.1\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode(),
            ("127.0.0.1", engine.sip_port),
        )
        return sock.recv(65535).decode()


def test_sigterm_drains_calls_in_progress_then_stops_by_itself(
    tmp_path: Path, engines: list[RunningEngine]
) -> None:
    """``calls.drain_timeout: 30``. On SIGTERM the engine answers new INVITEs and OPTIONS
    with 503 and Retry-After and /healthz with 503, while the calls in progress end by
    themselves (their callers hang up 3 s in); then it exits 0 on its own, long before
    the 30 s, having hung up none, and every answered call has its CDR, ended by the
    caller. SQLite only: the drain does not depend on the store."""
    config, engine, sipp = run_load_then(tmp_path, None, engines, min_ended=10, drain=30)
    with sipp:  # type: ignore[attr-defined]
        assert live_calls(engine) >= 30
        engine.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        wait_until(lambda: http_status(engine, "/healthz") == 503, "/healthz 503", timeout=10)
        answer = options_answer(engine)
        assert answer.startswith("SIP/2.0 503 "), answer
        assert f"\r\nRetry-After: {SHUTDOWN_RETRY_AFTER}\r\n" in answer, answer
        code = engine.process.wait(timeout=40)
        drained_in = time.monotonic() - signalled
        sipp.wait(WAIT)  # type: ignore[attr-defined]
    stopped_log = engine.log_path.rename(tmp_path / "engine-stopped.log").read_text()
    assert code == 0, stopped_log
    assert drained_in < 20, f"{drained_in:.1f} s: the limit ended the drain, not the calls"
    assert "drained: no call in progress" in stopped_log, stopped_log
    assert "Traceback" not in stopped_log, stopped_log
    restarted = start_engine(config, tmp_path)
    engines.append(restarted)
    placed = calls_seen(tmp_path / "sipp")
    records = records_by_sip_call_id(restarted)
    answered = [call for call in placed.values() if call.answered]
    assert len(answered) >= 40, len(answered)
    for call in answered:
        (record,) = records[call.call_id]
        assert call.ended_cleanly, call
        assert record["disposition"] == "answered", record
        assert record["hangup_side"] == "caller", record  # none was cut off
    refused = {call.call_id for call in placed.values() if call.invite_status == 503}
    assert refused, "no INVITE arrived during the drain: the load ended too early"
    assert all(records.get(call_id) is None for call_id in refused)
    seen = refusals(tmp_path / "sipp")
    assert set(seen) == refused and all(seen.values()), seen
    assert restarted.stop() == 0, restarted.log()


def test_a_second_signal_ends_the_drain_at_once(
    tmp_path: Path, engines: list[RunningEngine]
) -> None:
    """SIGTERM starts a 60 s drain; SIGINT then stops at once: the calls still in
    progress are hung up by the engine and recorded. SQLite only."""
    config, engine, sipp = run_load_then(tmp_path, None, engines, min_ended=10, drain=60)
    with sipp:  # type: ignore[attr-defined]
        engine.process.send_signal(signal.SIGTERM)
        wait_until(lambda: http_status(engine, "/healthz") == 503, "/healthz 503", timeout=10)
        assert engine.stop(signal.SIGINT) == 0, engine.log()  # within 10 s, not 60
        sipp.wait(WAIT)  # type: ignore[attr-defined]
    stopped_log = engine.log_path.rename(tmp_path / "engine-stopped.log").read_text()
    assert "drain over with " in stopped_log, stopped_log
    restarted = start_engine(config, tmp_path)
    engines.append(restarted)
    records = records_by_sip_call_id(restarted)
    cut = [r for rows in records.values() for r in rows if r["hangup_side"] == "system"]
    assert cut, "no call was still in progress at the SIGINT"
    assert all(r["disposition"] == "answered" and r["ended_at"] for r in cut), cut
    assert "closed as failed" not in restarted.log()
    assert restarted.stop() == 0, restarted.log()
