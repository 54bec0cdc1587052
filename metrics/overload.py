"""Overload metrics: new calls refused at the door, and the share being shed, read at scrape time.

The guard (``acd/overload.py``) counts its refusals in a plain dict as it
makes them; nothing here runs per call. Every reason has its series from
start-up, at zero, so that rates and alerts have data before the first
refusal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["GuardLike", "OverloadCollector"]


class GuardLike(Protocol):
    """What is read of ``acd.overload.OverloadGuard``."""

    @property
    def refused(self) -> Mapping[str, int]: ...
    @property
    def shed_ratio(self) -> float: ...


class OverloadCollector(Collector):
    """Exposes ``acd_calls_refused_total{reason}`` and ``acd_overload_shed_ratio``."""

    def __init__(self, guard: GuardLike) -> None:
        self.guard = guard

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        refused = CounterMetricFamily(
            "acd_calls_refused",
            "New calls refused with 503 before answer, by reason (calls, rate, lag, cpu)",
            labels=["reason"],
        )
        for reason, n in sorted(self.guard.refused.items()):
            refused.add_metric([reason], n)
        yield refused
        yield GaugeMetricFamily(
            "acd_overload_shed_ratio",
            "Share of new calls the engine sheds now for event-loop lag or CPU",
            value=self.guard.shed_ratio,
        )
