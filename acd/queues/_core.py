"""The ACD core: agents, queues and routing as a sans-I/O state machine.

Time comes from an injected clock and nothing here sleeps or touches a
socket: each method takes a fact (an agent logged in, a ring was answered)
and returns the actions it causes (ring these agents, stop ringing those).
``poll()`` runs due timers; ``next_deadline()`` says when it next has work.
The asyncio service in ``_service.py`` is the thin adapter around it.

Routing is incremental. Free agents are kept sorted in each queue's strategy
order (``_rankings``), and only what changed since the last decision is
looked at: the *dirty* calls (new, escalated, back from an unanswered ring)
and the *dirty* agents (just became free). Between decisions the core keeps
one invariant, which is what makes that enough: no free agent is able to
take any call that is waiting for one. See ``_match`` for how the order of
serving is kept.
"""

from __future__ import annotations

import heapq
import itertools
import random
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from ._model import (
    DEFAULT_PAUSE_REASONS,
    RING_OUTCOMES,
    AcdError,
    Action,
    AgentChanged,
    AgentSpec,
    AgentState,
    Disposition,
    JoinResult,
    MaxWaitReached,
    QueueSpec,
    Ring,
    StopRinging,
)
from ._rankings import FreeAgents
from ._strategies import AgentRecord, CallRecord, qualifies
from ._views import ViewsMixin

__all__ = ["Acd"]

_OrderKey = tuple[int, float, int, str]  # CallRecord.order_key


def _check(agents: list[AgentSpec], queues: Mapping[str, QueueSpec]) -> None:
    """Refuse agents and queues that do not fit together (names, targets, weights)."""
    seen: set[str] = set()
    for spec in agents:
        if spec.username in seen:
            raise AcdError(f"agent {spec.username} is listed twice")
        seen.add(spec.username)
    for name, queue in queues.items():
        if queue.name != name:
            raise AcdError(f"queue {name!r} is configured under the name {queue.name!r}")
        target = queue.on_max_wait.removeprefix("queue:")
        if queue.on_max_wait.startswith("queue:") and target not in queues:
            raise AcdError(f"queue {name}: on_max_wait names unknown queue {target!r}")
    for spec in agents:
        unknown = set(spec.weights) - set(queues)
        if unknown:
            raise AcdError(f"agent {spec.username}: weights for unknown queues {sorted(unknown)}")


