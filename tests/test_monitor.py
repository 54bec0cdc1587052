"""A third leg on a bridge: listen, whisper and barge, on loopback with a hand-driven clock.

Caller, agent and supervisor each speak their own tone; what each one's
socket receives is decoded and its energy measured at the three tones, so
"who hears whom" is asserted on the audio itself. The mixes are paced by a
clock the test ticks; the relayed directions need no tick at all. Every
test runs on the C relay and on the pure-Python one (the monitor's own path
is Python either way; leaving it must give the bridge its relay back).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from media import (
    PCMA,
    PCMU,
    Bridge,
    MonitorMode,
    PortPool,
    Recorder,
    RtpLeg,
    RtpPacket,
    SenderState,
)
from media._mix import MAX_BUFFERED, SampleBuffer, mix
from tests.test_leg import Peer, until

pytestmark = pytest.mark.usefixtures("relay_path")

CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ = 440.0, 1000.0, 1800.0
SENTINEL = b"\x2a" * 160  # ends what a peer is checked to have heard


class HandClock:
    """A tick source the test drives: ``tick()`` is 20 ms passing."""

    def __init__(self) -> None:
        self.callbacks: dict[int, Callable[[int, int], None]] = {}
        self.ticks = 0

    def subscribe(self, callback: Callable[[int, int], None]) -> Callable[[], None]:
        key = len(self.callbacks) + self.ticks * 1000
        self.callbacks[key] = callback

        def unsubscribe() -> None:
            self.callbacks.pop(key, None)

        return unsubscribe

    def tick(self) -> None:
        self.ticks += 1
        for callback in list(self.callbacks.values()):
            callback(self.ticks, 0)


def tone(frequency: float, samples: int = 160, amplitude: float = 6000.0) -> np.ndarray:
    t = np.arange(samples) / 8000
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def level(samples: np.ndarray, frequency: float) -> float:
    """The amplitude of ``frequency`` in ``samples`` (a single-bin DFT)."""
    n = np.arange(len(samples))
    bin_ = np.dot(samples.astype(np.float64), np.exp(-2j * np.pi * frequency * n / 8000))
    return float(2 * abs(bin_) / len(samples))


class Party:
    """A phone's RTP end (a socket), its leg in the engine, and its own voice."""

    def __init__(self, peer: Peer, leg: RtpLeg, frequency: float, codec: object = PCMU) -> None:
        self.peer, self.leg, self.frequency = peer, leg, frequency
        self.stream = SenderState(8000)
        self.codec = codec

    @classmethod
    async def open(cls, pool: PortPool, frequency: float, codec: object = PCMU) -> Party:
        peer, leg = await Peer.open(), await RtpLeg.open(pool)
        pt = 8 if codec is PCMA else 0
        leg.configure(peer.address, codec, pt)  # type: ignore[arg-type]
        return cls(peer, leg, frequency, codec)

    def speak(self, payload: bytes | None = None) -> None:
        codec = self.codec
        audio = payload if payload is not None else codec.encode(tone(self.frequency))  # type: ignore[attr-defined]
        pt = 8 if codec is PCMA else 0
        self.peer.send(self.stream.build(audio, pt, 160), self.leg.local_address)

    async def heard(self) -> list[np.ndarray]:
        """Decoded audio received up to and including the sentinel packet."""
        frames = []
        while True:
            packet = RtpPacket.parse(await self.peer.receive())
            if packet.payload == SENTINEL:
                return frames
            frames.append(self.codec.decode(packet.payload))  # type: ignore[attr-defined]

    def close(self) -> None:
        self.leg.close()
        self.peer.close()


async def three(pool: PortPool, agent_codec: object = PCMU) -> tuple[Party, Party, Party]:
    return (
        await Party.open(pool, CALLER_HZ),
        await Party.open(pool, AGENT_HZ, agent_codec),
        await Party.open(pool, SUPERVISOR_HZ),
    )


def voices(frames: list[np.ndarray]) -> set[float]:
    """The tones clearly present in what a party heard."""
    if not frames:
        return set()
    audio = np.concatenate(frames)
    return {f for f in (CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ) if level(audio, f) > 1000}


