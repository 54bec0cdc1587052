"""The RecordWriter: the hot path hands records over and moves on; none is lost.

Records wait in memory for at most ``flush_interval`` (or until
``batch_size`` have gathered) and are written as one transaction. When a
write fails the batch goes to the journal, and from then on every batch
does, in order, until a replay of the whole journal succeeds: the database
then sees the records in the order they were submitted, and the journal is
emptied. Replays are retried with exponential backoff.

The writer also owns opening the storage. A database that is down when the
engine starts is retried with the same backoff until it answers; then the
journal is replayed. A database that goes away later is noticed by the
first failed write and retried the same way (the PostgreSQL pool makes new
connections once the server is back). The log has one WARNING when the
database becomes unavailable and one INFO when it answers again, not a line
per attempt, and the storage redacts any password from what is logged.

Records are "settled" once they are in the database or fsynced in the
journal; ``flush`` waits for that, and ``stop`` does it for everything.

The end of a call does not wait for the batch to be durable. When the CDR
of a call noted by ``call_started`` arrives with ``ended_at``, the writer
also appends it, with the call's events and recording submitted before
it, to the open-call log as one "finished" entry; the log's group commit
fsyncs it on its own thread within a few milliseconds, while the batch
waits for its flush interval. After a SIGKILL, recovery writes those
records, so a call that ended just before the kill keeps its real
disposition and its events (docs/storage.md says what window remains).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from ._base import Storage
from ._journal import Journal, OpenCall, OpenCallLog
from ._model import (
    AgentSession,
    CallbackRecord,
    CallEvent,
    CallRecord,
    Disposition,
    HangupSide,
    Record,
    RecordingRecord,
    from_json,
    to_json,
)

__all__ = ["RecordWriter"]

_log = logging.getLogger(__name__)


class RecordWriter:
    """Batches CDRs, queue events, recordings and agent sessions into storage.

    Files live in ``journal_dir`` (``data_dir/journal``): ``records.jsonl``
    holds batches the database refused, ``open-calls.jsonl`` the calls in
    progress. ``rejected.jsonl`` receives the rare record that the database
    refuses even while it answers (bad data): it is logged and set aside
    rather than blocking every record behind it.

    Lifecycle: ``await start()`` (replays a journal left by the previous
    run), ``await recover_open_calls()``, then ``submit_*`` from anywhere on
    the loop, and ``await stop()`` at shutdown.
    """

    def __init__(
        self,
        storage: Storage,
        journal_dir: Path,
        *,
        flush_interval: float = 0.2,
        batch_size: int = 500,
        retry_initial: float = 0.5,
        retry_max: float = 10.0,
        write_timeout: float = 30.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.storage = storage
        self.journal_dir = Path(journal_dir)
        self._journal = Journal(self.journal_dir / "records.jsonl")
        self._rejected = Journal(self.journal_dir / "rejected.jsonl")
        self._open_calls = OpenCallLog(self.journal_dir / "open-calls.jsonl")
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._write_timeout = write_timeout
        self._stop_timeout = stop_timeout
        self._buffer: list[Record] = []
        # Events and recordings of calls in progress, kept until the CDR ends the call.
        self._ending: dict[str, list[Record]] = {}
        self._in_flight = 0
        self._submitted = 0
        self._settled = 0
        self._replayed = 0  # journal entries already written during the current replay
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        # Starting from the clock keeps seq increasing across restarts too.
        self._seq = itertools.count(time.time_ns() // 1000)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._retry_delay = retry_initial
        self._next_retry = 0.0
        self._opened = False
        self._down_since: float | None = None
        self.available: bool | None = None
        """Whether the database answered the last attempt; None before the first."""
        self.write_failures = 0
        self.rejected = 0
        self.lost = 0

    # ---- the hot path: no awaits, no I/O ---------------------------------

    def submit_call(self, record: CallRecord) -> None:
        """Queue a CDR. One with ``ended_at`` set ends the call, durably at once.

        For a call noted by ``call_started``, the CDR and the call's events
        and recording submitted so far go to the open-call log by group
        commit (no waiting here), and the call's note is closed once the
        batch holding the CDR is settled.
        """
        self._submit(record)
        if record.ended_at is not None and self._open_calls.is_open(record.call_id):
            records = self._ending.pop(record.call_id, [])
            records.append(record)
            self._open_calls.finished(record.call_id, [to_json(r) for r in records])

    def submit_event(self, event: CallEvent) -> None:
        """Queue a queue event, numbering its ``seq`` in submission order."""
        event = replace(event, seq=next(self._seq))
        self._submit(event)
        self._keep_for_end(event.call_id, event)

    def submit_recording(self, recording: RecordingRecord) -> None:
        self._submit(recording)
        self._keep_for_end(recording.call_id, recording)

    def _keep_for_end(self, call_id: str | None, record: Record) -> None:
        if call_id is not None and self._open_calls.is_open(call_id):
            self._ending.setdefault(call_id, []).append(record)

    def submit_callback(self, callback: CallbackRecord) -> None:
        """Queue a callback request's latest state (journaled, like the rest, in an outage)."""
        self._submit(callback)

    def submit_session(self, session: AgentSession) -> None:
        self._submit(session)

    def _submit(self, record: Record) -> None:
        if self._stopping:
            raise RuntimeError("the RecordWriter is stopping; records can no longer be submitted")
        self._buffer.append(record)
        self._submitted += 1
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    def call_started(
        self,
        call_id: str,
        sip_call_id: str,
        arrived_at: datetime,
        *,
        caller_number: str | None = None,
        did: str | None = None,
    ) -> None:
        """Note a call in progress; a CDR with ``ended_at`` for it later closes the note.

        The note reaches the disk by group commit within a few milliseconds:
        the hot path does not wait for the fsync. If the process is killed
        before the CDR is safe, ``recover_open_calls`` on the next start
        writes a failed CDR for the call.
        """
        self._open_calls.started(OpenCall(call_id, sip_call_id, arrived_at, caller_number, did))

    @property
    def pending(self) -> int:
        """Records submitted but not yet in the database (in memory or in the journal)."""
        return len(self._buffer) + self._in_flight + self.journaled

    @property
    def journaled(self) -> int:
        """Records waiting in the journal for the database to come back."""
        return max(0, self._journal.entries - self._replayed)

    # ---- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        """Open the journals and the storage, replay what a previous run left, start flushing.

        A storage that cannot be opened is not an error here: records are
        journaled, and the flush task keeps trying to open it.
        """
        if self._task is not None:
            return
        await self._journal.open()
        await self._rejected.open()
        await self._open_calls.open()
        if await self._open_storage() and self._journal.entries:
            _log.info("replaying %d journaled records", self._journal.entries)
            await self._replay()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="record-writer")

    async def recover_open_calls(self) -> list[CallRecord]:
        """Settle every call the previous run left open; return the failed CDRs written.

        A call that had ended (its final records reached the open-call log)
        is restored from those records: its real CDR and events. Any other
        gets a failed CDR with no ``ended_at`` (the end was never seen), so
        if the real CDR did reach the database or the journal it is kept.
        Writes are idempotent, so restoring records already stored repeats
        nothing.
        """
        orphans = list(self._open_calls.orphans.values())
        failed: list[CallRecord] = []
        restored = 0
        for call in orphans:
            records = self._restorable(call)
            if records:
                restored += 1
                for record in records:
                    self._submit(record)
                continue
            record = CallRecord(
                call_id=call.call_id,
                sip_call_id=call.sip_call_id,
                arrived_at=call.arrived_at,
                caller_number=call.caller_number,
                did=call.did,
                disposition=Disposition.FAILED,
                hangup_side=HangupSide.SYSTEM,
            )
            failed.append(record)
            self._submit(record)
        await self.flush()
        self._open_calls.ended([call.call_id for call in orphans])
        await self._open_calls.settle()
        if restored:
            _log.warning(
                "restored %d calls that had ended just before the previous run was killed",
                restored,
            )
        if failed:
            _log.warning("closed %d calls left open by the previous run as failed", len(failed))
        return failed

    @staticmethod
    def _restorable(call: OpenCall) -> list[Record]:
        """The final records of an orphan that had ended; empty if it had not (or they are bad)."""
        try:
            records = [from_json(entry) for entry in call.records]
        except ValueError as exc:
            _log.error("call %s: its final records are unreadable (%s)", call.call_id, exc)
            return []
        if not any(isinstance(r, CallRecord) and r.ended_at is not None for r in records):
            return []
        return records

    async def flush(self) -> None:
        """Wait until everything submitted so far is in the database or the journal.

        Open-call notes from ``call_started`` are on disk too when it returns.
        """
        target = self._submitted
        if self._settled < target:
            if self._task is None or self._task.done():
                raise RuntimeError("the RecordWriter is not running")
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append((target, waiter))
            self._wake.set()
            await waiter
        await self._open_calls.settle()

    async def ends_on_disk(self) -> None:
        """Wait until every call start and end submitted so far is fsynced in the open-call log.

        Unlike ``flush`` this does not wait for the database: it is the
        point from which a SIGKILL no longer costs those calls their real
        records.
        """
        await self._open_calls.settle()

    async def stop(self) -> None:
        """Settle every record (database if it answers in time, else journal), then close."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await self._task
        finally:
            self._task = None
            await self._open_calls.close()
            await self._journal.close()
            await self._rejected.close()

    # ---- the flush task --------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._stopping and len(self._buffer) < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._flush_interval)
            self._wake.clear()
            if self._stopping:
                await self._final_flush()
                return
            try:
                if loop.time() >= self._next_retry:
                    if not self._opened:
                        await self._open_storage()
                    if self._opened and self.journaled:
                        await self._replay()
                await self._flush_buffer()
            except Exception:
                # The journal's disk failing mid-replay, say: records stay
                # where they are (memory or journal) and the next round retries.
                _log.exception("record writer: unexpected failure; retrying")
                self._schedule_retry(reset=False)

    async def _flush_buffer(self) -> None:
        while self._buffer and not self._stopping:
            batch = self._take()
            if not self._writable() or not await self._to_database(batch, self._write_timeout):
                await self._to_journal(batch)

    def _take(self) -> list[Record]:
        batch, self._buffer = self._buffer[: self._batch_size], self._buffer[self._batch_size :]
        self._in_flight = len(batch)
        return batch

    async def _final_flush(self) -> None:
        # One attempt each, bounded by stop_timeout: a shutdown must not hang
        # on a database that is gone. Whatever does not make it is journaled.
        while self._buffer:
            batch = self._take()
            if not self._writable() or not await self._to_database(batch, self._stop_timeout):
                await self._to_journal(batch)
        await self._open_calls.settle()

    def _writable(self) -> bool:
        # Behind a journal, a batch must wait its turn to keep the order.
        return self._opened and not self.journaled

    async def _to_database(self, batch: Sequence[Record], timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._write(batch), timeout)
        except Exception as exc:
            self.write_failures += 1
            if await self.storage.ping():
                _log.warning(
                    "storage write of %d records failed (%s): journaling",
                    len(batch),
                    self._describe(exc),
                )
            else:
                self._storage_down(exc)
            self._schedule_retry(reset=True)
            return False
        self._storage_up()
        self._settle(batch)
        return True

    # ---- the database's availability ---------------------------------------

    async def _open_storage(self) -> bool:
        """Open the storage (a no-op once open); on failure, schedule the next try."""
        try:
            await asyncio.wait_for(self.storage.open(), self._write_timeout)
        except Exception as exc:
            self._storage_down(exc)
            self._schedule_retry(reset=False)
            return False
        self._opened = True
        self._storage_up()
        return True

    def _describe(self, exc: BaseException) -> str:
        return self.storage.redact(repr(exc))

    def _storage_down(self, exc: BaseException) -> None:
        if self.available is not False:
            self._down_since = time.monotonic()
            _log.warning(
                "storage %r unavailable (%s): journaling records in %s until it answers, "
                "retrying every %g s at most",
                self.storage,
                self._describe(exc),
                self._journal.path,
                self._retry_max,
            )
        else:
            _log.debug("storage %r still unavailable (%s)", self.storage, self._describe(exc))
        self.available = False

    def _storage_up(self) -> None:
        if self.available is False:
            down = time.monotonic() - (self._down_since or time.monotonic())
            _log.info(
                "storage %r answers again after %.1f s; %d journaled records to replay",
                self.storage,
                down,
                self.journaled,
            )
        self.available = True
        self._down_since = None

    async def _write(self, batch: Sequence[Record]) -> None:
        calls: list[CallRecord] = []
        events: list[CallEvent] = []
        recordings: list[RecordingRecord] = []
        sessions: list[AgentSession] = []
        callbacks: list[CallbackRecord] = []
        for record in batch:
            if isinstance(record, CallEvent):
                events.append(record)
            elif isinstance(record, CallRecord):
                calls.append(record)
            elif isinstance(record, RecordingRecord):
                recordings.append(record)
            elif isinstance(record, CallbackRecord):
                callbacks.append(record)
            else:
                sessions.append(record)
        await self.storage.write_batch(calls, events, recordings, sessions, callbacks)

    async def _to_journal(self, batch: list[Record]) -> None:
        while True:
            try:
                await self._journal.append([to_json(record) for record in batch])
            except OSError:
                if self._stopping:
                    self._lose(batch, "journal write failed at shutdown")
                    return
                # A full or failing disk: keep the records in memory and try
                # again; the alternative is dropping CDRs.
                _log.exception("journal write of %d records failed; retrying", len(batch))
                await asyncio.sleep(self._retry_max)
                continue
            except Exception:
                # Not the disk: retrying cannot help, and must not block the
                # records behind these. The log keeps what the records held.
                self._lose(batch, "journal could not encode records")
                return
            self._settle(batch)
            return

    def _lose(self, batch: Sequence[Record], why: str) -> None:
        _log.critical("%s; %d records lost: %r", why, len(batch), batch, exc_info=True)
        self.lost += len(batch)
        self._settle(batch, durable=False)

    def _settle(self, batch: Sequence[Record], *, durable: bool = True) -> None:
        self._in_flight = 0
        self._settled += len(batch)
        ended = [r.call_id for r in batch if isinstance(r, CallRecord) and r.ended_at is not None]
        # A lost CDR leaves its call open, so the next start restores it from
        # its "finished" entry, or writes a failed one.
        if ended and durable:
            closing = [i for i in ended if self._open_calls.is_open(i)]
            for call_id in closing:
                self._ending.pop(call_id, None)
            self._open_calls.ended(closing)
        while self._waiters and self._waiters[0][0] <= self._settled:
            _, waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)

    def _schedule_retry(self, *, reset: bool) -> None:
        if reset:
            self._retry_delay = self._retry_initial
        self._next_retry = asyncio.get_running_loop().time() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, self._retry_max)

    async def _replay(self) -> bool:
        """Write the whole journal to the database in order, then empty it.

        On a failure the journal stays as it is, and the next attempt starts
        from its beginning again: writes are idempotent upserts.
        """
        offset = 0
        self._replayed = 0
        while True:
            if self._stopping:
                # Shutdown must stay quick; the next start replays it all.
                self._replayed = 0
                return False
            entries, offset = await self._journal.read(offset, self._batch_size)
            if not entries:
                break
            records = []
            for entry in entries:
                try:
                    records.append(from_json(entry))
                except ValueError as exc:
                    _log.error("journal: skipped a malformed record (%s)", exc)
            if not await self._replay_batch(records):
                self._replayed = 0
                self._schedule_retry(reset=False)
                return False
            self._replayed += len(entries)
            if len(self._buffer) >= self._batch_size:
                # New records join the journal's tail, keeping memory bounded
                # and the order intact while a long journal is replayed.
                await self._to_journal(self._take())
        await self._journal.truncate()
        _log.info("journal replayed: %d records written", self._replayed)
        self._replayed = 0
        self._retry_delay = self._retry_initial
        return True

    async def _replay_batch(self, records: list[Record]) -> bool:
        try:
            await asyncio.wait_for(self._write(records), self._write_timeout)
        except Exception as exc:
            self.write_failures += 1
            if not await self.storage.ping():
                self._storage_down(exc)
                return False
        else:
            self._storage_up()
            return True
        # The database answers but refused the batch: find the records at
        # fault one by one. One that fails three times while the database
        # keeps answering is bad data: it is set aside, not retried forever.
        for record in records:
            for _ in range(3):
                try:
                    await asyncio.wait_for(self._write([record]), self._write_timeout)
                    break
                except Exception as exc:
                    error = exc
                    if not await self.storage.ping():
                        return False
            else:
                reason = self._describe(error)
                _log.error("storage refused a record; kept in %s: %s", self._rejected.path, reason)
                await self._rejected.append([{**to_json(record), "error": reason}])
                self.rejected += 1
        return True
