"""Free agents kept sorted in each strategy's order, so a decision is a bisect, not a scan.

Choosing an agent for a call used to mean filtering every free agent with
the call's rarest skill and taking the ``min`` of the strategy's key: work
in proportion to the free agents at every arriving call. Here each skill set
a queue routes by (its own, its escalation steps', an IVR node's) has a
*ranking*: the free agents that qualify for it, sorted by the queue's
strategy key (``_strategies.sort_key``). An agent enters and leaves its
rankings when it becomes free or busy, and a decision walks one ranking
from its best end, stopping at the first agent that passes the checks that
depend on the call (not already ringing for it, not owed to a better call).
In the common case that is the first agent, so a decision costs a bisect.
Ring-all still takes every agent of its ranking, and random draws among
them by position, skipping only those the checks exclude.

The keys change while an agent is free only through facts the core is told
(answered today, talk time, idle since; ``reset_daily``), and an agent is
re-sorted whenever those differ from the ones it was sorted by. The core
notes every agent it touches (``update``, from its ``_refresh``); they are
settled at the end of the step and before any choice within it, so an agent
freed and rung in the same step (a wrap-up ends and it takes the next
waiting call, the busy centre's common case) is never sorted in and out,
and a step that moves hundreds at once sorts each ranking once.

Rankings are plain sorted lists: ``bisect`` runs in C, and a removal or an
insertion moves the tail with one ``memmove``. A removal and an insertion
together took about 2 us with 1,000 agents in the list and 4 us with 10,000
(sortedcontainers' SortedList: 2.5 and 3.4 us; it only wins clearly at
100,000, 7 us against 30), with no dependency and nothing left untyped.

Queues with the same skill set and the same order share one ranking, so an
agent is sorted once per distinct (skill set, order), not once per queue.
"""

from __future__ import annotations

import random
from bisect import bisect_left, insort
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import overload

from ._model import QueueSpec
from ._strategies import DAILY, AgentRecord, CallRecord, SortKey, qualifies, sort_key

__all__ = ["FreeAgents"]

_Key = tuple[float, ...]
_Facts = tuple[int, float, float | None]  # what the keys are computed from, beside static ones
_BULK = 64  # moves at once past which one pass or one sort may beat a bisect each


class _Ranking:
    """The free agents able to take calls needing one skill set, sorted by one key."""

    __slots__ = ("daily", "key", "order", "placed")

    def __init__(self, key: SortKey, daily: bool) -> None:
        self.key = key
        self.daily = daily  # the key counts today's calls
        self.order: list[_Key] = []  # sorted; each key ends with its agent's index
        self.placed: dict[int, _Key] = {}  # agent index -> its key in ``order``

    def move(self, out: list[_Key], into: list[_Key]) -> None:
        """Take the keys ``out`` from the order and sort ``into`` in, whichever way costs less.

        One key at a time is a bisect and a ``memmove``; past a few hundred
        at once (the first call after a shift logs in, ``reset_daily``) one
        pass over the list, or one sort, costs less (measured with 1,000 and
        10,000 agents).
        """
        order = self.order
        if len(out) > _BULK and len(out) * 8 > len(order):
            gone = set(out)
            order[:] = [key for key in order if key not in gone]
        else:
            for key in out:
                del order[bisect_left(order, key)]
        if len(into) > _BULK and len(into) * 32 > len(order):
            order.extend(into)
            order.sort()
        else:
            for key in into:
                insort(order, key)


class _Remaining(Sequence[AgentRecord]):
    """A ranking less the agents a call must skip, as a sequence ``Random.choice`` can index.

    It counts and indexes without copying the ranking, so ``random`` draws
    exactly as it did from the list of candidates, in O(skipped) per draw.
    """

    def __init__(self, agents: Sequence[AgentRecord], order: list[_Key], skipped: list[int]):
        self._agents = agents
        self._order = order
        self._skipped = skipped  # positions in ``order``, ascending

    def __len__(self) -> int:
        return len(self._order) - len(self._skipped)

    @overload
    def __getitem__(self, position: int) -> AgentRecord: ...
    @overload
    def __getitem__(self, position: slice) -> Sequence[AgentRecord]: ...
    def __getitem__(self, position: int | slice) -> AgentRecord | Sequence[AgentRecord]:
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(len(self)))]
        if not 0 <= position < len(self):
            raise IndexError(position)
        for skipped in self._skipped:
            if skipped > position:
                break
            position += 1
        return self._agents[int(self._order[position][-1])]


