"""The post-call survey: after the agent hangs up, the caller rates the call.

A SIPp caller (signalling; its media is tests/rtp_peer.py) dials a flow
that queues it and names a post-call survey; a SIPp agent answers and hangs
up after two seconds. The caller stays on the line, hears the survey
question, presses 4 (RFC 4733) and is hung up on after the thanks. The call
record carries the score, both flows' nodes, and that the agent hung up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .conftest import SIPP_DIR, RunningEngine
from .interop_helpers import sipp_caller_args
from .rtp_peer import RtpPeer
from .test_acd_sipp import (
    DEFAULT_QUEUE,
    Sipp,
    acd_config,
    login_all,
    scenario_copy,
    sipp_factory,  # noqa: F401 - a fixture, used by name
    wait_records,
)

MAIN = """
name: main
start: sales
post_call_survey: survey
nodes:
  sales: {type: queue, queue: q, next: bye}
  bye: {type: hangup}
"""

SURVEY = """
name: survey
start: question
announcements: {recording: []}
nodes:
  question: {type: survey, prompt: [survey_question], timeout: 15, retries: 0, next: thanks}
  thanks: {type: hangup, prompt: [survey_thanks]}
"""


def test_caller_rates_the_call_after_the_agent_hangs_up(
    tmp_path: Path,
    engine_factory: Callable[[Path], RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811 - the fixture imported above
) -> None:
    ivr_dir = tmp_path / "ivr"
    ivr_dir.mkdir()
    (ivr_dir / "main.yaml").write_text(MAIN)
    (ivr_dir / "survey.yaml").write_text(SURVEY)
    engine = engine_factory(
        acd_config(
            tmp_path,
            agents={"1001": "{}"},
            queues={"q": DEFAULT_QUEUE},
            routes={"100": "ivr: main, record: false"},
            extra=f"ivr_dir: {ivr_dir}",
        )
    )
    sipp = sipp_factory(engine)
    # Answers after 0.2 s, hangs up after 2 s of talk.
    sipp.agent("1001", scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=2000))
    login_all(engine, ["1001"])
    with RtpPeer() as peer:
        caller = sipp._run(
            "survey-caller",
            sipp_caller_args(
                SIPP_DIR / "ivr_listener.xml", extra=("-key", "rtp_port", str(peer.port))
            ),
        )

        def asked() -> bool:
            calls = engine.http_json("/api/v1/live/calls")["calls"]
            return any("question" in c["ivr_path"] for c in calls)  # type: ignore[index, union-attr]

        engine.wait_for(asked, timeout=30, what="the survey question")
        peer.packets(5, time.monotonic() + 10)  # the question is playing
        peer.press("4")
        assert caller.wait(timeout=30) == 0, caller.describe()
    (record,) = wait_records(engine, 1)
    assert record["disposition"] == "answered", record
    assert record["agent"] == "1001"
    assert record["hangup_side"] == "agent"
    assert record["survey_score"] == 4, record
    assert record["ivr_path"] == ["sales", "question", "thanks"]
