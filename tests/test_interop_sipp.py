"""SIPp 3.6.1 registers with the engine using the bench/sipp scenarios.

The injection file has one account a line: user; domain (the Request-URI
host); ``[authentication username=U password=P]``. Quirks of SIPp 3.6.1:

- It knows only MD5 digest and stops at the first challenge when that is not
  MD5 ("createAuthHeader: authentication must use MD5 or AKAv1-MD5") instead
  of answering an MD5 one after it; the engine's default offers MD5 alone.
- Its digest uri is always ``sip:<remote_ip>:<remote_port>``, whatever the
  Request-URI says, so the domain field is the engine's ``127.0.0.1:<port>``:
  otherwise the engine (rightly) refuses a digest uri that is not the
  Request-URI.
- A call that fails is ended with a BYE (SIPp's default behaviours); the
  engine answers it 481.
- ``[branch]`` is the same on every pass through a scenario loop (it is built
  from the message's index), so a refresh loop must add something that
  changes, such as ``[cseq]``, as bench/sipp/register_refresh.xml does.

Every run is bounded by ``-timeout ... -timeout_error`` and by a deadline on
the process; SIPp binds a free local port, never 5060.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import SIPP_DIR, RunningEngine, agent_password, free_port, require_tool
from .interop_helpers import PeerProcess, engine_config, engine_healthy, metric

pytestmark = pytest.mark.interop

EngineFactory = Callable[[Path], RunningEngine]


@dataclass
class SippRun:
    """A SIPp process and the files it writes."""

    peer: PeerProcess
    stat_file: Path
    error_file: Path

    def wait(self, timeout: float) -> int:
        return self.peer.wait(timeout)

    def stats(self) -> dict[str, str]:
        """The last row of the -trace_stat CSV, by column name."""
        rows = [r for r in self.stat_file.read_text().splitlines() if r.strip()]
        assert len(rows) >= 2, f"no statistics in {self.stat_file}\n{self.describe()}"
        return dict(zip(rows[0].split(";"), rows[-1].split(";"), strict=False))

    def describe(self) -> str:
        errors = self.error_file.read_text()[-4000:] if self.error_file.exists() else ""
        return f"{self.peer.describe()}\n--- sipp errors ---\n{errors}"


def _accounts(users: Sequence[str], domain: str, password: Callable[[str], str]) -> str:
    lines = ["SEQUENTIAL"]
    for user in users:
        lines.append(f"{user};{domain};[authentication username={user} password={password(user)}]")
    return "\n".join(lines) + "\n"


def start_sipp(
    engine: RunningEngine,
    tmp_path: Path,
    scenario: str | Path,
    users: Sequence[str],
    *extra: str,
    name: str = "sipp",
    password: Callable[[str], str] = agent_password,
    timeout: int = 20,
) -> SippRun:
    """Run the SIPp ``scenario`` (a name in bench/sipp or a path) against ``engine``."""
    exe = require_tool("sipp")
    inf = tmp_path / f"{name}.csv"
    inf.write_text(_accounts(users, f"127.0.0.1:{engine.sip_port}", password))
    stat_file = tmp_path / f"{name}_stat.csv"
    error_file = tmp_path / f"{name}_errors.log"
    args = [
        exe,
        f"127.0.0.1:{engine.sip_port}",
        "-sf",
        str(SIPP_DIR / scenario if isinstance(scenario, str) else scenario),
        "-inf",
        str(inf),
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port()),
        "-nostdin",
        "-timeout",
        f"{timeout}s",
        "-timeout_error",
        "-trace_stat",
        "-stf",
        str(stat_file),
        "-trace_err",
        "-error_file",
        str(error_file),
        *extra,
    ]
    peer = PeerProcess(args, tmp_path / f"{name}.out", cwd=tmp_path)
    return SippRun(peer, stat_file, error_file)


@pytest.fixture
def default_engine(tmp_path: Path, engine_factory: EngineFactory) -> RunningEngine:
    return engine_factory(engine_config(tmp_path / "acd.yaml"))


def test_register_with_right_password(default_engine: RunningEngine, tmp_path: Path) -> None:
    with start_sipp(default_engine, tmp_path, "register.xml", ["1001"], "-m", "1").peer as peer:
        code = peer.wait(30.0)
    assert code == 0, peer.describe()

    [row] = default_engine.registrations("1001")
    assert row["user_agent"] == "SIPp register"
    assert str(row["destination"]).startswith("udp:127.0.0.1:")
    assert str(row["contact"]).endswith(";transport=UDP")


def test_wrong_password_is_refused(default_engine: RunningEngine, tmp_path: Path) -> None:
    run = start_sipp(
        default_engine,
        tmp_path,
        "register.xml",
        ["1001"],
        "-m",
        "1",
        password=lambda user: "not-the-password",
    )
    with run.peer:
        code = run.wait(30.0)
    assert code != 0, run.describe()
    stats = run.stats()
    assert (stats["SuccessfulCall(C)"], stats["FailedCall(C)"]) == ("0", "1"), run.describe()
    assert default_engine.registrations("1001") == []
    assert engine_healthy(default_engine)


def test_register_over_tcp(default_engine: RunningEngine, tmp_path: Path) -> None:
    run = start_sipp(default_engine, tmp_path, "register.xml", ["1001"], "-m", "1", "-t", "t1")
    with run.peer:
        code = run.wait(30.0)
    assert code == 0, run.describe()

    [row] = default_engine.registrations("1001")
    assert str(row["contact"]).endswith(";transport=TCP")
    # Requests to a TCP phone go back over the connection it opened.
    assert str(row["destination"]).startswith("tcp:127.0.0.1:")
    assert row["destination"] == row["source"]


def test_100_accounts_register_and_refresh_for_30_seconds(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    accounts = 100
    engine = engine_factory(
        engine_config(
            tmp_path / "load.yaml",
            agents=accounts,
            first=2000,
            security="auth_failures_per_minute: 1000",
        )
    )
    users = [str(n) for n in range(2000, 2000 + accounts)]
    refreshes = 10
    pause = 3.0
    # Each call registers, refreshes every 3 s (-d) ten times in all, then unregisters.
    run = start_sipp(
        engine,
        tmp_path,
        "register_refresh.xml",
        users,
        "-m",
        str(accounts),
        "-l",
        str(accounts),
        "-r",
        str(accounts),
        "-d",
        str(int(pause * 1000)),
        name="refresh",
        timeout=90,
    )
    started = time.monotonic()
    with run.peer:
        engine.wait_for(
            lambda: len(engine.registrations()) == accounts or not run.peer.running(),
            20.0,
            f"{accounts} registrations",
        )
        registered = {str(r["user"]) for r in engine.registrations()}
        code = run.wait(100.0)
    elapsed = time.monotonic() - started

    assert registered == set(users), run.describe()
    assert code == 0, run.describe()
    stats = run.stats()
    assert stats["SuccessfulCall(C)"] == str(accounts), run.describe()
    assert stats["FailedCall(C)"] == "0", run.describe()
    assert elapsed >= (refreshes - 1) * pause, f"over in {elapsed:.1f} s\n{run.describe()}"
    # Every registration, refresh and unregistration reached the registrar (a
    # retransmitted answer from a finished transaction is not counted here).
    answered = metric(
        engine, "sip_responses_total", method="REGISTER", direction="out", code_class="2xx"
    )
    assert answered == accounts * (refreshes + 1), run.describe()
    # The last step of every call unregistered its binding.
    assert engine.registrations() == []
    assert engine_healthy(engine)
