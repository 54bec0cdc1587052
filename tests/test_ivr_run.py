"""The interpreter against a scripted fake call: every node type, hang-ups, data dips, latency.

The fake's script is what the caller does, in order: ``"1"`` presses 1 while
the IVR waits for a key, ``">1"`` presses 1 during the next prompt (it cuts a
barge-in prompt short; otherwise it is buffered), ``None`` stays silent
through one wait (the wait times out at once: no real time passes), and
``"hangup"`` hangs up. When the script runs out the caller hangs up.
"""

from __future__ import annotations

import asyncio
import json
import socket
import textwrap
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import aiohttp
import pytest
import yaml
from aiohttp import web

from acd.config import load_config
from ivr import (
    CallerHungUp,
    Digits,
    Flow,
    FlowResult,
    Number,
    PlayItem,
    Prompt,
    Silence,
    Text,
    load_flows,
    run_flow,
)
from ivr._schema import check_flow


class FakeSession:
    """A CallSession whose caller follows a script; every call is logged."""

    def __init__(
        self,
        script: Sequence[str | None] = (),
        *,
        recording: bool = False,
        caller: str = "07700900123",
        hangup_at: str | None = None,
        block_at: str | None = None,
        block_on: str | None = None,
        live: bool = False,
    ) -> None:
        self.call_id = "call-1"
        self.caller = caller
        self.did = "100"
        self.variables: dict[str, str] = {}
        self.language = "en-GB"
        self.recording = recording
        self.script: deque[str | None] = deque(script)
        self.buffer: list[str] = []
        self.log: list[tuple[Any, ...]] = []
        self.nodes: list[str] = []
        self.digits: list[str] = []
        self.survey_score: int | None = None
        self.gone = False
        self.node: str | None = None
        self.hangup_at = hangup_at
        self.block_at = block_at
        self.block_on = block_on
        self.blocked: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        # live: digits arrive through press(), as from the network.
        self.live = live
        self.keys: asyncio.Queue[str] = asyncio.Queue()

    async def _enter(self, method: str) -> None:
        if self.gone:
            raise CallerHungUp
        if (
            self.block_at is not None
            and self.node == self.block_at
            and self.block_on in (None, method)
        ):
            self.blocked.set_result(method)
            await asyncio.get_running_loop().create_future()  # until cancelled

    def _caller_hangs_up(self) -> NoReturn:
        self.gone = True
        raise CallerHungUp

    def prompts_played(self) -> list[list[PlayItem]]:
        return [entry[1] for entry in self.log if entry[0] == "play"]

    async def play(self, items: Sequence[PlayItem], *, barge_in: bool = False) -> str | None:
        await self._enter("play")
        self.log.append(("play", list(items), barge_in, time.monotonic()))
        if self.script and self.script[0] == "hangup":
            self._caller_hangs_up()
        if self.script and (self.script[0] or "").startswith(">"):
            digit = (self.script.popleft() or "")[1:]
            if barge_in:
                return digit
            self.buffer.append(digit)
        return None

    async def get_digit(self, timeout: float) -> str | None:
        await self._enter("get_digit")
        digit: str | None
        if self.live:
            digit = await self.keys.get()
        elif self.buffer:
            digit = self.buffer.pop(0)
        elif not self.script or self.script[0] == "hangup":
            self._caller_hangs_up()
        else:
            digit = self.script.popleft()
            digit = digit[1:] if digit and digit.startswith(">") else digit
        self.log.append(("get_digit", timeout, digit, time.monotonic()))
        return digit

    def flush_digits(self) -> None:
        self.log.append(("flush", list(self.buffer)))
        self.buffer.clear()

    async def enqueue(self, queue: str, priority: int, skills: Mapping[str, int]) -> None:
        await self._enter("enqueue")
        self.log.append(("enqueue", queue, priority, dict(skills)))

    async def transfer(self, target: str) -> None:
        await self._enter("transfer")
        self.log.append(("transfer", target))

    async def hangup(self, cause: int | None = None) -> None:
        await self._enter("hangup")
        self.log.append(("hangup", cause))
        self.gone = True

    def record_node(self, node_id: str) -> None:
        self.node = node_id
        self.nodes.append(node_id)
        if node_id == self.hangup_at:
            self.gone = True  # noticed by the next session call

    def record_digit(self, digit: str) -> None:
        self.digits.append(digit)

    def set_survey_score(self, score: int) -> None:
        self.survey_score = score


