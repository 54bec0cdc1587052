"""The core's mutable records and the routing strategies that rank free agents.

A strategy answers one question: of these free agents, all able to take
this call, which do we ring? Each is a sort key over an agent's record: the
agent with the smallest key rings (``ring-all`` rings them all, ``random``
any). Ties always fall back to configuration order, so a decision is
reproducible from the same history. The keys are chosen so that they do not
change while an agent stays free except through facts the core is told
(a call answered or ended, a wrap-up over), which is what lets ``_rankings``
keep free agents sorted by them instead of scanning at every call.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field

from ._model import AgentSpec, AgentState

__all__ = ["DAILY", "AgentRecord", "CallRecord", "SortKey", "qualifies", "sort_key"]


def qualifies(skills: Mapping[str, int], required: Mapping[str, int]) -> bool:
    """True when ``skills`` meet every required skill at its minimum level."""
    return all(skills.get(name, 0) >= level for name, level in required.items())


@dataclass(slots=True, eq=False)
class AgentRecord:
    """One agent's live state inside the core (never handed out; see AgentView)."""

    spec: AgentSpec
    index: int  # position in configuration order: linear, round-robin and tie-breaks
    logged_in: bool = False
    paused: str | None = None  # the pause reason, or None
    reachable: bool = False
    wrap_until: float | None = None
    code_due: str | None = None  # the call whose wrap-up code the queue requires first
    blocked_until: float | None = None  # reject / retry delay
    offered: set[str] = field(default_factory=set)  # call ids ringing this agent
    active: dict[str, str] = field(default_factory=dict)  # call id -> queue
    answered_today: int = 0
    talk_time: float = 0.0
    idle_since: float | None = None
    misses: int = 0
    misses_before_answer: int = 0  # misses in a row when the agent last answered
    queues: list[str] = field(default_factory=list)  # queues this agent can serve
    served: dict[str, int] = field(default_factory=dict)  # answered per queue, for weights
    offerable: bool = False  # cached: in the free-agent indexes
    removed: bool = False  # no longer configured; kept so indexes stay stable and calls end

    @property
    def name(self) -> str:
        return self.spec.username

    def load(self) -> int:
        return len(self.offered) + len(self.active)

    def can_take_calls(self) -> bool:
        """Logged in, not paused, reachable, not wrapping up (nor owing a wrap-up code) or
        held off, with capacity."""
        return (
            self.logged_in
            and self.paused is None
            and self.reachable
            and self.wrap_until is None
            and self.code_due is None
            and self.blocked_until is None
            and self.load() < self.spec.max_calls
        )

    def state(self) -> AgentState:
        """The state shown for the agent, from its facts, most significant first."""
        if not self.logged_in:
            return "logged_out"
        if self.active:
            return "on_call"
        if self.offered:
            return "ringing"
        if self.wrap_until is not None or self.code_due is not None:
            return "wrap_up"
        if self.paused is not None:
            return "paused"
        return "available"

    def share(self, queue: str) -> float:
        """How much of this agent ``queue`` has had, relative to its weight (lower goes first)."""
        return (self.served.get(queue, 0) + 1) / self.spec.weights.get(queue, 1.0)


@dataclass(slots=True, eq=False)
class CallRecord:
    """A call waiting in a queue (it leaves the core's queues once answered or gone)."""

    call_id: str
    queue: str
    priority: int
    joined_at: float
    seq: int
    skills: Mapping[str, int]
    base_skills: Mapping[str, int]
    ringing: set[str] = field(default_factory=set)
    max_wait_at: float | None = None
    step: int = 0  # escalation steps applied so far
    escalate_at: float | None = None
    callback: bool = False

    @property
    def key(self) -> tuple[int, float, int]:
        """Serving order: highest priority first, then oldest, then arrival order."""
        return (-self.priority, self.joined_at, self.seq)

    @property
    def order_key(self) -> tuple[int, float, int, str]:
        """Its place in its queue's sorted list of waiting calls (``key``, then the id)."""
        return (*self.key, self.call_id)


SortKey = Callable[[AgentRecord], tuple[float, ...]]
"""An agent's place in a strategy's order; every key ends with the agent's index, so none tie."""

_INDEX_ORDER = frozenset({"ring-all", "random", "linear", "round-robin"})
"""Strategies that rank by configuration order alone (round-robin starts after its last agent)."""

DAILY = frozenset({"least-busy", "fewest-talk-time"})
"""The names of the keys that count today's calls, so ``reset_daily`` changes them."""


def _idle_key(agent: AgentRecord) -> float:
    return agent.idle_since if agent.idle_since is not None else float("-inf")


def _by_index(agent: AgentRecord) -> tuple[float, ...]:
    return (agent.index,)


def _least_busy(agent: AgentRecord) -> tuple[float, ...]:
    return (agent.answered_today, _idle_key(agent), agent.index)


def _longest_idle(agent: AgentRecord) -> tuple[float, ...]:
    return (_idle_key(agent), agent.index)


def _fewest_talk_time(agent: AgentRecord) -> tuple[float, ...]:
    return (agent.talk_time, _idle_key(agent), agent.index)


def sort_key(strategy: str, required: Mapping[str, int]) -> tuple[Hashable, SortKey]:
    """The order ``strategy`` ranks free agents in, for calls ranked by the ``required`` skills.

    Returns the key and a name for it: two queues whose keys have the same
    name rank the same agents alike, so they can share one ranking.
    ``required`` matters to skill-weighted only (the skills whose levels
    are summed).
    """
    if strategy in _INDEX_ORDER:
        return "index", _by_index
    if strategy == "least-busy":
        return strategy, _least_busy
    if strategy == "longest-idle":
        return strategy, _longest_idle
    if strategy == "fewest-talk-time":
        return strategy, _fewest_talk_time
    if strategy == "skill-weighted":
        names = tuple(sorted(required))

        def skill_weighted(agent: AgentRecord) -> tuple[float, ...]:
            level = sum(agent.spec.skills.get(name, 0) for name in names)
            return (-level, _idle_key(agent), agent.index)

        return (strategy, names), skill_weighted
    raise ValueError(f"unknown strategy {strategy!r}")
