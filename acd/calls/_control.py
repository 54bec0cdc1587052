"""Call control: the B2BUA's transaction user for INVITE and everything in a dialog.

``SipApplication`` hands over every INVITE it has authenticated (or accepted
from a trunk by source address), every request that carries a To tag, every
ACK and CANCEL, and the outcome of every client transaction we started for a
leg. ``CallControl`` matches them to legs through the dialog layer, creates a
``Call`` for each new INVITE and runs its script as a task.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from sip import (
    Address,
    DialogSet,
    NameAddr,
    Request,
    RequestReceived,
    Response,
    SipUri,
    make_response,
)
from sip.dialog import DialogId, Outcome
from sip.endpoint import SipEndpoint

from ..events import CallArrived, CallSetup, EventBus
from ..overload import OverloadGuard, OverloadPolicy
from ._legs import InboundLeg, OutboundLeg, SipLeg
from ._logline import log_arrived

if TYPE_CHECKING:
    from ..config import Config, Trunk
    from ._call import Call
    from ._media import MediaEngine
    from ._records import CallRecords
    from ._script import CallScript

__all__ = ["SHUTDOWN_RETRY_AFTER", "CallControl"]

log = logging.getLogger(__name__)

CallHandler = Callable[["Call"], Awaitable[None]]

SHUTDOWN_RETRY_AFTER = 30
"""Seconds a caller refused during a shutdown is asked to keep away from this node.