async def heard_by_all(
    caller: Party, agent: Party, supervisor: Party, clock: HandClock, bridge: Bridge
) -> dict[str, set[float]]:
    """One round of speech, then a sentinel to every party, then what each heard."""
    parties = (caller, agent, supervisor)
    counts = [p.leg.packets_received for p in parties]
    for party in parties:
        party.speak()
    await until(
        lambda: all(p.leg.packets_received > n for p, n in zip(parties, counts, strict=True))
    )
    clock.tick()
    # The sentinel: sent by the engine's leg itself, after everything above.
    for party in parties:
        party.leg.send_audio(SENTINEL, 160)
    return {
        "caller": voices(await caller.heard()),
        "agent": voices(await agent.heard()),
        "supervisor": voices(await supervisor.heard()),
    }


@pytest.mark.parametrize(
    ("mode", "caller_hears", "agent_hears"),
    [
        (MonitorMode.LISTEN, {AGENT_HZ}, {CALLER_HZ}),
        (MonitorMode.WHISPER, {AGENT_HZ}, {CALLER_HZ, SUPERVISOR_HZ}),
        (MonitorMode.BARGE, {AGENT_HZ, SUPERVISOR_HZ}, {CALLER_HZ, SUPERVISOR_HZ}),
    ],
)
async def test_who_hears_whom(
    pool: PortPool, mode: MonitorMode, caller_hears: set[float], agent_hears: set[float]
) -> None:
    caller, agent, supervisor = await three(pool)
    clock = HandClock()
    bridge = Bridge(caller.leg, agent.leg)
    bridge.monitor(supervisor.leg, mode, clock)
    assert bridge.monitor_mode is mode

    heard = await heard_by_all(caller, agent, supervisor, clock, bridge)

    assert heard == {
        "caller": caller_hears,
        "agent": agent_hears,
        "supervisor": {CALLER_HZ, AGENT_HZ},
    }
    bridge.stop()
    for party in (caller, agent, supervisor):
        party.close()


async def test_the_mode_changes_on_the_fly_and_the_agent_laws_may_differ(pool: PortPool) -> None:
    caller, agent, supervisor = await three(pool, agent_codec=PCMA)
    clock = HandClock()
    bridge = Bridge(caller.leg, agent.leg)
    bridge.monitor(supervisor.leg, MonitorMode.LISTEN, clock)
    first = await heard_by_all(caller, agent, supervisor, clock, bridge)
    bridge.set_monitor_mode(MonitorMode.WHISPER)
    second = await heard_by_all(caller, agent, supervisor, clock, bridge)
    bridge.set_monitor_mode(MonitorMode.BARGE)
    third = await heard_by_all(caller, agent, supervisor, clock, bridge)

    assert first["agent"] == {CALLER_HZ}
    assert second["agent"] == {CALLER_HZ, SUPERVISOR_HZ}
    assert second["caller"] == {AGENT_HZ}
    assert third["caller"] == {AGENT_HZ, SUPERVISOR_HZ}
    assert all(h["supervisor"] == {CALLER_HZ, AGENT_HZ} for h in (first, second, third))
    bridge.stop()
    for party in (caller, agent, supervisor):
        party.close()


async def test_leaving_gives_the_bridge_back_and_the_supervisor_hears_nothing_more(
    pool: PortPool, relay_path: str
) -> None:
    caller, agent, supervisor = await three(pool)
    clock = HandClock()
    bridge = Bridge(caller.leg, agent.leg)
    bridge.monitor(supervisor.leg, MonitorMode.BARGE, clock)
    bridge.unmonitor()
    assert bridge.monitor_mode is None
    assert not clock.callbacks, "the mixes stopped with the monitor"
    assert not supervisor.leg.relayed
    if relay_path == "c":
        assert caller.leg.relayed and type(caller.leg._rtp.handler).__name__ == "Relay"  # type: ignore[attr-defined]

    # Caller and agent hear each other as before; the monitor's leg is its own again.
    caller.speak()
    packet = RtpPacket.parse(await agent.peer.receive())
    assert level(PCMU.decode(packet.payload), CALLER_HZ) > 1000
    assert packet.marker, "the relayed stream starts a new talkspurt after the mixes"
    got: list[bytes] = []
    supervisor.leg.on_audio = lambda _leg, payload, _ts, _at: got.append(payload)
    supervisor.speak()
    await until(lambda: bool(got))
    bridge.stop()
    for party in (caller, agent, supervisor):
        party.close()


