"""The reports page (/reports/) in Debian's Chromium, after real SIPp calls.

Agent 1001 (team red) answers three SIPp callers; then, paused, leaves a
fourth to hang up after two seconds of waiting. A supervisor opens the
reports for today: the totals, the queue's and the agent's rows equal what
/api/v1/reports gives for the same instants, the charts hold the calls
(answered and abandoned bars, the abandon in its wait bucket), the CSV
download is the API's CSV, and the player plays a call's recording (the
WAV, streamed with Range). A period that ends before it begins is refused
with the API's words. A team lead sees their team's agents only; another
agent is refused the page and reaches neither 1001's calls nor recordings.
The page in Simplified Chinese (the browser's language) has every text
translated, and its switch turns it back to English. Screenshots at desktop
and phone widths.
"""

from __future__ import annotations

import csv
import io
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from .conftest import RunningEngine, agent_password
from .test_acd_sipp import (  # noqa: F401 (sipp_factory is a fixture)
    Sipp,
    login_all,
    scenario_copy,
    sipp_factory,
    wait_records,
)
from .test_browser_phone import (  # noqa: F401 (chromium is a fixture)
    _engine,
    chromium,
    open_page,
    screenshots,
    untranslated,
)

SUPERVISOR, SUPERVISOR_PASSWORD = "sup", "sup-Password-5512"
LEAD, LEAD_PASSWORD = "lead", "lead-Password-5512"


def _cells(page: object, table: str) -> dict[str, dict[str, str]]:
    """A figures table as {row name: {field: text}}."""
    rows = page.eval_on_selector_all(  # type: ignore[attr-defined]
        f"#{table} tbody tr",
        """rows => rows.map(r => [r.dataset.name, Object.fromEntries(
            [...r.querySelectorAll('[data-field]')].map(c => [c.dataset.field, c.textContent])
        )])""",
    )
    return {name: fields for name, fields in rows}


def _share(value: object) -> str:
    return "\N{EN DASH}" if value is None else f"{float(value) * 100:.1f}%"  # type: ignore[arg-type]


def _window(page: object) -> str:
    """The since/until the page asked the API for, from its CSV link."""
    href = str(page.get_attribute("#csv-queues", "href"))  # type: ignore[attr-defined]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(href).query)
    return urllib.parse.urlencode({"since": query["since"][0], "until": query["until"][0]})


