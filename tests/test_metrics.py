"""The metrics collectors: engine events in, Prometheus exposition text out.

Events are published on a real :class:`~acd.events.EventBus` and read back
from a real ``CollectorRegistry``, through the same text format Prometheus
scrapes. Windows are driven by a fake clock; the loop-lag probe and the
RTP tally run on a real loop with real RTP legs on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from acd.events import (
    AgentStateChanged,
    CallArrived,
    CallEnded,
    CallSetup,
    EventBus,
    IvrResponse,
    QueueJoined,
    QueueLeft,
    RecordingError,
    RingAttempt,
)
from acd.storage import CallEvent, EventType, RecordWriter, SqliteStorage
from media import PCMU, PortPool, RtpLeg
from metrics._window import Histogram, SlidingCount
from metrics.acd import AGENT_STATES, AcdMetrics
from metrics.loop import LoopLagProbe
from metrics.media import MediaCollector, RtpTally
from metrics.sip import SipCounters
from metrics.storage import StorageCollector


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def scrape(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition text, keyed by name and label set."""
    text = generate_latest(registry).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples[(name, frozenset(labels.items()))]


def registry_with(*collectors: object) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)  # type: ignore[arg-type]
    return registry


# -- primitives ---------------------------------------------------------------------------


def test_sliding_count_forgets_what_left_the_window() -> None:
    clock = FakeClock(0.0)
    window = SlidingCount(60, 1, clock)
    window.add()
    clock.now = 30.5
    window.add(2)
    assert window.total == 3
    clock.now = 59.9  # the first event is still inside (its bucket is 0..1 s)
    assert window.total == 3
    clock.now = 60.0  # its bucket fell out
    assert window.total == 2
    clock.now = 90.6
    assert window.total == 0
    clock.now = 10_000.0  # a long quiet spell clears every bucket at once
    window.add()
    assert window.total == 1


def test_sliding_count_rejects_an_impossible_window() -> None:
    with pytest.raises(ValueError, match="not possible"):
        SlidingCount(1, 10)


def test_histogram_buckets_are_cumulative_and_le_inclusive() -> None:
    h = Histogram((1, 5))
    for v in (0.5, 1.0, 3.0, 7.0, math.nan):
        h.observe(v)
    assert h.cumulative() == [("1.0", 2), ("5.0", 3), ("+Inf", 4)]
    assert h.count == 4
    assert h.sum == 11.5
    with pytest.raises(ValueError, match="increasing"):
        Histogram((5, 1))


# -- ACD events ----------------------------------------------------------------------------


def test_call_events_become_counters_and_histograms() -> None:
    bus = EventBus()
    metrics = AcdMetrics(["sales"])
    bus.subscribe(metrics.handle)
    for n in range(3):
        bus.publish(CallArrived(f"c{n}", "100", "carrier"))
    bus.publish(CallSetup("c0", 200, 0.004))
    bus.publish(CallSetup("c1", 200, 0.3))
    bus.publish(IvrResponse("c0", 0.12))
    bus.publish(CallEnded("c0", "answered", None, "caller", 10.0))
    bus.publish(CallEnded("c1", "failed", None, "system", 0.1, reason="no flow"))
    bus.publish(CallEnded("c2", "failed", None, "system", 0.1, reason="media-timeout"))
    bus.publish(RecordingError("c0", "disk guard"))
    samples = scrape(registry_with(metrics))
    assert value(samples, "acd_call_attempts_total") == 3
    assert value(samples, "acd_bhca") == 3
    assert value(samples, "acd_calls_ended_total", disposition="answered") == 1
    assert value(samples, "acd_calls_ended_total", disposition="failed") == 2
    assert value(samples, "acd_calls_ended_total", disposition="abandoned") == 0
    assert value(samples, "acd_calls_failed_total", reason="no flow") == 1
    assert value(samples, "acd_calls_failed_total", reason="media-timeout") == 1
    assert value(samples, "acd_calls_failed_total", reason="error") == 0
    assert value(samples, "acd_setup_time_seconds_bucket", le="0.005") == 1
    assert value(samples, "acd_setup_time_seconds_bucket", le="0.25") == 1
    assert value(samples, "acd_setup_time_seconds_bucket", le="0.5") == 2
    assert value(samples, "acd_setup_time_seconds_count") == 2
    assert value(samples, "acd_setup_time_seconds_sum") == pytest.approx(0.304)
    assert value(samples, "acd_ivr_response_seconds_bucket", le="0.1") == 0
    assert value(samples, "acd_ivr_response_seconds_bucket", le="0.2") == 1
    assert value(samples, "recording_errors_total") == 1