def flow_of(text: str) -> Flow:
    flow = Flow.model_validate(yaml.safe_load(textwrap.dedent(text)))
    assert check_flow(flow) == []
    return flow


MAIN = """\
name: main
start: welcome
nodes:
  welcome: {type: play, prompts: [welcome], next: menu}
  menu:
    type: menu
    prompt: [main_menu]
    options: {1: sales, 2: account, 9: menu}
    invalid: [invalid_choice]
    no_input: [no_input]
    on_failure: goodbye
  account:
    type: collect
    prompt: [enter_account]
    variable: account
    min_digits: 4
    max_digits: 6
    pattern: "[0-9]+"
    timeout: 7
    inter_digit_timeout: 2
    invalid: [invalid_account]
    no_input: [no_input]
    next: read_back
    on_failure: goodbye
  read_back: {type: play, prompts: [you_entered, {digits: "{account}"}], next: sales}
  sales: {type: queue, queue: sales, priority: 2, skills: {sales: 3}, next: goodbye}
  goodbye: {type: hangup, prompt: [goodbye]}
"""


async def run(flow: Flow, session: FakeSession, **kwargs: Any) -> FlowResult:
    return await run_flow(flow, session, **kwargs)


# Paths, recording, announcements ---------------------------------------------


async def test_path_and_digits_are_recorded_in_order() -> None:
    session = FakeSession(["9", "2", "1", "2", "3", "4", "#"])
    result = await run(flow_of(MAIN), session)
    assert session.nodes == ["welcome", "menu", "menu", "account", "read_back", "sales", "goodbye"]
    assert session.digits == ["9", "2", "1", "2", "3", "4", "#"]
    assert result.path == tuple(session.nodes) and result.digits == tuple(session.digits)
    assert result.outcome == "hangup" and result.last_node == "goodbye"
    assert session.variables["account"] == "1234"
    assert [Prompt("you_entered"), Digits("1234")] in session.prompts_played()
    assert ("enqueue", "sales", 2, {"sales": 3}) in session.log
    # The queue's default busy announcement comes just before enqueueing.
    enqueue = session.log.index(("enqueue", "sales", 2, {"sales": 3}))
    assert session.log[enqueue - 2][1] == [Prompt("all_agents_busy")]


async def test_recording_notice_first_only_when_recording() -> None:
    recorded = FakeSession(["1"], recording=True)
    await run(flow_of(MAIN), recorded)
    assert recorded.prompts_played()[:2] == [[Prompt("recording_notice")], [Prompt("welcome")]]
    plain = FakeSession(["1"])
    await run(flow_of(MAIN), plain)
    assert plain.prompts_played()[0] == [Prompt("welcome")]


async def test_announcements_are_configurable_per_flow() -> None:
    flow = flow_of(
        MAIN + "announcements: {recording: [{text: 'We record calls.'}], queue_busy: []}\n"
    )
    session = FakeSession(["1"], recording=True)
    await run(flow, session)
    played = session.prompts_played()
    assert played[0] == [Text("We record calls.")]
    assert [Prompt("all_agents_busy")] not in played
    own = flow_of(MAIN.replace("next: goodbye}", "next: goodbye, announcement: [hold_on]}"))
    session = FakeSession(["1"])
    await run(own, session)
    assert [Prompt("hold_on")] in session.prompts_played()


# Menus -------------------------------------------------------------------------


async def test_menu_barge_in_cuts_the_prompt_short() -> None:
    session = FakeSession([">1"])
    await run(flow_of(MAIN.replace("start: welcome", "start: menu")), session)
    assert session.nodes[:2] == ["menu", "sales"]
    menu_play = next(e for e in session.log if e[0] == "play" and e[1] == [Prompt("main_menu")])
    assert menu_play[2] is True
    assert not any(e[0] == "get_digit" for e in session.log)  # answered by the interruption


