"""A bridged call's live state: hold, a supervisor, a consultation, the recording's pause.

``CallScript.bridge`` keeps one :class:`Bridged` per bridged call: the media
bridge of the moment (hold ends it, unhold makes a new one), the
:class:`Supervision` and the :class:`Consultation`, if any.

**Supervision.** A supervision rings the supervisor's phones
(the extension's registered contacts, the first to answer wins) and, once
answered, joins that leg to the bridge in its mode (media/_mix.py says who
hears whom). The supervisor switches modes from the API or from the phone's
keypad: 4 listen, 5 whisper, 6 barge (the keys of Asterisk's ChanSpy). It
ends when the supervisor hangs up, when the API says so, or with the call;
while the call is on hold the supervisor hears the silence of a stopped
bridge, and the monitor rejoins the new bridge after unhold.

Each step is a call event for the record: ``MONITOR`` (supervisor,
extension, mode) when the supervisor's phone answers and at each change of
mode, ``MONITOREND`` (supervisor, seconds) when it ends.

**Consultation** (attended transfer and conference, from the API): the
caller is held (music), the agent's chosen extension rings, and the first of
its phones to answer talks with the agent alone. Then the agent completes
the transfer (the caller is bridged to the colleague and the agent's leg
ends; so does the agent hanging up while they talk), makes it a conference
of three (the colleague joins the caller's bridge as a party everyone
hears, media/_mix.py's barge), or cancels (the colleague's phone is hung up
and the caller comes back). The record keeps ``CONSULT`` (agent, extension),
``CONFERENCE``, and ``CONSULTEND`` (outcome).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from media import Bridge, DtmfReceived, MonitorMode
from media.player import Playback, PlayItem

from ..events import ConsultationChanged
from ._events import LegEnded, LegEvent
from ._legs import OutboundLeg, SipLeg

if TYPE_CHECKING:
    from media import Player, Recorder
    from media.clock import MediaClock

    from ._call import Call

__all__ = ["MONITOR_KEYS", "Bridged", "Consultation", "Supervision"]

log = logging.getLogger(__name__)

MONITOR_KEYS = {"4": MonitorMode.LISTEN, "5": MonitorMode.WHISPER, "6": MonitorMode.BARGE}
"""The supervisor's keypad: a key press switches the mode."""


