"""One inbound call: the caller's leg, what happened to it, and its record.

``Call`` is what the call script, the IVR interpreter (through the
``ivr.CallSession`` protocol, which it implements) and later the ACD act on.
It keeps everything the CDR needs as the call goes: the route, the IVR path
and digits, variables from data dips, queue and agent, timestamps, the
disposition and who hung up.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ivr import CallerHungUp, PlayItem
from media import DtmfReceived
from sip import SipUri

from ..events import CallEnded, IvrResponse
from ._events import LegEnded, LegEvent
from ._legs import InboundLeg, SipLeg
from ._logline import log_ended

if TYPE_CHECKING:
    from ..config import Trunk
    from ._control import CallControl

__all__ = ["Call"]

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class Call:
    """An inbound call from its INVITE to its CDR; implements ``ivr.CallSession``."""

    def __init__(
        self,
        control: CallControl,
        caller: InboundLeg,
        *,
        user: str | None,
        trunk: Trunk | None,
    ) -> None:
        self.control = control
        self.caller_leg = caller
        self.id = self.call_id = uuid.uuid4().hex
        self.user = user  # the registered account that called, for internal calls
        self.trunk = trunk.name if trunk is not None else None
        invite = caller.invite
        uri = invite.uri
        self.did = uri.user_unescaped or "" if isinstance(uri, SipUri) else ""
        from_uri = invite.from_.uri
        # ``caller`` is the calling number, as ivr.CallSession names it.
        self.caller = from_uri.user_unescaped or "" if isinstance(from_uri, SipUri) else ""
        self.caller_name = invite.from_.display
        self.arrived_at = _now()
        self.arrived_monotonic = asyncio.get_running_loop().time()
        self.answered_at: datetime | None = None
        self.queued_at: datetime | None = None
        self.agent_answered_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.route: str | None = None
        self.queue: str | None = None
        self.agent: str | None = None
        self.ring_attempts = 0
        self.ivr_path: list[str] = []
        self.digits: list[str] = []
        self.variables: dict[str, str] = {}
        self.language = "en"
        self.recording = False
        self.recording_id: str | None = None
        self.survey_score: int | None = None
        self.wrap_up_code: str | None = None  # the agent's disposition, given in wrap-up
        self.wrap_up_s: float | None = None  # how long the agent's wrap-up lasted
        self.post_call_survey: str | None = None  # the survey flow, from the flow that runs
        self.survey_pending = False  # the agent hung up on a caller who gets the survey
        self.disposition: str | None = None
        self.hangup_side: str | None = None
        self.sip_cause: int | None = None
        self.failure_reason: str | None = None  # why a failed call failed, for metrics
        self.events: list[tuple[datetime, str, dict[str, Any]]] = []
        self.other_legs: list[SipLeg] = []
        self._digits: asyncio.Queue[str] = asyncio.Queue()
        self._playback: Any = None  # media.Playback while a prompt plays
        self._barge_in = False
        self._key_at: float | None = None  # loop time of the last key not yet answered by a prompt
        self._finished = False
        caller.on_event = self._caller_event
        caller.owner_id = self.id

    # -- ivr.CallSession: identity ---------------------------------------------------------

    # -- caller events ---------------------------------------------------------------------

    def _caller_event(self, event: LegEvent) -> None:
        if isinstance(event, DtmfReceived):
            log.debug(
                "call %s: key %s (%s, %d ms)", self.id, event.digit, event.source, event.duration_ms
            )
            self._key_at = asyncio.get_running_loop().time()
            playback = self._playback
            if playback is not None and self._barge_in and playback.active:
                playback.interrupt(event.digit)
            else:
                self._digits.put_nowait(event.digit)
        elif isinstance(event, LegEnded):
            if self._playback is not None:
                self._playback.stop()
            if self.hangup_side is None:
                self.hangup_side = "caller" if event.by_remote else "system"
            if self.sip_cause is None:
                self.sip_cause = event.status

    def _alive(self) -> None:
        if self.caller_leg.is_ended:
            raise CallerHungUp(self.id)

    # -- ivr.CallSession: media ------------------------------------------------------------

    async def play(self, items: Sequence[PlayItem], *, barge_in: bool = False) -> str | None:
        self._alive()
        rtp = self.caller_leg.rtp
        if rtp is None or not items:
            return None
        media = self.control.media
        await media.render(items)  # text not yet spoken by espeak-ng; cached after once
        self._alive()
        player = media.player
        if barge_in and not self._digits.empty():
            # A key pressed before the prompt started interrupts it at once.
            return self._digits.get_nowait()
        self._barge_in = barge_in
        sink: Any = rtp
        if self._key_at is not None:
            # The first prompt after a key press: time it to its first frame.
            sink = _FirstFrameProbe(rtp, self._key_at, self._responded)
            self._key_at = None
        playback = player.play(sink, media.items(items), barge_in=barge_in)
        self._playback = playback
        ended = self.caller_leg.ended
        try:
            waits: list[asyncio.Future[Any]] = [playback.done, ended]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._playback = None
            self._barge_in = False
            if playback.active:
                playback.stop()
        self._alive()
        result = playback.done.result()
        return result.digit if result.reason == "interrupted" else None

    async def get_digit(self, timeout: float) -> str | None:
        self._alive()
        if not self._digits.empty():
            return self._digits.get_nowait()
        getter: asyncio.Future[Any] = asyncio.ensure_future(self._digits.get())
        try:
            waits: list[asyncio.Future[Any]] = [getter, self.caller_leg.ended]
            done, _ = await asyncio.wait(
                waits,
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            if not getter.done():
                getter.cancel()
        if getter in done:
            digit: str = getter.result()
            return digit
        self._alive()
        return None

    def _responded(self, seconds: float) -> None:
        self.control.events.publish(IvrResponse(self.id, seconds))

    def flush_digits(self) -> None:
        while not self._digits.empty():
            self._digits.get_nowait()

    # -- ivr.CallSession: actions ----------------------------------------------------------

    async def enqueue(self, queue: str, priority: int, skills: Mapping[str, int]) -> None:
        self._alive()
        self._key_at = None  # what answers the key now is the queue, not a prompt
        self.queue = queue
        self.queued_at = _now()
        self.event("ENTERQUEUE", queue=queue, priority=priority)
        acd = self.control.acd
        if acd is None:
            raise RuntimeError("no ACD is running")
        await acd.enqueue(self, queue, priority, skills)
        if self.survey_pending:
            # Answered, and the agent hung up first: the flow's post-call
            # survey takes the caller now, not the nodes after the queue.
            raise CallerHungUp(self.id)

    async def transfer(self, target: str) -> None:
        self._alive()
        self._key_at = None
        await self.control.transfer(self, target)

    async def hangup(self, cause: int | None = None) -> None:
        if self.hangup_side is None:
            self.hangup_side = "system"
        self.hangup_all("hangup")
        raise CallerHungUp(self.id)

    def record_node(self, node_id: str) -> None:
        self.ivr_path.append(node_id)

    def record_digit(self, digit: str) -> None:
        self.digits.append(digit)

    def set_survey_score(self, score: int) -> None:
        self.survey_score = score

    # -- bookkeeping -----------------------------------------------------------------------

    def event(self, name: str, **data: Any) -> None:
        """Note a queue_log-style event for the record."""
        self.events.append((_now(), name, data))

    def failed(self, reason: str) -> None:
        self.failure_reason = self.failure_reason or reason
        self.disposition = self.disposition or "failed"
        self.hangup_side = self.hangup_side or "system"
        self.hangup_all("error")

    def hangup_all(self, reason: Any) -> None:
        """End every leg of the call from our side."""
        for leg in (self.caller_leg, *self.other_legs):
            leg.hangup(reason)

    def finish(self) -> None:
        """The script is over: make sure every leg is down and close the record."""
        if self._finished:
            return
        self._finished = True
        self.hangup_all("hangup")
        self.ended_at = _now()
        if self.disposition is None:
            answered = self.agent is not None and self.agent_answered_at is not None
            self.disposition = "answered" if answered else "abandoned" if self.queue else "failed"
            if self.queue is None and self.caller_leg.sip_status == 200:
                # Served by the IVR alone (or an extension): the call was answered.
                self.disposition = "answered"
            elif self.caller_leg.sip_status == 487:
                # The caller gave up (CANCEL) before anyone answered.
                self.disposition = "abandoned"
        if self.sip_cause is None:
            self.sip_cause = self.caller_leg.sip_status
        log_ended(self)
        self.control.events.publish(
            CallEnded(
                self.id,
                self.disposition,
                self.queue,
                self.hangup_side or "system",
                asyncio.get_running_loop().time() - self.arrived_monotonic,
                self.failure_reason if self.disposition == "failed" else None,
                self.agent if self.agent_answered_at is not None else None,
            )
        )
        recorder = self.control.records
        if recorder is not None:
            recorder.call_ended(self)
        # The ACD keeps each agent's last call for its wrap-up code and time: it
        # needs the record's fields, not the agents', colleagues' or supervisors' legs.
        self.other_legs = []

    # -- across runs (a stored callback) -------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What another run needs to take the call back (``restore``): JSON-safe."""
        return {
            # Shown to supervisors (restore reads them from the INVITE again).
            "caller": self.caller,
            "caller_name": self.caller_name,
            "did": self.did,
            "arrived_at": self.arrived_at.isoformat(),
            "answered_at": self.answered_at.isoformat() if self.answered_at else None,
            "user": self.user,
            "trunk": self.trunk,
            "route": self.route,
            "ivr_path": list(self.ivr_path),
            "digits": list(self.digits),
            "variables": dict(self.variables),
            "language": self.language,
            "ring_attempts": self.ring_attempts,
        }

    def restore(self, call_id: str, snapshot: Mapping[str, Any]) -> None:
        """Become the call ``snapshot`` was taken of (same id, so the same record)."""
        self.id = self.call_id = call_id
        self.caller_leg.owner_id = call_id
        self.arrived_at = datetime.fromisoformat(snapshot["arrived_at"])
        answered = snapshot.get("answered_at")
        self.answered_at = datetime.fromisoformat(answered) if answered else None
        self.user = snapshot.get("user")
        self.trunk = snapshot.get("trunk")
        self.route = snapshot.get("route")
        self.ivr_path = [str(node) for node in snapshot.get("ivr_path", ())]
        self.digits = [str(digit) for digit in snapshot.get("digits", ())]
        self.variables = {str(k): str(v) for k, v in dict(snapshot.get("variables", {})).items()}
        self.language = str(snapshot.get("language", "en"))
        self.ring_attempts = int(snapshot.get("ring_attempts", 0))

    def __repr__(self) -> str:
        return f"<Call {self.id} -> {self.did}>"  # no calling number: reprs reach logs


class _FirstFrameProbe:
    """Passes a player's frames to an RTP leg and reports when the first one leaves.

    Wraps the sink only for the one prompt that answers a key press, so the
    IVR response time (key press to first packet of the next prompt) is
    measured where it is sent, at the cost of one extra call per frame of
    that prompt.
    """

    __slots__ = ("_report", "_since", "_sink", "codec")

    def __init__(self, sink: Any, since: float, report: Callable[[float], None]) -> None:
        self._sink = sink
        self._since = since
        self._report: Callable[[float], None] | None = report
        self.codec = sink.codec

    def send_audio(self, payload: bytes, samples: int, *, marker: bool = False) -> None:
        self._sink.send_audio(payload, samples, marker=marker)
        report = self._report
        if report is not None:
            self._report = None
            report(asyncio.get_running_loop().time() - self._since)

    def skip_audio(self, samples: int) -> None:
        self._sink.skip_audio(samples)
