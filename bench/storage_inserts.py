"""Sustained inserts of call records with their events, per second, on each back end.

Run: ``.venv/bin/python bench/storage_inserts.py`` (from the repository root;
PostgreSQL needs its server binaries, see tests/pg.py). One "call" is what
the engine stores for an answered queue call: a CDR and six queue events
(ENTERQUEUE, RINGNOANSWER, RINGCANCELED, CONNECT, COMPLETECALLER and an
agent PAUSE), seven rows. Two ways in, on each back end:

- ``write_batch``: the storage interface alone, ``--calls-per-batch`` calls
  per transaction, back to back;
- ``RecordWriter``: what the engine does per call (``call_started``, six
  ``submit_event``, ``submit_call`` with ``ended_at``), with the writer's own
  batching and its fsynced open-call log. Submission pauses for a flush when
  more than ``--backlog`` records wait, as a busy engine's memory would
  force; the rate counts only calls settled in the database.

PostgreSQL is a private cluster started for the run with fsync on
(``PgCluster(durable=True)``), SQLite a file with ``synchronous=FULL``: the
figures are for commits that survive a power cut. Records are built before
the clock starts, so the figures are storage, not dataclass construction.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from acd.storage import (
    CallEvent,
    CallRecord,
    Disposition,
    EventType,
    HangupSide,
    PostgresStorage,
    RecordWriter,
    SqliteStorage,
    Storage,
)
from tests.pg import PgCluster, find_bindir

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
_EVENTS = (
    EventType.ENTERQUEUE,
    EventType.RINGNOANSWER,
    EventType.RINGCANCELED,
    EventType.CONNECT,
    EventType.COMPLETECALLER,
    EventType.PAUSE,
)


def make_call(n: int) -> tuple[CallRecord, list[CallEvent]]:
    """Call ``n`` with realistic field sizes: a UUID-like id, numbers, an IVR path."""
    arrived = T0 + timedelta(milliseconds=n)
    call = CallRecord(
        call_id=f"{n:08x}-7d2c-4c1e-9a55-0242ac120002",
        sip_call_id=f"{n:x}-a83f91c2@203.0.113.7",
        arrived_at=arrived,
        caller_number=f"+4420{n % 10_000_000:07d}",
        caller_name="Jane Caller",
        did="+442071234567",
        trunk="carrier-a",
        route="main",
        ivr_path=["welcome", "menu", "sales"],
        digits="1",
        variables={"account": f"A-{n}", "tier": "gold"},
        queue=("sales", "support", "billing")[n % 3],
        agent=f"10{n % 50:02d}",
        ring_attempts=2,
        queued_at=arrived + timedelta(seconds=9),
        answered_at=arrived + timedelta(seconds=21),
        ended_at=arrived + timedelta(seconds=205),
        disposition=Disposition.ANSWERED,
        hangup_side=HangupSide.CALLER,
        sip_cause=200,
        recording_id=f"rec-{n:08x}",
    )
    events = [
        CallEvent(
            call_id=call.call_id,
            at=arrived + timedelta(seconds=9 + 2 * i),
            event=kind,
            queue=call.queue,
            agent=call.agent,
            data={"position": 1, "wait": 2 * i},
            seq=i,
        )
        for i, kind in enumerate(_EVENTS)
    ]
    return call, events


def workload(count: int, first: int) -> list[tuple[CallRecord, list[CallEvent]]]:
    return [make_call(n) for n in range(first, first + count)]


@dataclass
class Result:
    backend: str
    path: str
    calls: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.calls / self.seconds


async def bench_write_batch(
    storage: Storage, seconds: float, per_batch: int, first: int
) -> tuple[int, float]:
    """Back-to-back transactions of ``per_batch`` calls for about ``seconds``."""
    batches: Iterator[list[tuple[CallRecord, list[CallEvent]]]] = (
        workload(per_batch, first + i * per_batch) for i in range(10**9)
    )
    done = 0
    spent = 0.0
    while spent < seconds:
        batch = next(batches)
        calls = [c for c, _ in batch]
        events = [e for _, es in batch for e in es]
        start = time.perf_counter()
        await storage.write_batch(calls, events)
        spent += time.perf_counter() - start
        done += len(batch)
    return done, spent


async def bench_writer(
    storage: Storage,
    journal: Path,
    seconds: float,
    batch_size: int,
    backlog: int,
    first: int,
) -> tuple[int, float]:
    """The engine's path for about ``seconds``, then the wait for the rest to settle."""
    writer = RecordWriter(storage, journal, batch_size=batch_size, flush_interval=0.05)
    await writer.start()
    chunk = 200
    pending = workload(chunk * 20, first)
    submitted = 0
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < seconds:
            if not pending:
                # Built outside the timed part would be better still, but a
                # pool large enough for PostgreSQL's rate costs gigabytes.
                pending = workload(chunk * 20, first + submitted)
            for call, events in pending[:chunk]:
                writer.call_started(call.call_id, call.sip_call_id, call.arrived_at)
                for event in events:
                    writer.submit_event(event)
                writer.submit_call(call)
            del pending[:chunk]
            submitted += chunk
            if writer.pending > backlog:
                await writer.flush()
            else:
                await asyncio.sleep(0)
        await writer.flush()
        elapsed = time.perf_counter() - start
        if writer.journaled or writer.write_failures:
            raise RuntimeError(f"{writer.write_failures} writes failed: the figure is not valid")
    finally:
        await writer.stop()
    return submitted, elapsed


async def run_backend(
    name: str,
    make: Callable[[], Storage],
    args: argparse.Namespace,
    scratch: Path,
) -> list[Result]:
    results = []
    async with make() as storage:
        calls, spent = await bench_write_batch(storage, args.seconds, args.calls_per_batch, 0)
        results.append(Result(name, f"write_batch, {args.calls_per_batch} calls/txn", calls, spent))
        for size in args.writer_batches:
            calls, spent = await bench_writer(
                storage,
                scratch / f"journal-{name}-{size}",
                args.seconds,
                size,
                args.backlog,
                10_000_000 * (1 + size),
            )
            results.append(Result(name, f"RecordWriter, batch_size={size}", calls, spent))
    return results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--calls-per-batch", type=int, default=500)
    parser.add_argument(
        "--writer-batches",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[500, 3500],
        help="RecordWriter batch_size values to try, in records (7 per call)",
    )
    parser.add_argument("--backlog", type=int, default=50_000, help="records")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    return parser.parse_args()


async def main() -> None:
    args = parse_args()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="acd-bench-") as tmp:
        scratch = Path(tmp)
        if args.backend in ("sqlite", "both"):
            results += await run_backend(
                "SQLite", lambda: SqliteStorage(scratch / "bench.db"), args, scratch
            )
        if args.backend in ("postgres", "both"):
            bindir = find_bindir()
            if bindir is None:
                raise SystemExit("PostgreSQL server binaries not found (see tests/pg.py)")
            cluster = PgCluster(bindir, durable=True)
            try:
                cluster.start()
                url = cluster.create_database("bench")
                results += await run_backend(
                    "PostgreSQL", lambda: PostgresStorage(url), args, scratch
                )
            finally:
                cluster.destroy()
    print(f"{'back end':<11} {'path':<32} {'calls':>9} {'calls/s':>9} {'rows/s':>9}")
    for r in results:
        print(f"{r.backend:<11} {r.path:<32} {r.calls:>9} {r.rate:>9,.0f} {r.rate * 7:>9,.0f}")


if __name__ == "__main__":
    asyncio.run(main())
