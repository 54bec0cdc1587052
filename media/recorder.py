"""Stereo call recording: the caller on the left, the agent on the right, written off the loop.

The event loop does as little as possible per packet: the relay appends the
arrival time and the packet, untouched, to a :class:`RecordingChannel`'s
list (two ``list.append`` calls, no object built). Every ``flush_interval``
one timer per event loop collects the lists of all its recorders and hands
them, as one job, to a single writer thread shared by every recorder in the
process, which decodes G.711, places the samples on the timeline by arrival
time (see :mod:`media._wavwriter`) and appends 8 kHz 16-bit stereo frames to
the file. A second of a call is about 100 packets, so what a recorded call
holds in memory stays around 30 KiB however long it lasts; the work per
flush (a hand-over, a placement and a write per recorder) is what the
interval trades against that memory: at one flush a second it is half
what it was at two.

Pause (PCI-DSS: while the caller reads out a card number) drops the packets
and leaves silence where they would have been, so the timeline stays true
and the two channels stay aligned after :meth:`Recorder.resume`.

The loop never touches the file system for a recording: the writer thread
creates the file with the first audio (exclusively, and under ``root``
without following a symbolic link), and keeps its header counting what is
written every few seconds, so a crash leaves a playable WAV;
:func:`repair_recording` makes it whole on the next start.

A write error (disk full, directory gone, a file already there) never
reaches the call: the recorder logs it once, counts it in
:attr:`Recorder.errors`, stops collecting, and :meth:`Recorder.close`
raises :class:`RecordingFailed`; the relay goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ._wavwriter import _HEADER_SIZE, Segment, WavTimeline, _digest, repair_wav
from .g711 import PCMU, Codec

__all__ = [
    "Recorder",
    "RecordingChannel",
    "RecordingFailed",
    "RecordingFinished",
    "repair_recording",
]

logger = logging.getLogger(__name__)

_CHANNELS = 2
_RATE = 8000


@dataclass(frozen=True, slots=True)
class RecordingFinished:
    """A recording is complete on disk, header and all, with the digest of its bytes."""

    path: Path
    duration_s: float
    size_bytes: int
    sha256: str
    channels: int = _CHANNELS


class RecordingFailed(Exception):
    """A recording could not be written; the call went on without it. ``__cause__`` says why."""

    def __init__(self, path: Path, reason: BaseException) -> None:
        super().__init__(f"recording {path} failed: {reason}")
        self.path = path
        self.reason = reason


class RecordingChannel:
    """One channel's packets since the last flush: ``[arrival, packet, arrival, packet, ...]``.

    A relay appends to :attr:`buffer` only while :attr:`active` is true (not
    paused, failed or closed). The list object never changes, so a relay may
    keep its bound ``append``; the recorder copies and clears it on the loop.
    """

    __slots__ = ("active", "buffer", "codec")

    def __init__(self, codec: Codec) -> None:
        self.active = True
        self.buffer: list[float | bytes] = []
        self.codec = codec


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _writer() -> ThreadPoolExecutor:
    """The writer thread every recorder in the process shares; FIFO keeps each file in order."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="media-recorder")
        return _executor


class _Flush:
    """One recorder's share of a flush: its timeline, its packets, and the time of the cut."""

    __slots__ = ("batches", "now", "recorder")

    def __init__(self, recorder: Recorder, batches: list[list[Segment]], now: float) -> None:
        self.recorder = recorder
        self.batches = batches
        self.now = now


def _write_all(flushes: list[_Flush]) -> None:
    """The writer thread's job for one tick: every recorder's batch, each on its own."""
    for flush in flushes:
        recorder = flush.recorder
        timeline = recorder._timeline
        if recorder._thread_failure is not None:
            continue
        try:
            timeline.write(flush.batches, flush.now)
        except Exception as exc:
            recorder._fail_from_thread(exc)


