"""The agent's features end to end: blind transfer (REFER), hold, the callback key, announcements.

Agents are SIPp phones registered as in tests/test_acd_sipp.py (whose
harness this reuses): bench/sipp/agent_refer.xml answers and transfers by
REFER, bench/sipp/agent_hold.xml holds and resumes. Where the test must
hear what a caller hears, the caller is bench/sipp/ivr_listener.xml with its
RTP in this process (tests/rtp_peer.py): the engine's player marks the first
packet of every playback, and an :class:`Ear` names each playback by finding
its frames among the prompt files, encoded as the engine encodes them.
Outcomes are read from the call records, their events and the agent API.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from acd.recordings import RecordingStore
from media.g711 import PCMA, PCMU
from media.wav import WavCache

from . import test_acd_sipp
from .conftest import ROOT, SIPP_DIR, RunningEngine, free_port
from .interop_helpers import PeerProcess
from .rtp_peer import Heard, RtpPeer
from .test_acd_sipp import (
    IVR_FLOW,
    Sipp,
    acd_config,
    agent_state,
    callers_done,
    events_of,
    login_all,
    queue,
    scenario_copy,
    wait_records,
)

pytestmark = pytest.mark.interop
sipp_factory = test_acd_sipp.sipp_factory  # the fixture, shared

EngineFactory = Callable[[Path], RunningEngine]
SippFactory = Callable[[RunningEngine], Sipp]
PROMPTS = ROOT / "config" / "prompts"
FRAME = 160  # 20 ms of G.711
GAP = 0.3  # seconds without packets that end what a caller hears


# -- hearing prompts -------------------------------------------------------------------------


class Ear:
    """Names what the caller hears: every 20 ms frame of the prompts, as the engine sends it.

    A frame found in exactly one prompt names it (silence and other shared
    frames name nothing); audio found in none is someone's voice, "other".
    """

    def __init__(self, names: list[str]) -> None:
        cache = WavCache()
        owners: dict[bytes, set[str]] = {}
        for name in names:
            for codec in (PCMU, PCMA):
                payload = cache.payload(PROMPTS / f"{name}.wav", codec, FRAME)
                for start in range(0, len(payload), FRAME):
                    owners.setdefault(payload[start : start + FRAME], set()).add(name)
        self.frames = {frame: next(iter(n)) for frame, n in owners.items() if len(n) == 1}
        self.known = set(owners)

    def name(self, packets: list[Heard]) -> str:
        """The prompt these packets (one playback) come from; "other" for unknown audio."""
        for heard in packets:
            name = self.frames.get(bytes(heard.packet.payload))
            if name is not None:
                return name
        unknown = sum(bytes(h.packet.payload) not in self.known for h in packets)
        return "other" if unknown > len(packets) // 2 else "?"

    def hear(self, peer: RtpPeer, deadline: float, after: str | None = None) -> tuple[str, float]:
        """The next playback that is not ``after`` (a playback resumed after a skipped tick
        is marked again): its name and when its first packet arrived."""
        while True:
            first = peer.next_prompt(deadline)
            packets = [first]
            name = self.name(packets)
            while name in ("?", "other") and len(packets) < 50:
                heard = peer.receive(deadline)
                assert heard is not None, "the engine stopped sending mid-playback"
                packets.append(heard)
                name = self.name(packets)
            if name != after:
                return name, first.at


@dataclass
class Stretch:
    """One stretch of audio the caller heard without a pause: a playback or a voice."""

    name: str
    start: float
    end: float
    packets: list[Heard] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.end - self.start


def listen(peer: RtpPeer, caller: PeerProcess, ear: Ear, timeout: float = 60) -> list[Stretch]:
    """Everything the caller hears until their call is over, as stretches split at each
    marked packet and each pause; consecutive stretches of one name are joined."""
    deadline = time.monotonic() + timeout
    heard: list[Heard] = []
    while time.monotonic() < deadline:
        packet = peer.receive(min(deadline, time.monotonic() + GAP))
        if packet is not None:
            heard.append(packet)
        elif not caller.running():
            break
    else:
        raise AssertionError(f"the call did not end\n{caller.describe()}")
    pieces: list[list[Heard]] = []
    for packet in heard:
        if not pieces or packet.packet.marker or packet.at - pieces[-1][-1].at > GAP:
            pieces.append([])
        pieces[-1].append(packet)
    stretches: list[Stretch] = []
    for piece in pieces:
        name = ear.name(piece)
        last = stretches[-1] if stretches else None
        if last is not None and last.name == name and piece[0].at - last.end <= GAP:
            last.end = piece[-1].at
            last.packets += piece
        else:
            stretches.append(Stretch(name, piece[0].at, piece[-1].at, piece))
    return stretches


def listening_caller(sipp: Sipp, peer: RtpPeer, number: str) -> PeerProcess:
    """A caller dialling ``number`` whose RTP is ``peer``; it ends when the engine hangs up."""
    return sipp._run(
        f"listener-{number}",
        ["-sf", str(SIPP_DIR / "ivr_listener.xml"), "-s", number, "-m", "1",
         "-i", "127.0.0.1", "-p", str(free_port()), "-mi", "127.0.0.1", "-mp", str(free_port()),
         "-key", "rtp_port", str(peer.port), "-timeout", "90s", "-timeout_error", "-trace_err"],
    )  # fmt: skip


# -- the harness for REFER -------------------------------------------------------------------


def referring_agent(sipp: Sipp, user: str, target: str, trace: bool = False) -> PeerProcess:
    """``user``'s phone: answers one call and transfers it to ``target`` by REFER."""
    port = free_port()
    sipp.register(user, port)
    return sipp._run(
        f"refer-{user}",
        ["-sf", str(SIPP_DIR / "agent_refer.xml"), "-key", "refer_to", target,
         "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1", "-mp", str(free_port()),
         "-m", "1", "-timeout", "60s", "-timeout_error", "-trace_logs", "-trace_err"],
    )  # fmt: skip


