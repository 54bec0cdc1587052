"""IVR flow files: the demo loads, every kind of mistake names file, line and key; analysis."""

from __future__ import annotations

import textwrap
from datetime import date, datetime, time
from pathlib import Path

import pytest

from acd.config import ConfigError
from ivr import (
    CollectNode,
    Flow,
    FlowError,
    HttpNode,
    MenuNode,
    QueueNode,
    analyse,
    check_queues,
    load_flow,
    load_flows,
)
from ivr._calendar import in_schedule, parse_days, parse_holidays, parse_time_window

REPO = Path(__file__).resolve().parents[1]
FLOWS = REPO / "config" / "ivr"

GOOD = """\
start: welcome
timezone: Europe/London
holidays: {uk: ["2026-12-25", "12-26"]}
nodes:
  welcome: {type: play, prompts: [welcome, {text: "Hello {caller}"}, {silence: 200}], next: hours}
  hours:
    type: condition
    cases:
      - when: {days: [mon-fri], time: "08:00-18:00", not_holiday: uk}
        next: menu
    default: closed
  menu:
    type: menu
    prompt: main_menu
    options: {1: sales, 2: account}
    on_failure: closed
  account:
    type: collect
    prompt: [enter_account]
    variable: account
    min_digits: 4
    max_digits: 8
    pattern: "[0-9]+"
    next: sales
  sales: {type: queue, queue: sales, priority: 3, skills: {sales: 2}}
  closed: {type: hangup, prompt: closed}
"""


def write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    assert isinstance(caught.value, ConfigError)  # one error type for check-config
    lines = str(caught.value).splitlines()
    assert list(caught.value.problems) == lines
    return lines


# Good flows -------------------------------------------------------------------


def test_good_flow_loads_into_typed_nodes(tmp_path: Path) -> None:
    flow = load_flow(write(tmp_path, GOOD))
    assert flow.name == "flow"  # from the file name
    assert flow.timezone.key == "Europe/London"
    menu = flow.nodes["menu"]
    assert isinstance(menu, MenuNode)
    assert menu.options == {"1": "sales", "2": "account"}  # YAML ints become keys
    assert menu.retries == 2 and menu.barge_in is True
    collect = flow.nodes["account"]
    assert isinstance(collect, CollectNode)
    assert collect.terminator == "#" and collect.pattern is not None
    queue = flow.nodes["sales"]
    assert isinstance(queue, QueueNode) and queue.skills == {"sales": 2}
    assert date(2027, 12, 26) in flow.holidays["uk"]
    assert analyse(flow) == []


def test_demo_flows_load_and_analyse_clean() -> None:
    flows = load_flows(FLOWS)
    assert set(flows) >= {"main", "survey"}
    for flow in flows.values():
        assert analyse(flow) == [], flow.name
    main = flows["main"]
    assert main.post_call_survey == "survey"
    assert {"1", "2", "3", "4", "9"} <= set(main.nodes["menu"].options)  # type: ignore[union-attr]
    lookup = main.nodes["lookup"]
    assert isinstance(lookup, HttpNode) and lookup.fallback == "menu"
    assert check_queues(flows, ["sales", "support", "billing"]) == []


def test_demo_queues_exist_in_example_config() -> None:
    from acd.config import load_config

    config = load_config(REPO / "config" / "example.yaml", env={})
    assert check_queues(load_flows(FLOWS), config.queues) == []
    assert any(route.ivr == "main" for route in config.routes)