Long enough that a carrier or a load balancer sends the next calls to
another node (RFC 3261 §21.5.4, RFC 3263 failover) rather than back into a
node that is going away; short enough that a restarted node gets traffic
again soon after.
"""


class CallControl:
    """Owns the legs and dialogs of every call and routes SIP events to them."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        config: Config,
        media: MediaEngine,
        *,
        allow: str,
        events: EventBus | None = None,
        overload: OverloadGuard | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.config = config
        self.media = media
        self.allow = allow
        self.events = events if events is not None else EventBus()
        self.overload = (
            overload
            if overload is not None
            else OverloadGuard(OverloadPolicy.from_config(config.calls))
        )
        # Loop time to wall time, for RFC 7339 oc-seq values that keep growing
        # across restarts (both clocks are read once, here).
        self._wall_offset = time.time() - time.monotonic()
        self.dialogs = DialogSet()
        self.calls: dict[str, Call] = {}
        self.handler: CallHandler | None = None  # runs each new call's script
        self.script: CallScript | None = None
        self.records: CallRecords | None = None
        self.acd: Any = None  # the ACD (queues and agents) once it is running
        self._by_dialog: dict[DialogId, SipLeg] = {}
        self._by_transaction: dict[str, SipLeg] = {}
        self._inbound: dict[str, InboundLeg] = {}  # INVITE server transaction -> leg
        self._tasks: set[asyncio.Task[None]] = set()
        self._dialog_timers: dict[DialogId, asyncio.TimerHandle] = {}
        # Every leg and call ever made, weakly: what is still alive after its
        # call ended is a leak (a timer or callback still holding it).
        self._alive_legs: weakref.WeakSet[SipLeg] = weakref.WeakSet()
        self._alive_calls: weakref.WeakSet[Call] = weakref.WeakSet()
        self.calls_started = 0
        self.calls_refused = 0
        self.stopping = False
        """Set by ``drain`` or ``stop``: from then on new calls are refused with 503."""
        self._idle = asyncio.Event()
        self._idle.set()
        self.on_drain: list[Callable[[], None]] = []
        """Called once when draining starts: what keeps a call alive without a caller on
        the line (a callback waiting for an agent) hands it over to the next run."""

    # -- what legs use -------------------------------------------------------------------

    def contact_for(self, destination: Address) -> SipUri:
        return self.endpoint.contact_uri(destination.transport, toward=destination.host)

    def send_request(self, leg: SipLeg, request: Request, destination: Address) -> str:
        key = self.endpoint.send_request(request, destination)
        self._by_transaction[key] = leg
        return key

    def remember_dialog(self, leg: SipLeg) -> None:
        assert leg.dialog is not None
        self.dialogs.add(leg.dialog)
        self._by_dialog[leg.dialog.id] = leg

    def forget_dialog(self, leg: SipLeg) -> None:
        # The dialog stays known until its last transactions finish: a BYE's
        # retransmission or the ACK of a crossed 200 must still find it, and
        # then get 481 from the terminated dialog rather than a new call.
        dialog = leg.dialog
        if dialog is None:
            return
        # A terminated dialog answers 481 (or drops an ACK) without its leg, so
        # the leg, and through it the call, its RTP leg and parsed SDP, is let
        # go now rather than 32 s later: at hundreds of calls a second those
        # would be over a million objects for the collector to walk.
        self._by_dialog.pop(dialog.id, None)
        if dialog.id in self._dialog_timers:
            return
        loop = asyncio.get_running_loop()
        self._dialog_timers[dialog.id] = loop.call_later(
            64 * self.endpoint.policy.t1, self._drop_dialog, dialog.id
        )

    def _drop_dialog(self, dialog_id: DialogId) -> None:
        self._dialog_timers.pop(dialog_id, None)
        self.dialogs.remove(dialog_id)
        self._by_dialog.pop(dialog_id, None)

    # -- new calls -----------------------------------------------------------------------

    def new_call(
        self, event: RequestReceived, *, user: str | None, trunk: Trunk | None
    ) -> Call | None:
        """An INVITE without To tag, already authenticated: make a Call and start its script.

        While the engine stops, or when the overload guard says so (at
        ``calls.max_calls``, over the call rate, with the loop lagging or
        the CPU full), the INVITE is refused with 503 and a Retry-After
        before anything is done for it (no 180, no media port), so that the
        carrier tries another node rather than waiting on silence.
        """
        from ._call import Call

        request = event.request
        if self.stopping:
            self._refuse(event, SHUTDOWN_RETRY_AFTER)
            return None
        now = asyncio.get_running_loop().time()
        if "oc" in request.top_via.params:
            self._overload_feedback(request, now)
        refusal = self.overload.admit(now, len(self.calls))
        if refusal is not None:
            self._refuse(event, refusal.retry_after)
            return None
        leg = InboundLeg(self, request, event.transaction, event.source)
        self._inbound[event.transaction] = leg
        call = Call(self, leg, user=user, trunk=trunk)
        self._alive_legs.add(leg)
        self._alive_calls.add(call)
        self.calls[call.id] = call
        self._idle.clear()
        log_arrived(call, show_numbers=self.config.logging.show_numbers)
        self.events.publish(CallArrived(call.id, call.did, call.trunk))
        if self.records is not None:
            self.records.call_started(call)
        self.calls_started += 1
        self._start(call, None)
        return call

    def resume(
        self,
        invite: Request,
        source: Address,
        call_id: str,
        snapshot: Mapping[str, Any],
        serve: Callable[[Call], Awaitable[None]],
    ) -> Call:
        """Take back a call an earlier run left waiting (a stored callback) and ``serve`` it.

        The caller's leg is long gone (``InboundLeg.departed``), so nothing
        of this call is on the wire until ``serve`` dials; the call keeps its
        id and so its record, which ``finish`` writes again at the end.
        """
        from ._call import Call

        leg = InboundLeg.departed(self, invite, source)
        call = Call(self, leg, user=None, trunk=None)
        call.restore(call_id, snapshot)
        self._alive_legs.add(leg)
        self._alive_calls.add(call)
        self.calls[call.id] = call
        self._idle.clear()
        self._start(call, serve(call))
        return call

    def _start(self, call: Call, script: Awaitable[None] | None) -> None:
        task = asyncio.get_running_loop().create_task(
            self._run(call, script), name=f"call {call.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _overload_feedback(self, request: Request, now: float) -> None:
        """RFC 7339: an upstream that supports overload control learns what share to cut.

        Written into the INVITE's top Via, so the 503, or the 180 and 200 of
        an admitted call, all carry it.
        """
        feedback = self.overload.feedback(now)
        if feedback is not None:
            wall = dataclasses.replace(feedback, seq=feedback.seq + self._wall_offset)
            wall.answer(request)

    def _refuse(self, event: RequestReceived, retry_after: int) -> None:
        self.calls_refused += 1
        response = make_response(event.request, 503)
        response.headers.add("Retry-After", str(retry_after))
        self.endpoint.send_response(event.transaction, response)

    def setup_done(self, leg: InboundLeg, status: int) -> None:
        """The caller's INVITE got its final response: publish the setup time."""
        seconds = asyncio.get_running_loop().time() - leg.started
        self.events.publish(CallSetup(leg.owner_id or leg.call_id, status, seconds))

    async def _run(self, call: Call, script: Awaitable[None] | None) -> None:
        try:
            if script is not None:
                await script
            elif self.handler is None:
                call.caller_leg.reject(480)
            else:
                await self.handler(call)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call %s failed", call.id)
            call.failed("error")
        finally:
            call.finish()
            self.calls.pop(call.id, None)
            self._inbound.pop(call.caller_leg.transaction, None)
            if not self.calls:
                self._idle.set()

    async def transfer(self, call: Call, target: str) -> None:
        """Blind transfer of an answered caller to an extension (IVR transfer node)."""
        if self.script is None:
            raise RuntimeError("no call script")
        await self.script.transfer(call, target)

    def dial(
        self,
        target: SipUri,
        destination: Address,
        *,
        from_addr: NameAddr,
        to_addr: NameAddr,
    ) -> OutboundLeg:
        """A new outbound leg (not yet started: ``await leg.start()``)."""
        leg = OutboundLeg(self, target, destination, from_addr=from_addr, to_addr=to_addr)
        self._alive_legs.add(leg)
        return leg

    # -- events from SipApplication ------------------------------------------------------

    def in_dialog(self, event: RequestReceived) -> None:
        """A request with a To tag: inside one of our dialogs, or 481."""
        request = event.request
        check = self.dialogs.check_request(request)
        if check.outcome is Outcome.ACCEPT and check.dialog is not None:
            leg = self._by_dialog.get(check.dialog.id)
            if leg is not None and request.method != "ACK":
                leg.request_received(request, event.transaction)
                return
            status = 481
        elif check.outcome is Outcome.REJECT:
            status = check.status or 481
        elif check.outcome is Outcome.DROP:
            return
        else:
            status = 481
        response = make_response(request, status)
        if check.retry_after is not None:
            response.headers.add("Retry-After", str(check.retry_after))
        self.endpoint.send_response(event.transaction, response)

    def ack(self, request: Request) -> None:
        dialog = self.dialogs.find(request)
        if dialog is None:
            return
        leg = self._by_dialog.get(dialog.id)
        if leg is not None:
            leg.ack_received(request)

    def cancel(self, transaction: str) -> None:
        leg = self._inbound.get(transaction)
        if leg is not None:
            leg.cancelled()

    def owns(self, transaction: str) -> bool:
        return transaction in self._by_transaction or transaction in self._inbound

    def response(self, response: Response, transaction: str) -> None:
        leg = self._by_transaction.get(transaction)
        if leg is None:
            return
        # Once final, a transaction's response goes nowhere else; only an
        # INVITE we sent that was answered 2xx stays mapped, for the 2xx
        # retransmissions its leg must ACK again. (A failed INVITE lingers in
        # the transaction layer for Timer D, 32 s, which absorbs and ACKs the
        # retransmissions itself: the leg and its call need not live as long.)
        if response.status >= 300 or (
            response.status >= 200
            and not (isinstance(leg, OutboundLeg) and transaction == leg.transaction)
        ):
            del self._by_transaction[transaction]
        leg.response_received(response, transaction)

    def transaction_failed(self, transaction: str, method: str) -> None:
        leg = self._by_transaction.pop(transaction, None)
        if leg is not None:
            leg.transaction_failed(transaction, method)
            return
        inbound = self._inbound.get(transaction)
        if inbound is not None:
            inbound.invite_timed_out()

    def transaction_terminated(self, transaction: str) -> None:
        self._by_transaction.pop(transaction, None)

    def connection_closed(self, peer: Address) -> None:
        """A browser's WebSocket closed: the legs reached over it are gone with it.

        Nothing can reach that phone again (a reload opens a new WebSocket and
        registers anew), so each leg ends at once as if the browser had hung
        up, without a BYE, and its call treats it as any failed agent leg. An
        INVITE still ringing there fails through its transaction instead.
        """
        for leg in [leg for leg in self._by_dialog.values() if leg.destination == peer]:
            leg.connection_lost()

    # -- accounting ----------------------------------------------------------------------

    def resources(self) -> dict[str, int]:
        """What the calls hold right now; all zero (but ``dialog_timers`` for 64*T1
        after the last call) when the engine is idle. Run a garbage collection
        first for ``legs_alive``/``calls_alive`` to mean "leaked"."""
        media = self.media
        return {
            "calls": len(self.calls),
            "call_tasks": len(self._tasks),
            "dialogs": len(self.dialogs),
            "dialog_legs": len(self._by_dialog),
            "dialog_timers": len(self._dialog_timers),
            "client_transactions": len(self._by_transaction),
            "inbound_transactions": len(self._inbound),
            "legs_alive": len(self._alive_legs),
            "calls_alive": len(self._alive_calls),
            "rtp_ports_in_use": media.pool.in_use,
            "playbacks": len(media.player),
        }

    # -- shutdown ------------------------------------------------------------------------

    async def drain(self, timeout: float, abort: asyncio.Event | None = None) -> bool:
        """Refuse new calls and let those in progress end by themselves, for at most
        ``timeout`` seconds or until ``abort`` is set; True when every call ended."""
        if not self.stopping:
            self.stopping = True
            log.info(
                "draining: new calls are refused with 503; %d in progress may finish within %g s",
                len(self.calls),
                timeout,
            )
            for hook in self.on_drain:
                hook()
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._idle.wait())]
        if abort is not None:
            waits.append(asyncio.ensure_future(abort.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        if self.calls:
            log.info("drain over with %d calls in progress: hanging them up", len(self.calls))
            return False
        log.info("drained: no call in progress")
        return True

    async def stop(self) -> None:
        """Refuse new calls, hang up every call and wait for their scripts to end."""
        if not self.stopping:
            self.stopping = True
            log.info("stopping: new calls are refused with 503 from now on")
        for call in list(self.calls.values()):
            call.hangup_all("hangup")
        for handle in self._dialog_timers.values():
            handle.cancel()
        self._dialog_timers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