class Supervision:
    """One supervisor's phone on one call, from ringing to hang-up."""

    def __init__(
        self, call: Call, supervisor: str, extension: str, mode: MonitorMode, clock: MediaClock
    ) -> None:
        self.call = call
        self.supervisor = supervisor
        self.extension = extension
        self.mode = mode
        self.state = "ringing"  # then "connected", then "ended"
        self.leg: SipLeg | None = None
        self.legs: list[SipLeg] = []  # every phone rung, or the phone that dialled in
        self._clock = clock
        self._bridge: Bridge | None = None
        self._connected_at: float | None = None
        self.on_end: Callable[[Supervision], None] | None = None

    def public(self) -> dict[str, object]:
        """As the API shows it."""
        return {
            "call_id": self.call.id,
            "agent": self.call.agent,
            "supervisor": self.supervisor,
            "extension": self.extension,
            "mode": self.mode.value,
            "state": self.state,
        }

    def connected(self, leg: SipLeg, bridge: Bridge | None) -> None:
        """The supervisor's phone answered: join the call's bridge of the moment."""
        self.leg = leg
        self.state = "connected"
        self._connected_at = asyncio.get_running_loop().time()
        leg.on_event = self._on_event
        self.call.event(
            "MONITOR", supervisor=self.supervisor, extension=self.extension, mode=self.mode.value
        )
        log.info(
            "call %s: %s monitors agent %s (%s)",
            self.call.id,
            self.supervisor,
            self.call.agent,
            self.mode.value,
        )
        self.attach(bridge)

    def attach(self, bridge: Bridge | None) -> None:
        """Join ``bridge`` (the call's new one after unhold); None while on hold."""
        self._bridge = bridge
        leg = self.leg
        if bridge is None or leg is None or leg.rtp is None or not bridge.active:
            return
        bridge.monitor(leg.rtp, self.mode, self._clock)

    def set_mode(self, mode: MonitorMode) -> None:
        """Switch between listen, whisper and barge (a no-op for the mode it is in)."""
        mode = MonitorMode(mode)
        if mode is self.mode:
            return
        self.mode = mode
        if self.state == "connected":
            self.call.event(
                "MONITOR", supervisor=self.supervisor, extension=self.extension, mode=mode.value
            )
            bridge = self._bridge
            if bridge is not None and bridge.active and bridge.monitor_mode is not None:
                bridge.set_monitor_mode(mode)

    def _on_event(self, event: LegEvent) -> None:
        if isinstance(event, DtmfReceived):
            mode = MONITOR_KEYS.get(event.digit)
            if mode is not None:
                self.set_mode(mode)
        elif isinstance(event, LegEnded):
            self._ended()

    def end(self) -> None:
        """Hang up the supervisor's phone (or stop it ringing); idempotent."""
        for leg in self.legs:
            if leg.is_ended:
                continue
            if leg.is_answered:
                leg.hangup()
            elif isinstance(leg, OutboundLeg):
                leg.cancel()
        self._ended()

    def _ended(self) -> None:
        if self.state == "ended":
            return
        was_connected = self.state == "connected"
        self.state = "ended"
        bridge = self._bridge
        if bridge is not None and bridge.active and bridge.monitor_mode is not None:
            bridge.unmonitor()
        self._bridge = None
        if was_connected and self._connected_at is not None:
            seconds = round(asyncio.get_running_loop().time() - self._connected_at, 3)
            self.call.event("MONITOREND", supervisor=self.supervisor, seconds=seconds)
        if self.on_end is not None:
            self.on_end(self)


