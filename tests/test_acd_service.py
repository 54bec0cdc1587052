"""The ACD service driving the real core, with phones and callers faked at the leg level.

Why fakes here: these tests are about the service's decisions (which phones
ring, what is reported to the core, which events a call gets, what happens
when a caller or a registration goes away in the middle) under orderings a
real peer cannot be made to produce on cue. ``FakeLeg`` stands for a SIP leg
and nothing else: the ``Acd`` core, ``AgentRing`` and ``AcdService`` are the
real ones. The same paths over real SIP, with SIPp phones and callers, are
in tests/test_acd_sipp.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from acd.config import Config
from acd.events import (
    AgentOffered,
    AgentStateChanged,
    EventBus,
    QueueJoined,
    QueueLeft,
    RingAttempt,
)
from acd.queues import AcdService
from acd.queues._features import feature_for
from acd.queues._ringing import AgentRing
from acd.queues._service import _Connected, _Exit, _Waiter
from acd.queues._waiting import hold_music, wait_announcement
from acd.registrar import BindingAdded, BindingRemoved
from media import player as mp
from sip import Address, SipUri

# -- fakes -----------------------------------------------------------------------------------


class FakeLeg:
    """A SIP leg reduced to what the service looks at: answered/ended futures and a status."""

    def __init__(self, target: SipUri | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.target = target
        self.answered: asyncio.Future[object] = loop.create_future()
        self.ended: asyncio.Future[object] = loop.create_future()
        self.sip_status: int | None = None
        self.on_event: Any = None
        self.started = False
        self.cancelled = False
        self.hung_up = False
        self.rtp = None

    @property
    def is_answered(self) -> bool:
        return self.answered.done() and not self.answered.cancelled()

    @property
    def is_ended(self) -> bool:
        return self.ended.done()

    async def start(self) -> None:
        self.started = True

    def answer(self) -> None:
        self.sip_status = 200
        self.answered.set_result(None)

    def fail(self, status: int) -> None:
        self.sip_status = status
        self._end()

    def _end(self) -> None:
        if not self.ended.done():
            self.ended.set_result(None)
        if not self.answered.done():
            self.answered.cancel()

    def cancel(self) -> None:
        if not self.is_ended:
            self.cancelled = not self.is_answered
            self.hung_up = self.is_answered
            self._end()

    def hangup(self, *_: object) -> None:
        if not self.is_ended:
            self.hung_up = True
            self._end()


@dataclass
class FakeBinding:
    uri: SipUri
    destination: Address


class FakeLocation:
    """Registered contacts per user (the registrar's LocationService's two queries)."""

    def __init__(self) -> None:
        self.contacts: dict[str, int] = {}

    def lookup(self, user: str) -> list[FakeBinding]:
        ports = [6000 + n for n in range(self.contacts.get(user, 0))]
        return [
            FakeBinding(SipUri(user=user, host="127.0.0.1", port=p), Address("UDP", "127.0.0.1", p))
            for p in ports
        ]

    def is_registered(self, user: str) -> bool:
        return self.contacts.get(user, 0) > 0


class FakeControl:
    """CallControl's ``dial`` and ``acd``: every INVITE the service sends becomes a FakeLeg."""

    def __init__(self) -> None:
        self.acd: Any = None
        self.on_drain: list[Any] = []
        self.script = None
        self.dialled: list[FakeLeg] = []

    def dial(self, target: SipUri, destination: Address, **_: object) -> FakeLeg:
        leg = FakeLeg(target)
        self.dialled.append(leg)
        return leg

    def legs_for(self, user: str) -> list[FakeLeg]:
        return [leg for leg in self.dialled if leg.target is not None and leg.target.user == user]


@dataclass
class FakeWriter:
    sessions: list[Any] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)

    def submit_session(self, session: Any) -> None:
        self.sessions.append(session)

    def submit_event(self, event: Any) -> None:
        self.events.append(event)


@dataclass
class FakeRecords:
    writer: FakeWriter = field(default_factory=FakeWriter)


