"""IVR call set-up under SIPp: calls per second to the first prompt packet.

Starts ``acd serve`` (the CLI, uvloop, as an operator would) with a trunk on
127.0.0.1 and a route to a flow whose first node plays a prompt, unrecorded,
pinned to CPU 0; SIPp and this script run on CPU 1. For each offered rate,
SIPp places rate x ``--seconds`` short calls (bench/sipp/ivr_setup.xml: INVITE, 200,
ACK, ``--hold-ms``, BYE) and the script measures each call on the wire:

- INVITE -> 200: SIPp reads the wall clock when it sends the INVITE and when
  it takes the 200, and logs both with the engine's RTP port from the 200's
  SDP (``-trace_logs``);
- 200 -> first prompt packet: every call's SDP points its media at one UDP
  socket of this script, which keeps the kernel's receive timestamp
  (SO_TIMESTAMPNS, so this script's own scheduling does not count) of the
  first packet of each RTP stream, keyed by source port and SSRC. A call's
  first packet is the first new stream from its engine port after its
  INVITE (ports are reused only after thousands of calls).

Run each rate for more than 32 s: every ended call leaves transactions and a
terminated dialog behind for 64*T1 (RFC 3261 Timers J and L), and only past
that does the engine hold its steady-state load of objects, whose garbage
collections set the tail of the set-up times. Shorter runs flatter the p99.

Both clocks are CLOCK_REALTIME on the same machine. Per rate it prints the
achieved rate (answers per second over the span of answers), failures,
p50/p99/max of both intervals and of their sum, the engine's CPU share
(/proc/PID/stat) and, as a cross-check, the share of set-ups the engine's
own ``acd_setup_time_seconds`` histogram counts under 50 ms.

    .venv/bin/python bench/ivr_setup.py [--rates 100,200,300,400] [--seconds 40] [--repeat 1]

``--py-spy FILE --py-spy-rate R`` records a py-spy profile of the engine while
rate R runs (collapsed stacks, for flamegraph.pl or speedscope).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.calibrate import machine_line  # noqa: E402
from tests.conftest import RunningEngine, free_port, start_engine, write_config  # noqa: E402

SCENARIO = ROOT / "bench" / "sipp" / "ivr_setup.xml"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python 3.11 lacks the name
TARGET_RATE = 300
TARGET_P99 = 0.050
ENGINE_CPU, LOAD_CPU = 0, 1

FLOW = """\
# The benchmark's flow: the first node plays a prompt at once, then the
# menu waits; the caller hangs up long before it times out.
name: bench
start: welcome
nodes:
  welcome:
    type: play
    prompts: [welcome]
    next: menu
  menu:
    type: menu
    prompt: [main_menu]
    options:
      "1": bye
    timeout: 30
    retries: 1
    on_failure: bye
  bye:
    type: hangup
    prompt: [thank_you_goodbye]
"""


class FirstPackets:
    """A UDP socket on a thread that keeps the first packet time of every RTP stream."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.packets = 0
        self._seen: set[tuple[int, int]] = set()
        self.streams: dict[int, list[float]] = {}  # engine port -> first-packet times
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rtp-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ancillary = socket.CMSG_SPACE(16)
        while not self._stop.is_set():
            try:
                data, cmsgs, _flags, addr = self.sock.recvmsg(2048, ancillary)
            except TimeoutError:
                continue
            self.packets += 1
            if len(data) < 12:
                continue
            arrived = time.time()
            for level, kind, value in cmsgs:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    seconds, nanoseconds = struct.unpack("qq", value[:16])
                    arrived = seconds + nanoseconds / 1e9
            key = (addr[1], int.from_bytes(data[8:12], "big"))
            if key not in self._seen:
                self._seen.add(key)
                self.streams.setdefault(addr[1], []).append(arrived)

    def first_after(self, port: int, since: float) -> float | None:
        """When the first stream from ``port`` that began after ``since`` began."""
        for arrived in self.streams.get(port, ()):
            if arrived >= since:
                return arrived
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@dataclass
class Step:
    """One rate's results."""

    rate: int
    calls: int
    ok: int
    failed: int
    no_prompt: int
    achieved: float
    setup: list[float]
    to_prompt: list[float]
    total: list[float]
    cpu: float
    engine_under_50ms: float | None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def setup_histogram(engine: RunningEngine) -> tuple[float, float]:
    """(set-ups under 50 ms, all set-ups) from the engine's /metrics."""
    under = total = 0.0
    for line in engine.http_text("/metrics").splitlines():
        if line.startswith('acd_setup_time_seconds_bucket{le="0.05"}'):
            under = float(line.split()[-1])
        elif line.startswith("acd_setup_time_seconds_count"):
            total = float(line.split()[-1])
    return under, total


