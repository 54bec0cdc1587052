"""Harness shared by the interop tests: peer processes, engine configs, metrics.

Peers (baresip, SIPp) run as subprocesses with stdin on /dev/null and their
output in a file under the test's tmp_path, which failure messages quote.
Waiting is always polling with a deadline; every peer is stopped, by its own
pid, when the test ends.
"""

from __future__ import annotations

import re
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from .conftest import RunningEngine, free_port, require_tool, write_config

POLL = 0.05
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

WITH_SHA256 = "digest_algorithms: [SHA-256, MD5]"
"""Security setting that offers SHA-256 and MD5 (RFC 8760 order).

The engine sends one WWW-Authenticate per configured algorithm, sharing one
nonce; the default is MD5 alone. baresip 1.0.0 (libre) walks every challenge
and fails with ENOSYS when any is not MD5; SIPp 3.6.1 reads only the first.
With this setting baresip cannot register: a test keeps that visible, since
it is why the default offers MD5 alone.
"""


def engine_config(
    path: Path,
    *,
    with_sha256: bool = False,
    t1: float | None = None,
    security: str = "",
    agents: int = 10,
    first: int = 1001,
    registrar: str = "",
) -> Path:
    """``write_config`` plus the two knobs the interop tests need.

    ``t1`` shortens RFC 3261 T1 so that an unanswered keep-alive OPTIONS fails
    after Timer F = 64*T1 instead of 32 s.
    """
    lines = [WITH_SHA256] if with_sha256 else []
    if security:
        lines.append(security)
    path = write_config(
        path, agents=agents, first=first, security="\n".join(lines), registrar=registrar
    )
    if t1 is not None:
        text = path.read_text()
        assert text.startswith("sip:\n"), "write_config changed its layout"
        path.write_text(text.replace("sip:\n", f"sip:\n  timers: {{t1: {t1}}}\n", 1))
    return path


class PeerProcess:
    """A real peer run as a subprocess, its stdout and stderr going to ``log_path``."""

    def __init__(self, args: Sequence[str], log_path: Path, *, cwd: Path | None = None) -> None:
        self.name = Path(args[0]).name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )

    def output(self) -> str:
        """Everything the peer printed so far, without terminal colour codes."""
        return _ANSI.sub("", self.log_path.read_text(errors="replace"))

    def describe(self) -> str:
        """The tail of the peer's output, for failure messages."""
        return f"--- {self.name} output ({self.log_path}) ---\n{self.output()[-6000:]}"

    def running(self) -> bool:
        return self.process.poll() is None

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match[str]:
        """Poll the output until ``pattern`` (multiline regex) appears."""
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            exited = not self.running()
            match = regex.search(self.output())
            if match:
                return match
            if exited:
                raise AssertionError(
                    f"{self.name} exited ({self.process.returncode}) without printing "
                    f"{pattern!r}\n{self.describe()}"
                )
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.name} did not print {pattern!r} within {timeout} s\n{self.describe()}"
                )
            time.sleep(POLL)

    def wait(self, timeout: float) -> int:
        """Wait for the peer to exit by itself; kill it and fail if it overruns."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(timeout=1.0)
            raise AssertionError(
                f"{self.name} still running after {timeout} s\n{self.describe()}"
            ) from None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit within ``timeout``; the exit status."""
        if self.running():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5.0)
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{([^}]*)\})? (\S+)$", re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def metric(engine: RunningEngine, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` (with or without the acd_ prefix) matching ``labels``."""
    names = {name, f"acd_{name}"}
    total = 0.0
    for sample in _SAMPLE.finditer(engine.http_text("/metrics")):
        if sample[1] not in names:
            continue
        got = dict(_LABEL.findall(sample[2] or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(sample[3])
    return total


def engine_healthy(engine: RunningEngine) -> bool:
    return engine.process.poll() is None and engine.http_json("/healthz")["status"] == "ok"


def write_tone_pcap(path: Path, frequency: float, seconds: float, level: float = 8000.0) -> Path:
    """A libpcap file of PCMU RTP carrying a sine, 20 ms a packet, for SIPp's play_pcap_audio.

    SIPp replays the packets with the capture's timing from its media port to
    the far end's SDP address, whatever addresses the capture names.
    """
    from media import PCMU, SenderState

    samples = int(seconds * 8000) // 160 * 160
    t = np.arange(samples) / 8000
    audio = PCMU.encode(np.round(level * np.sin(2 * np.pi * frequency * t)).astype(np.int16))
    stream = SenderState(8000)
    records = []
    for n in range(samples // 160):
        rtp = stream.build(audio[n * 160 : (n + 1) * 160], PCMU.payload_type, 160)
        udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17, 0,
            bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]),
        ) + udp  # fmt: skip
        frame = bytes(12) + b"\x08\x00" + ip  # Ethernet, IPv4: SIPp's libpcap reads it
        seconds_at, micros = divmod(n * 20_000, 1_000_000)
        records.append(struct.pack("<IIII", seconds_at, micros, len(frame), len(frame)) + frame)
    # Global header: magic, version 2.4, zone, accuracy, snaplen, LINKTYPE_ETHERNET.
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    path.write_bytes(header + b"".join(records))
    return path