class Consultation:
    """The agent talks to a colleague while the caller holds; then transfer, conference, or not."""

    def __init__(self, bridged: Bridged, extension: str, legs: list[OutboundLeg]) -> None:
        self.bridged = bridged
        self.extension = extension
        self.legs = legs  # every phone of the extension rung
        self.leg: OutboundLeg | None = None
        self.state = "ringing"  # talking, conference; or ended: cancelled, failed, completed
        self._bridge: Bridge | None = None
        self._changed()

    def _changed(self) -> None:
        """Tell the event stream (the agent's desktop follows its consultation there)."""
        call = self.bridged.call
        call.control.events.publish(
            ConsultationChanged(call.id, call.agent or "", self.extension, self.state)
        )

    def public(self) -> dict[str, object]:
        """As the API shows it."""
        return {
            "call_id": self.bridged.call.id,
            "agent": self.bridged.call.agent,
            "extension": self.extension,
            "state": self.state,
        }

    @property
    def live(self) -> bool:
        return self.state in ("ringing", "talking", "conference")

    def answered(self, leg: OutboundLeg | None) -> None:
        """The ring is over: ``leg`` answered (agent and colleague talk), or nobody did."""
        if self.state != "ringing":
            if leg is not None:
                leg.hangup()
            return
        bridged = self.bridged
        agent = bridged.b
        if leg is None or leg.rtp is None or agent.rtp is None or agent.is_ended:
            if leg is not None:
                leg.hangup()
            self._finish("failed")
            bridged.unhold()
            return
        self.leg = leg
        self.state = "talking"
        self._changed()
        leg.on_event = self._on_event
        self._bridge = Bridge(agent.rtp, leg.rtp)

    def _on_event(self, event: LegEvent) -> None:
        if isinstance(event, LegEnded) and self.live:
            # The colleague hung up: back to the caller (or, in conference, two of us).
            self._stop_bridge()
            if self.state == "talking":
                self.bridged.unhold()
            self._finish("colleague-left")

    def cancel(self) -> None:
        """Hang up (or stop ringing) the colleague's phone; the caller comes back to the agent."""
        if not self.live:
            return
        self._stop_bridge()
        self._hang_up_colleague()
        if self.state in ("ringing", "talking"):
            self.bridged.unhold()
        self._finish("cancelled")

    def conference(self, clock: MediaClock) -> None:
        """All three talk: the colleague joins the caller's bridge as a party everyone hears."""
        if self.state != "talking" or self.leg is None or self.leg.rtp is None:
            raise ValueError("no colleague is on the line to join")
        bridged = self.bridged
        if bridged.supervision is not None:
            raise ValueError("a supervisor monitors the call; a conference needs that place")
        self._stop_bridge()
        bridged.unhold()
        if bridged.bridge is None:
            raise ValueError("the caller's bridge is not up")
        bridged.bridge.monitor(self.leg.rtp, MonitorMode.BARGE, clock)
        self.state = "conference"
        self._changed()
        bridged.call.event("CONFERENCE", agent=bridged.call.agent, extension=self.extension)

    def complete(self) -> SipLeg:
        """Hand the caller to the colleague: the leg to bridge them to (the agent's leg goes)."""
        if self.state not in ("talking", "conference") or self.leg is None:
            raise ValueError("no colleague is on the line to take the call")
        self._stop_bridge()
        bridge = self.bridged.bridge
        if bridge is not None and bridge.monitor_mode is not None:
            bridge.unmonitor()
        self.leg.on_event = None
        self._finish("completed")
        return self.leg

    def end(self) -> None:
        """The call's bridge is over: hang up whatever is still ringing or talking."""
        if self.live:
            self._stop_bridge()
            self._hang_up_colleague()
            self._finish("ended")

    def _stop_bridge(self) -> None:
        if self._bridge is not None:
            self._bridge.stop()
            self._bridge = None

    def _hang_up_colleague(self) -> None:
        for leg in self.legs:
            leg.on_event = None  # our own hang-up is not the colleague leaving
            if leg.is_ended:
                continue
            if leg.is_answered:
                leg.hangup()
            else:
                leg.cancel()

    def _finish(self, outcome: str) -> None:
        self.state = outcome
        self._changed()
        self.bridged.call.event(
            "CONSULTEND", agent=self.bridged.call.agent, extension=self.extension, outcome=outcome
        )
        if self.bridged.consultation is self:
            self.bridged.consultation = None


