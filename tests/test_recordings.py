"""Recording files: template folders, no escape from the root, retention and orphans,
the disk guard, names made on the loop without the file system, crash repair.

Retention runs against both back ends (the ``storage`` fixture of
test_storage.py). The disk guard is tested with a stand-in for
``shutil.disk_usage``: filling the real disk below a threshold would take
the machine's other work down with it, and is not repeatable.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import logging
import os
import threading
from collections import namedtuple
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from acd.calls import CallScript
from acd.config import Config, load_config
from acd.events import EventBus, RecordingError
from acd.recordings import RecordingStore, RetentionResult, check_template, recording_store_for
from acd.server import Engine
from acd.storage import CallRecord, Disposition, HangupSide, RecordingRecord, Storage
from media import PCMU, RecordingFailed, SenderState
from media._wavwriter import WavTimeline, wav_header

from .conftest import write_config
from .pg import pg_cluster  # noqa: F401 - the session fixture, used by name
from .test_storage import PARIS, cluster, storage  # noqa: F401 - fixtures, used by name

NOW = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)
Usage = namedtuple("Usage", "total used free")


def test_path_for_names_date_folders_in_utc_and_touches_no_disk(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "rec")
    late = store.path_for("c-1", datetime(2024, 5, 1, 23, 30, tzinfo=PARIS))
    assert late == tmp_path / "rec" / "2024" / "05" / "01" / "c-1.wav"
    # 01:00 in Paris is still the previous day in UTC.
    early = store.path_for("c-2", datetime(2024, 5, 1, 1, 0, tzinfo=PARIS))
    assert early == tmp_path / "rec" / "2024" / "04" / "30" / "c-2.wav"
    assert not store.root.exists()  # the recorder's writer thread makes folders and file
    custom = RecordingStore(tmp_path / "rec", "{date:%Y-%m}/{date:%d}-{call_id}.wav")
    assert custom.path_for("x", NOW) == tmp_path / "rec" / "2024-06" / "01-x.wav"
    assert store.relative(late) == "2024/05/01/c-1.wav"
    with pytest.raises(ValueError, match="timezone-aware"):
        store.path_for("c-3", datetime(2024, 5, 1))


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("../{call_id}.wav", "inside"),
        ("/var/tmp/{call_id}.wav", "inside"),
        ("{date:%Y/../..}/{call_id}.wav", "inside"),
        ("{date:%Y}/./{call_id}.wav", "inside"),
        ("{date:%Y}\\{call_id}.wav", "inside"),
        ("{date:%Y}//{call_id}.wav", "inside"),
        ("{date:%Y}/fixed.wav", "must contain"),
        ("{call_id}.mp3", "end in .wav"),
        ("{queue}/{call_id}.wav", "unknown field"),
        ("{date.year}/{call_id}.wav", "unknown field"),
        ("{call_id!r}.wav", "unknown field"),
        ("{call_id.wav", "template"),
    ],
)
def test_bad_templates_are_refused(tmp_path: Path, template: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        RecordingStore(tmp_path, template)


def test_call_ids_cannot_escape_the_root(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "rec")
    for call_id in ("../../etc/passwd", "a/b", "", ".hidden", "a\\b", "x" * 300):
        with pytest.raises(ValueError, match="cannot name"):
            store.path_for(call_id, NOW)
    assert check_template("{call_id}.wav") == "{call_id}.wav"


async def test_a_symlinked_folder_cannot_lead_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "2024").symlink_to(outside)
    store = RecordingStore(tmp_path / "rec")
    call = FakeCall("c-1")
    script = script_for(store)
    _, recorder = script._start_recording(call, store)
    # The writer thread refuses the link when it makes the file; the call goes on.
    with pytest.raises(RecordingFailed, match="symbolic link"):
        await recorder.close()
    assert list(outside.iterdir()) == []


def test_resolve_stays_inside_the_root(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "rec")
    path = store.path_for("c-1", NOW)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"RIFF")
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"no")
    assert store.resolve("2024/06/01/c-1.wav") == path
    assert store.resolve(str(path)) == path
    assert store.resolve("2024/06/01/missing.wav") is None
    assert store.resolve("../secret.wav") is None
    assert store.resolve(str(secret)) is None
    assert store.resolve(".") is None


# ---- retention -------------------------------------------------------------


def recording(store: RecordingStore, n: int, age_days: float) -> RecordingRecord:
    created = NOW - timedelta(days=age_days)
    path = store.path_for(f"c-{n}", created)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + bytes(40))
    return RecordingRecord(
        id=f"r-{n}",
        call_id=f"c-{n}",
        path=store.relative(path) if n % 2 else str(path),  # both forms are accepted
        duration_s=1.0,
        size_bytes=44,
        sha256="0" * 64,
        channels=2,
        created_at=created,
    )


async def test_retention_deletes_files_and_rows_and_keeps_cdrs(
    storage: Storage,  # noqa: F811 - the fixture by name
    tmp_path: Path,
) -> None:
    store = RecordingStore(tmp_path / "rec", retention_days=30)
    old = [recording(store, n, 40 + n) for n in range(3)]
    young = [recording(store, n, 10) for n in range(3, 5)]
    Path(store.root / old[1].path).unlink()  # someone already removed it by hand
    cdrs = [
        CallRecord(
            call_id=r.call_id,
            sip_call_id=f"{r.call_id}@x",
            arrived_at=r.created_at,
            disposition=Disposition.ANSWERED,
            hangup_side=HangupSide.CALLER,
            recording_id=r.id,
        )
        for r in old + young
    ]
    await storage.write_batch(calls=cdrs, recordings=old + young)

    result = await store.apply_retention(storage, NOW)
    assert result == RetentionResult(rows=3, files=2, missing=1, errors=0)
    assert (store.deleted, store.missing, store.errors) == (2, 1, 0)
    for r in old:
        assert await storage.get_recording(r.id) is None
        assert store.resolve(r.path) is None
    for r in young:
        assert await storage.get_recording(r.id) == r
        assert store.resolve(r.path) is not None
    # The CDR still says there was a recording; the missing row says it is gone.
    assert (await storage.get_call("c-0")) == cdrs[0]
    # Emptied date folders are pruned; the root and the young ones' folder stay.
    assert sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*")) == [
        "2024",
        "2024/05",
        "2024/05/22",
        "2024/05/22/c-3.wav",
        "2024/05/22/c-4.wav",
    ]
    assert await store.apply_retention(storage, NOW) == RetentionResult()


async def test_retention_never_deletes_outside_the_root(
    storage: Storage,  # noqa: F811 - the fixture by name
    tmp_path: Path,
) -> None:
    store = RecordingStore(tmp_path / "rec", retention_days=1)
    victim = tmp_path / "precious.wav"
    victim.write_bytes(b"keep me")
    stray = RecordingRecord(
        id="r-x",
        call_id="c-x",
        path=str(victim),
        duration_s=1.0,
        size_bytes=7,
        sha256="0" * 64,
        channels=2,
        created_at=NOW - timedelta(days=5),
    )
    await storage.write_batch(recordings=[stray])
    assert await store.apply_retention(storage, NOW) == RetentionResult(rows=1, errors=1)
    assert victim.read_bytes() == b"keep me"


async def test_no_retention_keeps_everything(
    storage: Storage,  # noqa: F811 - the fixture by name
    tmp_path: Path,
) -> None:
    store = RecordingStore(tmp_path / "rec")
    kept = recording(store, 1, 4000)
    await storage.write_batch(recordings=[kept])
    # Kept forever means no file goes, orphans included: one may be all
    # that is left of a call.
    orphan = aged(store.root / "2013/01/01/lost.wav", 4000)
    assert await store.apply_retention(storage, NOW) == RetentionResult()
    assert await storage.get_recording("r-1") == kept
    assert orphan.exists()
    with pytest.raises(ValueError, match="retention_days"):
        RecordingStore(tmp_path, retention_days=0)


class FlakyStorage:
    """Fails the first retention pass, then reports each pass through an event."""

    def __init__(self) -> None:
        self.calls = 0
        self.passed = asyncio.Event()

    async def delete_recordings_before(self, when: datetime) -> list[RecordingRecord]:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("database down")
        self.passed.set()
        return []


async def test_run_retention_survives_a_failed_pass(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path, retention_days=7)
    flaky = FlakyStorage()
    task = asyncio.create_task(store.run_retention(flaky, every=0.0, clock=lambda: NOW))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(flaky.passed.wait(), 5)
    finally:
        task.cancel()
    assert flaky.calls >= 2  # the pass after the failure came, without waiting `every`
    assert store.errors == 1


def aged(path: Path, age_days: float, data: bytes = b"RIFF") -> Path:
    """A file at ``path`` last written ``age_days`` before NOW."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    when = (NOW - timedelta(days=age_days)).timestamp()
    os.utime(path, (when, when))
    return path


