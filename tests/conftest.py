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
import urllib.error
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


def free_port_pair() -> int:
    """A port as ``free_port`` gives, whose successor is free for TCP too.

    baresip 1.0 always listens for TLS as well, on its SIP port plus one, and
    has no setting to turn that off (a CI run failed on exactly that). The
    successor is never handed out afterwards either.
    """
    for _ in range(50):
        port = free_port()
        if port + 1 in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tls:
            try:
                tls.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        _HANDED_OUT.add(port + 1)
        return port
    raise RuntimeError("no free pair of ports")


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


ADMIN_USER = "admin"
ADMIN_PASSWORD = "test-admin-Quartz-9917"
"""The first admin every harness engine makes from ACD_ADMIN_USER/ACD_ADMIN_PASSWORD."""


@dataclass
class RunningEngine:
    """An ``acd serve`` subprocess and how to reach it.

    The HTTP helpers sign in as the harness's admin on first use and send
    its bearer token; ``request(..., token=None)`` goes without one.
    """

    process: subprocess.Popen[bytes]
    sip_port: int
    http_port: int
    log_path: Path
    _token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def sign_in(self, username: str, password: str) -> str:
        """A bearer token for ``username`` (AssertionError if sign-in fails)."""
        status, body = self.request(
            "POST", "/api/v1/auth/token", {"username": username, "password": password}, token=None
        )
        assert status == 200, f"sign-in as {username} failed: {status} {body}"
        assert isinstance(body, dict)
        return str(body["token"])

    @property
    def token(self) -> str:
        if self._token is None:
            self._token = self.sign_in(ADMIN_USER, ADMIN_PASSWORD)
        return self._token

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        token: str | bool | None = True,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, object]:
        """One HTTP request; the status and the body (JSON when it is JSON, else text).

        ``token`` True sends the admin's token, a string sends that one, None none.
        """
        status, raw, kind = self.send(method, path, body, token=token, headers=headers)
        if "json" in kind:
            return status, json.loads(raw)
        return status, raw.decode(errors="replace")

    def send(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        token: str | bool | None = True,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, str]:
        """One HTTP request: the status, the raw body and its Content-Type."""
        data = body if isinstance(body, bytes) else None
        if body is not None and data is None:
            data = json.dumps(body).encode()
        sent = dict(headers or {})
        if data is not None:
            sent["Content-Type"] = "application/json"
        # Only the API needs a credential: /healthz and /metrics never make the
        # harness sign in (they must answer while the database is down).
        if token is True and not path.startswith("/api/"):
            token = None
        bearer = self.token if token is True else token
        if isinstance(bearer, str):
            sent["Authorization"] = f"Bearer {bearer}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers.get("Content-Type", "")

    def http_bytes(self, path: str) -> bytes:
        status, raw, _ = self.send("GET", path)
        assert status == 200, f"GET {path}: {status} {raw[:200]!r}"
        return raw

    def http_json(self, path: str) -> dict[str, object]:
        status, body = self.request("GET", path)
        assert status == 200 and isinstance(body, dict), f"GET {path}: {status} {body}"
        return body

    def http_text(self, path: str) -> str:
        status, body = self.request("GET", path)
        assert status == 200, f"GET {path}: {status} {body}"
        return body if isinstance(body, str) else json.dumps(body)

    def post(self, path: str, body: object = None) -> dict[str, object]:
        status, answer = self.request("POST", path, body)
        assert status == 200 and isinstance(answer, dict), f"POST {path}: {status} {answer}"
        return answer

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
        ACD_ADMIN_USER=ADMIN_USER,
        ACD_ADMIN_PASSWORD=ADMIN_PASSWORD,
        # The cheapest scrypt the configuration allows: tests sign in often.
        ACD_PASSWORD_HASH_COST="14",
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
            status, health = engine.request("GET", "/healthz", token=None)
            if status == 200 and isinstance(health, dict) and health["status"] == "ok":
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


# -- media: the RTP port pool and both relays ------------------------------------------------


def use_pure_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the media code as it runs without the C fast path, for the rest of the test."""
    import media._udp
    import media._wavwriter
    import media.bridge
    import media.leg

    for module in (media._udp, media.leg, media.bridge, media._wavwriter):
        monkeypatch.setattr(module, "fastrtp", None)


@pytest.fixture
def pool() -> Iterator[object]:
    """RTP ports for legs opened in the test process; every leg must be closed by the end."""
    from media import PortPool

    ports = PortPool(41000, 43999)
    yield ports
    assert ports.in_use == 0, "a test left a leg open"
    ports.close_parked()


@pytest.fixture(params=["c", "python"])
def relay_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The relay a test runs on: the C one, or the pure-Python closures it is held to."""
    from media._native import fastrtp

    if request.param == "python":
        use_pure_python(monkeypatch)
    elif fastrtp is None:
        pytest.skip("media._fastrtp is not built")
    return str(request.param)
