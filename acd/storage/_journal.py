"""Local files that hold what the database has not got yet.

``Journal`` is an append-only file of JSON lines. ``append`` returns only
after the lines are fsynced, so whatever it acknowledged survives a crash or
a power cut. File work runs on the journal's own thread, which also keeps
appends, reads and truncations in the order they were asked for.

``append_soon`` is the group commit for the hot path: the event loop only
hands the entry over (a lock, a list append, and at most one job queued to
the thread per commit); the thread encodes, writes and fsyncs whatever has
gathered, and wakes the loop only when someone waits in ``settle``.

A crash in the middle of an append can leave a torn last line. Opening the
journal cuts it off, with a warning: its append never returned, so nobody was
told it was safe, and the records it held were lost with the process anyway.

``OpenCallLog`` uses a journal to remember which calls are in progress, so
that calls in flight when the process was killed can be closed on restart,
and which have just ended, with their final records, so that a call that
ended moments before the kill is restored as it really ended.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from ._model import dump_json, format_time, parse_time

__all__ = ["Journal", "OpenCall", "OpenCallLog"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_CHUNK = 1 << 16


def _encode(entry: dict[str, Any]) -> bytes:
    return dump_json(entry).encode() + b"\n"


def _decodes(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _fsync_directory(path: Path) -> None:
    # A new or renamed file is only durable once its directory entry is.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """An append-only, fsynced file of JSON objects, one per line.

    ``entries`` counts the lines in the file (only the journal's thread
    changes it). ``read(offset)`` pages through it by byte offset, so a
    journal larger than memory can be replayed. ``append_soon`` is a group
    commit for callers that must not wait: entries queued while one fsync
    runs share the next one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries = 0
        self._file: BinaryIO | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The group commit's state, shared by the loop and the journal's thread.
        self._lock = threading.Lock()
        self._queued: list[dict[str, Any]] = []
        self._commit_queued = False
        self._given = 0  # entries given to append_soon
        self._done = 0  # of those, written and fsynced (or failed, and logged)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        if self._executor is None:
            raise RuntimeError(f"{self!r} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def open(self) -> None:
        """Open (creating it if needed), cut a torn tail, and count the entries."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="acd-journal")
        self._loop = asyncio.get_running_loop()
        await self._run(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        self._file = open(self.path, "ab")  # noqa: SIM115 - held open across calls
        if created:
            _fsync_directory(self.path.parent)
        size = self._file.seek(0, os.SEEK_END)
        good, lines = self._scan(size)
        if good < size:
            _log.warning(
                "%s: cut %d bytes of a torn last entry left by a crash", self.path, size - good
            )
            os.ftruncate(self._file.fileno(), good)
            os.fsync(self._file.fileno())
        self.entries = lines

    def _scan(self, size: int) -> tuple[int, int]:
        """The length of the file up to its last whole, parseable line, and its line count."""
        lines = 0
        good = 0  # just past the last newline
        with open(self.path, "rb") as reader:
            position = 0
            while chunk := reader.read(_CHUNK):
                count = chunk.count(b"\n")
                if count:
                    lines += count
                    good = position + chunk.rfind(b"\n") + 1
                position += len(chunk)
            if good:
                # The last whole line can still be garbage when a crash wrote
                # the block holding its newline but not the blocks before it.
                begin = self._line_start(reader, good)
                reader.seek(begin)
                if not _decodes(reader.read(good - begin)):
                    good = begin
                    lines -= 1
        return good, lines

    @staticmethod
    def _line_start(reader: BinaryIO, end: int) -> int:
        """Where the line ending at ``end`` begins (lines are short: read backwards a little)."""
        step = 4096
        position = end - 1
        while position > 0:
            begin = max(0, position - step)
            reader.seek(begin)
            found = reader.read(position - begin).rfind(b"\n")
            if found >= 0:
                return begin + found + 1
            position = begin
        return 0

    async def append(self, entries: Sequence[dict[str, Any]]) -> None:
        """Write ``entries`` and fsync; only then return.

        The entries are encoded on the journal's thread, not the event loop:
        the caller must not change them until this returns.
        """
        if entries:
            await self._run(self._append, entries)

    def _append(self, entries: Sequence[dict[str, Any]]) -> None:
        assert self._file is not None
        self._file.write(b"".join(_encode(entry) for entry in entries))
        self._file.flush()
        os.fsync(self._file.fileno())
        self.entries += len(entries)

    def append_soon(self, entry: dict[str, Any]) -> None:
        """Queue ``entry`` (not to be changed afterwards) for the next group commit; no waiting.

        On a closed journal the entry is dropped with an error logged: the
        hot path calling this must not fail for it.
        """
        executor = self._executor
        if executor is None:
            _log.error("%s is closed: an entry was not written: %r", self.path, entry)
            return
        with self._lock:
            self._queued.append(entry)
            self._given += 1
            if self._commit_queued:
                return  # the queued commit has not started: it takes this entry too
            self._commit_queued = True
        executor.submit(self._group_commit)

    def _group_commit(self) -> None:
        """On the journal's thread: write and fsync everything queued, once."""
        with self._lock:
            batch, self._queued = self._queued, []
            self._commit_queued = False
        try:
            self._append(batch)
        except Exception:
            _log.exception("%s: could not write %d entries", self.path, len(batch))
        with self._lock:
            self._done += len(batch)
            wake = bool(self._waiters)
        if wake and self._loop is not None:
            self._loop.call_soon_threadsafe(self._release_waiters)

    def _release_waiters(self) -> None:
        with self._lock:
            ready = [w for target, w in self._waiters if target <= self._done]
            self._waiters = [(t, w) for t, w in self._waiters if t > self._done]
        for waiter in ready:
            if not waiter.done():
                waiter.set_result(None)

    async def settle(self) -> None:
        """Wait until everything given to ``append_soon`` so far is on disk (or failed, logged)."""
        with self._lock:
            if self._done >= self._given:
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append((self._given, waiter))
        await waiter

    async def read(self, offset: int = 0, limit: int = 500) -> tuple[list[dict[str, Any]], int]:
        """Up to ``limit`` entries from byte ``offset``, and the offset after them.

        A line that is not a JSON object (damage in the middle of the file,
        which fsync ordering should make impossible) is skipped with an error
        logged, rather than blocking every entry behind it.
        """
        return await self._run(self._read, offset, limit)

    def _read(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        entries: list[dict[str, Any]] = []
        with open(self.path, "rb") as reader:
            reader.seek(offset)
            while len(entries) < limit:
                line = reader.readline()
                if not line.endswith(b"\n"):
                    break  # end of file (a torn tail was cut at open)
                start, offset = offset, offset + len(line)
                try:
                    entry = json.loads(line)
                except ValueError:
                    entry = None
                if isinstance(entry, dict):
                    entries.append(entry)
                else:
                    _log.error("%s: skipped an unreadable entry at byte %d", self.path, start)
        return entries, offset

    async def truncate(self) -> None:
        """Empty the journal (everything in it has reached the database)."""
        await self._run(self._truncate)

    def _truncate(self) -> None:
        assert self._file is not None
        os.ftruncate(self._file.fileno(), 0)
        os.fsync(self._file.fileno())
        self.entries = 0

    async def rewrite(self, entries: Sequence[dict[str, Any]]) -> None:
        """Replace the whole journal with ``entries`` atomically (write aside, rename)."""
        await self._run(self._rewrite, entries)

    def _rewrite(self, entries: Sequence[dict[str, Any]]) -> None:
        assert self._file is not None
        aside = self.path.with_name(self.path.name + ".new")
        with open(aside, "wb") as out:
            out.write(b"".join(_encode(entry) for entry in entries))
            out.flush()
            os.fsync(out.fileno())
        os.replace(aside, self.path)
        _fsync_directory(self.path.parent)
        self._file.close()
        self._file = open(self.path, "ab")  # noqa: SIM115 - held open across calls
        self.entries = len(entries)

    async def close(self) -> None:
        """Finish queued group commits, close the file and stop the thread."""
        if self._executor is None:
            return
        await self.settle()
        executor, self._executor = self._executor, None
        await asyncio.get_running_loop().run_in_executor(executor, self._close)
        executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(frozen=True, slots=True)
class OpenCall:
    """What is known of a call the moment it arrives, kept until its CDR is safe.

    ``records`` is empty while the call is in progress. Once it has ended it
    holds the call's final records (events, recording, the CDR last) in
    ``to_json`` form, on disk until the database or the records journal has
    them.
    """

    call_id: str
    sip_call_id: str
    arrived_at: datetime
    caller_number: str | None = None
    did: str | None = None
    records: tuple[dict[str, Any], ...] = ()

    def entries(self) -> list[dict[str, Any]]:
        """The log entries that say what is known of the call (for a compaction)."""
        opened = {
            "op": "open",
            "call_id": self.call_id,
            "sip_call_id": self.sip_call_id,
            "arrived_at": format_time(self.arrived_at),
            "caller_number": self.caller_number,
            "did": self.did,
        }
        if not self.records:
            return [opened]
        return [opened, _finished_entry(self.call_id, self.records)]


def _finished_entry(call_id: str, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"op": "finished", "call_id": call_id, "records": list(records)}


class OpenCallLog:
    """The calls in progress, on disk: "open" at arrival, "finished" at the end, "end" once safe.

    "finished" carries the call's final records (CDR and events) the moment
    the call ends, by group commit, while the same records wait in the
    writer's memory for the next database batch; "end" follows once the
    database or the records journal holds them. After a SIGKILL the calls
    with no "end" are ``orphans``: a finished orphan is restored from its
    records, the others get failed CDRs. The file is compacted (rewritten
    with just the calls not yet safe) when it opens and whenever it has
    grown well past them.
    """

    def __init__(self, path: Path, *, compact_after: int = 10_000) -> None:
        self._journal = Journal(path)
        self._open: dict[str, OpenCall] = {}
        self.orphans: dict[str, OpenCall] = {}
        self._compact_after = compact_after
        self._compacting: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self._journal.open()
        offset = 0
        while True:
            entries, offset = await self._journal.read(offset, 10_000)
            if not entries:
                break
            for entry in entries:
                self._apply(entry)
        if self.orphans:
            _log.warning("%d calls were in progress when the engine stopped", len(self.orphans))
        await self._compact()

    def _apply(self, entry: dict[str, Any]) -> None:
        call_id = entry.get("call_id")
        if not isinstance(call_id, str):
            return
        op = entry.get("op")
        if op == "end":
            self.orphans.pop(call_id, None)
            return
        if op == "finished":
            call = self.orphans.get(call_id)
            records = entry.get("records")
            if call is None or not isinstance(records, list):
                _log.error("ignored a finished entry of no open call: %r", call_id)
            else:
                self.orphans[call_id] = replace(call, records=tuple(records))
            return
        try:
            arrived_at = parse_time(entry["arrived_at"])
            assert arrived_at is not None
            self.orphans[call_id] = OpenCall(
                call_id,
                entry["sip_call_id"],
                arrived_at,
                entry.get("caller_number"),
                entry.get("did"),
            )
        except (KeyError, TypeError, ValueError, AssertionError):
            _log.error("ignored a malformed open-call entry: %r", entry)

    def started(self, call: OpenCall) -> None:
        """Remember ``call`` as in progress; on disk within one group commit."""
        self._open[call.call_id] = call
        self._journal.append_soon(call.entries()[0])

    def finished(self, call_id: str, records: Sequence[dict[str, Any]]) -> None:
        """Keep the final records of an open call; on disk within one group commit.

        ``records`` (``to_json`` dicts, not to be changed afterwards) are
        what recovery writes for the call if the process dies before
        ``ended``. A call not open is ignored.
        """
        call = self._open.get(call_id)
        if call is None:
            return
        self._open[call_id] = replace(call, records=tuple(records))
        self._journal.append_soon(_finished_entry(call_id, records))

    def ended(self, call_ids: Sequence[str]) -> None:
        """Forget the calls whose CDRs are now safe (calls not open are ignored)."""
        for call_id in call_ids:
            if self._open.pop(call_id, None) or self.orphans.pop(call_id, None):
                self._journal.append_soon({"op": "end", "call_id": call_id})
        still_open = len(self._open) + len(self.orphans)
        if self._journal.entries > max(self._compact_after, 4 * still_open) and (
            self._compacting is None or self._compacting.done()
        ):
            self._compacting = asyncio.get_running_loop().create_task(self._compact())

    def is_open(self, call_id: str) -> bool:
        return call_id in self._open

    async def _compact(self) -> None:
        # Settle first: a rewrite from this snapshot then includes every
        # queued entry's effect, and nothing queued is written after it.
        await self._journal.settle()
        calls = [*self.orphans.values(), *self._open.values()]
        try:
            await self._journal.rewrite([entry for call in calls for entry in call.entries()])
        except OSError:
            _log.exception("%r: compaction failed; the file keeps growing", self._journal)

    async def settle(self) -> None:
        """Wait until every started/finished/ended call so far is on disk."""
        await self._journal.settle()
        if self._compacting is not None:
            await asyncio.shield(self._compacting)

    async def close(self) -> None:
        await self.settle()
        await self._journal.close()
