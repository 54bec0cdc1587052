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

Then, so that the dependence on the number of free agents shows, one more
core per ``--crowd`` size N: N agents, all free and all able to take the
calls of one queue per strategy (ring-all aside: it rings all N by
definition). A call arrives at each queue in turn (``enqueue()`` then
``poll()``, one Ring), so the strategy picks one of N; untimed, the agent
answers and the call ends (no wrap-up), so the agent is free again with a
new idle time, talk time and answered count, which the next decision pays
to sort in. The logins before (per login) and one ``reset_daily()`` after,
which re-sorts every free agent, are timed too.

Prints p50 / p99 / max in microseconds per decision (or login) for each,
and the one reset_daily in milliseconds.

    .venv/bin/python bench/route_decision.py [--samples 3000] [--seed 1]
        [--crowd 1000,10000] [--crowd-samples 500]
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


def crowd(size: int, samples: int, rng: random.Random) -> dict[str, list[float]]:
    """Decision times for a call arriving at a queue whose ``size`` agents are all free.

    Also ``login`` (each login with its ``set_reachable``) and ``reset_daily``.
    """
    agents = [AgentSpec(f"a{n}", f"Agent {n}", {"big": rng.randint(1, 10)}) for n in range(size)]
    strategies = [s for s in STRATEGIES if s != "ring-all"]
    queues = {s: QueueSpec(s, {"big": 1}, s, wrap_up=0, max_wait=1e9) for s in strategies}
    clock = Clock()
    acd = Acd(agents, queues, clock=clock, rng=rng)
    times: dict[str, list[float]] = {"login": []}
    for spec in agents:
        clock.now += 0.001  # distinct idle times, so longest-idle's order is not the index's
        t0 = time.perf_counter_ns()
        acd.login(spec.username)
        acd.set_reachable(spec.username, True)
        times["login"].append((time.perf_counter_ns() - t0) / 1000)
    # The first decision after the logins also sorts every agent into its queues'
    # orders (once); the figures are for the decisions after it.
    acd.enqueue("warm-up", strategies[0])
    acd.poll()
    acd.leave("warm-up", "abandoned")
    for n in range(samples * len(strategies)):
        strategy = strategies[n % len(strategies)]
        call_id = f"crowd{n}"
        t0 = time.perf_counter_ns()
        acd.enqueue(call_id, strategy)
        actions = acd.poll()
        times.setdefault(strategy, []).append((time.perf_counter_ns() - t0) / 1000)
        rings = [a for a in actions if isinstance(a, Ring)]
        assert len(rings) == 1 and len(rings[0].agents) == 1, actions
        agent = rings[0].agents[0]
        acd.ring_result(call_id, agent, "answered")
        clock.now += 1.0
        acd.call_ended(call_id, agent, rng.uniform(30, 300))
    t0 = time.perf_counter_ns()
    acd.reset_daily()
    times["reset_daily"] = [(time.perf_counter_ns() - t0) / 1000]
    return times


def percentiles(samples: list[float], what: str = "decisions") -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"p50 {statistics.median(ordered):7.1f} us  p99 {p99:7.1f} us  "
        f"max {ordered[-1]:7.1f} us  ({len(ordered)} {what})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--crowd",
        type=lambda text: [int(size) for size in text.split(",") if size],
        default=[1000, 10_000],
        help="comma-separated numbers of free agents in one queue ('' for none)",
    )
    parser.add_argument("--crowd-samples", type=int, default=500)
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

    for size in args.crowd:
        times = crowd(size, args.crowd_samples, rng)
        print(f"{size} logins, each:          {percentiles(times.pop('login'), 'logins')}")
        (reset,) = times.pop("reset_daily")
        for strategy, samples in times.items():
            print(f"{size} free, {strategy:<16} {percentiles(samples)}")
        print(f"{size} free, reset_daily()    {reset / 1000:.1f} ms")


if __name__ == "__main__":
    main()
