"""The ACD core with a fake clock: strategies, escalation, wrap-up, misses, join rules, max wait."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest

from acd.config import Agent as AgentConfig
from acd.config import Queue as QueueConfig
from acd.queues import (
    Acd,
    AcdError,
    Action,
    AgentChanged,
    AgentSpec,
    Escalation,
    MaxWaitReached,
    QueueSpec,
    Ring,
    StopRinging,
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    agents: Sequence[AgentSpec] | int = 3,
    *,
    queues: Iterable[QueueSpec] | None = None,
    strategy: str = "linear",
    ready: bool = True,
    rng: random.Random | None = None,
    **queue_options: object,
) -> tuple[Acd, Clock]:
    """An Acd over agents a0..aN (skill ``s`` level 1 unless given) and queue ``q``."""
    if isinstance(agents, int):
        agents = [AgentSpec(f"a{i}", f"Agent {i}", {"s": 1}) for i in range(agents)]
    if queues is None:
        queues = [QueueSpec("q", {"s": 1}, strategy, **queue_options)]  # type: ignore[arg-type]
    clock = Clock()
    acd = Acd(agents, {q.name: q for q in queues}, clock=clock, rng=rng or random.Random(7))
    if ready:
        for spec in agents:
            acd.login(spec.username)
            acd.set_reachable(spec.username, True)
    return acd, clock


def rings(actions: Iterable[Action]) -> list[Ring]:
    return [a for a in actions if isinstance(a, Ring)]


def rung(actions: Iterable[Action]) -> list[str]:
    """The agents rung by these actions, in order."""
    return [agent for ring in rings(actions) for agent in ring.agents]


def serve(acd: Acd, clock: Clock, call_id: str, queue: str = "q", talk: float = 30) -> str:
    """Enqueue one call, let the agent rung answer, end it, and see wrap-up through."""
    assert acd.enqueue(call_id, queue).joined
    agents = rung(acd.poll())
    assert len(agents) == 1, agents
    acd.ring_result(call_id, agents[0], "answered")
    clock.now += talk
    acd.call_ended(call_id, agents[0], talk)
    clock.now += 3600
    acd.poll()
    return agents[0]


# Strategies ------------------------------------------------------------------


def test_round_robin_gives_each_of_five_agents_twenty_of_a_hundred_calls() -> None:
    acd, clock = make(5, strategy="round-robin")
    served = [serve(acd, clock, f"c{i}") for i in range(100)]
    assert Counter(served) == {f"a{i}": 20 for i in range(5)}
    assert served[:6] == ["a0", "a1", "a2", "a3", "a4", "a0"]


def test_round_robin_remembers_its_place_past_a_paused_agent() -> None:
    acd, clock = make(4, strategy="round-robin")
    assert serve(acd, clock, "c1") == "a0"
    assert serve(acd, clock, "c2") == "a1"
    acd.pause("a2", "lunch")
    assert serve(acd, clock, "c3") == "a3"
    acd.unpause("a2")
    assert [serve(acd, clock, f"d{i}") for i in range(3)] == ["a0", "a1", "a2"]


def test_linear_always_starts_from_the_first_agent_in_config_order() -> None:
    acd, clock = make(3, strategy="linear")
    assert [serve(acd, clock, f"c{i}") for i in range(3)] == ["a0", "a0", "a0"]


def test_longest_idle_takes_the_agent_free_the_longest() -> None:
    acd, clock = make(3, strategy="longest-idle", wrap_up=0)
    # a0, a1, a2 all logged in at the same instant: ties fall to config order.
    assert serve(acd, clock, "c1") == "a0"
    assert serve(acd, clock, "c2") == "a1"
    assert serve(acd, clock, "c3") == "a2"
    assert serve(acd, clock, "c4") == "a0"


def test_least_busy_takes_fewest_answered_then_longest_idle() -> None:
    acd, clock = make(3, strategy="least-busy", wrap_up=0)
    assert serve(acd, clock, "c1") == "a0"
    assert serve(acd, clock, "c2") == "a1"
    # a2 has answered none; then a0 (idle longer than a1) on a tie at one each.
    assert serve(acd, clock, "c3") == "a2"
    assert serve(acd, clock, "c4") == "a0"
    acd.reset_daily()
    assert acd.agent("a0").answered_today == 0


def test_fewest_talk_time_prefers_the_agent_who_talked_least() -> None:
    acd, clock = make(3, strategy="fewest-talk-time", wrap_up=0)
    assert serve(acd, clock, "c1", talk=300) == "a0"
    assert serve(acd, clock, "c2", talk=10) == "a1"
    assert serve(acd, clock, "c3", talk=100) == "a2"
    assert serve(acd, clock, "c4") == "a1"
    assert acd.agent("a1").talk_time == 40


def test_skill_weighted_takes_the_highest_level_first() -> None:
    agents = [
        AgentSpec("low", "Low", {"s": 2}),
        AgentSpec("high", "High", {"s": 9}),
        AgentSpec("mid", "Mid", {"s": 5}),
    ]
    acd, clock = make(agents, strategy="skill-weighted")
    assert serve(acd, clock, "c1") == "high"
    acd.pause("high")
    assert serve(acd, clock, "c2") == "mid"


def test_random_is_reproducible_with_a_seeded_rng_and_spreads_calls() -> None:
    picks = []
    for _ in range(2):
        acd, clock = make(4, strategy="random", rng=random.Random(42))
        picks.append([serve(acd, clock, f"c{i}") for i in range(40)])
    assert picks[0] == picks[1]
    assert set(picks[0]) == {"a0", "a1", "a2", "a3"}


def test_ring_all_rings_every_free_agent_and_stops_the_rest_on_answer() -> None:
    acd, _ = make(3, strategy="ring-all")
    acd.pause("a1")
    acd.enqueue("c1", "q")
    assert rings(acd.poll()) == [Ring("c1", "q", ("a0", "a2"), 20)]
    actions = acd.ring_result("c1", "a2", "answered")
    assert StopRinging("c1", ("a0",), "answered-elsewhere") in actions
    assert acd.agent("a0").state == "available"
    assert acd.agent("a2").state == "on_call"


def test_ring_all_adds_an_agent_who_frees_up_while_it_rings() -> None:
    acd, _ = make(2, strategy="ring-all")
    acd.pause("a1")
    acd.enqueue("c1", "q")
    assert rung(acd.poll()) == ["a0"]
    assert rings(acd.unpause("a1")) == [Ring("c1", "q", ("a1",), 20)]


def test_caller_leaving_stops_every_ring_at_once() -> None:
    acd, _ = make(3, strategy="ring-all")
    acd.enqueue("c1", "q")
    acd.poll()
    actions = acd.leave("c1", "abandoned")
    assert [a for a in actions if isinstance(a, StopRinging)] == [
        StopRinging("c1", ("a0", "a1", "a2"), "caller-left")
    ]
    assert {acd.agent(f"a{i}").state for i in range(3)} == {"available"}
    assert acd.dispositions[-1].outcome == "abandoned"
    assert acd.leave("c1", "abandoned") == []


# Ring outcomes, misses and wrap-up --------------------------------------------


def test_no_answer_moves_to_the_next_agent_and_misses_pause_the_agent() -> None:
    acd, clock = make(2, strategy="linear", max_misses=2, retry_delay=5)
    for n in range(2):
        acd.enqueue(f"c{n}", "q")
        assert rung(acd.poll()) == ["a0"]
        actions = acd.ring_result(f"c{n}", "a0", "no-answer")
        assert rung(actions) == ["a1"]
        acd.ring_result(f"c{n}", "a1", "answered")
        acd.call_ended(f"c{n}", "a1", 1)
        clock.now += 60
        acd.poll()
    view = acd.agent("a0")
    assert (view.state, view.reason, view.misses) == ("paused", "no-answer", 2)
    acd.unpause("a0")
    assert acd.agent("a0").misses == 0


def test_an_answer_resets_the_misses() -> None:
    acd, _ = make(1, max_misses=2, retry_delay=0)
    acd.enqueue("c1", "q")
    acd.poll()
    assert rung(acd.ring_result("c1", "a0", "no-answer")) == ["a0"]
    acd.ring_result("c1", "a0", "answered")
    assert acd.agent("a0").misses == 0


def test_rejected_holds_that_agent_off_for_the_reject_delay() -> None:
    acd, clock = make(2, strategy="linear", reject_delay=8, retry_delay=0)
    acd.enqueue("c1", "q")
    acd.poll()
    assert rung(acd.ring_result("c1", "a0", "rejected")) == ["a1"]
    # retry_delay 0: a no-answer may ring the same agent again at once.
    assert rung(acd.ring_result("c1", "a1", "no-answer")) == ["a1"]
    acd.ring_result("c1", "a1", "answered")
    acd.enqueue("c2", "q")
    assert acd.poll() == []
    assert acd.next_deadline() == clock.now + 8
    clock.now += 8
    assert rung(acd.poll()) == ["a0"]


def test_wrap_up_lasts_the_queue_wrap_up_time() -> None:
    acd, clock = make(1, wrap_up=10)
    acd.enqueue("c1", "q")
    acd.poll()
    acd.ring_result("c1", "a0", "answered")
    actions = acd.call_ended("c1", "a0", 42)
    assert AgentChanged("a0", "on_call", "wrap_up", None) in actions
    acd.enqueue("c2", "q")
    assert acd.poll() == []
    assert acd.next_deadline() == clock.now + 10
    clock.now += 9.9
    assert acd.poll() == []
    clock.now += 0.1
    actions = acd.poll()
    assert AgentChanged("a0", "wrap_up", "available", None) in actions
    assert rings(actions) == [Ring("c2", "q", ("a0",), 20)]


def test_agent_offered_only_while_reachable() -> None:
    acd, _ = make(1)
    acd.set_reachable("a0", False)
    acd.enqueue("c1", "q")
    assert acd.poll() == []
    assert rung(acd.set_reachable("a0", True)) == ["a0"]


# Join and leave rules, max wait, escalation ------------------------------------


def test_join_rules_refuse_when_no_agents_or_all_paused() -> None:
    acd, _ = make(2, ready=False, join_paused=False)
    result = acd.enqueue("c1", "q")
    assert (result.joined, result.reason) == (False, "no-agents")
    acd.login("a0")
    acd.pause("a0", "training")
    result = acd.enqueue("c2", "q")
    assert (result.joined, result.reason) == (False, "all-paused")
    acd.unpause("a0")
    assert acd.enqueue("c3", "q").joined
    assert [(d.call_id, d.outcome, d.reason) for d in acd.dispositions] == [
        ("c1", "refused", "no-agents"),
        ("c2", "refused", "all-paused"),
    ]


def test_join_empty_and_leave_empty() -> None:
    acd, _ = make(1, ready=False, join_empty=True, leave_empty=True)
    assert acd.enqueue("c1", "q").joined
    acd.login("a0")
    actions = acd.logout("a0")
    assert MaxWaitReached("c1", "q", "hangup") in actions
    assert acd.waiting("q") == []
    assert (acd.dispositions[-1].outcome, acd.dispositions[-1].reason) == (
        "timeout",
        "leave-empty",
    )


def test_max_wait_hands_the_call_to_the_service_and_stops_its_rings() -> None:
    acd, clock = make(1, max_wait=60, on_max_wait="hangup")
    acd.enqueue("c1", "q")
    assert rung(acd.poll()) == ["a0"]
    clock.now += 60
    actions = acd.poll()
    assert MaxWaitReached("c1", "q", "hangup") in actions
    assert StopRinging("c1", ("a0",), "max-wait") in actions
    assert acd.position("c1") is None


def test_a_stored_callback_rejoins_at_its_place_with_no_max_wait_and_no_join_rules() -> None:
    acd, clock = make(1, ready=False, max_wait=60)  # nobody logged in, join_empty false
    assert not acd.enqueue("new", "q").joined
    assert acd.enqueue("back", "q", waited=300, callback=True).joined
    clock.now += 10
    assert acd.enqueue("newer", "q", callback=True, waited=0).joined
    [back, newer] = acd.waiting("q")
    assert (back.call_id, back.callback, back.joined_at) == ("back", True, 1000.0 - 300)
    assert newer.call_id == "newer"
    clock.now += 3600  # no maximum wait for a callback
    assert not [a for a in acd.poll() if isinstance(a, MaxWaitReached)]
    actions = acd.login("a0") + acd.set_reachable("a0", True) + acd.poll()
    assert rung(actions) == ["a0"] and acd.waiting("q")[0].ringing == ("a0",)
    with pytest.raises(AcdError, match="waited must be >= 0"):
        acd.enqueue("x", "q", waited=-1)


def test_max_wait_with_callback_keeps_the_place() -> None:
    acd, clock = make(1, max_wait=60, on_max_wait="callback")
    acd.pause("a0")
    acd.enqueue("c1", "q")
    acd.enqueue("c2", "q")
    clock.now += 61
    assert MaxWaitReached("c1", "q", "callback") in acd.poll()
    assert [w.call_id for w in acd.waiting("q")] == ["c1", "c2"]
    assert acd.waiting("q")[0].callback
    assert rung(acd.unpause("a0")) == ["a0"]


def test_escalation_widens_the_skills_after_waiting() -> None:
    agents = [AgentSpec("junior", "J", {"s": 2}), AgentSpec("senior", "S", {"s": 8})]
    queue = QueueSpec("q", {"s": 5}, "linear", escalation=(Escalation(30, {"s": 1}),))
    acd, clock = make(agents, queues=[queue])
    acd.pause("senior")
    acd.enqueue("c1", "q")
    assert acd.poll() == []
    assert acd.next_deadline() == clock.now + 30
    clock.now += 30
    assert rung(acd.poll()) == ["junior"]


# Priority, multi-queue fairness -------------------------------------------------


def test_highest_priority_then_oldest_is_served_first() -> None:
    acd, clock = make(1)
    acd.pause("a0")
    acd.enqueue("old", "q")
    clock.now += 1
    acd.enqueue("young", "q")
    acd.enqueue("vip", "q", priority=5)
    assert [w.call_id for w in acd.waiting("q")] == ["vip", "old", "young"]
    assert acd.position("young") == 3
    assert rung(acd.unpause("a0")) == ["a0"]
    assert acd.waiting("q")[0].ringing == ("a0",)


def test_agent_freed_in_the_same_poll_as_a_new_call_takes_the_older_call() -> None:
    # a0 frees up (wrap-up ends) in the same poll that "new" arrives; "old" waited first.
    acd, clock = make(2, strategy="longest-idle", wrap_up=10, reject_delay=60)
    acd.enqueue("first", "q")
    assert rung(acd.poll()) == ["a0"]
    acd.ring_result("first", "a0", "answered")
    acd.call_ended("first", "a0", 5)
    acd.pause("a1")
    acd.enqueue("old", "q", skills={"s": 1})
    acd.poll()
    clock.now += 1
    acd.unpause("a1")  # a1 takes "old"? No: a1 is rung for it at once...
    acd.ring_result("old", "a1", "rejected")  # ...and rejects, so "old" waits again
    acd.enqueue("new", "q")
    clock.now += 10
    actions = acd.poll()
    assert rings(actions) == [Ring("old", "q", ("a0",), 20)]


def test_agent_shared_by_weight_between_two_queues() -> None:
    agent = AgentSpec("a0", "A", {"s": 1}, weights={"q1": 3.0, "q2": 1.0})
    queues = [QueueSpec(name, {"s": 1}, "linear", max_wait=3600) for name in ("q1", "q2")]
    acd, clock = make([agent], queues=queues)
    acd.pause("a0")
    for i in range(50):
        acd.enqueue(f"x{i}", "q1")
        acd.enqueue(f"y{i}", "q2")
    acd.unpause("a0")
    served: Counter[str] = Counter()
    for _ in range(40):
        (call_id,) = acd.agent("a0").ringing
        acd.ring_result(call_id, "a0", "answered")
        served[acd.dispositions[-1].queue] += 1
        acd.call_ended(call_id, "a0", 5)
        clock.now += 10
        acd.poll()
    assert served == {"q1": 30, "q2": 10}


def test_expected_wait_from_recent_handle_times_and_queue_stats() -> None:
    acd, clock = make(2, wrap_up=10)
    serve(acd, clock, "c0", talk=50)  # one handle time: 50 s talk + 10 s wrap-up
    acd.pause("a1")
    acd.enqueue("c1", "q")
    assert rung(acd.poll()) == ["a0"]
    acd.ring_result("c1", "a0", "answered")
    acd.enqueue("c2", "q")
    acd.enqueue("c3", "q")
    assert acd.expected_wait("c2") == 60
    assert acd.expected_wait("c3") == 120
    clock.now += 5
    stats = acd.queue_stats("q")
    assert (stats.waiting, stats.oldest_wait, stats.logged_in) == (2, 5, 2)
    assert (stats.on_call, stats.paused, stats.available) == (1, 1, 0)
    acd.pause("a0")
    assert acd.expected_wait("c2") is None  # nobody left to serve


# Configuration and bad input -------------------------------------------------------


def test_specs_from_config() -> None:
    agent = AgentConfig.model_validate(
        {"username": "1001", "password": "correct-horse", "skills": {"s": 3}, "weights": {"q": 2}}
    )
    queue = QueueConfig.model_validate(
        {
            "skills": {"s": 2},
            "strategy": "round-robin",
            "escalation": [{"after": 60, "skills": {"s": 1}}],
            "on_max_wait": "callback",
            "max_misses": 0,
            "callback_key": "#",
        }
    )
    spec = AgentSpec.from_config(agent)
    assert (spec.username, dict(spec.skills), dict(spec.weights)) == ("1001", {"s": 3}, {"q": 2})
    qspec = QueueSpec.from_config("q", queue)
    assert qspec.escalation == (Escalation(60, {"s": 1}),)
    assert (qspec.on_max_wait, qspec.max_misses, qspec.callback_key) == ("callback", 0, "#")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda acd: acd.login("nobody"), "unknown agent 'nobody'"),
        (lambda acd: acd.enqueue("c", "nowhere"), "unknown queue 'nowhere'"),
        (lambda acd: acd.pause("a0", "nap"), "unknown pause reason 'nap'"),
        (lambda acd: acd.ring_result("c", "a0", "maybe"), "unknown ring outcome"),
        (lambda acd: acd.call_ended("c", "a0", 1), "agent a0 has no call c"),
        (lambda acd: acd.keep_place("c"), "call c is not waiting"),
    ],
)
def test_bad_input_is_a_clear_error(call: object, message: str) -> None:
    acd, _ = make(1)
    with pytest.raises(AcdError, match=message):
        call(acd)  # type: ignore[operator]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"strategy": "ring-most"}, "unknown strategy"),
        ({"on_max_wait": "voicemail"}, "not hangup, callback or queue"),
        ({"on_max_wait": "queue:nowhere"}, "unknown queue 'nowhere'"),
    ],
)
def test_bad_queue_specs_are_refused(options: Mapping[str, Any], message: str) -> None:
    with pytest.raises(AcdError, match=message):
        make(1, **options)


# Reconfiguration ----------------------------------------------------------------------


def ring_of(actions: Iterable[Action]) -> list[tuple[str, tuple[str, ...]]]:
    return [(a.call_id, a.agents) for a in actions if isinstance(a, Ring)]


def test_reconfigure_a_queue_skill_takes_effect_at_once_for_calls_waiting() -> None:
    agents = [AgentSpec("a0", "A0", {"s": 1}), AgentSpec("a1", "A1", {"t": 5})]
    acd, clock = make(agents, queues=[QueueSpec("q", {"s": 1}, "linear", max_wait=60)])
    acd.enqueue("c1", "q")
    assert ring_of(acd.poll()) == [("c1", ("a0",))]
    acd.enqueue("c2", "q")
    assert ring_of(acd.poll()) == []  # a1 lacks skill s
    clock.now += 30
    actions = acd.reconfigure(agents, {"q": QueueSpec("q", {"t": 1}, "linear", max_wait=600)})
    # c2 now needs t: a1 takes it in the same step; c1's ring to a0 goes on.
    assert ring_of(actions) == [("c2", ("a1",))]
    assert acd.agent("a0").ringing == ("c1",)
    assert [view.call_id for view in acd.waiting("q")] == ["c1", "c2"]
    # The max-wait deadline is the one each call joined with.
    clock.now += 31
    expired = [a.call_id for a in acd.poll() if isinstance(a, MaxWaitReached)]
    assert expired == ["c1", "c2"]


def test_reconfigure_removes_an_agent_on_a_call_who_still_ends_it() -> None:
    acd, _ = make(2, queues=[QueueSpec("q", {"s": 1}, "linear", wrap_up=30)])
    acd.enqueue("c1", "q")
    acd.enqueue("c2", "q")
    acd.poll()
    acd.ring_result("c1", "a0", "answered")
    assert acd.agent("a1").ringing == ("c2",)
    keep = [AgentSpec("a1", "A1", {"s": 1})]
    actions = acd.reconfigure([], {"q": QueueSpec("q", {"s": 1}, "linear", join_empty=True)})
    stops = [a for a in actions if isinstance(a, StopRinging)]
    assert [(s.call_id, s.agents, s.reason) for s in stops] == [("c2", ("a1",), "agent-logged-out")]
    changes = {(a.agent, a.new) for a in actions if isinstance(a, AgentChanged)}
    assert changes == {("a0", "logged_out"), ("a1", "logged_out")}
    assert acd.agents() == []
    assert [view.call_id for view in acd.waiting("q")] == ["c2"]  # still waiting, not put out
    with pytest.raises(AcdError, match="unknown agent"):
        acd.login("a0")
    acd.call_ended("c1", "a0", 12.0)  # the call goes on to its end: no error, no wrap-up
    # Added back, a1 takes calls again, its phone still registered.
    acd.reconfigure(keep, {"q": QueueSpec("q", {"s": 1}, "linear")})
    assert ring_of(acd.login("a1")) == [("c2", ("a1",))]  # still reachable: its phone stayed
    assert [view.username for view in acd.agents()] == ["a1"]


def test_reconfigure_disables_an_agent() -> None:
    acd, _ = make(1)
    spec = AgentSpec("a0", "A0", {"s": 1}, enabled=False)
    actions = acd.reconfigure([spec], {"q": QueueSpec("q", {"s": 1}, "linear")})
    assert [(a.agent, a.new) for a in actions if isinstance(a, AgentChanged)] == [
        ("a0", "logged_out")
    ]
    with pytest.raises(AcdError, match="disabled"):
        acd.login("a0")
    assert acd.agent("a0").state == "logged_out"


def test_reconfigure_refuses_to_remove_a_queue_with_calls_and_changes_nothing() -> None:
    queues = [QueueSpec("q", {"s": 1}, "linear"), QueueSpec("r", {"s": 1}, "linear")]
    acd, _ = make(0, queues=[dataclasses.replace(q, join_empty=True) for q in queues])
    acd.enqueue("c1", "r")
    with pytest.raises(AcdError, match="queue r has 1 calls waiting"):
        acd.reconfigure([], {"q": queues[0]})
    assert [view.call_id for view in acd.waiting("r")] == ["c1"]
    acd.leave("c1", "abandoned")
    acd.reconfigure([], {"q": queues[0]})
    with pytest.raises(AcdError, match="unknown queue"):
        acd.waiting("r")


def test_reconfigure_new_agent_and_new_strategy_route_the_next_offer() -> None:
    acd, _ = make(1, queues=[QueueSpec("q", {"s": 1}, "linear")])
    acd.enqueue("c1", "q")
    acd.poll()
    acd.ring_result("c1", "a0", "answered")
    acd.enqueue("c2", "q")
    assert ring_of(acd.poll()) == []
    agents = [AgentSpec("a0", "A0", {"s": 1}, max_calls=2), AgentSpec("b", "B", {"s": 1})]
    actions = acd.reconfigure(agents, {"q": QueueSpec("q", {"s": 1}, "ring-all")})
    # a0 may now hold two calls; b is new but logged out, so only a0 rings.
    assert ring_of(actions) == [("c2", ("a0",))]
    acd.login("b")
    acd.set_reachable("b", True)
    assert acd.agent("b").ringing == ("c2",)  # ring-all adds the agent who came free


def test_a_call_is_offered_while_an_agent_rings_for_it_and_not_while_it_only_waits() -> None:
    acd, _clock = make(1)
    acd.enqueue("c1", "q")
    acd.enqueue("c2", "q")
    assert not acd.is_offered("c1")  # matching happens on the next poll
    acd.poll()
    assert acd.is_offered("c1") and not acd.is_offered("c2")  # one agent: c2 waits
    acd.ring_result("c1", "a0", "no-answer")
    assert not acd.is_offered("c1")
    assert not acd.is_offered("nobody")


def test_a_failed_answer_is_a_miss_without_wrap_up_and_the_requeued_call_goes_elsewhere() -> None:
    acd, clock = make(2, wrap_up=10, retry_delay=20, max_misses=2)
    acd.enqueue("c1", "q")
    assert rung(acd.poll()) == ["a0"]
    acd.ring_result("c1", "a0", "answered")
    clock.now += 1
    actions = acd.call_failed("c1", "a0")
    assert AgentChanged("a0", "on_call", "available", None) in actions  # no wrap-up
    assert acd.agent("a0").misses == 1
    acd.enqueue("c1", "q", waited=5)
    assert rung(acd.poll()) == ["a1"]  # a0 is held off for retry_delay
    with pytest.raises(AcdError, match="has no call"):
        acd.call_failed("c1", "a0")
    # A second failure in a row pauses, as unanswered rings do.
    acd.ring_result("c1", "a1", "no-answer")
    clock.now += 20
    assert rung(acd.poll()) == ["a0"]
    acd.ring_result("c1", "a0", "answered")
    actions = acd.call_failed("c1", "a0")
    assert AgentChanged("a0", "on_call", "paused", "no-answer") in actions
