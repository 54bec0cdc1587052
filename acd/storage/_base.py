"""The storage interface both back ends implement, and what they share.

Shared here: the page cursor for ``list_calls``, the versioned migration files
and the rules for applying them, and the in-batch de-duplication that makes a
batch mean the same thing to SQLite (one statement per row) and PostgreSQL
(one statement per table).
"""

from __future__ import annotations

import abc
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from types import TracebackType
from typing import Any, ClassVar, Self

from ._model import (
    AgentSession,
    CallbackRecord,
    CallbackState,
    CallEvent,
    CallRecord,
    Disposition,
    RecordingRecord,
    callback_from_json,
    dump_json,
    format_time,
    to_json,
)
from ._model import parse_time as _parse_time
from ._reports import (
    DEFAULT_SERVICE_LEVEL_S,
    AgentReports,
    Dialect,
    HourReport,
    QueueReport,
    WrapUpCodeCount,
    report_by_agent,
    report_by_hour,
    report_by_queue,
    report_by_wrap_up_code,
)

__all__ = [
    "CALLBACK_COLUMNS",
    "CALL_COLUMNS",
    "EVENT_COLUMNS",
    "RECORDING_COLUMNS",
    "SESSION_COLUMNS",
    "CallCursor",
    "Migration",
    "SchemaError",
    "Storage",
    "StorageError",
    "check_page",
    "latest_calls",
    "latest_events",
    "latest_recordings",
    "latest_sessions",
    "list_calls_filters",
    "load_migrations",
    "pending_migrations",
    "require_aware",
    "upsert_sql",
]


class StorageError(Exception):
    """A storage problem that retrying will not fix (bad URL, unusable schema)."""


class SchemaError(StorageError):
    """The database schema is not one this code can use (e.g. written by a newer release)."""


@dataclass(frozen=True, slots=True)
class CallCursor:
    """Where a page of ``list_calls`` ended: calls are ordered by (arrived_at, call_id).

    ``encode`` gives an opaque string for an HTTP API's ``next`` link;
    ``decode`` reads it back and raises ValueError on anything else.
    """

    arrived_at: datetime
    call_id: str

    @classmethod
    def after(cls, record: CallRecord) -> CallCursor:
        return cls(record.arrived_at, record.call_id)

    def encode(self) -> str:
        return f"{format_time(self.arrived_at)}~{self.call_id}"

    @classmethod
    def decode(cls, text: str) -> CallCursor:
        stamp, sep, call_id = text.partition("~")
        when = _parse_time(stamp) if sep and call_id else None
        if when is None:
            raise ValueError(f"not a call cursor: {text!r}")
        return cls(when, call_id)


