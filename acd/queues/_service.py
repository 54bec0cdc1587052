"""The ACD service: the sans-I/O core (``Acd``) driven by real calls and phones.

``AcdService`` is the asyncio adapter around the core, the way aioquic's
protocol wraps its connection: every call into the core returns actions,
which are carried out here, and one ``loop.call_at`` timer is re-armed at the
core's ``next_deadline()`` after each of them. What it does with actions:

* ``Ring``: INVITE every registered phone of each agent (``AgentRing``) and
  report the outcome with ``ring_result``; the ring timeout is timed here;
* ``StopRinging``: CANCEL those phones (the core already knows why);
* ``MaxWaitReached``: hang up after a prompt, move to another queue, or
  turn the call into a callback;
* ``AgentChanged``: publish ``AgentStateChanged`` and keep agent_sessions.

``enqueue`` is what ``Call.enqueue`` awaits: it returns when the call's stay
in the queue (and the conversation, transfer or callback that followed) is
over, and raises ``ivr.CallerHungUp`` when the caller left while waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import ivr
from media import player as mp
from sip import NameAddr, SipUri

from ..events import (
    AgentOffered,
    AgentStateChanged,
    CallEnded,
    EventBus,
    QueueJoined,
    QueueLeft,
    QueueOutcome,
    RingAttempt,
)
from ..registrar import BindingAdded, BindingRemoved
from ..storage import AgentSession, CallEvent, CallRecord, EventType
from ._callbacks import CallbackBook
from ._core import Acd
from ._model import (
    DEFAULT_PAUSE_REASONS,
    AcdError,
    Action,
    AgentChanged,
    AgentSpec,
    AgentView,
    MaxWaitReached,
    QueueSpec,
    Ring,
    StopRinging,
)
from ._ringing import AgentRing
from ._today import Today
from ._waiting import WaitingMusic, hold_music

if TYPE_CHECKING:
    from ..calls import Call, CallControl, CallRecords, OutboundLeg, SipLeg
    from ..config import Config
    from ..registrar import LocationService

__all__ = ["AcdService"]

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class _Connected:
    agent: str
    leg: OutboundLeg


@dataclass(eq=False)
class _Exit:
    """The wait ended without an agent: ``why`` is abandoned, max-wait or callback-key."""

    why: str
    action: str = "hangup"
    key: str | None = None


@dataclass(eq=False)
class _Waiter:
    """A call the service is keeping in a queue: its rings and how its wait ends."""

    call: Call
    queue: str
    joined_at: float
    outcome: asyncio.Future[_Connected | _Exit]
    rings: dict[str, AgentRing] = field(default_factory=dict)
    callback: bool = False  # the caller hung up and keeps their place

    def end(self, result: _Connected | _Exit) -> bool:
        if self.outcome.done():
            return False
        self.outcome.set_result(result)
        return True


class _LastCall:
    """An agent's last call, for the wrap-up code and time given after it: the live call,
    then (once it ended) only its record, so the call and its legs can go."""

    __slots__ = ("call", "call_id", "queue", "record")

    def __init__(self, call: Call, queue: str) -> None:
        self.call: Call | None = call
        self.call_id = call.id
        self.queue = queue
        self.record: CallRecord | None = None


class AcdService:
    """Queues, agents and rings for one engine; ``control.acd`` points here once started."""

    def __init__(
        self,
        control: CallControl,
        config: Config,
        location: LocationService,
        events: EventBus,
        records: CallRecords | None,
    ) -> None:
        self.control = control
        self.config = config
        self.location = location
        self.events = events
        self.records = records
        self.loop = asyncio.get_running_loop()
        self.pause_reasons: tuple[str, ...] = tuple(config.pause_reasons or DEFAULT_PAUSE_REASONS)
        self.core = Acd(
            (AgentSpec.from_config(agent) for agent in config.agents),
            {name: QueueSpec.from_config(name, queue) for name, queue in config.queues.items()},
            clock=self.loop.time,
            pause_reasons=self.pause_reasons,
        )
        self._agent_names = frozenset(agent.username for agent in config.agents)
        self.music: tuple[mp.PlayItem, ...] = hold_music(config.prompts.dir)
        self._waiting: dict[str, _Waiter] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.Handle | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._timer_at = 0.0
        self._pending: list[Action] = []
        self._applying = False
        self.callbacks = CallbackBook(self)
        control.on_drain.append(self.callbacks.hand_over)
        self._sessions: dict[str, AgentSession] = {}
        self._specs: dict[str, QueueSpec] = {}
        self._last_calls: dict[str, _LastCall] = {}  # agent -> its last call
        self._last_live: dict[str, list[_LastCall]] = {}  # call id -> those not ended yet
        # Whether a phone's account may monitor an agent's calls (set by the engine).
        self.may_monitor: Callable[[str, str], Awaitable[bool]] | None = None
        self._wrap_up_since: dict[str, float] = {}  # agent -> when its wrap-up started
        self._state_since: dict[str, float] = {}  # agent -> when its state last changed
        self.today = Today()
        self.rings_started = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Learn who is registered and take over queued calls from call control."""
        for spec in self.config.agents:
            self._do(
                self.core.set_reachable(spec.username, self.location.is_registered(spec.username))
            )
        self.control.acd = self
        self._unsubscribe = self.events.subscribe(self._on_engine_event)

    def _on_engine_event(self, event: object) -> None:
        """A call that is some agent's last one ended: keep its record, let the call go."""
        if not isinstance(event, CallEnded):
            return
        for last in self._last_live.pop(event.call_id, ()):
            if last.call is not None and self.records is not None:
                last.record = self.records.record_of(last.call)
            last.call = None

    async def stop(self) -> None:
        """Stop ringing and timers; the calls themselves are hung up by call control."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.control.acd is self:
            self.control.acd = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for waiter in self._waiting.values():
            for ring in waiter.rings.values():
                ring.stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        now = _now()
        for session in self._sessions.values():
            self._write_session(session, ended_at=now)
        self._sessions.clear()

    async def feature_code(self, call: Call) -> bool:
        """Serve the call if it dialled an agent feature code (*21-*24); False otherwise."""
        from ._features import run_feature

        return await run_feature(self, call)

    def registration_changed(self, event: BindingAdded | BindingRemoved) -> None:
        """The registrar's observer: an agent is offered calls only while a phone is registered."""
        user = event.user
        if not self.is_agent(user):
            return
        registered = self.location.is_registered(user)
        if not registered:
            # The core leaves rings under way to us: a phone that is gone will not answer.
            for waiter in self._waiting.values():
                ring = waiter.rings.get(user)
                if ring is not None:
                    ring.unreachable = True
                    ring.stop()
        self._do(self.core.set_reachable(user, registered))

    def is_agent(self, user: str) -> bool:
        return user in self._agent_names

    def reconfigure(self, config: Config) -> None:
        """Take the new agents, queues and pause reasons, keeping every live call and state.

        See ``Acd.reconfigure``. A queue removed while callers still wait in
        it (the admin API refuses that, but a revision from another node may
        not know) stays in the core until they have left.
        """
        queues = {name: QueueSpec.from_config(name, q) for name, q in config.queues.items()}
        for name in self.core.queue_names():
            if name not in queues and self.core.waiting(name):
                log.warning(
                    "queue %s was removed with callers waiting: kept until they leave", name
                )
                queues[name] = self.spec(name)
        added = {a.username for a in config.agents} - self._agent_names
        self.config = config
        self._specs = dict(queues)
        self._agent_names = frozenset(agent.username for agent in config.agents)
        self.pause_reasons = tuple(config.pause_reasons or DEFAULT_PAUSE_REASONS)
        self._do(
            self.core.reconfigure(
                (AgentSpec.from_config(agent) for agent in config.agents),
                queues,
                pause_reasons=self.pause_reasons,
            )
        )
        for user in sorted(added):
            self._do(self.core.set_reachable(user, self.location.is_registered(user)))

    def waiting_in(self, queue: str) -> int:
        """Callers waiting in ``queue`` now (0 for a queue the core does not know)."""
        return len(self.core.waiting(queue)) if queue in self.core.queue_names() else 0

    # -- driving the core ------------------------------------------------------------------

    def _do(self, actions: Iterable[Action]) -> None:
        """Carry out ``actions`` (and any they cause), then re-arm the one timer."""
        self._pending.extend(actions)
        if self._applying:
            return  # the outer call drains the list
        self._applying = True
        try:
            while self._pending:
                action = self._pending.pop(0)
                try:
                    self._apply(action)
                except Exception:
                    log.exception("ACD action %r failed", action)
        finally:
            self._applying = False
        self._rearm()

    def _rearm(self) -> None:
        deadline = self.core.next_deadline()
        if self._timer is not None:
            if deadline is not None and self._timer_at == deadline:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            # The deadline is kept here, not read back with ``when()``: for a
            # time already past, uvloop's call_at returns a plain Handle,
            # which has no ``when()``.
            self._timer = self.loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    def _on_timer(self) -> None:
        self._timer = None
        self._do(self.core.poll())

    def _apply(self, action: Action) -> None:
        if isinstance(action, Ring):
            self._ring(action)
        elif isinstance(action, StopRinging):
            waiter = self._waiting.get(action.call_id)
            for agent in action.agents:
                ring = waiter.rings.pop(agent, None) if waiter is not None else None
                if ring is not None:
                    ring.stop()
        elif isinstance(action, MaxWaitReached):
            waiter = self._waiting.get(action.call_id)
            if waiter is not None:
                if action.action == "callback" and self.is_callback_possible(waiter.call):
                    self.keep_place(waiter, _Exit("max-wait", action.action))
                else:
                    waiter.end(_Exit("max-wait", action.action))
        elif isinstance(action, AgentChanged):
            self._agent_changed(action)

    # -- agents ----------------------------------------------------------------------------

    def agent(self, username: str) -> AgentView:
        return self.core.agent(username)

    def agents(self) -> list[AgentView]:
        return list(self.core.agents())

    def login(self, username: str) -> None:
        self._do(self.core.login(username))

    def logout(self, username: str) -> None:
        self._do(self.core.logout(username))

    def pause(self, username: str, reason: str) -> None:
        self._do(self.core.pause(username, reason))

    def unpause(self, username: str) -> None:
        self._do(self.core.unpause(username))

    def state_since(self, username: str) -> float | None:
        """When (loop clock) the agent's state last changed; None: not since the engine started."""
        return self._state_since.get(username)

    def queue_today(self, queue: str) -> dict[str, object]:
        """The queue's calls today (see :mod:`._today`)."""
        self._new_day()
        return self.today.queue(queue).public()

    def _new_day(self) -> None:
        """At the first moment after local midnight: the agents' daily figures start at 0."""
        if self.today.rolled():
            self.core.reset_daily()
            log.info("a new day: today's queue and agent figures start again")

    def _agent_changed(self, change: AgentChanged) -> None:
        self._state_since[change.agent] = self.loop.time()
        self.events.publish(AgentStateChanged(change.agent, change.old, change.new, change.reason))
        if change.new == "wrap_up" and change.old != "wrap_up":
            self._wrap_up_since[change.agent] = self.loop.time()
        elif change.old == "wrap_up" and change.new != "wrap_up":
            self._wrap_up_ended(change.agent)
        routine = change.old != "logged_out" and change.new not in ("logged_out", "paused")
        log.log(
            logging.DEBUG if routine else logging.INFO,
            "agent %s: %s -> %s%s",
            change.agent,
            change.old,
            change.new,
            f" ({change.reason})" if change.reason else "",
        )
        # agent_sessions keep the coarse stretches: logged in, paused (with reason).
        old, new = _coarse(change.old), _coarse(change.new)
        now = _now()
        session = self._sessions.get(change.agent)
        if old == new and not (new == "paused" and session and session.reason != change.reason):
            return
        if session is not None:
            self._write_session(session, ended_at=now)
            del self._sessions[change.agent]
        if new != "logged_out":
            reason = change.reason if new == "paused" else None
            self._sessions[change.agent] = AgentSession(
                agent=change.agent, state=new, started_at=now, reason=reason
            )
            self._write_session(self._sessions[change.agent])
        event = None
        if old == "logged_out":
            event = EventType.LOGIN
        elif new == "logged_out":
            event = EventType.LOGOFF
        elif new == "paused":
            event = EventType.PAUSE
        elif old == "paused":
            event = EventType.UNPAUSE
        if event is not None:
            self._agent_event(change.agent, event, now, change.reason)
        if event is EventType.LOGIN and change.new == "paused":
            # Logged in straight into a pause: both facts belong in the stream.
            self._agent_event(change.agent, EventType.PAUSE, now, change.reason)

    def _wrap_up_ended(self, agent: str) -> None:
        """Wrap-up time belongs to the agent's last call: on its record, for handle time."""
        since = self._wrap_up_since.pop(agent, None)
        last = self._last_calls.get(agent)
        if since is None or last is None or self.records is None:
            return
        seconds = self.loop.time() - since
        if last.call is not None:
            self.records.wrap_up_time(last.call, seconds)
        elif last.record is not None:
            last.record = self.records.rewrite(last.record, wrap_up_s=seconds)

    def _agent_event(self, agent: str, event: EventType, at: datetime, reason: str | None) -> None:
        if self.records is not None:
            data = {"reason": reason} if reason else {}
            self.records.writer.submit_event(
                CallEvent(call_id=None, at=at, event=event, agent=agent, data=data)
            )

    def _write_session(self, session: AgentSession, *, ended_at: datetime | None = None) -> None:
        if self.records is None:
            return
        if ended_at is not None:
            session = dataclasses.replace(session, ended_at=ended_at)
        self.records.writer.submit_session(session)

    # -- queues ----------------------------------------------------------------------------

    def spec(self, queue: str) -> QueueSpec:
        """The queue's settings as the core holds them (built once per queue, not per call)."""
        spec = self._specs.get(queue)
        if spec is None:
            spec = self._specs[queue] = QueueSpec.from_config(queue, self.config.queues[queue])
        return spec

    async def enqueue(
        self, call: Call, queue: str, priority: int, skills: Mapping[str, int]
    ) -> None:
        """Serve ``call`` from ``queue`` until its conversation (or callback) is over."""
        from ._conversation import serve

        await serve(self, call, queue, priority, dict(skills))

    def join(
        self,
        call: Call,
        queue: str,
        priority: int,
        skills: Mapping[str, int],
        *,
        waited: float = 0.0,
        callback: bool = False,
    ) -> _Waiter | str:
        """Put the call in the core's queue: its waiter, or why it could not join.

        ``callback``: a stored callback, whose caller is not on the line,
        placed as if it had waited ``waited`` seconds already.
        """
        result = self.core.enqueue(
            call.id,
            queue,
            priority=priority,
            skills=dict(skills) or None,
            waited=waited,
            callback=callback,
        )
        if not result.joined:
            return result.reason or "refused"
        waiter = _Waiter(call, queue, self.loop.time() - waited, self.loop.create_future())
        waiter.callback = callback
        self._waiting[call.id] = waiter
        self._new_day()
        self.today.joined(queue)
        self.events.publish(QueueJoined(call.id, queue, priority))
        if not callback:
            call.caller_leg.ended.add_done_callback(lambda _f: self._caller_left(waiter))
        self._do(self.core.poll())
        return waiter

    def waiting_music(self, waiter: _Waiter, on_key: Any) -> WaitingMusic:
        spec = self.spec(waiter.queue)
        call_id = waiter.call.id
        # An IVR's queue node has said "all our agents are busy" already; and a
        # caller whose call an agent's phone is ringing for at once is not told
        # they will wait (the greeting is 7 s, most answers come sooner).
        greeting = (
            []
            if waiter.call.ivr_path or self.core.is_offered(call_id)
            else [mp.Prompt("all_agents_busy"), mp.Prompt("please_hold")]
        )
        return WaitingMusic(
            waiter.call,
            music=self.music,
            greeting=greeting,
            announce_every=spec.announce_every,
            callback_key=spec.callback_key,
            position=lambda: self.core.position(call_id),
            expected_wait=lambda: self.core.expected_wait(call_id),
            on_key=on_key,
        )

    def keep_place(self, waiter: _Waiter, why: _Exit) -> bool:
        """The caller takes a callback: the entry keeps its place and waits for an agent.

        Done in one step (no await between ending the wait and the new
        outcome), so a ring that starts meanwhile belongs to the callback.
        """
        if waiter.callback or waiter.outcome.done():
            return False
        if why.why != "max-wait":  # the core keeps a max-wait callback's place by itself
            self.core.keep_place(waiter.call.id)
        waiter.callback = True
        previous = waiter.outcome
        waiter.outcome = self.loop.create_future()
        previous.set_result(why)
        return True

    def _caller_left(self, waiter: _Waiter) -> None:
        """The caller's leg ended while waiting: abandon, unless they keep their place."""
        if waiter.callback or waiter.outcome.done():
            return
        call = waiter.call
        position = self.core.position(call.id)
        waited = self.loop.time() - waiter.joined_at
        call.event("ABANDON", queue=waiter.queue, position=position, waited=round(waited, 3))
        waiter.end(_Exit("abandoned"))
        self.left(waiter, "abandoned")
        self._do(self.core.leave(call.id, "abandoned"))

    def left(self, waiter: _Waiter, outcome: QueueOutcome, agent: str | None = None) -> None:
        """The call is out of the queue for good: forget it and tell the bus."""
        if self._waiting.get(waiter.call.id) is waiter:
            del self._waiting[waiter.call.id]
        for ring in waiter.rings.values():
            ring.stop()
        waiter.rings.clear()
        waited = self.loop.time() - waiter.joined_at
        within = None
        if outcome in ("answered", "abandoned"):
            within = waited <= self.spec(waiter.queue).service_level
        self._new_day()
        self.today.left(waiter.queue, outcome, within)
        self.events.publish(QueueLeft(waiter.call.id, waiter.queue, outcome, waited, agent, within))

    def leave(self, waiter: _Waiter, outcome: str) -> None:
        """Take the call out of the core's queue (if it is still there)."""
        if self.core.position(waiter.call.id) is not None:
            self._do(self.core.leave(waiter.call.id, outcome))

    def call_ended(self, call: Call, agent: str, talk_time: float) -> None:
        """The agent's part of the call is over: wrap-up starts."""
        if call.queue is not None:
            last = self._last_calls[agent] = _LastCall(call, call.queue)
            self._last_live.setdefault(call.id, []).append(last)
        try:
            self._do(self.core.call_ended(call.id, agent, talk_time))
        except AcdError as exc:
            log.error("call %s: agent %s: %s", call.id, agent, exc)

    def call_failed(self, call: Call, agent: str) -> None:
        """The agent's leg failed just after answering: a miss, no wrap-up; the caller requeues."""
        try:
            self._do(self.core.call_failed(call.id, agent))
        except AcdError as exc:
            log.error("call %s: agent %s: %s", call.id, agent, exc)

    def last_wrap_up_codes(self, agent: str) -> tuple[str, ...]:
        """The wrap-up codes of the queue of the agent's last call (none if no such call)."""
        last = self._last_calls.get(agent)
        if last is None or last.queue not in self.config.queues:
            return ()
        return self.spec(last.queue).wrap_up_codes

    def wrap_up(
        self,
        agent: str,
        *,
        code: str | None = None,
        end: bool = False,
        extend: float | None = None,
    ) -> None:
        """Give the agent's last call its wrap-up code, extend wrap-up, or end it (in that order).

        The code must be one of the queue's ``wrap_up_codes``; giving another
        replaces it. AcdError, with nothing changed, when any part cannot be
        done.
        """
        last = self._last_calls.get(agent)
        if code is not None:
            if last is None:
                raise AcdError(f"agent {agent} has no call to give a wrap-up code")
            codes = self.last_wrap_up_codes(agent)
            if code not in codes:
                known = ", ".join(codes) or "none"
                raise AcdError(f"unknown wrap-up code {code!r} for queue {last.queue} ({known})")
        if end and extend is not None:
            raise AcdError("end and extend wrap-up at once: choose one")
        view = self.core.agent(agent)
        if end and view.code_due is not None and code is None:
            raise AcdError(f"agent {agent} must give call {view.code_due} a wrap-up code first")
        if extend is not None and not view.wrapping_up:
            raise AcdError(f"agent {agent} is not in wrap-up")
        if code is not None and last is not None:
            if last.call is not None:
                if self.records is not None:
                    self.records.wrap_up_code(last.call, agent, code)
                else:
                    last.call.wrap_up_code = code
            elif last.record is not None and self.records is not None:
                last.record = self.records.rewrite(last.record, agent=agent, code=code)
            self._do(self.core.wrap_up_code_given(agent, last.call_id))
        if extend is not None:
            self._do(self.core.extend_wrap_up(agent, extend))
        if end:
            self._do(self.core.end_wrap_up(agent))

    # -- ringing ---------------------------------------------------------------------------

    def _ring(self, action: Ring) -> None:
        waiter = self._waiting.get(action.call_id)
        if waiter is None or waiter.outcome.done():
            # The wait is ending (its coroutine takes the call out next): decline the
            # offer once that has run, so the core does not offer it again meanwhile.
            for agent in action.agents:
                self.loop.call_soon(self._decline, action.call_id, agent)
            return
        call = waiter.call
        domain = self.config.sip.domain
        caller = call.caller or "anonymous"
        from_addr = NameAddr(uri=SipUri(user=caller, host=domain), display=call.caller_name)
        for agent in action.agents:
            ring = AgentRing(
                self.control,
                agent,
                self.location.lookup(agent),
                from_addr=from_addr,
                domain=domain,
                timeout=action.timeout,
            )
            waiter.rings[agent] = ring
            call.ring_attempts += 1
            self.rings_started += 1
            self.events.publish(
                AgentOffered(
                    call.id,
                    waiter.queue,
                    agent,
                    call.caller,
                    call.caller_name,
                    call.did,
                    tuple(call.ivr_path),
                    "".join(call.digits),
                    tuple(call.variables.items()),
                    round(self.loop.time() - waiter.joined_at, 3),
                )
            )
            self.spawn(self._run_ring(waiter, ring), f"ring {agent} for {call.id}")

    def _decline(self, call_id: str, agent: str) -> None:
        self._do(self.core.ring_result(call_id, agent, "cancelled"))

    async def _run_ring(self, waiter: _Waiter, ring: AgentRing) -> None:
        call, agent = waiter.call, ring.agent
        call.other_legs.extend(ring.legs)
        outcome = await ring.run()
        if ring.unreachable and outcome == "cancelled":
            outcome = "failed"  # unregistered while ringing
        mine = waiter.rings.get(agent) is ring
        if mine:
            del waiter.rings[agent]
        for leg in ring.legs:
            if leg is not ring.leg and leg in call.other_legs:
                call.other_legs.remove(leg)
        seconds = round(ring.seconds, 3)
        if not mine or outcome == "cancelled":
            # Stopped on the core's word (caller left, answered elsewhere): it knows already.
            if ring.leg is not None:
                ring.leg.hangup()
            call.event("RINGCANCELED", queue=waiter.queue, agent=agent, ringtime=seconds)
            self.events.publish(
                RingAttempt(call.id, waiter.queue, agent, "cancelled", ring.seconds)
            )
            return
        self.events.publish(RingAttempt(call.id, waiter.queue, agent, outcome, ring.seconds))
        if outcome == "answered":
            assert ring.leg is not None
            if not waiter.end(_Connected(agent, ring.leg)):
                # The wait ended meanwhile (max wait, callback key): not this agent's call.
                ring.leg.hangup()
                call.event("RINGCANCELED", queue=waiter.queue, agent=agent, ringtime=seconds)
                self._do(self.core.ring_result(call.id, agent, "cancelled"))
                return
        else:
            data: dict[str, Any] = {"outcome": outcome, "ringtime": seconds}
            if ring.unreachable:
                data["reason"] = "unregistered"
            call.event("RINGNOANSWER", queue=waiter.queue, agent=agent, **data)
        self._do(self.core.ring_result(call.id, agent, outcome))

    # -- helpers for the conversation module -----------------------------------------------

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def is_callback_possible(self, call: Call) -> bool:
        """A caller can be called back through the trunk the call came in on."""
        return bool(call.caller) and self.trunk_for(call) is not None

    def trunk_for(self, call: Call) -> Any:
        for trunk in self.config.trunks:
            if trunk.name == call.trunk and trunk.host is not None:
                return trunk
        return None

    async def hang_up_caller(
        self, call: Call, prompt: str | None, leg: SipLeg | None = None
    ) -> None:
        """Play ``prompt`` (if the caller is still there) and hang up."""
        with contextlib.suppress(ivr.CallerHungUp):
            if prompt is not None:
                await call.play([ivr.Prompt(prompt)])
        if call.hangup_side is None:
            call.hangup_side = "system"
        (leg or call.caller_leg).hangup()


def _coarse(state: str) -> str:
    """Agent state as agent_sessions keep it: logged_out, paused, or logged_in."""
    return state if state in ("logged_out", "paused") else "logged_in"
