"""Read-only views of the core's state, for the API, announcements and metrics.

Kept apart from the state machine in ``_core`` so the rules that change state
read in one place; everything here only looks.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from types import MappingProxyType

from ._model import AgentView, QueueSpec, QueueStats, WaitingView
from ._strategies import AgentRecord, CallRecord

__all__ = ["ViewsMixin"]


class ViewsMixin:
    """Views over ``Acd``'s records; the attributes are the core's (see ``Acd.__init__``)."""

    _clock: Callable[[], float]
    _agents: dict[str, AgentRecord]
    _queues: dict[str, QueueSpec]
    _calls: dict[str, CallRecord]
    _order: dict[str, list[tuple[int, float, int, str]]]
    _members: dict[str, set[str]]
    _unpaused: dict[str, int]
    _handle_times: dict[str, deque[float]]

    def _agent(self, username: str) -> AgentRecord:
        raise NotImplementedError

    def _queue(self, name: str) -> QueueSpec:
        raise NotImplementedError

    def agent(self, username: str) -> AgentView:
        return self._view(self._agent(username))

    def agents(self) -> list[AgentView]:
        """Every configured agent, in configuration order (agents added later come last)."""
        return [self._view(record) for record in self._agents.values() if not record.removed]

    def _view(self, record: AgentRecord) -> AgentView:
        return AgentView(
            username=record.name,
            state=record.state(),
            reason=record.paused,
            active=len(record.active),
            offered=len(record.offered),
            answered_today=record.answered_today,
            talk_time=record.talk_time,
            idle_since=record.idle_since,
            misses=record.misses,
            logged_in=record.logged_in,
            paused=record.paused is not None,
            reachable=record.reachable,
            wrapping_up=record.wrap_until is not None or record.code_due is not None,
            wrap_up_until=record.wrap_until,
            code_due=record.code_due,
            held_until=record.blocked_until,
            calls=tuple(sorted(record.active)),
            ringing=tuple(sorted(record.offered)),
        )

    def queue_names(self) -> list[str]:
        """Every queue, in configuration order."""
        return list(self._queues)

    def waiting(self, queue: str) -> list[WaitingView]:
        """The calls waiting in ``queue``, in the order they will be served."""
        self._queue(queue)
        views = []
        for position, key in enumerate(self._order[queue], start=1):
            call = self._calls[key[-1]]
            views.append(
                WaitingView(
                    call_id=call.call_id,
                    queue=queue,
                    priority=call.priority,
                    joined_at=call.joined_at,
                    position=position,
                    skills=MappingProxyType(dict(call.skills)),
                    ringing=tuple(sorted(call.ringing)),
                    callback=call.callback,
                )
            )
        return views

    def is_offered(self, call_id: str) -> bool:
        """Whether some agent is being rung for the waiting call ``call_id`` now."""
        call = self._calls.get(call_id)
        return call is not None and bool(call.ringing)

    def position(self, call_id: str) -> int | None:
        """1-based place in the queue's serving order, or None if not waiting."""
        call = self._calls.get(call_id)
        if call is None:
            return None
        return bisect_left(self._order[call.queue], call.order_key) + 1

    def expected_wait(self, call_id: str) -> float | None:
        """Seconds until an agent is likely free for this call, from recent handle times.

        The mean of the queue's last 20 handle times (talk plus wrap-up),
        times the calls ahead and this one, shared by the agents logged in and
        not paused. None when there is no history or nobody to serve.
        """
        position = self.position(call_id)
        if position is None:
            return None
        queue = self._calls[call_id].queue
        history = self._handle_times[queue]
        staffed = self._unpaused[queue]
        if not history or staffed == 0:
            return None
        return position * (sum(history) / len(history)) / staffed

    def queue_stats(self, queue: str) -> QueueStats:
        """Waiting calls and the states of the agents able to serve ``queue``."""
        self._queue(queue)
        order = self._order[queue]
        now = self._clock()
        oldest = min((key[1] for key in order), default=now)
        counts: dict[str, int] = {}
        for name in self._members[queue]:
            state = self._agents[name].state()
            counts[state] = counts.get(state, 0) + 1
        return QueueStats(
            waiting=len(order),
            oldest_wait=now - oldest,
            logged_in=len(self._members[queue]) - counts.get("logged_out", 0),
            available=counts.get("available", 0),
            on_call=counts.get("on_call", 0),
            paused=counts.get("paused", 0),
            ringing=counts.get("ringing", 0),
            wrap_up=counts.get("wrap_up", 0),
        )

    def members(self, queue: str) -> list[str]:
        """The agents able to serve ``queue`` (at any escalation step), in configuration order."""
        self._queue(queue)
        return sorted(self._members[queue], key=lambda name: self._agents[name].index)
