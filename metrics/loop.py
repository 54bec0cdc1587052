"""Event-loop lag: how late the loop runs a callback it was asked to run on time.

Everything in the engine (SIP, RTP relay, prompts, routing) shares one event
loop, so a loop that falls behind delays all of it at once; lag is the
earliest sign of an overloaded or blocked node. The probe re-arms one
``loop.call_at`` timer every ``interval`` seconds and records how late each
one fired: one timer for the whole process, nothing per call.

The same timer measures the process's CPU share over each interval and
hands both figures to ``on_sample``: the engine's overload control
(``acd/overload.py``) sheds new calls on them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ._window import Histogram

__all__ = ["LAG_BUCKETS", "LoadSample", "LoopLagProbe"]

log = logging.getLogger(__name__)

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

LoadSample = Callable[[float, float, float], None]
"""``on_sample(now, lag, cpu)``: loop time, the probe's lag in seconds, CPU share since the last."""


class LoopLagProbe(Collector):
    """Measures the running loop's lag every ``interval`` seconds; a Prometheus collector.

    ``start()`` on the loop to measure, ``stop()`` to cancel the timer.
    Exposes ``event_loop_lag_seconds`` (histogram of every probe) and
    ``event_loop_lag_last_seconds`` (the latest probe, for a quick look).
    With ``on_sample`` it also reads ``cpu_clock`` (the process's CPU time,
    all threads) at every probe and passes on the share of a core used
    since the previous one: one clock read per interval, nothing per call.
    """

    def __init__(
        self,
        interval: float = 0.5,
        *,
        on_sample: LoadSample | None = None,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"probe interval {interval} must be positive")
        self.interval = interval
        self.lag = Histogram(LAG_BUCKETS)
        self.last = 0.0
        self.on_sample = on_sample
        self._cpu_clock = cpu_clock
        self._cpu_at = 0.0
        self._sampled_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start probing ``loop`` (the running one by default); idempotent."""
        if self._handle is not None:
            return
        self._loop = loop or asyncio.get_running_loop()
        self._cpu_at = self._cpu_clock()
        self._sampled_at = self._loop.time()
        self._arm()

    def _arm(self) -> None:
        assert self._loop is not None
        due = self._loop.time() + self.interval
        self._handle = self._loop.call_at(due, self._fired, due)

    def _fired(self, due: float) -> None:
        assert self._loop is not None
        now = self._loop.time()
        # uvloop rounds timers to the millisecond and may fire a hair early.
        self.last = max(0.0, now - due)
        self.lag.observe(self.last)
        self._arm()
        if self.on_sample is not None:
            cpu = self._cpu_clock()
            elapsed = now - self._sampled_at
            share = (cpu - self._cpu_at) / elapsed if elapsed > 0 else 0.0
            self._cpu_at, self._sampled_at = cpu, now
            try:
                self.on_sample(now, self.last, share)
            except Exception:
                # The probe must keep running: it is also what the lag metrics come from.
                log.exception("load sample consumer %r failed", self.on_sample)

    def stop(self) -> None:
        """Cancel the timer; the figures gathered so far stay readable."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "event_loop_lag_seconds",
            f"How late a timer due every {self.interval:g} s fired on the event loop",
            labels=[],
        )
        self.lag.add_to(family, [])
        yield family
        yield GaugeMetricFamily(
            "event_loop_lag_last_seconds", "The latest event-loop lag probe", value=self.last
        )
