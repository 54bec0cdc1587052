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
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, SIPP_DIR, RunningEngine, agent_password, free_port, require_tool
from .interop_helpers import PeerProcess, wait_answers_options

pytestmark = pytest.mark.interop

EngineFactory = Callable[[Path], RunningEngine]


def queue(**settings: object) -> str:
    """A queue as a YAML flow mapping: small timeouts for tests, then ``settings``."""
    values: dict[str, object] = {
        "strategy": "round-robin",
        "ring_timeout": 2,
        "wrap_up": 0,
        "retry_delay": 0,
        "reject_delay": 0,
        "announce_every": 0,
        **settings,
    }
    return "{" + ", ".join(f"{k}: {v}" for k, v in values.items()) + "}"


DEFAULT_QUEUE = queue()


# -- harness ---------------------------------------------------------------------------------


def acd_config(
    tmp_path: Path,
    *,
    agents: dict[str, str] | None = None,
    queues: dict[str, str] | None = None,
    routes: dict[str, str] | None = None,
    callback_port: int | None = None,
    trunk_address: str = "127.0.0.1",
    extra: str = "",
) -> Path:
    """An engine config: agents (username -> YAML skills), queues (name -> YAML mapping),
    routes (number -> "queue: x" or "ivr: y"); SIPp on 127.0.0.1 is the carrier trunk."""
    agents = agents or dict.fromkeys(("1001", "1002", "1003"), "{}")
    queues = queues or {"q": DEFAULT_QUEUE}
    routes = routes or {"200": "queue: q"}
    low = 30000 + (free_port() % 1000) * 20
    host = f', host: "127.0.0.1:{callback_port}"' if callback_port else ""
    lines = [
        "sip: {domain: acd.local, transports: [udp, tcp]}",
        "registrar: {keepalive_interval: 0}",
        "agents:",
        *(
            f'  - {{username: "{user}", password: "{agent_password(user)}", skills: {skills}}}'
            for user, skills in agents.items()
        ),
        "trunks:",
        f"  - {{name: carrier, addresses: [{trunk_address}]{host}}}",
        "routes:",
        *(f'  - {{match: "{number}", {target}}}' for number, target in routes.items()),
        "queues:",
        *(f"  {name}: {spec}" for name, spec in queues.items()),
        f"prompts: {{dir: {ROOT / 'config' / 'prompts'}}}",
        f"media: {{rtp_ports: [{low}, {low + 39}]}}",
        "calls: {ring_timeout: 5}",
        extra,
    ]
    path = tmp_path / "acd.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def post(engine: RunningEngine, path: str, body: object = None) -> dict[str, object]:
    return engine.post(path, body)


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
        self.trace = False
        """Run SIPp with -trace_msg: each run's messages in tmp_path/*_messages.log."""

    def _run(self, name: str, args: list[str]) -> PeerProcess:
        self.count += 1
        log = self.tmp_path / f"{self.count:02d}-{name}.out"
        trace = ["-trace_msg"] if self.trace else []
        peer = PeerProcess(
            [self.exe, f"127.0.0.1:{self.engine.sip_port}", *args, *trace, "-nostdin"],
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
        scenario = scenario or SIPP_DIR / "agent_uas.xml"
        peer = self._run(
            f"agent-{user}",
            [
                "-sf",
                str(scenario),
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
        if 'request="OPTIONS"' in scenario.read_text():
            # Not before it listens: a ring sent earlier is lost, read as no answer.
            wait_answers_options(port)
        return peer

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
    for sipp in made:  # an exception anywhere in the engine fails the test that caused it
        assert "Traceback" not in sipp.engine.log(), sipp.engine.log()[-6000:]


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


def events_of(engine: RunningEngine, call_id: object) -> list[dict[str, Any]]:
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


def test_the_log_says_when_a_call_arrives_and_ends_and_keeps_no_secret(
    tmp_path: Path, engine_factory: EngineFactory, sipp_factory: Callable[[RunningEngine], Sipp]
) -> None:
    """At INFO, one line when the call arrives and one when it ends, found by its id, and
    one per registration and agent state change; the calling number masked to its last
    four digits, no password or digest response."""
    engine = engine_factory(acd_config(tmp_path))
    sipp = sipp_factory(engine)
    sipp.agent("1001", scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=500))
    login_all(engine, ["1001"])
    callers = sipp.callers("200", 1)
    assert callers.wait(90) == 0, callers.describe()
    (record,) = wait_records(engine, 1)
    call_id = record["call_id"]
    text = engine.log()
    lines = [line for line in text.splitlines() if f"call {call_id} " in line]
    assert len(lines) == 2, lines
    arrived, ended = lines
    assert " INFO acd.calls: " in arrived and " INFO acd.calls: " in ended, lines
    assert f"call {call_id} arrived: sip {record['sip_call_id']}, " in arrived
    assert "from ******6789 to 200, trunk carrier" in arrived, arrived
    assert f"call {call_id} ended: answered, route 200, queue q, agent 1001, wait " in ended
    assert re.search(r"wait \d+\.\ds, talk \d+\.\ds, total \d+\.\ds, hung up by \w+", ended)
    assert re.search(r" INFO acd\.sipapp: 1001 registered sip:1001@127\.0\.0\.1:\d+", text)
    assert re.search(r" INFO acd\.queues\._service: agent 1001: logged_out -> available", text)
    assert "0123456789" not in text  # the full calling number, anywhere
    assert agent_password("1001") not in text
    assert "response=" not in text  # no digest Authorization header


def received_messages(tmp_path: Path) -> list[str]:
    """Every message the SIPp runs of a test received (their -trace_msg logs)."""
    messages: list[str] = []
    for log in sorted(tmp_path.glob("*_messages.log")):
        for block in log.read_text(errors="replace").split("\n-----"):
            head, _, body = block.partition("\n\n")
            if "message received" in head:
                messages.append(body.strip())
    return messages


def test_a_wildcard_bind_never_reaches_the_wire(
    tmp_path: Path, engine_factory: EngineFactory, sipp_factory: Callable[[RunningEngine], Sipp]
) -> None:
    """sip.listen 0.0.0.0, RTP bound there too: every Via, Contact and SDP o=/c= line the
    engine sends (the 200 to the caller, the INVITE to the agent, the BYE, the keep-alive
    OPTIONS and the REGISTER answers) names 127.0.0.1, its address on the route to the
    SIPp peers, never the wildcard; and the log says where the address comes from."""
    config = acd_config(tmp_path, extra="registrar: {keepalive_interval: 1}")
    text = config.read_text()
    text = text.replace("sip: {domain:", "sip: {listen: [0.0.0.0], domain:")
    text = text.replace("registrar: {keepalive_interval: 0}\n", "")
    config.write_text(text)
    engine = engine_factory(config)
    sipp = sipp_factory(engine)
    sipp.trace = True
    sipp.agent("1001", scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=500))
    login_all(engine, ["1001"])
    callers = sipp.callers("200", 1)
    assert callers.wait(90) == 0, callers.describe()
    (record,) = wait_records(engine, 1)
    assert record["disposition"] == "answered"
    assert record["agent"] == "1001"
    messages = received_messages(tmp_path)
    firsts = {message.splitlines()[0] for message in messages}
    assert "INVITE sip:1001@127.0.0.1" in " ".join(firsts), firsts  # the agent's ring
    assert any(first.startswith("BYE ") for first in firsts), firsts
    assert any(first.startswith("SIP/2.0 200") for first in firsts), firsts
    lines = [line for message in messages for line in message.splitlines()]
    carrying = [line for line in lines if line.lower().startswith(("via:", "contact:", "o=", "c="))]
    assert any(line.startswith("c=") for line in carrying), carrying
    assert any(line.lower().startswith("contact:") for line in carrying), carrying
    for line in carrying:
        assert "0.0.0.0" not in line, line
        assert "127.0.0.1" in line, line
    assert "wildcard address: Via and Contact carry the local address" in engine.log()
    assert "RTP binds 0.0.0.0: SDP carries the local address" in engine.log()


def ring_events(events: list[dict[str, Any]]) -> list[tuple[object, ...]]:
    """(event, agent, outcome) of every ring and connect event, in order."""
    keep = ("RINGNOANSWER", "RINGCANCELED", "CONNECT")
    return [
        (e["event"], e["agent"], (e.get("data") or {}).get("outcome"))
        for e in events
        if e["event"] in keep
    ]


def test_rejecting_and_silent_agents_are_passed_over(
    tmp_path: Path, engine_factory: EngineFactory, sipp_factory: Callable[[RunningEngine], Sipp]
) -> None:
    """1001 declines (486), 1002 never answers (ring timeout, and one miss pauses), 1003 answers."""
    config = acd_config(
        tmp_path,
        queues={"q": queue(strategy="linear", reject_delay=60, retry_delay=60, max_misses=1)},
    )
    engine = engine_factory(config)
    sipp = sipp_factory(engine)
    sipp.agent("1001", SIPP_DIR / "agent_busy.xml")
    sipp.agent("1002", scenario_copy(tmp_path, "agent_uas.xml", t1000=600_000))
    sipp.agent("1003", scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=1000))
    login_all(engine, ["1001", "1002", "1003"])
    callers = sipp.callers("200", 1)
    assert callers.wait(60) == 0, callers.describe()
    (record,) = wait_records(engine, 1)
    assert (record["disposition"], record["agent"]) == ("answered", "1003")
    assert record["ring_attempts"] == 3
    assert ring_events(events_of(engine, record["call_id"])) == [
        ("RINGNOANSWER", "1001", "rejected"),
        ("RINGNOANSWER", "1002", "no-answer"),
        ("CONNECT", "1003", None),
    ]
    silent = agent_state(engine, "1002")
    assert (silent["state"], silent["reason"]) == ("paused", "no-answer")
    assert agent_state(engine, "1001")["state"] == "available"


