"""One media clock for every call: a 20 ms tick on a drift-free schedule.

Every stream the engine generates (prompts, music on hold, tones) is paced by
this one clock instead of a task and a sleep per call: a timer per stream
costs two to three times the CPU (see docs/performance.md), and sleeps that
re-arm from "now" drift by the loop's lateness on every frame.

The schedule is pure (:class:`TickSchedule`): tick ``n`` is due at
``start + n * period``, never "the last tick plus a period", so lateness in
one tick is not carried into the next. :class:`MediaClock` is the thin
asyncio adapter: one ``loop.call_at`` timer, re-armed at the next deadline.

Timer precision. uvloop (what ``acd serve`` runs on) keeps timers in whole
milliseconds, so a timer armed for the deadline runs 0.5-1 ms after it on
average. The clock therefore arms its timer ``arm_early`` (1 ms) ahead, and
on waking early re-arms for the deadline itself, which uvloop then meets
within its millisecond; a tick within ``tolerance`` (0.2 ms) of its deadline
runs at once rather than waiting out a sliver. The statistics count the
absolute error, early or late, so the figures do not flatter this.

Catch-up policy. When the loop is late by more than one period (a GC pause, a
blocking call, an overloaded core) several ticks are due at once. Up to
``max_burst`` of them are run back to back, so a receiver's jitter buffer
(40-100 ms in softphones and gateways) absorbs the hiccup without a gap. Any
older ones are *skipped*: subscribers are told how many frames were skipped
so that players move their audio on and their RTP timestamps on by the same
number of samples, keeping every stream true to wall time. Bursting further
would only deepen an overload, since a late loop is usually a busy one.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "FRAME_SAMPLES",
    "PERIOD",
    "LatenessStats",
    "MediaClock",
    "TickBatch",
    "TickSchedule",
]

PERIOD = 0.020
"""Seconds per tick: the 20 ms packetisation every G.711 endpoint expects."""
FRAME_SAMPLES = 160
"""Samples per 20 ms frame at 8 kHz."""

TickCallback = Callable[[int, int], None]
"""A subscriber: called with the tick number and the frames skipped just before it."""


@dataclass(frozen=True, slots=True)
class TickBatch:
    """The ticks due at one wake-up: ``count`` ticks from ``first``, after ``skipped`` dropped."""

    first: int
    count: int
    skipped: int


class TickSchedule:
    """Which ticks are due at a given time; no I/O, no clock of its own.

    Tick ``n`` has the deadline ``start + n * period``. :meth:`due` consumes
    every tick whose deadline has passed, keeping at most ``max_burst`` (the
    newest) and reporting the rest as skipped.
    """

    def __init__(self, start: float, period: float = PERIOD, max_burst: int = 3) -> None:
        if period <= 0:
            raise ValueError(f"period {period} must be positive")
        if max_burst < 1:
            raise ValueError(f"max_burst {max_burst} must be at least 1")
        self.start = start
        self.period = period
        self.max_burst = max_burst
        self.next_tick = 0

    def deadline(self, tick: int) -> float:
        """When tick ``tick`` is due."""
        return self.start + tick * self.period

    @property
    def next_deadline(self) -> float:
        """When the next tick not yet run is due."""
        return self.deadline(self.next_tick)

    def last_due(self, now: float) -> int:
        """The highest tick number whose deadline is at or before ``now`` (-1 if none)."""
        tick = math.floor((now - self.start) / self.period)
        # The division can land one either side of an exact deadline; the
        # deadline itself is what the timer was armed with, so it decides.
        if self.deadline(tick + 1) <= now:
            tick += 1
        elif self.deadline(tick) > now:
            tick -= 1
        return max(tick, -1)

    def due(self, now: float) -> TickBatch:
        """Consume the ticks due at ``now``: the batch to run (``count`` may be 0)."""
        last = self.last_due(now)
        count = last - self.next_tick + 1
        if count <= 0:
            return TickBatch(self.next_tick, 0, 0)
        skipped = max(0, count - self.max_burst)
        batch = TickBatch(self.next_tick + skipped, count - skipped, skipped)
        self.next_tick = last + 1
        return batch


class LatenessStats:
    """How far from their deadlines ticks ran: count, mean, max, percentiles.

    The figure recorded is the absolute error: late, or early by up to the
    clock's tolerance.

    Percentiles come from fixed 50 us buckets up to 50 ms (later is counted in
    the last bucket), so recording a tick costs one add and one index and the
    figures are ready for a benchmark or a Prometheus histogram.
    """

    BUCKET = 50e-6
    BUCKETS = 1001

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything recorded so far."""
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self.skipped = 0
        self.busy = 0.0
        """Seconds spent inside subscribers, for CPU budgeting."""
        self._histogram = [0] * self.BUCKETS

    def record(self, lateness: float) -> None:
        """Account for a tick run ``lateness`` seconds after (if negative, before) its deadline."""
        lateness = abs(lateness)
        self.count += 1
        self.total += lateness
        if lateness > self.max:
            self.max = lateness
        self._histogram[min(int(lateness / self.BUCKET), self.BUCKETS - 1)] += 1

    @property
    def mean(self) -> float:
        """Mean lateness in seconds (0 before the first tick)."""
        return self.total / self.count if self.count else 0.0

    def percentile(self, fraction: float) -> float:
        """The lateness (upper edge of its 50 us bucket) that ``fraction`` of ticks beat."""
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction {fraction} is outside 0-1")
        if not self.count:
            return 0.0
        wanted = math.ceil(fraction * self.count)
        seen = 0
        for index, hits in enumerate(self._histogram):
            seen += hits
            if seen >= wanted and hits:
                return (index + 1) * self.BUCKET
        return self.BUCKETS * self.BUCKET


