"""Contact-centre metrics: engine events counted on the loop, families built at scrape time.

:class:`AcdMetrics` subscribes to the engine's :class:`~acd.events.EventBus`
and keeps plain counters, sliding windows and histograms keyed by queue
(never by call: a label per call would grow Prometheus without bound).
Live state (queue depth, agents by state, active calls) is not counted at
all: it is read through small callables when Prometheus scrapes, so it can
never drift from the ACD's own view. This module imports only the event
definitions (a leaf module), never the ACD itself.

What each name means, and the choices behind the windowed gauges, are in
docs/metrics.md.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from acd.events import (
    AgentStateChanged,
    CallArrived,
    CallEnded,
    CallSetup,
    EngineEvent,
    IvrResponse,
    QueueJoined,
    QueueLeft,
    RecordingError,
    RingAttempt,
)

from ._window import Clock, Histogram, SlidingCount

__all__ = [
    "AGENT_STATES",
    "ANSWER_TIME_BUCKETS",
    "AcdMetrics",
    "AgentLike",
    "QueueStatsLike",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

AGENT_STATES = ("logged_out", "available", "ringing", "on_call", "wrap_up", "paused")
"""Every agent state, so ``acd_agents{state}`` has all its series from the start."""

DISPOSITIONS = ("answered", "abandoned", "timeout", "callback", "transferred", "failed")
"""How a call record can end (storage's ``Disposition``)."""

FAILURE_REASONS = ("error", "no flow")
"""The reasons call control gives failed calls today; others appear when first seen."""

ANSWER_TIME_BUCKETS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600)
"""Queue waits, in seconds: fine around typical service-level thresholds, up to 10 minutes."""

SETUP_TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
IVR_RESPONSE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5)

BHCA_SPAN = 3600.0
BHCA_STEP = 1.0
WINDOW_STEP = 10.0


class QueueStatsLike(Protocol):
    """What the ACD's ``queue_stats(queue)`` returns (only these fields are read)."""

    @property
    def waiting(self) -> int: ...
    @property
    def oldest_wait(self) -> float: ...
    @property
    def logged_in(self) -> int: ...
    @property
    def available(self) -> int: ...


class AgentLike(Protocol):
    """What the ACD's ``agents()`` lists (only the state is read)."""

    @property
    def state(self) -> Any: ...


class _QueueWindow:
    """One queue's outcomes over the rate window, for connect rate and service level."""

    __slots__ = ("abandoned", "abandoned_late", "answered", "answered_in_sl", "resolved")

    def __init__(self, span: float, clock: Clock) -> None:
        self.resolved = SlidingCount(span, WINDOW_STEP, clock)
        self.answered = SlidingCount(span, WINDOW_STEP, clock)
        self.answered_in_sl = SlidingCount(span, WINDOW_STEP, clock)
        self.abandoned = SlidingCount(span, WINDOW_STEP, clock)
        self.abandoned_late = SlidingCount(span, WINDOW_STEP, clock)


@dataclass(slots=True)
class _QueueCounts:
    """One queue's counters, histograms and window."""

    window: _QueueWindow
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    timed_out: int = 0
    callback: int = 0
    transferred: int = 0
    failed: int = 0
    ring_attempts: int = 0
    ring_no_answer: int = 0
    answer_time: Histogram = field(default_factory=lambda: Histogram(ANSWER_TIME_BUCKETS))
    abandon_time: Histogram = field(default_factory=lambda: Histogram(ANSWER_TIME_BUCKETS))


def _ratio(numerator: int, denominator: int) -> float:
    # An empty window reports 1: nothing was missed. NaN would make every
    # dashboard panel and alert on a quiet queue blank or undefined.
    return 1.0 if denominator == 0 else numerator / denominator


