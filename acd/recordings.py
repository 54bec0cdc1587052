"""Recording files on disk: where each goes, when it may be written, when it goes away.

``RecordingStore`` owns one directory tree. ``path_for`` turns a call into a
path under it from a template with date folders; ``can_record`` is the
free-disk guard the call path asks before starting a recorder (a refused
recording is logged and counted, and the call goes on without it);
``apply_retention`` deletes recordings older than the retention period,
database rows first, then files.

Every path that leaves this module, or that it is asked to open or delete,
is checked to lie inside the root: a template, a call id or a database row
cannot point it at another file on the machine.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Protocol

from .config import Config
from .storage import Storage

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
    """What one retention pass did: rows deleted, files removed, and the rest."""

    rows: int = 0
    files: int = 0
    missing: int = 0
    errors: int = 0


class RecordingStore:
    """The recordings directory: paths from a template, a free-disk guard, retention.

    ``retention_days`` None keeps recordings forever. ``disk_usage`` is
    ``shutil.disk_usage`` unless a test supplies a stand-in. The counters
    (``refused``, ``deleted``, ``missing``, ``errors``) and ``free_bytes``
    are for metrics to read.
    """

    def __init__(
        self,
        root: Path,
        path_template: str = DEFAULT_PATH_TEMPLATE,
        *,
        retention_days: int | None = None,
        min_free_bytes: int = 500 * 1024 * 1024,
        disk_usage: DiskUsage = shutil.disk_usage,
    ) -> None:
        if retention_days is not None and retention_days < 1:
            raise ValueError(f"retention_days must be at least 1, got {retention_days}")
        self.root = Path(root).resolve()
        self.path_template = check_template(path_template)
        self.retention_days = retention_days
        self.min_free_bytes = min_free_bytes
        self._disk_usage = disk_usage
        self.free_bytes: int | None = None
        self.refused = 0
        self.deleted = 0
        self.missing = 0
        self.errors = 0
        self._disk_ok = True

    def __repr__(self) -> str:
        return f"RecordingStore({str(self.root)!r})"

    def path_for(self, call_id: str, when: datetime) -> Path:
        """Where the call's recording goes; creates its folders.

        ``when`` (timezone-aware) fills the date folders in UTC, as every
        timestamp in storage is, so a folder never straddles a DST change.
        """
        if when.utcoffset() is None:
            raise ValueError(f"when must be timezone-aware: {when!r}")
        if not _SAFE_ID.fullmatch(call_id):
            raise ValueError(f"call id {call_id!r} cannot name a recording file")
        rendered = self.path_template.format(date=when.astimezone(UTC), call_id=call_id)
        path = self.root / _relative(rendered, self.path_template)
        if not path.resolve().is_relative_to(self.root):
            # A symlinked folder pointing out of the tree: refuse rather than follow.
            raise ValueError(f"{path} leads outside {self.root}")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def allocate(self, call_id: str, when: datetime) -> tuple[str, Path]:
        """A new recording of the call: its id and an empty file reserved for it.

        A call is recorded once per bridge, and a transferred call is bridged
        again (to the next agent or extension): its first recording keeps the
        call id, later ones are ``<call_id>-2``, ``<call_id>-3``... Each file
        is created exclusively, so no recording ever overwrites another, and
        the id matches the file name whatever the path template.
        """
        number = 1
        while True:
            recording_id = call_id if number == 1 else f"{call_id}-{number}"
            path = self.path_for(recording_id, when)
            try:
                path.touch(exist_ok=False)
            except FileExistsError:
                number += 1
                continue
            return recording_id, path

    def relative(self, path: Path) -> str:
        """``path`` relative to the root, as ``RecordingRecord.path`` should hold it.

        A relative path survives moving the recordings directory.
        """
        return Path(path).resolve().relative_to(self.root).as_posix()

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
        """True when the disk holding the root has at least ``min_free_bytes`` free.

        A refusal is counted in ``refused``; the log says when the disk goes
        low and when it recovers, not once per call, so a full disk at peak
        hour does not flood the log.
        """
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
        ok = not problem
        if not ok:
            self.refused += 1
        if ok != self._disk_ok:
            self._disk_ok = ok
            if ok:
                _log.warning("%r: recording resumes, %d bytes free", self, self.free_bytes)
            else:
                _log.error("%r: recording stopped: %s; calls go on unrecorded", self, problem)
        return ok

    # ---- retention -------------------------------------------------------

    async def apply_retention(self, storage: Storage, now: datetime) -> RetentionResult:
        """Delete recordings created more than ``retention_days`` before ``now``.

        Rows go first, in one transaction, then the files. In that order a
        crash between the two leaves only orphan files (disk space, nothing
        points at them); the other order would leave rows, and API links,
        to audio that no longer exists. CDRs keep their ``recording_id``.
        """
        if self.retention_days is None:
            return RetentionResult()
        cutoff = now - timedelta(days=self.retention_days)
        gone = await storage.delete_recordings_before(cutoff)
        if not gone:
            return RetentionResult()
        result = await asyncio.to_thread(self._unlink, [r.path for r in gone])
        result = RetentionResult(len(gone), result.files, result.missing, result.errors)
        self.deleted += result.files
        self.missing += result.missing
        self.errors += result.errors
        _log.info(
            "%r: retention removed %d recordings older than %s (%d files already gone, %d errors)",
            self,
            result.rows,
            cutoff.isoformat(),
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