async def test_menu_without_barge_in_drops_keys_pressed_during_the_prompt() -> None:
    flow = flow_of(
        MAIN.replace(
            "on_failure: goodbye\n  account", "barge_in: false\n    on_failure: goodbye\n  account"
        )
    )
    session = FakeSession([">2", "1"])
    await run(flow, session)
    assert ("flush", ["2"]) in session.log
    assert session.nodes[:3] == ["welcome", "menu", "sales"]
    assert session.digits == ["1"]


async def test_menu_retries_with_no_input_and_invalid_prompts() -> None:
    session = FakeSession([None, "7", "1"])
    await run(flow_of(MAIN), session)
    played = session.prompts_played()
    assert played[1:6] == [
        [Prompt("main_menu")],
        [Prompt("no_input")],
        [Prompt("main_menu")],
        [Prompt("invalid_choice")],
        [Prompt("main_menu")],
    ]
    assert session.nodes[2] == "sales"
    waits = [e[1] for e in session.log if e[0] == "get_digit"]
    assert waits == [5, 5, 5]


async def test_menu_gives_up_to_on_failure_or_hangs_up() -> None:
    session = FakeSession([None, None, None])
    result = await run(flow_of(MAIN), session)
    assert session.nodes == ["welcome", "menu", "goodbye"]
    assert result.outcome == "hangup"
    flow = flow_of(MAIN.replace("    on_failure: goodbye\n  account", "  account"))
    session = FakeSession(["8", "8", "8"])
    result = await run(flow, session)
    assert result.outcome == "failed" and session.log[-1] == ("hangup", None)


async def test_typed_ahead_key_answers_the_next_menu() -> None:
    flow = flow_of(
        MAIN.replace(
            "prompts: [welcome], next: menu", "prompts: [welcome], barge_in: true, next: menu"
        )
    )
    session = FakeSession([">1"])
    await run(flow, session)
    assert session.nodes[:3] == ["welcome", "menu", "sales"]
    assert [Prompt("main_menu")] not in session.prompts_played()
    assert session.digits == ["1"]


# Collect ------------------------------------------------------------------------


async def test_collect_timeouts_terminator_and_max_digits() -> None:
    session = FakeSession(["2", "1", "2", "3", "4", "5", "6"])
    await run(flow_of(MAIN), session)
    assert session.variables["account"] == "123456"  # max_digits ends it, no # needed
    waits = [e[1] for e in session.log if e[0] == "get_digit"]
    assert waits == [5, 7, 2, 2, 2, 2, 2]  # menu, first digit, then inter-digit


async def test_collect_inter_digit_timeout_ends_the_entry() -> None:
    session = FakeSession(["2", "9", "8", "7", "6", None])
    await run(flow_of(MAIN), session)
    assert session.variables["account"] == "9876"


async def test_collect_validation_retries_then_fails_over() -> None:
    # Too short, then a * that the pattern refuses, then silence: on_failure.
    session = FakeSession(["2", "1", "2", "#", "1", "2", "3", "*", "#", None])
    result = await run(flow_of(MAIN), session)
    played = session.prompts_played()
    assert played.count([Prompt("invalid_account")]) == 2
    assert played.count([Prompt("no_input")]) == 1
    assert "account" not in session.variables
    assert session.nodes[-1] == "goodbye" and result.outcome == "hangup"


async def test_collect_barge_in_digit_starts_the_entry() -> None:
    session = FakeSession(["2", ">5", "5", "5", "5", "#"])
    await run(flow_of(MAIN), session)
    assert session.variables["account"] == "5555"
    assert session.digits == ["2", "5", "5", "5", "5", "#"]


# Conditions ------------------------------------------------------------------

