"""Acceptance (issue 3, media engine): a bridged, recorded call between two real UDP endpoints.

The caller sends a 440 Hz tone in PCMU to leg a, the agent a 1000 Hz tone in PCMA to
leg b (so every packet is transcoded), each 20 ms packet on a drift-free ``call_at``
schedule for 5 s. Each endpoint must hear the other's tone, and the recording must be
a 5 s stereo WAV with the caller's tone on the left and the agent's on the right. It
runs on the stock asyncio loop and on uvloop, which the engine uses in production.
"""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import uvloop

from media import PCMA, PCMU, Bridge, Codec, PortPool, Recorder, RtpLeg, RtpPacket, SenderState

HOST = "127.0.0.1"
RATE = 8000
PACKETS = 250  # 5 s of 20 ms packets
SECONDS = PACKETS * 0.02


class Endpoint(asyncio.DatagramProtocol):
    """A phone's RTP socket: sends a tone on a schedule, keeps what it receives."""

    def __init__(self, codec: Codec, frequency: float) -> None:
        self.codec = codec
        self.stream = SenderState(RATE)
        t = np.arange(PACKETS * 160) / RATE
        self.audio = codec.encode((10000 * np.sin(2 * np.pi * frequency * t)).astype(np.int16))
        self.received: list[RtpPacket] = []
        self.heard_all = asyncio.get_running_loop().create_future()
        self.transport = cast(asyncio.DatagramTransport, None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append(RtpPacket.parse(data))
        if len(self.received) == PACKETS and not self.heard_all.done():
            self.heard_all.set_result(None)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def play_to(self, leg: RtpLeg, start: float) -> None:
        """Schedule every packet at ``start + n * 20 ms``: no drift, whatever the loop's lag."""
        loop = asyncio.get_running_loop()
        for n in range(PACKETS):
            loop.call_at(start + n * 0.02, self._send, n, leg.local_address)

    def _send(self, n: int, to: tuple[str, int]) -> None:
        payload = self.audio[n * 160 : (n + 1) * 160]
        self.transport.sendto(self.stream.build(payload, self.codec.payload_type, 160), to)

    def heard(self, codec: Codec) -> np.ndarray:
        packets = sorted(self.received, key=lambda p: p.sequence_number)
        return codec.decode(b"".join(p.payload for p in packets))


def dominant_frequency(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / RATE)[np.argmax(spectrum)])


async def open_endpoint(codec: Codec, frequency: float) -> Endpoint:
    loop = asyncio.get_running_loop()
    _, endpoint = await loop.create_datagram_endpoint(
        lambda: Endpoint(codec, frequency), local_addr=(HOST, 0)
    )
    return endpoint


async def test_bridged_recorded_call_between_two_endpoints(tmp_path: Path) -> None:
    await bridged_recorded_call(tmp_path)


def test_bridged_recorded_call_on_uvloop(tmp_path: Path) -> None:
    uvloop.run(bridged_recorded_call(tmp_path))


async def bridged_recorded_call(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    pool = PortPool(44000, 44099)
    caller = await open_endpoint(PCMU, 440)
    agent = await open_endpoint(PCMA, 1000)
    a = await RtpLeg.open(pool, HOST)
    b = await RtpLeg.open(pool, HOST)
    a.configure(caller.address, PCMU, 0, telephone_event_pt=101)
    b.configure(agent.address, PCMA, 8, telephone_event_pt=101)

    recorder = Recorder(tmp_path / "call.wav")
    bridge = Bridge(a, b, recorder)
    start = loop.time()
    caller.play_to(a, start)
    agent.play_to(b, start)
    await asyncio.wait_for(asyncio.gather(caller.heard_all, agent.heard_all), SECONDS + 5)
    bridge.stop()
    closed = loop.time()
    finished = await recorder.close()
    a.close()
    b.close()
    caller.transport.close()
    agent.transport.close()

    # Each side heard the other's tone, in its own codec.
    assert {p.payload_type for p in agent.received} == {8}
    assert {p.payload_type for p in caller.received} == {0}
    assert dominant_frequency(agent.heard(PCMA)) == pytest.approx(440, abs=2)
    assert dominant_frequency(caller.heard(PCMU)) == pytest.approx(1000, abs=2)

    # The recording: 5 s of stereo, caller left, agent right; it runs to its
    # close, which a loaded machine may reach a little after the last packet.
    assert finished.channels == 2
    assert SECONDS - 0.04 <= finished.duration_s <= closed - start + 0.04, finished
    with wave.open(str(finished.path), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, RATE, 2)
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    assert len(frames) / RATE == pytest.approx(finished.duration_s)
    assert dominant_frequency(frames[:, 0]) == pytest.approx(440, abs=2)
    assert dominant_frequency(frames[:, 1]) == pytest.approx(1000, abs=2)
    # Neither channel lost audio to the alignment: each holds 5 s of its tone.
    for channel in (0, 1):
        assert np.count_nonzero(frames[:, channel]) >= 0.97 * PACKETS * 160
    assert pool.in_use == 0 and recorder.errors == 0
