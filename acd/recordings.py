"""Recording files on disk: where each goes, when it may be written, when it goes away.

``RecordingStore`` owns one directory tree. ``recording_for`` names a
call's recording and its path under the tree from a template with date
folders, as string work only: the recorder's writer thread makes the
folders and the file, off the event loop. ``can_record`` is the free-disk
guard the call path asks before starting a recorder (a refused recording is
logged and counted, and the call goes on without it); it reads the disk at
most once a second. ``apply_retention`` deletes recordings older than the
retention period, database rows first, then files, then the files no row
names (orphans); ``recover`` repairs the recordings of calls a crash cut
short.

Every path that leaves this module, or that it is asked to open or delete,
is checked to lie inside the root: a template, a call id or a database row
cannot point it at another file on the machine, nor can a symbolic link.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import shutil
import stat
import string
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Protocol

from media import repair_recording

from .config import Config
from .storage import CallRecord, RecordingRecord, Storage

__all__ = [
    "DEFAULT_PATH_TEMPLATE",
    "RecordingStore",
    "RetentionResult",
    "check_template",
    "recording_store_for",
]

_log = logging.getLogger(__name__)

DEFAULT_PATH_TEMPLATE = "{date:%Y/%m/%d}/{call_id}.wav"
_FIELDS = frozenset({"date", "call_id"})
# The engine's call ids are UUIDs; this is looser, but never holds a separator.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}")
_SAMPLE_DATE = datetime(2000, 12, 31, 23, 59, 59, tzinfo=UTC)


class _DiskUsage(Protocol):
    @property
    def free(self) -> int: ...


DiskUsage = Callable[[Path], _DiskUsage]


def check_template(template: str) -> str:
    """Return ``template`` if it is usable, else raise ValueError saying why.

    Usable: only the fields ``{date:<strftime>}`` and ``{call_id}`` (which
    must appear, so two calls never share a file), a relative path that
    never climbs with ``..``, ending in ``.wav``.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"recording path template {template!r}: {exc}") from None
    names = set()
    for _, name, _, conversion in parsed:
        if name is None:
            continue
        if name not in _FIELDS or conversion is not None:
            raise ValueError(
                f"recording path template {template!r}: unknown field {{{name}}}; "
                "use {date:%Y/%m/%d} and {call_id}"
            )
        names.add(name)
    if "call_id" not in names:
        raise ValueError(f"recording path template {template!r} must contain {{call_id}}")
    if not template.endswith(".wav"):
        raise ValueError(f"recording path template {template!r} must end in .wav")
    _relative(template.format(date=_SAMPLE_DATE, call_id="x"), template)
    return template


