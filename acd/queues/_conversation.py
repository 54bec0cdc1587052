"""One queued call's life after it joins: waiting, the agent, transfer, callback.

``serve`` is the body of ``AcdService.enqueue``. It keeps the call in a
queue with music on hold until the wait ends one of four ways:

* an agent answered: the caller and agent are bridged (and recorded); a
  blind transfer by the agent (REFER) moves the caller to another queue or
  rings an extension; the end of the talk puts the agent in wrap-up;
* the caller hung up: ABANDON, and ``ivr.CallerHungUp`` to the caller's script;
* maximum wait: a prompt and hang-up, a move to another queue (the record
  keeps the first queue entry's time), or a callback;
* callback (the offered key, or maximum wait): the caller hangs up and keeps
  their place; when their turn comes the agent is connected first, then the
  caller is dialled through the trunk the call came in on.

Every step is an event on the call (``acd.storage.EventType`` names), and
the call's disposition says how it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import ivr
from sip import Address, NameAddr, SipUri

from ..calls import LegReferred
from ..storage import CallbackRecord, CallbackState
from ._callbacks import Handover
from ._service import _Connected, _Exit, _Waiter

if TYPE_CHECKING:
    from ..calls import Call, LegEnd, LegEvent, SipLeg
    from ._service import AcdService

__all__ = ["serve", "serve_restored"]

log = logging.getLogger(__name__)


class Transfer(NamedTuple):
    """Where the agent sent the caller: a queue, an extension to ring, a consulted colleague."""

    kind: str  # "queue", "extension", "consult" (with the colleague's answered leg) or "requeue"
    target: str
    leg: SipLeg | None = None


@dataclass(frozen=True, slots=True)
class _Requeue:
    """The agent's phone failed at once: the caller goes back, ``waited`` seconds in."""

    queue: str
    waited: float


async def serve(
    service: AcdService, call: Call, queue: str, priority: int, skills: dict[str, int]
) -> None:
    """Serve ``call`` from ``queue`` (and wherever it moves) until it is over."""
    target: str | None = queue
    waited = 0.0
    first = True
    while target is not None:
        if not first and not waited:
            # Moved at maximum wait or transferred: a new entry in another queue.
            call.queue = target
            call.event("ENTERQUEUE", queue=target, priority=priority)
            skills = dict(service.config.queues[target].skills)
        first = False
        step = await _serve_once(service, call, target, priority, skills, waited)
        target, waited = (step.queue, step.waited) if isinstance(step, _Requeue) else (step, 0.0)


async def _serve_once(
    service: AcdService,
    call: Call,
    queue: str,
    priority: int,
    skills: dict[str, int],
    waited: float = 0.0,
) -> str | _Requeue | None:
    """One stay in one queue; returns the next queue when the call moves on.

    ``waited``: the caller was here before (their agent's phone failed), as
    long ago as that, so they are ahead of everyone who joined since.
    """
    joined = service.join(call, queue, priority, skills, waited=waited)
    if isinstance(joined, str):
        call.event("EXITEMPTY", queue=queue, reason=joined)
        call.disposition = call.disposition or "failed"
        call.failure_reason = call.failure_reason or f"queue-{joined}"
        await service.hang_up_caller(call, "all_agents_busy")
        return None
    waiter = joined
    spec = service.spec(queue)

    def on_key(key: str) -> bool:
        if key == spec.callback_key and service.is_callback_possible(call):
            return service.keep_place(waiter, _Exit("callback-key", key=key))
        return False

    music = service.waiting_music(waiter, on_key)
    music.start()
    outcome = waiter.outcome
    try:
        result = await outcome
    finally:
        await music.stop()
        if not outcome.done() and waiter.call.id in service._waiting:
            # Cancelled (the engine is stopping): the call must not stay queued.
            service.left(waiter, "failed")
            service.leave(waiter, "failed")
    if isinstance(result, _Connected):
        service.left(waiter, "answered", result.agent)
        return await _talk(service, waiter, result.agent, result.leg, call.caller_leg)
    if result.why == "abandoned":
        call.disposition = call.disposition or "abandoned"
        call.hangup_side = call.hangup_side or "caller"
        raise ivr.CallerHungUp(call.id)
    waited = round(asyncio.get_running_loop().time() - waiter.joined_at, 3)
    if waiter.callback:
        if result.key is not None:
            call.event("EXITWITHKEY", queue=queue, key=result.key, waited=waited)
        by = "key" if result.key is not None else "max-wait"
        await _callback(service, waiter, by, priority, skills)
        return None
    action = result.action
    moved = action.removeprefix("queue:") if action.startswith("queue:") else None
    call.event("EXITWITHTIMEOUT", queue=queue, waited=waited, moved_to=moved)
    service.left(waiter, "timeout")
    service.leave(waiter, "timeout")
    if moved is not None and moved in service.config.queues:
        return moved
    call.disposition = call.disposition or "timeout"
    await service.hang_up_caller(call, "max_wait_reached")
    return None