def test_agent_unregistering_while_ringing_is_given_up_at_once(
    tmp_path: Path, engine_factory: EngineFactory, sipp_factory: Callable[[RunningEngine], Sipp]
) -> None:
    engine = engine_factory(
        acd_config(tmp_path, queues={"q": queue(strategy="linear", ring_timeout=30)})
    )
    sipp = sipp_factory(engine)
    sipp.agent("1001", scenario_copy(tmp_path, "agent_uas.xml", t1000=600_000))
    sipp.agent("1002", scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=1000))
    login_all(engine, ["1001", "1002"])
    callers = sipp.callers("200", 1)
    engine.wait_for(
        lambda: agent_state(engine, "1001")["state"] == "ringing", timeout=20, what="1001 rings"
    )
    sipp.register("1001", free_port(), unregister=True)
    assert callers.wait(60) == 0, callers.describe()
    (record,) = wait_records(engine, 1)
    assert (record["disposition"], record["agent"]) == ("answered", "1002")
    events = events_of(engine, record["call_id"])
    assert ring_events(events)[:2] == [
        ("RINGNOANSWER", "1001", "failed"),
        ("CONNECT", "1002", None),
    ]
    gone = next(e for e in events if e["event"] == "RINGNOANSWER")
    data = gone["data"]
    assert isinstance(data, dict)
    assert data["reason"] == "unregistered"
    assert data["ringtime"] < 30  # not the ring timeout: the moment the registration went
    assert agent_state(engine, "1001")["reachable"] is False


