"""The ACD core's invariants, checked by hypothesis after every step of random event sequences.

The machine drives one ``Acd`` through logins, pauses, registrations, calls
joining and leaving, ring outcomes, call ends and the clock moving, and after
each step checks, from the public views only:

- no agent is offered or holds more calls than its max_calls;
- an agent rung was logged in, unpaused, reachable, not wrapping up or held off;
- no call rung took an agent that an eligible call of higher priority, or an
  older one of the same priority in the same queue, was waiting for;
- after any decision, no free agent is able to take a call waiting for one;
- every call that joined is waiting, or left with exactly one disposition;
- the AgentChanged actions, replayed, give every agent's current state.

Between them the machine reconfigures the core (agents added, removed,
disabled or given other skills; queues given another strategy, skills or
escalation, a third queue added and removed) and the same invariants must
hold, with nobody waiting losing their place.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Mapping

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from acd.queues import (
    RING_OUTCOMES,
    STRATEGIES,
    Acd,
    AcdError,
    Action,
    AgentChanged,
    AgentSpec,
    AgentView,
    Escalation,
    QueueSpec,
    Ring,
    WaitingView,
)

AGENTS = [
    AgentSpec("a0", "A0", {"s": 1}),
    AgentSpec("a1", "A1", {"s": 3, "t": 1}, weights={"s": 2.0}),
    AgentSpec("a2", "A2", {"t": 2}, max_calls=2),
    AgentSpec("a3", "A3", {"s": 2, "t": 3}),
    AgentSpec("a4", "A4", {}),
]
NAMES = [agent.username for agent in AGENTS] + ["a5"]  # a5 exists only once reconfigured
SPECS = {agent.username: agent for agent in AGENTS}
SKILL_SETS = [{}, {"s": 1}, {"s": 3}, {"t": 2}, {"s": 2, "t": 2}, {"t": 3}]
REASONS = ["break", "lunch", "no-answer"]


def qualifies(skills: Mapping[str, int], required: Mapping[str, int]) -> bool:
    return all(skills.get(name, 0) >= level for name, level in required.items())


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class AcdMachine(RuleBasedStateMachine):
    """Random event sequences against one Acd; invariants after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.acd: Acd | None = None
        self.joined: set[str] = set()
        self.calls = 0
        self.states: dict[str, str] = dict.fromkeys(NAMES, "logged_out")
        self.specs: dict[str, AgentSpec] = dict(SPECS)  # the agents configured now
        self.limit: dict[str, int] = {name: spec.max_calls for name, spec in SPECS.items()}
        self.queue_names = ["s", "t"]
        self.steps = 0
        self.last: list[Action] = []
        self.decided = False  # the last step routed (every method but enqueue does)

    @initialize(
        strategies=st.tuples(st.sampled_from(STRATEGIES), st.sampled_from(STRATEGIES)),
        on_max_wait=st.sampled_from(["hangup", "callback", "queue:t"]),
        leave_empty=st.booleans(),
        seed=st.integers(0, 2**16),
        ready=st.lists(st.booleans(), min_size=len(AGENTS), max_size=len(AGENTS)),
    )
    def setup(
        self,
        strategies: tuple[str, str],
        on_max_wait: str,
        leave_empty: bool,
        seed: int,
        ready: list[bool],
    ) -> None:
        common: dict[str, float] = {"wrap_up": 5, "retry_delay": 3, "reject_delay": 4}
        queues = [
            QueueSpec(
                "s",
                {"s": 2},
                strategies[0],
                max_wait=90,
                on_max_wait=on_max_wait,
                leave_empty=leave_empty,
                join_empty=True,
                max_misses=2,
                escalation=(Escalation(20, {"s": 1}), Escalation(40, {})),
                **common,  # type: ignore[arg-type]
            ),
            QueueSpec(
                "t",
                {"t": 2},
                strategies[1],
                max_wait=60,
                join_empty=not leave_empty,
                join_paused=False,
                wrap_up_codes=("sale", "no-sale"),
                wrap_up_code_required=True,
                **common,  # type: ignore[arg-type]
            ),
        ]
        self.acd = Acd(
            AGENTS, {q.name: q for q in queues}, clock=self.clock, rng=random.Random(seed)
        )
        # Most runs start with agents at work, so rings, answers and wrap-ups are common.
        for agent, at_work in zip(NAMES, ready, strict=False):
            if at_work:
                self.record(self.core.login(agent))
                self.record(self.core.set_reachable(agent, True))

    # Helpers -----------------------------------------------------------------------

    @property
    def core(self) -> Acd:
        assert self.acd is not None
        return self.acd

    def record(self, actions: list[Action], decided: bool = True) -> None:
        self.steps += 1
        self.last = actions
        self.decided = decided
        for action in actions:
            if isinstance(action, AgentChanged):
                assert self.states[action.agent] == action.old, action
                self.states[action.agent] = action.new

    def waiting(self) -> list[WaitingView]:
        return [view for queue in self.queue_names for view in self.core.waiting(queue)]

    def views(self) -> dict[str, AgentView]:
        return {view.username: view for view in self.core.agents()}

    # Rules -------------------------------------------------------------------------

    @rule(agent=st.sampled_from(NAMES))
    def login(self, agent: str) -> None:
        spec = self.specs.get(agent)
        if spec is None or not spec.enabled:
            with pytest.raises(AcdError):
                self.core.login(agent)
            return
        self.record(self.core.login(agent))

    @rule(agent=st.sampled_from(NAMES))
    def logout(self, agent: str) -> None:
        if agent in self.specs:
            self.record(self.core.logout(agent))

    @rule(agent=st.sampled_from(NAMES), reason=st.sampled_from(REASONS))
    def pause(self, agent: str, reason: str) -> None:
        if agent in self.specs and self.core.agent(agent).logged_in:
            self.record(self.core.pause(agent, reason))

    @rule(agent=st.sampled_from(NAMES))
    def unpause(self, agent: str) -> None:
        if agent in self.specs:
            self.record(self.core.unpause(agent))

    @rule(agent=st.sampled_from(NAMES), reachable=st.booleans())
    def set_reachable(self, agent: str, reachable: bool) -> None:
        if agent in self.specs:
            self.record(self.core.set_reachable(agent, reachable))

    @precondition(lambda self: self.steps % 4 == 3)  # not so often that calls never end
    @rule(
        present=st.lists(st.booleans(), min_size=6, max_size=6),
        enabled=st.lists(st.booleans(), min_size=6, max_size=6),
        skills=st.lists(st.sampled_from(range(len(SKILL_SETS))), min_size=6, max_size=6),
        max_calls=st.lists(st.integers(1, 2), min_size=6, max_size=6),
        strategies=st.tuples(st.sampled_from(STRATEGIES), st.sampled_from(STRATEGIES)),
        queue_skills=st.tuples(
            st.sampled_from([{"s": 2}, {"s": 1}, {}]), st.sampled_from([{"t": 2}, {"t": 3}])
        ),
        escalate=st.booleans(),
        third_queue=st.booleans(),
    )
    def reconfigure(
        self,
        present: list[bool],
        enabled: list[bool],
        skills: list[int],
        max_calls: list[int],
        strategies: tuple[str, str],
        queue_skills: tuple[dict[str, int], dict[str, int]],
        escalate: bool,
        third_queue: bool,
    ) -> None:
        specs = [
            AgentSpec(
                name,
                name.upper(),
                SKILL_SETS[skills[i]],
                max_calls=max_calls[i],
                enabled=enabled[i] or i % 2 == 0,
            )
            for i, name in enumerate(NAMES)
            if present[i] or i < 2  # a0 and a1 always stay
        ]
        old = self.core._queues
        queues = {
            "s": dataclasses.replace(
                old["s"],
                strategy=strategies[0],
                skills=queue_skills[0],
                escalation=(Escalation(10, {"s": 1}),) if escalate else (),
            ),
            "t": dataclasses.replace(old["t"], strategy=strategies[1], skills=queue_skills[1]),
        }
        if third_queue:
            queues["u"] = QueueSpec("u", {"s": 1, "t": 1}, "ring-all", join_empty=True)
        elif "u" in old and self.core.waiting("u"):
            with pytest.raises(AcdError, match="calls waiting"):
                self.core.reconfigure(specs, queues)
            return
        before = [(v.call_id, v.queue, v.priority, v.joined_at) for v in self.waiting()]
        self.record(self.core.reconfigure(specs, queues))
        self.specs = {spec.username: spec for spec in specs}
        for spec in specs:
            self.limit[spec.username] = max(self.limit.get(spec.username, 1), spec.max_calls)
        self.queue_names = list(queues)
        # Nobody waiting lost a place: the same calls, in the same order (a ring may
        # have started, nothing else changed).
        after = [(v.call_id, v.queue, v.priority, v.joined_at) for v in self.waiting()]
        assert after == before

    @rule(
        queue=st.sampled_from(["s", "t", "u"]),
        priority=st.integers(0, 2),
        skills=st.none() | st.dictionaries(st.sampled_from(["s", "t"]), st.integers(1, 3)),
    )
    def enqueue(self, queue: str, priority: int, skills: dict[str, int] | None) -> None:
        self.calls += 1
        call_id = f"c{self.calls}"
        if queue not in self.queue_names:
            with pytest.raises(AcdError, match="unknown queue"):
                self.core.enqueue(call_id, queue, priority=priority, skills=skills)
            return
        result = self.core.enqueue(call_id, queue, priority=priority, skills=skills)
        if result.joined:
            self.joined.add(call_id)
            assert result.position is not None
        else:
            assert result.reason in ("no-agents", "all-paused")
        self.record([], decided=False)

    @precondition(lambda self: self.acd is not None and any(self.waiting()))
    @rule(data=st.data(), outcome=st.sampled_from(["abandoned", "transferred"]))
    def leave(self, data: st.DataObject, outcome: str) -> None:
        call = data.draw(st.sampled_from(self.waiting()))
        actions = self.core.leave(call.call_id, outcome)
        assert self.core.position(call.call_id) is None
        self.record(actions)

    @precondition(
        lambda self: self.acd is not None and any(v.ringing for v in self.views().values())
    )
    @rule(data=st.data(), outcome=st.sampled_from(RING_OUTCOMES))
    def ring_result(self, data: st.DataObject, outcome: str) -> None:
        offers = [(c, v.username) for v in self.views().values() for c in v.ringing]
        call_id, agent = data.draw(st.sampled_from(offers))
        self.record(self.core.ring_result(call_id, agent, outcome))

    @precondition(
        lambda self: self.acd is not None and any(v.ringing for v in self.views().values())
    )
    @rule(data=st.data(), talk=st.floats(0, 30))
    def answer_and_end(self, data: st.DataObject, talk: float) -> None:
        """A short call: answered, and over before anything else happens."""
        offers = [(c, v.username) for v in self.views().values() for c in v.ringing]
        call_id, agent = data.draw(st.sampled_from(offers))
        self.record(self.core.ring_result(call_id, agent, "answered"))
        # The answer may ring the agent for another call (max_calls above 1), so its
        # rings are checked now: once the call ends the agent is in wrap-up, with
        # that ring still under way, which is allowed.
        self.rung_only_when_able()
        self.record(self.core.call_ended(call_id, agent, talk))

    @precondition(lambda self: self.acd is not None and any(v.calls for v in self.views().values()))
    @rule(data=st.data(), talk=st.floats(0, 300))
    def call_ended(self, data: st.DataObject, talk: float) -> None:
        active = [(c, v.username) for v in self.views().values() for c in v.calls]
        call_id, agent = data.draw(st.sampled_from(active))
        self.record(self.core.call_ended(call_id, agent, talk))

    @precondition(lambda self: self.acd is not None and any(v.calls for v in self.views().values()))
    @rule(data=st.data())
    def call_failed(self, data: st.DataObject) -> None:
        """The agent's phone left just after answering: a miss, and no wrap-up."""
        active = [(c, v.username) for v in self.views().values() for c in v.calls]
        call_id, agent = data.draw(st.sampled_from(active))
        self.record(self.core.call_failed(call_id, agent))
        assert call_id not in self.views()[agent].calls

    @rule(seconds=st.sampled_from([0.0, 1.0, 3.0, 5.0, 20.0, 45.0, 100.0]))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.record(self.core.poll())

    @precondition(
        lambda self: self.acd is not None and any(v.code_due for v in self.views().values())
    )
    @rule(data=st.data())
    def give_wrap_up_code(self, data: st.DataObject) -> None:
        owing = [v for v in self.views().values() if v.code_due]
        view = data.draw(st.sampled_from(owing))
        assert view.code_due is not None and view.wrapping_up, view
        self.record(self.core.wrap_up_code_given(view.username, view.code_due))
        assert self.core.agent(view.username).code_due is None

    @rule(agent=st.sampled_from(NAMES), extend=st.sampled_from([None, 1.0, 30.0]))
    def end_or_extend_wrap_up(self, agent: str, extend: float | None) -> None:
        if agent not in self.specs:
            return
        view = self.core.agent(agent)
        if extend is None and view.code_due is not None:
            with pytest.raises(AcdError, match="wrap-up code first"):
                self.core.end_wrap_up(agent)
        elif extend is None:
            self.record(self.core.end_wrap_up(agent))
            assert self.core.agent(agent).wrap_up_until is None
        elif not view.wrapping_up:
            with pytest.raises(AcdError, match="not in wrap-up"):
                self.core.extend_wrap_up(agent, extend)
        else:
            self.record(self.core.extend_wrap_up(agent, extend))
            # wrapping up, though an agent taking two calls may be ringing for another
            assert self.core.agent(agent).wrapping_up

    @precondition(lambda self: self.acd is not None and any(self.waiting()))
    @rule(data=st.data())
    def keep_place(self, data: st.DataObject) -> None:
        call = data.draw(st.sampled_from(self.waiting()))
        self.core.keep_place(call.call_id)
        self.record([], decided=False)

    # Invariants ---------------------------------------------------------------------

    @invariant()
    def never_more_calls_than_allowed(self) -> None:
        if self.acd is None:
            return
        for view in self.core.agents():
            # A lower max_calls leaves the rings and calls already under way alone.
            assert view.offered + view.active <= self.limit[view.username], view

    @invariant()
    def rung_only_when_able(self) -> None:
        if self.acd is None:
            return
        views = self.views()
        for ring in rings(self.last):
            for name in ring.agents:
                view = views[name]
                assert self.specs[name].enabled, view
                assert view.offered + view.active <= self.specs[name].max_calls, view
                assert view.logged_in and not view.paused and view.reachable, view
                assert not view.wrapping_up and view.held_until is None, view

    @invariant()
    def best_call_first(self) -> None:
        if self.acd is None:
            return
        waiting = self.waiting()
        for ring in rings(self.last):
            # Matching is the last thing a step does, so a call rung is still waiting.
            rung = next(w for w in waiting if w.call_id == ring.call_id)
            priority, joined = rung.priority, rung.joined_at
            for name in ring.agents:
                skills = self.specs[name].skills
                for other in waiting:
                    if other.call_id == ring.call_id or not self._open(other, name):
                        continue
                    if not qualifies(skills, other.skills):
                        continue
                    better = other.priority > priority or (
                        other.queue == ring.queue
                        and other.priority == priority
                        and other.joined_at < joined
                    )
                    assert not better, (ring, other)

    def _open(self, call: WaitingView, agent: str) -> bool:
        if agent in call.ringing:
            return False
        return not call.ringing or self._strategy(call.queue) == "ring-all"

    def _strategy(self, queue: str) -> str:
        return self.core._queues[queue].strategy

    @invariant()
    def no_free_agent_left_beside_a_waiting_call(self) -> None:
        if self.acd is None or not self.decided:
            return
        waiting = self.waiting()
        for view in self.core.agents():
            spec = self.specs[view.username]
            free = (
                view.logged_in
                and not view.paused
                and view.reachable
                and not view.wrapping_up
                and view.held_until is None
                and view.offered + view.active < spec.max_calls
            )
            if not free:
                continue
            for call in waiting:
                able = self._open(call, view.username) and qualifies(spec.skills, call.skills)
                assert not able, (view, call)

    @invariant()
    def every_call_accounted_for(self) -> None:
        if self.acd is None:
            return
        waiting = {view.call_id for view in self.waiting()}
        left: dict[str, int] = {}
        for disposition in self.core.dispositions:
            if disposition.outcome != "refused":
                left[disposition.call_id] = left.get(disposition.call_id, 0) + 1
        assert not waiting & set(left)
        assert all(count == 1 for count in left.values()), left
        assert waiting | set(left) == self.joined

    @invariant()
    def agent_changes_replay_to_the_current_state(self) -> None:
        if self.acd is None:
            return
        views = {v.username: v.state for v in self.core.agents()}
        assert views == {name: self.states[name] for name in self.specs}
        # An agent removed was logged out on the way.
        assert all(self.states[name] == "logged_out" for name in set(NAMES) - set(self.specs))


def rings(actions: Iterable[Action]) -> list[Ring]:
    return [action for action in actions if isinstance(action, Ring)]


AcdMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAcdInvariants = AcdMachine.TestCase
