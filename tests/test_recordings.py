"""Recording files: template folders, no escape from the root, retention, the disk guard.

Retention runs against both back ends (the ``storage`` fixture of
test_storage.py). The disk guard is tested with a stand-in for
``shutil.disk_usage``: filling the real disk below a threshold would take
the machine's other work down with it, and is not repeatable.
"""

from __future__ import annotations

import asyncio
import logging
from collections import namedtuple
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from acd.config import Config
from acd.recordings import RecordingStore, RetentionResult, check_template, recording_store_for
from acd.storage import CallRecord, Disposition, HangupSide, RecordingRecord, Storage

from .pg import pg_cluster  # noqa: F401 - the session fixture, used by name
from .test_storage import PARIS, cluster, storage  # noqa: F401 - fixtures, used by name

NOW = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)
Usage = namedtuple("Usage", "total used free")


def test_path_for_makes_date_folders_in_utc(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "rec")
    late = store.path_for("c-1", datetime(2024, 5, 1, 23, 30, tzinfo=PARIS))
    assert late == tmp_path / "rec" / "2024" / "05" / "01" / "c-1.wav"
    # 01:00 in Paris is still the previous day in UTC.
    early = store.path_for("c-2", datetime(2024, 5, 1, 1, 0, tzinfo=PARIS))
    assert early == tmp_path / "rec" / "2024" / "04" / "30" / "c-2.wav"
    assert early.parent.is_dir()
    assert not early.exists()  # the recorder creates the file, not the store
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


def test_a_symlinked_folder_cannot_lead_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "2024").symlink_to(outside)
    store = RecordingStore(tmp_path / "rec")
    with pytest.raises(ValueError, match="outside"):
        store.path_for("c-1", NOW)


def test_resolve_stays_inside_the_root(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "rec")
    path = store.path_for("c-1", NOW)
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
    assert await store.apply_retention(storage, NOW) == RetentionResult()
    assert await storage.get_recording("r-1") == kept
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


def test_disk_guard_refuses_below_the_threshold(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    disk = FakeDisk(free=2_000)
    store = RecordingStore(tmp_path / "not-yet", min_free_bytes=1_000, disk_usage=disk)
    caplog.set_level(logging.INFO, "acd.recordings")
    assert store.can_record()
    assert disk.asked == [tmp_path]  # the root does not exist yet: its disk is its parent's
    disk.free = 999
    assert [store.can_record() for _ in range(5)] == [False] * 5
    assert (store.refused, store.free_bytes) == (5, 999)
    disk.free = 1_000  # exactly the threshold is enough
    assert store.can_record()
    disk.free = -1  # the disk cannot be asked: refuse, as a full one would be
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
