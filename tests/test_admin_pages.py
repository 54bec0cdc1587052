"""The admin pages (/admin/) in Debian's Chromium, over the running engine's runtime API.

An admin signs in and, in the pages alone, creates an agent with a skill, a
queue that needs it and a route to the queue; each form first shows the
API's refusal next to the field it names (a skill level of 11, a ring
timeout of 0, a route with no target) and nothing is created until the form
is put right. With no restart, a SIPp phone registers as the new agent with
the password the admin typed and takes a SIPp caller's call on the new
route. An edit goes out as a merge patch; one made against a configuration
someone changed meanwhile is refused, not written over theirs. Teams and
skills are gathered from the agents and queues; a user and an API key are
made (the key shown once, working, then revoked); the audit log shows the
admin's changes. In Simplified Chinese (the browser's language) every
text of every section and form is translated. A supervisor sees the
configuration read-only and no user or key sections; an agent and a team
lead are refused the page. Screenshots of every section at desktop and
phone widths.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .conftest import ADMIN_PASSWORD, ADMIN_USER, RunningEngine, agent_password
from .test_acd_sipp import (  # noqa: F401 (sipp_factory is a fixture)
    Sipp,
    login_all,
    scenario_copy,
    sipp_factory,
    wait_records,
)
from .test_browser_phone import (  # noqa: F401 (chromium is a fixture)
    PAGE_TIMEOUT_MS,
    _engine,
    chromium,
    open_page,
    screenshots,
    untranslated,
)

NEW_AGENT = "2001"
SUPERVISOR, SUPERVISOR_PASSWORD = "sup", "sup-Password-4471"
LEAD, LEAD_PASSWORD = "lead", "lead-Password-4471"


def _field(page: object, key: str, selector: str = "input") -> object:
    return page.locator(f"#editor [data-field={key}] {selector}")  # type: ignore[attr-defined]


def _problem(page: object, key: str) -> str:
    return str(page.locator(f"#editor [data-field={key}] .problem").text_content())  # type: ignore[attr-defined]


def _open(page: object, section: str) -> None:
    page.click(f"#nav a[data-section={section}]")  # type: ignore[attr-defined]
    page.wait_for_selector(f"body[data-section={section}] #section[data-loaded=yes]")  # type: ignore[attr-defined]


def _save(page: object, outcome: str) -> None:
    """Press the form's button and wait for the API's answer (yes or refused)."""
    page.evaluate("document.body.dataset.saved = 'idle'")  # type: ignore[attr-defined]
    page.click("#editor-save")  # type: ignore[attr-defined]
    page.wait_for_selector(f"body[data-saved={outcome}]")  # type: ignore[attr-defined]
    if outcome == "yes":
        page.wait_for_selector("#section[data-loaded=yes]")  # type: ignore[attr-defined]


def _skill(page: object, key: str, name: str, level: int) -> None:
    page.click(f"#editor [data-field={key}] button:has-text('Add')")  # type: ignore[attr-defined]
    _field(page, key, ".map-row:last-child .map-key").fill(name)  # type: ignore[attr-defined]
    _field(page, key, ".map-row:last-child .map-value").fill(str(level))  # type: ignore[attr-defined]


def _config(engine: RunningEngine, path: str) -> tuple[int, object]:
    return engine.request("GET", f"/api/v1/config/{path}")


def _shoot(page: object, name: str) -> None:
    """Screenshots at both widths (and axe-core's check of the page as shown)."""
    for shot in screenshots(page, name):
        assert shot.stat().st_size > 5_000, shot  # not a blank page


def test_an_admin_builds_a_queue_in_the_pages_and_it_takes_a_call_without_a_restart(
    tmp_path: Path,
    engine_factory: Callable[[Path], RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811
    chromium: object,  # noqa: F811
) -> None:
    engine = _engine(tmp_path, engine_factory, teams={"1001": "red", "1002": "blue"})
    # Each page's sign-in form, before anyone signs in.
    blank = chromium.new_page()  # type: ignore[attr-defined]
    blank.set_default_timeout(PAGE_TIMEOUT_MS)
    for path in ("agent", "wallboard", "admin", "reports"):
        blank.goto(f"{engine.url}/{path}/")
        blank.wait_for_selector("#sign-in:not([hidden])")
        _shoot(blank, f"sign-in-{path}")
    blank.close()
    signin_zh = chromium.new_context(locale="zh-CN").new_page()  # type: ignore[attr-defined]
    signin_zh.set_default_timeout(PAGE_TIMEOUT_MS)
    for path in ("agent", "wallboard", "admin", "reports"):
        signin_zh.goto(f"{engine.url}/{path}/")
        signin_zh.wait_for_selector("#sign-in:not([hidden])")
        assert signin_zh.text_content("#sign-in h2") == "登录"
        assert untranslated(signin_zh) == [], path
    _shoot(signin_zh, "sign-in-zh-admin")
    signin_zh.close()
    page = open_page(chromium, engine, "/admin/", ADMIN_USER, ADMIN_PASSWORD)
    page.wait_for_selector("body[data-section=agents] #section[data-loaded=yes]")  # type: ignore[attr-defined]
    rows = page.eval_on_selector_all("#agents-table tbody tr", "r => r.map(x => x.dataset.key)")  # type: ignore[attr-defined]
    assert rows == ["1001", "1002", "1003"]

    # -- an agent: a level of 11 is refused next to the skills, nothing is made
    page.click("#new-entry")  # type: ignore[attr-defined]
    _field(page, "username").fill(NEW_AGENT)  # type: ignore[attr-defined]
    _field(page, "name").fill("Dana New")  # type: ignore[attr-defined]
    _field(page, "password").fill(agent_password(NEW_AGENT))  # type: ignore[attr-defined]
    _field(page, "team").fill("red")  # type: ignore[attr-defined]
    _skill(page, "skills", "billing", 11)
    _save(page, "refused")
    assert "less than or equal to 10" in _problem(page, "skills")
    assert page.locator("#editor [data-field=skills].invalid").count() == 1  # type: ignore[attr-defined]
    _shoot(page, "admin-agent-refused")
    assert _config(engine, f"agents/{NEW_AGENT}")[0] == 404
    _field(page, "skills", ".map-value").fill("5")  # type: ignore[attr-defined]
    _save(page, "yes")
    page.wait_for_selector(f"#agents-table tr[data-key='{NEW_AGENT}']")  # type: ignore[attr-defined]
    status, agent = _config(engine, f"agents/{NEW_AGENT}")
    assert status == 200 and isinstance(agent, dict)
    assert agent["skills"] == {"billing": 5} and agent["team"] == "red"
    assert agent["name"] == "Dana New" and "password" not in agent
    _shoot(page, "admin-agents")

    # -- a queue: a ring timeout of 0 is refused beside it
    _open(page, "queues")
    page.click("#new-entry")  # type: ignore[attr-defined]
    _field(page, "name").fill("billing")  # type: ignore[attr-defined]
    placeholder = _field(page, "ring_timeout").get_attribute("placeholder")  # type: ignore[attr-defined]
    assert placeholder == "20"  # the schema's default, from the OpenAPI document
    _skill(page, "skills", "billing", 3)
    _field(page, "strategy", "select").select_option("longest-idle")  # type: ignore[attr-defined]
    _field(page, "ring_timeout").fill("0")  # type: ignore[attr-defined]
    _field(page, "wrap_up").fill("0")  # type: ignore[attr-defined]
    _field(page, "wrap_up_codes").fill("sale, no sale")  # type: ignore[attr-defined]
    _save(page, "refused")
    assert "greater than 0" in _problem(page, "ring_timeout")
    assert _problem(page, "wrap_up_codes")  # "no sale" is not a name: every problem is shown
    assert _config(engine, "queues/billing")[0] == 404
    _shoot(page, "admin-queue-refused")
    _field(page, "ring_timeout").fill("15")  # type: ignore[attr-defined]
    _field(page, "wrap_up_codes").fill("sale, no_sale")  # type: ignore[attr-defined]
    _save(page, "yes")
    status, made = _config(engine, "queues/billing")
    assert status == 200 and isinstance(made, dict)
    assert made["skills"] == {"billing": 3} and made["strategy"] == "longest-idle"
    assert made["ring_timeout"] == 15 and made["wrap_up"] == 0
    assert made["wrap_up_codes"] == ["sale", "no_sale"]
    assert made["service_level"] == 20  # not typed: the default, not stored
    _shoot(page, "admin-queues")

    # -- a route: one with no target is refused with the form's own error
    _open(page, "routes")
    page.click("#new-entry")  # type: ignore[attr-defined]
    _field(page, "match").fill("7000")  # type: ignore[attr-defined]
    _save(page, "refused")
    assert "exactly one of" in str(page.text_content("#editor-error"))  # type: ignore[attr-defined]
    _field(page, "queue", "select").select_option("billing")  # type: ignore[attr-defined]
    _save(page, "yes")
    page.wait_for_selector("#routes-table tr[data-key='7000']")  # type: ignore[attr-defined]
    _shoot(page, "admin-routes")

    # -- no restart: the new agent's phone registers, logs in and takes a call on 7000
    sipp = sipp_factory(engine)
    sipp.agent(NEW_AGENT, scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=1000))
    login_all(engine, [NEW_AGENT])
    callers = sipp.callers("7000", 1)
    (record,) = wait_records(engine, 1, timeout=60)
    assert callers.wait(60) == 0, callers.describe()
    assert record["queue"] == "billing" and record["agent"] == NEW_AGENT, record
    assert record["disposition"] == "answered", record

    # -- an edit is a merge patch; one over someone else's change is refused
    _open(page, "queues")
    page.click("#queues-table tr[data-key=billing] button:has-text('Edit')")  # type: ignore[attr-defined]
    _field(page, "service_level").fill("30")  # type: ignore[attr-defined]
    _save(page, "yes")
    status, made = _config(engine, "queues/billing")
    assert status == 200 and isinstance(made, dict)
    assert made["service_level"] == 30 and made["ring_timeout"] == 15
    page.click("#queues-table tr[data-key=billing] button:has-text('Edit')")  # type: ignore[attr-defined]
    assert engine.request("PATCH", "/api/v1/config/queues/billing", {"max_wait": 300})[0] == 200
    _field(page, "service_level").fill("45")  # type: ignore[attr-defined]
    _save(page, "refused")
    assert "Someone changed" in str(page.text_content("#editor-error"))  # type: ignore[attr-defined]
    status, made = _config(engine, "queues/billing")
    assert isinstance(made, dict) and made["service_level"] == 30 and made["max_wait"] == 300

    # -- teams and skills, as the agents and queues make them
    _open(page, "teams")
    teams = page.eval_on_selector_all(  # type: ignore[attr-defined]
        "#teams-table tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert teams == [
        ["blue", "1", "1002"],
        ["red", "2", "1001, 2001"],
        ["No team", "1", "1003"],
    ], teams
    skills = page.eval_on_selector_all(  # type: ignore[attr-defined]
        "#skills-table tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert ["billing", "2001 (5)", "billing (≥ 3)"] in skills, skills
    _shoot(page, "admin-teams")

    # -- users and roles
    _open(page, "users")
    for user, role, team, password in (
        (SUPERVISOR, "supervisor", "", SUPERVISOR_PASSWORD),
        (LEAD, "team_lead", "red", LEAD_PASSWORD),
    ):
        page.click("#new-entry")  # type: ignore[attr-defined]
        _field(page, "username").fill(user)  # type: ignore[attr-defined]
        _field(page, "role", "select").select_option(role)  # type: ignore[attr-defined]
        _field(page, "team").fill(team)  # type: ignore[attr-defined]
        _field(page, "password").fill(password)  # type: ignore[attr-defined]
        _save(page, "yes")
        page.wait_for_selector(f"#users-table tr[data-key='{user}']")  # type: ignore[attr-defined]
    status, lead = engine.request("GET", f"/api/v1/users/{LEAD}")
    assert status == 200 and isinstance(lead, dict)
    assert lead["role"] == "team_lead" and lead["team"] == "red"
    _shoot(page, "admin-users")

    # -- an API key, shown once, that works until it is revoked
    _open(page, "api-keys")
    page.click("#new-entry")  # type: ignore[attr-defined]
    _field(page, "name").fill("lobby TV")  # type: ignore[attr-defined]
    page.check("#editor [data-field=scopes] input[value='queues:read']")  # type: ignore[attr-defined]
    _save(page, "yes")
    key = str(page.text_content("#new-key code"))  # type: ignore[attr-defined]
    assert key.startswith("acd_"), key
    assert engine.request("GET", "/api/v1/queues", token=key)[0] == 200
    assert engine.request("GET", "/api/v1/agents", token=key)[0] == 403  # beyond its scope
    _shoot(page, "admin-api-keys")
    revoke = page.locator("#api-keys-table tbody tr button:has-text('Revoke')")  # type: ignore[attr-defined]
    revoke.click()
    revoke.click()  # the second press confirms
    page.wait_for_selector("#api-keys-table td:has-text('revoked')")  # type: ignore[attr-defined]
    assert engine.request("GET", "/api/v1/queues", token=key)[0] == 401
    assert key not in str(page.content())  # type: ignore[attr-defined]

    # -- the audit log holds the admin's changes from the pages
    _open(page, "audit")
    changes = page.eval_on_selector_all(  # type: ignore[attr-defined]
        "#audit-table tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    assert any(
        row[1] == f"{ADMIN_USER} (admin)" and "/api/v1/config/queues" in row[2] for row in changes
    ), changes[:5]
    for section in ("audit", "webhooks", "pause-reasons"):
        _open(page, section)
        _shoot(page, f"admin-{section}")
    assert page.errors == []  # type: ignore[attr-defined]

    # -- in Simplified Chinese, by the browser's language: every text translated
    zh = open_page(chromium, engine, "/admin/", ADMIN_USER, ADMIN_PASSWORD, locale="zh-CN")
    zh.wait_for_selector("body[data-section=agents] #section[data-loaded=yes]")  # type: ignore[attr-defined]
    assert zh.get_attribute("html", "lang") == "zh-CN"  # type: ignore[attr-defined]
    assert zh.text_content("#nav a[data-section=queues]") == "队列"  # type: ignore[attr-defined]
    for section in ("agents", "queues", "routes", "users", "api-keys"):
        _open(zh, section)
        zh.click("#new-entry")  # type: ignore[attr-defined]
        _shoot(zh, f"admin-zh-{section}")
    for section in ("teams", "pause-reasons", "webhooks", "audit"):
        _open(zh, section)
    _shoot(zh, "admin-zh-audit")
    assert untranslated(zh) == []
    assert zh.errors == []  # type: ignore[attr-defined]

    # -- roles: a supervisor reads, an agent and a team lead are refused
    board = open_page(chromium, engine, "/admin/", SUPERVISOR, SUPERVISOR_PASSWORD)
    board.wait_for_selector("body[data-section=agents] #section[data-loaded=yes]")  # type: ignore[attr-defined]
    assert board.text_content("#status") == "Read only"  # type: ignore[attr-defined]
    assert board.locator("#new-entry, #agents-table button").count() == 0  # type: ignore[attr-defined]
    sections = board.eval_on_selector_all("#nav a", "a => a.map(x => x.dataset.section)")  # type: ignore[attr-defined]
    assert sections == ["agents", "queues", "routes", "teams", "pause-reasons"], sections
    _shoot(board, "admin-supervisor")
    for user, password in (("1001", agent_password("1001")), (LEAD, LEAD_PASSWORD)):
        refused = open_page(chromium, engine, "/admin/", user, password)
        refused.wait_for_selector("#refused:not([hidden])")  # type: ignore[attr-defined]
        assert refused.locator("#admin").is_hidden()  # type: ignore[attr-defined]
        if user == LEAD:
            _shoot(refused, "admin-refused")
    assert "Traceback" not in engine.log()
