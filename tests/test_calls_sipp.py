"""Inbound calls end to end: a SIPp caller through a running engine's IVR.

The caller is SIPp (bench/sipp/ivr_caller*.xml) from 127.0.0.1, which the
test configuration names as a trunk; it dials 100, waits for the welcome
prompt, presses a key (RFC 4733 from a capture SIPp ships, or SIP INFO) and
hangs up. The call record, read back through the HTTP API, must show the
node the key led to.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.captures import inband_dtmf_capture
from tests.conftest import ROOT, SIPP_DIR, RunningEngine, free_port, require_tool, write_config
from tests.interop_helpers import sipp_caller_args
from tests.test_acd_sipp import call_records  # a window from yesterday: calls near midnight

pytestmark = pytest.mark.interop

CAPTURES = Path("/usr/share/sip-tester")
FLOW_DIR = ROOT / "tests" / "data" / "ivr"


def ivr_config(
    tmp_path: Path,
    *,
    record: bool = False,
    flow: str = "main",
    trunk: bool = True,
    rtp_pairs: int = 10,
    extra: str = "",
) -> Path:
    """Route 100 to ``flow``; with ``trunk`` 127.0.0.1 calls come in unauthenticated."""
    ivr_dir = tmp_path / "ivr"
    shutil.copytree(FLOW_DIR, ivr_dir)
    low = 30000 + (free_port() % (20000 // (2 * rtp_pairs))) * 2 * rtp_pairs
    extra = "\n".join(
        [
            "trunks:" if trunk else "trunks: []",
            "  - {name: carrier, addresses: [127.0.0.1]}" if trunk else "",
            "routes:",
            f'  - {{match: "100", ivr: {flow}, record: {str(record).lower()}}}',
            f"ivr_dir: {ivr_dir}",
            f"prompts: {{dir: {ROOT / 'config' / 'prompts'}}}",
            f"media: {{rtp_ports: [{low}, {low + 2 * rtp_pairs - 1}]}}",
            extra,
        ]
    )
    return write_config(tmp_path / "acd.yaml", agents=2, extra=extra)


def run_sipp(engine: RunningEngine, tmp_path: Path, scenario: Path, *args: str) -> None:
    sipp = require_tool("sipp")
    result = subprocess.run(
        [sipp, f"127.0.0.1:{engine.sip_port}", *sipp_caller_args(scenario, timeout="30s"), *args],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    errors = "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("*_errors.log"))
    assert result.returncode == 0, f"sipp failed ({result.returncode}):\n{errors}\n{engine.log()}"


def one_record(engine: RunningEngine) -> dict[str, object]:
    """The single CDR of the run, once the writer has stored it."""
    found: list[dict[str, object]] = []

    def stored() -> bool:
        found[:] = call_records(engine)
        return len(found) == 1

    engine.wait_for(stored, timeout=10, what="the call record")
    return found[0]


@pytest.mark.parametrize(("key", "node"), [("1", "sales"), ("2", "support")])
def test_rfc4733_key_press_reaches_its_node(
    tmp_path: Path, engine_factory: object, key: str, node: str
) -> None:
    engine: RunningEngine = engine_factory(ivr_config(tmp_path))  # type: ignore[operator]
    scenario = tmp_path / "caller.xml"
    text = (SIPP_DIR / "ivr_caller.xml").read_text()
    capture = CAPTURES / f"dtmf_2833_{key}.pcap"
    scenario.write_text(text.replace(str(CAPTURES / "dtmf_2833_1.pcap"), str(capture)))
    run_sipp(engine, tmp_path, scenario)
    record = one_record(engine)
    assert record["did"] == "100"
    assert record["trunk"] == "carrier"
    assert record["digits"] == key
    assert record["ivr_path"][:3] == ["welcome", "menu", node]  # type: ignore[index]
    assert record["disposition"] == "answered"
    assert record["hangup_side"] == "caller"


def test_calls_start_with_the_configured_and_the_routes_variables(
    tmp_path: Path, engine_factory: object
) -> None:
    """Top-level variables, a route's over them, and ACD_VARIABLES-style overrides are
    in the call's variables from its start: the CDR keeps them."""
    config = ivr_config(tmp_path, extra="variables: {brand: Example, line: main}")
    text = config.read_text().replace("record: false}", "record: false, variables: {line: sales}}")
    config.write_text(text)
    engine: RunningEngine = engine_factory(config)  # type: ignore[operator]
    run_sipp(engine, tmp_path, SIPP_DIR / "ivr_caller.xml")
    variables = one_record(engine)["variables"]
    assert isinstance(variables, dict)
    assert {"brand": "Example", "line": "sales"}.items() <= variables.items(), variables


