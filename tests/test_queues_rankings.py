"""The core's ranked free agents choose exactly as the scan they replaced.

Routing used to filter every free agent at every call and take the ``min``
of the strategy's key (``reference_choice`` below keeps that scan, as it
was). The core now keeps free agents sorted per skill set and strategy
(``acd/queues/_rankings.py``). A hypothesis state machine drives an ``Acd``
whose every routing decision is also made by the reference scan on the same
state, and the two must name the same agents in the same order. For
``random`` that holds exactly too: both hand ``Random.choice`` a sequence of
the same length in the same order, so the same seed draws the same agent and
leaves the generator in the same state, which is checked as well. After
every step each ranking must hold exactly the free agents that qualify, at
the keys their current facts give.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from acd.queues import (
    RING_OUTCOMES,
    STRATEGIES,
    Acd,
    Action,
    AgentSpec,
    Escalation,
    QueueSpec,
    Ring,
)
from acd.queues._strategies import AgentRecord, CallRecord

SKILLS = ["s", "t", "u"]


def qualifies(skills: Mapping[str, int], required: Mapping[str, int]) -> bool:
    return all(skills.get(name, 0) >= level for name, level in required.items())


def reference_choice(acd: Acd, call: CallRecord) -> list[AgentRecord]:
    """The agents the core rang before rankings: a filter of every free agent, then ``min``.

    The old core filtered only the free agents holding the call's rarest
    skill, the same agents whenever every required level is 1 or more; a
    required level 0 (met without the skill) made it depend on which skill
    was rarer, so here, as in the core now, such a level narrows nothing.
    """
    candidates = []
    for record in acd._agents.values():
        if not record.offerable or record.name in call.ringing:
            continue
        if not qualifies(record.spec.skills, call.skills):
            continue
        if record.name in acd._dirty_agents and not acd._may_take(record, call):
            continue
        candidates.append(record)
    queue = acd._queues[call.queue]
    return reference_strategy(
        queue, call, candidates, acd._rr_last[call.queue], len(acd._agents), acd._rng
    )


def reference_strategy(
    queue: QueueSpec,
    call: CallRecord,
    candidates: Sequence[AgentRecord],
    rr_last: int,
    agent_count: int,
    rng: random.Random,
) -> list[AgentRecord]:
    """The old ``choose``, as it was."""
    if not candidates:
        return []
    strategy = queue.strategy
    if strategy == "ring-all":
        return sorted(candidates, key=lambda agent: agent.index)
    if strategy == "random":
        return [rng.choice(sorted(candidates, key=lambda agent: agent.index))]

    def idle(agent: AgentRecord) -> float:
        return agent.idle_since if agent.idle_since is not None else float("-inf")

    required = call.skills or queue.skills
    keys: dict[str, Callable[[AgentRecord], tuple[float, ...]]] = {
        "round-robin": lambda a: ((a.index - rr_last - 1) % agent_count,),
        "least-busy": lambda a: (a.answered_today, idle(a), a.index),
        "longest-idle": lambda a: (idle(a), a.index),
        "fewest-talk-time": lambda a: (a.talk_time, idle(a), a.index),
        "skill-weighted": lambda a: (
            -sum(a.spec.skills.get(name, 0) for name in required),
            idle(a),
            a.index,
        ),
        "linear": lambda a: (a.index,),
    }
    return [min(candidates, key=keys[strategy])]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def assert_rankings_exact(acd: Acd) -> None:
    """Each ranking holds exactly the free agents that qualify, at their current keys."""
    for (queue, skill_set), ranking in acd._free._by_queue.items():
        required = dict(skill_set)
        expected = sorted(
            ranking.key(record)
            for record in acd._agents.values()
            if record.offerable and qualifies(record.spec.skills, required)
        )
        assert ranking.order == expected, (queue, required)
        assert sorted(ranking.placed.values()) == expected, (queue, required)


class CheckedAcd(Acd):
    """An Acd that makes every routing decision twice: ranked (its own) and by the old scan."""

    decisions = 0
    rung = 0  # decisions that rang someone

    def _offer_call(self, call: CallRecord, out: list[Action]) -> None:
        state = self._rng.getstate()
        expected = [record.name for record in reference_choice(self, call)]
        expected_state = self._rng.getstate()
        self._rng.setstate(state)
        start = len(out)
        super()._offer_call(call, out)
        rings = [action for action in out[start:] if isinstance(action, Ring)]
        assert [list(ring.agents) for ring in rings] == ([expected] if expected else [])
        assert self._rng.getstate() == expected_state, "random drew differently"
        self.decisions += 1
        self.rung += bool(rings)


agent_specs = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 3)),
        st.integers(1, 2),
    ),
    min_size=2,
    max_size=10,
)
PRESENCE = ["logout", "login", "pause", "unpause", "unreachable", "reachable"]


class RankingMachine(RuleBasedStateMachine):
    """Random agents, queues of random strategies, random events; every decision checked."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.acd: CheckedAcd | None = None
        self.names: list[str] = []
        self.calls = 0

    @initialize(
        agents=agent_specs,
        strategies=st.tuples(*[st.sampled_from(STRATEGIES)] * 3),
        wrap_up=st.sampled_from([0.0, 4.0]),
        seed=st.integers(0, 2**16),
    )
    def setup(
        self,
        agents: list[tuple[dict[str, int], int]],
        strategies: tuple[str, str, str],
        wrap_up: float,
        seed: int,
    ) -> None:
        specs = [
            AgentSpec(f"a{n}", f"A{n}", skills, max_calls=max_calls)
            for n, (skills, max_calls) in enumerate(agents)
        ]
        self.names = [spec.username for spec in specs]
        options = {"wrap_up": wrap_up, "retry_delay": 2.0, "reject_delay": 3.0, "join_empty": True}
        queues = [
            QueueSpec(
                "s",
                {"s": 2},
                strategies[0],
                escalation=(Escalation(10, {"s": 1}), Escalation(30, {})),
                max_misses=2,
                **options,  # type: ignore[arg-type]
            ),
            QueueSpec("st", {"s": 1, "t": 1}, strategies[1], **options),  # type: ignore[arg-type]
            QueueSpec("any", {}, strategies[2], **options),  # type: ignore[arg-type]
        ]
        self.acd = CheckedAcd(
            specs, {q.name: q for q in queues}, clock=self.clock, rng=random.Random(seed)
        )
        # Everyone starts free, idle since different times: decisions from the first call.
        for name in self.names:
            self.clock.now += 1
            self.acd.login(name)
            self.acd.set_reachable(name, True)

    @property
    def core(self) -> CheckedAcd:
        assert self.acd is not None
        return self.acd

    def ringing(self) -> list[tuple[str, str]]:
        return [(c, v.username) for v in self.core.agents() for c in v.ringing]

    def talking(self) -> list[tuple[str, str]]:
        return [(c, v.username) for v in self.core.agents() for c in v.calls]

    def waiting(self) -> list[str]:
        return [v.call_id for q in ("s", "st", "any") for v in self.core.waiting(q)]

    @rule(data=st.data(), change=st.sampled_from(PRESENCE))
    def presence(self, data: st.DataObject, change: str) -> None:
        agent = data.draw(st.sampled_from(self.names))
        if change == "pause":
            if self.core.agent(agent).logged_in:
                self.core.pause(agent)
        elif change in ("reachable", "unreachable"):
            self.core.set_reachable(agent, change == "reachable")
        else:
            getattr(self.core, change)(agent)

    @rule(
        calls=st.lists(
            st.tuples(
                st.sampled_from(["s", "st", "any"]),
                st.integers(0, 1),
                st.none() | st.dictionaries(st.sampled_from(SKILLS), st.integers(0, 3)),
            ),
            min_size=1,
            max_size=3,
        ),
        poll=st.booleans(),
    )
    def enqueue(self, calls: list[tuple[str, int, dict[str, int] | None]], poll: bool) -> None:
        # Calls with skills of their own are an IVR queue node's: a skill set ranked apart.
        # Without a poll they are routed with whatever the next step frees, so
        # just-freed agents owed to a better call are among the candidates.
        for queue, priority, skills in calls:
            self.calls += 1
            self.core.enqueue(f"c{self.calls}", queue, priority=priority, skills=skills)
        if poll:
            self.core.poll()

    @precondition(lambda self: self.acd is not None and bool(self.waiting()))
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        self.core.leave(data.draw(st.sampled_from(self.waiting())), "abandoned")

    @precondition(lambda self: self.acd is not None and bool(self.ringing()))
    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        call_id, agent = data.draw(st.sampled_from(self.ringing()))
        self.core.ring_result(call_id, agent, "answered")

    @precondition(lambda self: self.acd is not None and bool(self.ringing()))
    @rule(data=st.data(), outcome=st.sampled_from(RING_OUTCOMES))
    def ring_result(self, data: st.DataObject, outcome: str) -> None:
        call_id, agent = data.draw(st.sampled_from(self.ringing()))
        self.core.ring_result(call_id, agent, outcome)

    @precondition(lambda self: self.acd is not None and bool(self.talking()))
    @rule(data=st.data(), talk=st.sampled_from([0.0, 5.0, 30.0, 120.0]))
    def call_ended(self, data: st.DataObject, talk: float) -> None:
        call_id, agent = data.draw(st.sampled_from(self.talking()))
        self.core.call_ended(call_id, agent, talk)

    @rule(seconds=st.sampled_from([0.0, 1.0, 2.5, 4.0, 12.0, 35.0]))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.core.poll()

    @rule()
    def reset_daily(self) -> None:
        self.core.reset_daily()

    @invariant()
    def rankings_hold_the_free_qualified_agents_at_their_keys(self) -> None:
        if self.acd is not None:
            assert_rankings_exact(self.core)


RankingMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRankingsChooseAsTheScan = RankingMachine.TestCase


def test_forty_agents_route_as_the_scan_through_a_busy_hour() -> None:
    """Longer rankings than the machine's: round-robin wraps past gaps, walks pass many agents."""
    rng = random.Random(3)
    agents = [
        AgentSpec(f"a{n}", f"A{n}", {"s": 1 + n % 3, "t": n % 2}, max_calls=1 + n % 3 // 2)
        for n in range(40)
    ]
    for strategy in STRATEGIES:
        clock = Clock()
        acd = CheckedAcd(
            agents,
            {"q": QueueSpec("q", {"s": 1}, strategy, wrap_up=2, join_empty=True)},
            clock=clock,
            rng=random.Random(rng.random()),
        )
        for spec in agents:
            clock.now += 1
            acd.login(spec.username)
            acd.set_reachable(spec.username, True)
        for n in range(300):
            skills = rng.choice([None, None, {"s": 2}, {"s": 3, "t": 1}, {}])
            acd.enqueue(f"c{n}", "q", priority=rng.randint(0, 1), skills=skills)
            for action in acd.poll():
                if isinstance(action, Ring):
                    outcome = rng.choice(["answered", "answered", "rejected", "no-answer"])
                    acd.ring_result(action.call_id, rng.choice(action.agents), outcome)
            clock.now += rng.choice([0.0, 0.5, 1.0, 3.0])
            for view in acd.agents():
                for call_id in view.calls:
                    if rng.random() < 0.3:
                        acd.call_ended(call_id, view.username, rng.uniform(0, 60))
            if rng.random() < 0.05:
                acd.reset_daily()
        # Ring-all rings every free agent at once; agents freed later join through the
        # agent's own decision, not the call's, so few of its call decisions ring.
        assert acd.rung >= (5 if strategy == "ring-all" else 100), (strategy, acd.rung)


def test_many_agents_moving_at_once_are_sorted_in_and_out_in_bulk() -> None:
    """A shift logging in, a ring-all to all, reset_daily, pauses: hundreds of moves at once."""
    agents = [AgentSpec(f"a{n}", f"A{n}", {"s": 1 + n % 5}) for n in range(300)]
    queues = [
        QueueSpec("all", {"s": 1}, "ring-all", wrap_up=0),
        QueueSpec("idle", {"s": 1}, "longest-idle", wrap_up=0),
        QueueSpec("busy", {"s": 2}, "least-busy", wrap_up=0),
    ]
    clock = Clock()
    acd = CheckedAcd(agents, {q.name: q for q in queues}, clock=clock, rng=random.Random(1))
    for spec in agents:
        clock.now += 1
        acd.login(spec.username)
        acd.set_reachable(spec.username, True)
    acd.enqueue("c0", "idle")
    (ring,) = [a for a in acd.poll() if isinstance(a, Ring)]
    assert ring.agents == ("a0",)
    assert_rankings_exact(acd)
    acd.leave("c0", "abandoned")
    acd.enqueue("c1", "all")
    (ring,) = [a for a in acd.poll() if isinstance(a, Ring)]
    assert len(ring.agents) == 300
    assert_rankings_exact(acd)  # all 300 out at once
    acd.ring_result("c1", "a7", "answered")
    acd.call_ended("c1", "a7", 30.0)
    assert_rankings_exact(acd)  # 299 back in at once, a7 at a new place
    for n in range(0, 300, 3):
        acd.pause(f"a{n}")
    acd.enqueue("c2", "busy")
    (ring,) = [a for a in acd.poll() if isinstance(a, Ring)]
    assert ring.agents == ("a1",)
    assert_rankings_exact(acd)
    acd.reset_daily()
    assert_rankings_exact(acd)
