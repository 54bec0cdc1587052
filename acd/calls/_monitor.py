"""A supervisor on an agent's call: listen, whisper (coach) or barge, from their own phone.

``CallScript.bridge`` keeps one :class:`Bridged` per bridged call: the media
bridge of the moment (hold ends it, unhold makes a new one) and the
:class:`Supervision`, if any. A supervision rings the supervisor's phones
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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from media import Bridge, DtmfReceived, MonitorMode

from ._events import LegEnded, LegEvent
from ._legs import OutboundLeg

if TYPE_CHECKING:
    from media import Recorder
    from media.clock import MediaClock

    from ._call import Call

__all__ = ["MONITOR_KEYS", "Bridged", "Supervision"]

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
        self.leg: OutboundLeg | None = None
        self.legs: list[OutboundLeg] = []  # every phone rung
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

    def connected(self, leg: OutboundLeg, bridge: Bridge | None) -> None:
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
            if not leg.is_ended:
                if leg.is_answered:
                    leg.hangup()
                else:
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


class Bridged:
    """A bridged call's media bridge of the moment, its recorder and its supervision.

    The recording pauses and resumes from the API or from the agent's keypad
    (``pause_keys``, pressed again to resume): the recorder writes silence
    meanwhile, and each change is a call event (``RECORDPAUSE``,
    ``RECORDRESUME`` with the seconds paused).
    """

    def __init__(
        self, call: Call, bridge: Bridge, recorder: Recorder | None, pause_keys: str | None
    ) -> None:
        self.call = call
        self.bridge: Bridge | None = bridge
        self.recorder = recorder
        self.supervision: Supervision | None = None
        self._pause_keys = pause_keys
        self._typed = ""
        self._paused_at: float | None = None

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

    def replace(self, bridge: Bridge | None) -> None:
        """A new bridge (unhold), or None (hold): the supervisor follows."""
        self.bridge = bridge
        if self.supervision is not None and self.supervision.state == "connected":
            self.supervision.attach(bridge)

    def end(self) -> None:
        """The bridge is over: so is any supervision."""
        if self.supervision is not None:
            self.supervision.end()
