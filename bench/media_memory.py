"""Memory per bridged, recorded call, measured while traffic flows.

Run: ``.venv/bin/python bench/media_memory.py [--calls 1000] [--seconds 3]`` from the
repository root. The engine opens N calls (two :class:`~media.RtpLeg`\\ s, a
:class:`~media.Bridge` and a :class:`~media.Recorder` each, WAVs in a temporary
directory) on uvloop; the load generator of ``bench/media_relay.py`` (a separate
process) sends 20 ms packets on both sides of every call; after ``--seconds`` of
traffic, with each recorder holding its share of packets between flushes, memory is
sampled:

* traced: Python heap allocated since before the calls were opened (tracemalloc),
  per call, once traffic has flowed and the writer thread has caught up (tracemalloc
  slows it several-fold, so a snapshot taken mid-traffic measures its backlog),
  then the same without each open WAV's 8 KiB ``BufferedWriter`` buffer (the "file
  buffers" the 64 KiB budget leaves out);
* packets held between flushes: not sampled (under tracemalloc the engine lags, so
  a sample says more about the measurement than the recorder) but bounded: one
  flush interval of both channels' 20 ms packets in the lists plus the copy the
  writer thread is working on, each priced at its bytes object, its arrival float
  and two list slots;
* RSS: the process's resident size over the same span, per call (an upper bound:
  it includes tracemalloc's own tables, the allocator's slack and memory freed but
  not returned to the system);
* where the traced memory sits, by source file.

The target is 64 KiB per call beyond file buffers.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import resource
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HOST = "127.0.0.1"
FLUSH_INTERVAL = 0.5  # the Recorder default
RELAY_BENCH = Path(__file__).resolve().parent / "media_relay.py"


def rss_bytes() -> int:
    """Resident set size now (Linux ``/proc``; falls back to the peak)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def measure(calls: int, seconds: float) -> dict[str, object]:
    from media import PCMA, PCMU, Bridge, PortPool, Recorder, RtpLeg
    from media.recorder import _writer

    generator = await asyncio.create_subprocess_exec(
        sys.executable,
        str(RELAY_BENCH),
        "--generator",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert generator.stdin is not None and generator.stdout is not None
    caller_port, agent_port = json.loads(await generator.stdout.readline())
    directory = tempfile.TemporaryDirectory(prefix="media-memory-")
    pool = PortPool(20000, 20000 + 4 * calls + 8)

    rss_before = rss_bytes()
    tracemalloc.start()
    traced_before = tracemalloc.get_traced_memory()[0]
    legs: list[RtpLeg] = []
    bridges: list[Bridge] = []
    recorders: list[Recorder] = []
    for number in range(calls):
        a = await RtpLeg.open(pool, HOST)
        b = await RtpLeg.open(pool, HOST)
        a.configure((HOST, caller_port), PCMU, 0)
        b.configure((HOST, agent_port), PCMA, 8)
        recorder = Recorder(Path(directory.name) / f"call-{number}.wav")
        bridges.append(Bridge(a, b, recorder))
        recorders.append(recorder)
        legs += [a, b]
    pairs = [
        [legs[i].local_address[1], legs[i + 1].local_address[1]] for i in range(0, 2 * calls, 2)
    ]
    job = {"pairs": pairs, "seconds": seconds + 1.0}
    generator.stdin.write(json.dumps(job).encode() + b"\n")
    await generator.stdin.drain()
    await generator.stdout.readline()  # the generator's first tick
    counts = json.loads(await generator.stdout.readline())
    await generator.wait()
    # tracemalloc slows the engine several-fold, so it is seconds behind the
    # generator, its packets queued in the kernel: wait until it has taken every
    # packet and the writer thread has caught up, so what remains is what the
    # calls hold, not a backlog of the measurement's own making.
    previous = -1
    while (received := sum(leg.packets_received for leg in legs)) != previous:
        previous = received
        await asyncio.sleep(0.5)
    while _writer()._work_queue.qsize():
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    traced = tracemalloc.get_traced_memory()[0] - traced_before
    rss = rss_bytes() - rss_before
    open_files = sum(1 for r in recorders if r._timeline._file is not None)
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    # Between flushes a recorder holds one interval of both channels' packets,
    # and the writer a copy of the previous interval's list.
    sample = b"\x80" * 172
    per_packet = sys.getsizeof(sample) + sys.getsizeof(1.0) + 2 * 8  # packet, arrival, slots
    held = 2 * FLUSH_INTERVAL * 50 * 2 * per_packet

    for bridge in bridges:
        bridge.stop()
    results = await asyncio.gather(*(r.close() for r in recorders), return_exceptions=True)
    for leg in legs:
        leg.close()
    directory.cleanup()
    by_file: dict[str, int] = {}
    for stat in snapshot.statistics("filename"):
        name = stat.traceback[0].filename
        key = name.split("/work/main/")[-1] if "/work/main/" in name else Path(name).name
        by_file[key] = by_file.get(key, 0) + stat.size
    return {
        "calls": calls,
        "traced": traced,
        "file_buffers": open_files * io.DEFAULT_BUFFER_SIZE,
        "rss": rss,
        "received": received,
        "sent": counts["sent"],
        "held": held,
        "failed": sum(1 for r in results if isinstance(r, BaseException)),
        "by_file": sorted(by_file.items(), key=lambda item: -item[1])[:8],
    }


def main() -> None:
    """Print memory per call, then where it sits."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    import uvloop

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    row = uvloop.run(measure(args.calls, args.seconds))
    calls = row["calls"]
    assert isinstance(calls, int)
    traced, buffers, rss, held = (
        int(row[k])  # type: ignore[call-overload]
        for k in ("traced", "file_buffers", "rss", "held")
    )
    structural = (traced - buffers) / calls
    kib = 1024
    out = sys.stdout
    out.write(f"calls                                    {calls:>10,}\n")
    out.write(
        f"packets sent / received by the legs      {row['sent']:>10,} / {row['received']:,}\n"
    )
    out.write(f"traced per call, after traffic           {traced / calls / kib:>10.1f} KiB\n")
    out.write(f"  without the WAV's file buffer          {structural / kib:>10.1f} KiB\n")
    out.write(f"packets held between flushes (bound)     {held / kib:>10.1f} KiB\n")
    total = structural + held
    out.write(f"per call while traffic flows             {total / kib:>10.1f} KiB (target 64)\n")
    out.write(f"RSS per call, after traffic              {rss / calls / kib:>10.1f} KiB\n")
    out.write(f"recordings failed                        {row['failed']:>10}\n")
    out.write("traced by source file (KiB per call):\n")
    for name, size in row["by_file"]:  # type: ignore[attr-defined]
        out.write(f"  {name:<44} {size / calls / 1024:>8.1f}\n")


if __name__ == "__main__":
    main()