def test_queue_series_exist_before_the_first_call() -> None:
    samples = scrape(registry_with(AcdMetrics(["sales", "support"])))
    for queue in ("sales", "support"):
        for name in (
            "acd_calls_offered_total",
            "acd_calls_answered_total",
            "acd_calls_abandoned_total",
            "acd_calls_timed_out_total",
            "acd_calls_callback_total",
            "acd_queue_calls_waiting",
            "acd_queue_oldest_wait_seconds",
            "acd_answer_time_seconds_count",
            "acd_abandon_time_seconds_count",
        ):
            assert value(samples, name, queue=queue) == 0, name
        assert value(samples, "acd_answer_time_seconds_bucket", queue=queue, le="600.0") == 0
        assert value(samples, "acd_service_level", queue=queue) == 1.0
        assert value(samples, "acd_connect_rate", queue=queue) == 1.0
    for state in AGENT_STATES:
        assert value(samples, "acd_agents", state=state) == 0


def test_queue_outcomes_counts_waits_and_service_level() -> None:
    clock = FakeClock()
    bus = EventBus()
    metrics = AcdMetrics(["sales"], window=900, clock=clock)
    bus.subscribe(metrics.handle)
    for n in range(6):
        bus.publish(QueueJoined(f"c{n}", "sales", 0))
    bus.publish(QueueLeft("c0", "sales", "answered", 4.0, "1001", True))
    bus.publish(QueueLeft("c1", "sales", "answered", 12.0, "1002", True))
    bus.publish(QueueLeft("c2", "sales", "answered", 35.0, "1001", False))
    bus.publish(QueueLeft("c3", "sales", "abandoned", 3.0, None, True))  # short abandon
    bus.publish(QueueLeft("c4", "sales", "abandoned", 50.0, None, False))
    bus.publish(QueueLeft("c5", "sales", "timeout", 600.0))
    bus.publish(RingAttempt("c2", "sales", "1002", "no-answer", 20.0))
    bus.publish(QueueJoined("x", "overflow", 0))  # a queue not configured still counts
    samples = scrape(registry_with(metrics))
    assert value(samples, "acd_calls_offered_total", queue="sales") == 6
    assert value(samples, "acd_calls_offered_total", queue="overflow") == 1
    assert value(samples, "acd_calls_answered_total", queue="sales") == 3
    assert value(samples, "acd_calls_abandoned_total", queue="sales") == 2
    assert value(samples, "acd_calls_timed_out_total", queue="sales") == 1
    assert value(samples, "acd_ring_no_answer_total", queue="sales") == 1
    assert value(samples, "acd_answer_time_seconds_bucket", queue="sales", le="5.0") == 1
    assert value(samples, "acd_answer_time_seconds_bucket", queue="sales", le="15.0") == 2
    assert value(samples, "acd_answer_time_seconds_sum", queue="sales") == 51.0
    assert value(samples, "acd_abandon_time_seconds_count", queue="sales") == 2
    # 3 answered of 6 that left; 2 of 3 answers within the threshold; with
    # abandons, the late abandon counts against it and the short one does not.
    assert value(samples, "acd_connect_rate", queue="sales") == pytest.approx(3 / 6)
    assert value(samples, "acd_service_level", queue="sales") == pytest.approx(2 / 3)
    assert value(samples, "acd_service_level_with_abandons", queue="sales") == pytest.approx(2 / 4)
    # Fifteen minutes later the window is empty again; the counters are not.
    clock.now += 900
    samples = scrape(registry_with(metrics))
    assert value(samples, "acd_service_level", queue="sales") == 1.0
    assert value(samples, "acd_connect_rate", queue="sales") == 1.0
    assert value(samples, "acd_calls_answered_total", queue="sales") == 3


def test_bhca_slides_over_sixty_minutes() -> None:
    clock = FakeClock(0.0)
    bus = EventBus()
    metrics = AcdMetrics(clock=clock)
    bus.subscribe(metrics.handle)
    registry = registry_with(metrics)
    # 10 calls a minute for 90 minutes: the busy hour holds 600 of the 900.
    for minute in range(90):
        for n in range(10):
            clock.now = minute * 60 + n * 6
            bus.publish(CallArrived(f"{minute}-{n}", "100", None))
    assert value(scrape(registry), "acd_call_attempts_total") == 900
    assert value(scrape(registry), "acd_bhca") == 600
    clock.now += 30 * 60  # half an hour without calls: the last 30 minutes' 300 remain
    assert value(scrape(registry), "acd_bhca") == 300
    clock.now += 30 * 60
    assert value(scrape(registry), "acd_bhca") == 0
    assert value(scrape(registry), "acd_call_attempts_total") == 900


