"""SIPp load against a running engine, and what SIPp saw, call by call.

``start_load`` runs SIPp in the background (a ``PeerProcess``) at a bounded
rate and count, with ``-trace_msg`` on, so that ``calls_seen`` can read
back every message SIPp sent and received: for each Call-ID it placed, the
final response its INVITE got, whether its own BYE was answered (and when),
and whether the engine hung up on it. The tests that kill or stop the engine
under load account for every call from this, against the CDRs.

Also here: the configuration those tests share (a trunk for 127.0.0.1, one
route to one IVR flow written beside the config, a wide RTP port range) and
reading every CDR back through the HTTP API.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from .conftest import ROOT, RunningEngine, free_port, require_tool, write_config
from .interop_helpers import PeerProcess

SCENARIOS = ROOT / "tests" / "data" / "sipp"
_BLOCK = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d[ \t]\d\d:\d\d:\d\d\.\d+)", re.M)


def load_config(
    tmp_path: Path, flow: str, *, storage_url: str | None = None, drain: float | None = None
) -> Path:
    """An engine config routing 100 to the IVR flow ``flow`` (YAML text), not recorded;
    ``drain`` is ``calls.drain_timeout`` (what a SIGTERM waits for calls to end).

    The RTP range is wide enough for a few hundred simultaneous calls and
    picked from a free port, so that engines in parallel test runs rarely
    share one.
    """
    ivr_dir = tmp_path / "ivr"
    ivr_dir.mkdir(exist_ok=True)
    (ivr_dir / "load.yaml").write_text(flow)
    low = 20000 + (free_port() % 20) * 1000
    lines = [
        "trunks:",
        "  - {name: carrier, addresses: [127.0.0.1]}",
        "routes:",
        '  - {match: "100", ivr: load, record: false}',
        f"ivr_dir: {ivr_dir}",
        f"prompts: {{dir: {ROOT / 'config' / 'prompts'}}}",
        f"media: {{rtp_ports: [{low}, {low + 999}]}}",
    ]
    if storage_url is not None:
        lines.append(f"storage: {{url: '{storage_url}'}}")
    if drain is not None:
        lines.append(f"calls: {{drain_timeout: {drain}}}")
    return write_config(tmp_path / "acd.yaml", agents=2, extra="\n".join(lines))


def start_load(
    engine: RunningEngine,
    workdir: Path,
    scenario: str,
    *,
    calls: int,
    rate: int,
) -> PeerProcess:
    """SIPp placing ``calls`` calls at ``rate`` per second to 100, in the background.

    A call whose peer has gone quiet fails after three retransmissions
    (about 3.5 s) or 10 s without the message it waits for, and SIPp gives
    up after 120 s whatever happens: a killed engine cannot hang the test.
    """
    sipp = require_tool("sipp")
    workdir.mkdir(parents=True, exist_ok=True)
    args = [
        sipp,
        f"127.0.0.1:{engine.sip_port}",
        "-sf",
        str(SCENARIOS / scenario),
        "-s",
        "100",
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port()),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(free_port()),
        "-max_invite_retrans",
        "3",
        "-max_non_invite_retrans",
        "3",
        "-recv_timeout",
        "10s",
        "-timeout",
        "120s",
        "-timeout_error",
        "-nostdin",
        "-trace_msg",
        "-trace_err",
    ]
    return PeerProcess(args, workdir / "sipp.out", cwd=workdir)


@dataclass
class SippCall:
    """One call SIPp placed, as its message log tells it."""

    call_id: str
    invite_status: int | None = None
    """The first final response to the INVITE; None when none came."""
    invite_responses: list[int] = field(default_factory=list)
    """Every response to the INVITE in the order received, retransmissions included."""
    retry_after: str | None = None
    """The Retry-After of the first final response to the INVITE, if it had one."""
    invited_at: float | None = None
    """When SIPp sent the INVITE (Unix time; the first transmission)."""
    bye_answered_at: float | None = None
    """When the engine answered SIPp's BYE with 200 (Unix time); None if it never did."""
    hung_up_by_engine: bool = False
    """The engine sent a BYE."""

    @property
    def answered(self) -> bool:
        return self.invite_status == 200

    @property
    def ended_cleanly(self) -> bool:
        return self.bye_answered_at is not None or self.hung_up_by_engine


def calls_seen(workdir: Path) -> dict[str, SippCall]:
    """Every call in SIPp's ``*_messages.log`` under ``workdir``, by Call-ID, in order."""
    logs = sorted(workdir.glob("*_messages.log"))
    if not logs:
        raise AssertionError(f"no SIPp message log in {workdir}")
    calls: dict[str, SippCall] = {}
    for log in logs:
        text = log.read_text(errors="replace")
        starts = list(_BLOCK.finditer(text))
        for index, start in enumerate(starts):
            end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
            _apply(calls, start[1], text[start.end() : end])
    return calls


def _apply(calls: dict[str, SippCall], stamp: str, block: str) -> None:
    lines = [line.strip() for line in block.strip().splitlines()]
    if len(lines) < 3:
        return
    sent = "message sent" in lines[0]
    first = lines[2]
    headers = dict(_header(line) for line in lines[3:] if ":" in line)
    call_id = headers.get("call-id")
    cseq = headers.get("cseq", "").split()
    if call_id is None or len(cseq) != 2:
        return
    method = cseq[1]
    if sent and first.startswith("INVITE "):
        if call_id not in calls:
            calls[call_id] = SippCall(call_id, invited_at=_unix_time(stamp))
        return
    call = calls.get(call_id)
    if call is None:
        return
    if not sent and first.startswith("SIP/2.0 "):
        status = int(first.split()[1])
        if method == "INVITE":
            call.invite_responses.append(status)
        if method == "INVITE" and status >= 200 and call.invite_status is None:
            call.invite_status = status
            call.retry_after = headers.get("retry-after")
        elif method == "BYE" and status == 200 and call.bye_answered_at is None:
            call.bye_answered_at = _unix_time(stamp)
    elif not sent and first.startswith("BYE "):
        call.hung_up_by_engine = True


def _unix_time(stamp: str) -> float:
    when = dt.datetime.strptime(stamp.replace("\t", " "), "%Y-%m-%d %H:%M:%S.%f")
    return when.timestamp()  # SIPp logs local time


def _header(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()


def all_call_records(engine: RunningEngine) -> list[dict[str, object]]:
    """Every CDR from yesterday to tomorrow (UTC), through the API, page by page."""
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = (today - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    until = (today + dt.timedelta(days=2)).isoformat().replace("+00:00", "Z")
    records: list[dict[str, object]] = []
    after = ""
    while True:
        page = engine.http_json(f"/api/v1/calls?since={since}&until={until}&limit=1000{after}")
        rows = page["calls"]
        assert isinstance(rows, list)
        records += rows
        if not page.get("next"):
            return records
        after = f"&after={quote(str(page['next']))}"
