"""Callbacks that outlive the engine: stored on request, retried, taken back at start.

A caller who takes a callback (the queue's ``callback_key``, or
``on_max_wait: callback``) hangs up and keeps their place. From that moment
the request is a ``CallbackRecord`` in storage, written through the
``RecordWriter`` (so a database outage journals it like a CDR), and every
step moves its state on: an attempt (an agent took it and the caller is
dialled), a retry (the caller did not answer: offered again after the
queue's ``callback_retry_delay``, up to ``callback_attempts`` dials), done,
failed, cancelled by a supervisor, or expired after ``callback_expiry``.

The next run reads the requests still ``waiting`` and puts each back in its
queue where it was (``Acd.enqueue(waited=...)``, counted from when the
caller first joined), as a call with the same id, so the call record the
first run wrote is completed, not duplicated. Draining hands the waiting
requests over the same way instead of holding the drain open for them.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sip import Address, Request, parse_message

from ..storage import CallbackRecord, CallbackState

if TYPE_CHECKING:
    from ..calls import Call
    from ..storage import Storage
    from ._service import AcdService, _Waiter

__all__ = ["CallbackBook", "Handover"]

log = logging.getLogger(__name__)


class Handover(Exception):
    """A waiting callback leaves this run (drain or cancel); the request says what next."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class _Live:
    """A request this run is serving, and how to stop it waiting."""

    record: CallbackRecord
    call: Call
    stop: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    waiter: _Waiter | None = None  # while it waits in the queue


class CallbackBook:
    """The stored side of the service's callbacks; ``service.callbacks``."""

    def __init__(self, service: AcdService) -> None:
        self.service = service
        self._live: dict[str, _Live] = {}

    # -- the requests this run serves ------------------------------------------------------

    def requested(
        self, waiter: _Waiter, by: str, priority: int, skills: Mapping[str, int]
    ) -> CallbackRecord:
        """The caller took a callback: store the request (state waiting)."""
        call = waiter.call
        now = _now()
        leg = call.caller_leg
        source = leg.destination
        record = CallbackRecord(
            call_id=call.id,
            queue=waiter.queue,
            state=CallbackState.WAITING,
            requested_at=now,
            requested_by=by,
            updated_at=now,
            queued_at=call.queued_at or now,
            priority=priority,
            skills=dict(skills),
            invite=base64.b64encode(leg.invite.serialize()).decode("ascii"),
            source=f"{source.transport} {source.host} {source.port}",
            call=call.snapshot(),
        )
        self._live[call.id] = _Live(record, call, waiter=waiter)
        self._store(record)
        return record

    def waiting(self, call_id: str, waiter: _Waiter | None) -> None:
        live = self._live.get(call_id)
        if live is not None:
            live.waiter = waiter

    def attempt(self, call_id: str, agent: str) -> CallbackRecord:
        """An agent took the request: one more dial of the caller."""
        live = self._live[call_id]
        live.waiter = None
        return self._update(live, attempts=live.record.attempts + 1, agent=agent, due_at=None)

    def retry(self, call_id: str, delay: float) -> CallbackRecord:
        """The caller did not answer: offered again in ``delay`` seconds."""
        live = self._live[call_id]
        return self._update(live, due_at=_now() + timedelta(seconds=delay))

    def finished(self, call_id: str, state: CallbackState) -> None:
        """Done or failed for good: the request is over (and forgotten by this run)."""
        live = self._live.pop(call_id, None)
        if live is not None:
            self._update(live, state=state)

    def record(self, call_id: str) -> CallbackRecord:
        return self._live[call_id].record

    def stop_signal(self, call_id: str) -> asyncio.Future[str]:
        """Resolves to "handover" (draining) or "cancelled" (a supervisor)."""
        return self._live[call_id].stop

    def left_run(self, call_id: str) -> None:
        """This run stops serving the request; it stays as stored (waiting, for the next)."""
        self._live.pop(call_id, None)

    def _update(self, live: _Live, **changes: Any) -> CallbackRecord:
        live.record = dataclasses.replace(live.record, updated_at=_now(), **changes)
        self._store(live.record)
        return live.record

    def _store(self, record: CallbackRecord) -> None:
        records = self.service.records
        if records is None:
            log.warning(
                "callback %s: no storage, so it lasts only as long as this run", record.call_id
            )
            return
        records.writer.submit_callback(record)

    # -- supervisors -----------------------------------------------------------------------

    async def cancel_stored(
        self, storage: Storage, call_id: str
    ) -> tuple[CallbackRecord | None, str | None]:
        """Cancel a waiting request, served by this run or only stored.

        Returns the request (None if unknown) and, when it could not be
        cancelled, why: "being dialled", or the state it is in.
        """
        live = self._live.get(call_id)
        if live is not None:
            if live.record.state is not CallbackState.WAITING:
                return live.record, live.record.state.value
            if live.waiter is None and live.record.due_at is None:
                return live.record, "being dialled"
            self._update(live, state=CallbackState.CANCELLED)
            if not live.stop.done():
                live.stop.set_result("cancelled")
            return live.record, None
        await self.settled()
        record = await storage.get_callback(call_id)
        if record is None:
            return None, None
        if record.state is not CallbackState.WAITING:
            return record, record.state.value
        record = dataclasses.replace(record, state=CallbackState.CANCELLED, updated_at=_now())
        self._store(record)
        return record, None

    async def settled(self) -> None:
        """Wait until every state this run gave a request is stored (or journaled)."""
        if self.service.records is not None:
            await self.service.records.writer.flush()

    def hand_over(self) -> None:
        """Draining: every request waiting for an agent leaves this run, stored as waiting."""
        for live in list(self._live.values()):
            if (live.waiter is not None or live.record.due_at is not None) and not live.stop.done():
                live.stop.set_result("handover")

    # -- taking requests back at start -----------------------------------------------------

    async def restore(self, storage: Storage) -> int:
        """Put every stored waiting request back in its queue; how many were taken back."""
        from ._conversation import serve_restored

        try:
            records = await storage.callbacks([CallbackState.WAITING], limit=100_000)
        except Exception as exc:
            log.error("stored callbacks could not be read (%s); they wait for the next start", exc)
            return 0
        control = self.service.control
        taken = 0
        for record in records:
            if record.call_id in control.calls:
                continue
            try:
                invite = parse_message(base64.b64decode(record.invite))
                transport, host, port = record.source.split()
                source = Address(transport, host, int(port))
            except Exception as exc:
                log.error(
                    "callback %s: stored request unreadable (%s); dropped", record.call_id, exc
                )
                self._store(
                    dataclasses.replace(record, state=CallbackState.FAILED, updated_at=_now())
                )
                continue
            if not isinstance(invite, Request):
                continue

            async def serve(call: Call, record: CallbackRecord = record) -> None:
                self._live[call.id] = _Live(record, call)
                await serve_restored(self.service, call, record)

            control.resume(invite, source, record.call_id, record.call, serve)
            taken += 1
        if taken:
            log.info("%d callback requests from the last run are back in their queues", taken)
        return taken
