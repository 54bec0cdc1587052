"""A throwaway PostgreSQL cluster for tests and benchmarks.

``PgCluster`` runs ``initdb`` into a fresh temporary directory and starts the
server on a free port, listening on 127.0.0.1 only, with its Unix socket in
that directory too: it never touches a system cluster. ``stop()`` is
``pg_ctl stop -m immediate`` (what a crash or a kill looks like to clients;
``stop("fast")`` is an operator's orderly stop) and ``start()`` brings it
back on the same port, so a test can stage an outage. PostgreSQL refuses to
run as root, so under root the server runs as the ``postgres`` user
(created by the Debian package) and owns the directory.

The binaries are looked for in /usr/lib/postgresql/<version>/bin (Debian's
layout), then on PATH. Their absence skips the tests, with the reason, on a
developer's machine and fails them under CI=true (scripts/test installs
them).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

_START_TIMEOUT = 30


def find_bindir() -> Path | None:
    """The newest PostgreSQL server bin directory that has initdb and pg_ctl."""

    def version(path: Path) -> tuple[int, ...]:
        parts = path.parent.name.split(".")
        return tuple(int(p) for p in parts if p.isdigit())

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PgCluster:
    """One private PostgreSQL server: ``url(db)`` to connect, ``stop()``/``start()`` for outages.

    ``durable=False`` (for tests) turns fsync off: data still survives the
    server being killed, only not the machine losing power.
    """

    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        self.bindir = bindir
        self.port = _free_port()
        self.user = None if os.geteuid() != 0 else "postgres"
        self.root = Path(tempfile.mkdtemp(prefix="acd-pg-"))
        self.datadir = self.root / "data"
        self.logfile = self.root / "server.log"
        self._durable = durable
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )

    def _run(self, tool: str, *args: str) -> str:
        result = subprocess.run(
            [str(self.bindir / tool), *args],
            user=self.user,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT + 10,
            check=False,
        )
        if result.returncode != 0:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n{log[-3000:]}"
            )
        return result.stdout

    def start(self) -> None:
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.root}",
            "-c max_connections=50",
        ]
        if not self._durable:
            options += ["-c fsync=off", "-c full_page_writes=off"]
        self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.datadir),
            "-l",
            str(self.logfile),
            "-w",
            "-t",
            str(_START_TIMEOUT),
            "-o",
            " ".join(options),
        )

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; clients see their connections drop.

        ``immediate`` (the default) is what a crash looks like; ``fast`` is an
        operator's orderly stop: clients are disconnected, the server
        checkpoints, and it refuses connections until started again.
        """
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"pg_ctl has no stop mode {mode!r}")
        self._run("pg_ctl", "stop", "-D", str(self.datadir), "-m", mode, "-w")

    def running(self) -> bool:
        result = subprocess.run(
            [str(self.bindir / "pg_ctl"), "status", "-D", str(self.datadir)],
            user=self.user,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def destroy(self) -> None:
        if self.datadir.exists() and self.running():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def require_bindir() -> Path:
    """The server binaries, or skip (fail under CI=true) with the reason."""
    bindir = find_bindir()
    if bindir is None:
        reason = (
            "PostgreSQL server binaries (initdb, pg_ctl) not found under "
            "/usr/lib/postgresql/*/bin or on PATH: apt-get install postgresql"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return bindir


def running_cluster(*, durable: bool = False) -> Iterator[PgCluster]:
    """Body of a fixture: a started cluster, destroyed afterwards."""
    cluster = PgCluster(require_bindir(), durable=durable)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One PostgreSQL server for the whole test session."""
    yield from running_cluster()