class FakeCall:
    """The parts of ``Call`` the service's queue bookkeeping touches."""

    def __init__(self, call_id: str) -> None:
        self.id = call_id
        self.caller = "0123456789"
        self.caller_name = None
        self.caller_leg = FakeLeg()
        self.other_legs: list[FakeLeg] = []
        self.did = "200"
        self.ring_attempts = 0
        self.ivr_path: list[str] = []
        self.digits: list[str] = []
        self.variables: dict[str, str] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []

    def event(self, name: str, **data: Any) -> None:
        self.events.append((name, data))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def make_config(strategy: str = "ring-all", **queue: Any) -> Config:
    agents = [
        {"username": u, "password": f"secret-{u}-pw", "skills": {"sales": 5}}
        for u in ("1001", "1002", "1003")
    ]
    spec = {"strategy": strategy, "ring_timeout": 5, "wrap_up": 0, "retry_delay": 0, **queue}
    return Config.model_validate({"agents": agents, "queues": {"q": spec}})


@dataclass
class Harness:
    service: AcdService
    control: FakeControl
    location: FakeLocation
    records: FakeRecords
    published: list[object]

    async def settle(self) -> None:
        """Let every ring task and timer that is due run."""
        for _ in range(10):
            await asyncio.sleep(0)

    def join(self, call: FakeCall) -> _Waiter:
        waiter = self.service.join(call, "q", 0, {})  # type: ignore[arg-type]
        assert isinstance(waiter, _Waiter), waiter
        return waiter


@pytest.fixture
async def harness() -> Harness:
    return await _harness(make_config())


async def _harness(config: Config, registered: tuple[str, ...] = ("1001", "1002")) -> Harness:
    control, location, records = FakeControl(), FakeLocation(), FakeRecords()
    for user in registered:
        location.contacts[user] = 2  # two phones each: both ring
    bus = EventBus()
    published: list[object] = []
    bus.subscribe(published.append)
    service = AcdService(control, config, location, bus, records)  # type: ignore[arg-type]
    service.start()
    for user in registered:
        service.login(user)
    return Harness(service, control, location, records, published)


# -- tests -----------------------------------------------------------------------------------


async def test_ring_all_rings_every_phone_and_cancels_the_rest_on_answer(harness: Harness) -> None:
    call = FakeCall("c1")
    waiter = harness.join(call)
    await harness.settle()
    assert len(harness.control.dialled) == 4  # two agents, two phones each
    assert {a.state for a in harness.service.agents()[:2]} == {"ringing"}
    harness.control.legs_for("1002")[1].answer()
    result = await asyncio.wait_for(waiter.outcome, 5)
    await harness.settle()
    assert isinstance(result, _Connected) and result.agent == "1002"
    winner: object = result.leg
    others = [leg for leg in harness.control.dialled if leg is not winner]
    assert all(leg.cancelled for leg in others)
    assert harness.service.agent("1002").state == "on_call"
    assert harness.service.agent("1001").state == "available"
    assert call.ring_attempts == 2
    assert ("RINGCANCELED", {"queue": "q", "agent": "1001"}) in [
        (n, {k: d[k] for k in ("queue", "agent")}) for n, d in call.events
    ]
    outcomes = {(e.agent, e.outcome) for e in harness.published if isinstance(e, RingAttempt)}
    assert outcomes == {("1002", "answered"), ("1001", "cancelled")}
    assert any(isinstance(e, QueueJoined) for e in harness.published)
    # One screen pop per agent rung, with the caller and the DID, before the answer.
    offers = [e for e in harness.published if isinstance(e, AgentOffered)]
    assert sorted(e.agent for e in offers) == ["1001", "1002"]
    assert {(e.caller, e.did, e.queue) for e in offers} == {("0123456789", "200", "q")}


async def test_declined_everywhere_is_rejected_and_the_agent_rests(harness: Harness) -> None:
    call = FakeCall("c1")
    harness.join(call)
    await harness.settle()
    for leg in harness.control.legs_for("1001"):
        leg.fail(603 if leg is harness.control.legs_for("1001")[0] else 404)
    await harness.settle()
    data = next(d for n, d in call.events if n == "RINGNOANSWER")
    assert (data["agent"], data["outcome"]) == ("1001", "rejected")
    # The reject delay (5 s by default) keeps 1001 out; 1002 still rings.
    assert harness.service.agent("1001").state == "available"
    assert harness.service.agent("1002").state == "ringing"


