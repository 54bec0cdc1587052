"""The supervisor wallboard (/wallboard/) in Debian's Chromium, during SIPp calls.

Supervisor 9001 (a SIP account and a supervisor's sign-in) opens the board;
agents 1001 (team red) and 1002 (team blue) are SIPp phones. The board's
figures must equal /api/v1/queues and the Prometheus metrics, follow an
agent's change within a second, show the SIPp caller's call with its
agent, and listen, whisper and barge from the page through the supervisor's
own browser phone (which hears the caller's 440 Hz while listening), and
stay equal to them through a SIPp run of callers who wait for 1002; the
supervisor pauses and logs agents out from the page. An agent's sign-in is
refused the board. Screenshots at desktop and phone widths, and of the
big-screen mode.

Whether the caller hears a whisper, and the barge's three-way audio, are
checked sample by sample in tests/test_monitor_sipp.py on the engine's own
RTP; here the page's side of the same API is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .conftest import RunningEngine, agent_password
from .interop_helpers import metric
from .test_acd_sipp import (  # noqa: F401 (sipp_factory is a fixture)
    Sipp,
    scenario_copy,
    sipp_factory,
    wait_records,
)
from .test_browser_phone import (  # noqa: F401 (chromium is a fixture)
    _engine,
    chromium,
    hears,
    open_page,
    screenshots,
    untranslated,
)
from .test_monitor_sipp import assert_nothing_left, monitor_state, tone_call

SUPERVISOR = "9001"
SUPERVISOR_PASSWORD = "sup-Password-9001"
CALLER_TONE = 440

_FIGURES_JS = """
(queue) => Object.fromEntries(
  [...document.querySelectorAll(`[data-queue="${queue}"] [data-field]`)].map(
    (box) => [box.dataset.field, box.querySelector("dd").textContent]
  )
)
"""


def _queue(engine: RunningEngine, name: str = "q") -> dict[str, object]:
    rows = engine.http_json("/api/v1/queues")["queues"]
    assert isinstance(rows, list)
    (row,) = [r for r in rows if r["name"] == name]
    return dict(row)


def _figures(page: object) -> dict[str, str]:
    return dict(page.evaluate(_FIGURES_JS, "q"))  # type: ignore[attr-defined]


def _board_equals_api(page: object, engine: RunningEngine) -> bool:
    row = _queue(engine)
    today = row["today"]
    assert isinstance(today, dict)
    figures = _figures(page)
    want = {
        "waiting": str(row["waiting"]),
        "available": str(row["available"]),
        "on-call": str(row["on_call"]),
        "logged-in": str(row["logged_in"]),
        "answered": str(today["answered"]),
        "abandoned": str(today["abandoned"]),
        "offered": str(today["offered"]),
    }
    return all(figures.get(k) == v for k, v in want.items())


def test_the_wallboard_follows_the_queue_and_monitors_a_call_from_the_page(
    tmp_path: Path,
    engine_factory: Callable[[Path], RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811
    chromium: object,  # noqa: F811
) -> None:
    engine = _engine(
        tmp_path,
        engine_factory,
        agents=("1001", "1002", SUPERVISOR),
        teams={"1001": "red", "1002": "blue"},
    )
    status, _ = engine.request(
        "POST",
        "/api/v1/users",
        {"username": SUPERVISOR, "role": "supervisor", "password": SUPERVISOR_PASSWORD},
    )
    assert status == 201
    sipp = sipp_factory(engine)
    # 1001 stays on a call until the caller hangs up; 1002 answers at once
    # and hangs up after 1.5 s.
    sipp.agent("1001", scenario_copy(tmp_path, "agent_uas.xml", t3000=60000))
    sipp.agent("1002", scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=1500))
    for agent in ("1001", "1002"):
        assert engine.request("POST", f"/api/v1/agents/{agent}/login")[0] == 200

    page = open_page(chromium, engine, "/wallboard/", SUPERVISOR, SUPERVISOR_PASSWORD)
    page.wait_for_selector("body[data-stream=open][data-loaded=yes]")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-phone=registered]")  # type: ignore[attr-defined]
    # Agents by team, and the queue's figures as the API and Prometheus give them.
    teams = page.eval_on_selector_all(  # type: ignore[attr-defined]
        "#teams section", "sections => sections.map(s => s.dataset.team)"
    )
    assert teams == ["blue", "red", "No team"], teams  # 9001, the supervisor, has none
    assert _board_equals_api(page, engine)
    figures = _figures(page)
    available = metric(engine, "queue_agents_available", queue="q")
    assert figures["available"] == "2" == str(int(available))
    assert figures["waiting"] == "0" == str(int(metric(engine, "queue_calls_waiting", queue="q")))

    # An agent's change reaches the board within a second (the event stream).
    started = time.monotonic()
    assert engine.request("POST", "/api/v1/agents/1001/pause")[0] == 200
    page.wait_for_selector('tr[data-agent="1001"][data-state="paused"]', timeout=5000)  # type: ignore[attr-defined]
    took = time.monotonic() - started
    assert took < 1.0, f"the board showed the pause after {took:.2f} s"
    page.wait_for_function(  # type: ignore[attr-defined]
        "() => document.querySelector('[data-queue=q] [data-field=available] dd')"
        ".textContent === '1'"
    )

    # A SIPp run of five callers, faster than 1002 alone serves them: they
    # wait, and the board's figures equal the API's while they do and after.
    run = sipp.callers("200", 5, rate="5", concurrent=5)
    page.wait_for_function(  # type: ignore[attr-defined]
        "() => Number(document.querySelector('[data-queue=q] [data-field=waiting] dd')"
        ".textContent) >= 2"
    )
    assert _figures(page)["oldest"] != "\u2013"  # a dash: nobody waits
    engine.wait_for(lambda: _board_equals_api(page, engine), timeout=5, what="board = API")
    assert run.wait(60) == 0, run.describe()
    engine.wait_for(lambda: _board_equals_api(page, engine), timeout=5, what="board = API")
    figures = _figures(page)
    assert figures["answered"] == "5" == str(int(metric(engine, "calls_answered_total", queue="q")))
    assert figures["offered"] == "5" == str(int(metric(engine, "calls_offered_total", queue="q")))
    assert figures["waiting"] == "0"
    screenshots(page, "wallboard")

    # A caller for 1001: the board shows the call with its agent.
    assert engine.request("POST", "/api/v1/agents/1002/pause")[0] == 200
    assert engine.request("POST", "/api/v1/agents/1001/unpause")[0] == 200
    caller = tone_call(sipp, tmp_path, 30)  # long enough for the Chinese page too
    page.wait_for_selector('#calls tr[data-agent="1001"]')  # type: ignore[attr-defined]
    engine.wait_for(lambda: _board_equals_api(page, engine), timeout=5, what="board = API")
    assert _figures(page)["answered"] == "6"
    assert _figures(page)["service-level"] == "100%"

    # Listen through the browser phone: it is called, answers by itself, hears the caller.
    page.click('#calls tr[data-agent="1001"] button[data-mode=listen]')  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-monitor=listen-connected]")  # type: ignore[attr-defined]
    engine.wait_for(
        lambda: monitor_state(engine, "1001")[1].get("state") == "connected",  # type: ignore[union-attr]
        timeout=10,
        what="the supervisor's browser joined",
    )
    heard = hears(page, CALLER_TONE)
    assert heard is not None and abs(heard - CALLER_TONE) < 20, f"the supervisor hears {heard} Hz"
    screenshots(page, "wallboard-listening")

    for mode in ("whisper", "barge"):
        page.click(f'#calls tr[data-agent="1001"] button[data-mode={mode}]')  # type: ignore[attr-defined]
        page.wait_for_selector(f"body[data-monitor={mode}-connected]")  # type: ignore[attr-defined]
        engine.wait_for(
            lambda m=mode: monitor_state(engine, "1001")[1].get("mode") == m,  # type: ignore[union-attr]
            timeout=5,
            what=f"the engine in {mode} mode",
        )
    page.click('#calls tr[data-agent="1001"] button[data-mode=stop]')  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-monitor=none]")  # type: ignore[attr-defined]
    engine.wait_for(lambda: monitor_state(engine, "1001")[0] == 404, timeout=5, what="no monitor")

    # Big screen: the figures alone.
    page.click("#big-screen")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-big=on]")  # type: ignore[attr-defined]
    assert page.is_hidden("#calls-title")  # type: ignore[attr-defined]
    screenshots(page, "wallboard-big-screen")
    page.click("#big-screen")  # type: ignore[attr-defined]

    # In Chinese (the browser's language), with the queue, the agents and the call:
    # every text from the catalogue, the data attributes the same.
    zh = open_page(chromium, engine, "/wallboard/", SUPERVISOR, SUPERVISOR_PASSWORD, locale="zh-CN")
    zh.wait_for_selector("body[data-stream=open][data-loaded=yes]")  # type: ignore[attr-defined]
    zh.wait_for_selector("body[data-phone=registered]")  # type: ignore[attr-defined]
    zh.wait_for_selector('#calls tr[data-agent="1001"] button[data-mode=listen]')  # type: ignore[attr-defined]
    assert zh.get_attribute("html", "lang") == "zh-CN"  # type: ignore[attr-defined]
    assert zh.text_content("#queues-title") == "队列"  # type: ignore[attr-defined]
    assert zh.text_content("[data-queue=q] [data-field=waiting] dt") == "排队等待"  # type: ignore[attr-defined]
    assert zh.text_content('#calls tr[data-agent="1001"] button[data-mode=listen]') == "监听"  # type: ignore[attr-defined]
    assert zh.text_content('section[data-team="No team"] h3') == "无班组"  # type: ignore[attr-defined]
    assert dict(_figures(zh)) == dict(_figures(page))
    assert untranslated(zh) == []
    screenshots(zh, "wallboard-zh")
    zh.click("#big-screen")  # type: ignore[attr-defined]
    zh.wait_for_selector("body[data-big=on]")  # type: ignore[attr-defined]
    assert zh.text_content("#big-screen") == "退出大屏"  # type: ignore[attr-defined]
    screenshots(zh, "wallboard-zh-big-screen")
    assert untranslated(zh) == []
    assert zh.errors == []  # type: ignore[attr-defined]
    zh.close(run_before_unload=True)  # type: ignore[attr-defined]  # its phone unregisters

    # The caller hangs up: the call leaves the board; 1002 is logged out from the page.
    assert caller.wait(60) == 0, caller.describe()
    page.wait_for_selector("#calls-empty:not([hidden])")  # type: ignore[attr-defined]
    page.click('tr[data-agent="1002"] button:text("Log out")')  # type: ignore[attr-defined]
    page.wait_for_selector('tr[data-agent="1002"][data-state="logged_out"]')  # type: ignore[attr-defined]
    engine.wait_for(
        lambda: engine.http_json("/api/v1/agents/1002")["state"] == "logged_out",
        timeout=5,
        what="1002 logged out",
    )
    engine.wait_for(lambda: _board_equals_api(page, engine), timeout=5, what="board = API")
    wait_records(engine, 6)
    assert page.errors == []  # type: ignore[attr-defined]
    assert_nothing_left(engine)

    # An agent signs in to the board: refused, with the way to the desktop.
    agent_page = open_page(chromium, engine, "/wallboard/", "1001", agent_password("1001"))
    agent_page.wait_for_selector("#refused:not([hidden])")  # type: ignore[attr-defined]
    assert agent_page.is_hidden("#board")  # type: ignore[attr-defined]
    screenshots(agent_page, "wallboard-refused")
