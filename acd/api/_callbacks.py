"""Callback requests over HTTP: what supervisors see waiting, and how they take one back.

- ``GET /api/v1/callbacks?state=waiting&limit=100``: stored requests, oldest
  first (``state`` one of waiting, done, failed, cancelled, expired; every
  state when absent);
- ``DELETE /api/v1/callbacks/{call_id}``: cancel a waiting request (204);
  404 for an unknown one, 409 for one that is no longer waiting or is being
  dialled right now.

A request shows the caller's number in full: reading callbacks is a
permission of its own (team leads, supervisors, admins), like call records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..storage import CallbackRecord, CallbackState
from ._params import Params, error, from_storage

if TYPE_CHECKING:
    from ..queues import AcdService
    from ..storage import Storage

__all__ = ["CallbacksApi", "callback_json"]

_MAX = 1000


def callback_json(record: CallbackRecord) -> dict[str, Any]:
    """A request as the API shows it (not the stored INVITE, which only the engine needs)."""

    def time(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    call = record.call
    return {
        "call_id": record.call_id,
        "queue": record.queue,
        "state": record.state.value,
        "number": call.get("caller"),
        "name": call.get("caller_name"),
        "did": call.get("did"),
        "requested_at": time(record.requested_at),
        "requested_by": record.requested_by,
        "queued_at": time(record.queued_at),
        "updated_at": time(record.updated_at),
        "priority": record.priority,
        "attempts": record.attempts,
        "next_attempt_at": time(record.due_at),
        "agent": record.agent,
    }


class CallbacksApi:
    def __init__(self, service: AcdService, storage: Storage) -> None:
        self.service = service
        self.storage = storage

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/callbacks", self.list),
            web.delete("/api/v1/callbacks/{call_id}", self.cancel),
        ]

    async def list(self, request: web.Request) -> web.Response:
        params = Params(request, ("state", "limit"))
        state = params.text("state")
        states: tuple[CallbackState, ...] = ()
        if state is not None:
            try:
                states = (CallbackState(state),)
            except ValueError:
                params.bad("state", f"one of {', '.join(s.value for s in CallbackState)}")
        limit = params.integer("limit", 100, 1, _MAX)
        await self.service.callbacks.settled()  # what this run changed is in the table
        records = await from_storage(self.storage.callbacks(states, limit=limit))
        return web.json_response({"callbacks": [callback_json(r) for r in records]})

    async def cancel(self, request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        book = self.service.callbacks
        record, refused = await from_storage(book.cancel_stored(self.storage, call_id))
        if record is None:
            error(web.HTTPNotFound, "not_found", "no such callback")
        if refused is not None:
            error(web.HTTPConflict, "conflict", f"the callback is {refused}, not waiting")
        return web.Response(status=204)
