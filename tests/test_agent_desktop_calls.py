"""The agent desktop's other call controls in Debian's Chromium: mute, blind
transfer, conference, and the desk-phone mode.

- Mute: the button turns the call's microphone track off, for a hundred
  packets (two seconds, counted from the browser's own RTP statistics, not
  slept), and on again. Then a blind transfer from the page (a REFER) hands
  the caller to 1002, a SIPp phone, and the desktop is free.
- Conference: the agent consults 1002, makes it a conference of three (the
  browser still hears the caller), then leaves the two talking.
- Desk phone: with "This browser is my phone" unticked the browser phone
  unregisters; the queue's call rings the agent's SIPp desk phone, and the
  desktop still pops the caller and takes the wrap-up code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .conftest import RunningEngine, agent_password
from .test_acd_sipp import (  # noqa: F401 (sipp_factory is a fixture)
    Sipp,
    events_of,
    scenario_copy,
    sipp_factory,
    wait_records,
)
from .test_browser_phone import (  # noqa: F401 (chromium is a fixture)
    CALLER_TONE,
    _engine,
    _registrations,
    _signed_in_page,
    chromium,
    hears,
    open_page,
)
from .test_monitor_sipp import assert_nothing_left, tone_call

# Keeps the page's peer connections where the test can ask them for statistics.
_KEEP_PCS_JS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__connections = [];
  window.RTCPeerConnection = function (...args) {
    const made = new Native(...args);
    window.__connections.push(made);
    return made;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();
"""
_PACKETS_SENT_JS = """
async () => {
  const pc = window.__connections.filter((c) => c.connectionState !== "closed").pop();
  if (!pc) return -1;
  let sent = 0;
  (await pc.getStats()).forEach((r) => {
    if (r.type === "outbound-rtp" && r.kind === "audio") sent = r.packetsSent;
  });
  return sent;
}
"""
# Whether the live call's microphone track is enabled (ON: true or false).
_MICROPHONE_ON_JS = """
() => window.__connections.filter((c) => c.connectionState !== "closed").some(
  (c) => c.getSenders().some((s) => s.track && s.track.enabled === ON)
)
"""


def _packets_sent(page: object) -> int:
    return int(page.evaluate(_PACKETS_SENT_JS))  # type: ignore[attr-defined]


def _send_packets(engine: RunningEngine, page: object, count: int, what: str) -> None:
    """Wait until the browser has sent ``count`` more RTP packets (20 ms each)."""
    start = _packets_sent(page)
    assert start >= 0, "the browser phone has no peer connection"
    engine.wait_for(lambda: _packets_sent(page) >= start + count, timeout=20, what=what)


def _answer_in_browser(engine: RunningEngine, page: object) -> None:
    page.wait_for_selector("body[data-call=ringing]")  # type: ignore[attr-defined]
    page.click("#answer")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-call=talking]")  # type: ignore[attr-defined]
    engine.wait_for(
        lambda: engine.http_json("/api/v1/agents/1001")["state"] == "on_call",
        what="1001 on the call",
    )


def test_mute_turns_the_microphone_off_and_a_blind_transfer_hands_the_caller_over(
    tmp_path: Path,
    engine_factory: Callable[[Path], RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811
    chromium: object,  # noqa: F811
) -> None:
    # A transfer goes where the number routes: the agents' extensions.
    engine = _engine(tmp_path, engine_factory, routes={"_10XX": "extension: '*'"})
    sipp = sipp_factory(engine)
    # 1002 is not logged in: only a transfer reaches it. It stays until the caller hangs up.
    sipp.agent("1002", scenario_copy(tmp_path, "agent_uas.xml", t3000=60000))
    password = agent_password("1001")
    page = open_page(chromium, engine, "/agent/", "1001", password, init_script=_KEEP_PCS_JS)
    page.wait_for_selector("body[data-phone=registered]")  # type: ignore[attr-defined]
    page.click("#agent-login")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-agent=available]")  # type: ignore[attr-defined]
    caller = tone_call(sipp, tmp_path, 16)
    _answer_in_browser(engine, page)
    _send_packets(engine, page, 50, "a second of the agent's tone")

    page.click("#mute")  # type: ignore[attr-defined]
    page.wait_for_function(_MICROPHONE_ON_JS.replace("ON", "false"))  # type: ignore[attr-defined]
    assert page.text_content("#mute") == "Unmute"  # type: ignore[attr-defined]
    _send_packets(engine, page, 100, "two muted seconds")
    page.click("#mute")  # type: ignore[attr-defined]
    page.wait_for_function(_MICROPHONE_ON_JS.replace("ON", "true"))  # type: ignore[attr-defined]
    _send_packets(engine, page, 50, "a second of tone after the mute")

    page.fill("#transfer-to", "1002")  # type: ignore[attr-defined]
    page.click("#transfer-blind")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-call=idle]")  # type: ignore[attr-defined]
    assert caller.wait(60) == 0, caller.describe()
    (record,) = wait_records(engine, 1)
    assert record["disposition"] == "transferred", record
    (transfer,) = [e for e in events_of(engine, str(record["call_id"])) if e["event"] == "TRANSFER"]
    assert transfer["data"]["target"] == "1002", transfer
    assert transfer["data"]["kind"] == "extension", transfer

    assert page.errors == []  # type: ignore[attr-defined]
    assert_nothing_left(engine)