def test_caller_abandoning_while_agents_ring_stops_every_ring(
    tmp_path: Path, engine_factory: EngineFactory, sipp_factory: Callable[[RunningEngine], Sipp]
) -> None:
    engine = engine_factory(
        acd_config(tmp_path, queues={"q": queue(strategy="ring-all", ring_timeout=30)})
    )
    sipp = sipp_factory(engine)
    silent = scenario_copy(tmp_path, "agent_uas.xml", t1000=600_000)
    sipp.agent("1001", silent)
    sipp.agent("1002", silent)
    login_all(engine, ["1001", "1002"])
    callers = sipp.callers(
        "200", 1, scenario=scenario_copy(tmp_path, "queue_caller.xml", t20000=3000)
    )
    assert callers.wait(60) == 0, callers.describe()
    (record,) = wait_records(engine, 1)
    assert (record["disposition"], record["hangup_side"]) == ("abandoned", "caller")
    assert record["agent"] is None
    names = [e["event"] for e in events_of(engine, record["call_id"])]
    assert names.count("RINGCANCELED") == 2 and "ABANDON" in names, names
    engine.wait_for(
        lambda: all(agent_state(engine, u)["state"] == "available" for u in ("1001", "1002")),
        timeout=10,
        what="both agents free again",
    )


def test_all_agents_paused_refuses_to_queue_when_the_queue_says_so(
    tmp_path: Path, engine_factory: EngineFactory, sipp_factory: Callable[[RunningEngine], Sipp]
) -> None:
    engine = engine_factory(
        acd_config(
            tmp_path,
            queues={"strict": queue(join_paused="false"), "empty": queue()},
            routes={"200": "queue: strict", "201": "queue: empty"},
        )
    )
    sipp = sipp_factory(engine)
    sipp.agent("1001")
    login_all(engine, ["1001"])
    post(engine, "/api/v1/agents/1001/pause", {"reason": "lunch"})
    assert callers_done(sipp.callers("200", 1))
    # Nobody logged in at all: the default join_empty is false.
    post(engine, "/api/v1/agents/1001/logout")
    assert callers_done(sipp.callers("201", 1))
    first, second = wait_records(engine, 2)
    for record, reason in ((first, "all-paused"), (second, "no-agents")):
        assert record["disposition"] == "failed"
        (event,) = [e for e in events_of(engine, record["call_id"]) if e["event"] == "EXITEMPTY"]
        assert event["data"] == {"reason": reason}


