"""The server back end: PostgreSQL through an asyncpg pool.

A batch is written with one ``INSERT ... SELECT FROM unnest(...)`` per table,
each column sent as one array: a round trip per table instead of one per
row, which is what lets one engine write thousands of CDRs a second. JSON
travels as text and is cast to jsonb in SQL, so no codec is involved on the
way in; on the way out a jsonb codec set on each connection decodes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg  # type: ignore[import-untyped]

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
)
from ._reports import POSTGRES

__all__ = ["PostgresStorage"]

_log = logging.getLogger(__name__)

# pg_advisory_xact_lock key: engines starting together migrate one at a time.
_MIGRATION_LOCK = 0x61636400  # "acd\0"

_CALL_TYPES = {
    "ivr_path": "jsonb",
    "variables": "jsonb",
    "ring_attempts": "integer",
    "arrived_at": "timestamptz",
    "queued_at": "timestamptz",
    "answered_at": "timestamptz",
    "ended_at": "timestamptz",
    "sip_cause": "integer",
    "survey_score": "integer",
    "wrap_up_s": "double precision",
}
_EVENT_TYPES = {"at": "timestamptz", "seq": "bigint", "data": "jsonb"}
_RECORDING_TYPES = {
    "duration_s": "double precision",
    "size_bytes": "bigint",
    "channels": "integer",
    "created_at": "timestamptz",
}
_SESSION_TYPES = {"started_at": "timestamptz", "ended_at": "timestamptz"}


def _unnest(columns: Sequence[str], types: dict[str, str]) -> str:
    """``SELECT ... FROM unnest($1::t[], ...)``: one array parameter per column.

    jsonb columns arrive as text[] (the JSON is encoded by us) and are cast
    per element in the SELECT list.
    """
    arrays = []
    selected = []
    for index, column in enumerate(columns, start=1):
        kind = types.get(column, "text")
        arrays.append(f"${index}::{'text' if kind == 'jsonb' else kind}[]")
        selected.append(f"{column}::jsonb" if kind == "jsonb" else column)
    return (
        f"SELECT {', '.join(selected)} FROM unnest({', '.join(arrays)}) "
        f"AS batch ({', '.join(columns)})"
    )


_UPSERT_CALLS = upsert_sql(
    "calls", CALL_COLUMNS, ("call_id",), _unnest(CALL_COLUMNS, _CALL_TYPES), keep_ended=True
)
_INSERT_EVENTS = upsert_sql(
    "call_events",
    EVENT_COLUMNS,
    ("call_id", "at", "event", "seq"),
    _unnest(EVENT_COLUMNS, _EVENT_TYPES),
    replace=False,
)
_UPSERT_RECORDINGS = upsert_sql(
    "recordings", RECORDING_COLUMNS, ("id",), _unnest(RECORDING_COLUMNS, _RECORDING_TYPES)
)
_UPSERT_SESSIONS = upsert_sql(
    "agent_sessions",
    SESSION_COLUMNS,
    ("agent", "started_at"),
    _unnest(SESSION_COLUMNS, _SESSION_TYPES),
    keep_ended=True,
)
_UPSERT_CALLBACKS = upsert_sql(
    "callbacks", CALLBACK_COLUMNS, ("call_id",), _unnest(CALLBACK_COLUMNS, {})
)
_SELECT_CALLS = f"SELECT {', '.join(CALL_COLUMNS)} FROM calls"
_SELECT_RECORDINGS = f"SELECT {', '.join(RECORDING_COLUMNS)} FROM recordings"


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Turn rows into one list per column, as unnest wants them."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def _call_row(call: CallRecord) -> tuple[Any, ...]:
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
        call.arrived_at,
        call.queued_at,
        call.answered_at,
        call.ended_at,
        call.disposition.value,
        call.hangup_side.value,
        call.sip_cause,
        call.survey_score,
        call.recording_id,
        call.wrap_up_code,
        call.wrap_up_s,
    )


def _call(row: Any) -> CallRecord:
    return CallRecord(
        call_id=row["call_id"],
        sip_call_id=row["sip_call_id"],
        caller_number=row["caller_number"],
        caller_name=row["caller_name"],
        did=row["did"],
        trunk=row["trunk"],
        route=row["route"],
        ivr_path=row["ivr_path"],
        digits=row["digits"],
        variables=row["variables"],
        queue=row["queue"],
        agent=row["agent"],
        ring_attempts=row["ring_attempts"],
        arrived_at=row["arrived_at"],
        queued_at=row["queued_at"],
        answered_at=row["answered_at"],
        ended_at=row["ended_at"],
        disposition=Disposition(row["disposition"]),
        hangup_side=HangupSide(row["hangup_side"]),
        sip_cause=row["sip_cause"],
        survey_score=row["survey_score"],
        recording_id=row["recording_id"],
        wrap_up_code=row["wrap_up_code"],
        wrap_up_s=row["wrap_up_s"],
    )


def _event_row(event: CallEvent) -> tuple[Any, ...]:
    return (
        event.call_id or "",
        event.at,
        event.event.value,
        event.seq,
        event.queue,
        event.agent,
        dump_json(event.data),
    )


def _recording_row(recording: RecordingRecord) -> tuple[Any, ...]:
    return (
        recording.id,
        recording.call_id,
        recording.path,
        recording.duration_s,
        recording.size_bytes,
        recording.sha256,
        recording.channels,
        recording.created_at,
    )


def _recording(row: Any) -> RecordingRecord:
    return RecordingRecord(**{column: row[column] for column in RECORDING_COLUMNS})


def _session_row(session: AgentSession) -> tuple[Any, ...]:
    return (session.agent, session.state, session.reason, session.started_at, session.ended_at)


async def _prepare_connection(connection: Any) -> None:
    await connection.set_type_codec(
        "jsonb", encoder=dump_json, decoder=json.loads, schema="pg_catalog", format="text"
    )


class PostgresStorage(Storage):
    """Storage in PostgreSQL, for several engines or a centre that reports from SQL.

    ``url`` is a libpq-style URL (``postgresql://user:password@host:5432/db``).
    Queries time out after ``command_timeout`` seconds, so a database that
    stops answering turns into an error the RecordWriter can journal, not a
    write that hangs forever.

    ``min_size`` is 0: connections are made when needed and kept while in
    use. With a floor, asyncpg reconnects in the background during an
    outage and logs a traceback at every attempt; without one the
    RecordWriter alone retries, and logs the outage once.
    """

    dialect = POSTGRES

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 0,
        max_size: int = 4,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self._pool_options = {
            "min_size": min_size,
            "max_size": max_size,
            "timeout": connect_timeout,
            "command_timeout": command_timeout,
        }
        self._connect_timeout = connect_timeout
        self._pool: Any = None

    def __repr__(self) -> str:
        # The URL may hold a password: name the host only.
        host = self.url.rpartition("@")[2].partition("/")[0]
        return f"PostgresStorage({host!r})"

    def redact(self, text: str) -> str:
        """``text`` with the URL's password, as written and percent-decoded, starred out."""
        password = urlsplit(self.url).password
        if not password:
            return text
        for secret in {password, unquote(password)}:
            text = text.replace(secret, "***")
        return text

    async def open(self) -> None:
        if self._pool is not None:
            return
        pool = await asyncpg.create_pool(self.url, init=_prepare_connection, **self._pool_options)
        try:
            async with pool.acquire() as connection, connection.transaction():
                await self._migrate(connection)
        except BaseException:
            pool.terminate()
            raise
        self._pool = pool

    async def _migrate(self, connection: Any) -> None:
        known = load_migrations("postgres")
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await connection.fetch("SELECT version FROM schema_migrations")
        for migration in pending_migrations([row["version"] for row in rows], known):
            await connection.execute(migration.sql)
            await connection.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            _log.info("%r: applied migration %04d_%s", self, migration.version, migration.name)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), self._connect_timeout)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            # A server that has gone away cannot say goodbye: just drop the sockets.
            pool.terminate()

    def _ready(self) -> Any:
        if self._pool is None:
            raise StorageError(f"{self!r} is not open")
        return self._pool

    async def write_batch(
        self,
        calls: Sequence[CallRecord] = (),
        events: Sequence[CallEvent] = (),
        recordings: Sequence[RecordingRecord] = (),
        sessions: Sequence[AgentSession] = (),
        callbacks: Sequence[CallbackRecord] = (),
    ) -> None:
        work = [
            (_UPSERT_CALLS, [_call_row(c) for c in latest_calls(calls)], len(CALL_COLUMNS)),
            (_INSERT_EVENTS, [_event_row(e) for e in latest_events(events)], len(EVENT_COLUMNS)),
            (
                _UPSERT_RECORDINGS,
                [_recording_row(r) for r in latest_recordings(recordings)],
                len(RECORDING_COLUMNS),
            ),
            (
                _UPSERT_SESSIONS,
                [_session_row(s) for s in latest_sessions(sessions)],
                len(SESSION_COLUMNS),
            ),
            (
                _UPSERT_CALLBACKS,
                [callback_row(c) for c in latest_callbacks(callbacks)],
                len(CALLBACK_COLUMNS),
            ),
        ]
        work = [item for item in work if item[1]]
        if not work:
            return
        async with self._ready().acquire() as connection, connection.transaction():
            for sql, rows, width in work:
                await connection.execute(sql, *_columns(rows, width))

    async def get_call(self, call_id: str) -> CallRecord | None:
        row = await self._ready().fetchrow(f"{_SELECT_CALLS} WHERE call_id = $1", call_id)
        return None if row is None else _call(row)

    async def call_events(self, call_id: str) -> list[CallEvent]:
        rows = await self._ready().fetch(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM call_events "
            "WHERE call_id = $1 ORDER BY at, seq",
            call_id,
        )
        return [
            CallEvent(
                call_id=row["call_id"] or None,
                at=row["at"],
                event=EventType(row["event"]),
                seq=row["seq"],
                queue=row["queue"],
                agent=row["agent"],
                data=row["data"],
            )
            for row in rows
        ]

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
        where = ["arrived_at >= $1", "arrived_at < $2"]
        params: list[object] = [since, until]
        for column, value in list_calls_filters(queue, agent, disposition, caller):
            params.append(value)
            where.append(f"{column} = ${len(params)}")
        if agents is not None:
            params.append(list(agents))
            where.append(f"agent = ANY(${len(params)}::text[])")
        if cursor is not None:
            params += [cursor.arrived_at, cursor.call_id]
            where.append(f"(arrived_at, call_id) > (${len(params) - 1}, ${len(params)})")
        params.append(limit)
        sql = (
            f"{_SELECT_CALLS} WHERE {' AND '.join(where)} "
            f"ORDER BY arrived_at, call_id LIMIT ${len(params)}"
        )
        return [_call(row) for row in await self._ready().fetch(sql, *params)]

    async def delete_recordings_before(self, when: datetime) -> list[RecordingRecord]:
        require_aware(when=when)
        rows = await self._ready().fetch(
            f"DELETE FROM recordings WHERE created_at < $1 "
            f"RETURNING {', '.join(RECORDING_COLUMNS)}",
            when,
        )
        return sorted((_recording(row) for row in rows), key=lambda r: (r.created_at, r.id))

    async def get_recording(self, recording_id: str) -> RecordingRecord | None:
        row = await self._ready().fetchrow(f"{_SELECT_RECORDINGS} WHERE id = $1", recording_id)
        return None if row is None else _recording(row)

    async def agent_sessions(
        self, since: datetime, until: datetime, *, agent: str | None = None
    ) -> list[AgentSession]:
        require_aware(since=since, until=until)
        params: list[object] = [since, until]
        where = "started_at >= $1 AND started_at < $2"
        if agent is not None:
            params.append(agent)
            where += " AND agent = $3"
        rows = await self._ready().fetch(
            f"SELECT {', '.join(SESSION_COLUMNS)} FROM agent_sessions WHERE {where} "
            "ORDER BY started_at, agent",
            *params,
        )
        return [AgentSession(**{column: row[column] for column in SESSION_COLUMNS}) for row in rows]

    async def _fetch_rows(self, sql: str, params: Sequence[object]) -> list[Sequence[Any]]:
        return [tuple(row) for row in await self._ready().fetch(sql, *params)]

    async def _execute(self, sql: str, params: Sequence[object]) -> int:
        return _changed(await self._ready().execute(sql, *params))

    async def _execute_all(
        self, statements: Sequence[tuple[str, Sequence[object]]], guarded: bool
    ) -> list[int]:
        counts: list[int] = []
        try:
            async with self._ready().acquire() as connection, connection.transaction():
                for sql, params in statements:
                    counts.append(_changed(await connection.execute(sql, *params)))
                    if guarded and counts == [0]:
                        raise _GuardFailed  # leaving the block rolls the transaction back
        except _GuardFailed:
            return [0]
        return counts

    async def ping(self) -> bool:
        if self._pool is None:
            return False
        try:
            value = await self._pool.fetchval("SELECT 1", timeout=self._connect_timeout)
        except Exception:
            return False
        return bool(value == 1)

    async def schema_version(self) -> int:
        value = await self._ready().fetchval("SELECT max(version) FROM schema_migrations")
        return int(value or 0)


class _GuardFailed(Exception):
    """A guarded transaction's first statement changed no row."""


def _changed(status: object) -> int:
    """The rows a statement changed, from asyncpg's command tag ("UPDATE 3", "INSERT 0 1")."""
    tail = str(status).rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
