"""What the engine tells the world: small frozen facts on one in-process bus.

Call control, the ACD and storage ``publish`` these; metrics (and later
webhooks and the live wallboard) ``subscribe``. A subscriber runs inline on the
event loop, so it must be quick and must not block; one that raises is logged
and the others still run. Nothing here knows Prometheus: ``metrics/`` maps
these facts onto its names.

Durations are carried in the events themselves (seconds, from the loop's
monotonic clock) so that a subscriber never has to keep per-call state.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "AgentOffered",
    "AgentStateChanged",
    "CallArrived",
    "CallEnded",
    "CallSetup",
    "ConsultationChanged",
    "EngineEvent",
    "EventBus",
    "IvrResponse",
    "QueueJoined",
    "QueueLeft",
    "QueueOutcome",
    "RecordingError",
    "RingAttempt",
    "RingOutcome",
    "event_body",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallArrived:
    """An inbound INVITE became a call (a call attempt, for BHCA)."""

    call_id: str
    did: str
    trunk: str | None


@dataclass(frozen=True, slots=True)
class CallSetup:
    """The caller's INVITE got its final response ``status`` after ``seconds``."""

    call_id: str
    status: int
    seconds: float


@dataclass(frozen=True, slots=True)
class CallEnded:
    """A call's record is closed. ``disposition`` as in storage's ``Disposition``.

    ``agent`` is who took the call (None when nobody did), so the event reaches
    that agent's desktop and their team lead as well as supervisors.
    """

    call_id: str
    disposition: str
    queue: str | None
    hangup_side: str
    duration_s: float
    reason: str | None = None  # for failed calls: why (no-flow, error, media-timeout...)
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class IvrResponse:
    """A key press was followed by the first RTP packet of the next prompt."""

    call_id: str
    seconds: float


QueueOutcome = Literal["answered", "abandoned", "timeout", "callback", "transferred", "failed"]


@dataclass(frozen=True, slots=True)
class QueueJoined:
    """A call entered a queue (an offered call, for that queue)."""

    call_id: str
    queue: str
    priority: int


@dataclass(frozen=True, slots=True)
class QueueLeft:
    """A call left a queue after ``wait_s``; ``within_service_level`` is set for answers
    and abandons (wait at most the queue's service-level threshold)."""

    call_id: str
    queue: str
    outcome: QueueOutcome
    wait_s: float
    agent: str | None = None
    within_service_level: bool | None = None


RingOutcome = Literal["answered", "rejected", "no-answer", "cancelled", "failed"]


@dataclass(frozen=True, slots=True)
class RingAttempt:
    """An agent's phones were rung for a queued call, with this outcome."""

    call_id: str
    queue: str
    agent: str
    outcome: RingOutcome
    seconds: float


@dataclass(frozen=True, slots=True)
class AgentOffered:
    """An agent's phones start ringing for a queued call: what a screen pop shows.

    Carries the caller's number, so it goes only to viewers who reach the
    agent (the live event stream filters by role), never to logs.
    """

    call_id: str
    queue: str
    agent: str
    caller: str | None
    caller_name: str | None
    did: str
    ivr_path: tuple[str, ...]
    digits: str
    variables: tuple[tuple[str, str], ...]
    waited_s: float


@dataclass(frozen=True, slots=True)
class AgentStateChanged:
    """An agent moved between logged_out, available, ringing, on_call, wrap_up, paused."""

    agent: str
    old: str
    new: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ConsultationChanged:
    """An agent's consultation of a colleague moved on: ``state`` is ringing, talking,
    conference, or how it ended (completed, cancelled, failed, colleague-left, ended)."""

    call_id: str
    agent: str
    extension: str
    state: str


@dataclass(frozen=True, slots=True)
class RecordingError:
    """A call could not be (fully) recorded: disk guard, write failure."""

    call_id: str
    reason: str


EngineEvent = (
    CallArrived
    | CallSetup
    | CallEnded
    | IvrResponse
    | QueueJoined
    | QueueLeft
    | RingAttempt
    | AgentOffered
    | AgentStateChanged
    | ConsultationChanged
    | RecordingError
)


def event_body(event: EngineEvent) -> dict[str, Any]:
    """An event's fields as JSON values (tuples of pairs become objects)."""
    body: dict[str, Any] = {}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if f.name == "variables":
            value = dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        body[f.name] = value
    return body


Subscriber = Callable[[EngineEvent], None]


class EventBus:
    """Synchronous fan-out of engine events to subscribers."""

    __slots__ = ("_subscribers",)

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add ``subscriber``; returns the function that removes it again."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: EngineEvent) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber %r failed on %r", subscriber, event)
