"""Storage back ends: every test runs against SQLite and a real PostgreSQL.

The PostgreSQL server is a private cluster started once per session
(tests/pg.py); each test gets a fresh database in it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from acd.config import Config, StorageConfig
from acd.storage import (
    AgentSession,
    CallbackRecord,
    CallbackState,
    CallCursor,
    CallEvent,
    CallRecord,
    Disposition,
    EventType,
    HangupSide,
    PostgresStorage,
    RecordingRecord,
    RecordWriter,
    SchemaError,
    SqliteStorage,
    Storage,
    describe_storage,
    open_storage,
    storage_for,
)
from acd.storage._base import load_migrations

from .pg import PgCluster, pg_cluster  # noqa: F401 - the session fixture, used by name

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
PARIS = timezone(timedelta(hours=2))


def make_call(n: int, **changes: object) -> CallRecord:
    """Call ``n``: arrives n seconds after T0, answered, ended a minute later."""
    arrived = T0 + timedelta(seconds=n)
    fields: dict[str, object] = {
        "call_id": f"call-{n:05d}",
        "sip_call_id": f"{n}@trunk.example",
        "arrived_at": arrived,
        "disposition": Disposition.ANSWERED,
        "hangup_side": HangupSide.CALLER,
        "caller_number": f"+4420{n:07d}",
        "queue": "sales" if n % 2 == 0 else "support",
        "agent": f"10{n % 3:02d}",
        "queued_at": arrived + timedelta(seconds=5),
        "answered_at": arrived + timedelta(seconds=12),
        "ended_at": arrived + timedelta(seconds=60),
    }
    fields.update(changes)
    return CallRecord(**fields)  # type: ignore[arg-type]


def make_events(call: CallRecord, count: int = 6) -> list[CallEvent]:
    kinds = [
        EventType.ENTERQUEUE,
        EventType.RINGNOANSWER,
        EventType.RINGNOANSWER,
        EventType.CONNECT,
        EventType.COMPLETECALLER,
        EventType.TRANSFER,
    ]
    return [
        CallEvent(
            call_id=call.call_id,
            at=call.arrived_at + timedelta(seconds=i),
            event=kinds[i % len(kinds)],
            queue=call.queue,
            agent=call.agent,
            data={"position": i},
            seq=i,
        )
        for i in range(count)
    ]


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> PgCluster:
    result: PgCluster = request.getfixturevalue("pg_cluster")
    return result


@pytest.fixture(params=["sqlite", "postgres"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    backend: Storage
    if request.param == "sqlite":
        backend = SqliteStorage(tmp_path / "acd.db")
    else:
        backend = PostgresStorage(request.getfixturevalue("cluster").create_database())
    async with backend:
        yield backend


async def reopen(storage: Storage) -> Storage:
    """A second instance on the same database (closes the first)."""
    await storage.close()
    again = (
        SqliteStorage(storage.path)
        if isinstance(storage, SqliteStorage)
        else PostgresStorage(storage.url)  # type: ignore[attr-defined]
    )
    await again.open()
    return again


async def raw_execute(storage: Storage, sql: str) -> None:
    """Run SQL behind the storage's back (both dialects), to stage odd databases."""
    if isinstance(storage, SqliteStorage):
        with sqlite3.connect(storage.path) as db:
            db.execute(sql)
        db.close()
    else:
        assert isinstance(storage, PostgresStorage)
        connection = await asyncpg.connect(storage.url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()


# ---- round trips -----------------------------------------------------------


async def test_full_call_record_round_trips(storage: Storage) -> None:
    call = make_call(
        1,
        caller_name="Zoë Ångström 李小龍 🎧",
        did="+442071234567",
        trunk="carrier-a",
        route="main-ivr",
        ivr_path=["welcome", "sales", "confirm"],
        digits="1*2#",
        variables={"account": "A-17", "lang": "fr", "note": "naïve ☎"},
        ring_attempts=3,
        arrived_at=datetime(2024, 5, 1, 11, 0, 0, 123456, tzinfo=PARIS),
        queued_at=datetime(2024, 5, 1, 9, 0, 5, tzinfo=UTC),
        answered_at=datetime(2024, 5, 1, 9, 0, 12, 999999, tzinfo=UTC),
        ended_at=datetime(2024, 5, 1, 9, 3, 0, tzinfo=UTC),
        disposition=Disposition.TRANSFERRED,
        hangup_side=HangupSide.AGENT,
        sip_cause=487,
        survey_score=5,
        recording_id="rec-1",
        wrap_up_code="sale",
        wrap_up_s=12.345,
    )
    await storage.write_batch(calls=[call])
    stored = await storage.get_call(call.call_id)
    assert stored == call
    assert stored is not None
    assert stored.arrived_at.utcoffset() == timedelta(0)
    assert stored.arrived_at == datetime(2024, 5, 1, 9, 0, 0, 123456, tzinfo=UTC)


async def test_sparse_call_record_round_trips(storage: Storage) -> None:
    call = CallRecord(
        call_id=str(uuid.uuid4()),
        sip_call_id="abc@10.0.0.1",
        arrived_at=T0,
        disposition=Disposition.FAILED,
        hangup_side=HangupSide.SYSTEM,
    )
    await storage.write_batch(calls=[call])
    assert await storage.get_call(call.call_id) == call
    assert await storage.get_call("no-such-call") is None


async def test_events_round_trip_in_order(storage: Storage) -> None:
    call = make_call(2)
    events = make_events(call)
    same_instant = [
        CallEvent(call_id=call.call_id, at=T0, event=EventType.RINGNOANSWER, agent=a, seq=s)
        for s, a in ((11, "1002"), (10, "1001"))
    ]
    agent_event = CallEvent(
        call_id=None, at=T0, event=EventType.PAUSE, agent="1001", data={"reason": "lunch"}
    )
    nested = CallEvent(
        call_id=call.call_id,
        at=T0 + timedelta(hours=1),
        event=EventType.CALLBACK,
        data={"number": "+33 6 12 34 56 78", "tries": [1, 2], "ok": True, "who": "Ünïcode"},
    )
    await storage.write_batch(
        calls=[call], events=[*reversed(events), *same_instant, agent_event, nested]
    )
    stored = await storage.call_events(call.call_id)
    assert stored == [*reversed(same_instant), *events, nested]
    assert await storage.call_events("no-such-call") == []


async def test_recordings_and_sessions_round_trip(storage: Storage) -> None:
    recording = RecordingRecord(
        id="rec-1",
        call_id="call-00001",
        path="/var/lib/acd/recordings/2024/05/01/rec-1.wav",
        duration_s=61.25,
        size_bytes=981_234,
        sha256="ab" * 32,
        channels=2,
        created_at=datetime(2024, 5, 1, 11, 0, tzinfo=PARIS),
    )
    sessions = [
        AgentSession(agent="1001", state="available", started_at=T0, ended_at=T0 + timedelta(1)),
        AgentSession(
            agent="1002", state="paused", reason="café", started_at=T0 + timedelta(minutes=1)
        ),
    ]
    await storage.write_batch(recordings=[recording], sessions=sessions)
    assert await storage.get_recording("rec-1") == recording
    assert await storage.get_recording("rec-2") is None
    assert await storage.agent_sessions(T0, T0 + timedelta(hours=1)) == sessions
    assert await storage.agent_sessions(T0, T0 + timedelta(hours=1), agent="1002") == sessions[1:]


def make_callback(n: int, **changes: object) -> CallbackRecord:
    fields: dict[str, object] = {
        "call_id": f"call-{n:05d}",
        "queue": "sales",
        "state": CallbackState.WAITING,
        "requested_at": T0 + timedelta(minutes=n),
        "requested_by": "key",
        "updated_at": T0 + timedelta(minutes=n),
        "queued_at": T0 + timedelta(minutes=n, seconds=-40),
        "priority": 2,
        "skills": {"fr": 3},
        "invite": "SU5WSVRF",
        "source": "UDP 127.0.0.1 5062",
        "call": {"caller": "+33 1 23 45", "ivr_path": ["menu"], "variables": {"é": "ü"}},
    }
    fields.update(changes)
    return CallbackRecord(**fields)  # type: ignore[arg-type]


async def test_callbacks_round_trip_the_latest_state_winning(storage: Storage) -> None:
    first, second = make_callback(1), make_callback(2)
    retried = dataclasses.replace(
        first, attempts=1, agent="1001", due_at=T0 + timedelta(hours=1), updated_at=T0
    )
    await storage.write_batch(callbacks=[first, second, retried])
    assert await storage.callbacks() == [retried, second]
    assert await storage.get_callback("call-00001") == retried
    assert await storage.get_callback("nope") is None
    done = dataclasses.replace(second, state=CallbackState.DONE)
    await storage.write_batch(callbacks=[done])
    await storage.write_batch(callbacks=[done])  # a replayed batch changes nothing
    assert await storage.callbacks([CallbackState.WAITING]) == [retried]
    assert await storage.callbacks([CallbackState.DONE, CallbackState.FAILED]) == [done]
    assert await storage.callbacks(limit=1) == [retried]


async def test_naive_datetimes_are_refused(storage: Storage) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_call(1, ended_at=datetime(2024, 5, 1, 9, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        await storage.list_calls(datetime(2024, 5, 1), T0)


# ---- idempotence -----------------------------------------------------------


async def test_replayed_batches_do_not_duplicate(storage: Storage) -> None:
    calls = [make_call(n) for n in range(10)]
    events = [e for c in calls for e in make_events(c)]
    recording = RecordingRecord(
        id="r",
        call_id="c",
        path="/r.wav",
        duration_s=1.0,
        size_bytes=8,
        sha256="0",
        channels=2,
        created_at=T0,
    )
    session = AgentSession(agent="1001", state="available", started_at=T0)
    for _ in range(3):
        await storage.write_batch(calls, events, [recording], [session])
    # The same record twice in one batch is one row too (PostgreSQL would
    # refuse to upsert a row twice in a statement if the batch were not reduced).
    await storage.write_batch(calls + calls, events + events, [recording] * 2, [session] * 2)
    listed = await storage.list_calls(T0, T0 + timedelta(days=1), limit=1000)
    assert [c.call_id for c in listed] == [c.call_id for c in calls]
    for call in calls:
        assert len(await storage.call_events(call.call_id)) == 6
    assert len(await storage.agent_sessions(T0, T0 + timedelta(days=1))) == 1


async def test_latest_record_wins_but_an_ended_one_is_kept(storage: Storage) -> None:
    early = make_call(1, ended_at=None, answered_at=None, disposition=Disposition.ABANDONED)
    final = make_call(1, survey_score=4)
    await storage.write_batch(calls=[early])
    await storage.write_batch(calls=[final])
    assert await storage.get_call(final.call_id) == final
    # A stale replay of the early record, or a recovered "failed" CDR, cannot
    # reopen the finished one...
    await storage.write_batch(calls=[early])
    assert await storage.get_call(final.call_id) == final
    # ...but a corrected final one replaces it, in separate batches or in one.
    corrected = make_call(1, survey_score=2)
    await storage.write_batch(calls=[corrected])
    assert await storage.get_call(final.call_id) == corrected
    await storage.write_batch(calls=[final, early])
    assert await storage.get_call(final.call_id) == final
    ended = AgentSession(agent="a", state="paused", started_at=T0, ended_at=T0 + timedelta(1))
    await storage.write_batch(sessions=[ended])
    await storage.write_batch(sessions=[AgentSession(agent="a", state="paused", started_at=T0)])
    assert await storage.agent_sessions(T0, T0 + timedelta(1)) == [ended]


# ---- list_calls ------------------------------------------------------------


async def test_list_calls_filters(storage: Storage) -> None:
    calls = [make_call(n) for n in range(30)]
    calls[7] = make_call(7, disposition=Disposition.ABANDONED, agent=None, answered_at=None)
    calls[8] = make_call(8, caller_number="+15551234")
    await storage.write_batch(calls=calls)
    day = T0 + timedelta(days=1)

    async def ids(**filters: object) -> list[str]:
        found = await storage.list_calls(T0, day, limit=100, **filters)  # type: ignore[arg-type]
        return [c.call_id for c in found]

    assert await ids() == [c.call_id for c in calls]
    assert await ids(queue="sales") == [c.call_id for c in calls if c.queue == "sales"]
    assert await ids(agent="1001") == [c.call_id for c in calls if c.agent == "1001"]
    assert await ids(disposition=Disposition.ABANDONED) == ["call-00007"]
    assert await ids(disposition="abandoned") == ["call-00007"]
    assert await ids(caller="+15551234") == ["call-00008"]
    assert await ids(queue="sales", agent="1000") == [
        c.call_id for c in calls if c.queue == "sales" and c.agent == "1000"
    ]
    assert await ids(queue="nobody") == []
    # since is inclusive, until exclusive: [since, until).
    window = await storage.list_calls(T0 + timedelta(seconds=5), T0 + timedelta(seconds=10))
    assert [c.call_id for c in window] == [f"call-{n:05d}" for n in range(5, 10)]
    with pytest.raises(ValueError, match="limit"):
        await storage.list_calls(T0, day, limit=0)


async def test_list_calls_pages_by_keyset(storage: Storage) -> None:
    # 25 calls, several arriving at the same instant: ties are ordered by call_id.
    calls = [make_call(n, arrived_at=T0 + timedelta(seconds=n // 4)) for n in range(25)]
    await storage.write_batch(calls=list(reversed(calls)))
    day = T0 + timedelta(days=1)
    pages: list[list[CallRecord]] = []
    after: CallRecord | CallCursor | None = None
    while page := await storage.list_calls(T0, day, limit=7, after=after):
        pages.append(page)
        # Alternate between the record itself and an encoded cursor, as an HTTP API would.
        after = (
            page[-1] if len(pages) % 2 else CallCursor.decode(CallCursor.after(page[-1]).encode())
        )
    assert [len(p) for p in pages] == [7, 7, 7, 4]
    assert [c for p in pages for c in p] == calls
    # A call arriving later lands on a later page and does not shift earlier ones.
    await storage.write_batch(calls=[make_call(99, arrived_at=T0 + timedelta(minutes=5))])
    tail = await storage.list_calls(T0, day, limit=7, after=calls[-1])
    assert [c.call_id for c in tail] == ["call-00099"]
    with pytest.raises(ValueError, match="cursor"):
        CallCursor.decode("garbage")


# ---- recordings retention --------------------------------------------------


async def test_delete_recordings_before(storage: Storage) -> None:
    recordings = [
        RecordingRecord(
            id=f"rec-{day}",
            call_id=f"call-{day}",
            path=f"/rec/{day}.wav",
            duration_s=30.0,
            size_bytes=480_044,
            sha256=f"{day:064x}",
            channels=2,
            created_at=T0 + timedelta(days=day),
        )
        for day in range(10)
    ]
    await storage.write_batch(recordings=recordings)
    cutoff = T0 + timedelta(days=4)
    assert await storage.delete_recordings_before(cutoff) == recordings[:4]
    assert await storage.delete_recordings_before(cutoff) == []
    assert await storage.get_recording("rec-3") is None
    assert await storage.get_recording("rec-4") == recordings[4]


# ---- migrations and lifecycle ----------------------------------------------


async def test_migrations_apply_once(storage: Storage) -> None:
    latest = load_migrations(storage.dialect.name)[-1].version
    assert latest >= 2
    assert await storage.schema_version() == latest
    await storage.write_batch(calls=[make_call(1)])
    again = await reopen(storage)
    try:
        assert await again.schema_version() == latest
        assert await again.get_call("call-00001") == make_call(1)
        await again.open()  # opening an open storage changes nothing
    finally:
        await again.close()
    await again.close()  # nor does closing twice


async def test_a_newer_schema_is_a_clear_error(storage: Storage) -> None:
    latest = load_migrations(storage.dialect.name)[-1].version
    await raw_execute(
        storage,
        "INSERT INTO schema_migrations (version, name, applied_at) "
        f"VALUES ({latest + 1}, 'x', '2030-01-01')",
    )
    expected = rf"version {latest + 1}.*knows only up to {latest}.*newer release"
    with pytest.raises(SchemaError, match=expected):
        await reopen(storage)


async def test_ping(storage: Storage) -> None:
    assert await storage.ping() is True
    await storage.close()
    assert await storage.ping() is False


def test_storage_for_picks_the_back_end(tmp_path: Path) -> None:
    default = storage_for(Config(data_dir=tmp_path))
    assert isinstance(default, SqliteStorage)
    assert default.path == tmp_path / "acd.db"
    sqlite = storage_for(Config(storage=StorageConfig(url=f"sqlite:///{tmp_path}/x.db")))
    assert isinstance(sqlite, SqliteStorage)
    assert sqlite.path == tmp_path / "x.db"
    for url in ("postgresql://u:secret@db:5432/acd", "postgres://db/acd"):
        postgres = storage_for(Config(storage=StorageConfig(url=url)))
        assert isinstance(postgres, PostgresStorage)
        assert "secret" not in repr(postgres)


def test_the_storage_is_described_for_the_log_without_its_password(tmp_path: Path) -> None:
    assert describe_storage(Config(data_dir=tmp_path)) == f"sqlite:///{tmp_path}/acd.db"
    for url, shown in (
        ("postgresql://acd:s3cret-pw@postgres:5432/acd", "postgresql://acd@postgres:5432/acd"),
        (
            "postgresql://acd:p%40ss@db/acd?sslmode=require",
            "postgresql://acd@db/acd?sslmode=require",
        ),
        ("postgres://db/acd", "postgres://db/acd"),
    ):
        assert describe_storage(Config(storage=StorageConfig(url=url))) == shown


async def test_open_storage_creates_the_default_file(tmp_path: Path) -> None:
    storage = await open_storage(Config(data_dir=tmp_path / "data"))
    try:
        assert await storage.ping()
        assert (tmp_path / "data" / "acd.db").is_file()
    finally:
        await storage.close()


async def test_sqlite_does_not_block_the_loop(tmp_path: Path) -> None:
    """A big write runs on the worker thread while the loop keeps ticking."""
    async with SqliteStorage(tmp_path / "acd.db") as storage:
        calls = [make_call(n) for n in range(3000)]
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0)
                ticks += 1

        ticker = asyncio.create_task(tick())
        await storage.write_batch(calls, [e for c in calls for e in make_events(c)])
        ticker.cancel()
        assert ticks > 10


# ---- an outage -------------------------------------------------------------


async def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def test_postgres_outage_loses_nothing(cluster: PgCluster, tmp_path: Path) -> None:
    storage = PostgresStorage(cluster.create_database(), connect_timeout=1.0)
    await storage.open()
    writer = RecordWriter(
        storage, tmp_path / "journal", flush_interval=0.02, retry_initial=0.05, retry_max=0.2
    )
    await writer.start()
    before = [make_call(n) for n in range(50)]
    during = [make_call(n) for n in range(50, 250)]
    try:
        for call in before:
            writer.submit_call(call)
        await writer.flush()
        assert writer.pending == 0

        cluster.stop()
        for call in during:
            writer.call_started(call.call_id, call.sip_call_id, call.arrived_at)
            for event in make_events(call):
                writer.submit_event(event)
            writer.submit_call(call)
            await asyncio.sleep(0)
        await writer.flush()  # settled in the journal: the database is down
        assert writer.journaled == 200 * 7
        assert writer.write_failures > 0
    finally:
        if not cluster.running():
            cluster.start()

    journal = writer.journal_dir / "records.jsonl"

    async def all_in() -> bool:
        return writer.pending == 0 and journal.stat().st_size == 0

    await wait_until(all_in, 20, "the journal to be replayed and emptied")
    await writer.stop()

    connection = await asyncpg.connect(storage.url)
    try:
        calls = await connection.fetchval("SELECT count(*) FROM calls")
        events = await connection.fetch(
            "SELECT call_id, count(*) AS n FROM call_events GROUP BY call_id"
        )
    finally:
        await connection.close()
    assert calls == 250
    assert len(events) == 200
    assert {row["n"] for row in events} == {6}
    for call in (during[0], during[-1]):
        assert await storage.get_call(call.call_id) == call
    await storage.close()