def row(recording_id: str, path: str, age_days: float) -> RecordingRecord:
    return RecordingRecord(
        id=recording_id,
        call_id=recording_id,
        path=path,
        duration_s=0.0,
        size_bytes=4,
        sha256="0" * 64,
        channels=2,
        created_at=NOW - timedelta(days=age_days),
    )


async def test_retention_removes_orphans_and_never_what_a_row_names_or_a_link_reaches(
    storage: Storage,  # noqa: F811 - the fixture by name
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "acd.recordings")
    store = RecordingStore(tmp_path / "rec", retention_days=30)
    root = store.root
    reserved = aged(root / "2024/04/01/reserved.wav", 61, b"")  # an old allocate()'s file
    crashed = aged(root / "2024/04/20/crashed.wav", 42, wav_header(2, 8000, 0) + bytes(400))
    young = aged(root / "2024/05/30/young.wav", 2)  # maybe a call still being recorded
    named = aged(root / "2024/04/02/named.wav", 60)  # an old file whose row is young
    by_absolute = aged(root / "2024/04/02/absolute.wav", 60)
    notes = aged(root / "README.txt", 400)  # not a recording
    outside = tmp_path / "outside"
    secret = aged(outside / "secret.wav", 400)
    (root / "2024" / "elsewhere").symlink_to(outside)  # a folder link: not followed
    (root / "link.wav").symlink_to(secret)  # a file link: not followed, not removed
    await storage.write_batch(
        recordings=[
            row("named", "2024/04/02/named.wav", 3),
            row("absolute", str(by_absolute), 3),
        ]
    )

    result = await store.apply_retention(storage, NOW)
    assert result == RetentionResult(orphans=2)
    assert not reserved.exists() and not crashed.exists()
    for kept in (young, named, by_absolute, notes, secret):
        assert kept.exists(), kept
    assert (root / "link.wav").is_symlink() and (root / "2024" / "elsewhere").is_symlink()
    # The orphans' emptied date folders went with them.
    assert not (root / "2024/04/01").exists() and not (root / "2024/04/20").exists()
    assert store.orphans == 2
    assert "2 orphan files" in caplog.text
    assert await store.apply_retention(storage, NOW) == RetentionResult()


