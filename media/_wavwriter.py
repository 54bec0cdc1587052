"""The recorder's thread side: place packets on a timeline, decode, write a stereo WAV.

Everything here runs on the recorders' writer thread, never on the event
loop: :class:`WavTimeline` receives raw RTP packets with their arrival times
(in batches the loop hands over every half second or so) and appends 16-bit
PCM frames to the file. It holds the GIL while it works, taking it from the
relay, so the work per batch is kept small: one Python pass over the ~25
packets groups them into runs of contiguous audio (normally a single run),
and numpy is called once per run, not per packet: on batches this small,
numpy's per-call overhead, not the arithmetic, is the cost.

Placement. Each packet's first sample goes at a position on the recording's
timeline: where the previous packet of the channel ended plus the RTP
timestamp difference (so consecutive packets are contiguous and a lost
packet leaves a hole of exactly its length), unless that position is more
than ``tolerance`` away from the packet's arrival time; then the channel
re-anchors to the arrival time (the sender restarted, paused without
advancing its clock, or drifted). Holes are silence. Since a packet lands at
most ``tolerance`` before its arrival, everything before ``now - tolerance``
is final and can be written, and only the stretch after it is held back.

The file ends with the last audio received on either channel (or later, by
``end``, when the recorder was paused at the end); trailing silence after
both parties stopped sending is not invented.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
import numpy.typing as npt

from .g711 import Codec
from .rtp import RtpPacket, RtpParseError

__all__ = ["Segment", "WavTimeline", "wav_header"]

Segment = tuple[Codec, list[float | bytes]]
"""A codec and the flat list ``[arrival, packet, arrival, packet, ...]`` received with it."""

_HEADER_SIZE = 44
_timestamp = struct.Struct("!I").unpack_from
_EMPTY = np.zeros(0, dtype=np.int16)


def wav_header(channels: int, rate: int, data_size: int) -> bytes:
    """A canonical 44-byte RIFF/WAVE header for 16-bit PCM."""
    block_align = channels * 2
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_size,
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        rate,
        rate * block_align,
        block_align,
        16,
        b"data",
        data_size,
    )


def _open(path: Path) -> BinaryIO:
    """Open the recording for writing; a seam the tests use to simulate a full disk."""
    return open(path, "wb")


class _Channel:
    """One channel's placement state and the samples placed but not yet written."""

    __slots__ = ("extent", "next_pos", "next_ts", "pending")

    def __init__(self) -> None:
        self.next_pos: int | None = None  # where the next contiguous packet starts
        self.next_ts = 0  # the RTP timestamp that packet would carry
        self.extent = 0  # end of the last sample placed, on the timeline
        # Samples from the end of what is written on; zeros where nothing arrived.
        self.pending: npt.NDArray[np.int16] = _EMPTY


Run = tuple[int, npt.NDArray[np.int16]]
"""Contiguous samples and the timeline position of the first."""