class MediaClock:
    """The engine's one 20 ms timer; any number of subscribers ride on it.

    The timer runs only while someone is subscribed, so an idle engine does
    not wake 50 times a second; a restart begins a fresh schedule. Subscribers
    are called in the order they subscribed, once per tick run, with the tick
    number and the frames skipped before it (see the module docstring). One
    that subscribes during a tick is first called on the next tick; one that
    unsubscribes during a tick is not called again, even in that tick.

    ``time`` is the clock the deadlines are measured on. It must be the clock
    the loop's ``call_at`` uses; the default, :func:`time.monotonic`, is what
    asyncio and uvloop both use, and it is read precisely where uvloop's
    ``loop.time()`` is cached per loop iteration in whole milliseconds.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        period: float = PERIOD,
        max_burst: int = 3,
        arm_early: float = 0.001,
        tolerance: float = 0.0002,
        time: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= tolerance <= arm_early < period:
            raise ValueError("need 0 <= tolerance <= arm_early < period")
        self._loop = loop
        self.period = period
        self.max_burst = max_burst
        self.arm_early = arm_early
        self.tolerance = tolerance
        self._time = time
        self._subscribers: dict[int, TickCallback] = {}
        self._order: tuple[tuple[int, TickCallback], ...] = ()
        self._next_id = 0
        self._schedule: TickSchedule | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.stats = LatenessStats()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the timer runs on: the one given, else the running loop."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    @property
    def running(self) -> bool:
        """Whether the timer is armed."""
        return self._timer is not None

    def now(self) -> float:
        """The current time on the clock's time base."""
        return self._time()

    def subscribe(self, callback: TickCallback) -> Callable[[], None]:
        """Call ``callback(tick, skipped)`` every tick; returns the function that unsubscribes."""
        key = self._next_id
        self._next_id += 1
        self._subscribers[key] = callback
        self._order = tuple(self._subscribers.items())
        if self._timer is None:
            self._start()

        def unsubscribe() -> None:
            if self._subscribers.pop(key, None) is not None:
                self._order = tuple(self._subscribers.items())
                if not self._subscribers:
                    self._stop()

        return unsubscribe

    def _start(self) -> None:
        now = self._time()
        # Tick 0 is one period away: a subscriber that just started a stream
        # has had no time to be late for.
        self._schedule = TickSchedule(now + self.period, self.period, self.max_burst)
        self._timer = self.loop.call_at(self._schedule.next_deadline - self.arm_early, self._fire)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._schedule = None

    def close(self) -> None:
        """Stop the timer and drop every subscriber."""
        self._subscribers.clear()
        self._order = ()
        self._stop()

    def _fire(self) -> None:
        schedule = self._schedule
        if schedule is None:
            return
        now = started = self._time()
        batch = schedule.due(now + self.tolerance)
        if not batch.count:
            # Woken early, as intended: wait out the rest precisely.
            self._timer = self.loop.call_at(schedule.next_deadline, self._fire)
            return
        stats = self.stats
        stats.skipped += batch.skipped
        subscribers = self._subscribers
        skipped = batch.skipped
        for tick in range(batch.first, batch.first + batch.count):
            stats.record(now - schedule.deadline(tick))
            for key, callback in self._order:
                # Unsubscribed by an earlier callback in this same tick.
                if key in subscribers:
                    callback(tick, skipped)
            skipped = 0
            now = self._time()
        stats.busy += now - started
        # A subscriber may have emptied the clock (stopping it) or restarted it.
        if self._schedule is schedule:
            self._timer = self.loop.call_at(schedule.next_deadline - self.arm_early, self._fire)