async def test_caller_hanging_up_stops_every_ring_at_once(harness: Harness) -> None:
    call = FakeCall("c1")
    waiter = harness.join(call)
    await harness.settle()
    call.caller_leg.hangup()
    await asyncio.sleep(0)  # the leg's ended callback: one loop turn, no ring task needed
    assert all(leg.cancelled for leg in harness.control.dialled)
    result = await asyncio.wait_for(waiter.outcome, 5)
    await harness.settle()
    assert isinstance(result, _Exit) and result.why == "abandoned"
    assert "ABANDON" in call.names() and call.names().count("RINGCANCELED") == 2
    assert [a.state for a in harness.service.agents()[:2]] == ["available", "available"]
    left = [e for e in harness.published if isinstance(e, QueueLeft)]
    assert [(e.outcome, e.within_service_level) for e in left] == [("abandoned", True)]
    assert harness.service.core.position("c1") is None


async def test_unregistered_agent_stops_ringing_and_is_no_longer_offered_calls(
    harness: Harness,
) -> None:
    call = FakeCall("c1")
    harness.join(call)
    await harness.settle()
    harness.location.contacts["1001"] = 0
    harness.service.registration_changed(BindingRemoved("1001", "sip:1001@x", "expired"))
    assert all(leg.cancelled for leg in harness.control.legs_for("1001"))
    await harness.settle()
    data = next(d for n, d in call.events if n == "RINGNOANSWER")
    assert (data["agent"], data["outcome"], data["reason"]) == ("1001", "failed", "unregistered")
    assert harness.service.agent("1001").reachable is False
    # Back again: offered calls once more.
    harness.location.contacts["1001"] = 1
    harness.service.registration_changed(BindingAdded("1001", "sip:1001@x"))
    assert harness.service.agent("1001").reachable is True


async def test_ring_timeout_is_no_answer_and_misses_pause_the_agent() -> None:
    h = await _harness(make_config("linear", ring_timeout=0.05, max_misses=1), ("1001",))
    call = FakeCall("c1")
    h.join(call)
    deadline = asyncio.get_running_loop().time() + 5
    while h.service.agent("1001").state != "paused":
        assert asyncio.get_running_loop().time() < deadline, h.service.agent("1001")
        await asyncio.sleep(0.01)
    view = h.service.agent("1001")
    assert view.reason == "no-answer"
    assert all(leg.cancelled for leg in h.control.legs_for("1001"))
    data = next(d for n, d in call.events if n == "RINGNOANSWER")
    assert data["outcome"] == "no-answer" and data["ringtime"] >= 0.05
    changes = [(e.old, e.new, e.reason) for e in h.published if isinstance(e, AgentStateChanged)]
    assert changes[-1] == ("ringing", "paused", "no-answer")
    # agent_sessions: logged in, then paused with its reason.
    sessions = [(s.state, s.reason, s.ended_at is None) for s in h.records.writer.sessions]
    assert sessions == [
        ("logged_in", None, True),
        ("logged_in", None, False),
        ("paused", "no-answer", True),
    ]
    assert [e.event for e in h.records.writer.events] == ["LOGIN", "PAUSE"]


async def test_maximum_wait_stops_the_rings_and_ends_the_wait() -> None:
    h = await _harness(make_config("ring-all", max_wait=0.05, ring_timeout=30))
    call = FakeCall("c1")
    waiter = h.join(call)
    result = await asyncio.wait_for(waiter.outcome, 5)
    assert isinstance(result, _Exit) and (result.why, result.action) == ("max-wait", "hangup")
    await h.settle()
    assert h.control.dialled and all(leg.cancelled for leg in h.control.dialled)
    assert h.service.core.position("c1") is None
    assert [a.state for a in h.service.agents()[:2]] == ["available", "available"]


async def test_callback_keeps_the_place_and_the_next_ring_belongs_to_it() -> None:
    h = await _harness(make_config("linear", ring_timeout=30), ("1001",))
    call = FakeCall("c1")
    waiter = h.join(call)
    await h.settle()
    first = waiter.outcome
    assert h.service.keep_place(waiter, _Exit("callback-key", key="1"))
    assert first.done() and not waiter.outcome.done() and waiter.callback
    call.caller_leg.hangup()  # the caller hangs up after "we will call you back"
    await h.settle()
    assert h.service.core.position("c1") == 1  # still queued: not abandoned
    assert "ABANDON" not in call.names()
    h.control.legs_for("1001")[0].answer()
    result = await asyncio.wait_for(waiter.outcome, 5)
    assert isinstance(result, _Connected) and result.agent == "1001"


