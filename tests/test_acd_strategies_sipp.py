"""Each routing strategy, end to end: SIPp agents answer, SIPp callers queue one by one.

Three SIPp agents (1001, 1002, 1003, logged in in that order, skill levels
3, 9 and 5) answer after 0.2 s and hang up after 0.5 s; four callers dial
the queue one after another, so every agent is free whenever a call comes.
What each strategy must do with that (round-robin has its own test in
tests/test_acd_sipp.py; the core's tests cover every strategy under a fake
clock, tests/test_queues_core.py):

- linear: always the first agent in the configured order;
- skill-weighted: always the highest level of the queue's skill;
- least-busy, longest-idle, fewest-talk-time: spread 2/1/1, every agent used
  (fresh counters; the second call goes to someone who has none yet);
- ring-all: every agent rung for every call, the two who lose see CANCEL;
- random: every call answered by one of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import RunningEngine
from .test_acd_sipp import (
    Sipp,
    acd_config,
    events_of,
    login_all,
    queue,
    ring_events,
    scenario_copy,
    sipp_factory,  # noqa: F401 - a fixture, used by name
    wait_records,
)

pytestmark = pytest.mark.interop

AGENTS = {"1001": "{s: 3}", "1002": "{s: 9}", "1003": "{s: 5}"}
CALLS = 4

SPREAD = [1, 1, 2]


@pytest.mark.parametrize(
    "strategy",
    ["linear", "skill-weighted", "least-busy", "longest-idle", "fewest-talk-time", "ring-all",
     "random"],
)  # fmt: skip
def test_strategy_distributes_calls_as_defined(
    tmp_path: Path,
    engine_factory: Callable[[Path], RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811 - the fixture imported above
    strategy: str,
) -> None:
    engine = engine_factory(
        acd_config(tmp_path, agents=AGENTS, queues={"q": queue(strategy=strategy, skills="{s: 1}")})
    )
    sipp = sipp_factory(engine)
    answer = scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=500)
    users = list(AGENTS)
    for user in users:
        sipp.agent(user, answer)
    login_all(engine, users)
    callers = sipp.callers("200", CALLS)
    assert callers.wait(90) == 0, callers.describe()
    records = wait_records(engine, CALLS)
    assert [r["disposition"] for r in records] == ["answered"] * CALLS
    agents = Counter(str(r["agent"]) for r in records)
    rings = {r["call_id"]: ring_events(events_of(engine, r["call_id"])) for r in records}
    agents_seen = f"{agents}; rings per call: {list(rings.values())}"
    assert set(agents) <= set(users), agents_seen
    if strategy == "linear":
        assert agents == {"1001": CALLS}, agents_seen
    elif strategy == "skill-weighted":
        assert agents == {"1002": CALLS}, agents_seen
    elif strategy in ("least-busy", "longest-idle", "fewest-talk-time"):
        assert sorted(agents.values()) == SPREAD, agents_seen
    elif strategy == "ring-all":
        for record in records:
            ringing = rings[record["call_id"]]
            cancelled = {agent for event, agent, _ in ringing if event == "RINGCANCELED"}
            assert cancelled == set(users) - {record["agent"]}, ringing