def wait_idle(engine: RunningEngine, timeout: float = 60.0) -> None:
    """Until the engine holds no call (the previous step's BYEs are all through)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resources = engine.http_json("/api/v1/live/resources")
        if resources.get("calls") == 0 and resources.get("rtp_ports_in_use") == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"engine still busy after {timeout} s: {resources}")


def pin(pid: int, cpu: int) -> bool:
    """Pin every thread of ``pid`` to ``cpu``; False when the machine has one CPU."""
    if (os.cpu_count() or 1) < 2:
        return False
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {cpu})
    return True


def run_step(
    engine: RunningEngine,
    listener: FirstPackets,
    rate: int,
    calls: int,
    hold_ms: int,
    work: Path,
    profile: Path | None,
) -> Step:
    tag = f"{rate}-{time.monotonic_ns()}"
    log_file = work / f"setup-{tag}.log"
    stat_file = work / f"stat-{tag}.csv"
    cmd = [
        "sipp",
        f"127.0.0.1:{engine.sip_port}",
        "-sf",
        str(SCENARIO),
        "-s",
        "100",
        "-key",
        "rtp_port",
        str(listener.port),
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port()),
        "-r",
        str(rate),
        "-m",
        str(calls),
        "-l",
        str(max(rate * 2, 100)),
        "-d",
        str(hold_ms),
        "-timeout",
        f"{int(calls / rate * 3 + 60)}s",
        "-timeout_error",
        "-trace_logs",
        "-log_file",
        str(log_file),
        "-trace_stat",
        "-stf",
        str(stat_file),
        "-fd",
        "1",
        "-nostdin",
    ]
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(LOAD_CPU), *cmd]
    spy: subprocess.Popen[bytes] | None = None
    if profile is not None:
        spy = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(engine.process.pid),
                "--format",
                "raw",
                "--output",
                str(profile),
                "--rate",
                "250",
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    under_before, count_before = setup_histogram(engine)
    cpu_before = cpu_seconds(engine.process.pid)
    started = time.perf_counter()
    subprocess.run(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    elapsed = time.perf_counter() - started
    cpu = (cpu_seconds(engine.process.pid) - cpu_before) / elapsed
    if spy is not None:
        spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
        spy.wait(timeout=60)
    under_after, count_after = setup_histogram(engine)
    with stat_file.open() as f:
        last = list(csv.DictReader(f, delimiter=";"))[-1]
    ok, failed = int(last["SuccessfulCall(C)"]), int(last["FailedCall(C)"])
    line = re.compile(r"setup (\d+) m=audio (\d+) (\d+)\S* (\d+)\S* (\d+)\S* (\d+)")
    setup: list[float] = []
    to_prompt: list[float] = []
    total: list[float] = []
    answers: list[float] = []
    no_prompt = 0
    for match in line.finditer(log_file.read_text() if log_file.exists() else ""):
        _number, port, inv_s, inv_us, ok_s, ok_us = (int(g) for g in match.groups())
        invite = inv_s + inv_us / 1e6
        answered = ok_s + ok_us / 1e6
        answers.append(answered)
        setup.append(answered - invite)
        first = listener.first_after(port, invite)
        if first is None:
            no_prompt += 1
            continue
        to_prompt.append(first - answered)
        total.append(first - invite)
    answers.sort()
    span = answers[-1] - answers[0] if len(answers) > 1 else 0.0
    achieved = (len(answers) - 1) / span if span > 0 else 0.0
    counted = count_after - count_before
    share = (under_after - under_before) / counted if counted else None
    return Step(rate, calls, ok, failed, no_prompt, achieved, setup, to_prompt, total, cpu, share)


def ms(values: list[float]) -> str:
    return "/".join(
        f"{1000 * percentile(values, q):.1f}" if values else "-" for q in (0.5, 0.99, 1.0)
    )


def report(step: Step) -> None:
    share = "-" if step.engine_under_50ms is None else f"{100 * step.engine_under_50ms:.1f}%"
    print(
        f"offered {step.rate:4d}/s: {step.ok}/{step.calls} ok, {step.failed} failed, "
        f"{step.no_prompt} without prompt, {step.achieved:6.1f}/s achieved, "
        f"engine CPU {100 * step.cpu:5.1f}% | ms p50/p99/max: "
        f"INVITE->200 {ms(step.setup)}, 200->RTP {ms(step.to_prompt)}, "
        f"INVITE->RTP {ms(step.total)} | engine histogram <= 50 ms: {share}",
        flush=True,
    )


def verdict(steps: list[Step]) -> None:
    """Does some run at >= 300/s have 0 failures and p99 set-up < 50 ms?"""
    held = [
        s
        for s in steps
        if s.rate >= TARGET_RATE
        and s.failed == 0
        and s.no_prompt == 0
        and s.achieved >= 0.97 * s.rate
        and percentile(s.setup, 0.99) < TARGET_P99
    ]
    strict = [s for s in held if percentile(s.total, 0.99) < TARGET_P99]
    best = max((s.achieved for s in held), default=0.0)
    status = "HOLDS" if held else "DOES NOT HOLD"
    print(
        f"target >= {TARGET_RATE}/s with p99 INVITE->200 < {1000 * TARGET_P99:.0f} ms: "
        f"{status} (best sustained {best:.0f}/s); with p99 INVITE->first RTP < "
        f"{1000 * TARGET_P99:.0f} ms too: {'yes' if strict else 'no'} "
        f"at {', '.join(str(s.rate) for s in strict) or 'no rate'}"
    )


def write_engine_config(work: Path, rtp_low: int, rtp_high: int) -> Path:
    ivr_dir = work / "ivr"
    ivr_dir.mkdir()
    (ivr_dir / "bench.yaml").write_text(FLOW)
    extra = "\n".join(
        [
            "trunks:",
            "  - {name: carrier, addresses: [127.0.0.1]}",
            "routes:",
            '  - {match: "100", ivr: bench, record: false}',
            f"ivr_dir: {ivr_dir}",
            f"prompts: {{dir: {ROOT / 'config' / 'prompts'}}}",
            f"media: {{rtp_ports: [{rtp_low}, {rtp_high}]}}",
            "calls: {max_calls: 20000}",
        ]
    )
    return write_config(work / "acd.yaml", agents=2, extra=extra)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,200,300,400")
    parser.add_argument(
        "--seconds",
        type=float,
        default=40.0,
        help="seconds per rate; beyond 32 s (Timer L/J, the dialog's linger) is steady state",
    )
    parser.add_argument("--hold-ms", type=int, default=200, help="caller stays after the ACK")
    parser.add_argument("--repeat", type=int, default=1, help="run the series this many times")
    parser.add_argument("--rtp-ports", default="20000,59999")
    parser.add_argument("--py-spy", type=Path, help="write a py-spy profile of one rate here")
    parser.add_argument("--py-spy-rate", type=int, default=0)
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install sip-tester)")
        return 2
    rates = [int(r) for r in args.rates.split(",")]
    low, high = (int(p) for p in args.rtp_ports.split(","))
    print(machine_line(), flush=True)
    work = Path(tempfile.mkdtemp(prefix="acd-bench-ivr-"))
    engine = start_engine(write_engine_config(work, low, high), work)
    pinned = pin(engine.process.pid, ENGINE_CPU)
    if pinned:
        os.sched_setaffinity(0, {LOAD_CPU})
    listener = FirstPackets()
    load = os.getloadavg()
    print(
        f"engine pid {engine.process.pid} on CPU {ENGINE_CPU if pinned else 'any'}, "
        f"SIPp and listener on CPU {LOAD_CPU if pinned else 'any'}; python "
        f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load[0]:.2f} "
        f"at start; {args.seconds:.0f} s per rate, caller stays {args.hold_ms} ms",
        flush=True,
    )
    steps: list[Step] = []
    try:
        for _ in range(args.repeat):
            for rate in rates:
                wait_idle(engine)
                profile = args.py_spy if args.py_spy and rate == args.py_spy_rate else None
                calls = int(rate * args.seconds)
                step = run_step(engine, listener, rate, calls, args.hold_ms, work, profile)
                steps.append(step)
                report(step)
    finally:
        listener.close()
        engine.stop()
    print(f"load average at end {os.getloadavg()[0]:.2f} (the machine is shared)")
    verdict(steps)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