class State(enum.StrEnum):
    AVAILABLE = "available"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


@dataclass
class Agent:
    username: str
    state: State


@dataclass
class Stats:
    waiting: int
    oldest_wait: float
    logged_in: int
    available: int
    on_call: int
    paused: int


def test_live_state_is_read_at_scrape_time() -> None:
    agents = [
        Agent("1001", State.AVAILABLE),
        Agent("1002", State.ON_CALL),
        Agent("1003", State.WRAP_UP),
        Agent("1004", State.PAUSED),
    ]
    stats = {"sales": Stats(3, 42.5, 2, 1, 1, 0)}
    active = [7]
    metrics = AcdMetrics(
        ["sales", "support"],
        queue_stats=stats.get,
        agents=lambda: agents,
        active_calls=lambda: active[0],
    )
    registry = registry_with(metrics)
    samples = scrape(registry)
    assert value(samples, "acd_queue_calls_waiting", queue="sales") == 3
    assert value(samples, "acd_queue_oldest_wait_seconds", queue="sales") == 42.5
    assert value(samples, "acd_queue_agents_logged_in", queue="sales") == 2
    assert value(samples, "acd_queue_calls_waiting", queue="support") == 0  # no stats: none
    assert value(samples, "acd_agents", state="on_call") == 1
    assert value(samples, "acd_agents", state="paused") == 1
    assert value(samples, "acd_agents", state="ringing") == 0
    assert value(samples, "acd_agent_occupancy") == pytest.approx(2 / 3)
    assert value(samples, "acd_calls_active") == 7
    agents[0].state = State.ON_CALL
    active[0] = 8
    samples = scrape(registry)
    assert value(samples, "acd_agent_occupancy") == 1.0
    assert value(samples, "acd_calls_active") == 8


def test_a_failing_live_view_costs_its_samples_not_the_scrape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(queue: str) -> Stats:
        raise KeyError(queue)

    metrics = AcdMetrics(["sales"], queue_stats=broken, active_calls=lambda: 2)
    samples = scrape(registry_with(metrics))
    assert value(samples, "acd_queue_calls_waiting", queue="sales") == 0
    assert value(samples, "acd_calls_active") == 2
    assert "reading" in caplog.text


def test_agent_events_and_unknown_events_are_harmless() -> None:
    metrics = AcdMetrics()
    metrics.handle(AgentStateChanged("1001", "logged_out", "available"))
    metrics.handle("not an event")  # type: ignore[arg-type]
    assert value(scrape(registry_with(metrics)), "acd_agent_state_changes_total") == 1


def test_the_subscriber_is_cheap_enough_for_the_call_rate() -> None:
    """Not a speed target (bench/ has those): a guard against a slow subscriber.

    At 125 calls/s each call publishes about ten events; 100,000 events
    must take well under a second even on a loaded CI core.
    """
    metrics = AcdMetrics(["sales"])
    events = [
        CallArrived("c", "100", None),
        QueueJoined("c", "sales", 0),
        QueueLeft("c", "sales", "answered", 5.0, "1001", True),
        CallEnded("c", "answered", "sales", "caller", 30.0),
    ] * 25_000
    started = time.perf_counter()
    for event in events:
        metrics.handle(event)
    assert time.perf_counter() - started < 5.0
    assert metrics.queues["sales"].answered == 25_000


# -- SIP -------------------------------------------------------------------------------------


def test_sip_response_series_exist_from_start() -> None:
    counters = SipCounters()
    assert counters.responses_out[("INVITE", "5xx")] == 0
    assert ("INVITE", "5xx") in counters.responses_out
    assert ("ACK", "2xx") not in counters.responses_out


# -- event loop --------------------------------------------------------------------------------


async def test_loop_lag_probe_sees_a_blocked_loop() -> None:
    probe = LoopLagProbe(interval=0.05)
    probe.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while probe.lag.count < 2:
            assert loop.time() < deadline, "the probe never fired"
            await asyncio.sleep(0.01)
        # Hold the loop for 0.3 s: the timer due meanwhile fires late.
        blocked_until = time.monotonic() + 0.3
        while time.monotonic() < blocked_until:
            pass
        seen = probe.lag.count
        while probe.lag.count == seen:
            assert loop.time() < deadline, "the probe stopped"
            await asyncio.sleep(0.01)
    finally:
        probe.stop()
    samples = scrape(registry_with(probe))
    assert value(samples, "event_loop_lag_last_seconds") >= 0.2
    assert value(samples, "event_loop_lag_seconds_bucket", le="0.1") <= seen
    assert value(samples, "event_loop_lag_seconds_count") == probe.lag.count
    assert probe._handle is None  # stopped: no timer left on the loop