def callers_done(peer: PeerProcess) -> bool:
    assert peer.wait(60) == 0, peer.describe()
    return True


def test_maximum_wait_hangs_up_after_the_prompt(
    tmp_path: Path, engine_factory: EngineFactory, sipp_factory: Callable[[RunningEngine], Sipp]
) -> None:
    engine = engine_factory(
        acd_config(tmp_path, queues={"q": queue(join_empty="true", max_wait=2)})
    )
    sipp = sipp_factory(engine)
    assert callers_done(sipp.callers("200", 1))
    (record,) = wait_records(engine, 1)
    assert (record["disposition"], record["hangup_side"]) == ("timeout", "system")
    names = [e["event"] for e in events_of(engine, record["call_id"])]
    assert names == ["ENTERQUEUE", "EXITWITHTIMEOUT"], names


def test_callback_at_maximum_wait_dials_the_caller_once_an_agent_answers(
    tmp_path: Path, engine_factory: EngineFactory, sipp_factory: Callable[[RunningEngine], Sipp]
) -> None:
    callback_port = free_port()
    engine = engine_factory(
        acd_config(
            tmp_path,
            queues={"q": queue(join_empty="true", max_wait=2, on_max_wait="callback")},
            callback_port=callback_port,
        )
    )
    sipp = sipp_factory(engine)
    # The caller's own phone, reached again through the carrier trunk's host.
    phone = sipp._run(
        "called-back",
        ["-sf", str(scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=1500)),
         "-i", "127.0.0.1", "-p", str(callback_port), "-mi", "127.0.0.1",
         "-mp", str(free_port()), "-m", "1", "-timeout", "60s", "-timeout_error"],
    )  # fmt: skip
    assert callers_done(sipp.callers("200", 1))  # told "we will call you back", then BYE
    engine.wait_for(
        lambda: engine.http_json("/api/v1/queues")["queues"][0]["waiting"] == 1,  # type: ignore[index]
        timeout=10,
        what="the callback keeping its place",
    )
    sipp.agent("1001", scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=10_000))
    login_all(engine, ["1001"])
    assert phone.wait(60) == 0, phone.describe()
    (record,) = wait_records(engine, 1)
    assert (record["disposition"], record["agent"]) == ("callback", "1001")
    events = [
        (e["event"], (e.get("data") or {}).get("step"))
        for e in events_of(engine, record["call_id"])
    ]
    assert ("CALLBACK", "queued") in events and ("CALLBACK", "connected") in events
    assert events[-1] == ("COMPLETECALLER", None), events


IVR_FLOW = """
name: main
start: welcome
nodes:
  welcome: {type: play, prompts: [welcome], barge_in: true, next: menu}
  menu:
    type: menu
    prompt: [main_menu]
    options: {"1": sales, "2": support}
    timeout: 10
    retries: 1
    on_failure: bye
  sales: {type: queue, queue: sales, skills: {sales: 1}, next: bye}
  support: {type: queue, queue: support, skills: {support: 1}, next: bye}
  bye: {type: hangup}
"""


def test_ivr_callers_reach_two_queues_and_their_agents(
    tmp_path: Path, engine_factory: EngineFactory, sipp_factory: Callable[[RunningEngine], Sipp]
) -> None:
    ivr_dir = tmp_path / "ivr"
    ivr_dir.mkdir()
    (ivr_dir / "main.yaml").write_text(IVR_FLOW)
    engine = engine_factory(
        acd_config(
            tmp_path,
            agents={"1001": "{sales: 5}", "1002": "{sales: 3}", "1003": "{support: 5}"},
            queues={"sales": queue(skills="{sales: 1}"), "support": queue(skills="{support: 1}")},
            routes={"100": "ivr: main, record: false"},
            extra=f"ivr_dir: {ivr_dir}",
        )
    )
    sipp = sipp_factory(engine)
    for user in ("1001", "1002", "1003"):
        sipp.agent(user, scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=60_000))
    login_all(engine, ["1001", "1002", "1003"])
    text = (SIPP_DIR / "ivr_caller.xml").read_text()
    # Stay 12 s after the key (the queue, then the agent), not 2.5: an agent
    # normally answers within a second, but a starved CI machine has taken
    # more than 8 s, and a caller gone by then is (rightly) an abandon.
    assert '<pause milliseconds="2500"/>' in text
    text = text.replace('<pause milliseconds="2500"/>', '<pause milliseconds="12000"/>')
    runs = []
    for key, calls, concurrent in (("1", 4, 2), ("2", 2, 1)):
        scenario = tmp_path / f"ivr-{key}.xml"
        scenario.write_text(text.replace("dtmf_2833_1.pcap", f"dtmf_2833_{key}.pcap"))
        runs.append(sipp.callers("100", calls, scenario=scenario, concurrent=concurrent))
    assert all(callers_done(run) for run in runs)
    records = wait_records(engine, 6)
    assert [r["disposition"] for r in records] == ["answered"] * 6
    by_queue = Counter((r["queue"], r["agent"]) for r in records)
    # Round-robin over the two sales agents; support has one agent.
    assert by_queue == {("sales", "1001"): 2, ("sales", "1002"): 2, ("support", "1003"): 2}
    assert all(r["hangup_side"] == "caller" for r in records)


