"""``acd prompts build``: espeak-ng renders each prompt once, and again only when it changes.

These tests run the real espeak-ng (a Debian package, installed with the test
requirements); the defaults render in about a second on two cores, once per
module, and the tests that change things work on copies.
"""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import pytest

from acd.cli import main
from acd.prompts import (
    DEFAULT_PROMPTS,
    PromptBuildError,
    build_prompts,
    espeak_version,
    prompt_texts,
)
from media import NUMBER_WORDS, ORDINAL_WORDS, PromptLibrary, number_words, read_wav

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "config" / "prompts"

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rendered") / "prompts"
    assert main(["prompts", "build", "--out", str(out)]) == 0
    return out


@pytest.fixture
def copy(rendered: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(rendered, tmp_path / "prompts"))


def manifest(directory: Path) -> dict[str, dict[str, str]]:
    prompts: dict[str, dict[str, str]] = json.loads((directory / "manifest.json").read_text())[
        "prompts"
    ]
    return prompts


def test_build_renders_every_default_as_8k_mono_16_bit(rendered: Path) -> None:
    entries = manifest(rendered)
    assert set(entries) == set(DEFAULT_PROMPTS)
    for name in ("recording_notice", "you_are_number", "forty", "third", "minutes", "pound"):
        with wave.open(str(rendered / entries[name]["file"])) as audio:
            assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (
                8000,
                1,
                2,
            )
    notice = read_wav(rendered / "recording_notice.wav")
    assert 2.0 < notice.duration < 6.0
    # Word prompts are trimmed, so "forty two" has no long gap in the middle.
    assert read_wav(rendered / "forty.wav").duration < 0.9
    assert entries["recording_notice"]["text"] == (
        "This call may be recorded for quality and training purposes."
    )


def test_every_word_a_number_needs_is_there(rendered: Path) -> None:
    library = PromptLibrary.from_directory(rendered)
    for word in (*NUMBER_WORDS, *ORDINAL_WORDS, *number_words(1999)):
        assert word in library
    for name in ("minute", "minutes", "second", "seconds", "star", "pound"):
        assert name in library


def test_a_second_build_skips_everything(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = {path.name: path.stat().st_mtime_ns for path in copy.glob("*.wav")}
    assert main(["prompts", "build", "--out", str(copy)]) == 0
    out = capsys.readouterr().out
    assert f"0 rendered, {len(DEFAULT_PROMPTS)} unchanged, 0 removed" in out
    assert {path.name: path.stat().st_mtime_ns for path in copy.glob("*.wav")} == before


async def test_changing_one_text_renders_only_that_one(copy: Path) -> None:
    old = manifest(copy)["welcome"]["sha256"]
    texts = prompt_texts({"welcome": "Hello, and welcome to the demo centre."})
    report = await build_prompts(copy, texts)
    assert report.rendered == ["welcome"]
    assert len(report.skipped) == len(DEFAULT_PROMPTS) - 1
    assert manifest(copy)["welcome"]["sha256"] != old


async def test_a_new_voice_or_force_renders_again(copy: Path) -> None:
    texts = {"welcome": DEFAULT_PROMPTS["welcome"], "goodbye": "Goodbye."}
    report = await build_prompts(copy, texts, force=True)
    assert report.rendered == ["goodbye", "welcome"]
    report = await build_prompts(copy, texts, voice="en-gb")
    assert report.rendered == ["goodbye", "welcome"]


async def test_prompts_dropped_from_the_texts_are_removed(copy: Path) -> None:
    (copy / "operator_notes.txt").write_text("not ours")
    report = await build_prompts(copy, {"welcome": DEFAULT_PROMPTS["welcome"]})
    assert report.rendered == [] and report.skipped == ["welcome"]
    assert len(report.removed) == len(DEFAULT_PROMPTS) - 1
    assert sorted(path.name for path in copy.iterdir()) == [
        "manifest.json",
        "operator_notes.txt",
        "welcome.wav",
    ]


async def test_a_deleted_file_is_rendered_again(copy: Path) -> None:
    (copy / "thank_you_goodbye.wav").unlink()
    report = await build_prompts(copy)
    assert report.rendered == ["thank_you_goodbye"]


def test_missing_espeak_names_the_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with nothing on it
    assert main(["prompts", "build", "--out", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err
    assert "espeak-ng was not found" in err and "Debian package espeak-ng" in err


def test_an_unknown_voice_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prompts", "build", "--out", str(tmp_path), "--voice", "xx-nowhere"]) == 1
    assert "voice xx-nowhere" in capsys.readouterr().err
    assert not (tmp_path / "manifest.json").exists()


def test_the_default_directory_is_beside_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "centre.yaml"
    config.write_text("logging: {level: INFO}\n")
    texts = tmp_path / "prompts"
    assert main(["prompts", "build", "--config", str(config)]) == 0
    assert (texts / "manifest.json").is_file()
    assert f"{texts}: {len(DEFAULT_PROMPTS)} rendered" in capsys.readouterr().out
    config.write_text("no_such_section: 1\n")
    assert main(["prompts", "build", "--config", str(config)]) == 2


def test_override_names_become_file_names_so_they_are_checked() -> None:
    assert prompt_texts({"holiday": "We are closed today."})["holiday"] == "We are closed today."
    for bad in ("../etc", "Welcome", "a b", ""):
        with pytest.raises(PromptBuildError, match="prompt name"):
            prompt_texts({bad: "text"})
    with pytest.raises(PromptBuildError, match="no text"):
        prompt_texts({"blank": "  "})


async def test_the_committed_defaults_are_up_to_date(tmp_path: Path) -> None:
    """config/prompts is what this espeak-ng renders from the defaults: nothing to do."""
    committed = json.loads((COMMITTED / "manifest.json").read_text())
    if committed["espeak_ng"] != await espeak_version():
        pytest.skip(f"committed prompts were made by espeak-ng {committed['espeak_ng']}")
    copy = Path(shutil.copytree(COMMITTED, tmp_path / "prompts"))
    report = await build_prompts(copy)
    assert report.rendered == [] and report.removed == []
