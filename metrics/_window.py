"""Counting primitives for the hot path: a sliding-window count and a plain histogram.

Both are touched once per engine event and read once per scrape, so they are
plain Python objects with ``__slots__``: no locks (everything runs on the
event loop), no Prometheus objects, no per-event allocation.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence

from prometheus_client.core import HistogramMetricFamily

__all__ = ["Clock", "Histogram", "SlidingCount"]

Clock = Callable[[], float]
"""Seconds on a monotonic clock; tests pass a fake one."""


class SlidingCount:
    """How many things happened in the last ``span`` seconds, in buckets of ``step`` seconds.

    A ring of per-bucket counts and their running total: adding is O(1) and
    so is reading, and memory is ``span / step`` integers however busy the
    engine is (never a timestamp per event). The window is the current
    bucket and the ones before it, so it covers between ``span - step`` and
    ``span`` seconds: the resolution is one ``step``.
    """

    __slots__ = ("_clock", "_counts", "_head", "_step", "_total")

    def __init__(self, span: float, step: float, clock: Clock = time.monotonic) -> None:
        if step <= 0 or span < step:
            raise ValueError(f"a window of {span} s in steps of {step} s is not possible")
        self._step = step
        self._counts = [0] * round(span / step)
        self._clock = clock
        self._head = int(clock() // step)
        self._total = 0

    def _advance(self) -> int:
        """Move the window to now, clearing the buckets that fell out; the current slot."""
        index = int(self._clock() // self._step)
        counts = self._counts
        size = len(counts)
        gap = index - self._head
        if gap > 0:
            if gap >= size:
                counts[:] = [0] * size
                self._total = 0
            else:
                for absolute in range(self._head + 1, index + 1):
                    slot = absolute % size
                    self._total -= counts[slot]
                    counts[slot] = 0
            self._head = index
        # A clock that steps back (it should not) counts into the current bucket.
        return self._head % size

    def add(self, n: int = 1) -> None:
        """Count ``n`` events now."""
        self._counts[self._advance()] += n
        self._total += n

    @property
    def total(self) -> int:
        """Events within the window ending now."""
        self._advance()
        return self._total


class Histogram:
    """Observations in cumulative buckets, exposed as one Prometheus histogram series.

    ``observe`` is a bisect and two additions; the cumulative counts
    Prometheus wants are summed at scrape time.
    """

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError(f"histogram bounds {bounds!r} must be increasing and distinct")
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Record one observation; NaN is ignored (it would poison the sum forever)."""
        if value != value:  # NaN
            return
        # bisect_left: a value equal to a bound belongs in that bound's bucket (le).
        self.counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count)`` pairs, cumulative, ending with ``+Inf``."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += n
            out.append(("+Inf" if bound == math.inf else _le(bound), running))
        return out

    def add_to(self, family: HistogramMetricFamily, labels: Sequence[str]) -> None:
        """Add this histogram as the series with ``labels`` to ``family``."""
        family.add_metric(list(labels), self.cumulative(), self.sum)


def _le(bound: float) -> str:
    # Prometheus' own client writes 1.0, 0.25...: keep the same spelling so
    # dashboards that select a bucket by its le keep working.
    return repr(float(bound))
