"""RTP and recording metrics, read from the media legs themselves at scrape time.

Each :class:`~media.leg.RtpLeg` already counts what it receives and sends and
keeps RFC 3550 loss and jitter for its peer; adding a counter of our own per
packet would cost on the one path that scales with calls. Instead
:class:`RtpTally` remembers the legs the engine opened and, when asked,
sums the open ones and folds the closed ones into running totals (and
forgets them). The sweep also runs as legs are opened, once the list has
doubled since the last one, so memory stays bounded by the calls in
progress even if Prometheus never scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["MediaCollector", "RtpSnapshot", "RtpTally", "StreamLike"]

_MIN_SWEEP = 64


class _StatsLike(Protocol):
    @property
    def valid(self) -> bool: ...
    @property
    def cumulative_lost(self) -> int: ...
    @property
    def jitter_seconds(self) -> float: ...


class StreamLike(Protocol):
    """What is read of an RTP leg (``media.RtpLeg`` has all of it)."""

    @property
    def closed(self) -> bool: ...
    @property
    def packets_received(self) -> int: ...
    @property
    def packets_sent(self) -> int: ...
    @property
    def stats(self) -> _StatsLike: ...


@dataclass(frozen=True, slots=True)
class RtpSnapshot:
    """RTP totals since start and the state of the streams open now."""

    active: int
    received: int
    sent: int
    lost: int
    jitter_mean: float
    jitter_max: float


class RtpTally:
    """The legs the engine opened, summed on demand. ``track`` is the media engine's hook."""

    def __init__(self) -> None:
        self._legs: list[StreamLike] = []
        self._sweep_at = _MIN_SWEEP
        self._received = 0
        self._sent = 0
        self._lost = 0

    def track(self, leg: StreamLike) -> None:
        """Count ``leg`` from now until it closes, and after in the totals."""
        self._legs.append(leg)
        if len(self._legs) >= self._sweep_at:
            self._sweep()

    def _sweep(self) -> None:
        open_legs: list[StreamLike] = []
        for leg in self._legs:
            if leg.closed:
                received, sent, lost = _counts(leg)
                self._received += received
                self._sent += sent
                self._lost += lost
            else:
                open_legs.append(leg)
        self._legs = open_legs
        self._sweep_at = max(_MIN_SWEEP, 2 * len(open_legs))

    def snapshot(self) -> RtpSnapshot:
        """Totals over every leg ever tracked, jitter over the open legs that hear their peer."""
        self._sweep()
        received, sent, lost = self._received, self._sent, self._lost
        jitters: list[float] = []
        for leg in self._legs:
            r, s, lo = _counts(leg)
            received += r
            sent += s
            lost += lo
            if leg.stats.valid:
                jitters.append(leg.stats.jitter_seconds)
        return RtpSnapshot(
            active=len(self._legs),
            received=received,
            sent=sent,
            lost=lost,
            jitter_mean=sum(jitters) / len(jitters) if jitters else 0.0,
            jitter_max=max(jitters, default=0.0),
        )


def _counts(leg: StreamLike) -> tuple[int, int, int]:
    # Duplicates can make RFC 3550's cumulative loss negative; that is not loss.
    return leg.packets_received, leg.packets_sent, max(0, leg.stats.cumulative_lost)


class MediaCollector(Collector):
    """Exposes RTP streams and active recordings.

    The RTP counters are made monotonic here: a leg's loss count can go
    down (a late packet fills a gap; a new SSRC restarts its statistics),
    and a counter that decreases reads to Prometheus as a restart.
    """

    def __init__(self, tally: RtpTally, *, recordings_active: Callable[[], int]) -> None:
        self.tally = tally
        self._recordings_active = recordings_active
        self._high = {"in": 0, "out": 0, "lost": 0}

    def _monotonic(self, key: str, value: int) -> int:
        high = max(self._high[key], value)
        self._high[key] = high
        return high

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        snap = self.tally.snapshot()
        yield GaugeMetricFamily("rtp_streams_active", "RTP streams open now", value=snap.active)
        packets = CounterMetricFamily(
            "rtp_packets", "RTP packets received (in) and sent (out)", labels=["direction"]
        )
        packets.add_metric(["in"], self._monotonic("in", snap.received))
        packets.add_metric(["out"], self._monotonic("out", snap.sent))
        yield packets
        yield CounterMetricFamily(
            "rtp_packets_lost",
            "RTP packets expected from peers but never received (RFC 3550)",
            value=self._monotonic("lost", snap.lost),
        )
        yield GaugeMetricFamily(
            "rtp_jitter_seconds",
            "Mean interarrival jitter (RFC 3550) of the streams being received now",
            value=snap.jitter_mean,
        )
        yield GaugeMetricFamily(
            "rtp_jitter_max_seconds",
            "Highest interarrival jitter of the streams being received now",
            value=snap.jitter_max,
        )
        yield GaugeMetricFamily(
            "recordings_active", "Calls being recorded now", value=self._recordings_active()
        )