def test_feature_codes_from_the_agents_phone_change_its_state(
    tmp_path: Path, engine_factory: EngineFactory, sipp_factory: Callable[[RunningEngine], Sipp]
) -> None:
    # No trunk on 127.0.0.1 here: the phone's INVITEs must authenticate as agent 1001.
    engine = engine_factory(acd_config(tmp_path, trunk_address="192.0.2.1"))
    sipp = sipp_factory(engine)
    expected = [
        ("*21", "available", None),
        ("*23", "paused", "break"),
        ("*232", "paused", "lunch"),
        ("*24", "available", None),
        ("*22", "logged_out", None),
    ]
    for code, state, reason in expected:
        peer = sipp._run(
            f"dial{code[1:]}",
            ["-sf", str(SIPP_DIR / "feature_code.xml"), "-s", code, "-key", "agent", "1001",
             "-au", "1001", "-ap", agent_password("1001"),
             "-auth_uri", f"{code}@127.0.0.1:{engine.sip_port}",
             "-i", "127.0.0.1", "-p", str(free_port()), "-mi", "127.0.0.1",
             "-mp", str(free_port()), "-m", "1", "-timeout", "30s", "-timeout_error"],
        )  # fmt: skip
        assert callers_done(peer)
        view = agent_state(engine, "1001")
        assert (view["state"], view["reason"]) == (state, reason), code
    records = wait_records(engine, len(expected))
    assert [r["route"] for r in records] == [code for code, _, _ in expected]
    assert all(r["disposition"] == "answered" for r in records)
    assert "Traceback" not in engine.log()


def test_an_agent_whose_phone_leaves_at_once_puts_the_caller_back_at_the_head(
    tmp_path: Path, engine_factory: EngineFactory, sipp_factory: Callable[[RunningEngine], Sipp]
) -> None:
    """1001 answers and its phone hangs up a second later: within the queue's requeue
    window, so the caller goes back to the queue (no second ENTERQUEUE: one offered
    call), 1001 gets a miss and no wrap-up, and 1002 serves the caller."""
    config = acd_config(
        tmp_path,
        queues={"q": queue(strategy="linear", retry_delay=30, requeue_window=3, wrap_up=30)},
    )
    engine = engine_factory(config)
    sipp = sipp_factory(engine)
    sipp.agent("1001", scenario_copy(tmp_path, "agent_uas.xml", t1000=100, t3000=1000))
    sipp.agent("1002", scenario_copy(tmp_path, "agent_uas.xml", t1000=100, t3000=5000))
    login_all(engine, ["1001", "1002"])
    callers = sipp.callers("200", 1)
    assert callers.wait(60) == 0, callers.describe()
    (record,) = wait_records(engine, 1)
    assert (record["disposition"], record["agent"], record["hangup_side"]) == (
        "answered",
        "1002",
        "agent",
    )
    events = events_of(engine, record["call_id"])
    steps = [(e["event"], e["agent"]) for e in events if e["event"] not in ("RINGCANCELED",)]
    assert steps == [
        ("ENTERQUEUE", None),
        ("CONNECT", "1001"),
        ("REQUEUE", "1001"),
        ("CONNECT", "1002"),
        ("COMPLETEAGENT", "1002"),
    ], events
    requeue = next(e for e in events if e["event"] == "REQUEUE")
    assert requeue["data"]["reason"] == "bye" and requeue["data"]["talktime"] < 3
    failed = agent_state(engine, "1001")
    assert failed["misses"] == 1 and failed["wrap_up_left_s"] is None, failed
    assert failed["answered_today"] == 1