def sipfrags(sipp: Sipp, peer: PeerProcess) -> list[str]:
    """The sipfrag status lines of the NOTIFYs that ``peer`` (agent_refer.xml) received."""
    (log,) = sipp.tmp_path.glob(f"agent_refer_{peer.process.pid}_logs.log")
    match = re.search(r"sipfrag (.*) \| (.*)", log.read_text())
    assert match is not None, log.read_text()
    return [match[1].strip(), match[2].strip()]


def summary(events: list[dict[str, Any]]) -> list[tuple[object, ...]]:
    """(event, queue, agent) of every event, in order."""
    return [(e["event"], e["queue"], e["agent"]) for e in events]


def recording(engine: RunningEngine, recording_id: str) -> bytes:
    return engine.http_bytes(f"/api/v1/recordings/{recording_id}")


# -- blind transfer --------------------------------------------------------------------------


def test_blind_transfer_to_a_queue_moves_the_caller_to_its_agent(
    tmp_path: Path, engine_factory: EngineFactory, sipp_factory: SippFactory
) -> None:
    engine = engine_factory(
        acd_config(
            tmp_path,
            agents={"1001": "{sales: 1}", "1002": "{support: 1}"},
            queues={
                "sales": queue(skills="{sales: 1}", wrap_up=60),
                "support": queue(skills="{support: 1}"),
            },
            routes={"200": "queue: sales", "300": "queue: support"},
        )
    )
    sipp = sipp_factory(engine)
    first = referring_agent(sipp, "1001", "300")
    sipp.agent("1002", scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=1500))
    login_all(engine, ["1001", "1002"])
    caller = sipp.callers("200", 1)
    assert first.wait(60) == 0, first.describe()
    assert sipfrags(sipp, first) == ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    # The referring agent is let go at once and does its after-call work.
    view = agent_state(engine, "1001")
    assert view["state"] == "wrap_up", view
    assert callers_done(caller)
    (record,) = wait_records(engine, 1)
    call_id = str(record["call_id"])
    assert (record["disposition"], record["queue"], record["agent"]) == (
        "transferred",
        "support",
        "1002",
    )
    events = events_of(engine, call_id)
    assert summary(events) == [
        ("ENTERQUEUE", "sales", None),
        ("CONNECT", "sales", "1001"),
        ("TRANSFER", "sales", "1001"),
        ("ENTERQUEUE", "support", None),
        ("CONNECT", "support", "1002"),
        ("COMPLETEAGENT", "support", "1002"),
    ]
    transfer = next(e for e in events if e["event"] == "TRANSFER")
    assert transfer["data"]["kind"] == "queue" and transfer["data"]["target"] == "support"
    assert transfer["data"]["talktime"] >= 0.9  # the talk before the REFER
    # Two bridges, two recordings: the first is not overwritten by the second.
    assert record["recording_url"] == f"/api/v1/recordings/{call_id}-2"
    with_1001, with_1002 = recording(engine, call_id), recording(engine, f"{call_id}-2")
    assert with_1001[:4] == with_1002[:4] == b"RIFF"
    assert with_1001 != with_1002