async def _talk(
    service: AcdService, waiter: _Waiter, agent: str, agent_leg: SipLeg, caller_leg: SipLeg
) -> str | _Requeue | None:
    """Caller and agent bridged; returns a queue to move to when the agent transferred there,
    or the same queue again when the agent's phone failed at once."""
    call = waiter.call
    holdtime = round(asyncio.get_running_loop().time() - waiter.joined_at, 3)
    call.agent = agent
    call.agent_answered_at = datetime.now(UTC)
    call.event("CONNECT", queue=waiter.queue, agent=agent, holdtime=holdtime)
    transfer = await _converse(service, call, waiter.queue, agent, caller_leg, agent_leg, holdtime)
    if transfer is None:
        return None
    kind, target, colleague = transfer
    if kind == "requeue":
        return _Requeue(target, asyncio.get_running_loop().time() - waiter.joined_at)
    if kind == "queue":
        return target
    script = service.control.script
    assert script is not None
    if kind == "consult":
        # The colleague the agent consulted is on the line already: bridge them.
        if colleague is not None and not colleague.is_ended:
            call.agent = target
            call.agent_answered_at = datetime.now(UTC)
            await script.bridge(call, caller_leg, colleague, record=call.recording)
            return None
        caller_leg.hangup()
        return None
    await script.dial_extension(call, target, record=call.recording)
    return None


async def _converse(
    service: AcdService,
    call: Call,
    queue: str,
    agent: str,
    caller_leg: SipLeg,
    agent_leg: SipLeg,
    holdtime: float,
) -> Transfer | None:
    """Bridge and record until either side hangs up or the agent transfers; then wrap-up."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    release: asyncio.Future[None] = loop.create_future()
    transfers: list[Transfer] = []

    def on_event(event: LegEvent) -> None:
        if isinstance(event, LegReferred) and not release.done():
            transfer = _transfer_target(service, event)
            if transfer is None:
                return
            transfers.append(transfer)
            release.set_result(None)

    window = service.config.queues[queue].requeue_window if queue in service.config.queues else 0
    failed: list[str] = []

    def keep_caller(end: LegEnd) -> bool:
        """The agent's side ended the call within the requeue window: take the caller back."""
        if not window or release.done() or loop.time() - started > window:
            return False
        if end.by_remote or end.reason in ("media-timeout", "timeout"):
            failed.append(end.reason)
            return True
        return False

    def on_complete(colleague: SipLeg, extension: str) -> bool:
        """A consultation ends in a transfer: the colleague takes the caller."""
        if release.done():
            return False
        transfers.append(Transfer("consult", extension, colleague))
        release.set_result(None)
        return True

    agent_leg.on_event = on_event
    script = service.control.script
    assert script is not None
    try:
        await script.bridge(
            call,
            caller_leg,
            agent_leg,
            record=call.recording,
            hold_music=service.music,
            release=release,
            keep_caller=keep_caller,
            on_complete=on_complete,
        )
    finally:
        talk = loop.time() - started
        if failed:
            service.call_failed(call, agent)
        else:
            service.call_ended(call, agent, talk)
    times: dict[str, Any] = {"holdtime": holdtime, "talktime": round(talk, 3)}
    if failed:
        call.event("REQUEUE", queue=queue, agent=agent, reason=failed[0], **times)
        call.hangup_side = None  # the call goes on: who ends it is still to come
        log.info(
            "call %s: agent %s's phone left after %.1f s; back to %s", call.id, agent, talk, queue
        )
        return Transfer("requeue", queue)
    if transfers:
        kind, target, _leg = transfers[0]
        call.event("TRANSFER", queue=queue, agent=agent, kind=kind, target=target, **times)
        call.disposition = "transferred"
        call.hangup_side = None  # the call goes on with whoever takes it
        return transfers[0]
    ended_by = "COMPLETEAGENT" if call.hangup_side == "agent" else "COMPLETECALLER"
    call.event(ended_by, queue=queue, agent=agent, **times)
    return None


