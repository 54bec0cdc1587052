"""Music on hold (config/prompts/moh.wav): quiet, seamless, and never heard as a DTMF key.

The committed file is checked as a caller would hear it: read by the
player's WAV reader, G.711 PCMU encoded and decoded as on a call, and fed,
looped twice so the seam is heard too, to the engine's in-band DTMF detector.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from acd import moh
from acd.prompts import MUSIC_ON_HOLD, build_prompts
from media import PCMU, PromptLibrary, load_wav, read_wav
from media.dtmf import GoertzelDetector

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "config" / "prompts"
MOH = PROMPTS / "moh.wav"
FRAME = 160


@pytest.fixture(scope="module")
def music() -> npt.NDArray[np.int16]:
    return load_wav(MOH)


def _dbfs(samples: npt.NDArray[np.float64]) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(samples**2))))


def _keys_heard(pcm: npt.NDArray[np.int16]) -> list[str]:
    """The digits the in-band detector finds in ``pcm`` sent through PCMU, 20 ms at a time."""
    line = PCMU.decode(PCMU.encode(pcm))
    detector = GoertzelDetector()
    events = []
    for start in range(0, len(line), FRAME):
        events += detector.feed(line[start : start + FRAME])
    events += detector.flush()
    return [event.digit for event in events]


def _dtmf(tones: tuple[float, float], seconds: float, dbfs: float) -> npt.NDArray[np.float64]:
    t = np.arange(int(seconds * 8000)) / 8000
    level = 32768 * 10 ** (dbfs / 20)
    return level * (np.sin(2 * np.pi * tones[0] * t) + np.sin(2 * np.pi * tones[1] * t))


def test_the_file_is_a_prompt_the_player_finds_by_name() -> None:
    library = PromptLibrary.from_directory(PROMPTS)
    assert "moh" in library
    assert library.path("moh") == MOH
    wav = read_wav(MOH)
    assert (wav.rate, wav.channels) == (8000, 1)
    assert 30.0 <= wav.duration <= 60.0
    entry = json.loads((PROMPTS / "manifest.json").read_text())["prompts"]["moh"]
    assert entry["synthesised"] == moh.VERSION


def test_it_is_what_the_generator_makes(music: npt.NDArray[np.int16]) -> None:
    made = moh.music_on_hold()
    # Floating point may round a sample differently on another machine: allow 1 LSB.
    assert len(made) == len(music)
    assert int(np.max(np.abs(made.astype(np.int32) - music))) <= 1


def test_the_loop_point_has_no_click(music: npt.NDArray[np.int16]) -> None:
    steps = np.abs(np.diff(music.astype(np.int32)))
    seam = abs(int(music[0]) - int(music[-1]))
    # The jump from the last sample back to the first is an ordinary step
    # between neighbours, nowhere near the largest ones.
    assert seam <= np.percentile(steps, 90), (seam, np.percentile(steps, 90))
    # And no larger than the steps either side of it: the waveform runs on.
    around = np.concatenate([steps[-FRAME:], steps[:FRAME]])
    assert seam <= 2 * np.max(around[:FRAME]) and seam <= 2 * np.max(around[FRAME:])


def test_the_level_is_moderate(music: npt.NDArray[np.int16]) -> None:
    samples = music.astype(np.float64) / 32768
    assert -23.0 <= _dbfs(samples) <= -17.0
    assert 20 * np.log10(np.max(np.abs(samples))) <= -6.0
    # Never silent for long: one second windows all carry music.
    seconds = samples[: len(samples) // 8000 * 8000].reshape(-1, 8000)
    assert min(_dbfs(second) for second in seconds) > -35.0


def test_no_dtmf_key_is_heard_in_it_even_across_the_seam(
    music: npt.NDArray[np.int16],
) -> None:
    assert _keys_heard(np.concatenate([music, music])) == []


def test_a_key_pressed_over_the_music_is_still_heard(music: npt.NDArray[np.int16]) -> None:
    """The check above can fail: the detector does find a real key mixed into the music."""
    mixed = music[: 3 * 8000].astype(np.float64)
    mixed[8000 : 8000 + 800] += _dtmf((770.0, 1336.0), 0.1, -12.0)  # "5" for 100 ms
    assert _keys_heard(np.round(mixed).astype(np.int16)) == ["5"]


def test_prompts_build_writes_it_and_keeps_it(tmp_path: Path) -> None:
    # Only the synthesised prompt: no espeak-ng rendering is needed, but the
    # manifest step still asks espeak-ng for its version.
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng")
    out = tmp_path / "prompts"
    report = asyncio.run(build_prompts(out, {"moh": MUSIC_ON_HOLD}))
    assert report.rendered == ["moh"]
    assert np.array_equal(load_wav(out / "moh.wav"), moh.music_on_hold())
    again = asyncio.run(build_prompts(out, {"moh": MUSIC_ON_HOLD}))
    assert again.skipped == ["moh"] and again.rendered == []
    assert PromptLibrary.from_directory(out).path("moh") == out / "moh.wav"
