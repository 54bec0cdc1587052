"""The browser phone page in Debian's Chromium, against a running engine and SIPp.

Playwright drives ``/usr/bin/chromium`` (no browser download): the page at
``/agent/`` signs in as agent 1001, registers over the engine's SIP
WebSocket with the phone credential the API hands out, and logs the agent
in. Chromium's fake microphone plays a 1 kHz tone from a WAV file; the SIPp
caller speaks 440 Hz. So the caller's tone is what the browser must hear
(measured in the page with Web Audio on the remote stream), and the stereo
recording holds 440 Hz on the caller's side and 1 kHz on the agent's.

``--allow-loopback-in-peer-connection`` lets Chromium's ICE use 127.0.0.1,
the only address these tests may send to.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright import sync_api as playwright_api

from media import read_wav

from .conftest import ROOT, RunningEngine, agent_password, free_port, require_tool
from .test_acd_sipp import (  # noqa: F401 (sipp_factory is a fixture)
    Sipp,
    events_of,
    scenario_copy,
    sipp_factory,
    wait_records,
)
from .test_monitor_sipp import assert_nothing_left, tone_call
from .test_websocket_wire import ws_config
from .webrtc_peer import dominant_frequency

BROWSER_TONE = 1000
CALLER_TONE = 440
PAGE_TIMEOUT_MS = 20_000

# Web Audio on the <audio> element's remote stream: the strongest frequency
# over a few analyser frames (None while nothing is heard yet).
_DOMINANT_JS = """
async () => {
  const stream = document.getElementById("remote-audio").srcObject;
  if (!stream) return null;
  const ctx = new AudioContext();
  const source = ctx.createMediaStreamSource(stream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  source.connect(analyser);
  const bins = new Float32Array(analyser.frequencyBinCount);
  let best = null;
  for (let i = 0; i < 10; i++) {
    await new Promise((done) => setTimeout(done, 100));
    analyser.getFloatFrequencyData(bins);
    let at = 0;
    for (let k = 1; k < bins.length; k++) if (bins[k] > bins[at]) at = k;
    if (bins[at] > -70) best = (at * ctx.sampleRate) / analyser.fftSize;
  }
  await ctx.close();
  return best;
}
"""


# The tones the page's remote audio carries: the frequencies of the spectrum's
# peaks above -70 dB, over about a second.
_TONES_JS = """
async () => {
  const stream = document.getElementById("remote-audio").srcObject;
  if (!stream) return [];
  const ctx = new AudioContext();
  const source = ctx.createMediaStreamSource(stream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 8192;
  source.connect(analyser);
  const bins = new Float32Array(analyser.frequencyBinCount);
  const found = new Set();
  for (let i = 0; i < 10; i++) {
    await new Promise((done) => setTimeout(done, 100));
    analyser.getFloatFrequencyData(bins);
    for (let k = 2; k < bins.length - 2; k++) {
      const peak = bins[k] > -70 && bins[k] >= bins[k - 1] && bins[k] >= bins[k + 1]
        && bins[k] > bins[k - 2] + 10 && bins[k] > bins[k + 2] + 10;
      if (peak) found.add(Math.round((k * ctx.sampleRate) / analyser.fftSize));
    }
  }
  await ctx.close();
  return [...found];
}
"""


def hears_tone(page: object, frequency: float, looks: int = 10) -> bool:
    """Whether the page's remote audio carries ``frequency`` (within 20 Hz) among
    its tones, looked at (about a second a look) until it does or ``looks`` have passed."""
    for _ in range(looks):
        tones = page.evaluate(_TONES_JS)  # type: ignore[attr-defined]
        if any(abs(tone - frequency) < 20 for tone in tones):
            return True
    return False


def hears(page: object, frequency: float, looks: int = 10) -> float | None:
    """What the page's remote audio carries most strongly, looked at (about a
    second a look) until it is ``frequency`` within 20 Hz or ``looks`` have passed."""
    heard = None
    for _ in range(looks):
        heard = page.evaluate(_DOMINANT_JS)  # type: ignore[attr-defined]
        if heard is not None and abs(heard - frequency) < 20:
            break
    return heard


def _tone_wav(path: Path, frequency: float, seconds: float = 10.0) -> Path:
    rate = 48_000
    n = np.arange(int(rate * seconds))
    samples = (9000 * np.sin(2 * math.pi * frequency * n / rate)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def _kill_chromium(marker: Path) -> int:
    """SIGKILL every Chromium process started with ``marker`` (its fake microphone) on
    its command line, as a crash would; returns how many there were."""
    killed = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(marker).encode() in arg for arg in argv):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)
                killed += 1
    return killed


def launch_chromium(driver_or_browser: object, microphone: Path) -> object:
    """Debian's Chromium, headless, whose fake microphone plays the WAV file
    ``microphone``; ``driver_or_browser`` is a Playwright driver or a browser
    already launched (for a second one with another microphone)."""
    kind = getattr(driver_or_browser, "browser_type", None) or driver_or_browser.chromium  # type: ignore[attr-defined]
    return kind.launch(
        executable_path=require_tool("chromium"),
        headless=True,
        args=[
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}",
            "--allow-loopback-in-peer-connection",
            "--autoplay-policy=no-user-gesture-required",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
        ],
    )


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[object]:
    """Debian's Chromium under Playwright, with a fake microphone playing BROWSER_TONE."""
    tone = _tone_wav(tmp_path / "mic.wav", BROWSER_TONE)
    with playwright_api.sync_playwright() as driver:
        browser = launch_chromium(driver, tone)
        try:
            yield browser
        finally:
            browser.close()  # type: ignore[attr-defined]


def _engine(
    tmp_path: Path,
    engine_factory: Callable[[Path], RunningEngine],
    *,
    extra: str = "",
    routes: dict[str, str] | None = None,
    queue: str = "",
    wrap_up: int = 0,
    agents: tuple[str, ...] = ("1001", "1002", "1003"),
    teams: dict[str, str] | None = None,
) -> RunningEngine:
    config = ws_config(
        tmp_path,
        free_port(),
        extra=extra,
        routes=routes,
        queue=queue,
        wrap_up=wrap_up,
        agents=agents,
        teams=teams,
    )
    return engine_factory(config)


def open_page(
    browser: object,
    engine: RunningEngine,
    path: str,
    user: str,
    password: str,
    *,
    locale: str | None = None,
    init_script: str | None = None,
) -> object:
    """A new page at ``path``, signed in through its form; page errors are kept in
    ``page.errors`` for the test to check. ``locale`` (say ``zh-CN``) is the
    browser's language, in a context of its own; ``init_script`` runs in the
    page before its own scripts (through DevTools, so its CSP holds)."""
    # A context of its own only when it has a language of its own.
    owner = browser if locale is None else browser.new_context(locale=locale)  # type: ignore[attr-defined]
    page = owner.new_page()  # type: ignore[attr-defined]
    if init_script is not None:
        page.add_init_script(init_script)
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    page.goto(f"{engine.url}{path}")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#sign-in button[type=submit]")
    return page


def _signed_in_page(browser: object, engine: RunningEngine, user: str = "1001") -> object:
    page = open_page(browser, engine, "/agent/", user, agent_password(user))
    page.wait_for_selector("body[data-phone=registered]")  # type: ignore[attr-defined]
    return page


SCREENS = Path(os.environ.get("ACD_SCREENSHOTS", ROOT / "build" / "screenshots"))
WIDTHS = {"desktop": (1280, 800), "phone": (390, 844)}


# The innermost elements that stick out past the right edge of the viewport
# (inside a box that scrolls sideways, such as a wide table's, they may).
_WIDER_JS = """
(width) => {
  const scrolls = (e) => {
    for (let up = e.parentElement; up; up = up.parentElement) {
      if (getComputedStyle(up).overflowX !== "visible") return true;
    }
    return false;
  };
  const out = (e) => e.getBoundingClientRect().right > width + 1 && e.getClientRects().length;
  return [...document.querySelectorAll("body *")]
    .filter((e) => out(e) && !scrolls(e))
    .filter((e) => ![...e.children].some(out))
    .slice(0, 5)
    .map((e) => `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""}.${e.className}`);
}
"""


def screenshots(page: object, name: str) -> list[Path]:
    """The page as it is now, at a desktop's and a phone's width, kept under
    build/screenshots (or $ACD_SCREENSHOTS) for people to look at; nothing on
    it may stick out past the screen's edge, and axe-core must find nothing
    serious in it."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    taken = []
    before = page.viewport_size  # type: ignore[attr-defined]
    for kind, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})  # type: ignore[attr-defined]
        path = SCREENS / f"{name}-{kind}.png"
        page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
        taken.append(path)
        wide = page.evaluate(_WIDER_JS, width)  # type: ignore[attr-defined]
        assert not wide, f"{name} is wider than a {kind}'s {width} px: {wide}"
    if before:
        page.set_viewport_size(before)  # type: ignore[attr-defined]
    assert accessibility_problems(page) == [], name
    return taken


AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = ("serious", "critical")


def untranslated(page: object) -> list[str]:
    """The texts the page showed in English for want of a translation (i18n.js).

    Chinese screenshots are only worth looking at with a font that has the
    glyphs (scripts/test installs one): without it they show empty boxes."""
    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False)
    assert fonts.stdout.strip(), "no font with Chinese glyphs: apt-get install fonts-wqy-microhei"
    return sorted(page.evaluate("() => [...(window.acdMissing || [])]"))  # type: ignore[attr-defined]


def accessibility_problems(page: object) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now, one line each.

    The script (from npm, with the pages' other packages) goes in through
    DevTools, which the page's CSP does not govern, so the page is checked
    under its real policy."""
    assert AXE.is_file(), "run scripts/build-web (it installs axe-core)"
    page.evaluate(AXE.read_text())  # type: ignore[attr-defined]
    found = page.evaluate(  # type: ignore[attr-defined]
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations.map(
            (v) => ({id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" "))})
        )"""
    )
    return [
        f"{v['id']} ({v['impact']}): {', '.join(v['nodes'][:5])}"
        for v in found
        if v["impact"] in SERIOUS
    ]


def _registrations(engine: RunningEngine, user: str) -> list[dict[str, object]]:
    rows = engine.http_json("/api/v1/registrations")["registrations"]
    assert isinstance(rows, list)
    return [row for row in rows if row.get("user") == user]


def test_the_page_signs_in_registers_answers_a_sipp_caller_and_both_are_recorded(
    tmp_path: Path,
    engine_factory: Callable[[Path], RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811
    chromium: object,
) -> None:
    engine = _engine(tmp_path, engine_factory)
    sipp = sipp_factory(engine)
    page = _signed_in_page(chromium, engine)
    assert page.text_content("#status") == "Ready"  # type: ignore[attr-defined]
    page.click("#agent-login")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-agent=available]")  # type: ignore[attr-defined]
    assert engine.http_json("/api/v1/agents/1001")["state"] == "available"
    (binding,) = _registrations(engine, "1001")
    assert str(binding["contact"]).endswith(".invalid;transport=ws"), binding
    assert str(binding["user_agent"]).startswith("acd-phone"), binding

    caller = tone_call(sipp, tmp_path, 10)
    page.wait_for_selector("body[data-call=ringing]")  # type: ignore[attr-defined]
    page.click("#answer")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-call=talking]")  # type: ignore[attr-defined]
    engine.wait_for(
        lambda: engine.http_json("/api/v1/agents/1001")["state"] == "on_call",
        what="1001 on the call",
    )
    heard = hears(page, CALLER_TONE)
    assert heard is not None and abs(heard - CALLER_TONE) < 20, f"the browser hears {heard} Hz"

    # Hold and resume: a re-INVITE from the browser both ways.
    page.click("#hold")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-call=held]")  # type: ignore[attr-defined]
    page.click("#hold")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-call=talking]")  # type: ignore[attr-defined]

    assert caller.wait(40) == 0, caller.describe()
    page.wait_for_selector("body[data-call=idle]")  # type: ignore[attr-defined]
    assert page.errors == []  # type: ignore[attr-defined]

    (record,) = wait_records(engine, 1)
    assert record["agent"] == "1001" and record["disposition"] == "answered", record
    wav_path = tmp_path / "call.wav"
    wav_path.write_bytes(engine.http_bytes(str(record["recording_url"])))
    wav = read_wav(wav_path)
    left = (wav.samples[:, 0] * 32767).astype(np.int16)
    right = (wav.samples[:, 1] * 32767).astype(np.int16)
    assert abs(dominant_frequency(left[np.abs(left) > 0]) - CALLER_TONE) < 15
    assert abs(dominant_frequency(right[np.abs(right) > 0]) - BROWSER_TONE) < 15
    assert_nothing_left(engine)


IVR_FLOW = """
name: keys
start: menu
nodes:
  menu:
    type: menu
    prompt: [main_menu]
    options: {"4": account}
    timeout: 20
    retries: 0
    on_failure: bye
  account:
    type: collect
    prompt: [enter_account]
    variable: account
    min_digits: 3
    max_digits: 3
    timeout: 20
    inter_digit_timeout: 10
    next: bye
  bye:
    type: hangup
    prompt: [thank_you_goodbye]