class _Ticker:
    """One timer per event loop and interval that flushes every recorder on it at once.

    One timer and one thread hand-off per tick, however many calls are
    recorded: a timer and a job per recorder would cost thousands of
    callbacks a second at a thousand calls.
    """

    _registry: dict[tuple[asyncio.AbstractEventLoop, float], _Ticker] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.recorders: dict[Recorder, None] = {}
        self.handle: asyncio.TimerHandle | None = None

    @classmethod
    def join(cls, recorder: Recorder, loop: asyncio.AbstractEventLoop, interval: float) -> _Ticker:
        ticker = cls._registry.get((loop, interval))
        if ticker is None:
            ticker = cls._registry[loop, interval] = cls(loop, interval)
        ticker.recorders[recorder] = None
        if ticker.handle is None:
            ticker.handle = loop.call_later(interval, ticker.tick)
        return ticker

    def leave(self, recorder: Recorder) -> None:
        self.recorders.pop(recorder, None)
        if not self.recorders:
            if self.handle is not None:
                self.handle.cancel()
                self.handle = None
            self._registry.pop((self.loop, self.interval), None)

    def tick(self) -> None:
        self.handle = self.loop.call_later(self.interval, self.tick)
        flushes = [flush for r in self.recorders if (flush := r._take()) is not None]
        if flushes:
            _writer().submit(_write_all, flushes)