def test_blind_transfer_to_an_extension_rings_its_phone(
    tmp_path: Path, engine_factory: EngineFactory, sipp_factory: SippFactory
) -> None:
    engine = engine_factory(
        acd_config(
            tmp_path,
            queues={"q": queue(wrap_up=60)},
            routes={"200": "queue: q", "_10XX": 'extension: "*"'},
        )
    )
    sipp = sipp_factory(engine)
    first = referring_agent(sipp, "1001", "1003")
    # 1003 is a phone, not logged in to any queue: the extension route rings it.
    sipp.agent("1003", scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=1500))
    login_all(engine, ["1001"])
    caller = sipp.callers("200", 1)
    assert first.wait(60) == 0, first.describe()
    assert sipfrags(sipp, first) == ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    assert agent_state(engine, "1001")["state"] == "wrap_up"
    assert callers_done(caller)
    (record,) = wait_records(engine, 1)
    assert (record["disposition"], record["agent"]) == ("transferred", "1003")
    assert record["hangup_side"] == "agent"
    events = events_of(engine, record["call_id"])
    names = [e["event"] for e in events]
    assert names == ["ENTERQUEUE", "CONNECT", "TRANSFER"], names
    transfer = events[-1]
    assert (transfer["agent"], transfer["data"]["kind"], transfer["data"]["target"]) == (
        "1001",
        "extension",
        "1003",
    )
    assert record["recording_url"] == f"/api/v1/recordings/{record['call_id']}-2"


@pytest.mark.parametrize(("target", "status"), [("100", "403 Forbidden"), ("999", "404 Not Found")])
def test_refer_to_an_ivr_or_unknown_number_is_refused_and_the_call_stays(
    tmp_path: Path,
    engine_factory: EngineFactory,
    sipp_factory: SippFactory,
    target: str,
    status: str,
) -> None:
    ivr_dir = tmp_path / "ivr"
    ivr_dir.mkdir()
    (ivr_dir / "main.yaml").write_text(IVR_FLOW)
    engine = engine_factory(
        acd_config(
            tmp_path,
            queues={"q": queue(), "sales": queue(), "support": queue()},
            routes={"200": "queue: q", "100": "ivr: main"},
            extra=f"ivr_dir: {ivr_dir}",
        )
    )
    sipp = sipp_factory(engine)
    agent = referring_agent(sipp, "1001", target)
    login_all(engine, ["1001"])
    caller = sipp.callers("200", 1)
    assert agent.wait(60) == 0, agent.describe()  # it hung up itself, a second after the NOTIFY
    assert sipfrags(sipp, agent) == ["SIP/2.0 100 Trying", f"SIP/2.0 {status}"]
    assert callers_done(caller)
    (record,) = wait_records(engine, 1)
    assert (record["disposition"], record["agent"], record["hangup_side"]) == (
        "answered",
        "1001",
        "agent",
    )
    events = events_of(engine, record["call_id"])
    assert [e["event"] for e in events] == ["ENTERQUEUE", "CONNECT", "COMPLETEAGENT"]
    # Still bridged after the refusal: the talk spans the second before and after the REFER.
    assert events[-1]["data"]["talktime"] >= 1.9