def test_the_agent_makes_a_conference_of_three_then_leaves_them_talking(
    tmp_path: Path,
    engine_factory: Callable[[Path], RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811
    chromium: object,  # noqa: F811
) -> None:
    engine = _engine(tmp_path, engine_factory)
    sipp = sipp_factory(engine)
    sipp.agent("1002", scenario_copy(tmp_path, "agent_uas.xml", t3000=60000))
    page = _signed_in_page(chromium, engine)
    page.click("#agent-login")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-agent=available]")  # type: ignore[attr-defined]
    caller = tone_call(sipp, tmp_path, 20)
    _answer_in_browser(engine, page)

    page.fill("#transfer-to", "1002")  # type: ignore[attr-defined]
    page.click("#consult")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-consult=talking]")  # type: ignore[attr-defined]
    page.click("#consult-conference")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-consult=conference]")  # type: ignore[attr-defined]
    assert page.text_content("#consult-transfer") == "Leave them talking"  # type: ignore[attr-defined]
    heard = hears(page, CALLER_TONE)  # three of them now: the agent still hears the caller
    assert heard is not None and abs(heard - CALLER_TONE) < 20, f"the browser hears {heard} Hz"
    page.click("#consult-transfer")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-call=idle]")  # type: ignore[attr-defined]

    assert caller.wait(60) == 0, caller.describe()
    (record,) = wait_records(engine, 1)
    kinds = [e["event"] for e in events_of(engine, str(record["call_id"]))]
    assert kinds.index("CONSULT") < kinds.index("CONFERENCE") < kinds.index("CONSULTEND"), kinds
    assert page.errors == []  # type: ignore[attr-defined]
    assert_nothing_left(engine)


def test_with_the_desk_phone_the_desktop_pops_and_wraps_up_a_call_it_does_not_carry(
    tmp_path: Path,
    engine_factory: Callable[[Path], RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811
    chromium: object,  # noqa: F811
) -> None:
    engine = _engine(tmp_path, engine_factory, queue="wrap_up_codes: [sale, no-sale]", wrap_up=60)
    sipp = sipp_factory(engine)
    page = _signed_in_page(chromium, engine)
    page.uncheck("#use-browser")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-mode=desk]")  # type: ignore[attr-defined]
    engine.wait_for(
        lambda: not any("ws" in str(b["contact"]) for b in _registrations(engine, "1001")),
        what="the browser phone unregistered",
    )
    sipp.agent("1001", scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=60000))
    page.click("#agent-login")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-agent=available]")  # type: ignore[attr-defined]

    caller = tone_call(sipp, tmp_path, 10)
    page.wait_for_selector("#pop:not([hidden])")  # type: ignore[attr-defined]
    assert page.text_content("#pop-queue") == "q"  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-agent=on_call]")  # type: ignore[attr-defined]
    assert page.is_hidden("#answer")  # type: ignore[attr-defined]  # the desk phone answers
    page.wait_for_selector("body[data-agent=wrap_up]")  # type: ignore[attr-defined]
    page.select_option("#wrap-code", "no-sale")  # type: ignore[attr-defined]
    page.click("#wrap-form button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_selector("#log li:has-text('no-sale')")  # type: ignore[attr-defined]
    page.click("#wrap-end")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-agent=available]")  # type: ignore[attr-defined]

    assert caller.wait(60) == 0, caller.describe()
    (record,) = wait_records(engine, 1)
    assert record["agent"] == "1001", record
    # The code came in wrap-up, after the record was first written: it is written again.
    engine.wait_for(
        lambda: wait_records(engine, 1)[0]["wrap_up_code"] == "no-sale", what="the code, stored"
    )
    assert page.errors == []  # type: ignore[attr-defined]
    assert_nothing_left(engine)
