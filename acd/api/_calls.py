"""GET /api/v1/calls (filtered, keyset-paginated) and GET /api/v1/calls/{id} with its events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from ..storage import CallCursor, CallEvent, CallRecord, Disposition, Storage
from ..storage._base import CALL_COLUMNS
from ..storage._model import to_json
from ._csv import csv_stream
from ._params import Params, error, from_storage
from ._principal import principal_of

__all__ = ["MAX_PAGE", "CallsApi", "call_json", "event_json"]

MAX_PAGE = 1000
"""The largest ``limit`` a client may ask for; the default is 100."""

_LIST_PARAMETERS = (
    "since",
    "until",
    "queue",
    "agent",
    "disposition",
    "caller",
    "limit",
    "after",
    "format",
)
CSV_COLUMNS = (*CALL_COLUMNS, "recording_url")


def call_json(call: CallRecord) -> dict[str, Any]:
    """A CDR as the API shows it: the stored fields, times in ISO 8601 UTC."""
    data = to_json(call)
    del data["kind"]
    data["recording_url"] = (
        f"/api/v1/recordings/{call.recording_id}" if call.recording_id is not None else None
    )
    return data


def event_json(event: CallEvent) -> dict[str, Any]:
    data = to_json(event)
    del data["kind"]
    return data


class CallsApi:
    """The call-record endpoints over one ``Storage``."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/calls", self.list_calls),
            web.get("/api/v1/calls/{call_id}", self.get_call),
        ]

    async def list_calls(self, request: web.Request) -> web.StreamResponse:
        """Calls that arrived in [since, until), oldest first.

        ``next`` is an opaque cursor: pass it back as ``after`` with the same
        filters for the following page; it is null on the last page. Pages
        are keyed on (arrived_at, call_id), so calls arriving meanwhile never
        shift or repeat rows across pages.
        """
        params = Params(request, _LIST_PARAMETERS)
        since, until = params.window()
        disposition = params.choice("disposition", [d.value for d in Disposition])
        limit = params.integer("limit", 100, 1, MAX_PAGE)
        after = params.text("after")
        cursor = None
        if after is not None:
            try:
                cursor = CallCursor.decode(after)
            except ValueError:
                params.bad("after", "not a cursor from a previous page's next")
        filters: dict[str, Any] = {
            "queue": params.text("queue"),
            "agent": params.text("agent"),
            "disposition": Disposition(disposition) if disposition else None,
            "caller": params.text("caller"),
            "agents": principal_of(request).agents,
        }
        if params.choice("format", ("json", "csv")) == "csv":
            # Every call of the range, page after page: a spreadsheet wants them all.
            name = f"calls-{since:%Y%m%dT%H%M%SZ}-{until:%Y%m%dT%H%M%SZ}.csv"
            pages = self._pages(since, until, filters, cursor)
            return await csv_stream(request, name, CSV_COLUMNS, pages)
        # One more than asked tells whether another page exists, so the last
        # page says next: null instead of sending the client to an empty one.
        calls = await from_storage(
            self.storage.list_calls(since, until, **filters, limit=limit + 1, after=cursor)
        )
        page = calls[:limit]
        more = len(calls) > limit
        return web.json_response(
            {
                "since": since.isoformat(),
                "until": until.isoformat(),
                "calls": [call_json(call) for call in page],
                "next": CallCursor.after(page[-1]).encode() if more else None,
            }
        )

    async def _pages(
        self,
        since: Any,
        until: Any,
        filters: dict[str, Any],
        after: CallCursor | None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        while True:
            page = await from_storage(
                self.storage.list_calls(since, until, **filters, limit=MAX_PAGE, after=after)
            )
            if not page:
                return
            yield [call_json(call) for call in page]
            if len(page) < MAX_PAGE:
                return
            after = CallCursor.after(page[-1])

    async def get_call(self, request: web.Request) -> web.Response:
        """One CDR with its queue events in order; 404 when there is no such call."""
        Params(request, ())
        call_id = request.match_info["call_id"]
        call = await from_storage(self.storage.get_call(call_id))
        # A call out of the caller's reach is answered as one that does not exist.
        if call is None or not principal_of(request).reaches(call.agent):
            error(web.HTTPNotFound, "not_found", "no call with that id")
        events = await from_storage(self.storage.call_events(call_id))
        return web.json_response({**call_json(call), "events": [event_json(e) for e in events]})
