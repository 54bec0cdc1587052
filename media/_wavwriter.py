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

The file. It is created here, not on the loop, with the first frames (or at
the finish of a recording that got none): exclusively, so a recording never
overwrites another file, and under a root without following a symbolic
link, so no folder can lead it out of the root. Its header counts the audio
written so far: rewritten every ``header_interval`` seconds of audio (one
``pwrite`` of 44 bytes) and at the finish, so a process killed mid-call
leaves a valid WAV of all but the last few seconds, and
:func:`repair_wav` recovers those too.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
import numpy.typing as npt

from ._native import fastrtp
from .g711 import Codec
from .rtp import RtpPacket, RtpParseError

__all__ = ["Segment", "WavTimeline", "repair_wav", "wav_header"]

Segment = tuple[Codec, list[float | bytes]]
"""A codec and the flat list ``[arrival, packet, arrival, packet, ...]`` received with it."""

_HEADER_SIZE = 44
_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
_timestamp = struct.Struct("!I").unpack_from
_EMPTY = np.zeros(0, dtype=np.int16)
_DECODE_TABLES: dict[str, bytes] = {}


def _decode_table(codec: Codec) -> bytes:
    """The codec's 256 decoded samples (native int16), the table the C placement reads."""
    table = _DECODE_TABLES.get(codec.name)
    if table is None:
        table = _DECODE_TABLES[codec.name] = (
            codec.decode(bytes(range(256))).astype(np.int16).tobytes()
        )
    return table


def wav_header(channels: int, rate: int, data_size: int) -> bytes:
    """A canonical 44-byte RIFF/WAVE header for 16-bit PCM."""
    block_align = channels * 2
    return _HEADER.pack(
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


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _open(path: Path, root: Path | None) -> BinaryIO:
    """Create the recording, exclusively; a seam the tests use to simulate a full disk.

    ``O_EXCL`` makes an existing file (or symbolic link) an error rather
    than something to overwrite. Without ``root`` the folder must exist.
    """
    fd = os.open(path, _CREATE, 0o644) if root is None else _create_under(root, path)
    try:
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def _create_under(root: Path, path: Path) -> int:
    """Create ``path`` below ``root``, making its folders, never through a symbolic link.

    Each folder is opened relative to its parent's descriptor with
    ``O_NOFOLLOW``: checking a resolved path first and opening it after
    would leave a window in which a folder could be swapped for a link.
    """
    *folders, name = _parts(root, path)
    try:
        parent = os.open(root, _FOLDER)
    except FileNotFoundError:
        os.makedirs(root, exist_ok=True)
        parent = os.open(root, _FOLDER)
    try:
        for depth, folder in enumerate(folders, 1):
            try:
                child = _open_folder(folder, parent)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                where = str(root.joinpath(*folders[:depth]))
                raise OSError(
                    exc.errno, "a symbolic link or not a folder: not followed", where
                ) from None
            os.close(parent)
            parent = child
        return os.open(name, _CREATE, 0o644, dir_fd=parent)
    finally:
        os.close(parent)


def _open_folder(name: str, parent: int) -> int:
    """Open (making it first if need be) the folder ``name`` in ``parent``, not through a link."""
    try:
        return os.open(name, _FOLDER | os.O_NOFOLLOW, dir_fd=parent)
    except FileNotFoundError:
        # Opened first, made only when missing: the day's folder exists for
        # every recording but the first, and a failed mkdir costs a syscall too.
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, dir_fd=parent)
        return os.open(name, _FOLDER | os.O_NOFOLLOW, dir_fd=parent)


def _parts(root: Path, path: Path) -> tuple[str, ...]:
    """``path``'s components below ``root``; ValueError if it is not lexically inside."""
    parts = path.relative_to(root).parts  # ValueError when outside
    if not parts or any(part in (".", "..") for part in parts):
        raise ValueError(f"{path} is not a file inside {root}")
    return parts


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stored:
        while chunk := stored.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def repair_wav(path: Path, *, channels: int, rate: int) -> tuple[int, int, int]:
    """Make a WAV a crash abandoned valid, holding all it has: ``(channels, rate, data_size)``.

    The header on disk counts the audio up to its last rewrite; the data
    size is taken from the file's length instead, cutting off a torn last
    frame. A file shorter than a header (killed before its first write
    reached the disk) becomes an empty WAV of ``channels`` and ``rate``.
    Anything else, a WAV this module does not write or not a WAV, raises
    ``ValueError`` and is left as it was.
    """
    with open(path, "r+b") as handle:
        head = handle.read(_HEADER_SIZE)
        size = os.fstat(handle.fileno()).st_size
        if len(head) < _HEADER_SIZE:
            if head != wav_header(channels, rate, 0)[: len(head)]:
                raise ValueError(f"{path}: {size} bytes, not the start of a recording")
            data_size = 0
        else:
            riff, _, wave, fmt, fmt_size, pcm, channels, rate, _, align, bits, data, _ = (
                _HEADER.unpack(head)
            )
            ours = (riff, wave, fmt, fmt_size, pcm, bits, data) == (
                b"RIFF", b"WAVE", b"fmt ", 16, 1, 16, b"data"
            )  # fmt: skip
            if not ours or channels < 1 or align != 2 * channels:
                raise ValueError(f"{path} is not a 16-bit PCM WAV with a canonical header")
            data_size = (size - _HEADER_SIZE) // align * align
        header = wav_header(channels, rate, data_size)
        if size != _HEADER_SIZE + data_size:
            handle.truncate(_HEADER_SIZE + data_size)
        if head != header:
            handle.seek(0)
            handle.write(header)
        if size != _HEADER_SIZE + data_size or head != header:
            handle.flush()
            os.fsync(handle.fileno())
    return channels, rate, data_size


