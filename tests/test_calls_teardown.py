"""Callers hang up in every kind of IVR node; nothing a call held outlives it.

100 SIPp callers (bench/sipp/ivr_caller_info.xml, keys from an injection
file) each press one key at the entry menu of tests' "nodes" flow, which
sends them into one kind of node, and hang up 2.5 s later while that node is
busy: a prompt playing, a menu or a digit collection waiting, a data dip
waiting on an HTTP server that never answers in time, a transfer ringing a
phone that never picks up (SIPp, bench/sipp/ringing_uas.xml: the engine must
CANCEL it), a survey question, a hangup node's goodbye, and a chain of the
instant nodes (set, language, condition, goto) into a prompt, and a queue
with nobody logged in (music on hold).

Afterwards the engine's own accounting (GET /api/v1/live/resources, taken
after a full garbage collection) must be back where it started: no call,
task, dialog, dialog timer, transaction, RTP port or playback left, and no
call or leg object still referenced by anything.
"""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import SIPP_DIR, RunningEngine, free_port, require_tool
from tests.interop_helpers import sipp_caller_args
from tests.test_calls_sipp import call_records, ivr_config

pytestmark = pytest.mark.interop

CALLS = 100
T1 = 0.05  # a terminated dialog is kept 64*T1 for stray retransmissions: 3.2 s here

NODES = """
name: nodes
start: entry
nodes:
  entry:
    type: menu
    prompt: [{{silence: 200}}]
    options: {{"1": play, "2": menu, "3": collect, "4": dip, "5": transfer,
               "6": survey, "7": bye, "8": chain, "9": queue}}
    timeout: 20
    retries: 0
    on_failure: bye
  play:
    type: play
    prompts: [main_menu]
    next: bye
  menu:
    type: menu
    prompt: [please_hold]
    options: {{"1": bye}}
    timeout: 30
    retries: 0
    on_failure: bye
  collect:
    type: collect
    prompt: [please_hold]
    variable: account
    min_digits: 4
    max_digits: 4
    timeout: 30
    next: bye
    on_failure: bye
  dip:
    type: http
    url: "http://127.0.0.1:{http_port}/slow?caller={{caller}}"
    timeout: 20
    result: {{name: name}}
    next: bye
    fallback: bye
  transfer:
    type: transfer
    target: "sip:sales@127.0.0.1:{uas_port}"
  survey:
    type: survey
    prompt: [survey_question]
    timeout: 30
    retries: 0
    next: bye
  bye:
    type: hangup
    prompt: [main_menu]
  chain:
    type: set
    variables: {{segment: gold}}
    next: chain_language
  chain_language:
    type: language
    language: en
    next: chain_condition
  chain_condition:
    type: condition
    cases:
      - when: {{variables: {{segment: gold}}}}
        next: chain_goto
    default: bye
  chain_goto:
    type: goto
    next: play
  queue:
    type: queue
    queue: sales
    next: bye
"""

NODE_OF_KEY = {
    "1": "play",
    "2": "menu",
    "3": "collect",
    "4": "dip",
    "5": "transfer",
    "6": "survey",
    "7": "bye",
    "8": "chain_goto",
    "9": "queue",
}


class _SlowCrm(http.server.BaseHTTPRequestHandler):
    """A data-dip server that keeps every request waiting until the test ends."""

    release = threading.Event()

    def do_GET(self) -> None:
        self.release.wait(timeout=60)
        body = b'{"name": "late"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_hanging_up_in_every_node_leaves_nothing_behind(
    tmp_path: Path, engine_factory: object
) -> None:
    sipp = require_tool("sipp")
    crm = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowCrm)
    crm.daemon_threads = True
    threading.Thread(target=crm.serve_forever, daemon=True).start()
    uas_port = free_port()
    uas = subprocess.Popen(
        [
            sipp,
            "-sf",
            str(SIPP_DIR / "ringing_uas.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(uas_port),
            "-mp",
            str(free_port()),
            "-nostdin",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        config = ivr_config(tmp_path, flow="nodes", rtp_pairs=120)
        text = config.read_text()
        assert text.startswith("sip:\n")
        # Nobody logged in, but callers may wait: music on hold until they give up.
        queues = "queues:\n  sales: {join_empty: true, announce_every: 5}\n"
        config.write_text(text.replace("sip:\n", f"sip:\n  timers: {{t1: {T1}}}\n", 1) + queues)
        (tmp_path / "ivr" / "nodes.yaml").write_text(
            NODES.format(http_port=crm.server_address[1], uas_port=uas_port)
        )
        engine: RunningEngine = engine_factory(config)  # type: ignore[operator]
        before = engine.http_json("/api/v1/live/resources")

        keys = tmp_path / "keys.csv"
        order = [str(1 + n % len(NODE_OF_KEY)) for n in range(CALLS)]
        keys.write_text("SEQUENTIAL\n" + "".join(f"{key};\n" for key in order))
        scenario = tmp_path / "caller.xml"
        scenario.write_text(
            (SIPP_DIR / "ivr_caller_info.xml").read_text().replace("[digit]", "[field0]")
        )
        result = subprocess.run(
            [
                sipp,
                f"127.0.0.1:{engine.sip_port}",
                *sipp_caller_args(
                    scenario,
                    calls=CALLS,
                    timeout="90s",
                    extra=("-inf", str(keys), "-r", "10", "-l", "40", "-nostdin"),
                ),
            ],
            cwd=tmp_path,
            capture_output=True,
            timeout=120,
            check=False,
        )
        errors = "\n".join(
            p.read_text(errors="replace") for p in tmp_path.glob("caller*_errors.log")
        )
        assert result.returncode == 0, f"sipp failed ({result.returncode}):\n{errors[-3000:]}"

        records: list[dict[str, object]] = []

        def all_recorded() -> bool:
            records[:] = call_records(engine)
            return len(records) == CALLS

        engine.wait_for(all_recorded, timeout=30, what=f"{CALLS} call records")
        reached: Counter[str] = Counter()
        for record in records:
            path = record["ivr_path"]
            assert isinstance(path, list) and path[0] == "entry", record
            key = str(record["digits"])[:1]
            assert NODE_OF_KEY[key] in path, (key, path)
            assert record["hangup_side"] == "caller", record
            reached[NODE_OF_KEY[key]] += 1
        assert set(reached) == set(NODE_OF_KEY.values())

        settled: dict[str, object] = {}
        # The INVITEs the engine sent to the phone that never answered were
        # cancelled and got 487: their client transactions stay in the SIP
        # layer for Timer D (32 s on UDP, RFC 3261 17.1.1.2; not scaled by T1)
        # to absorb retransmitted 487s, holding nothing of the call. At most
        # that many transactions may still be there.
        transfers = reached["transfer"]

        def idle() -> bool:
            settled.clear()
            settled.update(engine.http_json("/api/v1/live/resources"))
            return (
                all(
                    value == (before[name] if name == "tasks" else 0)
                    for name, value in settled.items()
                    if name != "sip_transactions"
                )
                and int(settled["sip_transactions"]) <= transfers
            )

        try:
            engine.wait_for(idle, timeout=64 * T1 + 20, what="the engine to hold nothing")
        except AssertionError:
            raise AssertionError(f"left behind: {settled} (before: {before})") from None
    finally:
        _SlowCrm.release.set()
        crm.shutdown()
        uas.terminate()
        try:
            uas.wait(timeout=10)
        except subprocess.TimeoutExpired:
            uas.kill()
            uas.wait()
