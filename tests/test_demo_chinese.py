"""The demo IVR's Chinese branch (config/ivr/main.yaml): key 8, then a menu in Mandarin.

The flow is the shipped file, run by the interpreter against the scripted
fake caller of tests/test_ivr_run.py: pressing 8 at the main menu switches
the call's language to zh-CN, marks the caller for the agent's screen pop
and plays the Chinese menu, whose keys reach the same queues. The prompts
are rendered by the engine's own text-to-speech path with espeak-ng's
Mandarin voice (cmn), which is checked to make speech, and to make other
speech than the English voice would from the same text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import ivr
from acd.calls._media import MediaEngine
from media import load_wav
from media.player import WavFile

from .conftest import ROOT, require_tool
from .test_ivr_run import FakeSession, run

MANDARIN = "cmn"


def _demo_flow() -> ivr.Flow:
    return ivr.load_flows(ROOT / "config" / "ivr")["main"]


def _text_of(flow: ivr.Flow, node: str, field: str = "prompt") -> str:
    """The text of a node's first prompt entry, as the flow file says it."""
    (entry, *_) = getattr(flow.nodes[node], field)
    assert entry.voice == MANDARIN, (node, field)
    return str(entry.text)


def _texts(session: FakeSession) -> list[ivr.Text]:
    played = session.prompts_played()
    return [item for items in played for item in items if isinstance(item, ivr.Text)]


async def test_key_8_takes_the_caller_to_the_mandarin_menu_and_a_queue() -> None:
    flow = _demo_flow()
    session = FakeSession(["8", "2"])
    session.variables["demo_open"] = "yes"  # as config/example.yaml sets it
    result = await run(flow, session)
    path = list(result.path)
    assert path[path.index("menu") :][:5] == [
        "menu",
        "chinese",
        "chinese_caller",
        "menu_zh",
        "support",
    ]
    assert session.language == "zh-CN"
    assert session.variables["caller_language"] == "zh-CN"
    assert any(entry[:2] == ("enqueue", "support") for entry in session.log), session.log
    spoken = _texts(session)
    # The main menu offers Chinese in Mandarin; the Chinese menu is all Mandarin.
    offer = flow.nodes["menu"].prompt[1]  # type: ignore[attr-defined]
    assert ivr.Text(offer.text, MANDARIN) in spoken
    assert ivr.Text(_text_of(flow, "menu_zh"), MANDARIN) in spoken
    assert all(t.voice == MANDARIN for t in spoken)


async def test_a_wrong_key_in_the_mandarin_menu_is_answered_in_mandarin() -> None:
    flow = _demo_flow()
    session = FakeSession(["8", "7", "7", "7"])
    session.variables["demo_open"] = "yes"
    result = await run(flow, session)
    assert result.path[-1] == "goodbye_zh"
    spoken = [t.text for t in _texts(session)]
    assert spoken.count(_text_of(flow, "menu_zh", "invalid")) == 3  # each wrong key, then goodbye
    assert spoken[-1] == _text_of(flow, "goodbye_zh")


async def test_the_mandarin_prompts_are_rendered_by_espeak_ngs_cmn_voice(tmp_path: Path) -> None:
    require_tool("espeak-ng")
    media = MediaEngine("127.0.0.1", (40000, 40009), prompts_dir=None, cache_dir=tmp_path)
    try:
        text = _text_of(_demo_flow(), "menu_zh")
        mandarin = ivr.Text(text, MANDARIN)
        english = ivr.Text(text, "en-us")
        await media.render([mandarin, english])
        (spoken,) = media.items([mandarin])
        assert isinstance(spoken, WavFile)
        samples = load_wav(spoken.path).astype(np.float64)
        seconds = len(samples) / 8000
        assert 3 < seconds < 20, seconds  # a sentence, spoken
        assert np.sqrt(np.mean(samples**2)) > 500  # speech, not silence
        (other,) = media.items([english])
        assert isinstance(other, WavFile) and other.path != spoken.path
        assert len(load_wav(other.path)) != len(samples)
        # Cached: a second rendering makes no new file.
        files = sorted(tmp_path.iterdir())
        await media.render([mandarin])
        assert sorted(tmp_path.iterdir()) == files
    finally:
        media.close()
