"""Storage of CDRs, queue events, recordings and agent sessions.

One interface, ``Storage``, with two back ends that behave the same:
``SqliteStorage`` (the embedded default, a file in ``data_dir``) and
``PostgresStorage`` (asyncpg). ``open_storage(config)`` picks and opens one.
The engine writes through a ``RecordWriter``, which batches records off the
hot path and journals to disk whatever the database cannot take right now,
so that no CDR is lost to an outage, a SIGTERM or a SIGKILL. Reports (by
queue, agent and team, hour) are aggregated by the database itself.
"""

from ._base import CallCursor, SchemaError, Storage, StorageError
from ._factory import DEFAULT_SQLITE_FILE, describe_storage, open_storage, storage_for
from ._journal import Journal
from ._model import (
    AgentSession,
    CallbackRecord,
    CallbackState,
    CallEvent,
    CallRecord,
    Disposition,
    EventType,
    HangupSide,
    Record,
    RecordingRecord,
)
from ._postgres import PostgresStorage
from ._reports import (
    DEFAULT_SERVICE_LEVEL_S,
    AgentReport,
    AgentReports,
    CallFigures,
    HourReport,
    QueueReport,
    TeamReport,
    WrapUpCodeCount,
)
from ._sqlite import SqliteStorage
from ._writer import RecordWriter

__all__ = [
    "DEFAULT_SERVICE_LEVEL_S",
    "DEFAULT_SQLITE_FILE",
    "AgentReport",
    "AgentReports",
    "AgentSession",
    "CallCursor",
    "CallEvent",
    "CallFigures",
    "CallRecord",
    "CallbackRecord",
    "CallbackState",
    "Disposition",
    "EventType",
    "HangupSide",
    "HourReport",
    "Journal",
    "PostgresStorage",
    "QueueReport",
    "Record",
    "RecordWriter",
    "RecordingRecord",
    "SchemaError",
    "SqliteStorage",
    "Storage",
    "StorageError",
    "TeamReport",
    "WrapUpCodeCount",
    "describe_storage",
    "open_storage",
    "storage_for",
]
