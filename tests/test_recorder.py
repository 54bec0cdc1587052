"""Recorder: arrival-time alignment, gaps, late start, pause, the finished file, write errors,
the file made by the writer thread, and what a crash leaves.

Packets are fed with arrival times chosen by the test (the timeline starts ten seconds
in the past, so every packet is already "final" when it is fed); the bridge and sockets
are exercised in tests/test_media_loopback.py and the last test here.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import signal
import subprocess
import sys
import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from media import (
    PCMA,
    PCMU,
    Bridge,
    PortPool,
    Recorder,
    RecordingFailed,
    RecordingFinished,
    RtpLeg,
    RtpPacket,
    SenderState,
    _wavwriter,
    repair_recording,
)
from media._wavwriter import Segment, WavTimeline, repair_wav, wav_header
from tests.test_leg import Peer, until

ROOT = Path(__file__).resolve().parents[1]

RATE = 8000
LEFT_LEVEL = 1000
RIGHT_LEVEL = -2000


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    """(channels, samples as an (n, channels) int16 array)."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getframerate() == RATE and wav.getsampwidth() == 2
        frames = wav.readframes(wav.getnframes())
        channels = wav.getnchannels()
    return channels, np.frombuffer(frames, dtype="<i2").reshape(-1, channels)


class Stream:
    """An RTP sender of constant-level 20 ms packets, with arrival times the test sets."""

    def __init__(self, level: int, codec=PCMU) -> None:
        self.sender = SenderState(RATE)
        self.payload = codec.encode(np.full(160, level, dtype=np.int16))
        self.pt = codec.payload_type

    def packet(self) -> bytes:
        return self.sender.build(self.payload, self.pt, 160)


@pytest.fixture
async def origin() -> float:
    """A recording start ten seconds ago: every fed packet is past the writer's horizon."""
    return asyncio.get_running_loop().time() - 10.0


def level(samples: np.ndarray) -> int:
    values = set(np.unique(samples).tolist())
    assert len(values) == 1, f"mixed samples {sorted(values)[:5]}"
    return values.pop()


async def test_aligns_by_arrival_with_a_gap_and_a_late_start(tmp_path: Path, origin: float) -> None:
    recorder = Recorder(tmp_path / "call.wav", start=origin, flush_interval=0.05)
    rng = np.random.default_rng(7)
    left, right = Stream(LEFT_LEVEL), Stream(RIGHT_LEVEL, PCMA)
    recorder.set_codec(1, PCMA)
    # Left: 1 s of audio, 0.5 s of silence suppression (the RTP clock runs on),
    # then 0.5 s more. Arrivals jitter by up to 15 ms; placement must not.
    for n in range(100):
        if 50 <= n < 75:
            left.sender.skip(160)
            continue
        arrival = origin + n * 0.02 + 0.02 + rng.uniform(0, 0.015)
        recorder.feed(0, left.packet(), arrival)
    # Right: starts 0.7 s in and talks for 0.8 s.
    for n in range(40):
        recorder.feed(1, right.packet(), origin + 0.7 + n * 0.02)
    # Let the writer thread take a batch before the rest, so a flush boundary is crossed.
    await until(lambda: recorder._timeline.frames_written > 0)
    finished = await recorder.close()

    channels, frames = read_wav(finished.path)
    assert channels == 2
    first_left = int(np.flatnonzero(frames[:, 0])[0])
    assert 160 <= first_left <= 160 + 120  # the first packet's arrival, jitter included
    start = first_left
    assert level(frames[start : start + 8000, 0]) == pytest.approx(LEFT_LEVEL, rel=0.05)
    assert level(frames[start + 8000 : start + 12000, 0]) == 0
    assert level(frames[start + 12000 : start + 16000, 0]) == pytest.approx(LEFT_LEVEL, rel=0.05)
    assert level(frames[:5600, 1]) == 0
    assert level(frames[5600:12000, 1]) == pytest.approx(RIGHT_LEVEL, rel=0.05)
    assert level(frames[12000:, 1]) == 0
    assert len(frames) == start + 16000
    assert finished.duration_s == pytest.approx(len(frames) / RATE)


