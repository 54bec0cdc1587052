"""aiortc as the browser's media: a peer connection that sends a tone and measures what it hears.

aiortc is a full ICE agent with DTLS-SRTP, written by others, so the
engine's ICE-lite/DTLS side is held to an outside implementation. Its host
candidates are limited to 127.0.0.1 (aioice leaves loopback out by
default), so every test stays on loopback.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

RATE = 8000
FRAME = 160


@contextmanager
def loopback_candidates() -> Iterator[None]:
    """Make aioice gather only 127.0.0.1 while the block runs."""
    import aioice.ice

    original = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original


class ToneTrack(MediaStreamTrack):
    """A microphone that plays one sine tone, paced in real time (20 ms frames)."""

    kind = "audio"

    def __init__(self, frequency: float, amplitude: float = 8000.0) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self._sent = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            # Media pacing, not synchronisation: a microphone delivers 20 ms at a time.
            delay = self._start + self._sent / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        n = np.arange(self._sent, self._sent + FRAME)
        samples = (self.amplitude * np.sin(2 * math.pi * self.frequency * n / RATE)).astype("<i2")
        frame = AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(samples.tobytes())
        frame.pts = self._sent
        frame.sample_rate = RATE
        frame.time_base = fractions.Fraction(1, RATE)
        self._sent += FRAME
        return frame


def dominant_frequency(samples: np.ndarray, rate: int = RATE) -> float:
    """The strongest frequency in a stretch of audio, in Hz."""
    data = samples.astype(np.float64)
    data = data - data.mean()
    spectrum = np.abs(np.fft.rfft(data * np.hanning(len(data))))
    return float(np.fft.rfftfreq(len(data), 1 / rate)[int(np.argmax(spectrum))])


class Browser:
    """A peer connection with one tone-sending microphone; records the audio it receives."""

    def __init__(self, tone: float) -> None:
        self.pc = RTCPeerConnection()
        self.track = ToneTrack(tone)
        self.pc.addTrack(self.track)
        self.heard: list[np.ndarray] = []
        self._readers: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._readers.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                pcm = frame.to_ndarray().reshape(-1)
                if frame.sample_rate != RATE:
                    pcm = pcm[:: frame.sample_rate // RATE]
                self.heard.append(pcm.astype(np.int16))
        except MediaStreamError:
            return

    async def answer(self, offer: bytes) -> bytes:
        """Take the engine's offer, return the browser's answer (ICE gathered)."""
        with loopback_candidates():
            await self.pc.setRemoteDescription(RTCSessionDescription(offer.decode(), "offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp.encode()

    async def offer(self) -> bytes:
        """The browser's offer (ICE gathered)."""
        with loopback_candidates():
            await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp.encode()

    async def accept(self, answer: bytes) -> None:
        """Take the engine's answer to :meth:`offer`."""
        await self.pc.setRemoteDescription(RTCSessionDescription(answer.decode(), "answer"))

    def received(self, skip: int = 10) -> np.ndarray:
        """What was heard so far, less the first frames (jitter buffer start)."""
        frames = self.heard[skip:]
        return np.concatenate(frames) if frames else np.zeros(0, np.int16)

    async def close(self) -> None:
        await self.pc.close()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
