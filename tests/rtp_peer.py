"""A caller's media end, in the test process: hears prompts, presses keys, times both.

SIPp does the signalling (bench/sipp/ivr_listener.xml points the SDP at this
socket); this side receives the engine's RTP and sends RFC 4733 key presses
back to wherever it comes from (symmetric RTP). Prompt boundaries are visible
on the wire: the engine's player sets the marker bit on the first packet of
every playback, so "the next prompt has started" is "the next marked packet".

Arrival times are the kernel's receive timestamps (SO_TIMESTAMPNS, wall
clock), so a packet that arrives while this side is busy sending a key press
is still timed when it arrived, not when it was read.
"""

from __future__ import annotations

import secrets
import socket
import struct
import time
from dataclasses import dataclass

from media.dtmf import Rfc4733Sender
from media.rtp import RtpPacket

# Linux: not exported by the socket module.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@ll")


@dataclass(frozen=True, slots=True)
class Heard:
    """One packet from the engine and when the kernel received it (time.time)."""

    at: float
    packet: RtpPacket


class RtpPeer:
    """A UDP socket on 127.0.0.1 acting as a phone's RTP end."""

    def __init__(self, payload_type: int = 101) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        self.port: int = self.sock.getsockname()[1]
        self.remote: tuple[str, int] | None = None
        self.dtmf = Rfc4733Sender(payload_type, interval_ms=20)
        self.ssrc = secrets.randbits(32)
        self.sequence = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)
        self.heard = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RtpPeer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def receive(self, deadline: float) -> Heard | None:
        """The next packet, or None when ``deadline`` (monotonic) passes first."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                data, ancillary, _flags, source = self.sock.recvmsg(2048, 64)
            except TimeoutError:
                return None
            at = time.time()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                    seconds, nanoseconds = _TIMESPEC.unpack_from(value)
                    at = seconds + nanoseconds / 1e9
            self.remote = source
            self.heard += 1
            return Heard(at, RtpPacket.parse(data))

    def next_prompt(self, deadline: float) -> Heard:
        """Wait for the first packet of the next playback (marker bit set)."""
        while True:
            heard = self.receive(deadline)
            if heard is None:
                raise AssertionError("no prompt started before the deadline")
            if heard.packet.marker:
                return heard

    def packets(self, count: int, deadline: float) -> None:
        """Listen to ``count`` more packets of whatever is playing."""
        for _ in range(count):
            if self.receive(deadline) is None:
                raise AssertionError(f"the engine stopped sending before {count} packets")

    def quiet(self, gap: float, deadline: float) -> None:
        """Listen until nothing has arrived for ``gap`` seconds: the prompt has ended."""
        while True:
            heard = self.receive(min(deadline, time.monotonic() + gap))
            if heard is None:
                if time.monotonic() >= deadline:
                    raise AssertionError("the prompt never ended")
                return

    def press(self, digit: str, duration_ms: int = 80, phase: float = 0.0) -> float:
        """Send one key press paced like a phone; returns when (time.time) the first end
        packet left.

        The packets go out at their offsets (20 ms apart); this is the pacing
        of a media stream, not a wait for the engine. ``phase`` delays the
        press, so that presses are not all in step with the engine's 20 ms
        packet clock (a press is usually timed just after a packet arrived).
        """
        assert self.remote is not None, "press() before any RTP arrived from the engine"
        start = time.monotonic() + phase
        end_sent: float | None = None
        self.timestamp = (self.timestamp + 8000) & 0xFFFFFFFF
        for packet in self.dtmf.packets(digit, self.timestamp, duration_ms):
            due = start + packet.offset_ms / 1000
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.sequence = (self.sequence + 1) & 0xFFFF
            rtp = RtpPacket(
                payload_type=self.dtmf.payload_type,
                sequence_number=self.sequence,
                timestamp=packet.timestamp,
                ssrc=self.ssrc,
                payload=packet.payload,
                marker=packet.marker,
            )
            self.sock.sendto(rtp.serialize(), self.remote)
            if end_sent is None and packet.payload[1] & 0x80:
                end_sent = time.time()
        assert end_sent is not None
        return end_sent