def test_sip_info_key_press_reaches_its_node(tmp_path: Path, engine_factory: object) -> None:
    engine: RunningEngine = engine_factory(ivr_config(tmp_path))  # type: ignore[operator]
    run_sipp(engine, tmp_path, SIPP_DIR / "ivr_caller_info.xml", "-key", "digit", "2")
    record = one_record(engine)
    assert record["digits"] == "2"
    assert record["ivr_path"][:3] == ["welcome", "menu", "support"]  # type: ignore[index]


def test_inband_key_press_reaches_its_node(tmp_path: Path, engine_factory: object) -> None:
    """A caller without telephone-event: the key comes as tones in PCMU audio.

    The scenario is ivr_caller.xml with its SDP cut down to PCMU alone (so
    the engine must listen in-band) and the capture swapped for one this
    test makes (tests/captures.py).
    """
    engine: RunningEngine = engine_factory(ivr_config(tmp_path))  # type: ignore[operator]
    capture = inband_dtmf_capture(tmp_path / "inband_2.pcap", "2")
    text = (SIPP_DIR / "ivr_caller.xml").read_text()
    offer = "m=audio [media_port] RTP/AVP 8 0 101"
    assert offer in text
    lines = [
        line
        for line in text.replace(offer, "m=audio [media_port] RTP/AVP 0").splitlines()
        if not line.strip().startswith(("a=rtpmap:8 ", "a=rtpmap:101 ", "a=fmtp:101 "))
    ]
    scenario = tmp_path / "caller.xml"
    scenario.write_text(
        "\n".join(lines).replace(str(CAPTURES / "dtmf_2833_1.pcap"), str(capture)) + "\n"
    )
    run_sipp(engine, tmp_path, scenario)
    record = one_record(engine)
    assert record["digits"] == "2"
    assert record["ivr_path"][:3] == ["welcome", "menu", "support"]  # type: ignore[index]


def test_session_timer_hold_unhold_options_and_update_on_the_wire(
    tmp_path: Path, engine_factory: object
) -> None:
    """bench/sipp/caller_dialog.xml checks every answer itself (see its header):
    422 with Min-SE below the minimum, the negotiated Session-Expires and
    Require: timer, recvonly to a hold and sendrecv to the unhold, OPTIONS
    and an UPDATE refresh inside the dialog."""
    engine: RunningEngine = engine_factory(ivr_config(tmp_path))  # type: ignore[operator]
    run_sipp(engine, tmp_path, SIPP_DIR / "caller_dialog.xml")
    # The INVITE refused with 422 was an attempt of its own, with its record.
    records: list[dict[str, object]] = []

    def both() -> bool:
        records[:] = call_records(engine)
        return len(records) == 2

    engine.wait_for(both, timeout=10, what="two call records")
    refused, answered = sorted(records, key=lambda r: str(r["disposition"]) != "failed")
    assert refused["disposition"] == "failed"
    assert refused["sip_cause"] == 422
    assert answered["disposition"] == "answered"
    assert answered["hangup_side"] == "caller"
    assert answered["sip_call_id"] == refused["sip_call_id"]
