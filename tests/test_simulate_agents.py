"""``acd simulate-agents`` as a newcomer runs it: a real subprocess against a real engine.

The simulator registers pyVoIP phones as the configured agents; a SIPp caller
(from 127.0.0.1, a trunk in the test configuration) dials an agent's
extension (route ``_10XX``), the agent answers after its delay and the call
record names it. The engine pings every second and drops a binding at the
first unanswered ping, so staying registered proves the simulator answers
OPTIONS. SIGTERM must unregister every agent and exit 0 promptly.
"""

from __future__ import annotations

import datetime as dt
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import ROOT, RunningEngine, agent_password
from .interop_helpers import (
    PeerProcess,
    engine_config,
    engine_healthy,
    metric,
    sipp_call,
    tone_caller,
)

pytestmark = pytest.mark.interop

AGENTS = ("1001", "1002")
REGISTER_TIMEOUT = 30.0
EXIT_TIMEOUT = 25.0  # the simulator's own stop deadline is 15 s
ROUTES = """
trunks:
  - {name: carrier, addresses: [127.0.0.1]}
routes:
  - {match: _10XX, extension: "*", record: false}
"""

StartSimulator = Callable[..., PeerProcess]


def _config(tmp_path: Path) -> Path:
    # A ping a second, T1 = 50 ms: an unanswered ping fails in 3.2 s and,
    # with keepalive_failures 1, removes the binding.
    path = engine_config(
        tmp_path / "acd.yaml",
        agents=3,
        t1=0.05,
        registrar="keepalive_interval: 1\nkeepalive_failures: 1",
    )
    path.write_text(path.read_text() + ROUTES)
    return path


@pytest.fixture
def centre(tmp_path: Path, engine_factory: Callable[[Path], RunningEngine]) -> RunningEngine:
    return engine_factory(_config(tmp_path))


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[StartSimulator]:
    """Start ``acd simulate-agents`` subprocesses; every one is stopped at the end."""
    started: list[PeerProcess] = []

    def start(engine: RunningEngine, *args: str) -> PeerProcess:
        peer = PeerProcess(
            [
                sys.executable,
                "-u",
                "-m",
                "acd.cli",
                "simulate-agents",
                "--config",
                str(tmp_path / "acd.yaml"),
                "--server",
                f"127.0.0.1:{engine.sip_port}",
                *args,
            ],
            tmp_path / f"simulator-{len(started)}.log",
            cwd=ROOT,
        )
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop(timeout=EXIT_TIMEOUT)


def _calls(engine: RunningEngine) -> list[dict[str, object]]:
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = (today - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")  # near midnight too
    until = (today + dt.timedelta(days=2)).isoformat().replace("+00:00", "Z")
    rows = engine.http_json(f"/api/v1/calls?since={since}&until={until}")["calls"]
    assert isinstance(rows, list)
    return rows


def _registered(engine: RunningEngine, peer: PeerProcess, users: tuple[str, ...]) -> None:
    try:
        engine.wait_for(
            lambda: {str(r["user"]) for r in engine.registrations()} >= set(users),
            REGISTER_TIMEOUT,
            f"agents {users} to register",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{peer.describe()}") from None


def test_agents_register_answer_a_call_and_stop_on_sigterm(
    tmp_path: Path, centre: RunningEngine, simulator: StartSimulator
) -> None:
    peer = simulator(centre, "--agents", ",".join(AGENTS), "--answer-after", "0.5")
    peer.wait_for_output(r"2 agents ready", REGISTER_TIMEOUT)
    _registered(centre, peer, AGENTS)
    for row in centre.registrations():
        assert "pyVoIP" in str(row["user_agent"]), row

    sipp_call(centre, tmp_path, tone_caller(tmp_path, 440, 2.0), "1002")

    def stored() -> bool:
        return len(_calls(centre)) == 1

    centre.wait_for(stored, 10.0, "the call record")
    [record] = _calls(centre)
    assert record["agent"] == "1002", record
    assert record["disposition"] == "answered", record
    assert record["hangup_side"] == "caller", record
    line = peer.wait_for_output(r"^1002 answered (.+) with 700 Hz: ([0-9.]+) s", 10.0)
    assert "0123456789" in line[1]
    assert 1.0 <= float(line[2]) <= 10.0

    # Keep-alive pings (one a second, one miss drops the binding) are answered.
    def answered_pings() -> float:
        return metric(centre, "sip_responses_total", method="OPTIONS", code_class="2xx")

    centre.wait_for(lambda: answered_pings() >= 8, 20.0, "eight answered keep-alive pings")
    assert {str(r["user"]) for r in centre.registrations()} == set(AGENTS)

    peer.process.send_signal(signal.SIGTERM)
    assert peer.wait(EXIT_TIMEOUT) == 0, peer.describe()
    # Unregistered on the way out, long before the bindings would expire.
    assert centre.registrations() == []
    output = peer.output()
    assert "stopped: 2 agents unregistered, 1 calls answered" in output
    for user in AGENTS:
        assert agent_password(user) not in output
    assert engine_healthy(centre)


def test_sigint_while_idle_exits_zero(centre: RunningEngine, simulator: StartSimulator) -> None:
    peer = simulator(centre, "--count", "1")
    peer.wait_for_output(r"1 agents ready", REGISTER_TIMEOUT)
    _registered(centre, peer, ("1001",))
    peer.process.send_signal(signal.SIGINT)
    assert peer.wait(EXIT_TIMEOUT) == 0, peer.describe()
    assert centre.registrations() == []


def test_a_wrong_password_is_a_clear_failure(
    tmp_path: Path, centre: RunningEngine, simulator: StartSimulator
) -> None:
    config = tmp_path / "acd.yaml"
    config.write_text(config.read_text().replace(agent_password("1003"), "not-the-password"))
    peer = simulator(centre, "--agents", "1003")
    assert peer.wait(EXIT_TIMEOUT) == 1, peer.describe()
    assert "agent 1003 could not register" in peer.output()
    assert "not-the-password" not in peer.output()
    assert centre.registrations() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--agents", "1001,4242"), "no agent 4242 in the configuration"),
        (("--count", "9"), "--count 9: the configuration has 3 agents"),
        (("--agents", "1001", "--count", "1"), "give --agents or --count, not both"),
        (("--tone", "5000"), "--tone 5000"),
    ],
)
def test_bad_choices_are_usage_errors(
    centre: RunningEngine, simulator: StartSimulator, args: tuple[str, ...], message: str
) -> None:
    peer = simulator(centre, *args)
    assert peer.wait(EXIT_TIMEOUT) == 2, peer.describe()
    assert message in peer.output()
    assert centre.registrations() == []