def _transfer_target(service: AcdService, event: LegReferred) -> Transfer | None:
    """Where a REFER's target routes; the referrer hears 200, or why not, by NOTIFY."""
    leg = event.leg
    user = event.target.user_unescaped or ""
    route = service.config.route_for(user)
    transfer: Transfer | None = None
    status = 404
    if route is not None and route.action == "queue" and route.queue is not None:
        transfer = Transfer("queue", route.queue)
    elif route is not None and route.action == "extension":
        extension = route.extension_for(user)
        if extension is not None and service.location.is_registered(extension):
            transfer = Transfer("extension", extension)
        else:
            status = 480
    elif route is not None:
        status = 403  # IVR flows and hang-up routes are not transfer targets
    leg.notify_refer(200 if transfer is not None else status)
    log.info("%s: REFER to %s -> %s", leg, event.target, transfer or status)
    return transfer


async def _callback(
    service: AcdService, waiter: _Waiter, by: str, priority: int, skills: dict[str, int]
) -> None:
    """The caller keeps their place and hangs up; the request is stored, then served."""
    call = waiter.call
    call.event("CALLBACK", queue=waiter.queue, requested_by=by, number=call.caller, step="queued")
    call.disposition = "callback"  # left for a callback; failed if it never reaches them
    service.callbacks.requested(waiter, by, priority, skills)
    await service.hang_up_caller(call, "callback_confirmed")
    await _serve_callback(service, waiter)


async def serve_restored(service: AcdService, call: Call, record: CallbackRecord) -> None:
    """A request an earlier run stored: back in its queue at its place, then served."""
    book = service.callbacks
    call.queue = record.queue
    call.queued_at = record.queued_at
    call.disposition = "callback"
    settings = service.config.queues.get(record.queue)
    now = datetime.now(UTC)
    if settings is None or now - record.requested_at > timedelta(seconds=settings.callback_expiry):
        why = "expired" if settings is not None else "queue-gone"
        call.event("CALLBACK", queue=record.queue, step=why)
        call.disposition = "failed"
        call.failure_reason = f"callback-{why}"
        book.finished(call.id, CallbackState.EXPIRED)
        return
    call.event("CALLBACK", queue=record.queue, step="restored", attempts=record.attempts)
    try:
        if record.due_at is not None and record.due_at > now:
            await _until_due(book.stop_signal(call.id), (record.due_at - now).total_seconds())
        waiter = _rejoin(service, call, record)
    except Handover as exc:
        _handed_over(service, call, str(exc))
        return
    await _serve_callback(service, waiter)


def _rejoin(service: AcdService, call: Call, record: CallbackRecord) -> _Waiter:
    """Back in the queue at the caller's place: as if waiting since they first joined."""
    waited = max(0.0, (datetime.now(UTC) - record.queued_at).total_seconds())
    joined = service.join(
        call, record.queue, record.priority, record.skills, waited=waited, callback=True
    )
    assert not isinstance(joined, str)  # a callback joins whoever is logged in
    service.callbacks.waiting(call.id, joined)
    return joined


async def _until_due(stop: asyncio.Future[str], delay: float) -> None:
    """Wait ``delay`` seconds before the next attempt, unless the request is taken away."""
    done, _ = await asyncio.wait([stop], timeout=delay)
    if done:
        raise Handover(stop.result())


def _handed_over(service: AcdService, call: Call, why: str) -> None:
    """The request leaves this run: stored as waiting (drain) or cancelled (already noted)."""
    call.event("CALLBACK", queue=call.queue, step=why)
    if why == "cancelled":
        call.disposition = "failed"
        call.failure_reason = "callback-cancelled"
    service.callbacks.left_run(call.id)