def test_the_reports_show_the_days_calls_and_play_a_recording(
    tmp_path: Path,
    engine_factory: Callable[[Path], RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811
    chromium: object,  # noqa: F811
) -> None:
    engine = _engine(tmp_path, engine_factory, teams={"1001": "red", "1002": "blue"})
    for user, role, team, password in (
        (SUPERVISOR, "supervisor", None, SUPERVISOR_PASSWORD),
        (LEAD, "team_lead", "red", LEAD_PASSWORD),
    ):
        body = {"username": user, "role": role, "team": team, "password": password}
        assert engine.request("POST", "/api/v1/users", body)[0] == 201
    sipp = sipp_factory(engine)
    sipp.agent("1001", scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=1500))
    login_all(engine, ["1001"])
    answered = sipp.callers("200", 3, rate="1", concurrent=1)
    assert answered.wait(60) == 0, answered.describe()
    wait_records(engine, 3)
    assert engine.request("POST", "/api/v1/agents/1001/pause", {})[0] == 200
    impatient = scenario_copy(tmp_path, "queue_caller.xml", t20000=2000)
    gave_up = sipp.callers("200", 1, scenario=impatient)
    assert gave_up.wait(60) == 0, gave_up.describe()
    records = wait_records(engine, 4)
    assert sorted(str(r["disposition"]) for r in records) == ["abandoned"] + ["answered"] * 3

    page = open_page(chromium, engine, "/reports/", SUPERVISOR, SUPERVISOR_PASSWORD)
    page.wait_for_selector("body[data-loaded=yes]")  # type: ignore[attr-defined]
    assert page.text_content("#status") == "Reports and recordings"  # type: ignore[attr-defined]
    window = _window(page)
    report = engine.http_json(f"/api/v1/reports/queues?{window}")
    total = report["total"]
    assert isinstance(total, dict) and total["offered"] == 4, report
    tiles = page.eval_on_selector_all(  # type: ignore[attr-defined]
        "#totals [data-field]",
        "t => Object.fromEntries(t.map(x => [x.dataset.field, x.querySelector('dd').textContent]))",
    )
    assert tiles["offered"] == "4" and tiles["answered"] == "3" and tiles["abandoned"] == "1"
    assert tiles["service_level"] == _share(total["service_level"])
    queues = _cells(page, "queues-table")
    (row,) = [r for r in report["queues"] if r["queue"] == "q"]  # type: ignore[union-attr, index]
    assert queues["q"]["offered"] == "4" and queues["q"]["abandoned"] == "1"
    assert queues["q"]["service_level"] == _share(row["service_level"])
    assert queues["Total"]["answered"] == "3"
    agents = _cells(page, "agents-table")
    assert agents["1001"]["answered"] == "3"
    assert _cells(page, "teams-table")["red"]["answered"] == "3"

    # The charts hold the calls: answered and abandoned bars, the abandon under 10 s.
    assert int(str(page.get_attribute("#volume-chart", "data-bars"))) >= 1  # type: ignore[attr-defined]
    assert page.locator("#volume-chart rect.answered").count() >= 1  # type: ignore[attr-defined]
    assert page.locator("#volume-chart rect.abandoned").count() >= 1  # type: ignore[attr-defined]
    assert page.locator("#abandon-chart svg").count() == 1  # type: ignore[attr-defined]
    labels = page.eval_on_selector_all("#abandon-chart text", "t => t.map(x => x.textContent)")  # type: ignore[attr-defined]
    assert labels[:2] == ["under 10 s", "1"], labels
    screenshots(page, "reports")

    # The CSV download is the API's CSV for the same period.
    with page.expect_download() as download:  # type: ignore[attr-defined]
        page.click("#csv-queues")  # type: ignore[attr-defined]
    path = download.value.path()
    table = list(csv.DictReader(io.StringIO(Path(path).read_text())))
    assert [r["queue"] for r in table] == ["q", "total"], table
    assert table[0]["offered"] == "4" and table[1]["answered"] == "3"

    # The player plays an answered call's recording.
    calls = page.locator("#calls-table tbody tr")  # type: ignore[attr-defined]
    assert calls.count() == 4
    first = next(r for r in records if r["disposition"] == "answered")
    page.click(f"#calls-table tr[data-call='{first['call_id']}'] button:has-text('Play')")  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        "() => { const a = document.getElementById('player-audio'); "
        "return a.readyState >= 2 && a.duration > 1 && a.currentTime > 0; }"
    )
    src = str(page.eval_on_selector("#player-audio", "a => a.src"))  # type: ignore[attr-defined]
    assert src.endswith(f"/api/v1/recordings/{first['recording_id']}"), src
    screenshots(page, "reports-playing")

    # A period that ends before it begins: the API's refusal, on the page.
    page.select_option("#period", "custom")  # type: ignore[attr-defined]
    page.fill("#since", "2026-06-10")  # type: ignore[attr-defined]
    page.fill("#until", "2026-06-01")  # type: ignore[attr-defined]
    page.click("#range button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-loaded=failed]")  # type: ignore[attr-defined]
    assert "since" in str(page.text_content("#range-error"))  # type: ignore[attr-defined]
    assert page.errors == []  # type: ignore[attr-defined]

    # In Simplified Chinese by the browser's language, then English by the switch.
    zh = open_page(chromium, engine, "/reports/", SUPERVISOR, SUPERVISOR_PASSWORD, locale="zh-CN")
    zh.wait_for_selector("body[data-loaded=yes]")  # type: ignore[attr-defined]
    assert zh.get_attribute("html", "lang") == "zh-CN"  # type: ignore[attr-defined]
    assert zh.text_content("#volume-title") == "每小时来电"  # type: ignore[attr-defined]
    assert _cells(zh, "queues-table")["q"]["offered"] == "4"
    screenshots(zh, "reports-zh")
    assert untranslated(zh) == []
    zh.click("#language")  # type: ignore[attr-defined]
    zh.wait_for_function("document.documentElement.lang === 'en'")  # type: ignore[attr-defined]
    zh.wait_for_selector("body[data-loaded=yes]")  # type: ignore[attr-defined]
    assert zh.text_content("#volume-title") == "Calls by hour"  # type: ignore[attr-defined]

    # A team lead: their team's agents only; an agent: refused.
    lead = open_page(chromium, engine, "/reports/", LEAD, LEAD_PASSWORD)
    lead.wait_for_selector("body[data-loaded=yes]")  # type: ignore[attr-defined]
    assert set(_cells(lead, "agents-table")) <= {"1001"}
    assert set(_cells(lead, "teams-table")) == {"red"}
    # Another agent, signed in, reaches neither 1001's calls nor their recordings.
    agent = open_page(chromium, engine, "/reports/", "1002", agent_password("1002"))
    agent.wait_for_selector("#refused:not([hidden])")  # type: ignore[attr-defined]
    assert agent.locator("#reports").is_hidden()  # type: ignore[attr-defined]
    screenshots(agent, "reports-refused")
    reached = agent.evaluate(  # type: ignore[attr-defined]
        """async (path) => [
            (await fetch(path)).status,
            (await (await fetch("/api/v1/calls?limit=100")).json()).calls.length,
        ]""",
        f"/api/v1/recordings/{first['recording_id']}",
    )
    assert reached == [403, 0], reached  # no role of agent may hear recordings
    assert "Traceback" not in engine.log()
