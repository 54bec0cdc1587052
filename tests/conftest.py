"""Shared fixtures: a real engine started through the CLI, free ports, peers' tools."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SIPP_DIR = ROOT / "bench" / "sipp"


def shared_dir() -> Path:
    """The project's shared/ folder: beside the repository (as CI lays it out)."""
    for candidate in (ROOT.parent / "shared", Path("/work/shared")):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no shared/ folder beside {ROOT}")


RFC4475_DIR = shared_dir() / "testdata" / "rfc4475"
START_TIMEOUT = 20.0


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both).

    Never the same port twice in one test process: the kernel may hand a
    just-released port out again at once, and an engine whose SIP and HTTP
    ports came out equal fails to start (seen in CI).
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            if port in _HANDED_OUT:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port")


def agent_password(username: str) -> str:
    return f"secret-{username}-pw"


def write_config(
    path: Path,
    *,
    agents: int = 10,
    first: int = 1001,
    extra: str = "",
    sip: str = "",
    security: str = "",
    registrar: str = "",
) -> Path:
    """A configuration with ``agents`` accounts starting at ``first``.

    ``sip``, ``security`` and ``registrar`` are extra YAML lines for those sections.
    """
    lines = ["sip:", "  domain: acd.local", "  transports: [udp, tcp]"]
    lines += [f"  {s}" for s in sip.splitlines()]
    if security:
        lines += ["security:", *[f"  {s}" for s in security.splitlines()]]
    if registrar:
        lines += ["registrar:", *[f"  {s}" for s in registrar.splitlines()]]
    lines.append("agents:")
    for n in range(first, first + agents):
        lines += [f'  - username: "{n}"', f'    password: "{agent_password(str(n))}"']
    lines.append(extra)
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class RunningEngine:
    """An ``acd serve`` subprocess and how to reach it."""

    process: subprocess.Popen[bytes]
    sip_port: int
    http_port: int
    log_path: Path

    def http_json(self, path: str) -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def http_text(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
            body: bytes = r.read()
            return body.decode()

    def registrations(self, user: str | None = None) -> list[dict[str, object]]:
        query = f"?user={user}" if user else ""
        rows = self.http_json(f"/api/v1/registrations{query}")["registrations"]
        assert isinstance(rows, list)
        return rows

    def wait_for(self, predicate: object, timeout: float = 10.0, what: str = "") -> None:
        """Poll ``predicate`` until it is true or the deadline passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what or predicate}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: signal.Signals = signal.SIGINT) -> int:
        """Stop the engine: SIGINT stops at once; SIGTERM drains first
        (``calls.drain_timeout``, 30 s unless the config says otherwise)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"engine did not stop on {sig.name}") from None
        return self.process.returncode


def start_engine(config: Path, tmp_path: Path, *args: str) -> RunningEngine:
    """Start ``acd serve`` (with ``args``) on free ports and wait until /healthz answers."""
    sip_port, http_port = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        ACD_SIP_PORT=str(sip_port),
        ACD_HTTP_PORT=str(http_port),
        ACD_DATA_DIR=str(tmp_path / "data"),
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "engine.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "acd.cli", "serve", "--config", str(config), *args],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    engine = RunningEngine(process, sip_port, http_port, log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"engine exited early:\n{engine.log()}")
        try:
            if engine.http_json("/healthz")["status"] == "ok":
                return engine
        except OSError:
            pass
        time.sleep(0.05)
    engine.stop()
    raise AssertionError(f"engine did not become healthy:\n{engine.log()}")


@pytest.fixture
def engine_factory(tmp_path: Path) -> Iterator[object]:
    """Start engines from configs; every one is stopped (and must stop cleanly)."""
    started: list[RunningEngine] = []

    def factory(config: Path) -> RunningEngine:
        engine = start_engine(config, tmp_path)
        started.append(engine)
        return engine

    yield factory
    for engine in started:
        code = engine.stop()
        assert code == 0, f"engine exited with {code}:\n{engine.log()}"


@pytest.fixture
def engine(tmp_path: Path, engine_factory: object) -> RunningEngine:
    """An engine with the ten demo-style accounts 1001-1010."""
    return engine_factory(write_config(tmp_path / "acd.yaml"))  # type: ignore[operator, no-any-return]


def require_tool(name: str) -> str:
    """The path of an external tool; its absence is a failure, not a skip, in CI."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; scripts/test installs it")
        pytest.skip(f"{name} is not installed (scripts/test installs it)")
    return path


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """In-process tests run on the loop ``acd serve`` runs on: uvloop where it installs.

    The two loops differ in ways a test on the stock loop never sees (a
    timer due in the past comes back from uvloop's ``call_at`` as a plain
    ``Handle`` without ``when()``); production takes uvloop whenever it can,
    so the tests do too. A test marked ``stock_loop`` reads the stock loop's
    internals (its list of scheduled timers) and keeps that loop.
    """
    try:
        import uvloop
    except ImportError:
        return {"asyncio": asyncio.new_event_loop}
    if item.get_closest_marker("stock_loop") is not None:
        return {"asyncio": asyncio.new_event_loop}
    return {"uvloop": uvloop.new_event_loop}
