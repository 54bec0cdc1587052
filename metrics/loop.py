"""Event-loop lag: how late the loop runs a callback it was asked to run on time.

Everything in the engine (SIP, RTP relay, prompts, routing) shares one event
loop, so a loop that falls behind delays all of it at once; lag is the
earliest sign of an overloaded or blocked node. The probe re-arms one
``loop.call_at`` timer every ``interval`` seconds and records how late each
one fired: one timer for the whole process, nothing per call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ._window import Histogram

__all__ = ["LAG_BUCKETS", "LoopLagProbe"]

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class LoopLagProbe(Collector):
    """Measures the running loop's lag every ``interval`` seconds; a Prometheus collector.

    ``start()`` on the loop to measure, ``stop()`` to cancel the timer.
    Exposes ``event_loop_lag_seconds`` (histogram of every probe) and
    ``event_loop_lag_last_seconds`` (the latest probe, for a quick look).
    """

    def __init__(self, interval: float = 0.5) -> None:
        if interval <= 0:
            raise ValueError(f"probe interval {interval} must be positive")
        self.interval = interval
        self.lag = Histogram(LAG_BUCKETS)
        self.last = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start probing ``loop`` (the running one by default); idempotent."""
        if self._handle is not None:
            return
        self._loop = loop or asyncio.get_running_loop()
        self._arm()

    def _arm(self) -> None:
        assert self._loop is not None
        due = self._loop.time() + self.interval
        self._handle = self._loop.call_at(due, self._fired, due)

    def _fired(self, due: float) -> None:
        assert self._loop is not None
        # uvloop rounds timers to the millisecond and may fire a hair early.
        self.last = max(0.0, self._loop.time() - due)
        self.lag.observe(self.last)
        self._arm()

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