async def test_a_sender_that_stops_its_clock_is_re_anchored_to_arrival(
    tmp_path: Path, origin: float
) -> None:
    recorder = Recorder(tmp_path / "call.wav", start=origin)
    left = Stream(LEFT_LEVEL)
    for n in range(25):
        recorder.feed(0, left.packet(), origin + n * 0.02)
    # 0.3 s later the timestamps carry on as if nothing happened (a muted
    # softphone that stops its clock): the audio belongs where it arrived.
    for n in range(25):
        recorder.feed(0, left.packet(), origin + 0.8 + n * 0.02)
    finished = await recorder.close()
    _, frames = read_wav(finished.path)
    assert level(frames[:4000, 0]) != 0
    assert level(frames[4000:6400, 0]) == 0
    assert level(frames[6400:10400, 0]) != 0
    assert len(frames) == 10400


async def test_pause_records_silence_and_resume_realigns(tmp_path: Path, origin: float) -> None:
    recorder = Recorder(tmp_path / "call.wav", start=origin)
    left, right = Stream(LEFT_LEVEL), Stream(RIGHT_LEVEL)
    for second in range(3):
        if second == 1:
            recorder.pause()
            assert recorder.paused
        if second == 2:
            recorder.resume()
        for n in range(50):
            arrival = origin + second + n * 0.02
            recorder.feed(0, left.packet(), arrival)
            recorder.feed(1, right.packet(), arrival)
    finished = await recorder.close()
    _, frames = read_wav(finished.path)
    assert len(frames) == 3 * RATE
    for channel, expected in ((0, LEFT_LEVEL), (1, RIGHT_LEVEL)):
        assert level(frames[:RATE, channel]) == pytest.approx(expected, rel=0.05)
        assert level(frames[RATE : 2 * RATE, channel]) == 0
        assert level(frames[2 * RATE :, channel]) == pytest.approx(expected, rel=0.05)


async def test_paused_at_the_end_the_file_runs_to_the_close(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    origin = loop.time() - 3.0
    recorder = Recorder(tmp_path / "call.wav", start=origin)
    left = Stream(LEFT_LEVEL)
    for n in range(50):
        recorder.feed(0, left.packet(), origin + n * 0.02)
    recorder.pause()
    closed_at = loop.time()
    finished = await recorder.close()
    assert finished.duration_s == pytest.approx(closed_at - origin, abs=0.1)


async def test_close_reports_duration_size_and_digest_of_the_file(
    tmp_path: Path, origin: float
) -> None:
    recorder = Recorder(tmp_path / "call.wav", start=origin)
    left, right = Stream(LEFT_LEVEL), Stream(RIGHT_LEVEL)
    for n in range(100):
        recorder.feed(0, left.packet(), origin + n * 0.02)
        recorder.feed(1, right.packet(), origin + n * 0.02)
    finished = await recorder.close()
    data = (tmp_path / "call.wav").read_bytes()
    assert finished == RecordingFinished(
        tmp_path / "call.wav", 2.0, len(data), hashlib.sha256(data).hexdigest(), 2
    )
    assert finished.size_bytes == 44 + 2 * 2 * 16000
    with pytest.raises(AttributeError):
        finished.duration_s = 1.0  # type: ignore[misc]
    assert await recorder.close() == finished  # idempotent
    recorder.feed(0, left.packet())  # after close: ignored, not an error


async def test_a_recording_with_no_audio_is_an_empty_valid_wav(tmp_path: Path) -> None:
    finished = await Recorder(tmp_path / "quiet.wav").close()
    channels, frames = read_wav(finished.path)
    assert channels == 2 and len(frames) == 0 and finished.size_bytes == 44


async def test_a_removed_directory_fails_the_recording_not_the_call(
    tmp_path: Path, origin: float
) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    recorder = Recorder(folder / "call.wav", start=origin, flush_interval=0.02)
    folder.rmdir()
    left = Stream(LEFT_LEVEL)
    for n in range(10):
        recorder.feed(0, left.packet(), origin + n * 0.02)
    await until(lambda: recorder.failed)
    assert recorder.errors == 1
    assert not recorder.channel(0).active
    recorder.feed(0, left.packet())  # dropped quietly
    with pytest.raises(RecordingFailed) as caught:
        await recorder.close()
    assert isinstance(caught.value.reason, FileNotFoundError)
    assert recorder.errors == 1


class FullDisk(io.BytesIO):
    """A file whose second write fails as a full disk does (ENOSPC).

    A real full filesystem cannot be had in a test without root and a loop
    device, so the file object is replaced through the writer's one seam.
    """

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data) -> int:  # type: ignore[override]
        self.writes += 1
        if self.writes > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


