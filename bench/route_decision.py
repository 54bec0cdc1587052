"""Routing decision time of the ACD core with 10,000 agents, 500 queues and 5,000 waiting calls.

Two decisions are timed, each the real public call the service makes, on a
core loaded to the stated size (strategies cycle over all eight by queue;
each agent has 3 of the 500 queue skills at random levels):

* agent frees up: an agent's wrap-up ends and ``poll()`` fires that timer
  and offers the agent the best of the calls waiting for it (one Ring).
  Every agent is busy and 5,000 calls wait, so this is the busy-centre case.
  Untimed between samples: the agent answers, another agent's call ends,
  and a new call joins so the backlog stays at 5,000.
* call arrives: ``enqueue()`` then ``poll()`` for a call to one of the 250
  queues whose agents are free (the other 250 hold the backlog), so the
  strategy picks among the free agents able to take it (one Ring; the call
  then leaves, untimed).

Prints p50 / p99 / max in microseconds per decision for each.

    .venv/bin/python bench/route_decision.py [--samples 3000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acd.queues import STRATEGIES, Acd, Action, AgentSpec, QueueSpec, Ring

AGENTS = 10_000
QUEUES = 500
WAITING = 5_000
WRAP_UP = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def build(rng: random.Random) -> tuple[Acd, Clock, list[str], list[str]]:
    """A loaded core: agents of the first half of the queues all busy, 5,000 calls waiting."""
    busy_queues = [f"q{i}" for i in range(QUEUES // 2)]
    free_queues = [f"q{i}" for i in range(QUEUES // 2, QUEUES)]
    agents = []
    for n in range(AGENTS):
        pool = busy_queues if n < AGENTS // 2 else free_queues
        skills = {f"k{q[1:]}": rng.randint(1, 10) for q in rng.sample(pool, 3)}
        agents.append(AgentSpec(f"a{n}", f"Agent {n}", skills))
    queues = {
        f"q{i}": QueueSpec(
            f"q{i}",
            {f"k{i}": 1},
            STRATEGIES[i % len(STRATEGIES)],
            wrap_up=WRAP_UP,
            max_wait=1e9,
            join_empty=True,
        )
        for i in range(QUEUES)
    }
    clock = Clock()
    acd = Acd(agents, queues, clock=clock, rng=rng)
    for spec in agents:
        acd.login(spec.username)
        acd.set_reachable(spec.username, True)
    calls = 0
    while len(waiting_calls(acd, busy_queues)) < WAITING:
        for queue in busy_queues:
            calls += 1
            acd.enqueue(f"c{calls}", queue)
        answer(acd, acd.poll())
    return acd, clock, busy_queues, free_queues


def waiting_calls(acd: Acd, queues: list[str]) -> list[str]:
    return [view.call_id for queue in queues for view in acd.waiting(queue) if not view.ringing]


def answer(acd: Acd, actions: list[Action]) -> None:
    """Answer every ring (the first agent of a ring-all), following the rings that causes."""
    pending: list[Action] = list(actions)
    while pending:
        action = pending.pop(0)
        if isinstance(action, Ring):
            pending += acd.ring_result(action.call_id, action.agents[0], "answered")


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"p50 {statistics.median(ordered):7.1f} us  p99 {p99:7.1f} us  "
        f"max {ordered[-1]:7.1f} us  ({len(ordered)} decisions)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    started = time.perf_counter()
    acd, clock, busy_queues, free_queues = build(rng)
    busy = [v for v in acd.agents() if v.calls]
    print(
        f"setup {time.perf_counter() - started:.1f} s: {len(acd.agents())} agents, "
        f"{QUEUES} queues, {len(waiting_calls(acd, busy_queues))} calls waiting, "
        f"{len(busy)} agents on a call"
    )

    freed: list[float] = []
    next_call = 10**7
    on_call = {v.username: v.calls[0] for v in busy}
    for _ in range(args.samples):
        agent = rng.choice(sorted(on_call))
        acd.call_ended(on_call.pop(agent), agent, 60.0)
        clock.now += WRAP_UP
        t0 = time.perf_counter_ns()
        actions = acd.poll()
        freed.append((time.perf_counter_ns() - t0) / 1000)
        rings = [a for a in actions if isinstance(a, Ring)]
        assert len(rings) == 1 and rings[0].agents == (agent,), actions
        answer(acd, actions)
        on_call[agent] = rings[0].call_id
        next_call += 1
        acd.enqueue(f"c{next_call}", rng.choice(busy_queues))
        assert not [a for a in acd.poll() if isinstance(a, Ring)]
    print(f"agent frees up, poll():     {percentiles(freed)}")

    arrived: list[float] = []
    for _ in range(args.samples):
        next_call += 1
        call_id = f"c{next_call}"
        queue = rng.choice(free_queues)
        t0 = time.perf_counter_ns()
        acd.enqueue(call_id, queue)
        actions = acd.poll()
        arrived.append((time.perf_counter_ns() - t0) / 1000)
        assert any(isinstance(a, Ring) for a in actions), (queue, actions)
        acd.leave(call_id, "abandoned")
    print(f"call arrives, enqueue+poll: {percentiles(arrived)}")
    print(f"calls still waiting: {len(waiting_calls(acd, busy_queues))}")


if __name__ == "__main__":
    main()