class Storage(abc.ABC):
    """Where CDRs, queue events, recordings and agent sessions are kept.

    Two back ends behave the same: ``SqliteStorage`` and ``PostgresStorage``;
    ``open_storage(config)`` picks one. ``open`` applies pending migrations.
    Writes are idempotent upserts, so a batch may be replayed after a failure
    whose outcome was unknown (a commit that succeeded as the link dropped).
    Use as ``async with`` to open and close.
    """

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date; raises SchemaError if it is too new."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and threads; safe to call twice."""

    @abc.abstractmethod
    async def write_batch(
        self,
        calls: Sequence[CallRecord] = (),
        events: Sequence[CallEvent] = (),
        recordings: Sequence[RecordingRecord] = (),
        sessions: Sequence[AgentSession] = (),
        callbacks: Sequence[CallbackRecord] = (),
    ) -> None:
        """Upsert everything in one transaction: all of it is stored, or none."""

    @abc.abstractmethod
    async def get_call(self, call_id: str) -> CallRecord | None: ...

    @abc.abstractmethod
    async def call_events(self, call_id: str) -> list[CallEvent]:
        """The call's events in order of (at, seq)."""

    @abc.abstractmethod
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
        """Calls that arrived in [since, until), oldest first, at most ``limit``.

        For the next page pass the last record (or its ``CallCursor``) as
        ``after``: keyset pagination, so pages stay stable as calls arrive.
        ``agents`` keeps only calls answered by one of them (what a team lead
        may see); an empty collection matches nothing.
        """

    @abc.abstractmethod
    async def delete_recordings_before(self, when: datetime) -> list[RecordingRecord]:
        """Forget recordings created before ``when`` and return them, so their files can go.

        CDRs keep their ``recording_id``: the CDR records what happened, and
        the missing recordings row tells that the audio has been deleted.
        """

    @abc.abstractmethod
    async def get_recording(self, recording_id: str) -> RecordingRecord | None: ...

    async def named_recording_paths(self, paths: Sequence[str]) -> set[str]:
        """Those of ``paths`` that a ``recordings`` row holds, compared as text.

        For retention's orphan sweep, which asks about the few old files it
        finds: ``path`` has no index, so each chunk scans the table once.
        """
        found: set[str] = set()
        for start in range(0, len(paths), 500):
            chunk = list(paths[start : start + 500])
            marks = ", ".join(self.dialect.placeholder(n + 1) for n in range(len(chunk)))
            sql = f"SELECT path FROM recordings WHERE path IN ({marks})"
            found.update(str(row[0]) for row in await self._fetch_rows(sql, chunk))
        return found

    @abc.abstractmethod
    async def agent_sessions(
        self, since: datetime, until: datetime, *, agent: str | None = None
    ) -> list[AgentSession]:
        """Sessions that started in [since, until), optionally of one agent, oldest first."""

    async def callbacks(
        self, states: Collection[CallbackState] = (), *, limit: int = 1000
    ) -> list[CallbackRecord]:
        """Callback requests in ``states`` (every state when empty), oldest request first."""
        params: list[object] = []
        where = ""
        if states:
            marks = []
            for state in states:
                params.append(CallbackState(state).value)
                marks.append(self.dialect.placeholder(len(params)))
            where = f" WHERE state IN ({', '.join(marks)})"
        params.append(int(limit))
        sql = (
            f"SELECT body FROM callbacks{where} ORDER BY requested_at, call_id "
            f"LIMIT {self.dialect.placeholder(len(params))}"
        )
        rows = await self._fetch_rows(sql, params)
        return [callback_from_json(_json_body(row[0])) for row in rows]

    async def get_callback(self, call_id: str) -> CallbackRecord | None:
        rows = await self._fetch_rows(
            f"SELECT body FROM callbacks WHERE call_id = {self.dialect.placeholder(1)}", [call_id]
        )
        return callback_from_json(_json_body(rows[0][0])) if rows else None

    # ---- reports: written once over the dialect's SQL, in _reports.py -----

    dialect: ClassVar[Dialect]

    @abc.abstractmethod
    async def _fetch_rows(self, sql: str, params: Sequence[object]) -> list[Sequence[Any]]:
        """Run one read-only query written for ``dialect``; the reports' only access."""

    async def query(self, sql: str, params: Sequence[object] = ()) -> list[Sequence[Any]]:
        """Rows of one read-only query written for ``dialect`` (placeholders included)."""
        return await self._fetch_rows(sql, params)

    async def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one write statement written for ``dialect``; the rows it changed."""
        return await self._execute(sql, params)

    async def execute_all(
        self, statements: Sequence[tuple[str, Sequence[object]]], *, guarded: bool = False
    ) -> list[int]:
        """Run write statements in one transaction: all take effect or none; rows each changed.

        ``guarded``: the first statement is a guard (``UPDATE ... WHERE
        revision = ?``) that must change exactly one row; when it changes
        none, the transaction is rolled back and the answer is ``[0]``.
        """
        return await self._execute_all(
            [(sql, tuple(params)) for sql, params in statements], guarded
        )

    async def _execute_all(
        self, statements: Sequence[tuple[str, Sequence[object]]], guarded: bool
    ) -> list[int]:
        raise StorageError(f"{type(self).__name__} cannot run statements in one transaction")

    @abc.abstractmethod
    async def _execute(self, sql: str, params: Sequence[object]) -> int:
        """Run one write statement written for ``dialect`` in its own transaction.

        Returns the number of rows it changed. For small tables written
        rarely (users, API keys, the audit log), which go straight to the
        database rather than through the batching RecordWriter.
        """

    async def report_by_queue(
        self,
        since: datetime,
        until: datetime,
        service_level: Mapping[str, float] | float = DEFAULT_SERVICE_LEVEL_S,
    ) -> list[QueueReport]:
        """Figures per queue for calls that arrived in [since, until) (docs/storage.md).

        ``service_level`` is the threshold in seconds, one for all queues or
        per queue (a queue the mapping does not name gets 20 s).
        """
        require_aware(since=since, until=until)
        return await report_by_queue(self._fetch_rows, self.dialect, since, until, service_level)

    async def report_by_agent(
        self,
        since: datetime,
        until: datetime,
        team_of: Mapping[str, str] | None = None,
        *,
        service_level: Mapping[str, float] | float = DEFAULT_SERVICE_LEVEL_S,
    ) -> AgentReports:
        """Figures per agent and, through ``team_of`` (agent to team), per team."""
        require_aware(since=since, until=until)
        return await report_by_agent(
            self._fetch_rows, self.dialect, since, until, team_of, service_level
        )

    async def report_by_hour(
        self,
        since: datetime,
        until: datetime,
        queue: str | None = None,
        *,
        service_level: Mapping[str, float] | float = DEFAULT_SERVICE_LEVEL_S,
        minutes: int = 60,
    ) -> list[HourReport]:
        """One row per UTC interval of ``minutes`` (15/30/60) in [since, until), empty ones too."""
        require_aware(since=since, until=until)
        return await report_by_hour(
            self._fetch_rows, self.dialect, since, until, queue, service_level, minutes
        )

    async def report_by_wrap_up_code(
        self, since: datetime, until: datetime, queue: str | None = None
    ) -> list[WrapUpCodeCount]:
        """Answered queue calls in [since, until) by queue, agent and wrap-up code."""
        require_aware(since=since, until=until)
        return await report_by_wrap_up_code(self._fetch_rows, self.dialect, since, until, queue)

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the database answers a trivial query; never raises."""

    @abc.abstractmethod
    async def schema_version(self) -> int:
        """The highest migration applied to the database."""

    def redact(self, text: str) -> str:
        """``text`` (an error message, say) without any secret of this storage, for logs."""
        return text

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def check_page(limit: int, after: CallCursor | CallRecord | None) -> CallCursor | None:
    """Validate ``list_calls`` paging arguments; return the cursor to continue from."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if isinstance(after, CallRecord):
        return CallCursor.after(after)
    return after


@dataclass(frozen=True, slots=True)
class Migration:
    """One versioned schema change, read from ``migrations/NNNN_name[.dialect].sql``."""

    version: int
    name: str
    sql: str


_MIGRATION_FILE = re.compile(r"(\d{4})_(\w+?)(?:\.(sqlite|postgres))?\.sql")


def load_migrations(dialect: str) -> list[Migration]:
    """The migrations for ``dialect`` ("sqlite" or "postgres") in version order.

    A file without a dialect suffix serves both; versions must run 1, 2, 3...
    with no gaps, so a missing file is caught here and not in production.
    """
    found: dict[int, Migration] = {}
    for entry in resources.files("acd.storage.migrations").iterdir():
        match = _MIGRATION_FILE.fullmatch(entry.name)
        if match is None or match.group(3) not in (None, dialect):
            continue
        version = int(match.group(1))
        if version in found:
            raise SchemaError(f"two {dialect} migrations have version {version}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    ordered = [found[v] for v in sorted(found)]
    if [m.version for m in ordered] != list(range(1, len(ordered) + 1)):
        raise SchemaError(f"{dialect} migration versions have a gap: {sorted(found)}")
    return ordered


def pending_migrations(applied: Iterable[int], known: Sequence[Migration]) -> list[Migration]:
    """The migrations still to apply, or SchemaError if the database is ahead of the code."""
    done = sorted(applied)
    newest = known[-1].version if known else 0
    if done and done[-1] > newest:
        raise SchemaError(
            f"the database schema is at version {done[-1]}, but this release knows only up "
            f"to {newest}: it was written by a newer release; run that release, or restore "
            "a backup taken before the upgrade"
        )
    if done != list(range(1, len(done) + 1)):
        raise SchemaError(f"schema_migrations lists versions {done}: expected 1..{len(done)}")
    return [m for m in known if m.version > len(done)]


def latest_calls(calls: Iterable[CallRecord]) -> list[CallRecord]:
    """One record per call_id, chosen as the database's upsert would choose.

    A later record wins, except that an ended CDR is not replaced by one that
    has not ended (see CallRecord). PostgreSQL refuses to upsert one row twice
    in a statement, so batches are reduced to this first.
    """
    chosen: dict[str, CallRecord] = {}
    for call in calls:
        current = chosen.get(call.call_id)
        if current is None or current.ended_at is None or call.ended_at is not None:
            chosen[call.call_id] = call
    return list(chosen.values())


def latest_events(events: Iterable[CallEvent]) -> list[CallEvent]:
    """One event per identity (call_id, at, event, seq); the first one stored wins."""
    chosen: dict[tuple[str | None, datetime, str, int], CallEvent] = {}
    for event in events:
        chosen.setdefault((event.call_id, event.at, event.event, event.seq), event)
    return list(chosen.values())


def latest_recordings(recordings: Iterable[RecordingRecord]) -> list[RecordingRecord]:
    """One row per recording id, the later one winning."""
    return list({r.id: r for r in recordings}.values())


def latest_callbacks(callbacks: Iterable[CallbackRecord]) -> list[CallbackRecord]:
    """One row per call id, the later one winning (a request's state only moves on)."""
    return list({c.call_id: c for c in callbacks}.values())


def callback_row(record: CallbackRecord) -> tuple[str, ...]:
    """A callback's row in CALLBACK_COLUMNS order: text in both dialects (0005)."""
    requested_at = format_time(record.requested_at)
    updated_at = format_time(record.updated_at)
    assert requested_at is not None and updated_at is not None
    body = dump_json(to_json(record))
    return (record.call_id, record.queue, record.state.value, requested_at, updated_at, body)


def _json_body(value: object) -> dict[str, Any]:
    data = json.loads(value) if isinstance(value, str | bytes) else value
    if not isinstance(data, dict):
        raise StorageError(f"a stored callback is not a JSON object: {type(data).__name__}")
    return data


def latest_sessions(sessions: Iterable[AgentSession]) -> list[AgentSession]:
    """One row per (agent, started_at); an ended session is not reopened, as for calls."""
    chosen: dict[tuple[str, datetime], AgentSession] = {}
    for session in sessions:
        key = (session.agent, session.started_at)
        current = chosen.get(key)
        if current is None or current.ended_at is None or session.ended_at is not None:
            chosen[key] = session
    return list(chosen.values())


# Column order shared by both back ends' SQL and row conversions.
CALL_COLUMNS = (
    "call_id",
    "sip_call_id",
    "caller_number",
    "caller_name",
    "did",
    "trunk",
    "route",
    "ivr_path",
    "digits",
    "variables",
    "queue",
    "agent",
    "ring_attempts",
    "arrived_at",
    "queued_at",
    "answered_at",
    "ended_at",
    "disposition",
    "hangup_side",
    "sip_cause",
    "survey_score",
    "recording_id",
    "wrap_up_code",
    "wrap_up_s",
)
EVENT_COLUMNS = ("call_id", "at", "event", "seq", "queue", "agent", "data")
RECORDING_COLUMNS = (
    "id",
    "call_id",
    "path",
    "duration_s",
    "size_bytes",
    "sha256",
    "channels",
    "created_at",
)
SESSION_COLUMNS = ("agent", "state", "reason", "started_at", "ended_at")
CALLBACK_COLUMNS = ("call_id", "queue", "state", "requested_at", "updated_at", "body")


def upsert_sql(
    table: str,
    columns: Sequence[str],
    key: Sequence[str],
    source: str,
    *,
    replace: bool = True,
    keep_ended: bool = False,
) -> str:
    """INSERT ... ON CONFLICT for ``table``, valid in both SQLite and PostgreSQL.

    ``source`` is ``VALUES (...)`` or ``SELECT ...``. Without ``replace`` an
    existing row is kept as it is; with ``keep_ended`` a row whose
    ``ended_at`` is set is only replaced by one that also has it.
    """
    sql = f"INSERT INTO {table} ({', '.join(columns)}) {source} ON CONFLICT ({', '.join(key)}) "
    if not replace:
        return sql + "DO NOTHING"
    sql += "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    if keep_ended:
        sql += f" WHERE {table}.ended_at IS NULL OR excluded.ended_at IS NOT NULL"
    return sql


def list_calls_filters(
    queue: str | None,
    agent: str | None,
    disposition: Disposition | None,
    caller: str | None,
) -> list[tuple[str, object]]:
    """The optional ``list_calls`` conditions that apply, as (column, value) pairs."""
    wanted: list[tuple[str, object]] = [
        ("queue", queue),
        ("agent", agent),
        ("disposition", None if disposition is None else Disposition(disposition).value),
        ("caller_number", caller),
    ]
    return [(column, value) for column, value in wanted if value is not None]


def require_aware(**stamps: datetime) -> None:
    """Reject naive datetimes in queries, for the same reason the records do."""
    for name, value in stamps.items():
        if value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware: {value!r}")