HOURS = """\
start: hours
timezone: Europe/London
holidays: {uk: ["12-25", "2026-04-03"]}
nodes:
  hours:
    type: condition
    cases:
      - when: {holiday: uk}
        next: holiday
      - when: {variables: {vip: "yes"}}
        next: vip
      - when: {days: [mon-fri], time: ["08:00-12:00", "13:00-18:00"]}
        next: open
      - when: {days: [fri], time: "22:00-02:00"}
        next: late
    default: closed
  holiday: {type: hangup, prompt: holiday}
  vip: {type: transfer, target: "sip:vip@example.com"}
  open: {type: queue, queue: sales}
  late: {type: queue, queue: night}
  closed: {type: hangup, prompt: closed}
"""


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (datetime(2026, 7, 1, 7, 30, tzinfo=UTC), "open"),  # 08:30 BST, a Wednesday
        (datetime(2026, 1, 7, 7, 30, tzinfo=UTC), "closed"),  # 07:30 GMT
        (datetime(2026, 7, 1, 11, 30, tzinfo=UTC), "closed"),  # lunch, 12:30 BST
        (datetime(2026, 7, 4, 10, 0, tzinfo=UTC), "closed"),  # Saturday
        (datetime(2026, 12, 25, 10, 0, tzinfo=UTC), "holiday"),  # every year
        (datetime(2026, 4, 3, 10, 0, tzinfo=UTC), "holiday"),  # Good Friday 2026
        (datetime(2026, 7, 3, 22, 30, tzinfo=UTC), "late"),  # Friday 23:30 BST
        (datetime(2026, 7, 4, 0, 30, tzinfo=UTC), "late"),  # Saturday 01:30 BST, Friday's window
        (datetime(2026, 7, 2, 0, 30, tzinfo=UTC), "closed"),  # Thursday 01:30 BST
    ],
)
async def test_condition_in_the_flow_time_zone(utc: datetime, expected: str) -> None:
    session = FakeSession()
    await run(flow_of(HOURS), session, now=lambda: utc)
    assert session.nodes == ["hours", expected]


async def test_condition_on_variables() -> None:
    session = FakeSession()
    session.variables["vip"] = "yes"
    result = await run(flow_of(HOURS), session, now=lambda: datetime(2026, 1, 4, 3, 0))
    assert session.nodes == ["hours", "vip"]
    assert result.outcome == "transferred" and ("transfer", "sip:vip@example.com") in session.log


# The other node types --------------------------------------------------------

OTHERS = """\
start: greet
nodes:
  greet:
    type: set
    variables: {greeting: "Hello {caller}", swap_a: "{swap_b}", swap_b: "{swap_a}"}
    next: french
  french: {type: language, language: fr-FR, next: say}
  say:
    type: play
    prompts:
      - {text: "{greeting}, {language}", voice: en-gb}
      - {number: "{position}"}
      - {number: "{unset}"}
      - {silence: 250}
    next: jump
  jump: {type: goto, next: rate}
  rate:
    type: survey
    prompt: [survey_question]
    invalid: [survey_invalid]
    retries: 2
    next: out
  out: {type: transfer, target: "{extension}"}
"""


async def test_set_language_play_goto_survey_transfer() -> None:
    session = FakeSession(["7", "4"])
    session.variables.update(position="3", extension="1004", swap_a="a", swap_b="b")
    result = await run(flow_of(OTHERS), session)
    assert session.language == "fr-FR"
    assert session.variables["swap_a"] == "b" and session.variables["swap_b"] == "a"
    assert session.prompts_played()[0] == [
        Text("Hello 07700900123, fr-FR", "en-gb"),
        Number(3),
        Silence(250),
    ]
    assert session.survey_score == 4 and session.variables["survey_score"] == "4"
    assert [Prompt("survey_invalid")] in session.prompts_played()
    assert ("transfer", "1004") in session.log and result.outcome == "transferred"
    assert result.path == ("greet", "french", "say", "jump", "rate", "out")


async def test_survey_without_a_valid_key_stores_no_score() -> None:
    session = FakeSession([None, "0", "9"])
    await run(flow_of(OTHERS), session)
    assert session.survey_score is None and session.nodes[-1] == "out"


async def test_hangup_plays_its_prompt_and_gives_the_cause() -> None:
    flow = flow_of("start: bye\nnodes:\n  bye: {type: hangup, prompt: [closed], cause: 17}\n")
    session = FakeSession()
    result = await run(flow, session)
    assert session.log[0][:3] == ("play", [Prompt("closed")], False)
    assert session.log[-1] == ("hangup", 17) and result.outcome == "hangup"


async def test_queue_without_next_ends_the_flow_queued() -> None:
    flow = flow_of("start: q\nnodes:\n  q: {type: queue, queue: support}\n")
    result = await run(flow, FakeSession())
    assert result.outcome == "queued"