# -- RTP and recordings ------------------------------------------------------------------------


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.005)


async def test_rtp_counts_follow_legs_through_close() -> None:
    pool = PortPool(43000, 43999)
    tally = RtpTally()
    recording = [1]
    registry = registry_with(MediaCollector(tally, recordings_active=lambda: recording[0]))
    a = await RtpLeg.open(pool)
    b = await RtpLeg.open(pool)
    try:
        tally.track(a)
        tally.track(b)
        a.configure(b.local_address, PCMU, 0)
        b.configure(a.local_address, PCMU, 0)
        for _ in range(10):
            a.send_audio(b"\xff" * 160, 160)
        # Skip two sequence numbers: the receiver counts them lost.
        a.sender.sequence_number = (a.sender.sequence_number + 2) & 0xFFFF
        for _ in range(5):
            a.send_audio(b"\xff" * 160, 160)
        await until(lambda: b.packets_received == 15)
        samples = scrape(registry)
        assert value(samples, "rtp_streams_active") == 2
        assert value(samples, "rtp_packets_total", direction="out") == 15
        assert value(samples, "rtp_packets_total", direction="in") == 15
        assert value(samples, "rtp_packets_lost_total") == 2
        assert value(samples, "rtp_jitter_seconds") >= 0
        assert value(samples, "recordings_active") == 1
    finally:
        a.close()
        b.close()
    recording[0] = 0
    samples = scrape(registry)
    # Closed legs leave the gauge but stay in the counters.
    assert value(samples, "rtp_streams_active") == 0
    assert value(samples, "rtp_packets_total", direction="in") == 15
    assert value(samples, "rtp_packets_lost_total") == 2
    assert value(samples, "rtp_jitter_seconds") == 0
    assert value(samples, "recordings_active") == 0
    assert pool.in_use == 0


@dataclass
class _Stats:
    valid: bool = True
    cumulative_lost: int = 0
    jitter_seconds: float = 0.0


@dataclass
class _Stream:
    """A stand-in for a leg where only the tally's bookkeeping is under test:
    thousands of real legs would need thousands of sockets."""

    closed: bool = False
    packets_received: int = 1
    packets_sent: int = 1
    stats: _Stats | None = None


def test_rtp_tally_memory_stays_bounded_without_scrapes() -> None:
    tally = RtpTally()
    live = []
    for n in range(10_000):
        leg = _Stream(stats=_Stats())
        tally.track(leg)  # type: ignore[arg-type]
        if n % 100:
            leg.closed = True
        else:
            live.append(leg)
    # 100 legs open at the end; the list never holds more than twice that (+ a floor).
    assert len(tally._legs) <= max(64, 2 * len(live)) + 1
    snap = tally.snapshot()
    assert snap.active == 100
    assert snap.received == snap.sent == 10_000


def test_rtp_counters_never_go_down() -> None:
    tally = RtpTally()
    leg = _Stream(stats=_Stats(cumulative_lost=5))
    tally.track(leg)  # type: ignore[arg-type]
    registry = registry_with(MediaCollector(tally, recordings_active=lambda: 0))
    assert value(scrape(registry), "rtp_packets_lost_total") == 5
    assert leg.stats is not None
    leg.stats.cumulative_lost = 3  # late packets filled gaps
    assert value(scrape(registry), "rtp_packets_lost_total") == 5


# -- storage -------------------------------------------------------------------------------------


async def test_storage_backlog_is_read_from_the_writer(tmp_path: Path) -> None:
    collector = StorageCollector()
    registry = registry_with(collector)
    assert value(scrape(registry), "storage_journal_pending") == 0  # no writer yet
    # A database file under a regular file cannot be opened: records go to the journal.
    (tmp_path / "not-a-dir").write_text("")
    storage = SqliteStorage(tmp_path / "not-a-dir" / "acd.sqlite")
    writer = RecordWriter(storage, tmp_path / "journal", flush_interval=0.05)
    await writer.start()
    collector.writer = writer
    try:
        for _ in range(3):
            writer.submit_event(
                CallEvent(call_id=None, at=datetime.now(UTC), event=EventType.ENTERQUEUE)
            )
        await asyncio.wait_for(writer.flush(), 30)
        samples = scrape(registry)
        assert value(samples, "storage_journal_pending") == 3
        assert value(samples, "storage_records_pending") == 3
        assert value(samples, "storage_records_lost_total") == 0
    finally:
        await asyncio.wait_for(writer.stop(), 30)
