"""The agent desktop (/agent/) in Debian's Chromium, through a whole call.

A SIPp caller dials 200, whose IVR flow sets call data (a data dip's
shape) and queues the call; agent 1001's desktop pops the caller's data
from the event stream, answers in the browser, holds and resumes, consults
colleague 1002 (a SIPp phone), completes the transfer, and gives the call a
wrap-up code. The call record must show every step. Then the desktop in
Simplified Chinese (the browser's language) takes a second call: ringing,
answered, held, wrapped up, with every text translated.
"""

from __future__ import annotations

import urllib.parse
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
    _engine,
    _signed_in_page,
    chromium,
    open_page,
    screenshots,
    untranslated,
)
from .test_monitor_sipp import assert_nothing_left, tone_call

POP_FLOW = """
name: pop
start: lookup
nodes:
  lookup:
    type: set
    variables: {tier: gold, account: "A-77"}
    next: queue
  queue: {type: queue, queue: q, next: bye}
  bye: {type: hangup}
"""

CRM = "https://crm.example.com/find?phone={caller}&tier={var.tier}&q={queue}"


def _state(engine: RunningEngine, agent: str) -> object:
    return engine.http_json(f"/api/v1/agents/{agent}")["state"]


def test_the_desktop_pops_answers_holds_consults_transfers_and_wraps_up(
    tmp_path: Path,
    engine_factory: Callable[[Path], RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811
    chromium: object,  # noqa: F811
) -> None:
    ivr_dir = tmp_path / "ivr"
    ivr_dir.mkdir()
    (ivr_dir / "pop.yaml").write_text(POP_FLOW)
    engine = _engine(
        tmp_path,
        engine_factory,
        extra=f"ivr_dir: {ivr_dir}\nhttp: {{crm_url: '{CRM}'}}",
        routes={"200": "ivr: pop, record: false"},
        queue="wrap_up_codes: [sale, no-sale], wrap_up_code_required: true",
        wrap_up=60,
    )
    sipp = sipp_factory(engine)
    sipp.agent("1002", scenario_copy(tmp_path, "agent_uas.xml", t3000=30000))
    page = _signed_in_page(chromium, engine)
    page.click("#agent-login")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-agent=available]")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-stream=open]")  # type: ignore[attr-defined]
    screenshots(page, "agent-available")

    caller = tone_call(sipp, tmp_path, 25)
    # The screen pop, from AgentOffered on the stream, while the phone rings.
    page.wait_for_selector("#pop:not([hidden])")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-call=ringing]")  # type: ignore[attr-defined]
    assert page.text_content("#pop-queue") == "q"  # type: ignore[attr-defined]
    assert page.text_content("#pop-did") == "200"  # type: ignore[attr-defined]
    assert "lookup" in page.text_content("#pop-ivr")  # type: ignore[attr-defined]
    cells = page.eval_on_selector_all(  # type: ignore[attr-defined]
        "#pop-variables tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert ["tier", "gold"] in cells and ["account", "A-77"] in cells, cells
    link = urllib.parse.urlsplit(page.get_attribute("#pop-crm", "href"))  # type: ignore[attr-defined]
    query = urllib.parse.parse_qs(link.query)
    assert link.netloc == "crm.example.com" and query["tier"] == ["gold"], link
    assert query["q"] == ["q"] and query["phone"][0], query
    screenshots(page, "agent-ringing")

    # Answer with the keyboard shortcut, then hold and resume from the page.
    page.keyboard.press("Alt+a")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-call=talking]")  # type: ignore[attr-defined]
    engine.wait_for(lambda: _state(engine, "1001") == "on_call", what="1001 on the call")
    page.click("#hold")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-call=held]")  # type: ignore[attr-defined]
    page.click("#hold")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-call=talking]")  # type: ignore[attr-defined]

    # Consult 1002 (its SIPp phone answers), then hand the caller over.
    page.fill("#transfer-to", "1002")  # type: ignore[attr-defined]
    page.click("#consult")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-consult=talking]")  # type: ignore[attr-defined]
    assert page.is_visible("#consulting")  # type: ignore[attr-defined]
    line = page.text_content("#consult-line")  # type: ignore[attr-defined]
    assert line == "Consulting 1002: talking, the caller on hold", line
    screenshots(page, "agent-consulting")
    page.click("#consult-transfer")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-consult=completed]")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-call=idle]")  # type: ignore[attr-defined]

    # Wrap-up needs a code in this queue: finishing early is not offered.
    page.wait_for_selector("body[data-agent=wrap_up]")  # type: ignore[attr-defined]
    page.wait_for_selector("#wrap-up:not([hidden])")  # type: ignore[attr-defined]
    assert page.is_disabled("#wrap-end")  # type: ignore[attr-defined]
    screenshots(page, "agent-wrap-up")
    page.select_option("#wrap-code", "sale")  # type: ignore[attr-defined]
    page.click("#wrap-form button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_selector("#wrap-end:not([disabled])")  # type: ignore[attr-defined]
    page.click("#wrap-end")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-agent=available]")  # type: ignore[attr-defined]
    assert page.is_hidden("#pop")  # type: ignore[attr-defined]
    # Today's figures and the recent calls follow without a reload.
    assert page.text_content("#today-answered") == "1"  # type: ignore[attr-defined]
    page.wait_for_selector("#recent tr")  # type: ignore[attr-defined]
    row = page.eval_on_selector(  # type: ignore[attr-defined]
        "#recent tr", "row => [...row.cells].map(c => c.textContent)"
    )
    assert row[2] == "q" and row[4] == "Transferred" and row[5] == "sale", row
    screenshots(page, "agent-after-call")

    assert caller.wait(60) == 0, caller.describe()
    (record,) = wait_records(engine, 1)
    assert record["wrap_up_code"] == "sale", record
    assert record["variables"] == {"tier": "gold", "account": "A-77"}, record
    kinds = [e["event"] for e in events_of(engine, str(record["call_id"]))]
    for kind in ("HOLD", "UNHOLD", "CONSULT", "CONSULTEND", "TRANSFER", "WRAPUPCODE"):
        assert kind in kinds, (kind, kinds)
    assert kinds.index("HOLD") < kinds.index("UNHOLD") < kinds.index("CONSULT")
    (transfer,) = [e for e in events_of(engine, str(record["call_id"])) if e["event"] == "TRANSFER"]
    assert transfer["data"]["kind"] == "consult", transfer
    assert page.errors == []  # type: ignore[attr-defined]

    # -- in Simplified Chinese, by the browser's language: a second call
    page.click("#sign-out")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-phone=signed-out]")  # type: ignore[attr-defined]
    engine.wait_for(lambda: _state(engine, "1001") == "logged_out", what="1001 logged out")
    page.close()  # type: ignore[attr-defined]
    zh = open_page(chromium, engine, "/agent/", "1001", agent_password("1001"), locale="zh-CN")
    zh.wait_for_selector("body[data-phone=registered]")  # type: ignore[attr-defined]
    assert zh.get_attribute("html", "lang") == "zh-CN"  # type: ignore[attr-defined]
    assert zh.text_content("#status") == "就绪"  # type: ignore[attr-defined]
    assert zh.text_content("#agent-login") == "签入"  # type: ignore[attr-defined]
    zh.click("#agent-login")  # type: ignore[attr-defined]
    zh.wait_for_selector("body[data-agent=available]")  # type: ignore[attr-defined]
    zh.wait_for_selector("body[data-stream=open]")  # type: ignore[attr-defined]
    assert zh.text_content("#agent-state") == "空闲"  # type: ignore[attr-defined]
    screenshots(zh, "agent-zh-available")

    caller = tone_call(sipp, tmp_path, 20)  # from the IVR's answer: time to ring, answer and hold
    zh.wait_for_selector("#pop:not([hidden])")  # type: ignore[attr-defined]
    zh.wait_for_selector("body[data-call=ringing]")  # type: ignore[attr-defined]
    assert zh.text_content("#answer") == "接听"  # type: ignore[attr-defined]
    screenshots(zh, "agent-zh-ringing")
    zh.click("#answer")  # type: ignore[attr-defined]
    zh.wait_for_selector("body[data-call=talking]")  # type: ignore[attr-defined]
    zh.click("#hold")  # type: ignore[attr-defined]
    zh.wait_for_selector("body[data-call=held]")  # type: ignore[attr-defined]
    assert zh.text_content("#hold") == "恢复"  # type: ignore[attr-defined]
    screenshots(zh, "agent-zh-held")
    zh.click("#hold")  # type: ignore[attr-defined]
    zh.wait_for_selector("body[data-call=talking]")  # type: ignore[attr-defined]
    assert caller.wait(60) == 0, caller.describe()  # the caller hangs up
    zh.wait_for_selector("body[data-agent=wrap_up]")  # type: ignore[attr-defined]
    zh.wait_for_selector("#wrap-up:not([hidden])")  # type: ignore[attr-defined]
    screenshots(zh, "agent-zh-wrap-up")
    zh.select_option("#wrap-code", "sale")  # type: ignore[attr-defined]
    zh.click("#wrap-form button[type=submit]")  # type: ignore[attr-defined]
    zh.wait_for_selector("#wrap-end:not([disabled])")  # type: ignore[attr-defined]
    zh.click("#wrap-end")  # type: ignore[attr-defined]
    zh.wait_for_selector("body[data-agent=available]")  # type: ignore[attr-defined]
    row = zh.eval_on_selector(  # type: ignore[attr-defined]
        "#recent tr", "row => [...row.cells].map(c => c.textContent)"
    )
    assert row[2] == "q" and row[4] == "接通" and row[5] == "sale", row
    assert untranslated(zh) == []
    assert zh.errors == []  # type: ignore[attr-defined]
    assert_nothing_left(engine)