async def test_the_monitor_goes_when_its_leg_closes_and_when_the_bridge_stops(
    pool: PortPool,
) -> None:
    caller, agent, supervisor = await three(pool)
    clock = HandClock()
    bridge = Bridge(caller.leg, agent.leg)
    bridge.monitor(supervisor.leg, MonitorMode.WHISPER, clock)
    supervisor.close()
    assert bridge.monitor_mode is None and not clock.callbacks
    assert bridge.active
    caller.speak()
    assert level(PCMU.decode(RtpPacket.parse(await agent.peer.receive()).payload), CALLER_HZ) > 1000

    other = await Party.open(pool, SUPERVISOR_HZ)
    bridge.monitor(other.leg, MonitorMode.LISTEN, clock)
    bridge.stop()
    assert bridge.monitor_mode is None and not clock.callbacks and not other.leg.relayed
    for party in (caller, agent, other):
        party.close()


async def test_refusals(pool: PortPool) -> None:
    caller, agent, supervisor = await three(pool)
    clock = HandClock()
    bridge = Bridge(caller.leg, agent.leg)
    with pytest.raises(ValueError, match="own bridge"):
        bridge.monitor(agent.leg, MonitorMode.LISTEN, clock)
    with pytest.raises(RuntimeError, match="not monitored"):
        bridge.set_monitor_mode(MonitorMode.BARGE)
    bridge.monitor(supervisor.leg, MonitorMode.LISTEN, clock)
    with pytest.raises(RuntimeError, match="monitored already"):
        bridge.monitor(supervisor.leg, MonitorMode.LISTEN, clock)
    with pytest.raises(ValueError):
        bridge.set_monitor_mode("shout")  # type: ignore[arg-type]
    bridge.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        bridge.monitor(supervisor.leg, MonitorMode.LISTEN, clock)
    for party in (caller, agent, supervisor):
        party.close()


async def test_the_recording_keeps_caller_and_agent_while_monitored(
    pool: PortPool, tmp_path: Path
) -> None:
    caller, agent, supervisor = await three(pool)
    clock = HandClock()
    recorder = Recorder(tmp_path / "call.wav")
    bridge = Bridge(caller.leg, agent.leg, recorder)
    bridge.monitor(supervisor.leg, MonitorMode.BARGE, clock)
    for _ in range(3):
        await heard_by_all(caller, agent, supervisor, clock, bridge)
    bridge.stop()
    await recorder.close()
    from media import read_wav

    wav = read_wav(tmp_path / "call.wav")
    left, right = wav.samples[:, 0] * 32768, wav.samples[:, 1] * 32768
    assert level(left, CALLER_HZ) > 1000 and level(left, SUPERVISOR_HZ) < 300
    assert level(right, AGENT_HZ) > 1000 and level(right, SUPERVISOR_HZ) < 300
    for party in (caller, agent, supervisor):
        party.close()


def test_a_buffer_keeps_at_most_its_limit_and_pads_a_short_frame() -> None:
    buffer = SampleBuffer()
    assert buffer.take() is None
    for n in range(8):
        buffer.push(np.full(160, n, dtype=np.int16))
    assert len(buffer) == MAX_BUFFERED and buffer.dropped == 8 * 160 - MAX_BUFFERED
    first = buffer.take()
    assert first is not None and set(first.tolist()) == {3}  # the oldest went
    buffer.clear()
    buffer.push(np.ones(100, dtype=np.int16))
    short = buffer.take()
    assert short is not None and len(short) == 160 and short[99] == 1 and short[100] == 0


def test_the_mix_saturates_instead_of_wrapping() -> None:
    loud = np.full(160, 30000, dtype=np.int16)
    assert set(mix([loud, loud]).tolist()) == {32767}
    assert set(mix([-loud, -loud]).tolist()) == {-32768}
    assert mix([loud]) is loud
