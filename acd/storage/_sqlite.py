"""The embedded back end: one SQLite file in WAL mode, driven from one worker thread.

sqlite3 blocks, so every call runs on a single dedicated thread (a
one-worker executor): the event loop never waits on the disk, and the one
connection is only ever touched by the thread that made it. WAL lets other
processes (a backup, the sqlite3 shell) read while the engine writes;
``synchronous=FULL`` because a CDR acknowledged as written must survive a
power cut, and batching keeps the fsync count low.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ._base import (
    CALL_COLUMNS,
    CALLBACK_COLUMNS,
    EVENT_COLUMNS,
    RECORDING_COLUMNS,
    SESSION_COLUMNS,
    CallCursor,
    Storage,
    StorageError,
    callback_row,
    check_page,
    latest_callbacks,
    latest_calls,
    latest_events,
    latest_recordings,
    latest_sessions,
    list_calls_filters,
    load_migrations,
    pending_migrations,
    require_aware,
    upsert_sql,
)
from ._model import (
    AgentSession,
    CallbackRecord,
    CallEvent,
    CallRecord,
    Disposition,
    EventType,
    HangupSide,
    RecordingRecord,
    dump_json,
    format_time,
    parse_time,
)
from ._reports import SQLITE

__all__ = ["SqliteStorage"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
Row = tuple[Any, ...]


def _values(count: int) -> str:
    return f"VALUES ({', '.join('?' * count)})"


_UPSERT_CALL = upsert_sql(
    "calls", CALL_COLUMNS, ("call_id",), _values(len(CALL_COLUMNS)), keep_ended=True
)
_INSERT_EVENT = upsert_sql(
    "call_events",
    EVENT_COLUMNS,
    ("call_id", "at", "event", "seq"),
    _values(len(EVENT_COLUMNS)),
    replace=False,
)
_UPSERT_RECORDING = upsert_sql(
    "recordings", RECORDING_COLUMNS, ("id",), _values(len(RECORDING_COLUMNS))
)
_UPSERT_CALLBACK = upsert_sql(
    "callbacks", CALLBACK_COLUMNS, ("call_id",), _values(len(CALLBACK_COLUMNS))
)
_UPSERT_SESSION = upsert_sql(
    "agent_sessions",
    SESSION_COLUMNS,
    ("agent", "started_at"),
    _values(len(SESSION_COLUMNS)),
    keep_ended=True,
)
_SELECT_CALLS = f"SELECT {', '.join(CALL_COLUMNS)} FROM calls"
_SELECT_RECORDINGS = f"SELECT {', '.join(RECORDING_COLUMNS)} FROM recordings"


def _call_row(call: CallRecord) -> Row:
    return (
        call.call_id,
        call.sip_call_id,
        call.caller_number,
        call.caller_name,
        call.did,
        call.trunk,
        call.route,
        dump_json(call.ivr_path),
        call.digits,
        dump_json(call.variables),
        call.queue,
        call.agent,
        call.ring_attempts,
        format_time(call.arrived_at),
        format_time(call.queued_at),
        format_time(call.answered_at),
        format_time(call.ended_at),
        call.disposition.value,
        call.hangup_side.value,
        call.sip_cause,
        call.survey_score,
        call.recording_id,
        call.wrap_up_code,
        call.wrap_up_s,
    )


def _call(row: Row) -> CallRecord:
    arrived_at = parse_time(row[13])
    assert arrived_at is not None
    return CallRecord(
        call_id=row[0],
        sip_call_id=row[1],
        caller_number=row[2],
        caller_name=row[3],
        did=row[4],
        trunk=row[5],
        route=row[6],
        ivr_path=json.loads(row[7]),
        digits=row[8],
        variables=json.loads(row[9]),
        queue=row[10],
        agent=row[11],
        ring_attempts=row[12],
        arrived_at=arrived_at,
        queued_at=parse_time(row[14]),
        answered_at=parse_time(row[15]),
        ended_at=parse_time(row[16]),
        disposition=Disposition(row[17]),
        hangup_side=HangupSide(row[18]),
        sip_cause=row[19],
        survey_score=row[20],
        recording_id=row[21],
        wrap_up_code=row[22],
        wrap_up_s=row[23],
    )


def _event_row(event: CallEvent) -> Row:
    return (
        event.call_id or "",
        format_time(event.at),
        event.event.value,
        event.seq,
        event.queue,
        event.agent,
        dump_json(event.data),
    )


def _event(row: Row) -> CallEvent:
    at = parse_time(row[1])
    assert at is not None
    return CallEvent(
        call_id=row[0] or None,
        at=at,
        event=EventType(row[2]),
        seq=row[3],
        queue=row[4],
        agent=row[5],
        data=json.loads(row[6]),
    )


def _recording_row(recording: RecordingRecord) -> Row:
    return (
        recording.id,
        recording.call_id,
        recording.path,
        recording.duration_s,
        recording.size_bytes,
        recording.sha256,
        recording.channels,
        format_time(recording.created_at),
    )


def _recording(row: Row) -> RecordingRecord:
    created_at = parse_time(row[7])
    assert created_at is not None
    return RecordingRecord(
        id=row[0],
        call_id=row[1],
        path=row[2],
        duration_s=row[3],
        size_bytes=row[4],
        sha256=row[5],
        channels=row[6],
        created_at=created_at,
    )


def _session_row(session: AgentSession) -> Row:
    return (
        session.agent,
        session.state,
        session.reason,
        format_time(session.started_at),
        format_time(session.ended_at),
    )


def _rollback(db: sqlite3.Connection) -> None:
    # Some errors (SQLITE_FULL, SQLITE_IOERR) have already rolled back, and a
    # second ROLLBACK would raise over the error that matters.
    if db.in_transaction:
        db.execute("ROLLBACK")


def _session(row: Row) -> AgentSession:
    started_at = parse_time(row[3])
    assert started_at is not None
    return AgentSession(
        agent=row[0],
        state=row[1],
        reason=row[2],
        started_at=started_at,
        ended_at=parse_time(row[4]),
    )


def _statements(script: str) -> Iterator[str]:
    """Split a migration file into statements (sqlite3 runs one per execute).

    ``executescript`` would run them all, but it commits first, and a
    migration must share one transaction with its schema_migrations row.
    """
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""


class SqliteStorage(Storage):
    """Storage in one SQLite file, for a single engine with no database server to run.

    Every operation is queued to one worker thread, so operations run one at
    a time in the order they were called.
    """

    dialect = SQLITE

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SqliteStorage({str(self.path)!r})"

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        if self._executor is None:
            raise StorageError(f"{self!r} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="acd-sqlite")
        try:
            await self._run(self._open)
        except BaseException:
            await self.close()
            raise

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit BEGIN/COMMIT, never implicit.
        db = sqlite3.connect(self.path, isolation_level=None)
        self._db = db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        # Another process holding the write lock (a backup) makes us wait, not fail.
        db.execute("PRAGMA busy_timeout=5000")
        self._migrate(db)

    def _migrate(self, db: sqlite3.Connection) -> None:
        known = load_migrations("sqlite")
        # IMMEDIATE takes the write lock now, so two processes opening one
        # file cannot both decide to apply the same migration.
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            applied = [v for (v,) in db.execute("SELECT version FROM schema_migrations")]
            for migration in pending_migrations(applied, known):
                for statement in _statements(migration.sql):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) "
                    "VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    (migration.version, migration.name),
                )
                _log.info(
                    "%s: applied migration %04d_%s", self.path, migration.version, migration.name
                )
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        await asyncio.get_running_loop().run_in_executor(executor, self._close)
        executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageError(f"{self!r} is not open")
        return self._db

    async def write_batch(
        self,
        calls: Sequence[CallRecord] = (),
        events: Sequence[CallEvent] = (),
        recordings: Sequence[RecordingRecord] = (),
        sessions: Sequence[AgentSession] = (),
        callbacks: Sequence[CallbackRecord] = (),
    ) -> None:
        # Rows are built here, on the loop, so the thread never reads objects
        # that the caller might still be changing (ivr_path is a list).
        work = [
            (_UPSERT_CALL, [_call_row(c) for c in latest_calls(calls)]),
            (_INSERT_EVENT, [_event_row(e) for e in latest_events(events)]),
            (_UPSERT_RECORDING, [_recording_row(r) for r in latest_recordings(recordings)]),
            (_UPSERT_SESSION, [_session_row(s) for s in latest_sessions(sessions)]),
            (_UPSERT_CALLBACK, [callback_row(c) for c in latest_callbacks(callbacks)]),
        ]
        await self._run(self._write, [(sql, rows) for sql, rows in work if rows])

    def _write(self, work: list[tuple[str, list[Row]]]) -> None:
        if not work:
            return
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in work:
                db.executemany(sql, rows)
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    def _fetch(self, sql: str, params: Sequence[object]) -> list[Row]:
        return self._connection().execute(sql, params).fetchall()

    def _change(
        self, statements: Sequence[tuple[str, Sequence[object]]], guarded: bool = False
    ) -> list[int]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            counts: list[int] = []
            for sql, params in statements:
                counts.append(db.execute(sql, params).rowcount)
                if guarded and counts == [0]:
                    _rollback(db)
                    return counts
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        return counts

    async def _execute(self, sql: str, params: Sequence[object]) -> int:
        return (await self._run(self._change, [(sql, tuple(params))]))[0]

    async def _execute_all(
        self, statements: Sequence[tuple[str, Sequence[object]]], guarded: bool
    ) -> list[int]:
        return await self._run(self._change, list(statements), guarded)

    async def get_call(self, call_id: str) -> CallRecord | None:
        rows = await self._run(self._fetch, f"{_SELECT_CALLS} WHERE call_id = ?", (call_id,))
        return _call(rows[0]) if rows else None

    async def call_events(self, call_id: str) -> list[CallEvent]:
        sql = (
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM call_events WHERE call_id = ? ORDER BY at, seq"
        )
        return [_event(row) for row in await self._run(self._fetch, sql, (call_id,))]

    async def list_calls(
        self,
        since: datetime,
        until: datetime,
        *,
        queue: str | None = None,
        agent: str | None = None,
        disposition: Disposition | None = None,
        caller: str | None = None,
        agents: Collection[str] | None = None,
        limit: int = 100,
        after: CallCursor | CallRecord | None = None,
    ) -> list[CallRecord]:
        require_aware(since=since, until=until)
        cursor = check_page(limit, after)
        where = ["arrived_at >= ?", "arrived_at < ?"]
        params: list[object] = [format_time(since), format_time(until)]
        for column, value in list_calls_filters(queue, agent, disposition, caller):
            where.append(f"{column} = ?")
            params.append(value)
        if agents is not None:
            where.append(f"agent IN ({', '.join('?' for _ in agents)})" if agents else "0 = 1")
            params += list(agents)
        if cursor is not None:
            where.append("(arrived_at, call_id) > (?, ?)")
            params += [format_time(cursor.arrived_at), cursor.call_id]
        sql = f"{_SELECT_CALLS} WHERE {' AND '.join(where)} ORDER BY arrived_at, call_id LIMIT ?"
        params.append(limit)
        return [_call(row) for row in await self._run(self._fetch, sql, params)]

    async def delete_recordings_before(self, when: datetime) -> list[RecordingRecord]:
        require_aware(when=when)
        rows = await self._run(self._delete_recordings, format_time(when))
        return [_recording(row) for row in rows]

    def _delete_recordings(self, before: str) -> list[Row]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            rows = db.execute(
                f"{_SELECT_RECORDINGS} WHERE created_at < ? ORDER BY created_at, id", (before,)
            ).fetchall()
            db.execute("DELETE FROM recordings WHERE created_at < ?", (before,))
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        return rows

    async def get_recording(self, recording_id: str) -> RecordingRecord | None:
        rows = await self._run(self._fetch, f"{_SELECT_RECORDINGS} WHERE id = ?", (recording_id,))
        return _recording(rows[0]) if rows else None

    async def agent_sessions(
        self, since: datetime, until: datetime, *, agent: str | None = None
    ) -> list[AgentSession]:
        require_aware(since=since, until=until)
        where = "started_at >= ? AND started_at < ?"
        params: list[object] = [format_time(since), format_time(until)]
        if agent is not None:
            where += " AND agent = ?"
            params.append(agent)
        sql = (
            f"SELECT {', '.join(SESSION_COLUMNS)} FROM agent_sessions WHERE {where} "
            "ORDER BY started_at, agent"
        )
        return [_session(row) for row in await self._run(self._fetch, sql, params)]

    async def _fetch_rows(self, sql: str, params: Sequence[object]) -> list[Sequence[Any]]:
        return list(await self._run(self._fetch, sql, params))

    async def ping(self) -> bool:
        try:
            rows = await self._run(self._fetch, "SELECT 1", ())
        except Exception:
            return False
        return rows == [(1,)]

    async def schema_version(self) -> int:
        rows = await self._run(self._fetch, "SELECT max(version) FROM schema_migrations", ())
        return int(rows[0][0] or 0)