class WavTimeline:
    """A stereo (or n-channel) 16-bit WAV being written from batches of RTP packets.

    Times are loop times; ``origin`` is the time of the file's first sample.

    Not thread-safe: one writer thread calls :meth:`write` and then
    :meth:`finish`, in order. An ``OSError`` from the file propagates to that
    caller, which marks the recording failed; the object is then useless.
    """

    def __init__(
        self,
        path: Path,
        *,
        origin: float,
        channels: int = 2,
        rate: int = 8000,
        tolerance: float = 0.08,
    ) -> None:
        self.path = path
        self.origin = origin
        self.rate = rate
        self.frames_written = 0
        self._tolerance = round(tolerance * rate)
        self._channels = [_Channel() for _ in range(channels)]
        self._file: BinaryIO | None = None

    def write(self, batches: Sequence[Sequence[Segment]], now: float) -> None:
        """Place each channel's new packets and write what loop time ``now`` makes final."""
        runs = [
            [run for codec, items in segments for run in self._runs(channel, codec, items)]
            for channel, segments in zip(self._channels, batches, strict=True)
        ]
        latest = max(channel.extent for channel in self._channels)
        self._emit(min(self._position(now) - self._tolerance, latest), runs)

    def finish(self, end: float | None = None) -> tuple[float, int, str]:
        """Write everything, fix the header; ``(duration_s, size_bytes, sha256)``.

        ``end`` (a loop time) extends the file with silence to at least that
        point: the recorder passes it when it was paused at the end.
        """
        last = max(channel.extent for channel in self._channels)
        if end is not None:
            last = max(last, self._position(end))
        self._emit(last, [[] for _ in self._channels])
        handle = self._ensure_open()
        data_size = self.frames_written * 2 * len(self._channels)
        handle.seek(0)
        handle.write(wav_header(len(self._channels), self.rate, data_size))
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        self._file = None
        digest = hashlib.sha256()
        # Read back rather than hash as we go: the header changes at the end,
        # and what the CDR vouches for should be what is on the disk.
        with open(self.path, "rb") as stored:
            while chunk := stored.read(1 << 20):
                digest.update(chunk)
        return self.frames_written / self.rate, _HEADER_SIZE + data_size, digest.hexdigest()

    def abandon(self) -> None:
        """Close the file after a failure, ignoring further errors."""
        handle, self._file = self._file, None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()

    # ------------------------------------------------------------------

    def _position(self, when: float) -> int:
        return round((when - self.origin) * self.rate)

    def _ensure_open(self) -> BinaryIO:
        if self._file is None:
            self._file = _open(self.path)
            self._file.write(wav_header(len(self._channels), self.rate, 0))
        return self._file

    def _runs(self, channel: _Channel, codec: Codec, items: list[float | bytes]) -> list[Run]:
        """Place one segment's packets (see the module docstring); their runs of samples."""
        origin, rate, tolerance = self.origin, self.rate, self._tolerance
        next_pos, next_ts = channel.next_pos, channel.next_ts
        runs: list[Run] = []
        payloads: list[bytes] = []
        run_start = run_end = 0
        # The loop appends arrival and packet in turn; slicing apart is C-fast.
        arrivals = cast(list[float], items[0::2])
        packets = cast(list[bytes], items[1::2])
        for arrival, data in zip(arrivals, packets, strict=True):
            if data[0] == 0x80 and len(data) >= 12:
                timestamp = _timestamp(data, 4)[0]
                payload = data[12:]
            else:
                try:
                    packet = RtpPacket.parse(data)
                except RtpParseError:
                    continue
                timestamp, payload = packet.timestamp, packet.payload
            heard = round((arrival - origin) * rate)
            if next_pos is None:
                position = heard
            else:
                # Where the RTP clock puts it, unless that is too far from
                # when it came: the signed 32-bit distance, wrap included.
                step = ((timestamp - next_ts + 0x8000_0000) & 0xFFFF_FFFF) - 0x8000_0000
                position = next_pos + step
                if not -tolerance <= position - heard <= tolerance:
                    position = heard
            if position != run_end or not payloads:
                if payloads:
                    runs.append((run_start, codec.decode(b"".join(payloads))))
                payloads = []
                run_start = run_end = position
            payloads.append(payload)
            run_end += len(payload)
            next_pos = run_end
            next_ts = (timestamp + len(payload)) & 0xFFFF_FFFF
        if payloads:
            runs.append((run_start, codec.decode(b"".join(payloads))))
        channel.next_pos, channel.next_ts = next_pos, next_ts
        for start, samples in runs:
            channel.extent = max(channel.extent, start + len(samples))
        return runs

    def _emit(self, upto: int, runs: list[list[Run]]) -> None:
        """Write frames up to ``upto``; keep each channel's samples beyond it pending."""
        written = self.frames_written
        upto = max(upto, written)
        frames = np.zeros((upto - written, len(self._channels)), dtype="<i2")
        for number, channel in enumerate(self._channels):
            pieces = [(written, channel.pending), *runs[number]]
            beyond = max(start + len(samples) for start, samples in pieces) - upto
            pending = np.zeros(beyond, dtype=np.int16) if beyond > 0 else _EMPTY
            column = frames[:, number]
            for start, samples in pieces:
                if start < written:  # a packet too late for what is on disk
                    samples = samples[written - start :]
                    start = written
                end = start + len(samples)
                if start < upto:
                    head = min(end, upto) - start
                    column[start - written : start - written + head] = samples[:head]
                if end > upto:
                    tail = max(start, upto)
                    pending[tail - upto : end - upto] = samples[tail - start :]
            channel.pending = pending
        if len(frames):
            self._ensure_open().write(frames.tobytes())
            self.frames_written = upto
