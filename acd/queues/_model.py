"""The ACD's vocabulary: specs from configuration, read-only views, and actions.

Everything here is a frozen value. The core (``_core.Acd``) keeps its own
mutable records and hands out these views, so a caller can never change an
agent's state except through the core's methods, where every invariant is
checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, get_args

from ..config import DEFAULT_PAUSE_REASONS, STRATEGIES

if TYPE_CHECKING:
    from acd import config

__all__ = [
    "DEFAULT_PAUSE_REASONS",
    "RING_OUTCOMES",
    "STRATEGIES",
    "AcdError",
    "Action",
    "AgentChanged",
    "AgentSpec",
    "AgentState",
    "AgentView",
    "Disposition",
    "Escalation",
    "JoinResult",
    "MaxWaitReached",
    "QueueSpec",
    "QueueStats",
    "Ring",
    "RingOutcome",
    "StopRinging",
    "WaitingView",
]

AgentState = Literal["logged_out", "available", "ringing", "on_call", "wrap_up", "paused"]
RingOutcome = Literal["answered", "rejected", "no-answer", "failed", "cancelled"]
RING_OUTCOMES: tuple[str, ...] = get_args(RingOutcome)


class AcdError(ValueError):
    """The caller asked the ACD something impossible: unknown agent, queue or call, bad value."""


def _frozen(mapping: Mapping[str, int] | Mapping[str, float]) -> Mapping[str, int]:
    # A read-only copy: specs are shared by the core and whoever built them.
    return MappingProxyType(dict(mapping))  # type: ignore[arg-type]


@dataclass(frozen=True)
class AgentSpec:
    """Who an agent is: skills with levels 1-10, concurrent-call limit, per-queue weights.

    ``weights`` shares an agent between queues: with calls waiting in two of
    its queues, the calls it answers from each converge to the weights' ratio
    (a queue not named weighs 1.0).
    """

    username: str
    name: str
    skills: Mapping[str, int]
    max_calls: int = 1
    team: str | None = None
    weights: Mapping[str, float] = field(default_factory=dict)
    enabled: bool = True  # a disabled agent cannot log in

    def __post_init__(self) -> None:
        if self.max_calls < 1:
            raise AcdError(f"agent {self.username}: max_calls must be at least 1")
        if any(weight <= 0 for weight in self.weights.values()):
            raise AcdError(f"agent {self.username}: queue weights must be positive")
        object.__setattr__(self, "skills", _frozen(self.skills))
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))

    @classmethod
    def from_config(cls, agent: config.Agent) -> AgentSpec:
        return cls(
            username=agent.username,
            name=agent.name,
            skills=agent.skills,
            max_calls=agent.max_calls,
            team=agent.team,
            weights=agent.weights,
            enabled=agent.enabled,
        )


@dataclass(frozen=True)
class Escalation:
    """After ``after`` seconds of waiting, the call needs ``skills`` instead (widened or lower)."""

    after: float
    skills: Mapping[str, int]

    def __post_init__(self) -> None:
        if self.after < 0:
            raise AcdError(f"escalation after {self.after}: must not be negative")
        object.__setattr__(self, "skills", _frozen(self.skills))


@dataclass(frozen=True)
class QueueSpec:
    """A queue's routing rules; times in seconds. See docs/acd.md for each field's effect."""

    name: str
    skills: Mapping[str, int]
    strategy: str
    ring_timeout: float = 20
    retry_delay: float = 5
    reject_delay: float = 5
    wrap_up: float = 10
    max_wait: float = 600
    on_max_wait: str = "hangup"
    service_level: float = 20
    join_empty: bool = False
    join_paused: bool = True
    leave_empty: bool = False
    escalation: tuple[Escalation, ...] = ()
    max_misses: int = 3
    announce_every: float = 30
    callback_key: str | None = None
    wrap_up_codes: tuple[str, ...] = ()
    wrap_up_code_required: bool = False

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise AcdError(
                f"queue {self.name}: unknown strategy {self.strategy!r} "
                f"(one of {', '.join(STRATEGIES)})"
            )
        action = self.on_max_wait
        if action not in ("hangup", "callback") and not (
            action.startswith("queue:") and len(action) > len("queue:")
        ):
            raise AcdError(
                f"queue {self.name}: on_max_wait {action!r} is not hangup, callback or queue:<name>"
            )
        if self.max_misses < 0:
            raise AcdError(f"queue {self.name}: max_misses must not be negative")
        if self.wrap_up_code_required and not self.wrap_up_codes:
            raise AcdError(f"queue {self.name}: a wrap-up code is required but none is listed")
        object.__setattr__(self, "skills", _frozen(self.skills))
        # Steps in time order, so the core can walk them one timer at a time.
        object.__setattr__(
            self, "escalation", tuple(sorted(self.escalation, key=lambda step: step.after))
        )

    @classmethod
    def from_config(cls, name: str, queue: config.Queue) -> QueueSpec:
        return cls(
            name=name,
            skills=queue.skills,
            strategy=queue.strategy,
            ring_timeout=queue.ring_timeout,
            retry_delay=queue.retry_delay,
            reject_delay=queue.reject_delay,
            wrap_up=queue.wrap_up,
            max_wait=queue.max_wait,
            on_max_wait=queue.on_max_wait,
            service_level=queue.service_level,
            join_empty=queue.join_empty,
            join_paused=queue.join_paused,
            leave_empty=queue.leave_empty,
            escalation=tuple(Escalation(step.after, step.skills) for step in queue.escalation),
            max_misses=queue.max_misses,
            announce_every=queue.announce_every,
            callback_key=queue.callback_key,
            wrap_up_codes=tuple(queue.wrap_up_codes),
            wrap_up_code_required=queue.wrap_up_code_required,
        )


# Views ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentView:
    """An agent as the API, metrics and tests see it at one instant.

    ``state`` is derived, most significant first: logged_out, on_call,
    ringing, wrap_up, paused, available. ``reason`` is the pause reason while
    paused (even during a call that the pause will follow).
    """

    username: str
    state: AgentState
    reason: str | None
    active: int
    offered: int
    answered_today: int
    talk_time: float
    idle_since: float | None
    misses: int
    logged_in: bool = False
    paused: bool = False
    reachable: bool = False
    wrapping_up: bool = False
    wrap_up_until: float | None = None  # when wrap-up time ends (clock of the core)
    code_due: str | None = None  # the call whose wrap-up code is still required
    held_until: float | None = None  # not offered calls until then (reject / retry delay)
    calls: tuple[str, ...] = ()
    ringing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WaitingView:
    """A call waiting in a queue; ``position`` is 1-based in serving order."""

    call_id: str
    queue: str
    priority: int
    joined_at: float
    position: int
    skills: Mapping[str, int] = field(default_factory=dict)
    ringing: tuple[str, ...] = ()
    callback: bool = False


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts for one queue; agent counts are over agents able to serve it."""

    waiting: int
    oldest_wait: float
    logged_in: int
    available: int
    on_call: int
    paused: int
    ringing: int = 0
    wrap_up: int = 0