# ---- names on the loop, files on the writer thread -------------------------


class FakeCall:
    """What starting a recording reads of a ``Call``: its id and arrival time."""

    def __init__(self, call_id: str, arrived_at: datetime = NOW) -> None:
        self.id = call_id
        self.arrived_at = arrived_at


def script_for(store: RecordingStore, events: list[Any] | None = None) -> CallScript:
    bus = EventBus()
    if events is not None:
        bus.subscribe(events.append)
    control = SimpleNamespace(events=bus)
    return CallScript(control, Config(), None, {}, recordings=store)  # type: ignore[arg-type]


FILE_SYSTEM_CALLS = ("stat", "lstat", "open", "mkdir", "makedirs", "statvfs", "scandir", "listdir")


def spy_on_file_system(patch: pytest.MonkeyPatch) -> list[str]:
    """Record every file-system call this thread makes from now on (the others pass)."""
    loop_thread = threading.current_thread()
    touched: list[str] = []

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is loop_thread:
                touched.append(f"{name}{args[:1]}")
            return real(*args, **kwargs)

        return call

    for name in FILE_SYSTEM_CALLS:
        patch.setattr(os, name, spy(f"os.{name}", getattr(os, name)))
    patch.setattr(builtins, "open", spy("open", builtins.open))
    return touched


async def test_starting_a_recording_costs_the_loop_no_file_system_call(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "rec", disk_usage=FakeDisk(free=10**9), clock=FakeClock())
    assert store.can_record()  # the guard's reading, good for the next second
    script = script_for(store)
    call = FakeCall("6f1c2b8e-0d4a-4e57-9a43-9a1f0c1e2d3b")
    sender = SenderState(8000)
    with pytest.MonkeyPatch.context() as patch:
        touched = spy_on_file_system(patch)
        first_id, first = script._start_recording(call, store)
        assert touched == []
    assert first_id == call.id and first.path == store.path_for(call.id, NOW)
    assert not store.root.exists()  # nothing until the writer thread writes audio
    loop = asyncio.get_running_loop()
    for n in range(25):
        first.feed(0, sender.build(bytes(160), PCMU.payload_type, 160), loop.time() + n * 0.02)
    await first.close()
    # A transfer bridges the call again: a second recording, in a file of its own.
    with pytest.MonkeyPatch.context() as patch:
        touched = spy_on_file_system(patch)
        second_id, second = script._start_recording(call, store)
        assert touched == []
    assert second_id == f"{call.id}-2"
    assert second.path == first.path.with_name(f"{call.id}-2.wav")
    assert not second.path.exists()
    await second.close()
    # Half a second of audio in the first, none in the second.
    assert first.path.stat().st_size >= 44 + 25 * 160 * 4 and second.path.stat().st_size == 44
    other_id, other = script._start_recording(FakeCall("other-call"), store)
    assert other_id == "other-call"
    await other.close()


