"""The core's mutable records and the routing strategies that rank free agents.

A strategy answers one question: of these free agents, all able to take
this call, which do we ring? Each is a sort key over an agent's record, so
choosing is one pass over the candidates (``min``), and ``ring-all`` takes
them all. Ties always fall back to configuration order, so a decision is
reproducible from the same history.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ._model import AgentSpec, QueueSpec

__all__ = ["AgentRecord", "CallRecord", "choose", "qualifies"]


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
    blocked_until: float | None = None  # reject / retry delay
    offered: set[str] = field(default_factory=set)  # call ids ringing this agent
    active: dict[str, str] = field(default_factory=dict)  # call id -> queue
    answered_today: int = 0
    talk_time: float = 0.0
    idle_since: float | None = None
    misses: int = 0
    queues: list[str] = field(default_factory=list)  # queues this agent can serve
    served: dict[str, int] = field(default_factory=dict)  # answered per queue, for weights
    offerable: bool = False  # cached: in the free-agent indexes

    @property
    def name(self) -> str:
        return self.spec.username

    def load(self) -> int:
        return len(self.offered) + len(self.active)

    def can_take_calls(self) -> bool:
        """Logged in, not paused, reachable, not wrapping up or held off, with capacity."""
        return (
            self.logged_in
            and self.paused is None
            and self.reachable
            and self.wrap_until is None
            and self.blocked_until is None
            and self.load() < self.spec.max_calls
        )

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


_SortKey = Callable[[AgentRecord], tuple[float, ...]]


def _idle_key(agent: AgentRecord) -> float:
    return agent.idle_since if agent.idle_since is not None else float("-inf")


def choose(
    queue: QueueSpec,
    call: CallRecord,
    candidates: Sequence[AgentRecord],
    *,
    rr_last: int,
    agent_count: int,
    rng: random.Random,
) -> list[AgentRecord]:
    """The agents to ring for ``call`` among ``candidates`` (all free and qualified)."""
    if not candidates:
        return []
    strategy = queue.strategy
    if strategy == "ring-all":
        return sorted(candidates, key=lambda agent: agent.index)
    if strategy == "random":
        return [rng.choice(sorted(candidates, key=lambda agent: agent.index))]
    key: _SortKey
    if strategy == "round-robin":
        # The next agent after the last one this queue rang, in configuration order.
        def key(agent: AgentRecord) -> tuple[float, ...]:
            return ((agent.index - rr_last - 1) % agent_count,)
    elif strategy == "least-busy":

        def key(agent: AgentRecord) -> tuple[float, ...]:
            return (agent.answered_today, _idle_key(agent), agent.index)
    elif strategy == "longest-idle":

        def key(agent: AgentRecord) -> tuple[float, ...]:
            return (_idle_key(agent), agent.index)
    elif strategy == "fewest-talk-time":

        def key(agent: AgentRecord) -> tuple[float, ...]:
            return (agent.talk_time, _idle_key(agent), agent.index)
    elif strategy == "skill-weighted":
        required = call.skills or queue.skills

        def key(agent: AgentRecord) -> tuple[float, ...]:
            level = sum(agent.spec.skills.get(name, 0) for name in required)
            return (-level, _idle_key(agent), agent.index)
    else:  # linear

        def key(agent: AgentRecord) -> tuple[float, ...]:
            return (agent.index,)

    return [min(candidates, key=key)]