class FreeAgents:
    """Every queue's free agents in its strategy's order, for the core's routing decisions."""

    def __init__(self, agents: Mapping[str, AgentRecord]) -> None:
        self._named = agents
        self._agents = list(agents.values())  # in configuration order: [i].index == i
        self._by_queue: dict[tuple[str, frozenset[tuple[str, int]]], _Ranking] = {}
        self._shared: dict[tuple[frozenset[tuple[str, int]], Hashable], _Ranking] = {}
        self._rankings: list[list[_Ranking]] = [[] for _ in agents]  # by agent index
        self._facts: list[_Facts | None] = [None] * len(agents)  # None: in no ranking
        self._stale: dict[int, AgentRecord] = {}  # agents whose place may have changed

    def register(
        self, queue: QueueSpec, skills: Mapping[str, int], pool: Iterable[AgentRecord]
    ) -> None:
        """Rank the free agents for ``queue``'s calls needing ``skills``.

        ``pool`` holds at least every agent that qualifies for ``skills``.
        """
        self.settle()
        skill_set = frozenset(skills.items())
        # Skill-weighted sums the call's skills, or the queue's when the call needs none.
        name, key = sort_key(queue.strategy, skills or queue.skills)
        ranking = self._shared.get((skill_set, name))
        if ranking is None:
            ranking = self._shared[skill_set, name] = _Ranking(key, name in DAILY)
            for record in pool:
                if qualifies(record.spec.skills, skills):
                    self._rankings[record.index].append(ranking)
                    if self._facts[record.index] is not None:
                        ranking.placed[record.index] = key(record)
            ranking.move([], list(ranking.placed.values()))
        self._by_queue[queue.name, skill_set] = ranking

    def update(self, record: AgentRecord) -> None:
        """Note that the agent's place may have changed (``settle`` moves it)."""
        self._stale[record.index] = record

    def settle(self) -> None:
        """Rank each agent noted by ``update`` while it can take calls, where its facts say."""
        if len(self._stale) > _BULK:
            self._settle_in_bulk()
            return
        # A step usually moves a handful of agents: a bisect each.
        for record in self._stale.values():
            index = record.index
            facts = self._facts_of(record)
            if facts == self._facts[index]:
                continue
            self._facts[index] = facts
            for ranking in self._rankings[index]:
                old = ranking.placed.pop(index, None)
                if old is not None:
                    del ranking.order[bisect_left(ranking.order, old)]
                if facts is not None:
                    key = ranking.placed[index] = ranking.key(record)
                    insort(ranking.order, key)
        self._stale.clear()

    def _settle_in_bulk(self) -> None:
        """``settle`` for hundreds of agents (a ring-all, a shift's first call): per ranking."""
        moves: dict[_Ranking, tuple[list[_Key], list[_Key]]] = {}
        for record in self._stale.values():
            index = record.index
            facts = self._facts_of(record)
            if facts == self._facts[index]:
                continue
            self._facts[index] = facts
            for ranking in self._rankings[index]:
                move = moves.get(ranking)
                if move is None:
                    move = moves[ranking] = ([], [])
                old = ranking.placed.pop(index, None)
                if old is not None:
                    move[0].append(old)
                if facts is not None:
                    key = ranking.placed[index] = ranking.key(record)
                    move[1].append(key)
        self._stale.clear()
        for ranking, (out, into) in moves.items():
            ranking.move(out, into)

    @staticmethod
    def _facts_of(record: AgentRecord) -> _Facts | None:
        if not record.offerable:
            return None
        return (record.answered_today, record.talk_time, record.idle_since)

    def new_day(self) -> None:
        """Re-sort the rankings whose keys count today's calls, just set to zero for everyone."""
        self.settle()
        for ranking in self._shared.values():
            if ranking.daily:
                agents = self._agents
                ranking.placed = {i: ranking.key(agents[i]) for i in ranking.placed}
                ranking.order = sorted(ranking.placed.values())
        self._facts = [self._facts_of(record) for record in self._agents]

    def choose(
        self,
        queue: QueueSpec,
        call: CallRecord,
        *,
        rr_last: int,
        rng: random.Random,
        skip: Callable[[AgentRecord], bool],
        suspects: Iterable[Collection[str]],
    ) -> list[AgentRecord]:
        """The agents to ring for ``call``: the strategy's pick among free, qualified agents.

        ``skip`` says whether an agent of the ranking must be passed over for
        this call; it may be true only for agents named in ``suspects``.
        """
        self.settle()
        ranking = self._by_queue[queue.name, frozenset(call.skills.items())]
        order = ranking.order
        if queue.strategy == "ring-all":
            agents = (self._agents[int(key[-1])] for key in order)
            return [record for record in agents if not skip(record)]
        if queue.strategy == "random":
            return self._random(ranking, rng, skip, suspects)
        # Round-robin's ranking is by index: it starts after the agent it rang last, wrapping.
        start = bisect_left(order, (rr_last + 1,)) if queue.strategy == "round-robin" else 0
        for record in self._walk(order, start):
            if not skip(record):
                return [record]
        return []

    def _walk(self, order: list[_Key], start: int) -> Iterator[AgentRecord]:
        """The ranking's agents from ``start`` to the end, then from the beginning."""
        for position in range(start, len(order)):
            yield self._agents[int(order[position][-1])]
        for position in range(start):
            yield self._agents[int(order[position][-1])]

    def _random(
        self,
        ranking: _Ranking,
        rng: random.Random,
        skip: Callable[[AgentRecord], bool],
        suspects: Iterable[Collection[str]],
    ) -> list[AgentRecord]:
        """One agent drawn as ``rng.choice`` over the candidates in configuration order."""
        skipped = []
        for name in set().union(*suspects):
            record = self._named[name]
            key = ranking.placed.get(record.index)
            if key is not None and skip(record):
                skipped.append(bisect_left(ranking.order, key))
        remaining = _Remaining(self._agents, ranking.order, sorted(skipped))
        return [rng.choice(remaining)] if remaining else []
