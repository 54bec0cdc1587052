"""The journal and the RecordWriter: fsync, torn tails, outages, replays, SIGKILL.

The writer runs over SQLite here, behind ``FlakyStorage``, which can play a
database that is down or that refuses one record; tests/test_storage.py
stages the same outage with a real PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from acd.storage import (
    AgentSession,
    CallbackRecord,
    CallbackState,
    CallCursor,
    CallEvent,
    CallRecord,
    Disposition,
    HangupSide,
    Journal,
    RecordingRecord,
    RecordWriter,
    SqliteStorage,
    Storage,
)
from acd.storage._journal import OpenCall, OpenCallLog
from acd.storage._model import to_json

from .test_storage import T0, make_call, make_callback, make_events

ROOT = Path(__file__).resolve().parents[1]
DAY = T0 + timedelta(days=1)


class FlakyStorage(Storage):
    """SQLite that can be "down" (every write refused, ping False) or refuse poison calls."""

    def __init__(self, inner: SqliteStorage) -> None:
        self.inner = inner
        self.up = True
        self.poison: set[str] = set()
        self.attempts = 0
        self.written: list[str] = []  # call_ids in the order they were committed

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def write_batch(
        self,
        calls: Sequence[CallRecord] = (),
        events: Sequence[CallEvent] = (),
        recordings: Sequence[RecordingRecord] = (),
        sessions: Sequence[AgentSession] = (),
        callbacks: Sequence[CallbackRecord] = (),
    ) -> None:
        self.attempts += 1
        if not self.up:
            raise ConnectionRefusedError("database is down")
        if any(call.call_id in self.poison for call in calls):
            raise ValueError("value too long for type character varying(64)")
        await self.inner.write_batch(calls, events, recordings, sessions, callbacks)
        self.written += [call.call_id for call in calls]

    async def get_call(self, call_id: str) -> CallRecord | None:
        return await self.inner.get_call(call_id)

    async def call_events(self, call_id: str) -> list[CallEvent]:
        return await self.inner.call_events(call_id)

    async def list_calls(
        self,
        since: datetime,
        until: datetime,
        *,
        queue: str | None = None,
        agent: str | None = None,
        disposition: Disposition | None = None,
        caller: str | None = None,
        limit: int = 100,
        after: CallCursor | CallRecord | None = None,
    ) -> list[CallRecord]:
        return await self.inner.list_calls(
            since,
            until,
            queue=queue,
            agent=agent,
            disposition=disposition,
            caller=caller,
            limit=limit,
            after=after,
        )

    async def delete_recordings_before(self, when: datetime) -> list[RecordingRecord]:
        return await self.inner.delete_recordings_before(when)

    async def get_recording(self, recording_id: str) -> RecordingRecord | None:
        return await self.inner.get_recording(recording_id)

    async def agent_sessions(
        self, since: datetime, until: datetime, *, agent: str | None = None
    ) -> list[AgentSession]:
        return await self.inner.agent_sessions(since, until, agent=agent)

    dialect = SqliteStorage.dialect

    async def _fetch_rows(self, sql: str, params: Sequence[object]) -> list[Sequence[Any]]:
        return await self.inner._fetch_rows(sql, params)

    async def _execute(self, sql: str, params: Sequence[object]) -> int:
        if not self.up:
            raise ConnectionRefusedError("database is down")
        return await self.inner._execute(sql, params)

    async def ping(self) -> bool:
        return self.up and await self.inner.ping()

    async def schema_version(self) -> int:
        return await self.inner.schema_version()


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[FlakyStorage]:
    async with FlakyStorage(SqliteStorage(tmp_path / "acd.db")) as flaky:
        yield flaky


def fast_writer(storage: Storage, journal_dir: Path, **options: float) -> RecordWriter:
    settings = {"flush_interval": 0.02, "retry_initial": 0.02, "retry_max": 0.1, **options}
    return RecordWriter(storage, journal_dir, **settings)  # type: ignore[arg-type]


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def stored_ids(storage: Storage) -> list[str]:
    return [c.call_id for c in await storage.list_calls(T0, DAY, limit=10_000)]


# ---- the Journal file ------------------------------------------------------


async def test_append_is_fsynced_before_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "j" / "records.jsonl"
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        real_fsync(fd)
        if os.readlink(f"/proc/self/fd/{fd}") == str(path):
            synced.append(path.stat().st_size)

    monkeypatch.setattr(os, "fsync", spy)
    journal = Journal(path)
    await journal.open()
    await journal.append([{"n": 1}, {"n": 2, "text": "Ünïcode ☎"}])
    # One fsync for the append, after all its bytes were written.
    assert synced == [path.stat().st_size]
    await journal.append([{"n": 3}])
    assert len(synced) == 2
    assert journal.entries == 3
    entries, offset = await journal.read()
    assert entries == [{"n": 1}, {"n": 2, "text": "Ünïcode ☎"}, {"n": 3}]
    assert offset == path.stat().st_size
    await journal.close()


async def test_torn_last_line_is_cut_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "records.jsonl"
    whole = b'{"n":1}\n{"n":2}\n'
    path.write_bytes(whole + b'{"n":3,"te')
    journal = Journal(path)
    with caplog.at_level(logging.WARNING):
        await journal.open()
    assert "torn" in caplog.text
    assert journal.entries == 2
    assert path.read_bytes() == whole
    await journal.append([{"n": 4}])
    assert (await journal.read())[0] == [{"n": 1}, {"n": 2}, {"n": 4}]
    await journal.close()


async def test_a_garbled_last_line_is_cut_too(tmp_path: Path) -> None:
    # A crash can persist the block holding a newline but not the ones before it.
    path = tmp_path / "records.jsonl"
    path.write_bytes(b'{"n":1}\n' + b"\0" * 300 + b"\n")
    journal = Journal(path)
    await journal.open()
    assert journal.entries == 1
    assert path.read_bytes() == b'{"n":1}\n'
    await journal.close()


async def test_read_pages_by_offset_and_skips_damage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(b'{"n":1}\nnot json\n{"n":2}\n[3]\n{"n":4}\n')
    journal = Journal(path)
    await journal.open()
    first, offset = await journal.read(0, 2)
    assert first == [{"n": 1}, {"n": 2}]
    rest, end = await journal.read(offset, 10)
    assert rest == [{"n": 4}]
    assert (await journal.read(end, 10)) == ([], end)
    assert caplog.text.count("unreadable entry") == 2
    await journal.truncate()
    assert path.stat().st_size == 0 and journal.entries == 0
    await journal.close()


async def test_group_commit_shares_fsyncs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real_fsync = os.fsync

    def counting(fd: int) -> None:
        nonlocal calls
        calls += 1
        real_fsync(fd)

    journal = Journal(tmp_path / "open.jsonl")
    await journal.open()
    monkeypatch.setattr(os, "fsync", counting)
    for n in range(200):
        journal.append_soon({"n": n})
    await journal.settle()
    assert journal.entries == 200
    assert calls <= 2
    assert [e["n"] for e in (await journal.read(0, 1000))[0]] == list(range(200))
    await journal.close()


# ---- the RecordWriter ------------------------------------------------------


async def test_batches_by_size_and_by_time(storage: FlakyStorage, tmp_path: Path) -> None:
    writer = RecordWriter(storage, tmp_path / "journal", flush_interval=3600, batch_size=50)
    await writer.start()
    for n in range(50):
        writer.submit_call(make_call(n))
    assert writer.pending == 50
    await eventually(lambda: _true(storage.attempts == 1), "a full batch to be written at once")
    await writer.stop()

    timed = fast_writer(storage, tmp_path / "journal")
    await timed.start()
    timed.submit_call(make_call(60))
    await eventually(lambda: _true(timed.pending == 0), "the flush interval to write a record")
    assert "call-00060" in await stored_ids(storage)
    await timed.stop()


async def _true(value: bool) -> bool:
    return value


async def test_events_are_numbered_in_submission_order(
    storage: FlakyStorage, tmp_path: Path
) -> None:
    writer = fast_writer(storage, tmp_path / "journal")
    await writer.start()
    call = make_call(1)
    events = make_events(call)
    same_time = [
        CallEvent(call_id=call.call_id, at=T0, event=e.event, agent=e.agent) for e in events
    ]
    for event in same_time:
        writer.submit_event(event)
    await writer.stop()
    stored = await storage.call_events(call.call_id)
    assert [e.event for e in stored] == [e.event for e in same_time]
    assert [e.seq for e in stored] == sorted({e.seq for e in stored})


async def test_outage_journals_then_replays_in_order(storage: FlakyStorage, tmp_path: Path) -> None:
    writer = fast_writer(storage, tmp_path / "journal", batch_size=40)
    await writer.start()
    writer.submit_call(make_call(0))
    await writer.flush()

    storage.up = False
    # Version 1 then version 2 of one open call, across batches: the replay
    # must apply them in this order for version 2 to be what is stored.
    writer.submit_call(make_call(1, ended_at=None, survey_score=1))
    for n in range(2, 150):
        writer.submit_call(make_call(n))
    await writer.flush()
    writer.submit_call(make_call(1, ended_at=None, survey_score=2))
    await writer.flush()
    assert writer.journaled == 150
    assert writer.pending == 150

    attempts = storage.attempts
    # A window to count retries in: a rate, not an event to wait for.
    await asyncio.sleep(0.3)  # wait-ok
    # Backoff: far fewer attempts than one per 20 ms flush interval.
    assert storage.attempts - attempts < 10

    storage.up = True
    for n in range(150, 200):  # submitted while the journal is replayed
        writer.submit_call(make_call(n))
        await asyncio.sleep(0)
    await eventually(lambda: _true(writer.pending == 0), "the journal to be replayed")
    await writer.stop()
    assert storage.written == [
        "call-00000",
        "call-00001",
        *(f"call-{n:05d}" for n in range(2, 150)),
        "call-00001",
        *(f"call-{n:05d}" for n in range(150, 200)),
    ]
    stored = await storage.get_call("call-00001")
    assert stored is not None and stored.survey_score == 2
    assert (tmp_path / "journal" / "records.jsonl").stat().st_size == 0


async def test_callback_states_survive_an_outage_in_order(
    storage: FlakyStorage, tmp_path: Path
) -> None:
    writer = fast_writer(storage, tmp_path / "journal")
    await writer.start()
    request = make_callback(1)
    storage.up = False
    writer.submit_callback(request)
    writer.submit_callback(dataclasses.replace(request, attempts=1, agent="1001"))
    writer.submit_callback(dataclasses.replace(request, state=CallbackState.DONE, attempts=1))
    await writer.flush()
    assert writer.journaled == 3
    storage.up = True
    await eventually(lambda: _true(writer.pending == 0), "the journal to be replayed")
    await writer.stop()
    stored = await storage.get_callback(request.call_id)
    assert stored is not None and (stored.state, stored.attempts) == (CallbackState.DONE, 1)


async def test_stop_journals_what_the_database_cannot_take(
    storage: FlakyStorage, tmp_path: Path
) -> None:
    journal_dir = tmp_path / "journal"
    writer = fast_writer(storage, journal_dir, stop_timeout=1)
    await writer.start()
    storage.up = False
    calls = [make_call(n) for n in range(300)]
    for call in calls:
        writer.submit_call(call)
        for event in make_events(call, 2):
            writer.submit_event(event)
    writer.submit_session(AgentSession(agent="1001", state="available", started_at=T0))
    await writer.stop()  # a SIGTERM during an outage
    lines = (journal_dir / "records.jsonl").read_text().splitlines()
    assert len(lines) == 300 * 3 + 1
    assert await stored_ids(storage) == []

    # The next start replays the journal before it returns.
    storage.up = True
    again = fast_writer(storage, journal_dir)
    await again.start()
    assert await stored_ids(storage) == [c.call_id for c in calls]
    assert len(await storage.call_events("call-00299")) == 2
    assert len(await storage.agent_sessions(T0, DAY)) == 1
    assert again.pending == 0
    await again.stop()


async def test_stop_flushes_everything(storage: FlakyStorage, tmp_path: Path) -> None:
    writer = RecordWriter(storage, tmp_path / "journal", flush_interval=3600, batch_size=100)
    await writer.start()
    calls = [make_call(n) for n in range(1234)]
    for call in calls:
        writer.submit_call(call)
    await writer.stop()
    assert await stored_ids(storage) == [c.call_id for c in calls]
    with pytest.raises(RuntimeError, match="stopping"):
        writer.submit_call(make_call(9999))


async def test_start_replays_a_journal_left_by_a_crash(
    storage: FlakyStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    lines = [json.dumps(to_json(make_call(n)), ensure_ascii=False) for n in range(3)]
    (journal_dir / "records.jsonl").write_text("\n".join(lines) + '\n{"kind":"ca')
    writer = fast_writer(storage, journal_dir)
    with caplog.at_level(logging.WARNING):
        await writer.start()
    assert "torn" in caplog.text
    assert await stored_ids(storage) == ["call-00000", "call-00001", "call-00002"]
    assert (journal_dir / "records.jsonl").stat().st_size == 0
    await writer.stop()


async def test_a_record_the_database_refuses_is_set_aside(
    storage: FlakyStorage, tmp_path: Path
) -> None:
    journal_dir = tmp_path / "journal"
    writer = fast_writer(storage, journal_dir)
    await writer.start()
    storage.poison.add("call-00003")
    for n in range(6):
        writer.submit_call(make_call(n))
    await eventually(lambda: _true(writer.pending == 0), "the good records to get through")
    await writer.stop()
    assert await stored_ids(storage) == [f"call-{n:05d}" for n in (0, 1, 2, 4, 5)]
    assert writer.rejected == 1
    (rejected,) = (journal_dir / "rejected.jsonl").read_text().splitlines()
    assert json.loads(rejected)["call_id"] == "call-00003"
    assert "varying(64)" in json.loads(rejected)["error"]


# ---- calls in flight at a crash ---------------------------------------------

_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from datetime import timedelta
    from pathlib import Path
    from acd.storage import RecordWriter, SqliteStorage
    from tests.test_storage import T0, make_call

    async def main(db, journal):
        storage = SqliteStorage(db)
        await storage.open()
        writer = RecordWriter(storage, Path(journal))
        await writer.start()
        for n in range(8):
            call = make_call(n, ended_at=None)
            writer.call_started(call.call_id, call.sip_call_id, call.arrived_at,
                                caller_number=call.caller_number, did="+3212345")
        for n in range(3):  # these three end properly
            writer.submit_call(make_call(n))
        writer.submit_call(make_call(5, ended_at=None))  # an update, not the end
        await writer.flush()
        print("ready", flush=True)
        time.sleep(60)  # wait-ok: the loop is stuck, as in a hung process, until SIGKILL

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_calls_in_flight_at_sigkill_are_closed_as_failed(
    storage: FlakyStorage, tmp_path: Path
) -> None:
    journal_dir = tmp_path / "journal"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(storage.inner.path), str(journal_dir)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ready = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 30)
        assert ready == "ready\n"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL

    writer = fast_writer(storage, journal_dir)
    await writer.start()
    recovered = await writer.recover_open_calls()
    assert sorted(r.call_id for r in recovered) == [f"call-{n:05d}" for n in range(3, 8)]
    for record in recovered:
        stored = await storage.get_call(record.call_id)
        assert stored == record
        assert stored.disposition == Disposition.FAILED
        assert stored.hangup_side == HangupSide.SYSTEM
        assert stored.ended_at is None
        assert stored.did == "+3212345"
        assert stored.caller_number == make_call(int(record.call_id[-5:])).caller_number
    for n in range(3):
        assert await storage.get_call(f"call-{n:05d}") == make_call(n)
    await writer.stop()

    # Closed for good: the next start finds nothing to recover.
    after = fast_writer(storage, journal_dir)
    await after.start()
    assert await after.recover_open_calls() == []
    await after.stop()


async def test_recovery_keeps_a_cdr_that_was_safe_before_the_crash(
    storage: FlakyStorage, tmp_path: Path
) -> None:
    # The crash fell between the CDR's commit and the "end" note (and tore
    # the note file's last line): the failed CDR must not replace the real one.
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    final = make_call(1)
    await storage.write_batch(calls=[final])
    note = {
        "op": "open",
        "call_id": final.call_id,
        "sip_call_id": "x",
        "arrived_at": final.arrived_at.isoformat(),
    }
    (journal_dir / "open-calls.jsonl").write_text(json.dumps(note) + '\n{"op":"open","call_')
    writer = fast_writer(storage, journal_dir)
    await writer.start()
    (recovered,) = await writer.recover_open_calls()
    assert recovered.call_id == final.call_id
    assert await storage.get_call(final.call_id) == final
    await writer.stop()


async def test_open_call_notes_are_compacted(storage: FlakyStorage, tmp_path: Path) -> None:
    writer = fast_writer(storage, tmp_path / "journal")
    await writer.start()
    for n in range(6000):
        call = make_call(n)
        writer.call_started(call.call_id, call.sip_call_id, call.arrived_at)
        writer.submit_call(call)
        if n % 500 == 0:
            await writer.flush()
    await writer.stop()
    # Every call ended, and its open/finished/end entries (18,000 in all)
    # were dropped along the way, once 10,000 had gathered.
    lines = (tmp_path / "journal" / "open-calls.jsonl").read_text().splitlines()
    assert len(lines) <= 10_000
    again = fast_writer(storage, tmp_path / "journal")
    await again.start()
    assert await again.recover_open_calls() == []
    await again.stop()


# ---- calls that ended just before a crash -----------------------------------

_ENDED_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from datetime import timedelta
    from pathlib import Path
    from acd.storage import RecordWriter, RecordingRecord, SqliteStorage
    from tests.test_storage import make_call, make_events

    async def main(db, journal):
        storage = SqliteStorage(db)
        await storage.open()
        # No batch reaches the database before the kill: only the open-call
        # log's group commit stands between these calls and their loss.
        writer = RecordWriter(storage, Path(journal), flush_interval=3600, batch_size=10**6)
        await writer.start()
        for n in range(6):
            call = make_call(n, ended_at=None)
            writer.call_started(call.call_id, call.sip_call_id, call.arrived_at)
        for n in range(3):  # these three end, the engine's way: events, recording, CDR
            call = make_call(n)
            for event in make_events(call):
                writer.submit_event(event)
            if n == 1:
                writer.submit_recording(RecordingRecord(
                    id=call.call_id, call_id=call.call_id, path="2024/05/01/x.wav",
                    duration_s=47.5, size_bytes=760_044, sha256="ab" * 32, channels=2,
                    created_at=call.ended_at))
            writer.submit_call(call)
        await writer.ends_on_disk()
        print("ready", writer.pending, flush=True)
        time.sleep(60)  # wait-ok: the loop is stuck, as in a hung process, until SIGKILL

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_calls_that_ended_before_sigkill_keep_their_records(
    storage: FlakyStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal_dir = tmp_path / "journal"
    child = subprocess.Popen(
        [sys.executable, "-c", _ENDED_CHILD, str(storage.inner.path), str(journal_dir)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ready = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 30)
        # 3 CDRs, 18 events and a recording were still in the writer's memory.
        assert ready == "ready 22\n"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    assert await stored_ids(storage) == []

    writer = fast_writer(storage, journal_dir)
    await writer.start()
    with caplog.at_level(logging.WARNING):
        failed = await writer.recover_open_calls()
    assert sorted(r.call_id for r in failed) == [f"call-{n:05d}" for n in range(3, 6)]
    assert "restored 3 calls" in caplog.text
    for n in range(3):
        call = make_call(n)
        assert await storage.get_call(call.call_id) == call
        events = await storage.call_events(call.call_id)
        expected = make_events(call)
        assert [(e.at, e.event, e.data) for e in events] == [
            (e.at, e.event, e.data) for e in expected
        ]
        # The writer's own numbering, as the kill found it: a replay would match these rows.
        assert len({e.seq for e in events}) == len(expected)
    recording = await storage.get_recording("call-00001")
    assert recording is not None and recording.size_bytes == 760_044
    await writer.stop()

    # Restored once, for good.
    after = fast_writer(storage, journal_dir)
    await after.start()
    assert await after.recover_open_calls() == []
    await after.stop()
    assert len(await storage.call_events("call-00000")) == 6


async def test_a_finished_entry_survives_compaction(tmp_path: Path) -> None:
    path = tmp_path / "open-calls.jsonl"
    call = make_call(1)
    log = OpenCallLog(path)
    await log.open()
    log.started(OpenCall(call.call_id, call.sip_call_id, call.arrived_at))
    log.started(OpenCall("call-00002", "2@x", call.arrived_at))
    log.finished(call.call_id, [to_json(call)])
    log.finished("not-open", [to_json(make_call(3))])  # ignored: never started
    await log.close()  # no "end": as if killed

    for _ in range(2):  # each open compacts the file: the records must survive both
        again = OpenCallLog(path)
        await again.open()
        assert set(again.orphans) == {call.call_id, "call-00002"}
        assert again.orphans[call.call_id].records == (to_json(call),)
        assert again.orphans["call-00002"].records == ()
        await again.close()
    assert len(path.read_text().splitlines()) == 3  # two opens, one finished


async def test_unreadable_final_records_fall_back_to_a_failed_cdr(
    storage: FlakyStorage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    call = make_call(4)
    entries = [
        {
            "op": "open",
            "call_id": call.call_id,
            "sip_call_id": call.sip_call_id,
            "arrived_at": call.arrived_at.isoformat(),
        },
        {"op": "finished", "call_id": call.call_id, "records": [{"kind": "call", "call_id": 1}]},
        {"op": "finished", "call_id": "never-opened", "records": []},
    ]
    (journal_dir / "open-calls.jsonl").write_text(
        "".join(json.dumps(entry) + "\n" for entry in entries)
    )
    writer = fast_writer(storage, journal_dir)
    await writer.start()
    (failed,) = await writer.recover_open_calls()
    assert failed.call_id == call.call_id
    assert failed.disposition == Disposition.FAILED
    assert "unreadable" in caplog.text and "never-opened" in caplog.text
    await writer.stop()


async def test_a_settled_call_leaves_nothing_to_restore(
    storage: FlakyStorage, tmp_path: Path
) -> None:
    # The normal path: once the batch is in the database the "end" entry
    # closes the call, and the writer forgets its events.
    writer = fast_writer(storage, tmp_path / "journal")
    await writer.start()
    call = make_call(7)
    writer.call_started(call.call_id, call.sip_call_id, call.arrived_at)
    for event in make_events(call):
        writer.submit_event(event)
    writer.submit_call(call)
    await writer.flush()
    assert writer._ending == {}
    await writer.stop()
    again = fast_writer(storage, tmp_path / "journal")
    await again.start()
    assert again._open_calls.orphans == {}
    await again.stop()