# -- hold ------------------------------------------------------------------------------------


def test_hold_from_the_agents_phone_plays_music_on_hold_to_the_caller(
    tmp_path: Path, engine_factory: EngineFactory, sipp_factory: SippFactory
) -> None:
    engine = engine_factory(acd_config(tmp_path))
    sipp = sipp_factory(engine)
    port = free_port()
    sipp.register("1001", port)
    agent = sipp._run(
        "hold-1001",
        ["-sf", str(SIPP_DIR / "agent_hold.xml"), "-i", "127.0.0.1", "-p", str(port),
         "-mi", "127.0.0.1", "-mp", str(free_port()), "-m", "1",
         "-timeout", "60s", "-timeout_error", "-trace_err"],
    )  # fmt: skip
    login_all(engine, ["1001"])
    ear = Ear(["moh", "all_agents_busy"])
    with RtpPeer() as peer:
        caller = listening_caller(sipp, peer, "200")
        heard = listen(peer, caller, ear)
    assert caller.process.returncode == 0, caller.describe()
    assert agent.wait(30) == 0, agent.describe()
    # The agent's phone rings at once, so no "all our agents are busy": music at most
    # until it answers, nothing from the silent agent, music for the 2.5 s hold, then
    # the agent's voice once the re-INVITE resumes the bridge.
    *before, held, resumed = heard
    assert {s.name for s in before} <= {"moh"}, heard
    assert (held.name, resumed.name) == ("moh", "other"), heard
    if before:
        assert held.start - before[-1].end >= 1.0  # the talk before the hold was silent
    assert 1.5 <= held.seconds <= 4.5, held
    assert resumed.start - held.end < 1.0 and resumed.seconds >= 1.0, resumed
    (record,) = wait_records(engine, 1)
    assert (record["disposition"], record["agent"], record["hangup_side"]) == (
        "answered",
        "1001",
        "agent",
    )


# -- waiting: the callback key and announcements ---------------------------------------------


def trace_times(sipp: Sipp, peer: PeerProcess, scenario: str, first_line: str) -> list[float]:
    """When ``peer`` sent or received each message starting ``first_line`` (its -trace_msg
    log; wall-clock times, comparable between processes on this machine)."""
    (log,) = sipp.tmp_path.glob(f"{scenario}_{peer.process.pid}_messages.log")
    times = []
    for block in log.read_text().split("----------------------------------------------- ")[1:]:
        stamp, _, rest = block.partition("\n")
        body = rest.split("\n\n", 1)[-1].lstrip()
        if body.startswith(first_line):
            day, clock = stamp.split()[:2]
            when = datetime.fromisoformat(f"{day}T{clock}").astimezone(UTC)
            times.append(when.timestamp())
    return times