def test_check_queues_names_the_line(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    problems = check_queues(load_flows(tmp_path), ["support"])
    assert problems == [
        f"{tmp_path / 'flow.yaml'}:25: nodes.sales.queue: unknown queue 'sales' (queues: support)"
    ]


# Errors name the file, the line and the key ----------------------------------

ERRORS = {
    "bad YAML": ("start: a\nnodes: {a: [\n", ":3: YAML syntax error"),
    "duplicate key": (
        "start: a\nnodes:\n  a: {type: goto, next: a}\n  a: {type: goto, next: a}\n",
        ":4: nodes.a: duplicate key (first on line 3)",
    ),
    "unknown key": (
        "start: a\nnodes:\n  a: {type: play, prompts: [x], next: a, barge: true}\n",
        ":3: nodes.a.barge: unknown key; did you mean 'barge_in'?",
    ),
    "unknown node type": (
        "start: a\nnodes:\n  a: {type: plya, prompts: [x], next: a}\n",
        ":3: nodes.a: Input tag 'plya' found using 'type' does not match",
    ),
    "missing target": (
        "start: a\nnodes:\n  a:\n    type: menu\n    prompt: m\n    options: {1: b, 2: nowhere}\n"
        "  b: {type: hangup}\n",
        ":6: nodes.a.options.2: no node 'nowhere' (nodes: a, b)",
    ),
    "missing start": (
        "start: begin\nnodes:\n  a: {type: hangup}\n",
        ":1: start: no node 'begin' (nodes: a)",
    ),
    "wrong type": (
        "start: a\nnodes:\n  a: {type: menu, prompt: m, options: {1: a}, timeout: soon}\n",
        ":3: nodes.a.timeout: Input should be a valid number",
    ),
    "missing key": (
        "start: a\nnodes:\n  a: {type: collect, prompt: p, next: a}\n",
        ":3: nodes.a.variable: Field required",
    ),
    "bad regex": (
        "start: a\nnodes:\n  a:\n    type: collect\n    prompt: p\n    variable: v\n"
        "    pattern: '[0-9'\n    next: a\n",
        ":7: nodes.a.pattern: bad regular expression '[0-9'",
    ),
    "bad time zone": (
        "start: a\ntimezone: Europe/Lundon\nnodes:\n  a: {type: hangup}\n",
        ":2: timezone: unknown time zone 'Europe/Lundon'",
    ),
    "bad option key": (
        "start: a\nnodes:\n  a: {type: menu, prompt: m, options: {12: a}}\n",
        ":3: nodes.a.options.12: '12' is not valid here: use one key",
    ),
    "bad time window": (
        "start: a\nnodes:\n  a:\n    type: condition\n    cases:\n"
        "      - when: {time: '25:00-26:00'}\n        next: a\n    default: a\n",
        ":6: nodes.a.cases[0].when.time: '25:00' is not a time of day HH:MM",
    ),
    "bad day": (
        "start: a\nnodes:\n  a:\n    type: condition\n    cases:\n"
        "      - when: {days: [mon-fry]}\n        next: a\n    default: a\n",
        ":6: nodes.a.cases[0].when.days: 'mon-fry' is not a day or day range",
    ),
    "unknown holiday calendar": (
        "start: a\nnodes:\n  a:\n    type: condition\n    cases:\n"
        "      - when: {holiday: fr}\n        next: a\n    default: a\n",
        ":6: nodes.a.cases[0].when.holiday: no holiday calendar 'fr' (holidays: none defined)",
    ),
    "bad template": (
        "start: a\nnodes:\n  a: {type: play, prompts: [{text: 'hi {caller'}], next: a}\n",
        ":3: nodes.a.prompts[0].text: bad template 'hi {caller'",
    ),
    "two prompt kinds": (
        "start: a\nnodes:\n  a: {type: play, prompts: [{text: hi, number: 3}], next: a}\n",
        ":3: nodes.a.prompts[0]: give exactly one of prompt, text, number, digits, silence, wav",
    ),
    "bad URL": (
        "start: a\nnodes:\n  a: {type: http, url: 'ftp://x/{caller}', next: a, fallback: a}\n",
        ":3: nodes.a.url: 'ftp://x/{caller}': the URL must start with http://",
    ),
    "min above max": (
        "start: a\nnodes:\n  a: {type: collect, prompt: p, variable: v, min_digits: 9,"
        " max_digits: 4, next: a}\n",
        ":3: nodes.a: min_digits (9) is more than max_digits (4)",
    ),
    "queue key beside type queue": (
        "start: a\nnodes:\n  a:\n    type: queue\n    queue: 'no good'\n",
        ":5: nodes.a.queue: 'no good' is not valid here",
    ),
    "name differs from file": (
        "name: other\nstart: a\nnodes:\n  a: {type: hangup}\n",
        ":1: name: is 'other' but the file is flow.yaml; they must agree",
    ),
    "no nodes": ("start: a\nnodes: {}\n", ":2: nodes: Dictionary should have at least 1 item"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_malformed_flow_names_file_line_and_key(tmp_path: Path, case: str) -> None:
    text, expected = ERRORS[case]
    path = write(tmp_path, text)
    problems = errors_of(path)
    # Exactly one line: a mistake is reported once, not echoed by its parents.
    assert len(problems) == 1 and problems[0].startswith(f"{path}{expected}"), problems


def test_every_problem_of_every_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "start: a\nnodes:\n  a: {type: goto, next: b}\n", "one.yaml")
    write(tmp_path, "start: a\npost_call_survey: poll\nnodes:\n  a: {type: hangup}\n", "two.yaml")
    write(tmp_path, GOOD, "good.yaml")
    with pytest.raises(FlowError) as caught:
        load_flows(tmp_path)
    assert caught.value.problems == (
        f"{tmp_path / 'one.yaml'}:3: nodes.a.next: no node 'b' (nodes: a)",
        f"{tmp_path / 'two.yaml'}:2: post_call_survey: no flow 'poll' (flows: good, one, two)",
    )


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match="not a directory"):
        load_flows(tmp_path / "absent")


def test_wav_paths_are_relative_to_the_flow_file(tmp_path: Path) -> None:
    (tmp_path / "hold.wav").write_bytes(b"RIFF")
    path = write(
        tmp_path,
        "start: a\nnodes:\n  a: {type: play, prompts: [{wav: hold.wav}], next: b}\n"
        "  b: {type: play, prompts: [{wav: gone.wav}], next: a}\n",
    )
    problems = errors_of(path)
    assert problems == [
        f"{path}:4: nodes.b.prompts[0].wav: file not found: {tmp_path / 'gone.wav'}"
    ]


# Analysis --------------------------------------------------------------------


def flow_of(tmp_path: Path, text: str) -> Flow:
    return load_flow(write(tmp_path, text))


def test_analysis_flags_unreachable_nodes_with_their_line(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        """\
        start: a
        nodes:
          a: {type: hangup}
          orphan: {type: play, prompts: [x], next: a}
          orphan2: {type: goto, next: orphan}
        """,
    )
    issues = analyse(flow)
    assert [(i.node, i.severity) for i in issues] == [("orphan", "warning"), ("orphan2", "warning")]
    assert str(issues[0]) == (
        f"{tmp_path / 'flow.yaml'}:4: nodes.orphan: warning: "
        "unreachable: no path from start node 'a' leads here"
    )


def test_analysis_flags_a_loop_that_waits_for_no_input(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        """\
        start: intro
        nodes:
          intro: {type: play, prompts: [hello], next: again}
          again: {type: goto, next: check}
          check:
            type: condition
            cases: [{when: {variables: {x: "1"}}, next: done}]
            default: intro
          done: {type: hangup}
        """,
    )
    issues = analyse(flow)
    assert len(issues) == 1
    assert issues[0].severity == "error" and issues[0].node == "intro"
    assert "intro -> again -> check -> intro" in str(issues[0])
    assert str(issues[0]).startswith(f"{tmp_path / 'flow.yaml'}:3: nodes.intro: error: ")


def test_analysis_flags_self_loops_and_http_falling_back_to_itself(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        """\
        start: dip
        nodes:
          dip: {type: http, url: "http://crm/x", next: spin, fallback: dip}
          spin: {type: goto, next: spin}
        """,
    )
    assert [(i.node, i.severity) for i in analyse(flow)] == [("dip", "error"), ("spin", "error")]


def test_analysis_accepts_loops_through_menus_collects_and_queues(tmp_path: Path) -> None:
    flow = flow_of(
        tmp_path,
        """\
        start: menu
        nodes:
          menu: {type: menu, prompt: m, options: {9: again, 1: acct, 2: q}}
          again: {type: play, prompts: [x], next: menu}
          acct: {type: collect, prompt: p, variable: v, next: back}
          back: {type: goto, next: acct}
          q: {type: queue, queue: sales, next: sorry}
          sorry: {type: play, prompts: [still_busy], next: q}
        """,
    )
    assert analyse(flow) == []


# The calendar ----------------------------------------------------------------


def test_days_and_ranges_including_wrapping() -> None:
    assert parse_days(["mon-fri"]) == frozenset(range(5))
    assert parse_days(["fri-mon"]) == frozenset({4, 5, 6, 0})
    assert parse_days("Sunday") == frozenset({6})


def test_overnight_window_belongs_to_the_day_it_starts() -> None:
    window = parse_time_window("22:00-06:00")
    friday = frozenset({4})
    assert in_schedule(datetime(2026, 3, 6, 23, 0), friday, [window])  # Friday night
    assert in_schedule(datetime(2026, 3, 7, 2, 0), friday, [window])  # Saturday small hours
    assert not in_schedule(datetime(2026, 3, 6, 2, 0), friday, [window])  # Friday small hours
    assert not in_schedule(datetime(2026, 3, 7, 7, 0), friday, [window])
    whole_day = parse_time_window("00:00-24:00")
    assert whole_day.end == time.max and in_schedule(
        datetime(2026, 3, 7, 23, 59), None, [whole_day]
    )


def test_holidays_fixed_yearly_and_ranges() -> None:
    calendar = parse_holidays(["2026-04-03", "12-25", "2026-08-01..2026-08-03", date(2027, 1, 2)])
    assert date(2026, 4, 3) in calendar and date(2027, 4, 3) not in calendar
    assert date(2031, 12, 25) in calendar
    assert date(2026, 8, 2) in calendar and date(2026, 8, 4) not in calendar
    assert date(2027, 1, 2) in calendar
    with pytest.raises(ValueError, match="not a holiday date"):
        parse_holidays(["2026-02-30"])
