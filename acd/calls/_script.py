"""What the engine does with each call: route it, answer it, run its IVR, dial.

``CallScript`` is the handler ``CallControl`` runs as each call's task. It
matches the dialled number against ``routes:`` and then rejects the call,
runs an IVR flow, hands it to a queue, or rings an extension's registered
phones and bridges the caller to the one that answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

import ivr
from media import DtmfReceived, MonitorMode, Recorder, RecordingFailed
from media.player import PlayItem
from sip import Address, NameAddr, SipSyntaxError, SipUri, parse_uri

from ..events import RecordingError
from ..recordings import RecordingStore
from ..storage import RecordingRecord
from ._bridged import Bridged, Consultation, Supervision
from ._events import LegEnd, LegEvent, LegHeld, LegRinging, LegUnheld
from ._legs import OutboundLeg, SipLeg

if TYPE_CHECKING:
    from ..config import Config
    from ..registrar import Binding, LocationService
    from ._call import Call
    from ._control import CallControl

__all__ = ["CallScript", "MonitorRefused"]

log = logging.getLogger(__name__)


class MonitorRefused(Exception):
    """A supervisor cannot monitor that call now; the message says why."""


class CallScript:
    """Routes and serves calls; one instance per engine."""

    def __init__(
        self,
        control: CallControl,
        config: Config,
        location: LocationService,
        flows: dict[str, ivr.Flow],
        recordings: RecordingStore | None = None,
    ) -> None:
        self.control = control
        self.config = config
        self.location = location
        self.flows = flows
        self.recordings = recordings
        self.recordings_active = 0
        self.bridged: dict[str, Bridged] = {}  # call id -> its bridge now, and any supervisor
        self._monitor_tasks: set[asyncio.Future[None]] = set()
        """Bridged calls being recorded now (the ``recordings_active`` gauge)."""
        # How many recordings each live call has had; weak, so an ended call leaves nothing.
        self._recordings_made: weakref.WeakKeyDictionary[Call, int] = weakref.WeakKeyDictionary()
        self.http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.http = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()

    async def __call__(self, call: Call) -> None:
        leg = call.caller_leg
        acd = self.control.acd
        if call.user is not None and acd is not None and await acd.feature_code(call):
            return  # an agent's *21-*24 from a registered phone
        route = self.config.route_for(call.did)
        if route is None:
            # Reached only by an authenticated user or a trunk, who may learn
            # that the number does not exist.
            leg.reject(404)
            return
        call.route = route.match
        call.variables.update(self.config.variables)
        call.variables.update(route.variables)
        action = route.action
        if action == "hangup":
            assert route.hangup is not None
            leg.reject(route.hangup)
            return
        if action == "extension":
            target = route.extension_for(call.did)
            assert target is not None
            await self.dial_extension(call, target, record=route.record)
            return
        call.recording = route.record
        if not await leg.answer():
            return
        call.answered_at = datetime.now(UTC)
        if action == "ivr":
            assert route.ivr is not None
            flow = self.flows.get(route.ivr)
            if flow is None:
                log.error("route %s names IVR flow %r, which is not loaded", route.match, route.ivr)
                call.failed("no flow")
                return
            await self.run_ivr(call, flow)
        else:
            assert route.queue is not None
            queue = self.config.queues[route.queue]
            with contextlib.suppress(ivr.CallerHungUp):
                await call.enqueue(route.queue, 0, queue.skills)

    async def run_ivr(self, call: Call, flow: ivr.Flow) -> None:
        """Run ``flow``; a caller who hangs up mid-IVR stops it at once.

        Prompts and key waits notice the hang-up themselves, but a data dip
        waits on someone else's server: so the flow runs as its own task and
        is cancelled when the caller leaves while it is still in the IVR
        proper. Once the call is queued or being transferred, the queue and
        the bridge own its end (they hang up legs and close recordings) and
        the flow is left to finish.
        """
        if flow.post_call_survey is not None and call.post_call_survey is None:
            call.post_call_survey = flow.post_call_survey
        await self._run_flow(call, flow)
        if call.survey_pending and not call.caller_leg.is_ended:
            call.survey_pending = False
            survey = self.flows.get(call.post_call_survey or "")
            if survey is not None:
                await self._run_flow(call, survey)

    async def _run_flow(self, call: Call, flow: ivr.Flow) -> None:
        run = asyncio.ensure_future(
            ivr.run_flow(flow, call, http=self.http, now=lambda: datetime.now(UTC))
        )

        def caller_left(_ended: object) -> None:
            if not run.done() and call.queue is None and not call.other_legs:
                run.cancel()

        call.caller_leg.ended.add_done_callback(caller_left)
        try:
            result = await run
        except asyncio.CancelledError:
            if not call.caller_leg.is_ended:
                raise  # cancelled from outside (engine stopping), not by the hang-up
            log.debug("call %s: caller hung up during flow %s", call.id, flow.name)
            return
        finally:
            call.caller_leg.ended.remove_done_callback(caller_left)
            if not run.done():
                run.cancel()
        log.debug("call %s: flow %s ended: %s", call.id, flow.name, result)

    # -- ringing an extension --------------------------------------------------------------

    async def dial_extension(self, call: Call, user: str, *, record: bool) -> None:
        """Ring every registered phone of ``user``; bridge the caller to the first to answer."""
        targets = [(binding.uri, binding.destination) for binding in self.location.lookup(user)]
        to_addr = NameAddr(uri=SipUri(user=user, host=self.config.sip.domain))
        await self._dial(call, targets, to_addr, record=record, agent=user)

    async def dial_uri(self, call: Call, uri: SipUri, *, record: bool) -> None:
        """Dial a SIP URI (another PBX, a carrier's number) and bridge the caller to it."""
        destination = await self._resolve(uri)
        targets = [(uri, destination)] if destination is not None else []
        await self._dial(call, targets, NameAddr(uri=uri), record=record, agent=None)

    async def _resolve(self, uri: SipUri) -> Address | None:
        """Where to send a request for ``uri``: its host and port (RFC 3263's A/AAAA step;
        no SRV/NAPTR lookups), over the transport it names (UDP by default)."""
        transport = (uri.params.get("transport") or "udp").upper()
        if uri.scheme == "sips":
            transport = "TLS"
        default_port = 5061 if transport == "TLS" else 5060
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                uri.host, uri.port or default_port, type=socket.SOCK_DGRAM
            )
        except OSError as exc:
            log.info("cannot resolve %s: %s", uri.host, exc)
            return None
        if not infos:
            return None
        host, port = infos[0][4][0], infos[0][4][1]
        return Address(transport, str(host), int(port))

    async def _dial(
        self,
        call: Call,
        targets: list[tuple[SipUri, Address]],
        to_addr: NameAddr,
        *,
        record: bool,
        agent: str | None,
    ) -> None:
        """Ring ``targets`` in parallel; bridge the caller to the first to answer."""
        caller = call.caller_leg
        if not targets:
            caller.reject(480)
            return
        domain = self.config.sip.domain
        from_addr = NameAddr(
            uri=SipUri(user=call.caller or "anonymous", host=domain), display=call.caller_name
        )
        legs: list[OutboundLeg] = []
        for uri, destination in targets:
            leg = self.control.dial(uri, destination, from_addr=from_addr, to_addr=to_addr)
            leg.on_event = lambda event: caller.ring(180) if isinstance(event, LegRinging) else None
            legs.append(leg)
        call.other_legs.extend(legs)
        winner = await self._fork(call, legs)
        if winner is None:
            if not caller.is_ended:
                busy = any(leg.sip_status in (486, 600) for leg in legs)
                caller.reject(486 if busy else 480)
            return
        call.agent = agent
        if not caller.final_sent:
            if not await caller.answer():
                winner.hangup()
                return
            call.answered_at = datetime.now(UTC)
        call.agent_answered_at = datetime.now(UTC)
        await self.bridge(call, caller, winner, record=record)

    async def transfer(self, call: Call, target: str) -> None:
        """Blind transfer of the (answered) caller to an extension's phones or a SIP URI."""
        call.event("TRANSFER", target=target)
        call.disposition = "transferred"
        if target.startswith(("sip:", "sips:")):
            try:
                uri = parse_uri(target, "transfer target")
            except SipSyntaxError as exc:
                log.error("call %s: cannot transfer to %r: %s", call.id, target, exc)
                return
            if isinstance(uri, SipUri):
                await self.dial_uri(call, uri, record=call.recording)
            return
        await self.dial_extension(call, target, record=call.recording)

    async def bridge(
        self,
        call: Call,
        a: SipLeg,
        b: SipLeg,
        *,
        record: bool,
        hold_music: Sequence[PlayItem] = (),
        release: asyncio.Future[None] | None = None,
        keep_caller: Callable[[LegEnd], bool] | None = None,
        on_complete: Callable[[SipLeg, str], bool] | None = None,
    ) -> None:
        """Relay media between two answered legs until either hangs up; record if asked.

        With ``hold_music``, ``b`` (the agent) putting the call on hold stops
        the relay and loops the music to ``a`` (the caller) until unhold.
        ``release`` resolving (a blind transfer) ends the bridge with ``b``
        hung up and ``a`` kept, for whoever takes the caller next; so does
        ``b`` ending first when ``keep_caller(how b ended)`` says True (an
        agent's phone that failed: the queue takes the caller back).
        """
        assert a.rtp is not None and b.rtp is not None
        recorder: Recorder | None = None
        recording_id = call.id
        if record and self.recordings is not None:
            started = self._start_recording(call, self.recordings)
            if started is not None:
                recording_id, recorder = started
        bridged = self.bridged[call.id] = Bridged(
            call,
            a,
            b,
            recorder,
            player=self.control.media.player,
            hold_music=hold_music,
            pause_keys=self.config.recordings.pause_keys,
        )
        bridged.on_complete = on_complete
        if recorder is not None:
            self.recordings_active += 1
        previous = b.on_event

        def on_agent(event: LegEvent) -> None:
            if previous is not None:
                previous(event)
            if isinstance(event, DtmfReceived):
                bridged.agent_key(event.digit)
            elif not hold_music or bridged.consultation is not None:
                return  # a consultation holds the caller itself
            elif isinstance(event, LegHeld):
                bridged.hold()
            elif isinstance(event, LegUnheld):
                bridged.unhold()

        b.on_event = on_agent
        waits: list[asyncio.Future[Any]] = [a.ended, b.ended]
        if release is not None:
            waits.append(release)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if self.bridged.get(call.id) is bridged:
                del self.bridged[call.id]
            consultation = bridged.consultation
            if (
                consultation is not None
                and consultation.state in ("talking", "conference")
                and b.is_ended
                and not a.is_ended
                and bridged.on_complete is not None
            ):
                # The agent hung up on a colleague they consulted: the colleague takes the call.
                bridged.on_complete(consultation.complete(), consultation.extension)
            bridged.stop()
            b.on_event = previous
            if recorder is not None:
                self.recordings_active -= 1
            if call.hangup_side is None or call.hangup_side == "system":
                if b.is_ended and b.ended.result().by_remote:
                    call.hangup_side = "agent"
                elif a.is_ended and a.ended.result().by_remote:
                    call.hangup_side = "caller"
            # The agent hung up on a caller whose flow offers a post-call
            # survey: keep the caller, the flow's survey runs next.
            kept = (
                keep_caller is not None
                and b.is_ended
                and not a.is_ended
                and keep_caller(b.ended.result())
            )
            survey = (
                not kept
                and call.post_call_survey is not None
                and b.is_ended
                and b.ended.result().by_remote
                and not a.is_ended
            )
            if survey:
                call.survey_pending = True
            elif not kept and (release is None or not release.done()):
                a.hangup()
            b.hangup()
            if recorder is not None:
                await self._recording_done(call, recorder, recording_id)

    def monitor(
        self, call: Call, supervisor: str, extension: str, mode: MonitorMode
    ) -> Supervision:
        """Ring ``extension``'s phones and join the first to answer to ``call``'s bridge.

        Returns at once (the supervision is ``ringing``); raises
        :class:`MonitorRefused` when the call is not bridged, is monitored
        already, or the extension has no registered phone.
        """
        bridged = self.bridged.get(call.id)
        if bridged is None:
            raise MonitorRefused(f"call {call.id} is not connected to an agent")
        if bridged.supervision is not None:
            raise MonitorRefused(
                f"call {call.id} is monitored by {bridged.supervision.supervisor} already"
            )
        bindings = self.location.lookup(extension)
        if not bindings:
            raise MonitorRefused(f"extension {extension!r} has no registered phone")
        supervision = self._supervise(bridged, supervisor, extension, mode)
        domain = self.config.sip.domain
        from_addr = NameAddr(
            uri=SipUri(user=call.agent or "monitor", host=domain),
            display=f"{mode.value} {call.agent or ''}".strip(),
        )
        to_addr = NameAddr(uri=SipUri(user=extension, host=domain))
        legs = self._dial_bindings(bindings, from_addr, to_addr)
        supervision.legs = list(legs)
        call.other_legs.extend(legs)  # hung up with the call, whatever happens here
        task = asyncio.ensure_future(self._ring_supervisor(call, bridged, supervision, legs))
        self._monitor_tasks.add(task)
        task.add_done_callback(self._monitor_tasks.discard)
        return supervision

    def join_supervisor(
        self, call: Call, supervisor: str, leg: SipLeg, mode: MonitorMode
    ) -> Supervision:
        """A supervisor's phone that dialled in (a feature code), answered: join ``call``.

        Raises :class:`MonitorRefused` as :meth:`monitor` does.
        """
        bridged = self.bridged.get(call.id)
        if bridged is None:
            raise MonitorRefused(f"call {call.id} is not connected to an agent")
        if bridged.supervision is not None or bridged.consultation is not None:
            raise MonitorRefused(f"call {call.id} has a third party already")
        supervision = self._supervise(bridged, supervisor, "phone", mode)
        supervision.legs = [leg]
        supervision.connected(leg, bridged.bridge)
        return supervision

    def _supervise(
        self, bridged: Bridged, supervisor: str, extension: str, mode: MonitorMode
    ) -> Supervision:
        supervision = Supervision(
            bridged.call, supervisor, extension, mode, self.control.media.clock
        )
        bridged.supervision = supervision

        def ended(finished: Supervision) -> None:
            if bridged.supervision is finished:
                bridged.supervision = None

        supervision.on_end = ended
        return supervision

    def consult(self, call: Call, extension: str) -> Consultation:
        """Hold ``call``'s caller and ring ``extension`` for its agent to talk to.

        Raises :class:`MonitorRefused` when the call is not bridged, is in a
        consultation already or on hold, or the extension has no phone.
        """
        bridged = self.bridged.get(call.id)
        if bridged is None:
            raise MonitorRefused(f"call {call.id} is not connected to an agent")
        if bridged.consultation is not None:
            raise MonitorRefused(f"call {call.id} is in a consultation already")
        if bridged.held:
            raise MonitorRefused(f"call {call.id} is on hold")
        if extension == call.agent:
            raise MonitorRefused("an agent cannot consult themselves")
        bindings = self.location.lookup(extension)
        if not bindings:
            raise MonitorRefused(f"extension {extension!r} has no registered phone")
        domain = self.config.sip.domain
        from_addr = NameAddr(uri=SipUri(user=call.agent or "agent", host=domain))
        to_addr = NameAddr(uri=SipUri(user=extension, host=domain))
        legs = self._dial_bindings(bindings, from_addr, to_addr)
        call.other_legs.extend(legs)

        return bridged.start_consultation(extension, legs, lambda: self._fork(call, legs))

    async def _ring_supervisor(
        self,
        call: Call,
        bridged: Bridged,
        supervision: Supervision,
        legs: list[OutboundLeg],
    ) -> None:
        try:
            winner = await self._fork(call, legs)
        except Exception:
            log.exception("call %s: ringing supervisor %s failed", call.id, supervision.extension)
            for leg in legs:
                leg.cancel()
            winner = None
        if (
            winner is None
            or supervision.state != "ringing"
            or self.bridged.get(call.id) is not bridged
        ):
            if winner is not None:
                winner.hangup()
            supervision.end()
            return
        supervision.connected(winner, bridged.bridge)

    def _start_recording(self, call: Call, store: RecordingStore) -> tuple[str, Recorder] | None:
        """The id and recorder of this bridge's recording, or None when the disk guard says no.

        Names only, on the loop: the recorder's writer thread makes the
        folders and the file with the first audio. A transferred call is
        bridged, and recorded, again; numbering its recordings gives the
        second ``<call_id>-2`` and a file of its own.
        """
        if not store.can_record():
            # The store logs when the disk goes low and when it recovers, not per call.
            log.debug("call %s: not recorded, free disk below the guard", call.id)
            self.control.events.publish(RecordingError(call.id, "disk-guard"))
            return None
        number = self._recordings_made.get(call, 0) + 1
        self._recordings_made[call] = number
        recording_id, path = store.recording_for(call.id, call.arrived_at, number)
        return recording_id, Recorder(path, root=store.root)

    async def _recording_done(self, call: Call, recorder: Recorder, recording_id: str) -> None:
        try:
            finished = await recorder.close()
        except RecordingFailed:
            # The recorder logged why when it happened: once, not again here.
            self.control.events.publish(RecordingError(call.id, "write-failed"))
            return
        except Exception:
            log.exception("call %s: recording could not be finished", call.id)
            self.control.events.publish(RecordingError(call.id, "write-failed"))
            return
        call.recording_id = recording_id  # the call's record links its latest recording
        if self.control.records is not None:
            self.control.records.recording(
                RecordingRecord(
                    id=recording_id,
                    call_id=call.id,
                    path=self.recordings.relative(Path(finished.path))
                    if self.recordings is not None
                    else str(finished.path),
                    duration_s=finished.duration_s,
                    size_bytes=finished.size_bytes,
                    sha256=finished.sha256,
                    channels=finished.channels,
                    created_at=datetime.now(UTC),
                )
            )

    def _dial_bindings(
        self, bindings: Sequence[Binding], from_addr: NameAddr, to_addr: NameAddr
    ) -> list[OutboundLeg]:
        """A leg (not started) to each registered phone of an extension."""
        return [
            self.control.dial(b.uri, b.destination, from_addr=from_addr, to_addr=to_addr)
            for b in bindings
        ]

    def bridged_for_agent(self, agent: str) -> Bridged | None:
        """The bridged call ``agent`` is on now, if any."""
        return next((b for b in self.bridged.values() if b.call.agent == agent), None)

    async def _fork(self, call: Call, legs: list[OutboundLeg]) -> OutboundLeg | None:
        """Ring every leg, keep the first to answer, cancel the rest."""
        await asyncio.gather(*(leg.start() for leg in legs))
        winner = await self._first_answer(call, legs)
        for leg in legs:
            if leg is not winner:
                leg.cancel()
        return winner

    async def _first_answer(self, call: Call, legs: list[OutboundLeg]) -> OutboundLeg | None:
        """The first leg to answer, or None when all failed, time ran out or the caller left."""
        timeout = self.config.calls.ring_timeout
        pending: set[asyncio.Future[object]] = {leg.answered for leg in legs}  # type: ignore[misc]
        pending.add(call.caller_leg.ended)  # type: ignore[arg-type]
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return None
            done, pending = await asyncio.wait(
                pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                return None
            if call.caller_leg.is_ended:
                return None
            for leg in legs:
                if leg.is_answered:
                    return leg
            if all(leg.is_ended for leg in legs):
                return None
