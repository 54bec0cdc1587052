"""The HTTP API over stored calls, recordings and reports (aiohttp handlers).

``add_storage_routes(app, storage, recordings)`` adds, under ``/api/v1``:

- ``GET /calls``: CDRs filtered by time, queue, agent, disposition and
  caller, keyset-paginated with a ``next`` cursor;
- ``GET /calls/{id}``: one CDR with its queue events;
- ``GET /recordings/{id}``: the WAV file, with HTTP Range support;
- ``GET /reports/queues``, ``/reports/agents``, ``/reports/hourly``.

Responses are JSON with ISO 8601 times; bad parameters are a 400 and
unknown ids a 404, each with a JSON body ``{"error": ..., "message": ...}``;
a database that does not answer is a 503. docs/storage.md has the details.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from ..recordings import RecordingStore
from ..storage import DEFAULT_SERVICE_LEVEL_S, Storage
from ._calls import MAX_PAGE, CallsApi, call_json, event_json
from ._recordings import RecordingsApi
from ._reports import ReportsApi

__all__ = [
    "MAX_PAGE",
    "CallsApi",
    "RecordingsApi",
    "ReportsApi",
    "add_storage_routes",
    "call_json",
    "event_json",
]


def add_storage_routes(
    app: web.Application,
    storage: Storage,
    recordings: RecordingStore,
    *,
    service_level: Mapping[str, float] | float = DEFAULT_SERVICE_LEVEL_S,
    team_of: Mapping[str, str] | None = None,
) -> None:
    """Add the calls, recordings and reports endpoints to ``app`` (before it starts).

    ``service_level`` gives each queue's service-level threshold in seconds
    (queue name to seconds, or one figure for all); ``team_of`` maps agent
    usernames to team names for the team rollup.
    """
    app.router.add_routes(CallsApi(storage).routes())
    app.router.add_routes(RecordingsApi(storage, recordings).routes())
    app.router.add_routes(
        ReportsApi(storage, service_level=service_level, team_of=team_of).routes()
    )