async def test_step_guard_stops_a_runaway_loop() -> None:
    flow = flow_of(
        "start: a\nmax_steps: 50\nnodes:\n  a: {type: goto, next: b}\n  b: {type: goto, next: a}\n"
    )
    session = FakeSession()
    result = await run(flow, session)
    assert result.outcome == "max_steps" and len(result.path) == 50
    assert session.log == [("hangup", None)]


# HTTP data dips against a real local server ----------------------------------

DIP = """\
start: dip
nodes:
  dip:
    type: http
    url: "{base}/{path}?number={caller}"
    timeout: {timeout}
    result: {name: customer.name, tier: customer.tier, first: orders.0.id, whole: orders}
    next: found
    fallback: fallback
  found: {type: hangup}
  fallback: {type: hangup}
"""


class CrmServer:
    """A local aiohttp server answering the data dips; ``release`` frees slow handlers."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.release = asyncio.Event()
        self.base = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.requests.append((request.method, request.path_qs, body))
        name = request.match_info["name"]
        if name == "ok":
            return web.json_response(
                {"customer": {"name": "Ada", "tier": 2}, "orders": [{"id": 7}, {"id": 9}]}
            )
        if name == "fail":
            return web.Response(status=500, text="boom")
        if name == "text":
            return web.Response(text="<html>not json</html>")
        await self.release.wait()
        return web.json_response({})


@pytest.fixture
async def crm() -> AsyncIterator[CrmServer]:
    server = CrmServer()
    app = web.Application()
    app.router.add_route("*", "/{name}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.base = f"http://127.0.0.1:{port}"
    yield server
    server.release.set()
    await runner.cleanup()


def dip_flow(base: str, path: str, timeout: float = 2) -> Flow:
    text = DIP.replace("{base}", base).replace("{path}", path).replace("{timeout}", str(timeout))
    return flow_of(text)


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def test_http_success_sets_variables_with_url_quoting(crm: CrmServer) -> None:
    session = FakeSession(caller="+44 20&x=1")
    async with aiohttp.ClientSession() as http:
        result = await run(dip_flow(crm.base, "ok"), session, http=http)
    assert result.path == ("dip", "found")
    assert session.variables == {
        "name": "Ada",
        "tier": "2",
        "first": "7",
        "whole": json.dumps([{"id": 7}, {"id": 9}], separators=(",", ":")),
    }
    assert crm.requests == [("GET", "/ok?number=%2B44%2020%26x%3D1", None)]


@pytest.mark.parametrize("path", ["fail", "text", "slow"])
async def test_http_failures_fall_back(crm: CrmServer, path: str) -> None:
    session = FakeSession()
    result = await run(dip_flow(crm.base, path, timeout=0.05), session)  # its own client
    assert result.path == ("dip", "fallback") and session.variables == {}


async def test_http_unreachable_falls_back() -> None:
    result = await run(dip_flow(refused_url(), "ok"), FakeSession())
    assert result.path == ("dip", "fallback")


async def test_http_post_sends_a_templated_json_body(crm: CrmServer) -> None:
    flow = flow_of(
        f"""\
        start: dip
        nodes:
          dip:
            type: http
            method: POST
            url: "{crm.base}/ok"
            headers: {{X-Caller: "{{caller}}"}}
            body: {{account: "{{account}}", number: "{{caller}}"}}
            result: {{name: customer.name}}
            next: done
            fallback: done
          done: {{type: hangup}}
        """
    )
    session = FakeSession()
    session.variables["account"] = "12345678"
    await run(flow, session)
    assert crm.requests == [("POST", "/ok", {"account": "12345678", "number": "07700900123"})]
    assert session.variables["name"] == "Ada"


# Hang-ups leave nothing behind -----------------------------------------------

# One flow per node type, starting at that node, each going on to a node that
# talks to the caller so that a hang-up in a node that does not is noticed.
SINGLE_NODES = {
    "play": "{type: play, prompts: [p], next: end}",
    "menu": "{type: menu, prompt: [m], options: {1: end}}",
    "collect": "{type: collect, prompt: [c], variable: v, next: end}",
    "condition": "{type: condition, cases: [{when: {days: [mon]}, next: end}], default: end}",
    "http": "{type: http, url: 'URL', timeout: 5, next: end, fallback: end}",
    "set": "{type: set, variables: {a: b}, next: end}",
    "language": "{type: language, language: de, next: end}",
    "queue": "{type: queue, queue: sales, next: end}",
    "queue_quiet": "{type: queue, queue: sales, announcement: [], next: end}",
    "transfer": "{type: transfer, target: '1001'}",
    "hangup": "{type: hangup, prompt: [bye]}",
    "survey": "{type: survey, prompt: [s], next: end}",
    "goto": "{type: goto, next: end}",
}


def single_node_flow(kind: str, url: str) -> Flow:
    node = SINGLE_NODES[kind].replace("URL", url)
    return flow_of(
        f"start: it\nnodes:\n  it: {node}\n  end: {{type: play, prompts: [x], next: end2}}\n"
        "  end2: {type: hangup}\n"
    )


def leftovers() -> tuple[set[asyncio.Task[Any]], list[asyncio.TimerHandle]]:
    """Tasks other than the test's own, and timers not cancelled, on the running loop."""
    loop = asyncio.get_running_loop()
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    scheduled: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]
    return tasks, [handle for handle in scheduled if not handle.cancelled()]


