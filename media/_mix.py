"""Who hears whom when a third party joins a bridge, and the mixing of two voices into one.

A supervisor on an agent's call is one of three modes (Asterisk's ChanSpy
and FreeSWITCH's eavesdrop offer the same three):

* ``listen``: the supervisor hears caller and agent; nobody hears the supervisor;
* ``whisper`` (coaching): as listen, and the agent hears the supervisor too;
  the caller still hears only the agent;
* ``barge``: everyone hears everyone.

:func:`hearing` gives, per party, the parties it hears. A party that hears
one other gets that one's packets relayed untouched (the bridge's relay, no
decoding); a party that hears two gets their audio decoded, summed with
saturation and encoded again once per 20 ms tick (:class:`SampleBuffer`,
:func:`mix`). There is no adaptive jitter buffer: each voice waits at most
:data:`MAX_BUFFERED` samples, the oldest dropped beyond that, so a voice
whose clock runs fast loses a frame now and then rather than drifting behind.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "AGENT",
    "CALLER",
    "FRAME",
    "MAX_BUFFERED",
    "MONITOR",
    "MonitorMode",
    "SampleBuffer",
    "TickSource",
    "hearing",
    "mix",
]

CALLER, AGENT, MONITOR = 0, 1, 2
"""The parties of a monitored bridge: its ``a`` leg, its ``b`` leg, the third leg."""

FRAME = 160
"""Samples mixed per 20 ms tick (G.711 at 8 kHz)."""

MAX_BUFFERED = 5 * FRAME
"""At most 100 ms of one voice waits to be mixed."""


class TickSource(Protocol):
    """What paces the mixes: a :class:`media.clock.MediaClock`, or a test's hand."""

    def subscribe(self, callback: Callable[[int, int], None]) -> Callable[[], None]:
        """Call ``callback(tick, skipped)`` every 20 ms; returns the unsubscribe function."""


class MonitorMode(enum.StrEnum):
    """What a third party on a bridge hears and who hears it."""

    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"


_HEARING: dict[MonitorMode, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {
    MonitorMode.LISTEN: ((AGENT,), (CALLER,), (CALLER, AGENT)),
    MonitorMode.WHISPER: ((AGENT,), (CALLER, MONITOR), (CALLER, AGENT)),
    MonitorMode.BARGE: ((AGENT, MONITOR), (CALLER, MONITOR), (CALLER, AGENT)),
}


def hearing(mode: MonitorMode) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """For the caller, the agent and the monitor in turn: the parties each one hears."""
    return _HEARING[mode]


class SampleBuffer:
    """One voice's decoded samples waiting for the next tick of one listener's mix."""

    __slots__ = ("_chunks", "_count", "dropped")

    def __init__(self) -> None:
        self._chunks: list[npt.NDArray[np.int16]] = []
        self._count = 0
        self.dropped = 0
        """Samples dropped because the voice ran more than MAX_BUFFERED ahead."""

    def __len__(self) -> int:
        return self._count

    def push(self, samples: npt.NDArray[np.int16]) -> None:
        """Add one packet's samples; beyond :data:`MAX_BUFFERED` the oldest go."""
        if not len(samples):
            return
        self._chunks.append(samples)
        self._count += len(samples)
        if self._count > MAX_BUFFERED:
            joined = np.concatenate(self._chunks)
            excess = self._count - MAX_BUFFERED
            self.dropped += excess
            self._chunks = [joined[excess:]]
            self._count = MAX_BUFFERED

    def take(self, count: int = FRAME) -> npt.NDArray[np.int16] | None:
        """The next ``count`` samples (silence-padded if fewer wait); None when none wait."""
        if not self._count:
            return None
        joined = self._chunks[0] if len(self._chunks) == 1 else np.concatenate(self._chunks)
        head, rest = joined[:count], joined[count:]
        self._chunks = [rest] if len(rest) else []
        self._count = len(rest)
        if len(head) < count:
            head = np.concatenate([head, np.zeros(count - len(head), dtype=np.int16)])
        return head

    def clear(self) -> None:
        self._chunks = []
        self._count = 0


def mix(frames: list[npt.NDArray[np.int16]]) -> npt.NDArray[np.int16]:
    """The sum of equal-length frames, saturated to 16 bits (no wrap-around clicks)."""
    if len(frames) == 1:
        return frames[0]
    total: npt.NDArray[np.int32] = np.sum(np.stack(frames).astype(np.int32), axis=0)
    clipped: npt.NDArray[np.int16] = np.clip(total, -32768, 32767).astype(np.int16)
    return clipped