class AcdMetrics(Collector):
    """Counts engine events; a Prometheus collector of everything the ACD exports.

    Subscribe it with ``bus.subscribe(metrics.handle)`` and register it on a
    ``CollectorRegistry``. ``queues`` are the configured queue names (their
    series exist before the first call); the callables read live state at
    scrape time and may return nothing while the ACD is not running.
    ``window`` is the span, in seconds, of ``acd_connect_rate`` and
    ``acd_service_level``.
    """

    def __init__(
        self,
        queues: Iterable[str] = (),
        *,
        queue_stats: Callable[[str], QueueStatsLike | None] = lambda _queue: None,
        agents: Callable[[], Iterable[AgentLike]] = tuple,
        active_calls: Callable[[], int] = lambda: 0,
        window: float = 900.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._clock = clock
        self._window = window
        self._queue_stats = queue_stats
        self._agents = agents
        self._active_calls = active_calls
        self.queues: dict[str, _QueueCounts] = {}
        for name in queues:
            self._queue(name)
        self.attempts = 0
        self.bhca = SlidingCount(BHCA_SPAN, BHCA_STEP, clock)
        self.ended: Counter[str] = Counter(dict.fromkeys(DISPOSITIONS, 0))
        self.failed: Counter[str] = Counter(dict.fromkeys(FAILURE_REASONS, 0))
        self.setup_time = Histogram(SETUP_TIME_BUCKETS)
        self.ivr_response = Histogram(IVR_RESPONSE_BUCKETS)
        self.agent_changes = 0
        self.recording_errors = 0
        self._handlers: dict[type, Callable[[Any], None]] = {
            CallArrived: self._arrived,
            CallSetup: self._setup,
            CallEnded: self._ended,
            IvrResponse: self._ivr_response,
            QueueJoined: self._joined,
            QueueLeft: self._left,
            RingAttempt: self._ring,
            AgentStateChanged: self._agent_changed,
            RecordingError: self._recording_error,
        }

    def _queue(self, name: str) -> _QueueCounts:
        counts = self.queues.get(name)
        if counts is None:
            counts = self.queues[name] = _QueueCounts(_QueueWindow(self._window, self._clock))
        return counts

    # -- the subscriber: one dict look-up and a few additions per event --------------

    def handle(self, event: EngineEvent) -> None:
        """The bus subscriber. Unknown event types are ignored (newer engines add some)."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _arrived(self, event: CallArrived) -> None:
        self.attempts += 1
        self.bhca.add()

    def _setup(self, event: CallSetup) -> None:
        self.setup_time.observe(event.seconds)

    def _ended(self, event: CallEnded) -> None:
        self.ended[event.disposition] += 1
        if event.disposition == "failed":
            self.failed[event.reason or "unknown"] += 1

    def _ivr_response(self, event: IvrResponse) -> None:
        self.ivr_response.observe(event.seconds)

    def _joined(self, event: QueueJoined) -> None:
        self._queue(event.queue).offered += 1

    def _left(self, event: QueueLeft) -> None:
        q = self._queue(event.queue)
        window = q.window
        window.resolved.add()
        outcome = event.outcome
        if outcome == "answered":
            q.answered += 1
            q.answer_time.observe(event.wait_s)
            window.answered.add()
            if event.within_service_level:
                window.answered_in_sl.add()
        elif outcome == "abandoned":
            q.abandoned += 1
            q.abandon_time.observe(event.wait_s)
            window.abandoned.add()
            if event.within_service_level is False:
                window.abandoned_late.add()
        elif outcome == "timeout":
            q.timed_out += 1
        elif outcome == "callback":
            q.callback += 1
        elif outcome == "transferred":
            q.transferred += 1
        else:
            q.failed += 1

    def _ring(self, event: RingAttempt) -> None:
        q = self._queue(event.queue)
        q.ring_attempts += 1
        if event.outcome == "no-answer":
            q.ring_no_answer += 1

    def _agent_changed(self, event: AgentStateChanged) -> None:
        self.agent_changes += 1

    def _recording_error(self, event: RecordingError) -> None:
        self.recording_errors += 1

    # -- the collector --------------------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        """Nothing up front: the registry need not call :meth:`collect` at registration."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Build every family for one scrape."""
        yield from self._call_families()
        yield from self._queue_families()
        yield from self._window_families()
        yield from self._live_families()

    def _call_families(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "acd_call_attempts", "Inbound calls that reached call control", value=self.attempts
        )
        yield GaugeMetricFamily(
            "acd_bhca", "Call attempts in the last 60 minutes (busy hour call attempts)",
            value=self.bhca.total,
        )  # fmt: skip
        ended = CounterMetricFamily(
            "acd_calls_ended", "Call records closed, by disposition", labels=["disposition"]
        )
        for disposition, n in sorted(self.ended.items()):
            ended.add_metric([disposition], n)
        yield ended
        failed = CounterMetricFamily(
            "acd_calls_failed", "Calls the engine could not serve, by reason", labels=["reason"]
        )
        for reason, n in sorted(self.failed.items()):
            failed.add_metric([reason], n)
        yield failed
        setup = HistogramMetricFamily(
            "acd_setup_time_seconds", "Inbound INVITE to its final response", labels=[]
        )
        self.setup_time.add_to(setup, [])
        yield setup
        ivr = HistogramMetricFamily(
            "acd_ivr_response_seconds",
            "Caller's key press to the first packet of the next prompt",
            labels=[],
        )
        self.ivr_response.add_to(ivr, [])
        yield ivr
        yield CounterMetricFamily(
            "recording_errors", "Calls not (fully) recorded", value=self.recording_errors
        )
        yield CounterMetricFamily(
            "acd_agent_state_changes", "Agent state transitions", value=self.agent_changes
        )

    def _queue_families(self) -> Iterator[Metric]:
        counters: tuple[tuple[str, str, Callable[[_QueueCounts], int]], ...] = (
            ("acd_calls_offered", "Calls that entered the queue", lambda q: q.offered),
            ("acd_calls_answered", "Queued calls answered by an agent", lambda q: q.answered),
            (
                "acd_calls_abandoned",
                "Queued calls whose caller hung up before an answer",
                lambda q: q.abandoned,
            ),
            (
                "acd_calls_timed_out",
                "Queued calls that reached the queue's maximum wait",
                lambda q: q.timed_out,
            ),
            (
                "acd_calls_callback",
                "Queued callers who asked to be called back",
                lambda q: q.callback,
            ),
            (
                "acd_calls_transferred",
                "Queued calls transferred out of the queue",
                lambda q: q.transferred,
            ),
            (
                "acd_queue_failures",
                "Queued calls that left the queue through an engine failure",
                lambda q: q.failed,
            ),
            (
                "acd_ring_attempts",
                "Agents rung for queued calls (one per agent per offer)",
                lambda q: q.ring_attempts,
            ),
            (
                "acd_ring_no_answer",
                "Agents rung who did not answer within the ring timeout",
                lambda q: q.ring_no_answer,
            ),
        )
        queues = sorted(self.queues.items())
        for name, doc, read in counters:
            family = CounterMetricFamily(name, doc, labels=["queue"])
            for queue, q in queues:
                family.add_metric([queue], read(q))
            yield family
        answer = HistogramMetricFamily(
            "acd_answer_time_seconds", "Queue entry to agent answer", labels=["queue"]
        )
        abandon = HistogramMetricFamily(
            "acd_abandon_time_seconds", "Queue entry to the caller hanging up", labels=["queue"]
        )
        for queue, q in queues:
            q.answer_time.add_to(answer, [queue])
            q.abandon_time.add_to(abandon, [queue])
        yield answer
        yield abandon

    def _window_families(self) -> Iterator[Metric]:
        minutes = f"{self._window / 60:g} minutes"
        connect = GaugeMetricFamily(
            "acd_connect_rate",
            f"Answered over offered calls that left the queue in the last {minutes}",
            labels=["queue"],
        )
        level = GaugeMetricFamily(
            "acd_service_level",
            f"Answered within the threshold over answered, last {minutes}",
            labels=["queue"],
        )
        level_abandons = GaugeMetricFamily(
            "acd_service_level_with_abandons",
            f"Answered within the threshold over answered plus abandoned after it, last {minutes}",
            labels=["queue"],
        )
        for queue, q in sorted(self.queues.items()):
            w = q.window
            answered = w.answered.total
            in_sl = w.answered_in_sl.total
            connect.add_metric([queue], _ratio(answered, w.resolved.total))
            level.add_metric([queue], _ratio(in_sl, answered))
            level_abandons.add_metric([queue], _ratio(in_sl, answered + w.abandoned_late.total))
        yield connect
        yield level
        yield level_abandons

    def _live_families(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("acd_calls_active", "Calls in progress", value=self._active_calls())
        waiting = GaugeMetricFamily(
            "acd_queue_calls_waiting", "Calls waiting in the queue now", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "acd_queue_oldest_wait_seconds",
            "How long the longest-waiting call has waited",
            labels=["queue"],
        )
        logged_in = GaugeMetricFamily(
            "acd_queue_agents_logged_in",
            "Agents logged in who serve the queue",
            labels=["queue"],
        )
        available = GaugeMetricFamily(
            "acd_queue_agents_available",
            "Agents who serve the queue and could take a call now",
            labels=["queue"],
        )
        for queue in sorted(self.queues):
            stats = _read(self._queue_stats, queue)
            waiting.add_metric([queue], stats.waiting if stats is not None else 0)
            oldest.add_metric([queue], stats.oldest_wait if stats is not None else 0.0)
            logged_in.add_metric([queue], stats.logged_in if stats is not None else 0)
            available.add_metric([queue], stats.available if stats is not None else 0)
        yield waiting
        yield oldest
        yield logged_in
        yield available
        by_state = agents_by_state(_read(self._agents) or ())
        agents = GaugeMetricFamily("acd_agents", "Agents by state", labels=["state"])
        for state in AGENT_STATES:
            agents.add_metric([state], by_state.get(state, 0))
        for state, n in sorted(by_state.items()):
            if state not in AGENT_STATES:
                agents.add_metric([state], n)
        yield agents
        yield GaugeMetricFamily(
            "acd_agent_occupancy",
            "Share of staffed agents (not paused, logged in) on a call or in wrap-up",
            value=occupancy(by_state),
        )


def _read(view: Callable[..., _T], *args: Any) -> _T | None:
    """A live view's answer, or None when it fails.

    A collector that raises turns the whole scrape into an HTTP 500, and
    Prometheus then loses every metric, not only this one: log and go on.
    """
    try:
        return view(*args)
    except Exception:
        log.exception("metrics: reading %r failed", view)
        return None


def agents_by_state(agents: Iterable[AgentLike]) -> Mapping[str, int]:
    """How many agents are in each state (states as their string values)."""
    counts: Counter[str] = Counter()
    for agent in agents:
        state = agent.state
        counts[str(getattr(state, "value", state))] += 1
    return counts


def occupancy(by_state: Mapping[str, int]) -> float:
    """Busy (on a call, wrap-up) over staffed (busy, available, ringing); 0 with no one staffed."""
    busy = by_state.get("on_call", 0) + by_state.get("wrap_up", 0)
    staffed = busy + by_state.get("available", 0) + by_state.get("ringing", 0)
    return busy / staffed if staffed else 0.0