class Recorder:
    """A stereo 8 kHz 16-bit WAV of a bridged call: channel 0 (left) caller, 1 (right) agent.

    The timeline starts when the recorder is made (or at loop time
    ``start``) and ends with the last audio received on either channel;
    each packet is placed by its arrival time, consecutive packets kept
    contiguous by their RTP timestamps, and gaps, a channel's late start
    and paused stretches are silence. Packets come from a
    :class:`~media.bridge.Bridge` or from :meth:`feed`.

    The file does not exist until the writer thread writes the first audio
    (or closes a recording that got none); it is created exclusively, and
    with ``root`` (which ``path`` must lie in) its folders are made and none
    is followed if it is a symbolic link. Its header is brought up to date
    every ``header_interval`` seconds of audio.

    ``await close()`` returns :class:`RecordingFinished` once the file is
    complete; it raises :class:`RecordingFailed` if writing failed, which
    is also logged and counted in :attr:`errors` when it happens.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        root: str | os.PathLike[str] | None = None,
        flush_interval: float = 1.0,
        tolerance: float = 0.08,
        header_interval: float = 5.0,
        start: float | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.path = Path(path)
        self.errors = 0
        self._loop = loop or asyncio.get_running_loop()
        self._start = self._loop.time() if start is None else start
        self._channels = tuple(RecordingChannel(PCMU) for _ in range(_CHANNELS))
        self._sealed: list[list[Segment]] = [[] for _ in range(_CHANNELS)]
        self._timeline = WavTimeline(
            self.path,
            origin=self._start,
            channels=_CHANNELS,
            rate=_RATE,
            tolerance=tolerance,
            root=None if root is None else Path(root),
            header_interval=header_interval,
        )
        self._paused = False
        self._failure: BaseException | None = None
        self._thread_failure: BaseException | None = None
        self._closing: asyncio.Future[RecordingFinished] | None = None
        self._ticker = _Ticker.join(self, self._loop, flush_interval)

    def channel(self, index: int) -> RecordingChannel:
        """Channel ``index`` (0 left/caller, 1 right/agent), for a relay to append to."""
        return self._channels[index]

    def set_codec(self, index: int, codec: Codec) -> None:
        """The codec of channel ``index``'s packets from now on (after a re-INVITE, say)."""
        channel = self._channels[index]
        if codec is channel.codec:
            return
        if channel.buffer:
            self._sealed[index].append((channel.codec, channel.buffer.copy()))
            channel.buffer.clear()
        channel.codec = codec

    def feed(self, index: int, packet: bytes, arrival: float | None = None) -> None:
        """Record one RTP packet on channel ``index``, arrived at loop time ``arrival`` (now)."""
        channel = self._channels[index]
        if channel.active:
            channel.buffer.append(self._loop.time() if arrival is None else arrival)
            channel.buffer.append(packet)

    @property
    def paused(self) -> bool:
        """Whether packets are being dropped (and silence recorded) for now."""
        return self._paused

    @property
    def failed(self) -> bool:
        """Whether writing failed; the recording is lost, the call is not."""
        return self._failure is not None

    def pause(self) -> None:
        """Record silence instead of audio until :meth:`resume` (card numbers, say)."""
        self._paused = True
        self._set_active()

    def resume(self) -> None:
        """Record audio again; the paused stretch stays in the file as silence."""
        self._paused = False
        self._set_active()

    def _set_active(self) -> None:
        active = not self._paused and self._failure is None and self._closing is None
        for channel in self._channels:
            channel.active = active

    def _take(self) -> _Flush | None:
        """Cut the packets collected so far, on the loop, for the writer thread."""
        if self._failure is not None:
            return None
        batches: list[list[Segment]] = []
        for index, channel in enumerate(self._channels):
            segments = self._sealed[index]
            if channel.buffer:
                segments.append((channel.codec, channel.buffer.copy()))
                channel.buffer.clear()
            self._sealed[index] = []
            batches.append(segments)
        return _Flush(self, batches, self._loop.time())

    def _fail_from_thread(self, exc: BaseException) -> None:
        """On the writer thread: give up the file, tell the loop."""
        self._thread_failure = exc
        self._timeline.abandon()
        # A closed loop has nobody left to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._failed, exc)

    def _failed(self, exc: BaseException) -> None:
        if self._failure is not None:
            return
        self._failure = exc
        self.errors += 1
        self._set_active()
        for channel in self._channels:
            channel.buffer.clear()
        self._sealed = [[] for _ in range(_CHANNELS)]
        if isinstance(exc, OSError):
            logger.error("recording %s failed, the call goes on without it: %s", self.path, exc)
        else:
            logger.error("recording %s failed", self.path, exc_info=exc)

    async def close(self) -> RecordingFinished:
        """Stop, write what is left, fix the header; the finished recording's facts.

        Idempotent: later calls return the same result (or raise the same error).
        """
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
            self._set_active()
        return await asyncio.shield(self._closing)

    async def _close(self) -> RecordingFinished:
        self._ticker.leave(self)
        end = self._loop.time() if self._paused else None
        flush = self._take()
        if flush is not None:
            job = _writer().submit(_finish, flush, end)
            try:
                duration, size, digest = await asyncio.wrap_future(job)
            except Exception as exc:
                self._failed(exc)
        if self._failure is not None:
            raise RecordingFailed(self.path, self._failure) from self._failure
        return RecordingFinished(self.path, duration, size, digest, _CHANNELS)


def _finish(flush: _Flush, end: float | None) -> tuple[float, int, str]:
    """The writer thread's last job for one recorder."""
    recorder = flush.recorder
    if recorder._thread_failure is not None:
        raise recorder._thread_failure
    timeline = recorder._timeline
    try:
        timeline.write(flush.batches, flush.now)
        return timeline.finish(end)
    except BaseException:
        timeline.abandon()
        raise


def repair_recording(path: str | os.PathLike[str]) -> RecordingFinished:
    """The facts of a recording a crash left unfinished, once its header counts all it holds.

    Blocking file work, for a thread at start-up: the header is rewritten
    from the file's length (see :func:`media._wavwriter.repair_wav`) and the
    file read back for its digest. ``ValueError`` if it is not a WAV a
    :class:`Recorder` writes; it is then left as it was.
    """
    path = Path(path)
    channels, rate, data_size = repair_wav(path, channels=_CHANNELS, rate=_RATE)
    frames = data_size // (2 * channels)
    return RecordingFinished(path, frames / rate, _HEADER_SIZE + data_size, _digest(path), channels)
