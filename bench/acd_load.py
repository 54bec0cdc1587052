"""The whole call path under SIPp, as an operator would load-test it.

Starts ``acd serve`` (the CLI, uvloop) pinned to CPU 0 with a trunk on
127.0.0.1, a queue and ``--agents`` agents; SIPp and this script run on
CPU 1. The agents' phones are SIPp processes in server mode
(bench/sipp/load_agent.xml), each registered (digest) for its share of the
agents and logged in over the API; they answer at once, echo the engine's
RTP back (``-rtp_echo``) and hang up after ``--talk`` seconds. The callers
are SIPp (bench/sipp/load_caller.xml): INVITE to the queue (or to an IVR
whose menu takes one RFC 4733 key, ``--ivr``), a real PCMU stream
(``rtp_stream``, looped) until the engine's BYE, and a hang-up of their own
after ``--patience`` seconds without an agent (an abandoned call).

For each offered rate it places rate x ``--seconds`` calls and prints, from
the engine's own call records (read back over the API once every call has
ended) and from SIPp:

- offered and achieved calls per second (answers by the engine over their
  span) and the BHCA that rate makes;
- connect rate (answered by an agent / offered), abandoned, failed and
  refused (503, overload control) calls, by the engine's reason, and the
  connect rate of the calls it accepted;
- wait to answer, queue entry to agent answer (the records' ``queued_at``
  to ``answered_at``): p50, p99 and max;
- INVITE -> 200 p99 (SIPp's response time, ``-trace_rtt``);
- engine CPU share and peak RSS (/proc), the load CPU's busy share (SIPp:
  near 100% there means the figures measure SIPp), event-loop lag p99 (the engine's
  ``event_loop_lag_seconds`` histogram, so "<= bucket"), RTP packets in and
  out per second and the engine's RTP loss.

The ceiling is the highest rate with connect >= 99.96 % and p99 wait
<= 100 ms. Calls last ``--talk`` seconds plus ringing; run each rate for
more than 32 s (``--seconds``, default 60): every ended call leaves
transactions and a terminated dialog for 64*T1, and only then is the
engine in its steady state.

``--hold R:S`` instead holds long calls: R calls a second that talk S
seconds, so the number of live calls ramps to R*S; every ``--every``
seconds it prints live calls, engine CPU and CPU per live call, RSS, RTP
loss and jitter as the engine's receivers see them (the agents echo what
the engine sends, so late or lost output shows there too), and the wait of
the callers answered in that interval.

``--flood N`` adds a SIPp sending N OPTIONS a second from one address
during every rate (the flood's answers are counted separately).

    .venv/bin/python bench/acd_load.py --rates 40,80,125 --seconds 60
    .venv/bin/python bench/acd_load.py --hold 10:200 --agents 2200
    .venv/bin/python bench/acd_load.py --rates 125 --profile /tmp/acd.txt

``--profile FILE`` records py-spy (raw collapsed stacks) of the engine
during the last rate. ``--smoke`` is the suite's short run: a few calls a
second for a few seconds, every figure still printed, and the exit status
says whether every call was answered.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.calibrate import machine_line  # noqa: E402
from tests.conftest import RunningEngine, free_port, start_engine  # noqa: E402

SIPP_DIR = ROOT / "bench" / "sipp"
ENGINE_CPU, LOAD_CPU = 0, 1
CONNECT_TARGET = 0.9996
WAIT_P99_TARGET = 0.100
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RTP_PORTS = (10000, 31999)  # below Linux's ephemeral range, where SIPp's ports come from
SIPP_BUFFER = 4 << 20  # SIPp's socket buffers (its default, 64 KB, overflows in bursts)

FLOW = """\
# The benchmark's IVR: a greeting that may be interrupted, a menu whose
# key 1 queues the call.
name: load
start: menu
nodes:
  menu:
    type: menu
    prompt: [main_menu]
    options:
      "1": queue
    timeout: 10
    retries: 1
    on_failure: bye
    barge_in: true
  queue:
    type: queue
    queue: load
    skills: {s: 1}
    next: bye
  bye:
    type: hangup
    prompt: [thank_you_goodbye]