def test_callback_key_while_waiting_calls_the_caller_back_after_the_agent(
    tmp_path: Path, engine_factory: EngineFactory, sipp_factory: SippFactory
) -> None:
    callback_port = free_port()
    engine = engine_factory(
        acd_config(
            tmp_path,
            queues={"q": queue(join_empty="true", callback_key='"1"', max_wait=60)},
            callback_port=callback_port,
        )
    )
    sipp = sipp_factory(engine)
    ear = Ear(["all_agents_busy", "moh", "callback_confirmed"])
    with RtpPeer() as peer:
        caller = listening_caller(sipp, peer, "200")
        deadline = time.monotonic() + 60
        assert ear.hear(peer, deadline)[0] == "all_agents_busy"  # ... press 1 for a callback
        assert ear.hear(peer, deadline, after="all_agents_busy")[0] == "moh"
        peer.packets(10, deadline)
        peer.press("1")
        assert ear.hear(peer, deadline, after="moh")[0] == "callback_confirmed"
        assert callers_done(caller)  # then the engine hung up
    engine.wait_for(
        lambda: engine.http_json("/api/v1/queues")["queues"][0]["waiting"] == 1,  # type: ignore[index]
        timeout=10,
        what="the callback keeping its place",
    )
    scenario = scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=1500)
    phone = sipp._run(
        "called-back",
        ["-sf", str(scenario), "-i", "127.0.0.1", "-p", str(callback_port),
         "-mi", "127.0.0.1", "-mp", str(free_port()), "-m", "1",
         "-timeout", "60s", "-timeout_error", "-trace_msg"],
    )  # fmt: skip
    port = free_port()
    sipp.register("1001", port)
    answering = scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=10_000)
    agent = sipp._run(
        "agent-1001",
        ["-sf", str(answering),
         "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1", "-mp", str(free_port()),
         "-m", "1", "-timeout", "60s", "-timeout_error", "-trace_msg"],
    )  # fmt: skip
    login_all(engine, ["1001"])
    assert phone.wait(60) == 0, phone.describe()
    assert agent.wait(60) == 0, agent.describe()
    (record,) = wait_records(engine, 1)
    assert (record["disposition"], record["agent"]) == ("callback", "1001")
    steps = [
        (e["event"], (e.get("data") or {}).get("step") or (e.get("data") or {}).get("key"))
        for e in events_of(engine, record["call_id"])
    ]
    assert steps[:3] == [("ENTERQUEUE", None), ("EXITWITHKEY", "1"), ("CALLBACK", "queued")]
    assert ("CALLBACK", "connected") in steps and steps[-1][0] == "COMPLETECALLER", steps
    # The agent answered before the caller's phone was rung.
    (answered,) = trace_times(sipp, agent, answering.stem, "SIP/2.0 200 OK")[:1]
    (rung,) = trace_times(sipp, phone, scenario.stem, "INVITE ")[:1]
    assert answered < rung, (answered, rung)


def test_position_announcements_interrupt_music_on_hold(
    tmp_path: Path, engine_factory: EngineFactory, sipp_factory: SippFactory
) -> None:
    engine = engine_factory(
        acd_config(tmp_path, queues={"q": queue(join_empty="true", announce_every=2, max_wait=18)})
    )
    sipp = sipp_factory(engine)
    ear = Ear(["all_agents_busy", "moh", "you_are_number", "max_wait_reached"])
    with RtpPeer() as peer:
        caller = listening_caller(sipp, peer, "200")
        heard = listen(peer, caller, ear)
    assert caller.process.returncode == 0, caller.describe()
    names = [s.name for s in heard]
    # "You are number one in the queue" every 2 s of music, until the maximum wait.
    assert names[:5] == ["all_agents_busy", "moh", "you_are_number", "moh", "you_are_number"]
    assert names[-1] == "max_wait_reached", names
    music, announcement = heard[1], heard[2]
    assert 1.8 <= announcement.start - music.start <= 4.0, heard
    (record,) = wait_records(engine, 1)
    assert record["disposition"] == "timeout"


# -- recordings of one call ------------------------------------------------------------------


def test_each_bridge_of_a_call_gets_its_own_recording_file(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "rec")
    when = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)
    call_id = "6f1c2b8e-0d4a-4e57-9a43-9a1f0c1e2d3b"
    # Names only: the call script numbers a call's bridges, the recorder makes the file.
    (first_id, first), (second_id, second), (third_id, _) = (
        store.recording_for(call_id, when, number) for number in (1, 2, 3)
    )
    assert (first_id, second_id, third_id) == (call_id, f"{call_id}-2", f"{call_id}-3")
    assert second == first.with_name(f"{call_id}-2.wav") and not store.root.exists()
    assert store.recording_for("other-call", when)[0] == "other-call"
