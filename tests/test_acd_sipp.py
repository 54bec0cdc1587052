"""The ACD end to end: SIPp agents answer queued SIPp callers through a running engine.

Each agent is two SIPp runs on one local port: bench/sipp/register.xml
registers the account (its Contact is that port), then bench/sipp/agent_uas.xml
(or agent_busy.xml) serves the calls rung there. Callers are
bench/sipp/queue_caller.xml from 127.0.0.1, which the configuration names as
the carrier trunk. Scenario times are recv timeouts, so each test writes a
copy with its own (see the scenarios' headers). Every outcome is read back
from the call records and the agent API; nothing waits by sleeping.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import ROOT, SIPP_DIR, RunningEngine, agent_password, free_port, require_tool
from .interop_helpers import PeerProcess, engine_config

pytestmark = pytest.mark.interop

EngineFactory = Callable[[Path], RunningEngine]
DEFAULT_QUEUE = (
    "{strategy: round-robin, ring_timeout: 2, wrap_up: 0, retry_delay: 0, announce_every: 0}"
)


# -- harness ---------------------------------------------------------------------------------


def acd_config(
    tmp_path: Path,
    *,
    agents: int = 3,
    queues: dict[str, str] | None = None,
    routes: dict[str, str] | None = None,
    callback_port: int | None = None,
    extra: str = "",
) -> Path:
    """Agents 1001.. with the demo passwords; queues by name -> YAML flow mapping."""
    queues = queues or {"q": DEFAULT_QUEUE}
    routes = routes or {"200": "q"}
    low = 30000 + (free_port() % 1000) * 20
    host = f', host: "127.0.0.1:{callback_port}"' if callback_port else ""
    lines = [
        "trunks:",
        f"  - {{name: carrier, addresses: [127.0.0.1]{host}}}",
        "routes:",
        *(f'  - {{match: "{number}", queue: {queue}}}' for number, queue in routes.items()),
        "queues:",
        *(f"  {name}: {spec}" for name, spec in queues.items()),
        f"prompts: {{dir: {ROOT / 'config' / 'prompts'}}}",
        f"media: {{rtp_ports: [{low}, {low + 19}]}}",
        "calls: {ring_timeout: 5}",
        extra,
    ]
    path = engine_config(tmp_path / "acd.yaml", agents=agents, registrar="keepalive_interval: 0")
    path.write_text(path.read_text() + "\n".join(lines) + "\n")
    return path


def post(engine: RunningEngine, path: str, body: object = None) -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(
        f"http://127.0.0.1:{engine.http_port}{path}", data=data, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def scenario_copy(tmp_path: Path, name: str, **timeouts: int) -> Path:
    """A copy of bench/sipp/``name`` with recv timeouts replaced (old value -> new value)."""
    text = (SIPP_DIR / name).read_text()
    for key, new in timeouts.items():
        old = key.removeprefix("t")
        marker = f'timeout="{old}"'
        assert marker in text, f"{name} has no {marker}"
        text = text.replace(marker, f'timeout="{new}"')
    path = tmp_path / f"{name.removesuffix('.xml')}-{'-'.join(map(str, timeouts.values()))}.xml"
    path.write_text(text)
    return path


class Sipp:
    """Runs SIPp processes for one test; every one is stopped at the end."""

    def __init__(self, engine: RunningEngine, tmp_path: Path) -> None:
        self.exe = require_tool("sipp")
        self.engine = engine
        self.tmp_path = tmp_path
        self.peers: list[PeerProcess] = []
        self.count = 0

    def _run(self, name: str, args: list[str]) -> PeerProcess:
        self.count += 1
        log = self.tmp_path / f"{self.count:02d}-{name}.out"
        peer = PeerProcess(
            [self.exe, f"127.0.0.1:{self.engine.sip_port}", *args, "-nostdin"],
            log,
            cwd=self.tmp_path,
        )
        self.peers.append(peer)
        return peer

    def register(self, user: str, port: int, *, unregister: bool = False) -> None:
        """REGISTER ``user`` with the Contact on ``port`` (or remove every binding)."""
        scenario = SIPP_DIR / "register.xml"
        if unregister:
            text = scenario.read_text()
            text = text.replace("Expires: 300", "Expires: 0")
            text = text.replace(
                "Contact: <sip:[field0]@[local_ip]:[local_port];transport=[transport]>",
                "Contact: *",
            )
            scenario = self.tmp_path / "unregister.xml"
            scenario.write_text(text)
        inf = self.tmp_path / f"account-{user}.csv"
        domain = f"127.0.0.1:{self.engine.sip_port}"
        inf.write_text(
            f"SEQUENTIAL\n{user};{domain};"
            f"[authentication username={user} password={agent_password(user)}]\n"
        )
        peer = self._run(
            f"register-{user}",
            [
                "-sf",
                str(scenario),
                "-inf",
                str(inf),
                "-i",
                "127.0.0.1",
                "-p",
                str(port),
                "-m",
                "1",
                "-timeout",
                "15s",
                "-timeout_error",
            ],
        )
        code = peer.wait(30)
        assert code == 0, f"registration of {user} failed\n{peer.describe()}"

    def agent(self, user: str, scenario: Path | None = None) -> PeerProcess:
        """Register ``user`` and serve its calls with ``scenario`` (agent_uas.xml by default)."""
        port = free_port()
        self.register(user, port)
        return self._run(
            f"agent-{user}",
            [
                "-sf",
                str(scenario or SIPP_DIR / "agent_uas.xml"),
                "-i",
                "127.0.0.1",
                "-p",
                str(port),
                "-mi",
                "127.0.0.1",
                "-mp",
                str(free_port()),
                "-timeout",
                "120s",
            ],
        )

    def callers(
        self,
        number: str,
        calls: int,
        *,
        scenario: Path | None = None,
        rate: str = "1",
        concurrent: int = 1,
    ) -> PeerProcess:
        """``calls`` callers dialling ``number``, ``rate`` new calls a second, at most
        ``concurrent`` at once."""
        return self._run(
            f"callers-{number}",
            [
                "-sf",
                str(scenario or SIPP_DIR / "queue_caller.xml"),
                "-s",
                number,
                "-i",
                "127.0.0.1",
                "-p",
                str(free_port()),
                "-mi",
                "127.0.0.1",
                "-mp",
                str(free_port()),
                "-m",
                str(calls),
                "-r",
                rate,
                "-l",
                str(concurrent),
                "-timeout",
                "90s",
                "-timeout_error",
                "-trace_err",
            ],
        )

    def stop(self) -> None:
        for peer in self.peers:
            peer.stop(timeout=5)


@pytest.fixture
def sipp_factory(tmp_path: Path) -> Iterator[Callable[[RunningEngine], Sipp]]:
    made: list[Sipp] = []

    def factory(engine: RunningEngine) -> Sipp:
        made.append(Sipp(engine, tmp_path))
        return made[-1]

    yield factory
    for sipp in made:
        sipp.stop()


def call_records(engine: RunningEngine) -> list[dict[str, object]]:
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = (today - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    until = (today + dt.timedelta(days=2)).isoformat().replace("+00:00", "Z")
    rows = engine.http_json(f"/api/v1/calls?since={since}&until={until}&limit=1000")["calls"]
    assert isinstance(rows, list)
    return rows


def wait_records(engine: RunningEngine, count: int, timeout: float = 60) -> list[dict[str, object]]:
    """The call records once ``count`` of them are stored and closed."""
    found: list[dict[str, object]] = []

    def stored() -> bool:
        found[:] = [r for r in call_records(engine) if r.get("ended_at")]
        return len(found) >= count

    engine.wait_for(stored, timeout=timeout, what=f"{count} call records")
    return sorted(found, key=lambda r: str(r["arrived_at"]))


def events_of(engine: RunningEngine, call_id: object) -> list[dict[str, object]]:
    rows = engine.http_json(f"/api/v1/calls/{call_id}")["events"]
    assert isinstance(rows, list)
    return rows


def agent_state(engine: RunningEngine, user: str) -> dict[str, object]:
    return engine.http_json(f"/api/v1/agents/{user}")


def login_all(engine: RunningEngine, users: list[str]) -> None:
    for user in users:
        post(engine, f"/api/v1/agents/{user}/login")
    engine.wait_for(
        lambda: all(agent_state(engine, u)["state"] == "available" for u in users),
        timeout=10,
        what="agents available",
    )


# -- tests -----------------------------------------------------------------------------------


def test_round_robin_spreads_calls_evenly(
    tmp_path: Path, engine_factory: EngineFactory, sipp_factory: Callable[[RunningEngine], Sipp]
) -> None:
    engine = engine_factory(acd_config(tmp_path))
    sipp = sipp_factory(engine)
    users = ["1001", "1002", "1003"]
    answer = scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=500)
    for user in users:
        sipp.agent(user, answer)
    login_all(engine, users)
    callers = sipp.callers("200", 6)
    assert callers.wait(90) == 0, callers.describe()
    records = wait_records(engine, 6)
    assert [r["disposition"] for r in records] == ["answered"] * 6
    assert all(r["queue"] == "q" for r in records)
    assert Counter(str(r["agent"]) for r in records) == dict.fromkeys(users, 2)
    names = [e["event"] for e in events_of(engine, records[0]["call_id"])]
    assert names[0] == "ENTERQUEUE" and "CONNECT" in names
    assert names[-1] == "COMPLETEAGENT", names