class Bridged:
    """A bridged call: caller ``a`` and agent ``b``, the bridge of the moment, who else is on.

    Hold (from the agent's phone, or a consultation) stops the bridge and
    loops ``hold_music`` to the caller; unhold makes a new bridge, which the
    supervisor rejoins. The recording pauses and resumes from the API or
    from the agent's keypad (``pause_keys``, pressed again to resume): the
    recorder writes silence meanwhile, and each change is a call event
    (``RECORDPAUSE``, ``RECORDRESUME`` with the seconds paused).
    """

    def __init__(
        self,
        call: Call,
        a: SipLeg,
        b: SipLeg,
        recorder: Recorder | None,
        *,
        player: Player,
        hold_music: Sequence[PlayItem] = (),
        pause_keys: str | None = None,
    ) -> None:
        assert a.rtp is not None and b.rtp is not None
        self.call = call
        self.a = a
        self.b = b
        self.recorder = recorder
        self.bridge: Bridge | None = Bridge(a.rtp, b.rtp, recorder)
        self.supervision: Supervision | None = None
        self.consultation: Consultation | None = None
        self.on_complete: Callable[[SipLeg, str], bool] | None = None
        """Set by the queue: take the caller to a consulted colleague (False: it cannot)."""
        self._player = player
        self._hold_music = tuple(hold_music)
        self._held: Playback | None = None
        self._held_at: float | None = None
        self._pause_keys = pause_keys
        self._typed = ""
        self._paused_at: float | None = None
        self._tasks: set[asyncio.Future[None]] = set()

    @property
    def recording(self) -> str:
        """``recording``, ``paused``, or ``off`` (not recorded, or the recording failed)."""
        if self.recorder is None or self.recorder.failed:
            return "off"
        return "paused" if self.recorder.paused else "recording"

    def pause_recording(self, by: str) -> bool:
        """Pause the recording; False when there is none or it is paused already."""
        if self.recording != "recording":
            return False
        assert self.recorder is not None
        self.recorder.pause()
        self._paused_at = asyncio.get_running_loop().time()
        self.call.event("RECORDPAUSE", agent=self.call.agent, by=by)
        log.info("call %s: recording paused by %s", self.call.id, by)
        return True

    def resume_recording(self, by: str) -> bool:
        """Record again; False when there is no recording or it is not paused."""
        if self.recording != "paused":
            return False
        assert self.recorder is not None
        self.recorder.resume()
        paused = asyncio.get_running_loop().time() - (self._paused_at or 0.0)
        self._paused_at = None
        self.call.event("RECORDRESUME", agent=self.call.agent, by=by, paused_s=round(paused, 3))
        log.info("call %s: recording resumed by %s", self.call.id, by)
        return True

    def agent_key(self, digit: str) -> None:
        """A key from the agent's phone: the pause keys toggle the recording."""
        keys = self._pause_keys
        if not keys:
            return
        self._typed = (self._typed + digit)[-len(keys) :]
        if self._typed == keys:
            self._typed = ""
            by = f"keypad:{self.call.agent}"
            if not self.pause_recording(by):
                self.resume_recording(by)

    @property
    def held(self) -> bool:
        return self._held is not None

    def hold(self) -> None:
        """Stop the bridge and play the hold music to the caller (silence without music)."""
        if self._held is not None or self.bridge is None:
            return
        self.bridge.stop()
        self._set_bridge(None)
        self._held_at = asyncio.get_running_loop().time()
        self.call.event("HOLD", agent=self.call.agent)
        if self.a.rtp is not None:
            self._held = self._player.play(self.a.rtp, self._hold_music, loop=True)

    def unhold(self) -> None:
        """The caller and the agent talk again, on a new bridge."""
        if self._held is not None:
            self._held.stop()
            self._held = None
        if self._held_at is not None:
            held = asyncio.get_running_loop().time() - self._held_at
            self._held_at = None
            self.call.event("UNHOLD", agent=self.call.agent, held_s=round(held, 3))
        if self.bridge is not None or self.a.rtp is None or self.b.rtp is None:
            return
        if self.a.is_ended or self.b.is_ended:
            return
        self._set_bridge(Bridge(self.a.rtp, self.b.rtp, self.recorder))

    def _set_bridge(self, bridge: Bridge | None) -> None:
        self.bridge = bridge
        if self.supervision is not None and self.supervision.state == "connected":
            self.supervision.attach(bridge)

    def start_consultation(
        self,
        extension: str,
        legs: list[OutboundLeg],
        ring: Callable[[], Awaitable[OutboundLeg | None]],
    ) -> Consultation:
        """Hold the caller and ring ``legs`` (the colleague's phones); ``ring`` waits for one."""
        consultation = self.consultation = Consultation(self, extension, legs)
        self.call.event("CONSULT", agent=self.call.agent, extension=extension)
        self.hold()

        async def run() -> None:
            try:
                winner = await ring()
            except Exception:
                log.exception(
                    "call %s: ringing %s for a consultation failed", self.call.id, extension
                )
                winner = None
            consultation.answered(winner)

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return consultation

    def stop(self) -> None:
        """The bridge is over: so is any supervision, consultation and hold music."""
        if self.supervision is not None:
            self.supervision.end()
        if self.consultation is not None:
            self.consultation.end()
        if self._held is not None:
            self._held.stop()
            self._held = None
        if self.bridge is not None:
            self.bridge.stop()