def sipp_call(
    engine: RunningEngine, workdir: Path, scenario: Path, service: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """One SIPp call to ``service`` through the engine, bounded in time; fails with its logs."""
    sipp = require_tool("sipp")
    result = subprocess.run(
        [
            sipp, f"127.0.0.1:{engine.sip_port}", "-sf", str(scenario), "-s", service,
            "-m", "1", "-i", "127.0.0.1", "-p", str(free_port()),
            "-mi", "127.0.0.1", "-mp", str(free_port()),
            "-timeout", "40s", "-timeout_error", "-trace_err", *args,
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    errors = "\n".join(p.read_text(errors="replace") for p in workdir.glob("*_errors.log"))
    assert result.returncode == 0, (
        f"sipp failed ({result.returncode}):\n{result.stdout[-3000:]}\n{errors}\n{engine.log()}"
    )
    return result


TONE_CALLER = Path(__file__).resolve().parent / "data" / "sipp" / "tone_caller.xml"


def tone_caller(workdir: Path, frequency: float, seconds: float) -> Path:
    """A SIPp scenario (from ``TONE_CALLER``) sending ``frequency`` Hz for ``seconds``."""
    pcap = write_tone_pcap(workdir / f"tone_{frequency:g}.pcap", frequency, seconds)
    scenario = workdir / f"tone_caller_{frequency:g}.xml"
    text = TONE_CALLER.read_text().replace("TONE_PCAP", str(pcap))
    scenario.write_text(text.replace("CALL_MS", str(round(seconds * 1000))))
    return scenario


def sipp_caller_args(
    scenario: Path,
    *,
    service: str = "100",
    calls: int = 1,
    timeout: str = "60s",
    extra: Sequence[str] = (),
) -> list[str]:
    """A SIPp caller's arguments on loopback (after the engine's address).

    The scenario and number, how many calls, free signalling and media ports,
    a global timeout that fails the run, and the error trace that failure
    messages quote.
    """
    return [
        "-sf", str(scenario), "-s", service, "-m", str(calls),
        "-i", "127.0.0.1", "-p", str(free_port()), "-mi", "127.0.0.1", "-mp", str(free_port()),
        "-timeout", timeout, "-timeout_error", "-trace_err", *extra,
    ]  # fmt: skip


def wait_answers_options(port: int, timeout: float = 10.0) -> None:
    """Wait until the SIP peer on 127.0.0.1:``port`` (UDP) answers an OPTIONS.

    A peer started as a process is not listening the moment it starts; a
    call sent to it before then is lost, which a test would read as the
    phone not answering. Each probe is its own transaction.
    """
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()[1]
        attempt = 0
        while time.monotonic() < deadline:
            attempt += 1
            message = (
                f"OPTIONS sip:probe@127.0.0.1:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-ready-{attempt}\r\n"
                "Max-Forwards: 70\r\n"
                "From: <sip:probe@127.0.0.1>;tag=ready\r\n"
                f"To: <sip:probe@127.0.0.1:{port}>\r\n"
                f"Call-ID: ready-{local}-{attempt}@127.0.0.1\r\n"
                "CSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n"
            )
            probe.sendto(message.encode(), ("127.0.0.1", port))
            probe.settimeout(0.2)
            try:
                data, _ = probe.recvfrom(65535)
            except (TimeoutError, ConnectionRefusedError):
                continue
            if data.startswith(b"SIP/2.0 "):
                return
    raise AssertionError(f"nothing on 127.0.0.1:{port} answered OPTIONS within {timeout} s")
