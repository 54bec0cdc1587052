"""Overload control against SIPp: past the configured call rate, 503 before any answer.

A real ``acd serve`` is limited to 5 new calls a second (a burst of 5), and
SIPp offers 20 a second, 40 calls in all: four times the limit for two
seconds. Read back from SIPp's message log call by call, every INVITE got
either a 200 (and the call went on: 3 s on the line, then the caller's BYE)
or a 503 with Retry-After and nothing before it but 100 Trying, which SIPp
ACKs (tests/data/sipp/caller_or_refused.xml). The admitted calls are the
burst plus the rate over the span SIPp took to send them; each has a CDR
that says answered, the refused ones none; and the engine's
``acd_calls_refused_total`` counts exactly the 503s.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .interop_helpers import POLL
from .sipp_load import all_call_records, calls_seen, load_config, start_load

pytestmark = pytest.mark.interop

CALLS = 40
OFFERED = 20  # calls a second
LIMIT = 5  # calls a second the engine admits
BURST = 5
SLACK = 2
"""Calls either way that delivery jitter on a loaded machine can move across the limit."""

FLOW = """\
name: load
start: talk
nodes:
  talk:
    type: play
    prompts: [welcome, closed]
    next: bye
  bye:
    type: hangup
"""


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(POLL)


def refused_by_reason(metrics: str) -> dict[str, float]:
    found = re.findall(r'^acd_calls_refused_total\{reason="(\w+)"\} (\S+)$', metrics, re.M)
    return {reason: float(value) for reason, value in found}


def test_calls_over_the_rate_get_503_before_any_answer_and_the_rest_are_served(
    tmp_path: Path, engine_factory: Any
) -> None:
    config = load_config(tmp_path, FLOW)
    with config.open("a") as file:
        file.write(f"calls: {{max_calls_per_second: {LIMIT}, burst: {BURST}}}\n")
    engine = engine_factory(config)
    workdir = tmp_path / "sipp"
    sipp = start_load(engine, workdir, "caller_or_refused.xml", calls=CALLS, rate=OFFERED)
    with sipp:
        assert sipp.wait(60) == 0, sipp.describe()

    placed = calls_seen(workdir)
    assert len(placed) == CALLS
    answered = {c.call_id: c for c in placed.values() if c.invite_status == 200}
    refused = {c.call_id: c for c in placed.values() if c.invite_status == 503}
    assert len(answered) + len(refused) == CALLS, placed

    for call in refused.values():
        # Refused before anything else: no ringing, no answer, then the 503 (repeated
        # only if an ACK went astray).
        assert set(call.invite_responses) <= {100, 503}, call
        assert call.retry_after == "1", call  # the bucket holds a token again within 1 s
    for call in answered.values():
        assert 503 not in call.invite_responses, call
        assert call.ended_cleanly, call

    sent = sorted(c.invited_at for c in placed.values() if c.invited_at is not None)
    span = sent[-1] - sent[0]
    admissible = BURST + LIMIT * span
    assert admissible - SLACK <= len(answered) <= admissible + SLACK, (span, len(answered))

    reasons = refused_by_reason(engine.http_text("/metrics"))
    assert set(reasons) == {"calls", "rate", "lag", "cpu"}
    assert sum(reasons.values()) == len(refused), reasons
    assert reasons["rate"] >= 1, reasons

    def records() -> dict[str, dict[str, object]]:
        return {str(r["sip_call_id"]): r for r in all_call_records(engine)}

    wait_until(lambda: len(records()) >= len(answered), f"{len(answered)} CDRs")
    rows = records()
    assert set(rows) == set(answered), "a refused call has a CDR, or an answered one none"
    for row in rows.values():
        assert row["disposition"] == "answered", row
        assert row["hangup_side"] == "caller", row