def _relative(rendered: str, template: str) -> PurePosixPath:
    path = PurePosixPath(rendered)
    # Split the text itself: PurePosixPath would quietly drop "." and "//".
    pieces = rendered.split("/")
    if path.is_absolute() or "\\" in rendered or any(p in ("", ".", "..") for p in pieces):
        raise ValueError(
            f"recording path template {template!r} gives {rendered!r}: "
            "paths must stay inside the recordings directory"
        )
    return path


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What one retention pass did: rows deleted, their files removed, orphans removed, the rest."""

    rows: int = 0
    files: int = 0
    missing: int = 0
    errors: int = 0
    orphans: int = 0


class RecordingStore:
    """The recordings directory: names from a template, a free-disk guard, retention, repair.

    ``retention_days`` None keeps recordings forever: nothing under the root
    is deleted then, orphans included. ``disk_usage`` is ``shutil.disk_usage``
    and ``clock`` ``time.monotonic`` unless a test supplies stand-ins; the
    disk is read at most every ``disk_check_interval`` seconds. The counters
    (``refused``, ``deleted``, ``missing``, ``orphans``, ``errors``) and
    ``free_bytes`` are for metrics to read.
    """

    def __init__(
        self,
        root: Path,
        path_template: str = DEFAULT_PATH_TEMPLATE,
        *,
        retention_days: int | None = None,
        min_free_bytes: int = 500 * 1024 * 1024,
        disk_usage: DiskUsage = shutil.disk_usage,
        disk_check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if retention_days is not None and retention_days < 1:
            raise ValueError(f"retention_days must be at least 1, got {retention_days}")
        self.root = Path(root).resolve()
        self.path_template = check_template(path_template)
        self.retention_days = retention_days
        self.min_free_bytes = min_free_bytes
        self.disk_check_interval = disk_check_interval
        self._disk_usage = disk_usage
        self._clock = clock
        self.free_bytes: int | None = None
        self.refused = 0
        self.deleted = 0
        self.missing = 0
        self.orphans = 0
        self.errors = 0
        self._disk_read_at: float | None = None
        self._disk_problem = ""  # why recording is refused now; empty while it is not

    def __repr__(self) -> str:
        return f"RecordingStore({str(self.root)!r})"

    def path_for(self, call_id: str, when: datetime) -> Path:
        """Where the recording ``call_id`` goes: string work only, the disk is not touched.

        ``when`` (timezone-aware) fills the date folders in UTC, as every
        timestamp in storage is, so a folder never straddles a DST change.
        The folders are made, and a symbolic link among them refused, by the
        recorder's writer thread when it creates the file: give the
        :class:`~media.Recorder` ``root=store.root``.
        """
        if when.utcoffset() is None:
            raise ValueError(f"when must be timezone-aware: {when!r}")
        if not _SAFE_ID.fullmatch(call_id):
            raise ValueError(f"call id {call_id!r} cannot name a recording file")
        rendered = self.path_template.format(date=when.astimezone(UTC), call_id=call_id)
        return self.root / _relative(rendered, self.path_template)

    def recording_for(self, call_id: str, when: datetime, number: int = 1) -> tuple[str, Path]:
        """The id and path of the call's ``number``-th recording; string work only.

        A call is recorded once per bridge, and a transferred call is bridged
        again (to the next agent or extension): the caller numbers the call's
        recordings, the first keeps the call id, later ones are
        ``<call_id>-2``, ``<call_id>-3``... so the id matches the file name
        whatever the template. The recorder creates the file exclusively: a
        name already taken fails that recording rather than overwrite a file.
        """
        if number < 1:
            raise ValueError(f"recordings are numbered from 1, got {number}")
        recording_id = call_id if number == 1 else f"{call_id}-{number}"
        return recording_id, self.path_for(recording_id, when)

    def relative(self, path: Path) -> str:
        """``path`` (from :meth:`path_for`) relative to the root, for ``RecordingRecord.path``.

        Lexical, so it costs the event loop no system call; a relative path
        survives moving the recordings directory.
        """
        return Path(path).relative_to(self.root).as_posix()

    def resolve(self, stored: str) -> Path | None:
        """The file a ``RecordingRecord.path`` names, if it is inside the root and exists."""
        candidate = Path(stored)
        path = (candidate if candidate.is_absolute() else self.root / candidate).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            _log.warning("%r: refused a recording path outside the root: %s", self, stored)
            return None
        return path if path.is_file() else None

    # ---- the free-disk guard ---------------------------------------------

    def can_record(self) -> bool:
        """True when the disk holding the root had ``min_free_bytes`` free at the last reading.

        The reading is at most ``disk_check_interval`` seconds old: free
        space changes slowly, and a statvfs for every bridged call was a
        system call on the event loop per call. A refusal is counted in
        ``refused``; the log says when the disk goes low and when it
        recovers, not once per call, so a full disk at peak hour does not
        flood the log.
        """
        now = self._clock()
        if self._disk_read_at is None or now - self._disk_read_at >= self.disk_check_interval:
            self._disk_read_at = now
            self._read_disk()
        if self._disk_problem:
            self.refused += 1
            return False
        return True

    def _read_disk(self) -> None:
        try:
            self.free_bytes = self._disk_usage(_existing(self.root)).free
        except OSError as exc:
            self.free_bytes = None
            problem = f"cannot read free space ({exc})"
        else:
            problem = (
                f"{self.free_bytes} bytes free, below the {self.min_free_bytes} required"
                if self.free_bytes < self.min_free_bytes
                else ""
            )
        if bool(problem) != bool(self._disk_problem):
            if problem:
                _log.error("%r: recording stopped: %s; calls go on unrecorded", self, problem)
            else:
                _log.warning("%r: recording resumes, %d bytes free", self, self.free_bytes)
        self._disk_problem = problem

    # ---- crash repair ----------------------------------------------------

    async def recover(self, calls: Iterable[CallRecord]) -> list[RecordingRecord]:
        """Repair the recordings of calls the last run left open; the rows to store for them.

        ``calls`` are the failed CDRs of ``RecordWriter.recover_open_calls``.
        Each of their recordings becomes a valid WAV of all the audio it
        holds (its header counted only up to its last rewrite, see
        :func:`media.repair_recording`) and gets the row its finish would
        have written, dated by the file's last write: the API serves it and
        retention treats it like any other. Blocking file work: on a thread.
        """
        return await asyncio.to_thread(self._recover, list(calls))

    def _recover(self, calls: list[CallRecord]) -> list[RecordingRecord]:
        records: list[RecordingRecord] = []
        for call in calls:
            number = misses = 0
            # A recording that failed to open leaves a gap in the numbers: look one past it.
            while misses < 2:
                number += 1
                try:
                    recording_id, path = self.recording_for(call.call_id, call.arrived_at, number)
                except ValueError:
                    break  # not a call id this store names files by
                if self.resolve(self.relative(path)) != path:
                    misses += 1  # missing, or reached through a symbolic link: not followed
                    continue
                misses = 0
                record = self._repair(call.call_id, recording_id, path)
                if record is not None:
                    records.append(record)
        if records:
            _log.warning(
                "%r: repaired %d recordings of calls the previous run left open", self, len(records)
            )
        return records

    def _repair(self, call_id: str, recording_id: str, path: Path) -> RecordingRecord | None:
        try:
            written = path.stat().st_mtime
            finished = repair_recording(path)
        except ValueError as exc:
            _log.warning("%r: %s; left as it is", self, exc)
            return None
        except OSError as exc:
            _log.error("%r: cannot repair %s (%s)", self, path, exc)
            self.errors += 1
            return None
        return RecordingRecord(
            id=recording_id,
            call_id=call_id,
            path=self.relative(path),
            duration_s=finished.duration_s,
            size_bytes=finished.size_bytes,
            sha256=finished.sha256,
            channels=finished.channels,
            created_at=datetime.fromtimestamp(written, UTC),
        )

    # ---- retention -------------------------------------------------------

    async def apply_retention(self, storage: Storage, now: datetime) -> RetentionResult:
        """Delete recordings created more than ``retention_days`` before ``now``, then orphans.

        Rows go first, in one transaction, then the files. In that order a
        crash between the two leaves only orphan files (disk space, nothing
        points at them); the other order would leave rows, and API links,
        to audio that no longer exists. CDRs keep their ``recording_id``.

        Orphans are ``.wav`` files under the root last written before the
        same cutoff that no row names: a failed deletion, a crash between
        the steps above, a file whose row never came. A file a row names is
        kept whatever its age, and a symbolic link is neither followed nor
        removed.
        """
        if self.retention_days is None:
            return RetentionResult()
        cutoff = now - timedelta(days=self.retention_days)
        gone = await storage.delete_recordings_before(cutoff)
        result = RetentionResult()
        if gone:
            result = await asyncio.to_thread(self._unlink, [r.path for r in gone])
        orphans, orphan_errors = await self._remove_orphans(storage, cutoff.timestamp())
        result = RetentionResult(
            len(gone), result.files, result.missing, result.errors + orphan_errors, orphans
        )
        self.deleted += result.files
        self.missing += result.missing
        self.orphans += result.orphans
        self.errors += result.errors
        if result != RetentionResult():
            _log.info(
                "%r: retention removed %d recordings older than %s and %d orphan files "
                "(%d files already gone, %d errors)",
                self,
                result.rows,
                cutoff.isoformat(),
                result.orphans,
                result.missing,
                result.errors,
            )
        return result

    def _unlink(self, stored: Iterable[str]) -> RetentionResult:
        files = missing = errors = 0
        folders: set[Path] = set()
        for entry in stored:
            candidate = Path(entry)
            path = (candidate if candidate.is_absolute() else self.root / candidate).resolve()
            if not path.is_relative_to(self.root) or path == self.root:
                _log.error("%r: retention will not delete outside the root: %s", self, entry)
                errors += 1
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                missing += 1
            except OSError as exc:
                _log.error("%r: cannot delete %s (%s); it is now an orphan", self, path, exc)
                errors += 1
                continue
            else:
                files += 1
            folders.add(path.parent)
        self._prune(folders)
        return RetentionResult(0, files, missing, errors)

    async def _remove_orphans(self, storage: Storage, before: float) -> tuple[int, int]:
        """Remove the old files no row names; (removed, errors)."""
        old = await asyncio.to_thread(self._old_files, before)
        if not old:
            return 0, 0
        # Rows hold the path relative to the root (or, written by hand, absolute).
        forms = {path: (path.relative_to(self.root).as_posix(), str(path)) for path in old}
        named = await storage.named_recording_paths([f for pair in forms.values() for f in pair])
        orphans = [path for path, pair in forms.items() if not named.intersection(pair)]
        if not orphans:
            return 0, 0
        return await asyncio.to_thread(self._unlink_orphans, orphans, before)

    def _old_files(self, before: float) -> list[Path]:
        """Regular ``.wav`` files under the root last modified before ``before``; links skipped."""
        found: list[Path] = []
        folders = [self.root]
        while folders:
            folder = folders.pop()
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            folders.append(Path(entry.path))
                        elif (
                            entry.name.endswith(".wav")
                            and entry.is_file(follow_symlinks=False)
                            and entry.stat(follow_symlinks=False).st_mtime < before
                        ):
                            found.append(Path(entry.path))
            except FileNotFoundError:
                continue  # no recording yet, or a folder pruned meanwhile
        return found

    def _unlink_orphans(self, orphans: Sequence[Path], before: float) -> tuple[int, int]:
        removed = errors = 0
        folders: set[Path] = set()
        for path in orphans:
            *names, name = path.relative_to(self.root).parts
            try:
                folder = _open_folder(self.root, names)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    _log.error("%r: will not delete orphan %s: %s", self, path, exc)
                    errors += 1
                continue
            try:
                status = os.stat(name, dir_fd=folder, follow_symlinks=False)
                # Checked again where it is deleted: the walk gave a name, not the file.
                if status.st_mtime < before and stat.S_ISREG(status.st_mode):
                    os.unlink(name, dir_fd=folder)
                    removed += 1
                    folders.add(path.parent)
            except FileNotFoundError:
                pass
            except OSError as exc:
                _log.error("%r: cannot delete orphan %s (%s)", self, path, exc)
                errors += 1
            finally:
                os.close(folder)
        self._prune(folders)
        return removed, errors

    def _prune(self, folders: set[Path]) -> None:
        """Remove date folders left empty, deepest first, never the root."""
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            while folder != self.root and folder.is_relative_to(self.root):
                try:
                    folder.rmdir()
                except OSError:
                    break  # not empty (or gone): its parents are not empty either
                folder = folder.parent

    async def run_retention(
        self,
        storage: Storage,
        every: float = 3600.0,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Apply retention now and then every ``every`` seconds, until cancelled.

        A failed pass (database down) is logged and counted; the next one
        catches up, since the cutoff is computed afresh.
        """
        while True:
            try:
                await self.apply_retention(storage, clock())
            except Exception:
                self.errors += 1
                _log.exception("%r: retention pass failed; retrying in %s s", self, every)
            await asyncio.sleep(every)


def _open_folder(root: Path, names: Sequence[str]) -> int:
    """A descriptor of ``root/names...``, following no symbolic link below the root."""
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in names:
            child = os.open(
                name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder
            )
            os.close(folder)
            folder = child
    except BaseException:
        os.close(folder)
        raise
    return folder


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing ancestor: the disk it will be on."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def recording_store_for(config: Config) -> RecordingStore:
    """The store ``config.recordings`` describes (``recordings/`` under data_dir by default)."""
    section = config.recordings
    return RecordingStore(
        section.dir if section.dir is not None else config.data_dir / "recordings",
        section.path_template,
        retention_days=section.retention_days,
        min_free_bytes=section.min_free_mb * 1024 * 1024,
    )