@dataclass(frozen=True, slots=True)
class JoinResult:
    """Whether enqueue took the call; ``reason`` says why not (no-agents, all-paused)."""

    joined: bool
    reason: str | None
    position: int | None


@dataclass(frozen=True, slots=True)
class Disposition:
    """How a call left its queue: the outcome log that proves no call vanishes.

    ``outcome`` uses the words of ``acd.events.QueueOutcome`` (answered,
    abandoned, timeout, ...) or ``refused`` for a call that never joined;
    ``reason`` refines it (max-wait, leave-empty, no-agents, all-paused).
    """

    call_id: str
    queue: str
    outcome: str
    at: float
    waited: float
    agent: str | None = None
    reason: str | None = None


# Actions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ring:
    """Ring these agents for this call now (ring-all: several); give up after ``timeout``.

    The service owns the ring timer: when it expires it cancels the leg and
    reports ``ring_result(..., "no-answer")``.
    """

    call_id: str
    queue: str
    agents: tuple[str, ...]
    timeout: float


@dataclass(frozen=True, slots=True)
class StopRinging:
    """Stop ringing these agents for this call (answered elsewhere, caller left, logout)."""

    call_id: str
    agents: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class MaxWaitReached:
    """The call's wait ended; the service carries out ``action`` (hangup, callback, queue:x).

    For ``callback`` the call keeps its place in the queue (no further max
    wait); for the others it has already left the queue.
    """

    call_id: str
    queue: str
    action: str


@dataclass(frozen=True, slots=True)
class AgentChanged:
    """An agent's derived state (or pause reason) changed."""

    agent: str
    old: AgentState
    new: AgentState
    reason: str | None


Action = Ring | StopRinging | MaxWaitReached | AgentChanged