"""


# -- machinery --------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def udp_drops(port: int) -> int:
    """Datagrams the kernel dropped at the UDP socket bound to ``port`` (its queue was full).

    The engine's SIP socket is the one that matters: a drop there is a
    request lost until its retransmission. (The callers' RTP sockets drop
    everything, as SIPp never reads what the engine sends them.)
    """
    drops = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 12 and int(fields[1].rpartition(":")[2], 16) == port:
                drops += int(fields[12])
    return drops


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_busy_seconds(cpu: int) -> float:
    """Seconds CPU ``cpu`` was busy since boot (/proc/stat: all but idle and iowait)."""
    for line in Path("/proc/stat").read_text().splitlines():
        name, *ticks = line.split()
        if name == f"cpu{cpu}":
            values = [int(tick) for tick in ticks]
            return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")
    return float("nan")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pin(pid: int, cpu: int) -> bool:
    """Pin every thread of ``pid`` to ``cpu``; False on a one-CPU machine."""
    if (os.cpu_count() or 1) < 2:
        return False
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), {cpu})
        except ProcessLookupError:
            continue
    return True


def on_load_cpu(cmd: list[str]) -> list[str]:
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(LOAD_CPU), *cmd]
    return cmd


def scrape(engine: RunningEngine) -> dict[str, float]:
    """The engine's /metrics as {name{labels}: value} (the figures this bench reads)."""
    values: dict[str, float] = {}
    for line in engine.http_text("/metrics").splitlines():
        if line.startswith("#") or not line:
            continue
        name, _, value = line.rpartition(" ")
        try:
            values[name] = float(value)
        except ValueError:
            continue
    return values


def lag_p99(before: dict[str, float], after: dict[str, float]) -> str:
    """The event-loop lag bucket holding the 99th percentile of the probes in between."""
    total = after.get("event_loop_lag_seconds_count", 0) - before.get(
        "event_loop_lag_seconds_count", 0
    )
    if total <= 0:
        return "-"
    for bound in LAG_BUCKETS:
        key = f'event_loop_lag_seconds_bucket{{le="{bound}"}}'
        if after.get(key, 0) - before.get(key, 0) >= 0.99 * total:
            return f"<={1000 * bound:g}ms"
    return ">5s"