def test_a_refused_recording_is_an_event_and_uses_no_number(tmp_path: Path) -> None:
    disk, clock = FakeDisk(free=0), FakeClock()
    store = RecordingStore(tmp_path, min_free_bytes=1, disk_usage=disk, clock=clock)
    events: list[Any] = []
    script = script_for(store, events)
    call = FakeCall("c-1")
    assert script._start_recording(call, store) is None
    assert events == [RecordingError("c-1", "disk-guard")]


async def test_a_file_that_cannot_be_made_is_one_error_and_never_overwritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = RecordingStore(tmp_path / "rec")
    assert store.recording_for("c-1", NOW, 3) == ("c-1-3", store.path_for("c-1-3", NOW))
    with pytest.raises(ValueError, match="numbered from 1"):
        store.recording_for("c-1", NOW, 0)
    # A name taken already (a restored backup, say) fails that recording, not the file.
    taken = store.path_for("c-1", NOW)
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"keep")
    events: list[Any] = []
    script = script_for(store, events)
    call = FakeCall("c-1")
    recording_id, recorder = script._start_recording(call, store)
    await script._recording_done(call, recorder, recording_id)  # type: ignore[arg-type]
    assert isinstance(recorder._failure, FileExistsError) and recorder.errors == 1
    assert events == [RecordingError("c-1", "write-failed")]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "goes on without it" in errors[0].getMessage()
    assert taken.read_bytes() == b"keep"


# ---- crash repair ------------------------------------------------------------


def cut_short(call_id: str, arrived_at: datetime = NOW) -> CallRecord:
    """The failed CDR recover_open_calls writes for a call in progress at a crash."""
    return CallRecord(
        call_id=call_id,
        sip_call_id=f"{call_id}@x",
        arrived_at=arrived_at,
        disposition=Disposition.FAILED,
        hangup_side=HangupSide.SYSTEM,
    )


async def test_recover_repairs_the_recordings_of_calls_cut_short(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "rec")
    _, finished = store.recording_for("c-1", NOW, 1)
    aged(finished, 0.1, wav_header(2, 8000, 8) + bytes(8))
    _, crashed = store.recording_for("c-1", NOW, 2)
    aged(crashed, 0.05, wav_header(2, 8000, 0) + bytes(400) + b"x")  # a torn last frame
    # A folder linked out of the root: the file it reaches is not touched.
    outside = tmp_path / "outside"
    lured = aged(outside / "c-3.wav", 0.1, wav_header(2, 8000, 0) + bytes(40))
    linked_day = NOW + timedelta(days=1)
    store.path_for("c-3", linked_day).parent.parent.mkdir(parents=True, exist_ok=True)
    store.path_for("c-3", linked_day).parent.symlink_to(outside)

    records = await store.recover(
        [cut_short("c-1"), cut_short("c-2"), cut_short("c-3", linked_day)]
    )
    assert [r.id for r in records] == ["c-1", "c-1-2"]
    second = records[1]
    data = crashed.read_bytes()
    assert data == wav_header(2, 8000, 400) + bytes(400)
    assert second == RecordingRecord(
        id="c-1-2",
        call_id="c-1",
        path=store.relative(crashed),
        duration_s=100 / 8000,
        size_bytes=444,
        sha256=hashlib.sha256(data).hexdigest(),
        channels=2,
        created_at=NOW - timedelta(days=0.05),
    )
    assert records[0].size_bytes == 52
    assert lured.read_bytes() == wav_header(2, 8000, 0) + bytes(40)