class Acd(ViewsMixin):
    """Agents, queues and routing strategies for one engine (see the module docstring)."""

    def __init__(
        self,
        agents: Iterable[AgentSpec],
        queues: Mapping[str, QueueSpec],
        *,
        clock: Callable[[], float],
        rng: random.Random | None = None,
        pause_reasons: Iterable[str] = DEFAULT_PAUSE_REASONS,
        history: int = 10_000,
    ) -> None:
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._pause_reasons = frozenset(pause_reasons)
        agents = list(agents)
        _check(agents, queues)
        self._agents: dict[str, AgentRecord] = {
            spec.username: AgentRecord(spec, index) for index, spec in enumerate(agents)
        }
        self._queues: dict[str, QueueSpec] = dict(queues)
        self._calls: dict[str, CallRecord] = {}
        self._order: dict[str, list[_OrderKey]] = {name: [] for name in self._queues}
        self._rr_last = dict.fromkeys(self._queues, -1)
        self._timers: list[tuple[float, int, str, str]] = []
        self._seq = itertools.count()
        self._dirty_agents: dict[str, None] = {}  # an ordered set
        self._dirty_calls: set[str] = set()
        self._before: dict[str, tuple[AgentState, str | None]] = {}
        self._handle_times: dict[str, deque[float]] = {q: deque(maxlen=20) for q in self._queues}
        self._version = 0  # bumped by every ring: cached agent heads go stale
        self._index()
        self.dispositions: deque[Disposition] = deque(maxlen=history)
        """Every call that left a queue (or was refused), oldest first; bounded by ``history``."""

    # Agent presence -----------------------------------------------------------

    def login(self, agent: str) -> list[Action]:
        record = self._agent(agent)
        if not record.spec.enabled:
            raise AcdError(f"agent {agent} is disabled")
        if record.logged_in:
            return self._finish()
        self._touch(record)
        self._set_presence(record, logged_in=True, paused=None)
        record.idle_since = self._clock()
        return self._finish()

    def logout(self, agent: str) -> list[Action]:
        """Log out: stop the agent's rings (their calls go to the next agent) and wrap-up."""
        out: list[Action] = []
        self._log_out(self._agent(agent), out)
        return self._finish(out)

    def _log_out(self, record: AgentRecord, out: list[Action], *, leave_empty: bool = True) -> None:
        if not record.logged_in:
            return
        self._touch(record)
        self._set_presence(record, logged_in=False, paused=None)
        record.wrap_until = record.blocked_until = None
        record.code_due = None
        for call_id in sorted(record.offered):
            out.append(StopRinging(call_id, (record.name,), "agent-logged-out"))
            self._end_offer(record, self._calls[call_id])
        for queue in record.queues if leave_empty else ():
            if self._queues[queue].leave_empty and self._staffed[queue] == 0:
                for call in self._waiting_calls(queue):
                    if not call.callback:
                        self._expire(call, "leave-empty", out)

    def pause(self, agent: str, reason: str = "break") -> list[Action]:
        """Stop offering calls (a ring already under way goes on); ``reason`` from pause_reasons."""
        if reason not in self._pause_reasons:
            known = ", ".join(sorted(self._pause_reasons))
            raise AcdError(f"unknown pause reason {reason!r} (one of {known})")
        record = self._agent(agent)
        if not record.logged_in:
            raise AcdError(f"agent {agent} is not logged in, so cannot pause")
        if record.paused == reason:
            return self._finish()
        self._touch(record)
        self._set_presence(record, logged_in=True, paused=reason)
        return self._finish()

    def unpause(self, agent: str) -> list[Action]:
        record = self._agent(agent)
        if record.paused is None:
            return self._finish()
        self._touch(record)
        self._set_presence(record, logged_in=record.logged_in, paused=None)
        record.misses = 0
        return self._finish()

    def set_reachable(self, agent: str, reachable: bool) -> list[Action]:
        """Whether the agent has a registered contact; rings under way are left to the service."""
        record = self._agent(agent)
        if record.reachable == reachable:
            return self._finish()
        self._touch(record)
        record.reachable = reachable
        return self._finish()

    def reset_daily(self) -> None:
        """Start a new day for least-busy and fewest-talk-time (answered and talk time to 0)."""
        for record in self._agents.values():
            record.answered_today = 0
            record.talk_time = 0.0
        self._free.new_day()

    # Configuration -------------------------------------------------------------

    def reconfigure(
        self,
        agents: Iterable[AgentSpec],
        queues: Mapping[str, QueueSpec],
        *,
        pause_reasons: Iterable[str] | None = None,
    ) -> list[Action]:
        """Take new agents and queues without losing live state; route by them at once.

        What is live stays: callers keep their place and priority, logged-in
        agents stay logged in, paused or wrapping up, rings under way finish,
        today's counters go on. An agent no longer listed, or disabled, is
        logged out (its rings stop and go to the next agent; ``leave_empty``
        does not apply) but the call it is on goes on to its end. A waiting
        call takes a changed queue's skills and escalation steps from its
        next step on (unless it came with skills of its own), and keeps the
        max-wait deadline it joined with. A queue that still holds calls
        cannot be removed. Everything else (strategy, ring and wrap-up
        times, join rules) applies from the next decision, which this call
        makes.
        """
        specs = list(agents)
        queues = dict(queues)
        _check(specs, queues)
        for name in self._queues.keys() - queues.keys():
            if self._order[name]:
                raise AcdError(
                    f"queue {name} has {len(self._order[name])} calls waiting; "
                    "it can be removed once they have left"
                )
        out: list[Action] = []
        wanted = {spec.username: spec for spec in specs}
        for record in self._agents.values():
            spec = wanted.get(record.name)
            if spec is None or not spec.enabled:
                # Not leave_empty: a change of configuration never puts callers out.
                self._log_out(record, out, leave_empty=False)
        for record in self._agents.values():
            self._touch(record)
            record.removed = record.name not in wanted
        for spec in specs:
            known = self._agents.get(spec.username)
            if known is None:
                known = self._agents[spec.username] = AgentRecord(spec, len(self._agents))
                self._touch(known)
            known.spec = spec
        old, self._queues = self._queues, queues
        for name in queues:
            self._order.setdefault(name, [])
            self._rr_last.setdefault(name, -1)
            self._handle_times.setdefault(name, deque(maxlen=20))
        for name in old.keys() - queues.keys():
            del self._order[name], self._rr_last[name], self._handle_times[name]
        for call in self._calls.values():
            self._requeue(call, old[call.queue], queues[call.queue])
        if pause_reasons is not None:
            self._pause_reasons = frozenset(pause_reasons)
        self._index()
        self._dirty_calls.update(self._calls)
        return self._finish(out)

    def _requeue(self, call: CallRecord, old: QueueSpec, new: QueueSpec) -> None:
        """A waiting call under its queue's new settings (see ``reconfigure``)."""
        if old.skills == new.skills and old.escalation == new.escalation:
            return
        if call.base_skills == old.skills:  # the queue's own skills, not the caller's
            call.base_skills = new.skills
            if call.step == 0:
                call.skills = new.skills
        call.step = min(call.step, len(new.escalation))
        self._schedule_escalation(call)

    def _index(self) -> None:
        """Build every index derived from agents and queues: memberships, rankings, counts.

        From the records as they are, so ``reconfigure`` keeps live state
        and indexes the skill sets of calls already waiting too.
        """
        records = self._agents.values()
        self._free = FreeAgents(self._agents)
        self._heads: dict[str, tuple[int, dict[str, CallRecord]]] = {}
        self._by_skill: dict[str, list[AgentRecord]] = {}
        for record in records:
            record.queues = []
            if not record.removed:
                for skill in record.spec.skills:
                    self._by_skill.setdefault(skill, []).append(record)
        self._members: dict[str, set[str]] = {name: set() for name in self._queues}
        self._skill_sets: dict[str, set[frozenset[tuple[str, int]]]] = {
            name: set() for name in self._queues
        }
        self._staffed = dict.fromkeys(self._queues, 0)  # logged-in members
        self._unpaused = dict.fromkeys(self._queues, 0)  # logged-in, not paused members
        for name, queue in self._queues.items():
            for skills in (queue.skills, *(step.skills for step in queue.escalation)):
                self._add_members(name, skills)
        for call in self._calls.values():
            self._add_members(call.queue, call.skills)
        self._version += 1
        for record in records:
            self._refresh(record)

    # Calls ---------------------------------------------------------------------

    def enqueue(
        self,
        call_id: str,
        queue: str,
        *,
        priority: int = 0,
        skills: Mapping[str, int] | None = None,
        waited: float = 0.0,
        callback: bool = False,
    ) -> JoinResult:
        """Put a call in a queue, or refuse it by the join rules; ring on the next ``poll``.

        ``skills`` replaces the queue's required skills for this call (the
        queue's escalation steps still apply after their time). ``waited``
        seconds already spent waiting place the call as if it had joined
        that long ago (a stored callback taken back after a restart, or
        retried); ``callback`` joins it as a callback: no maximum wait, and
        it joins whatever the join rules say, since it was taken already.
        """
        if waited < 0:
            raise AcdError(f"call {call_id}: waited must be >= 0, not {waited}")
        spec = self._queue(queue)
        if call_id in self._calls:
            raise AcdError(
                f"call {call_id} is already waiting in queue {self._calls[call_id].queue}"
            )
        required = dict(spec.skills if skills is None else skills)
        if any(not isinstance(level, int) or level < 0 for level in required.values()):
            raise AcdError(f"call {call_id}: skill levels must be whole numbers >= 0")
        self._add_members(queue, required)
        now = self._clock()
        reason = None
        if callback:
            pass  # taken already: it waits for an agent whoever is logged in now
        elif self._staffed[queue] == 0 and not spec.join_empty:
            reason = "no-agents"
        elif self._staffed[queue] and self._unpaused[queue] == 0 and not spec.join_paused:
            reason = "all-paused"
        if reason is not None:
            self.dispositions.append(Disposition(call_id, queue, "refused", now, 0.0, None, reason))
            return JoinResult(False, reason, None)
        joined_at = now - waited
        call = CallRecord(call_id, queue, priority, joined_at, next(self._seq), required, required)
        self._calls[call_id] = call
        insort(self._order[queue], call.order_key)
        if callback:
            call.callback = True
        else:
            call.max_wait_at = now + spec.max_wait
            self._timer(call.max_wait_at, "max-wait", call_id)
        self._schedule_escalation(call)
        self._dirty_calls.add(call_id)
        self._version += 1
        return JoinResult(True, None, self.position(call_id))

    def leave(self, call_id: str, outcome: str) -> list[Action]:
        """The caller left the queue (``abandoned``, ``transferred``...): stop every ring at once.

        A call that already left (answered, max wait) is ignored, since the
        service may learn of the caller hanging up after the core acted.
        """
        call = self._calls.get(call_id)
        if call is None:
            return self._finish()
        out: list[Action] = []
        self._remove(call, outcome, None, None, "caller-left", out)
        return self._finish(out)

    def ring_result(self, call_id: str, agent: str, outcome: str) -> list[Action]:
        """How ringing ``agent`` for ``call_id`` ended.

        A result for a ring the core already stopped is stale and ignored,
        except ``answered``: that agent picked up a call that is gone, so the
        answer is a StopRinging telling the service to hang that leg up.
        """
        if outcome not in RING_OUTCOMES:
            raise AcdError(f"unknown ring outcome {outcome!r} (one of {', '.join(RING_OUTCOMES)})")
        record = self._agent(agent, removed=True)
        call = self._calls.get(call_id)
        if call is None or record.name not in call.ringing:
            if outcome == "answered":
                return self._finish([StopRinging(call_id, (record.name,), "gone")])
            return self._finish()
        spec = self._queues[call.queue]
        self._touch(record)
        self._end_offer(record, call)
        out: list[Action] = []
        now = self._clock()
        if outcome == "answered":
            record.active[call_id] = call.queue
            record.answered_today += 1
            record.served[call.queue] = record.served.get(call.queue, 0) + 1
            record.misses_before_answer = record.misses
            record.misses = 0
            self._remove(call, "answered", record.name, None, "answered-elsewhere", out)
        elif outcome == "rejected":
            self._block(record, now + spec.reject_delay)
        elif outcome == "no-answer":
            record.misses += 1
            if spec.max_misses and record.misses >= spec.max_misses and record.logged_in:
                self._set_presence(record, logged_in=True, paused="no-answer")
            self._block(record, now + spec.retry_delay)
        elif outcome == "failed":
            self._block(record, now + spec.retry_delay)
        return self._finish(out)

    def call_ended(self, call_id: str, agent: str, talk_time: float) -> list[Action]:
        """The agent's call ended after ``talk_time`` seconds: wrap-up for the queue's time.

        The agent and the queue may both have been removed since the call was
        answered (``reconfigure``); the call still ends, without wrap-up.
        """
        record = self._agent(agent, removed=True)
        queue = record.active.get(call_id)
        if queue is None:
            raise AcdError(f"agent {agent} has no call {call_id}")
        if not talk_time >= 0:  # NaN too: it has no place in fewest-talk-time's order
            raise AcdError(f"talk_time {talk_time} is not a duration >= 0")
        self._touch(record)
        del record.active[call_id]
        record.talk_time += talk_time
        spec = self._queues.get(queue)
        wrap = spec.wrap_up if spec is not None else 0.0
        if spec is not None:
            self._handle_times[queue].append(talk_time + wrap)
        now = self._clock()
        if record.logged_in and spec is not None and spec.wrap_up_code_required:
            record.code_due = call_id
        if record.logged_in and wrap > 0:
            until = now + wrap
            if record.wrap_until is None or until > record.wrap_until:
                record.wrap_until = until
                self._timer(until, "wrap-up", record.name)
        elif record.wrap_until is None and record.code_due is None:
            record.idle_since = now
        return self._finish()

    def call_failed(self, call_id: str, agent: str) -> list[Action]:
        """The agent's leg of an answered call failed at once (the caller goes back to the queue).

        No wrap-up and no handle time: it counts as a miss (``max_misses``
        pauses the agent as for unanswered rings) and the agent is not
        offered a call again for ``retry_delay``.
        """
        record = self._agent(agent, removed=True)
        queue = record.active.get(call_id)
        if queue is None:
            raise AcdError(f"agent {agent} has no call {call_id}")
        self._touch(record)
        del record.active[call_id]
        # An answer that failed at once was no answer: the misses in a row go on.
        record.misses = record.misses_before_answer + 1
        if record.wrap_until is None and record.code_due is None:
            record.idle_since = self._clock()
        spec = self._queues.get(queue)
        if spec is not None:
            if spec.max_misses and record.misses >= spec.max_misses and record.logged_in:
                self._set_presence(record, logged_in=True, paused="no-answer")
            self._block(record, self._clock() + spec.retry_delay)
        return self._finish()

    # Wrap-up -----------------------------------------------------------------

    def wrap_up_code_given(self, agent: str, call_id: str) -> list[Action]:
        """The agent gave ``call_id`` its wrap-up code: a required one no longer holds it."""
        record = self._agent(agent, removed=True)
        if record.code_due != call_id:
            return self._finish()
        self._touch(record)
        record.code_due = None
        if record.wrap_until is None:
            record.idle_since = self._clock()
        return self._finish()

    def end_wrap_up(self, agent: str) -> list[Action]:
        """The agent is ready before the wrap-up time is over (not while a code is owed)."""
        record = self._agent(agent)
        if record.code_due is not None:
            raise AcdError(f"agent {agent} must give call {record.code_due} a wrap-up code first")
        if record.wrap_until is None:
            return self._finish()
        self._touch(record)
        record.wrap_until = None
        record.idle_since = self._clock()
        return self._finish()

    def extend_wrap_up(self, agent: str, seconds: float) -> list[Action]:
        """More wrap-up time: ``seconds`` from the end of the current one (or from now)."""
        if not 0 < seconds <= 3600:
            raise AcdError(f"a wrap-up extension of {seconds} s is not between 0 and 3600")
        record = self._agent(agent)
        if record.wrap_until is None and record.code_due is None:
            raise AcdError(f"agent {agent} is not in wrap-up")
        now = self._clock()
        self._touch(record)
        record.wrap_until = max(record.wrap_until or now, now) + seconds
        self._timer(record.wrap_until, "wrap-up", record.name)
        return self._finish()

    def keep_place(self, call_id: str) -> None:
        """The caller asked for a callback: the entry keeps its place, with no max wait."""
        call = self._calls.get(call_id)
        if call is None:
            raise AcdError(f"call {call_id} is not waiting in any queue")
        call.callback = True
        call.max_wait_at = None

    # Timers ------------------------------------------------------------------

    def poll(self) -> list[Action]:
        """Run due timers (wrap-up end, delays, max wait, escalation), then ring free agents."""
        now = self._clock()
        out: list[Action] = []
        while self._timers and self._timers[0][0] <= now:
            when, _, kind, key = heapq.heappop(self._timers)
            self._fire(when, kind, key, out)
        return self._finish(out)

    def next_deadline(self) -> float | None:
        """When ``poll`` next has work: now if a decision is pending, else the next timer."""
        if self._dirty_calls or self._dirty_agents:
            return self._clock()
        while self._timers and not self._is_live(*self._timers[0]):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def _timer(self, when: float, kind: str, key: str) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), kind, key))

    def _is_live(self, when: float, _seq: int, kind: str, key: str) -> bool:
        # Timers are never cancelled, only outdated: each checks it still applies.
        if kind == "wrap-up":
            return self._agents[key].wrap_until == when
        if kind == "delay":
            return self._agents[key].blocked_until == when
        call = self._calls.get(key)
        if call is None:
            return False
        return (call.max_wait_at if kind == "max-wait" else call.escalate_at) == when

    def _fire(self, when: float, kind: str, key: str, out: list[Action]) -> None:
        if not self._is_live(when, 0, kind, key):
            return
        if kind in ("wrap-up", "delay"):
            record = self._agents[key]
            self._touch(record)
            if kind == "wrap-up":
                record.wrap_until = None
                if record.code_due is None:
                    record.idle_since = when
            else:
                record.blocked_until = None
        elif kind == "max-wait":
            self._expire(self._calls[key], "max-wait", out)
        else:
            call = self._calls[key]
            step = self._queues[call.queue].escalation[call.step]
            call.skills = step.skills
            call.step += 1
            self._add_members(call.queue, step.skills)
            self._schedule_escalation(call)
            self._dirty_calls.add(call.call_id)
            self._version += 1

    def _schedule_escalation(self, call: CallRecord) -> None:
        steps = self._queues[call.queue].escalation
        call.escalate_at = (
            call.joined_at + steps[call.step].after if call.step < len(steps) else None
        )
        if call.escalate_at is not None:
            self._timer(call.escalate_at, "escalate", call.call_id)

    # Matching ----------------------------------------------------------------

    def _match(self, out: list[Action]) -> None:
        """Offer waiting calls to free agents until no free agent can take a waiting call.

        Two kinds of decision keep both the serving order and the strategies:

        1. each dirty *call*, best first (highest priority, then oldest), is
           offered by its queue's strategy to the free agents able to take it
           -- except a just-freed agent that has a better call waiting for it
           (higher priority anywhere, or older in the same queue);
        2. each dirty *agent* still free takes the best call it can: highest
           priority first, then the queue that has had least of it for its
           weight, then the oldest call in that queue.

        An agent free since the last decision cannot take any call that was
        waiting then (the invariant), so looking only at dirty work suffices.
        """
        while self._dirty_calls or self._dirty_agents:
            calls = [self._calls[c] for c in self._dirty_calls if c in self._calls]
            self._dirty_calls.clear()
            for call in sorted(calls, key=lambda c: c.key):
                if self._calls.get(call.call_id) is call and self._open(call):
                    self._offer_call(call, out)
            while self._dirty_agents:
                name = next(iter(self._dirty_agents))
                del self._dirty_agents[name]
                record = self._agents[name]
                while record.offerable:
                    best = self._best_call_for(record)
                    if best is None:
                        break
                    self._ring(best, [record], out)
                self._dirty_agents.pop(name, None)

    def _open(self, call: CallRecord) -> bool:
        """Whether ``call`` can take (more) agents: ring-all keeps adding freed agents."""
        return not call.ringing or self._queues[call.queue].strategy == "ring-all"

    def _offer_call(self, call: CallRecord, out: list[Action]) -> None:
        def skip(record: AgentRecord) -> bool:
            if record.name in call.ringing:
                return True
            return record.name in self._dirty_agents and not self._may_take(record, call)

        chosen = self._free.choose(
            self._queues[call.queue],
            call,
            rr_last=self._rr_last[call.queue],
            rng=self._rng,
            skip=skip,
            suspects=(call.ringing, self._dirty_agents),
        )
        if chosen:
            self._ring(call, chosen, out)

    def _may_take(self, record: AgentRecord, call: CallRecord) -> bool:
        heads = self._heads_for(record)
        if heads.get(call.queue) is not call:
            return False
        return all(head.priority <= call.priority for head in heads.values())

    def _heads_for(self, record: AgentRecord) -> dict[str, CallRecord]:
        """The first call in each of the agent's queues that it could take now."""
        cached = self._heads.get(record.name)
        if cached is not None and cached[0] == self._version:
            return cached[1]
        heads: dict[str, CallRecord] = {}
        skills = record.spec.skills
        for queue in record.queues:
            for *_, call_id in self._order[queue]:
                call = self._calls[call_id]
                if (
                    self._open(call)
                    and record.name not in call.ringing
                    and qualifies(skills, call.skills)
                ):
                    heads[queue] = call
                    break
        self._heads[record.name] = (self._version, heads)
        return heads

    def _best_call_for(self, record: AgentRecord) -> CallRecord | None:
        heads = self._heads_for(record)
        if not heads:
            return None
        return min(
            heads.values(), key=lambda c: (-c.priority, record.share(c.queue), c.joined_at, c.seq)
        )

    def _ring(self, call: CallRecord, agents: list[AgentRecord], out: list[Action]) -> None:
        spec = self._queues[call.queue]
        for record in agents:
            self._touch(record)
            record.offered.add(call.call_id)
            call.ringing.add(record.name)
            self._refresh(record)
        if spec.strategy == "round-robin":
            self._rr_last[call.queue] = agents[-1].index
        self._version += 1
        out.append(Ring(call.call_id, call.queue, tuple(a.name for a in agents), spec.ring_timeout))

    # State changes -----------------------------------------------------------

    def _end_offer(self, record: AgentRecord, call: CallRecord) -> None:
        record.offered.discard(call.call_id)
        call.ringing.discard(record.name)
        self._dirty_calls.add(call.call_id)
        self._version += 1

    def _block(self, record: AgentRecord, until: float) -> None:
        """Hold an agent off new calls until ``until`` (reject or retry delay)."""
        if until <= self._clock():
            return
        if record.blocked_until is None or until > record.blocked_until:
            record.blocked_until = until
            self._timer(until, "delay", record.name)

    def _expire(self, call: CallRecord, reason: str, out: list[Action]) -> None:
        """Max wait (or leave-empty): the call leaves, or keeps its place for a callback."""
        action = self._queues[call.queue].on_max_wait
        out.append(MaxWaitReached(call.call_id, call.queue, action))
        if action == "callback":
            call.callback = True
            call.max_wait_at = None
        else:
            self._remove(call, "timeout", None, reason, "max-wait", out)

    def _remove(
        self,
        call: CallRecord,
        outcome: str,
        agent: str | None,
        reason: str | None,
        stop_reason: str,
        out: list[Action],
    ) -> None:
        """Take a call out of its queue, stop its rings and record its disposition."""
        del self._calls[call.call_id]
        order = self._order[call.queue]
        del order[bisect_left(order, call.order_key)]
        self._dirty_calls.discard(call.call_id)
        if call.ringing:
            names = tuple(sorted(call.ringing))
            out.append(StopRinging(call.call_id, names, stop_reason))
            for name in names:
                record = self._agents[name]
                self._touch(record)
                record.offered.discard(call.call_id)
            call.ringing.clear()
        self._version += 1
        now = self._clock()
        self.dispositions.append(
            Disposition(call.call_id, call.queue, outcome, now, now - call.joined_at, agent, reason)
        )

    def _set_presence(self, record: AgentRecord, *, logged_in: bool, paused: str | None) -> None:
        """Change login / pause, keeping the per-queue staffing counts in step."""
        for queue in record.queues:
            self._staffed[queue] += int(logged_in) - int(record.logged_in)
            was = record.logged_in and record.paused is None
            self._unpaused[queue] += int(logged_in and paused is None) - int(was)
        record.logged_in = logged_in
        record.paused = paused

    def _refresh(self, record: AgentRecord) -> None:
        """Keep the free-agent rankings in step with whether (and where) the agent takes calls."""
        offerable = record.offerable = record.can_take_calls()
        self._free.update(record)
        if offerable:
            self._dirty_agents[record.name] = None

    def _touch(self, record: AgentRecord) -> None:
        """Note an agent's state before a change, for the AgentChanged it may cause."""
        if record.name not in self._before:
            self._before[record.name] = (record.state(), record.paused)

    def _flush(self, out: list[Action]) -> None:
        for name, (old, old_reason) in self._before.items():
            record = self._agents[name]
            self._refresh(record)
            new = record.state()
            if (new, record.paused) != (old, old_reason):
                out.append(AgentChanged(name, old, new, record.paused))
        self._before.clear()

    def _finish(self, out: list[Action] | None = None) -> list[Action]:
        """Report state changes, then route what changed, then report the rings' changes."""
        out = [] if out is None else out
        self._flush(out)
        self._match(out)
        self._flush(out)
        self._free.settle()
        return out

    # Helpers -----------------------------------------------------------------

    def _add_members(self, queue: str, skills: Mapping[str, int]) -> None:
        """Make the agents able to serve ``skills`` members of ``queue`` (once per skill set)."""
        key = frozenset(skills.items())
        if key in self._skill_sets[queue]:
            return
        self._skill_sets[queue].add(key)
        # A level of 0 is met without the skill, so only the others narrow the pool.
        needed = [skill for skill, level in skills.items() if level > 0]
        if needed:
            pool = min((self._by_skill.get(skill, []) for skill in needed), key=len)
        else:
            pool = [record for record in self._agents.values() if not record.removed]
        self._free.register(self._queues[queue], skills, pool)
        members = self._members[queue]
        for record in pool:
            if record.name not in members and qualifies(record.spec.skills, skills):
                members.add(record.name)
                record.queues.append(queue)
                self._staffed[queue] += int(record.logged_in)
                self._unpaused[queue] += int(record.logged_in and record.paused is None)
                self._heads.pop(record.name, None)

    def _agent(self, username: str, *, removed: bool = False) -> AgentRecord:
        record = self._agents.get(username)
        if record is None or (record.removed and not removed):
            raise AcdError(f"unknown agent {username!r}")
        return record

    def _queue(self, name: str) -> QueueSpec:
        spec = self._queues.get(name)
        if spec is None:
            raise AcdError(f"unknown queue {name!r} (queues: {', '.join(sorted(self._queues))})")
        return spec

    def _waiting_calls(self, queue: str) -> list[CallRecord]:
        return [self._calls[key[-1]] for key in self._order[queue]]