async def _serve_callback(service: AcdService, waiter: _Waiter) -> None:
    """Wait for an agent, dial the caller; an unanswered dial is retried after a delay."""
    call = waiter.call
    book = service.callbacks
    stop = book.stop_signal(call.id)
    loop = asyncio.get_running_loop()
    while True:
        outcome = waiter.outcome
        try:
            waits: list[asyncio.Future[Any]] = [outcome, stop]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not outcome.done():
                # Cancelled (the engine stops), handed over or cancelled: out of the
                # queue; the stored request says whether the next run serves it.
                service.left(waiter, "failed")
                service.leave(waiter, "failed")
                if not stop.done():
                    book.left_run(call.id)
        if not outcome.done():
            _handed_over(service, call, stop.result())
            return
        result = outcome.result()
        if not isinstance(result, _Connected):
            service.left(waiter, "failed")
            call.disposition = "failed"
            call.failure_reason = call.failure_reason or "callback-lost"
            book.finished(call.id, CallbackState.FAILED)
            return
        agent, agent_leg = result.agent, result.leg
        service.left(waiter, "callback", agent)
        call.agent = agent
        record = book.attempt(call.id, agent)
        caller_leg = await _dial_caller(service, call, agent_leg)
        if caller_leg is not None:
            book.finished(call.id, CallbackState.DONE)
            call.disposition = "callback"
            call.event("CALLBACK", queue=waiter.queue, agent=agent, step="connected")
            holdtime = round(loop.time() - waiter.joined_at, 3)
            call.agent_answered_at = datetime.now(UTC)
            call.event("CONNECT", queue=waiter.queue, agent=agent, holdtime=holdtime)
            await _converse(service, call, waiter.queue, agent, caller_leg, agent_leg, holdtime)
            call.disposition = "callback"
            return
        agent_leg.hangup()
        service.call_ended(call, agent, 0.0)
        call.event(
            "CALLBACK", queue=waiter.queue, agent=agent, step="unanswered", attempt=record.attempts
        )
        settings = service.config.queues.get(waiter.queue)
        if settings is None or record.attempts >= settings.callback_attempts:
            call.event("CALLBACK", queue=waiter.queue, step="gave-up", attempts=record.attempts)
            call.disposition = "failed"
            call.failure_reason = "callback-unanswered"
            book.finished(call.id, CallbackState.FAILED)
            return
        delay = settings.callback_retry_delay
        book.retry(call.id, delay)
        call.event("CALLBACK", queue=waiter.queue, step="retry", after=delay)
        try:
            await _until_due(stop, delay)
        except Handover as exc:
            _handed_over(service, call, str(exc))
            return
        waiter = _rejoin(service, call, book.record(call.id))


async def _dial_caller(service: AcdService, call: Call, agent_leg: SipLeg) -> SipLeg | None:
    """Call the caller back through their trunk while the agent hears music; None if no answer."""
    trunk = service.trunk_for(call)
    if trunk is None or trunk.host is None:
        log.warning("call %s: its trunk %s is gone: the callback cannot dial", call.id, call.trunk)
        return None
    host, port = trunk.host.host, trunk.host.port or 5060
    target = SipUri(user=call.caller, host=host, port=port)
    domain = service.config.sip.domain
    leg = service.control.dial(
        target,
        Address(trunk.transport.upper(), host, port),
        from_addr=NameAddr(uri=SipUri(user=call.did or "acd", host=domain)),
        to_addr=NameAddr(uri=SipUri(user=call.caller, host=host)),
    )
    call.other_legs.append(leg)
    playback = None
    if agent_leg.rtp is not None:
        playback = service.control.media.player.play(agent_leg.rtp, service.music, loop=True)
    try:
        await leg.start()
        waits: list[asyncio.Future[Any]] = [leg.answered, leg.ended, agent_leg.ended]
        await asyncio.wait(
            waits,
            timeout=service.config.calls.ring_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        if playback is not None:
            playback.stop()
    if leg.is_answered and not agent_leg.is_ended:
        return leg
    with contextlib.suppress(Exception):
        leg.cancel()
    return None
