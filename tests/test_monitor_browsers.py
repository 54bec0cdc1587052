"""Listen, whisper and barge heard in the browsers: an agent's desktop and a supervisor's wallboard.

Three parties, each with its own tone so that what each hears can be told
apart: the SIPp caller speaks 440 Hz, agent 1001's browser microphone 1000
Hz (the agent desktop), supervisor 9001's browser microphone 700 Hz (a
second Chromium, on the wallboard). The supervisor presses Listen, Whisper
and Barge on the board, and the browsers' own audio says what the
call-control issue defines: listening, the supervisor hears the caller and
the agent, and the agent does not hear the supervisor; whispering and
barging, the agent hears the supervisor. (That the caller does not hear a
whisper, and hears a barge, is checked sample by sample on the engine's
RTP in tests/test_monitor_sipp.py: a SIPp caller cannot say what it hears.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .conftest import RunningEngine, agent_password
from .test_acd_sipp import (  # noqa: F401 (sipp_factory is a fixture)
    Sipp,
    sipp_factory,
    wait_records,
)
from .test_browser_phone import (  # noqa: F401 (chromium is a fixture)
    BROWSER_TONE,
    CALLER_TONE,
    _engine,
    _tone_wav,
    chromium,
    hears_tone,
    launch_chromium,
    open_page,
)
from .test_monitor_sipp import assert_nothing_left, monitor_state, tone_call

SUPERVISOR, SUPERVISOR_PASSWORD = "9001", "sup-Password-9001"
SUPERVISOR_TONE = 700
AGENT_TONE = BROWSER_TONE


def test_listen_whisper_and_barge_as_the_browsers_hear_them(
    tmp_path: Path,
    engine_factory: Callable[[Path], RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811
    chromium: object,  # noqa: F811
) -> None:
    engine = _engine(tmp_path, engine_factory, agents=("1001", SUPERVISOR))
    body = {"username": SUPERVISOR, "role": "supervisor", "password": SUPERVISOR_PASSWORD}
    assert engine.request("POST", "/api/v1/users", body)[0] == 201
    sipp = sipp_factory(engine)

    desk = open_page(chromium, engine, "/agent/", "1001", agent_password("1001"))
    desk.wait_for_selector("body[data-phone=registered]")  # type: ignore[attr-defined]
    desk.click("#agent-login")  # type: ignore[attr-defined]
    desk.wait_for_selector("body[data-agent=available]")  # type: ignore[attr-defined]
    caller = tone_call(sipp, tmp_path, 35)
    desk.wait_for_selector("body[data-call=ringing]")  # type: ignore[attr-defined]
    desk.click("#answer")  # type: ignore[attr-defined]
    desk.wait_for_selector("body[data-call=talking]")  # type: ignore[attr-defined]
    assert hears_tone(desk, CALLER_TONE), "the agent hears the caller"

    second = launch_chromium(chromium, _tone_wav(tmp_path / "supervisor.wav", SUPERVISOR_TONE))
    try:
        board = open_page(second, engine, "/wallboard/", SUPERVISOR, SUPERVISOR_PASSWORD)
        board.wait_for_selector("body[data-stream=open][data-phone=registered]")  # type: ignore[attr-defined]
        row = '#calls tr[data-agent="1001"]'
        board.wait_for_selector(row)  # type: ignore[attr-defined]

        board.click(f"{row} button[data-mode=listen]")  # type: ignore[attr-defined]
        board.wait_for_selector("body[data-monitor=listen-connected]")  # type: ignore[attr-defined]
        engine.wait_for(
            lambda: monitor_state(engine, "1001")[1].get("state") == "connected",  # type: ignore[union-attr]
            timeout=10,
            what="the supervisor's browser joined",
        )
        assert hears_tone(board, CALLER_TONE), "listening, the supervisor hears the caller"
        assert hears_tone(board, AGENT_TONE), "listening, the supervisor hears the agent"
        assert not hears_tone(desk, SUPERVISOR_TONE, looks=3), "listening is silent to the agent"

        for mode in ("whisper", "barge"):
            board.click(f"{row} button[data-mode={mode}]")  # type: ignore[attr-defined]
            board.wait_for_selector(f"body[data-monitor={mode}-connected]")  # type: ignore[attr-defined]
            engine.wait_for(
                lambda m=mode: monitor_state(engine, "1001")[1].get("mode") == m,  # type: ignore[union-attr]
                timeout=5,
                what=f"the engine in {mode} mode",
            )
            assert hears_tone(desk, SUPERVISOR_TONE), f"{mode}: the agent hears the supervisor"
            assert hears_tone(desk, CALLER_TONE), f"{mode}: the agent still hears the caller"
            assert hears_tone(board, CALLER_TONE), f"{mode}: the supervisor hears the caller"

        board.click(f"{row} button[data-mode=stop]")  # type: ignore[attr-defined]
        board.wait_for_selector("body[data-monitor=none]")  # type: ignore[attr-defined]
        engine.wait_for(
            lambda: monitor_state(engine, "1001")[0] == 404, timeout=5, what="no monitor"
        )
        assert board.errors == [] and desk.errors == []  # type: ignore[attr-defined]
    finally:
        second.close()  # type: ignore[attr-defined]
    assert caller.wait(60) == 0, caller.describe()  # the caller hangs up at the end of its tone
    desk.wait_for_selector("body[data-call=idle]")  # type: ignore[attr-defined]
    wait_records(engine, 1)
    assert_nothing_left(engine)