"""


@pytest.mark.parametrize("method", ["RFC2833", "INFO"])
def test_the_page_calls_an_ivr_and_its_keypad_reaches_the_menu(
    tmp_path: Path,
    engine_factory: Callable[[Path], RunningEngine],
    chromium: object,
    method: str,
) -> None:
    ivr_dir = tmp_path / "ivr"
    ivr_dir.mkdir()
    (ivr_dir / "keys.yaml").write_text(IVR_FLOW)
    engine = _engine(
        tmp_path,
        engine_factory,
        extra=f"ivr_dir: {ivr_dir}",
        routes={"300": "ivr: keys, record: false"},
    )
    page = _signed_in_page(chromium, engine)
    page.fill("#dial-number", "300")  # type: ignore[attr-defined]
    page.click("#dial button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-call=talking]")  # type: ignore[attr-defined]
    # The choice is offered with the keypad, during the call.
    page.select_option("#dtmf-method", method)  # type: ignore[attr-defined]
    # Typed ahead, as callers do: the browser queues the keys (RFC 4733 tones
    # or one INFO after another), the menu takes the 4 and the collect the rest.
    for key in "4725":
        page.click(f"#keypad button[data-key='{key}']")  # type: ignore[attr-defined]
    # The flow says goodbye and hangs up: the page sees the call end.
    page.wait_for_selector("body[data-call=idle]", timeout=30_000)  # type: ignore[attr-defined]
    (record,) = wait_records(engine, 1)
    assert record["ivr_path"][:3] == ["menu", "account", "bye"], record  # type: ignore[index]
    assert record["variables"].get("account") == "725", record  # type: ignore[union-attr]
    assert page.errors == []  # type: ignore[attr-defined]
    assert_nothing_left(engine)


def test_a_browser_killed_mid_call_hands_the_caller_back_and_leaves_nothing(
    tmp_path: Path,
    engine_factory: Callable[[Path], RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811
    chromium: object,
) -> None:
    """The browser dies seconds after answering: its WebSocket closes, its leg ends
    without a BYE, its registration goes, and the caller (within the queue's
    requeue window) is answered by the next agent, a SIPp phone."""
    engine = _engine(tmp_path, engine_factory, queue="requeue_window: 30")
    sipp = sipp_factory(engine)
    sipp.agent("1002", scenario_copy(tmp_path, "agent_uas.xml", t3000=30000))
    page = _signed_in_page(chromium, engine)
    page.click("#agent-login")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-agent=available]")  # type: ignore[attr-defined]

    caller = tone_call(sipp, tmp_path, 12)
    page.wait_for_selector("body[data-call=ringing]")  # type: ignore[attr-defined]
    page.click("#answer")  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-call=talking]")  # type: ignore[attr-defined]
    engine.wait_for(
        lambda: engine.http_json("/api/v1/agents/1001")["state"] == "on_call",
        what="1001 on the call",
    )
    engine.post("/api/v1/agents/1002/login")
    assert _kill_chromium(tmp_path / "mic.wav") > 0, "no Chromium process found"

    engine.wait_for(lambda: not _registrations(engine, "1001"), what="1001's registration gone")
    assert caller.wait(60) == 0, caller.describe()
    (record,) = wait_records(engine, 1)
    assert record["agent"] == "1002" and record["disposition"] == "answered", record
    (requeue,) = [e for e in events_of(engine, str(record["call_id"])) if e["event"] == "REQUEUE"]
    assert requeue["agent"] == "1001", requeue
    assert requeue["data"]["reason"] == "connection-lost", requeue
    assert "Traceback" not in engine.log()
    assert_nothing_left(engine)


def test_a_reload_signs_in_again_from_the_session_and_registers_once(
    tmp_path: Path,
    engine_factory: Callable[[Path], RunningEngine],
    chromium: object,
) -> None:
    engine = _engine(tmp_path, engine_factory)
    page = _signed_in_page(chromium, engine)
    first = _registrations(engine, "1001")
    assert len(first) == 1
    page.reload()  # type: ignore[attr-defined]
    # No sign-in form this time: the session cookie brings the phone back.
    page.wait_for_selector("body[data-phone=registered]")  # type: ignore[attr-defined]
    assert page.is_hidden("#sign-in")  # type: ignore[attr-defined]
    engine.wait_for(
        lambda: (
            [r["contact"] for r in _registrations(engine, "1001")]
            not in ([], [first[0]["contact"]])
        ),
        what="the reloaded page's registration",
    )
    engine.wait_for(lambda: len(_registrations(engine, "1001")) == 1, what="one registration")

    # Signing out unregisters and shows the sign-in form again.
    page.click("#sign-out")  # type: ignore[attr-defined]
    page.wait_for_selector("#sign-in", state="visible")  # type: ignore[attr-defined]
    engine.wait_for(lambda: not _registrations(engine, "1001"), what="1001 unregistered")
    status, _ = engine.request("GET", "/api/v1/phone", token=None)
    assert status == 401
