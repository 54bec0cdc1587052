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
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

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
NAMES = [agent.username for agent in AGENTS]
SPECS = {agent.username: agent for agent in AGENTS}
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
        self.last: list[Action] = []
        self.decided = False  # the last step routed (every method but enqueue does)

    @initialize(
        strategies=st.tuples(st.sampled_from(STRATEGIES), st.sampled_from(STRATEGIES)),
        on_max_wait=st.sampled_from(["hangup", "callback", "queue:t"]),
        leave_empty=st.booleans(),
        seed=st.integers(0, 2**16),
    )
    def setup(
        self, strategies: tuple[str, str], on_max_wait: str, leave_empty: bool, seed: int
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
                **common,  # type: ignore[arg-type]
            ),
        ]
        self.acd = Acd(
            AGENTS, {q.name: q for q in queues}, clock=self.clock, rng=random.Random(seed)
        )

    # Helpers -----------------------------------------------------------------------

    @property
    def core(self) -> Acd:
        assert self.acd is not None
        return self.acd

    def record(self, actions: list[Action], decided: bool = True) -> None:
        self.last = actions
        self.decided = decided
        for action in actions:
            if isinstance(action, AgentChanged):
                assert self.states[action.agent] == action.old, action
                self.states[action.agent] = action.new

    def waiting(self) -> list[WaitingView]:
        return [view for queue in ("s", "t") for view in self.core.waiting(queue)]

    def views(self) -> dict[str, AgentView]:
        return {view.username: view for view in self.core.agents()}

    # Rules -------------------------------------------------------------------------

    @rule(agent=st.sampled_from(NAMES))
    def login(self, agent: str) -> None:
        self.record(self.core.login(agent))

    @rule(agent=st.sampled_from(NAMES))
    def logout(self, agent: str) -> None:
        self.record(self.core.logout(agent))

    @rule(agent=st.sampled_from(NAMES), reason=st.sampled_from(REASONS))
    def pause(self, agent: str, reason: str) -> None:
        if self.core.agent(agent).logged_in:
            self.record(self.core.pause(agent, reason))

    @rule(agent=st.sampled_from(NAMES))
    def unpause(self, agent: str) -> None:
        self.record(self.core.unpause(agent))

    @rule(agent=st.sampled_from(NAMES), reachable=st.booleans())
    def set_reachable(self, agent: str, reachable: bool) -> None:
        self.record(self.core.set_reachable(agent, reachable))

    @rule(
        queue=st.sampled_from(["s", "t"]),
        priority=st.integers(0, 2),
        skills=st.none() | st.dictionaries(st.sampled_from(["s", "t"]), st.integers(1, 3)),
    )
    def enqueue(self, queue: str, priority: int, skills: dict[str, int] | None) -> None:
        self.calls += 1
        call_id = f"c{self.calls}"
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

    @precondition(lambda self: self.acd is not None and any(v.calls for v in self.views().values()))
    @rule(data=st.data(), talk=st.floats(0, 300))
    def call_ended(self, data: st.DataObject, talk: float) -> None:
        active = [(c, v.username) for v in self.views().values() for c in v.calls]
        call_id, agent = data.draw(st.sampled_from(active))
        self.record(self.core.call_ended(call_id, agent, talk))

    @rule(seconds=st.sampled_from([0.0, 1.0, 3.0, 5.0, 20.0, 45.0, 100.0]))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.record(self.core.poll())

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
            assert view.offered + view.active <= SPECS[view.username].max_calls, view

    @invariant()
    def rung_only_when_able(self) -> None:
        if self.acd is None:
            return
        views = self.views()
        for ring in rings(self.last):
            for name in ring.agents:
                view = views[name]
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
                skills = SPECS[name].skills
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
            spec = SPECS[view.username]
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
        assert {v.username: v.state for v in self.core.agents()} == self.states


def rings(actions: Iterable[Action]) -> list[Ring]:
    return [action for action in actions if isinstance(action, Ring)]


AcdMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAcdInvariants = AcdMachine.TestCase
