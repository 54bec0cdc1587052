"""What making a call's end durable at once costs, and how long a SIGKILL can still cost it.

Run: ``.venv/bin/python bench/storage_call_end.py`` (from the repository root).

The engine's writer path per call, paced at ``--rate`` calls a second (125
by default, 450,000 busy-hour call attempts): ``call_started`` when the
call arrives, then at its end six ``submit_event`` and ``submit_call`` with
``ended_at``, which also puts the CDR and its events in the open-call log by
group commit. The RecordWriter writes to SQLite (``synchronous=FULL``) as in
``acd serve``. Two runs, same pacing:

- ``records only``: the calls are not noted by ``call_started``, so nothing
  reaches the open-call log: the batching alone;
- ``durable end``: the engine's path, open note and "finished" entry.

Printed per run: the event-loop thread's CPU time per call (``thread_time``
of the loop's thread over the run, everything included: submitting, the
flush task, the group commits' hand-offs; the fsyncs run on the journal's
thread); the process's CPU per call (all threads); and, for the durable
run, the window: from ``submit_call`` returning to the fsync of the entry
holding that CDR having returned (p50, p99, max). A SIGKILL inside that
window costs the call its real record, as docs/storage.md says.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from acd.storage import RecordWriter, SqliteStorage
from bench.storage_inserts import make_call


def _observe_fsyncs(writer: RecordWriter, done: dict[str, float]) -> None:
    """Note when each "finished" entry's fsync returned (bench instrumentation only).

    The open-call log's Journal does its writes on its own thread through
    ``_append``; wrapping that one method is the only way to see when a
    given entry became durable without changing what is measured.
    """
    journal: Any = writer._open_calls._journal
    append: Callable[[Sequence[dict[str, Any]]], None] = journal._append

    def timed(entries: Sequence[dict[str, Any]]) -> None:
        append(entries)
        now = time.perf_counter()
        for entry in entries:
            if entry.get("op") == "finished":
                done[entry["call_id"]] = now

    journal._append = timed


async def run(
    scratch: Path, name: str, rate: float, seconds: float, durable: bool
) -> dict[str, float]:
    storage = SqliteStorage(scratch / f"{name}.db")
    await storage.open()
    writer = RecordWriter(storage, scratch / f"journal-{name}")
    await writer.start()
    done: dict[str, float] = {}
    _observe_fsyncs(writer, done)
    count = int(rate * seconds)
    calls = [make_call(n) for n in range(count)]
    submitted: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    cpu0, proc0 = time.thread_time(), time.process_time()
    start = loop.time()
    for n, (call, events) in enumerate(calls):
        # Paced like arrivals; each call arrives and ends in one step here,
        # which is the same work as arriving now and ending minutes later.
        delay = start + n / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if durable:
            writer.call_started(call.call_id, call.sip_call_id, call.arrived_at)
        for event in events:
            writer.submit_event(event)
        writer.submit_call(call)
        submitted[call.call_id] = time.perf_counter()
    await writer.flush()
    cpu, proc = time.thread_time() - cpu0, time.process_time() - proc0
    await writer.stop()
    await storage.close()
    result = {"loop_us": cpu / count * 1e6, "process_us": proc / count * 1e6}
    if durable:
        if len(done) != count:
            raise RuntimeError(f"only {len(done)} of {count} call ends were fsynced")
        window = sorted((done[i] - t) * 1e3 for i, t in submitted.items())
        result |= {
            "p50_ms": statistics.median(window),
            "p99_ms": window[int(len(window) * 0.99) - 1],
            "max_ms": window[-1],
        }
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=125.0, help="calls per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="per run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="acd-bench-", dir=Path.cwd()) as tmp:
        scratch = Path(tmp)
        base = await run(scratch, "base", args.rate, args.seconds, durable=False)
        end = await run(scratch, "durable", args.rate, args.seconds, durable=True)
    print(f"{args.rate:g} calls/s for {args.seconds:g} s; one call = CDR + 6 events")
    print(f"{'run':<14} {'loop CPU/call':>14} {'process CPU/call':>17}")
    for name, r in (("records only", base), ("durable end", end)):
        print(f"{name:<14} {r['loop_us']:>11.0f} us {r['process_us']:>14.0f} us")
    extra = end["loop_us"] - base["loop_us"]
    print(f"durable end costs the loop {extra:.0f} us per call")
    print(
        f"window, submit_call to fsynced: p50 {end['p50_ms']:.2f} ms, "
        f"p99 {end['p99_ms']:.2f} ms, max {end['max_ms']:.2f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
