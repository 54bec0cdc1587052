"""Relay throughput of bridged, recorded calls: one engine process, one load-generator process.

Run: ``.venv/bin/python bench/media_relay.py [--calls 500 1000] [--seconds 10]`` from the
repository root. For each call count N the engine opens 2N :class:`~media.RtpLeg`\\ s on
uvloop, bridges them in pairs with a :class:`~media.Recorder` each (WAVs in a temporary
directory), and a separate generator process sends a 20 ms packet to both legs of every
call every 20 ms: the caller side PCMU, the agent side PCMA, so every relayed packet is
transcoded as well as re-stamped. The engine is pinned to CPU 0 and the generator to
CPU 1 (the machine has two cores).

The generator plays every caller from one socket and every agent from another (each
call still has its own SSRCs and its own pair of engine ports), so it can drain what
the engine relays back with two sockets instead of 2N. Figures, after a 2 s warm-up,
over the measured window:

* relayed pps: packets the engine's legs sent, per wall-clock second;
* pps per CPU-second: the same packets over the engine process's CPU time (all its
  threads, the recorder's writer included), i.e. what one core sustains;
* loss: packets the generator sent that did not come back relayed;
* recorders: how many closed cleanly, total bytes, and how long closing them took.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.calibrate import machine_line

HOST = "127.0.0.1"
FRAME = 0.02
_pack = struct.Struct("!BBHII").pack


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(0, {cpu})


def _big_buffers(sock: socket.socket) -> None:
    for option in ("SO_RCVBUFFORCE", "SO_RCVBUF"):
        try:
            sock.setsockopt(socket.SOL_SOCKET, getattr(socket, option), 8 << 20)
            return
        except (OSError, AttributeError):
            continue


# --------------------------------------------------------------------------
# The load generator (a separate process)


def generate() -> None:
    """Send 20 ms packets to every leg named on stdin; report counts on stdout as JSON."""
    _pin(1)
    callers = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    agents = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for sock in (callers, agents):
        sock.bind((HOST, 0))
        sock.setblocking(False)
        _big_buffers(sock)
    print(json.dumps([callers.getsockname()[1], agents.getsockname()[1]]), flush=True)
    job = json.loads(sys.stdin.readline())
    pairs: list[list[int]] = job["pairs"]
    seconds: float = job["seconds"]
    caller_payload = b"\x5a" * 160  # PCMU
    agent_payload = b"\xd5" * 160  # PCMA
    streams = []
    for number, (a_port, b_port) in enumerate(pairs):
        streams.append((callers, (HOST, a_port), 0, 0x10000000 + number, caller_payload))
        streams.append((agents, (HOST, b_port), 8, 0x20000000 + number, agent_payload))
    sent = received = 0
    print(json.dumps("started"), flush=True)
    start = time.monotonic()
    deadline = start + seconds
    tick = 0
    buffers = (callers, agents)
    while True:
        due = start + tick * FRAME
        if due >= deadline:
            break
        sequence = tick & 0xFFFF
        timestamp = (tick * 160) & 0xFFFF_FFFF
        for sock, address, pt, ssrc, payload in streams:
            try:
                sock.sendto(_pack(0x80, pt, sequence, timestamp, ssrc) + payload, address)
                sent += 1
            except BlockingIOError:
                pass
        tick += 1
        # Drain what the engine relayed until the next tick is due.
        while True:
            wait = start + tick * FRAME - time.monotonic()
            if wait <= 0:
                break
            readable, _, _ = select.select(buffers, (), (), wait)
            for sock in readable:
                while True:
                    try:
                        sock.recv(2048)
                    except BlockingIOError:
                        break
                    received += 1
    end = time.monotonic() + 0.5
    while (wait := end - time.monotonic()) > 0:
        readable, _, _ = select.select(buffers, (), (), wait)
        for sock in readable:
            while True:
                try:
                    sock.recv(2048)
                except BlockingIOError:
                    break
                received += 1
    cpu = time.process_time()
    print(json.dumps({"sent": sent, "received": received, "cpu": cpu}), flush=True)


# --------------------------------------------------------------------------
# The engine (this process)


async def engine(
    calls: int, seconds: float, warmup: float, record: bool = True
) -> dict[str, float]:
    from media import PCMA, PCMU, Bridge, PortPool, Recorder, RtpLeg

    generator = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--generator",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert generator.stdin is not None and generator.stdout is not None
    caller_port, agent_port = json.loads(await generator.stdout.readline())
    pool = PortPool(20000, 20000 + 4 * calls + 8)
    legs = []
    bridges = []
    recorders = []
    directory = tempfile.TemporaryDirectory(prefix="media-relay-")
    for number in range(calls):
        a = await RtpLeg.open(pool, HOST)
        b = await RtpLeg.open(pool, HOST)
        a.configure((HOST, caller_port), PCMU, 0)
        b.configure((HOST, agent_port), PCMA, 8)
        recorder = Recorder(Path(directory.name) / f"call-{number}.wav") if record else None
        bridges.append(Bridge(a, b, recorder))
        legs += [a, b]
        if recorder is not None:
            recorders.append(recorder)
    pairs = [
        [legs[i].local_address[1], legs[i + 1].local_address[1]] for i in range(0, len(legs), 2)
    ]
    generator.stdin.write(
        json.dumps({"pairs": pairs, "seconds": warmup + seconds}).encode() + b"\n"
    )
    await generator.stdin.drain()
    await generator.stdout.readline()  # the generator's first tick

    await asyncio.sleep(warmup)
    relayed_0 = sum(leg.packets_sent for leg in legs)
    cpu_0, wall_0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    relayed_1 = sum(leg.packets_sent for leg in legs)
    cpu_1, wall_1 = time.process_time(), time.monotonic()
    counts = json.loads(await generator.stdout.readline())
    await generator.wait()

    for bridge in bridges:
        bridge.stop()
    closing = time.monotonic()
    results = await asyncio.gather(*(r.close() for r in recorders), return_exceptions=True)
    close_seconds = time.monotonic() - closing
    for leg in legs:
        leg.close()
    finished = [r for r in results if not isinstance(r, BaseException)]
    directory.cleanup()
    relayed = relayed_1 - relayed_0
    return {
        "calls": calls,
        "relayed_pps": relayed / (wall_1 - wall_0),
        "pps_per_cpu": relayed / max(cpu_1 - cpu_0, 1e-9),
        "cpu_share": (cpu_1 - cpu_0) / (wall_1 - wall_0),
        "sent": counts["sent"],
        "received": counts["received"],
        "loss": 1 - counts["received"] / max(counts["sent"], 1),
        "recorded_ok": len(finished),
        "recorded_bytes": sum(r.size_bytes for r in finished),
        "close_seconds": close_seconds,
        "errors": sum(r.errors for r in recorders),
        "generator_cpu": counts["cpu"] / (warmup + seconds + 0.5),
    }


def main() -> None:
    """Run the engine for each call count and print one row per count."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[500, 1000])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--generator", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generator:
        generate()
        return
    import uvloop

    _pin(0)
    print(machine_line(), flush=True)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    header = (
        f"{'calls':>6} {'legs':>6} {'relayed pps':>12} {'pps/CPU-s':>10} {'CPU':>5} "
        f"{'loss':>7} {'recordings':>11} {'MB':>6} {'close s':>8}\n"
    )
    sys.stdout.write(header)
    for calls in args.calls:
        row = uvloop.run(engine(calls, args.seconds, args.warmup))
        sys.stdout.write(
            f"{row['calls']:>6} {2 * row['calls']:>6} {row['relayed_pps']:>12,.0f} "
            f"{row['pps_per_cpu']:>10,.0f} {row['cpu_share']:>5.0%} {row['loss']:>7.2%} "
            f"{row['recorded_ok']:>5}/{row['calls']:<5} {row['recorded_bytes'] / 1e6:>6.1f} "
            f"{row['close_seconds']:>8.2f}\n"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