class Sampler:
    """Samples the engine's RSS once a second on a thread; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except OSError:
                return

    def reset(self) -> None:
        self.peak = rss_mib(self.pid)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


# -- the centre ---------------------------------------------------------------------------


def password(user: str) -> str:
    return f"load-{user}-secret"


def write_engine_config(work: Path, args: argparse.Namespace, agents: list[str]) -> Path:
    ivr_dir = work / "ivr"
    ivr_dir.mkdir()
    (ivr_dir / "load.yaml").write_text(FLOW)
    record = "true" if args.record else "false"
    lines = [
        "sip:",
        "  domain: acd.local",
        "  transports: [udp]",
        "registrar:",
        "  max_expires: 7200",
        "  default_expires: 3600",
        "security:",
        "  auth_failures_per_minute: 1000",
        "agents:",
    ]
    for user in agents:
        lines += [
            f'  - username: "{user}"',
            f'    password: "{password(user)}"',
            "    skills: {s: 5}",
        ]
    lines += [
        "trunks:",
        "  - {name: carrier, addresses: [127.0.0.1]}",
        "routes:",
        f'  - {{match: "200", queue: load, record: {record}}}',
        f'  - {{match: "100", ivr: load, record: {record}}}',
        "queues:",
        "  load:",
        "    skills: {s: 1}",
        f"    strategy: {args.strategy}",
        "    ring_timeout: 15",
        f"    wrap_up: {args.wrap_up}",
        "    max_wait: 600",
        "    announce_every: 30",
        f"ivr_dir: {ivr_dir}",
        f"prompts: {{dir: {ROOT / 'config' / 'prompts'}}}",
        f"media: {{rtp_ports: [{RTP_PORTS[0]}, {RTP_PORTS[1]}]}}",
        f"calls: {{max_calls: {args.max_calls}{', ' + args.calls if args.calls else ''}}}",
        "recordings: {min_free_mb: 0}",
        f"logging: {{level: {os.environ.get('ACD_LOAD_LOG_LEVEL', 'INFO')}}}",
    ]
    if args.engine_config:
        lines += Path(args.engine_config).read_text().splitlines()
    path = work / "acd.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def caller_audio(work: Path) -> Path:
    """About 12 s of speech (the demo's prompts) as raw mu-law at 8 kHz, for rtp_stream."""
    from media.g711 import PCMU
    from media.wav import load_wav

    prompts = ROOT / "config" / "prompts"
    chunks = [
        PCMU.encode(load_wav(prompts / f"{name}.wav"))
        for name in ("welcome", "main_menu", "please_hold")
    ]
    path = work / "speech.ulaw"
    path.write_bytes(b"".join(chunks))
    return path


def scenario(work: Path, name: str, **values: int) -> Path:
    text = (SIPP_DIR / name).read_text()
    for key, value in values.items():
        text = text.replace(f'"{key}"', f'"{value}"')
    path = work / name
    path.write_text(text)
    return path


@dataclass
class AgentPhones:
    """SIPp processes answering as the agents, one per slice of them."""

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def start_agents(
    engine: RunningEngine, work: Path, agents: list[str], processes: int, talk_ms: int
) -> AgentPhones:
    """Register every agent from its phone's port, start the phones, log them in."""
    uas = scenario(work, "load_agent.xml", TALK=talk_ms)
    register = (SIPP_DIR / "register.xml").read_text().replace("Expires: 300", "Expires: 7200")
    (work / "register.xml").write_text(register)
    phones = AgentPhones()
    share = -(-len(agents) // processes)
    domain = f"127.0.0.1:{engine.sip_port}"
    for index in range(processes):
        mine = agents[index * share : (index + 1) * share]
        if not mine:
            break
        port, media = free_port(), free_port()
        inf = work / f"agents-{index}.csv"
        inf.write_text(
            "SEQUENTIAL\n"
            + "".join(
                f"{u};{domain};[authentication username={u} password={password(u)}]\n" for u in mine
            )
        )
        done = subprocess.run(
            on_load_cpu(
                [
                    "sipp",
                    domain,
                    "-sf",
                    str(work / "register.xml"),
                    "-inf",
                    str(inf),
                    "-i",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-m",
                    str(len(mine)),
                    "-r",
                    "200",
                    "-timeout",
                    "60s",
                    "-timeout_error",
                    "-nostdin",
                ]
            ),
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode != 0:
            phones.stop()
            raise RuntimeError(f"registering agents {mine[0]}..{mine[-1]} failed")
        log = (work / f"agent-phone-{index}.out").open("wb")
        phones.processes.append(
            subprocess.Popen(
                on_load_cpu(
                    [
                        "sipp",
                        domain,
                        "-sf",
                        str(uas),
                        "-i",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "-mi",
                        "127.0.0.1",
                        "-mp",
                        str(media),
                        "-rtp_echo",
                        # No cap on calls in progress, and room for bursts: SIPp's
                        # defaults (a limit from the rate, 64 KB buffers) drop INVITEs
                        # and keep-alives at a few hundred agents.
                        "-l",
                        "100000",
                        "-buff_size",
                        str(SIPP_BUFFER),
                        "-timeout",
                        "86400s",
                        "-nostdin",
                        "-trace_err",
                    ]
                ),
                cwd=work,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        )
    deadline = time.monotonic() + 60
    while len(engine.registrations()) < len(agents):
        if time.monotonic() > deadline:
            phones.stop()
            raise RuntimeError(f"only {len(engine.registrations())} of {len(agents)} registered")
        time.sleep(0.2)
    for user in agents:
        engine.post(f"/api/v1/agents/{user}/login")
    return phones


# -- one rate -----------------------------------------------------------------------------


@dataclass
class Step:
    """What one offered rate gave."""

    rate: float
    seconds: float
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    failed: int = 0
    refused: int = 0
    records: int = 0
    achieved: float = 0.0
    waits: list[float] = field(default_factory=list)
    setups: list[float] = field(default_factory=list)
    cpu: float = 0.0
    load_cpu: float = 0.0
    rss_peak: float = 0.0
    lag: str = "-"
    rtp_in: float = 0.0
    rtp_out: float = 0.0
    rtp_lost: int = 0
    flood_sent: int = 0
    flood_answered: int = 0
    udp_dropped: int = 0
    refused_by: dict[str, int] = field(default_factory=dict)

    @property
    def connect(self) -> float:
        return self.answered / self.offered if self.offered else float("nan")

    @property
    def accepted_connect(self) -> float:
        """Connect rate of the calls overload control let in."""
        accepted = self.offered - self.refused
        return self.answered / accepted if accepted > 0 else float("nan")

    @property
    def wait_p99(self) -> float:
        return percentile(self.waits, 0.99)

    def holds(self) -> bool:
        return (
            self.offered > 0
            and self.connect >= CONNECT_TARGET
            and self.wait_p99 <= WAIT_P99_TARGET
            and self.failed == 0
        )


def records_since(engine: RunningEngine, since: datetime) -> list[dict[str, object]]:
    """Every CDR that arrived after ``since``, through the API, page by page."""
    start = since.isoformat().replace("+00:00", "Z")
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    rows: list[dict[str, object]] = []
    after = ""
    while True:
        page = engine.http_json(f"/api/v1/calls?since={start}&until={until}&limit=1000{after}")
        batch = page["calls"]
        assert isinstance(batch, list)
        rows += batch
        if not page.get("next"):
            return rows
        after = f"&after={quote(str(page['next']))}"


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def wait_idle(engine: RunningEngine, timeout: float = 120.0) -> None:
    """Until the engine holds no call: the step's last BYEs are through.

    /api/v1/live/calls, not /api/v1/live/resources: the latter runs a full
    garbage collection first (it is a leak check), which would stall the
    engine the bench is measuring.
    """
    deadline = time.monotonic() + timeout
    calls: object = None
    while time.monotonic() < deadline:
        calls = engine.http_json("/api/v1/live/calls")["calls"]
        if not calls:
            return
        time.sleep(0.5)
    raise RuntimeError(f"engine still busy after {timeout} s: {calls}")


def sipp_counts(work: Path, prefix: str) -> dict[str, int]:
    """SIPp's per-message counters (-trace_counts) of the last run named ``prefix``."""
    files = sorted(work.glob(f"{prefix}*_counts.csv"), key=lambda p: p.stat().st_mtime)
    if not files:
        return {}
    with files[-1].open() as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    if not rows:
        return {}
    counts: dict[str, int] = {}
    for key, value in rows[-1].items():
        if key and value and value.strip().isdigit():
            counts[key.strip()] = int(value)
    return counts


def response_times(work: Path, prefix: str) -> list[float]:
    """INVITE -> 200 of every call of the last run named ``prefix`` (-trace_rtt), seconds."""
    files = sorted(work.glob(f"{prefix}*_rtt.csv"), key=lambda p: p.stat().st_mtime)
    times: list[float] = []
    if not files:
        return times
    with files[-1].open() as f:
        for row in csv.reader(f, delimiter=";"):
            if len(row) >= 2:
                try:
                    times.append(float(row[1]) / 1000)
                except ValueError:
                    continue
    return times


def caller_cmd(
    engine: RunningEngine,
    work: Path,
    caller: Path,
    *,
    service: str,
    rate: float,
    calls: int,
    tag: str,
) -> list[str]:
    return on_load_cpu(
        [
            "sipp",
            f"127.0.0.1:{engine.sip_port}",
            "-sf",
            str(caller),
            "-s",
            service,
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-mi",
            "127.0.0.1",
            "-mp",
            str(free_port()),
            "-r",
            f"{rate:g}",
            "-m",
            str(calls),
            "-l",
            str(max(int(rate * 120), 100)),
            "-timeout",
            f"{int(calls / max(rate, 0.1) + 300)}s",
            "-timeout_error",
            "-max_invite_retrans",
            "4",
            "-trace_rtt",
            "-rtt_freq",
            "1",
            "-trace_counts",
            "-trace_stat",
            "-fd",
            "5",
            "-trace_err",
            "-nostdin",
            "-bind_local",
            "-buff_size",
            str(SIPP_BUFFER),
            "-stf",
            str(work / f"{tag}_stat.csv"),
        ]
    )


class Flood:
    """A SIPp sending OPTIONS from one address at a fixed rate, while it runs."""

    def __init__(self, engine: RunningEngine, work: Path, rate: int) -> None:
        self.scenario = work / "flood.xml"
        self.scenario.write_text(_FLOOD)
        self.process = subprocess.Popen(
            on_load_cpu(
                [
                    "sipp",
                    f"127.0.0.1:{engine.sip_port}",
                    "-sf",
                    str(self.scenario),
                    "-i",
                    "127.0.0.2",
                    "-p",
                    str(free_port()),
                    "-r",
                    str(rate),
                    "-l",
                    str(rate * 40),
                    "-recv_timeout",
                    "2s",
                    "-trace_counts",
                    "-fd",
                    "1",
                    "-nostdin",
                ]
            ),
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self, work: Path) -> tuple[int, int]:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        counts = sipp_counts(work, "flood")
        sent = next((v for k, v in counts.items() if k.endswith("_OPTIONS_Sent")), 0)
        answered = next((v for k, v in counts.items() if k.endswith("_200_Recv")), 0)
        return sent, answered


_FLOOD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="options flood">
  <send>
    <![CDATA[
      OPTIONS sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:flood@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" optional="true" timeout="2000" ontimeout="end"/>
  <label id="end"/>
</scenario>
"""


def run_rate(
    engine: RunningEngine,
    work: Path,
    caller: Path,
    sampler: Sampler,
    rate: float,
    args: argparse.Namespace,
    profile: Path | None,
) -> Step:
    calls = max(1, int(rate * args.seconds))
    step = Step(rate, args.seconds, offered=calls)
    tag = f"caller-{rate:g}-{time.monotonic_ns()}"
    since = datetime.now(UTC) - timedelta(seconds=1)
    flood = Flood(engine, work, args.flood) if args.flood else None
    spy = py_spy(engine, profile) if profile is not None else None
    before = scrape(engine)
    cpu_before = cpu_seconds(engine.process.pid)
    load_cpu_before = cpu_busy_seconds(LOAD_CPU)
    drops_before = udp_drops(engine.sip_port)
    sampler.reset()
    started = time.perf_counter()
    cmd = caller_cmd(
        engine,
        work,
        caller,
        service="100" if args.ivr else "200",
        rate=rate,
        calls=calls,
        tag=tag,
    )
    prefix = Path(caller).stem
    with (work / f"{tag}.out").open("wb") as out:
        subprocess.run(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT, check=False)
    elapsed = time.perf_counter() - started
    step.cpu = (cpu_seconds(engine.process.pid) - cpu_before) / elapsed
    step.load_cpu = (cpu_busy_seconds(LOAD_CPU) - load_cpu_before) / elapsed
    step.udp_dropped = udp_drops(engine.sip_port) - drops_before
    step.rss_peak = sampler.peak
    after = scrape(engine)
    if spy is not None:
        spy.send_signal(2)
        spy.wait(timeout=60)
    if flood is not None:
        step.flood_sent, step.flood_answered = flood.stop(work)
    step.lag = lag_p99(before, after)
    step.rtp_in = (
        after.get('rtp_packets_total{direction="in"}', 0)
        - before.get('rtp_packets_total{direction="in"}', 0)
    ) / elapsed
    step.rtp_out = (
        after.get('rtp_packets_total{direction="out"}', 0)
        - before.get('rtp_packets_total{direction="out"}', 0)
    ) / elapsed
    lost = "rtp_packets_lost_total"
    step.rtp_lost = int(after.get(lost, 0) - before.get(lost, 0))
    counts = sipp_counts(work, prefix)
    step.refused = next((v for k, v in counts.items() if k.endswith("_503_Recv")), 0)
    for reason in ("calls", "rate", "lag", "cpu"):
        key = f'acd_calls_refused_total{{reason="{reason}"}}'
        if refused := int(after.get(key, 0) - before.get(key, 0)):
            step.refused_by[reason] = refused
    step.setups = response_times(work, prefix)
    wait_idle(engine)
    rows = wait_records(engine, since, calls - step.refused)
    summarise(step, rows)
    return step


def wait_records(
    engine: RunningEngine, since: datetime, expected: int, timeout: float = 60.0
) -> list[dict[str, object]]:
    """The step's CDRs once all ``expected`` have ended and been written."""
    deadline = time.monotonic() + timeout
    rows: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        rows = [r for r in records_since(engine, since) if r.get("ended_at")]
        if len(rows) >= expected:
            break
        time.sleep(0.5)
    return rows


def summarise(step: Step, rows: Iterable[dict[str, object]]) -> None:
    """Count the step's records; achieved is answered calls over the span they arrived in.

    By arrival, not answer: one call that waited seconds for its agent would
    stretch a span of answers and make the rate look lower than it was.
    """
    arrivals: list[datetime] = []
    for row in rows:
        step.records += 1
        disposition = row.get("disposition")
        if disposition == "answered" and not row.get("agent"):
            # Answered by the IVR but never by an agent: with --ivr, a lost key.
            step.failed += 1
        elif disposition == "answered":
            step.answered += 1
            queued, answered = parse_time(row.get("queued_at")), parse_time(row.get("answered_at"))
            if queued is not None and answered is not None:
                step.waits.append((answered - queued).total_seconds())
            arrived = parse_time(row.get("arrived_at"))
            if arrived is not None:
                arrivals.append(arrived)
        elif disposition == "abandoned":
            step.abandoned += 1
        else:
            step.failed += 1
    arrivals.sort()
    if len(arrivals) > 1:
        span = (arrivals[-1] - arrivals[0]).total_seconds()
        step.achieved = (len(arrivals) - 1) / span if span > 0 else 0.0


def py_spy(engine: RunningEngine, profile: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
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
            "200",
            "--nonblocking",
            "--threads",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def ms(values: list[float], q: float) -> str:
    return f"{1000 * percentile(values, q):.0f}" if values else "-"


def report(step: Step) -> None:
    flood = (
        f" | flood {step.flood_sent} OPTIONS, {step.flood_answered} answered"
        if step.flood_sent
        else ""
    )
    refusals = ""
    if step.refused:
        reasons = ", ".join(f"{reason} {n}" for reason, n in step.refused_by.items())
        refusals = f" ({reasons}; accepted calls connected {100 * step.accepted_connect:.3f}%)"
    print(
        f"offered {step.rate:g}/s ({3600 * step.rate:,.0f} BHCA), {step.offered} calls: "
        f"achieved {step.achieved:.1f}/s, connect {100 * step.connect:.3f}% "
        f"({step.answered} answered, {step.abandoned} abandoned, {step.failed} failed, "
        f"{step.refused} refused 503{refusals}; {step.records} records) | wait ms p50/p99/max "
        f"{ms(step.waits, 0.5)}/{ms(step.waits, 0.99)}/{ms(step.waits, 1.0)} | "
        f"INVITE->200 p99 {ms(step.setups, 0.99)} ms | engine CPU {100 * step.cpu:.0f}% "
        f"(SIPp's CPU {100 * step.load_cpu:.0f}%), "
        f"RSS {step.rss_peak:.0f} MiB, loop lag p99 {step.lag} | RTP in/out "
        f"{step.rtp_in:,.0f}/{step.rtp_out:,.0f} pkt/s, lost {step.rtp_lost} | SIP datagrams "
        f"dropped by the kernel {step.udp_dropped}{flood}",
        flush=True,
    )


def ceiling(steps: list[Step]) -> None:
    held = [s for s in steps if s.holds()]
    best = max((s.rate for s in held), default=None)
    print(
        f"ceiling (connect >= {100 * CONNECT_TARGET:.2f}%, p99 wait <= "
        f"{1000 * WAIT_P99_TARGET:.0f} ms, no failed call): "
        + (f"{best:g} calls/s ({3600 * best:,.0f} BHCA)" if best is not None else "none held")
    )


# -- long calls ---------------------------------------------------------------------------


def run_hold(engine: RunningEngine, work: Path, caller: Path, args: argparse.Namespace) -> None:
    rate_text, _, seconds_text = args.hold.partition(":")
    rate, talk = float(rate_text), float(seconds_text)
    total = int(rate * (talk + args.every * 3))
    since = datetime.now(UTC) - timedelta(seconds=1)
    tag = f"hold-{time.monotonic_ns()}"
    cmd = caller_cmd(engine, work, caller, service="200", rate=rate, calls=total, tag=tag)
    out = (work / f"{tag}.out").open("wb")
    process = subprocess.Popen(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT)
    print(f"holding calls: {rate:g}/s talking {talk:g} s, {total} calls", flush=True)
    previous = scrape(engine)
    cpu_before = cpu_seconds(engine.process.pid)
    last = time.perf_counter()
    seen: set[str] = set()
    try:
        while process.poll() is None:
            time.sleep(args.every)
            now = time.perf_counter()
            cpu = cpu_seconds(engine.process.pid)
            current = scrape(engine)
            live = int(current.get("acd_calls_active", 0))
            share = (cpu - cpu_before) / (now - last)
            lost = current.get("rtp_packets_lost_total", 0) - previous.get(
                "rtp_packets_lost_total", 0
            )
            received = current.get('rtp_packets_total{direction="in"}', 0) - previous.get(
                'rtp_packets_total{direction="in"}', 0
            )
            waits = []
            for row in records_since(engine, since):
                call_id = str(row.get("call_id"))
                answered = parse_time(row.get("answered_at"))
                queued = parse_time(row.get("queued_at"))
                if call_id in seen or answered is None or queued is None:
                    continue
                seen.add(call_id)
                waits.append((answered - queued).total_seconds())
            per_call = 100 * share / live if live else float("nan")
            print(
                f"live calls {live:5d}: engine CPU {100 * share:5.1f}% ({per_call:.3f}% a call), "
                f"RSS {rss_mib(engine.process.pid):.0f} MiB, RTP in {received / (now - last):,.0f}"
                f" pkt/s, lost {int(lost)} ({100 * lost / received if received else 0:.3f}%), "
                f"jitter mean/max {1000 * current.get('rtp_jitter_seconds', 0):.1f}/"
                f"{1000 * current.get('rtp_jitter_max_seconds', 0):.1f} ms, loop lag p99 "
                f"{lag_p99(previous, current)}, new callers' wait ms p50/p99/max "
                f"{ms(waits, 0.5)}/{ms(waits, 0.99)}/{ms(waits, 1.0)} ({len(waits)})",
                flush=True,
            )
            previous, cpu_before, last = current, cpu, now
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait()
        out.close()


# -- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="40,80,125", help="offered calls per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per rate")
    parser.add_argument("--agents", type=int, default=800)
    parser.add_argument("--agent-phones", type=int, default=4, help="SIPp processes for them")
    parser.add_argument("--talk", type=float, default=3.0, help="seconds an agent talks")
    parser.add_argument("--patience", type=float, default=20.0, help="caller's wait, seconds")
    parser.add_argument("--wrap-up", type=float, default=1.0)
    parser.add_argument("--strategy", default="longest-idle")
    parser.add_argument("--ivr", action="store_true", help="through the IVR menu (key 1)")
    parser.add_argument("--no-record", dest="record", action="store_false")
    parser.add_argument("--max-calls", type=int, default=20000)
    parser.add_argument("--engine-config", help="YAML lines appended to the engine's config")
    parser.add_argument(
        "--calls",
        help="more keys of the calls section, YAML flow style: 'max_cpu: 0.85, burst: 50'",
    )
    parser.add_argument("--flood", type=int, default=0, help="OPTIONS/s from one address")
    parser.add_argument("--hold", help="RATE:SECONDS, long calls instead of the rates")
    parser.add_argument("--every", type=float, default=20.0, help="--hold: report interval")
    parser.add_argument("--profile", type=Path, help="py-spy of the last rate, raw format")
    parser.add_argument("--smoke", action="store_true", help="a short run for the test suite")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if args.smoke:
        args.rates, args.seconds, args.agents, args.agent_phones = "4", 3.0, 20, 2
        args.talk, args.wrap_up = 1.0, 0.0
    if shutil.which("sipp") is None:
        print("sipp is not installed (apt-get install sip-tester)")
        return 2
    if not args.smoke:
        print(machine_line(), flush=True)
    work = Path(tempfile.mkdtemp(prefix="acd-load-"))
    agents = [str(100000 + n) for n in range(args.agents)]
    engine = start_engine(write_engine_config(work, args, agents), work)
    pinned = pin(engine.process.pid, ENGINE_CPU)
    if pinned:
        os.sched_setaffinity(0, {LOAD_CPU})
    sampler = Sampler(engine.process.pid)
    phones: AgentPhones | None = None
    steps: list[Step] = []
    try:
        talk_ms = int(1000 * args.talk)
        if args.hold:
            talk_ms = int(1000 * float(args.hold.partition(":")[2]))
            # The caller waits for the agent's BYE: longer than the talk.
            args.patience = max(args.patience, talk_ms / 1000 + 30)
            args.talk = talk_ms / 1000
        phones = start_agents(engine, work, agents, args.agent_phones, talk_ms)
        pin(engine.process.pid, ENGINE_CPU)  # threads started since
        audio = caller_audio(work)
        caller = scenario(work, "load_caller.xml", PATIENCE=int(1000 * args.patience))
        # SIPp does not expand keywords in rtp_stream's file name.
        caller.write_text(caller.read_text().replace("[audio]", str(audio)))
        if args.ivr:
            caller = ivr_caller(work, caller, audio, record=args.record)
        load = os.getloadavg()
        print(
            f"engine pid {engine.process.pid} on CPU {ENGINE_CPU if pinned else 'any'}, SIPp "
            f"on CPU {LOAD_CPU if pinned else 'any'}; python {sys.version.split()[0]}, "
            f"{os.cpu_count()} CPUs, load average {load[0]:.2f}; {args.agents} agents "
            f"({args.strategy}, wrap-up {args.wrap_up:g} s) talking {args.talk:g} s, "
            f"{'via the IVR' if args.ivr else 'straight to the queue'}, "
            f"{'recorded' if args.record else 'not recorded'}, RTP both ways",
            flush=True,
        )
        if args.hold:
            run_hold(engine, work, caller, args)
        else:
            rates = [float(r) for r in args.rates.split(",")]
            for index, rate in enumerate(rates):
                profile = args.profile if index == len(rates) - 1 else None
                step = run_rate(engine, work, caller, sampler, rate, args, profile)
                steps.append(step)
                report(step)
            ceiling(steps)
    finally:
        sampler.close()
        if phones is not None:
            phones.stop()
        code = engine.stop()
        if code != 0:
            print(f"engine exited with {code}; its log: {engine.log_path}")
        if not args.keep and code == 0:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    if args.smoke:
        ok = bool(steps) and all(s.answered == s.offered and s.failed == 0 for s in steps)
        return 0 if ok else 1
    return 0


def ivr_caller(work: Path, caller: Path, audio: Path, *, record: bool) -> Path:
    """The caller keys 1 (RFC 4733, SIPp's capture) a second into the menu, then talks.

    The menu starts after the recording notice (the call is recorded), which
    cannot be interrupted and drops keys pressed during it, as the law it
    serves wants; a second more is a person's reaction. The speech waits
    until the capture (1 s) has played, since both are RTP from one port.
    """
    text = caller.read_text()
    assert text.count("rtp_stream=") == 1, caller
    key_after_ms = 1000
    if record:
        with wave.open(str(ROOT / "config" / "prompts" / "recording_notice.wav")) as notice:
            key_after_ms += int(1000 * notice.getnframes() / notice.getframerate())
    key = '<exec play_pcap_audio="/usr/share/sip-tester/dtmf_2833_1.pcap"/>'
    speech = f'<exec rtp_stream="{audio},-1,0"/>'
    text = text.replace(
        f"<nop>\n    <action>\n      {speech}",
        f'<pause milliseconds="{key_after_ms}"/>\n  <nop>\n    <action>\n      '
        + key
        + '\n    </action>\n  </nop>\n  <pause milliseconds="1500"/>\n  <nop>\n'
        f"    <action>\n      {speech}",
    )
    assert key in text, "the speech's step has changed shape"
    # Three more scenario steps before the refusal's ACK, whose branch is the INVITE's.
    text = text.replace("[branch-14]", "[branch-17]")
    path = work / "load_caller_ivr.xml"
    path.write_text(text)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