class _Channel:
    """One channel's placement state and the samples placed but not yet written."""

    __slots__ = ("extent", "next_pos", "next_ts", "pending")

    def __init__(self) -> None:
        self.next_pos: int | None = None  # where the next contiguous packet starts
        self.next_ts = 0  # the RTP timestamp that packet would carry
        self.extent = 0  # end of the last sample placed, on the timeline
        # Samples from the end of what is written on; zeros where nothing arrived.
        self.pending: Samples = _EMPTY


Samples = npt.NDArray[np.int16] | bytes
"""Native int16 samples: numpy arrays on the pure-Python path, bytes from the C one."""
Run = tuple[int, Samples]
"""Contiguous samples and the timeline position of the first."""


class WavTimeline:
    """A stereo (or n-channel) 16-bit WAV being written from batches of RTP packets.

    Times are loop times; ``origin`` is the time of the file's first sample.
    With ``root``, ``path`` must lie inside it (ValueError here otherwise):
    the folders below the root are made with the file, none followed if it
    is a symbolic link. The header is rewritten every ``header_interval``
    seconds of audio written (see the module docstring).

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
        root: Path | None = None,
        header_interval: float = 5.0,
    ) -> None:
        if root is not None:
            _parts(root, path)
        self.path = path
        self.root = root
        self.origin = origin
        self.rate = rate
        self.frames_written = 0
        self.frames_in_header = 0
        """Frames the header on disk counts: what a crash now would leave playable."""
        self._header_every = max(1, round(header_interval * rate))
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
        self._write_header(handle)
        os.fsync(handle.fileno())
        handle.close()
        self._file = None
        data_size = self.frames_written * 2 * len(self._channels)
        # Read back rather than hash as we go: the header changes at the end,
        # and what the CDR vouches for should be what is on the disk.
        return self.frames_written / self.rate, _HEADER_SIZE + data_size, _digest(self.path)

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
            self._file = _open(self.path, self.root)
            self._file.write(wav_header(len(self._channels), self.rate, 0))
        return self._file

    def _write_header(self, handle: BinaryIO) -> None:
        """Make the header on disk count every frame written so far."""
        # Frames still in the buffer would be counted before they are in
        # the file; pwrite leaves the file position where appending goes on.
        handle.flush()
        data_size = self.frames_written * 2 * len(self._channels)
        os.pwrite(handle.fileno(), wav_header(len(self._channels), self.rate, data_size), 0)
        self.frames_in_header = self.frames_written

    def _runs(self, channel: _Channel, codec: Codec, items: list[float | bytes]) -> list[Run]:
        """Place one segment's packets (see the module docstring); their runs of samples.

        With the C fast path built, :func:`media._fastrtp.place` does it (the
        per-packet loop was most of the writer thread's time, and the writer
        holds the GIL the relay needs); :meth:`_place` is its reference.
        """
        if fastrtp is None:
            return self._place(channel, codec, items)
        placed, channel.next_pos, channel.next_ts = fastrtp.place(
            items,
            _decode_table(codec),
            self.origin,
            self.rate,
            self._tolerance,
            channel.next_pos,
            channel.next_ts,
        )
        for start, pcm in placed:
            channel.extent = max(channel.extent, start + len(pcm) // 2)
        return list(placed)

    def _place(self, channel: _Channel, codec: Codec, items: list[float | bytes]) -> list[Run]:
        """:meth:`_runs` in Python."""
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
        if fastrtp is None:
            frames = self._mix(written, upto, runs)
        else:
            frames, pendings = fastrtp.mix(
                written, upto, [channel.pending for channel in self._channels], runs
            )
            for channel, pending in zip(self._channels, pendings, strict=True):
                channel.pending = pending
        if frames:
            handle = self._ensure_open()
            handle.write(frames)
            self.frames_written = upto
            if upto - self.frames_in_header >= self._header_every:
                self._write_header(handle)

    def _mix(self, written: int, upto: int, runs: list[list[Run]]) -> bytes:
        """The frames from ``written`` to ``upto`` and each channel's new pending, in numpy.

        The reference of :func:`media._fastrtp.mix`, which does it with the C path.
        """
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
        return frames.tobytes()