async def test_a_restart_repairs_and_registers_a_recording_a_crash_cut_short(
    tmp_path: Path,
) -> None:
    config = load_config(
        write_config(tmp_path / "acd.yaml", agents=1),
        env={"ACD_SIP_PORT": "0", "ACD_HTTP_PORT": "0", "ACD_DATA_DIR": str(tmp_path / "d")},
    )
    first = Engine(config)
    await first.start()
    try:
        assert first.writer is not None
        first.writer.call_started("c-crash", "c-crash@x", NOW)
        await first.writer.flush()
        recording_id, path = first.recordings.recording_for("c-crash", NOW)
        timeline = WavTimeline(path, origin=0.0, root=first.recordings.root, header_interval=1.0)
        sender = SenderState(8000)
        for k in range(3):
            items: list[float | bytes] = []
            for n in range(25):
                packet = sender.build(b"\xff" * 160, PCMU.payload_type, 160)
                items += [k * 0.5 + n * 0.02, packet]
            timeline.write([[(PCMU, items)], []], now=k * 0.5 + 1.0)
        timeline.abandon()  # killed mid-call: the header counts 1 s of the 1.5 s
        assert timeline.frames_in_header == 8000
    finally:
        await first.stop()  # the call never ended: its note stays open, as after a SIGKILL
    second = Engine(config)
    await second.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while (stored := await second.storage.get_recording(recording_id)) is None:
            assert asyncio.get_running_loop().time() < deadline, "no row for the repaired file"
            await asyncio.sleep(0.02)
        assert (stored.duration_s, stored.size_bytes) == (1.5, 44 + 12000 * 4)
        assert stored.path == second.recordings.relative(path)
        while (cdr := await second.storage.get_call("c-crash")) is None or not cdr.recording_id:
            assert asyncio.get_running_loop().time() < deadline, "the CDR never linked it"
            await asyncio.sleep(0.02)
        assert (cdr.disposition, cdr.recording_id) == (Disposition.FAILED, recording_id)
    finally:
        await second.stop()


# ---- the free-disk guard ---------------------------------------------------


class FakeDisk:
    """Stands in for shutil.disk_usage: reports ``free`` and records the path asked."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.asked: list[Path] = []

    def __call__(self, path: Path) -> Usage:
        self.asked.append(path)
        if self.free < 0:
            raise PermissionError("statvfs refused")
        return Usage(10**12, 10**12 - self.free, self.free)


class FakeClock:
    """Monotonic seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_disk_guard_refuses_below_the_threshold(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    disk, clock = FakeDisk(free=2_000), FakeClock()
    store = RecordingStore(tmp_path / "not-yet", min_free_bytes=1_000, disk_usage=disk, clock=clock)
    caplog.set_level(logging.INFO, "acd.recordings")
    assert store.can_record()
    assert disk.asked == [tmp_path]  # the root does not exist yet: its disk is its parent's
    disk.free = 999
    clock.now += 1.0
    assert [store.can_record() for _ in range(5)] == [False] * 5
    assert (store.refused, store.free_bytes) == (5, 999)
    disk.free = 1_000  # exactly the threshold is enough
    clock.now += 1.0
    assert store.can_record()
    disk.free = -1  # the disk cannot be asked: refuse, as a full one would be
    clock.now += 1.0
    assert not store.can_record()
    assert store.free_bytes is None
    messages = [r.getMessage() for r in caplog.records]
    # One line per change of state, not one per call.
    assert len(messages) == 3
    assert "recording stopped: 999 bytes free" in messages[0]
    assert "recording resumes" in messages[1]
    assert "cannot read free space" in messages[2]
    assert store.refused == 6


def test_store_from_config(tmp_path: Path) -> None:
    store = recording_store_for(Config(data_dir=tmp_path))
    assert store.root == tmp_path.resolve() / "recordings"
    assert store.retention_days is None
    assert store.min_free_bytes == 500 * 1024 * 1024


def test_disk_guard_reads_the_disk_at_most_once_a_second(tmp_path: Path) -> None:
    disk, clock = FakeDisk(free=10**9), FakeClock()
    store = RecordingStore(tmp_path, min_free_bytes=1_000, disk_usage=disk, clock=clock)
    assert all(store.can_record() for _ in range(1000))
    assert len(disk.asked) == 1
    clock.now += 0.999
    assert store.can_record() and len(disk.asked) == 1
    clock.now += 0.001
    assert store.can_record() and len(disk.asked) == 2
    disk.free = 0
    assert store.can_record()  # the reading is a second old at most: the next one sees it
    clock.now += 1.0
    assert not store.can_record() and not store.can_record()
    assert (len(disk.asked), store.refused) == (3, 2)