async def test_stopping_the_service_ends_open_agent_sessions(harness: Harness) -> None:
    await harness.service.stop()
    open_ = [s for s in harness.records.writer.sessions if s.ended_at is None]
    closed = [s for s in harness.records.writer.sessions if s.ended_at is not None]
    assert {s.agent for s in open_} == {s.agent for s in closed} == {"1001", "1002"}
    assert harness.control.acd is None


def test_wait_announcement_says_position_and_rounded_up_minutes() -> None:
    assert wait_announcement(3, 150) == [
        mp.Prompt("you_are_number"),
        mp.Number(3),
        mp.Prompt("in_the_queue"),
        mp.Prompt("expected_wait"),
        mp.Number(3),
        mp.Prompt("minutes"),
    ]
    assert wait_announcement(1, 20)[-1] == mp.Prompt("less_than_a_minute")
    assert wait_announcement(None, 60)[-2:] == [mp.Number(1), mp.Prompt("minute")]
    assert wait_announcement(None, None) == []


def test_hold_music_falls_back_to_silence(tmp_path: Any) -> None:
    assert hold_music(tmp_path) == (mp.Silence(1000),)
    (tmp_path / "moh.wav").write_bytes(b"")
    assert hold_music(tmp_path) == (mp.WavFile(tmp_path / "moh.wav"),)


@pytest.mark.parametrize(
    ("number", "feature"),
    [
        ("*21", ("login", None)),
        ("*22", ("logout", None)),
        ("*23", ("pause", None)),
        ("*232", ("pause", "2")),
        ("*24", ("unpause", None)),
        ("*25", ("wrap-up", None)),
        ("*253", ("wrap-up", "3")),
        ("*26", None),
        ("200", None),
        ("*23x", None),
    ],
)
def test_feature_codes(number: str, feature: tuple[str, str | None] | None) -> None:
    assert feature_for(number) == feature


async def test_agent_ring_outcomes_without_a_service() -> None:
    control = FakeControl()
    loop = asyncio.get_running_loop()
    bindings: Any = FakeLocation()
    bindings.contacts["1001"] = 2
    from sip import NameAddr

    def ring(timeout: float = 5) -> AgentRing:
        return AgentRing(
            control,  # type: ignore[arg-type]
            "1001",
            bindings.lookup("1001"),
            from_addr=NameAddr(uri=SipUri(user="caller", host="acd.local")),
            domain="acd.local",
            timeout=timeout,
        )

    no_phones = AgentRing(
        control,  # type: ignore[arg-type]
        "1001",
        [],
        from_addr=NameAddr(uri=SipUri(host="x")),
        domain="x",
        timeout=1,
    )
    assert await no_phones.run() == "failed"
    failing = ring()
    task = loop.create_task(failing.run())
    await asyncio.sleep(0)
    for leg in failing.legs:
        leg.fail(480)  # type: ignore[attr-defined]
    assert await task == "failed"
    stopped = ring()
    task = loop.create_task(stopped.run())
    await asyncio.sleep(0)
    stopped.stop()
    assert await task == "cancelled"
    assert all(leg.cancelled for leg in stopped.legs)  # type: ignore[attr-defined]


async def test_a_deadline_already_past_is_armed_then_replaced(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A core deadline that has passed when the timer is armed (a zero wrap-up, a late
    loop) must still fire, and a new deadline must replace it. Under uvloop such a
    timer is a plain Handle without ``when()``: comparing against it failed every
    action after it (found by bench/acd_load.py at 40 calls/s)."""
    loop = asyncio.get_running_loop()
    service = harness.service
    polled: list[float] = []
    deadlines = iter([loop.time() - 1.0, loop.time() - 0.5])
    monkeypatch.setattr(service.core, "next_deadline", lambda: next(deadlines, None))
    monkeypatch.setattr(service.core, "poll", lambda: polled.append(loop.time()) or [])
    service._rearm()
    service._rearm()  # replaces the first timer
    await harness.settle()
    assert len(polled) == 1