async def test_disk_full_keeps_the_relay_going(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_wavwriter, "_open", lambda path, root: FullDisk())
    pool = PortPool(43000, 43099)
    caller, agent = await Peer.open(), await Peer.open()
    a, b = await RtpLeg.open(pool), await RtpLeg.open(pool)
    a.configure(caller.address, PCMU, 0)
    b.configure(agent.address, PCMU, 0)
    recorder = Recorder(tmp_path / "call.wav", flush_interval=0.02, tolerance=0.0)
    bridge = Bridge(a, b, recorder)
    stream = Stream(LEFT_LEVEL)
    caller.send(stream.packet(), a.local_address)
    await agent.receive()
    await until(lambda: recorder.failed)
    assert recorder.errors == 1
    for _ in range(3):
        caller.send(stream.packet(), a.local_address)
    relayed = [RtpPacket.parse(await agent.receive()) for _ in range(3)]
    assert [p.payload for p in relayed] == [stream.payload] * 3
    with pytest.raises(RecordingFailed, match="No space left"):
        await recorder.close()
    bridge.stop()
    for thing in (a, b, caller, agent):
        thing.close()
    assert pool.in_use == 0


# ---- the file: made on the writer thread, never over another -----------------------------


async def test_the_writer_thread_makes_the_folders_and_the_file(
    tmp_path: Path, origin: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened_on: list[str] = []
    real_open = _wavwriter._open

    def spy(path: Path, root: Path | None) -> io.BufferedWriter:
        opened_on.append(threading.current_thread().name)
        return real_open(path, root)  # type: ignore[return-value]

    monkeypatch.setattr(_wavwriter, "_open", spy)
    root = tmp_path / "rec"
    path = root / "2024" / "06" / "01" / "call.wav"
    recorder = Recorder(path, root=root, start=origin, flush_interval=0.02)
    assert not root.exists()  # making the recorder cost the loop no system call
    left = Stream(LEFT_LEVEL)
    for n in range(10):
        recorder.feed(0, left.packet(), origin + n * 0.02)
    await until(lambda: recorder._timeline.frames_written > 0)
    assert path.is_file()
    assert len(opened_on) == 1 and opened_on[0].startswith("media-recorder")
    finished = await recorder.close()
    assert finished.path == path and finished.duration_s == pytest.approx(0.2)
    with pytest.raises(ValueError, match="subpath"):
        Recorder(tmp_path / "elsewhere.wav", root=root)


async def test_an_existing_file_is_never_overwritten(tmp_path: Path, origin: float) -> None:
    path = tmp_path / "call.wav"
    path.write_bytes(b"an earlier recording")
    recorder = Recorder(path, start=origin, flush_interval=0.02)
    left = Stream(LEFT_LEVEL)
    for n in range(10):
        recorder.feed(0, left.packet(), origin + n * 0.02)
    with pytest.raises(RecordingFailed) as caught:
        await recorder.close()
    assert isinstance(caught.value.reason, FileExistsError)
    assert recorder.errors == 1
    assert path.read_bytes() == b"an earlier recording"


async def test_a_symlinked_folder_under_the_root_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "rec"
    (root / "2024").mkdir(parents=True)
    (root / "2024" / "06").symlink_to(outside)
    recorder = Recorder(root / "2024" / "06" / "01" / "call.wav", root=root)
    with pytest.raises(RecordingFailed, match="symbolic link") as caught:
        await recorder.close()
    # Linux says ENOTDIR for a link opened as a folder with O_NOFOLLOW; ELOOP elsewhere.
    assert caught.value.reason.errno in (errno.ENOTDIR, errno.ELOOP)  # type: ignore[attr-defined]
    assert str(root / "2024" / "06") in str(caught.value)
    assert list(outside.iterdir()) == []


# ---- what a crash leaves -----------------------------------------------------------------


def batch(streams: list[Stream], start: float, count: int) -> list[list[Segment]]:
    """``count`` 20 ms packets per stream from loop time ``start``, one segment per channel."""
    return [
        [(PCMU, [item for n in range(count) for item in (start + n * 0.02, s.packet())])]
        for s in streams
    ]


def header_frames(path: Path) -> int:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes()


def test_the_header_counts_the_audio_while_the_call_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    timeline = WavTimeline(path, origin=0.0, header_interval=1.0)
    left, right = Stream(LEFT_LEVEL), Stream(RIGHT_LEVEL)
    counted = {}
    for k in range(7):  # 3.5 s in half-second batches, each final once written
        timeline.write(batch([left, right], k * 0.5, 25), now=k * 0.5 + 1.0)
        if k % 2:
            counted[k] = header_frames(path)
    assert counted == {1: 8000, 3: 16000, 5: 24000}
    assert (timeline.frames_written, timeline.frames_in_header) == (28000, 24000)
    # The process dies here: no finish. What it wrote is a valid WAV up to
    # the last header rewrite, every frame of it audio.
    timeline.abandon()
    channels, frames = read_wav(path)
    assert channels == 2 and len(frames) == 24000
    assert level(frames[:, 0]) == pytest.approx(LEFT_LEVEL, rel=0.05)
    assert level(frames[:, 1]) == pytest.approx(RIGHT_LEVEL, rel=0.05)
    # Repaired on the next start, it holds the last half second too.
    repaired = repair_recording(path)
    data = path.read_bytes()
    assert repaired == RecordingFinished(path, 3.5, len(data), hashlib.sha256(data).hexdigest(), 2)
    assert header_frames(path) == 28000


KILLED_WRITER = """
import os, signal, struct, sys
from pathlib import Path
from media._wavwriter import WavTimeline
from media.g711 import PCMU
import numpy as np

payload = PCMU.encode(np.full(160, 1000, dtype=np.int16))
timeline = WavTimeline(Path(sys.argv[1]), origin=0.0, header_interval=1.0)
seq = 0
for k in range(7):
    items = []
    for n in range(25):
        items += [k * 0.5 + n * 0.02, struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 1) + payload]
        seq += 1
    timeline.write([[(PCMU, items)], [(PCMU, list(items))]], now=k * 0.5 + 1.0)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_writer_leaves_a_valid_wav_that_repair_completes(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(path)], cwd=ROOT, timeout=60, check=False
    )
    assert done.returncode == -signal.SIGKILL
    # Frames still in the file object's buffer died with the process; the
    # header never counts more than reached the file.
    assert header_frames(path) == 24000
    size = path.stat().st_size
    assert 44 + 24000 * 4 <= size <= 44 + 28000 * 4
    repaired = repair_recording(path)
    _, frames = read_wav(path)
    assert len(frames) == (size - 44) // 4 == round(repaired.duration_s * RATE)
    assert level(frames) == pytest.approx(LEFT_LEVEL, rel=0.05)


def test_repair_cuts_a_torn_frame_heals_a_torn_header_and_leaves_other_files(
    tmp_path: Path,
) -> None:
    torn = tmp_path / "torn.wav"
    torn.write_bytes(wav_header(2, 8000, 0) + bytes(range(40)) + b"abc")
    assert repair_wav(torn, channels=2, rate=8000) == (2, 8000, 40)
    assert torn.read_bytes() == wav_header(2, 8000, 40) + bytes(range(40))
    for cut in (0, 20):  # killed before (or while) the header reached the disk
        short = tmp_path / f"short-{cut}.wav"
        short.write_bytes(wav_header(2, 8000, 0)[:cut])
        finished = repair_recording(short)
        assert (finished.duration_s, finished.size_bytes) == (0.0, 44)
        assert read_wav(short)[1].shape == (0, 2)
    sound = tmp_path / "sound.wav"
    sound.write_bytes(wav_header(2, 8000, 8) + bytes(8))
    before = sound.stat().st_mtime_ns
    assert repair_wav(sound, channels=2, rate=8000) == (2, 8000, 8)
    assert sound.stat().st_mtime_ns == before  # whole already: not written
    for name, data in (("mp3.wav", b"ID3\x03" + bytes(60)), ("tiny.wav", b"MZ")):
        other = tmp_path / name
        other.write_bytes(data)
        with pytest.raises(ValueError):
            repair_wav(other, channels=2, rate=8000)
        assert other.read_bytes() == data