@pytest.mark.stock_loop  # leftovers() reads the stock loop's timer list
@pytest.mark.parametrize("kind", sorted(SINGLE_NODES))
async def test_caller_hangs_up_in_every_node_type(kind: str) -> None:
    assert leftovers() == (set(), [])
    session = FakeSession(hangup_at="it")
    result = await run(single_node_flow(kind, refused_url()), session)
    assert result.outcome == "caller_hung_up"
    assert result.last_node in ("it", "end")
    await asyncio.sleep(0)  # one turn of the loop for anything scheduled on the way out
    assert leftovers() == (set(), [])


class SilentServer(asyncio.Protocol):
    """Accepts a connection and never answers: a data dip that hangs."""

    connected: asyncio.Future[None]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self.connected.done():
            self.connected.set_result(None)


@pytest.mark.parametrize(
    ("kind", "method"),
    [
        ("collect", "play"),
        ("collect", "get_digit"),
        ("hangup", "play"),
        ("hangup", "hangup"),
        ("http", None),
        ("menu", "play"),
        ("menu", "get_digit"),
        ("play", "play"),
        ("queue", "play"),
        ("queue", "enqueue"),
        ("survey", "play"),
        ("survey", "get_digit"),
        ("transfer", "transfer"),
    ],
)
@pytest.mark.stock_loop  # leftovers() reads the stock loop's timer list
async def test_cancelling_the_run_in_every_waiting_node_type(kind: str, method: str | None) -> None:
    loop = asyncio.get_running_loop()
    connected: asyncio.Future[None] = loop.create_future()
    SilentServer.connected = connected
    server = await loop.create_server(SilentServer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        session = FakeSession(block_at="it", block_on=method)
        task = asyncio.create_task(
            run(single_node_flow(kind, f"http://127.0.0.1:{port}/x"), session)
        )
        waiting = connected if kind == "http" else session.blocked
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        assert not task.done()
        assert kind == "http" or session.blocked.result() == method
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert leftovers() == (set(), [])
    finally:
        server.close()
        await server.wait_closed()


# Latency ---------------------------------------------------------------------


async def test_key_press_reaches_the_next_prompt_in_the_same_loop_turn() -> None:
    """From the digit's arrival to the next play() the interpreter awaits nothing else.

    A ticker counts turns of the event loop; the press and the next prompt
    must be at most one turn apart (the turn in which the waiting task wakes).
    """
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    flow = flow_of(MAIN)
    session = FakeSession(live=True)
    loop = asyncio.get_running_loop()
    menu_waits: asyncio.Future[None] = loop.create_future()
    sales_prompt: asyncio.Future[int] = loop.create_future()
    original_play, original_get_digit = session.play, session.get_digit

    async def play(items: Sequence[PlayItem], *, barge_in: bool = False) -> str | None:
        if session.node == "sales" and not sales_prompt.done():
            sales_prompt.set_result(ticks)
        return await original_play(items, barge_in=barge_in)

    async def get_digit(timeout: float) -> str | None:
        menu_waits.set_result(None)
        return await original_get_digit(timeout)

    session.play = play  # type: ignore[method-assign]
    session.get_digit = get_digit  # type: ignore[method-assign]
    counting = asyncio.create_task(ticker())
    running = asyncio.create_task(run(flow, session))
    try:
        await menu_waits
        for _ in range(3):  # let the interpreter settle into its wait for the key
            await asyncio.sleep(0)
        press_tick = ticks
        session.keys.put_nowait("1")
        prompt_tick = await sales_prompt
        assert prompt_tick - press_tick <= 1
        got = next(e for e in session.log if e[0] == "get_digit")
        played = next(
            e for e in session.log if e[0] == "play" and e[1] == [Prompt("all_agents_busy")]
        )
        assert played[3] - got[3] < 0.1  # and on the wall clock, generously
    finally:
        running.cancel()
        counting.cancel()
        await asyncio.gather(running, counting, return_exceptions=True)


# The demo flow ---------------------------------------------------------------

DEMO_FLOWS = Path(__file__).resolve().parents[1] / "config" / "ivr"


async def test_demo_flow_out_of_hours_says_closed_and_hangs_up() -> None:
    flows = load_flows(DEMO_FLOWS)
    session = FakeSession(recording=True)
    sunday = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    result = await run(flows["main"], session, now=lambda: sunday)
    assert session.nodes == ["welcome", "hours", "closed"] and result.outcome == "hangup"
    assert session.prompts_played()[0] == [Prompt("recording_notice")]


@pytest.mark.parametrize(
    ("env", "path"), [({}, "lookup"), ({"ACD_VARIABLES": "demo_open=no"}, "closed")]
)
async def test_the_demo_centre_is_open_at_any_hour_unless_told_otherwise(
    env: dict[str, str], path: str
) -> None:
    """example.yaml's variables keep the demo open on a Sunday; ACD_VARIABLES turns
    that off and the flow's real hours say closed."""
    config = load_config(DEMO_FLOWS.parent / "example.yaml", env=env)
    route = config.route_for("100")
    assert route is not None and route.ivr == "main"
    session = FakeSession(hangup_at="lookup")
    session.variables.update({**config.variables, **route.variables})
    sunday = datetime(2026, 3, 8, 3, 0, tzinfo=UTC)
    await run(load_flows(DEMO_FLOWS)["main"], session, now=lambda: sunday)
    assert session.nodes[:3] == ["welcome", "hours", path]


async def test_demo_flow_falls_back_when_the_crm_is_down_and_collects_an_account(
    crm: CrmServer,
) -> None:
    flows = load_flows(DEMO_FLOWS)
    main = flows["main"]
    tuesday = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
    # The flow's CRM address is replaced by one that refuses connections.
    lookup = main.nodes["lookup"].model_copy(update={"url": refused_url() + "/c?n={caller}"})
    down = main.model_copy(update={"nodes": {**main.nodes, "lookup": lookup}})
    session = FakeSession(["4", "1", "2", "3", "4", "5", "6", "7", "8"])
    result = await run(down, session, now=lambda: tuesday)
    assert session.nodes[:4] == ["welcome", "hours", "lookup", "menu"]
    assert session.nodes[4:7] == ["account", "account_read_back", "billing"]
    assert ("enqueue", "billing", 5, {"billing": 3}) in session.log
    assert session.variables == {"account": "12345678"}
    assert result.digits == ("4", "1", "2", "3", "4", "5", "6", "7", "8")
    # With the CRM up, the caller is greeted by name before the menu.
    up_lookup = main.nodes["lookup"].model_copy(update={"url": crm.base + "/ok?n={caller}"})
    up = main.model_copy(update={"nodes": {**main.nodes, "lookup": up_lookup}})
    session = FakeSession(["1"])
    await run(up, session, now=lambda: tuesday)
    assert session.nodes[:5] == ["welcome", "hours", "lookup", "greet", "greet_by_name"]
    assert [Text("Hello Ada.")] in session.prompts_played()
    assert session.variables["customer_tier"] == "2"
