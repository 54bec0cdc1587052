"""The prompt player: playlists, loops, barge-in, replacement, spoken numbers, pacing.

Prompts here are generated WAV files of a constant level each, so every frame
a fake sink collects says which prompt it came from. The clock runs on a fake
loop whose time the test moves, except in the last test, which plays on the
real event loop for a second and counts frames.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from media._speech import (
    NUMBER_WORDS,
    ORDINAL_WORDS,
    digit_words,
    duration_words,
    number_words,
    ordinal_words,
)
from media.clock import MediaClock
from media.g711 import PCMA, PCMU, Codec
from media.player import (
    Digits,
    Duration,
    Number,
    Ordinal,
    Player,
    Prompt,
    PromptLibrary,
    Silence,
    WavFile,
)
from media.wav import write_wav
from tests.test_clock import FakeLoop

WORDS = [*NUMBER_WORDS, *ORDINAL_WORDS, "star", "pound", "minute", "minutes", "second", "seconds"]
# Prompt name -> (constant sample level, length in samples). The levels are
# distinct mu-law steps, so each frame's first byte names its prompt.
LEVELS = [int(level) for level in PCMU.decode(bytes(range(0xFE, 0x80, -1)))]
PROMPTS = {"welcome": (LEVELS[-1], 400), "menu": (LEVELS[-2], 320)} | {
    word: (LEVELS[i], 160) for i, word in enumerate(dict.fromkeys(WORDS))
}


@dataclass
class Sink:
    """Collects frames as (payload, samples, marker)."""

    codec: Codec = PCMU
    frames: list[tuple[bytes, int, bool]] = field(default_factory=list)

    def send_audio(self, payload: bytes, samples: int, *, marker: bool = False) -> None:
        self.frames.append((payload, samples, marker))


@dataclass
class SkippingSink(Sink):
    skipped: list[int] = field(default_factory=list)

    def skip_audio(self, samples: int) -> None:
        self.skipped.append(samples)


class AsyncFakeLoop(FakeLoop):
    def create_future(self) -> asyncio.Future[object]:
        return asyncio.get_running_loop().create_future()


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> PromptLibrary:
    root = tmp_path_factory.mktemp("prompts")
    for name, (level, length) in PROMPTS.items():
        write_wav(root / f"{name}.wav", np.full(length, level, np.int16))
    return PromptLibrary.from_directory(root)


@pytest.fixture
def rig(library: PromptLibrary) -> tuple[Player, AsyncFakeLoop]:
    loop = AsyncFakeLoop()
    clock = MediaClock(loop, time=loop.time)  # type: ignore[arg-type]
    return Player(clock, library), loop


def tick(loop: FakeLoop, count: int = 1) -> None:
    loop.run_until(loop.now + count * 0.020 + 1e-6)


def names(sink: Sink) -> list[str]:
    """Which prompt each run of PCMU frames came from (silence is '-')."""
    by_byte = {PCMU.encode(np.array([level], np.int16)): n for n, (level, _) in PROMPTS.items()}
    assert len(by_byte) == len(PROMPTS)
    by_byte[PCMU.silence(1)] = "-"
    runs: list[str] = []
    for payload, _, _ in sink.frames:
        name = by_byte[payload[:1]]
        if not runs or runs[-1] != name:
            runs.append(name)
    return runs


# --------------------------------------------------------------------------
# Spoken numbers


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (0, "zero"),
        (3, "three"),
        (13, "thirteen"),
        (42, "forty two"),
        (90, "ninety"),
        (100, "one hundred"),
        (105, "one hundred five"),
        ("1999", "one thousand nine hundred ninety nine"),
        (20_000, "twenty thousand"),
        (1_000_001, "one million one"),
        (3_200_000_017, "three billion two hundred million seventeen"),
    ],
)
def test_numbers_in_words(value: int | str, words: str) -> None:
    assert number_words(value) == words.split()


@pytest.mark.parametrize(
    ("value", "words"),
    [(1, "first"), (3, "third"), (12, "twelfth"), (21, "twenty first"), (40, "fortieth"),
     (100, "one hundredth"), (1005, "one thousand fifth")],
)  # fmt: skip
def test_ordinals_in_words(value: int, words: str) -> None:
    assert ordinal_words(value) == words.split()


def test_digits_durations_and_bad_input() -> None:
    assert digit_words("12 3*#") == ["one", "two", "three", "star", "pound"]
    assert duration_words(150) == ["two", "minutes", "thirty", "seconds"]
    assert duration_words(60) == ["one", "minute"]
    assert duration_words(1) == ["one", "second"]
    assert duration_words(0) == ["zero", "seconds"]
    for bad in (-1, "4x", "", 10**12):
        with pytest.raises(ValueError):
            number_words(bad)
    with pytest.raises(ValueError, match="'A'"):
        digit_words("1A")


# --------------------------------------------------------------------------
# Playlists on a fake clock


async def test_playlist_order_frame_count_marker_and_padding(rig: tuple[Player, FakeLoop]) -> None:
    player, loop = rig
    sink = Sink()
    playback = player.play(sink, ["welcome", Silence(100), Prompt("menu")])
    tick(loop, 20)
    # welcome 400 samples -> 3 frames, 100 ms -> 5 frames, menu 320 -> 2 frames.
    assert len(sink.frames) == 10
    assert names(sink) == ["welcome", "-", "menu"]
    assert [marker for _, _, marker in sink.frames] == [True] + [False] * 9
    assert all(len(payload) == samples == 160 for payload, samples, _ in sink.frames)
    # The last welcome frame is 80 samples of prompt, then codec silence.
    assert sink.frames[2][0] == PCMU.encode(
        np.full(80, PROMPTS["welcome"][0], np.int16)
    ) + PCMU.silence(80)
    result = await playback.done
    assert (result.reason, result.frames, result.digit) == ("finished", 10, None)
    assert len(player) == 0 and not player.clock.running


async def test_frames_follow_the_sink_codec(rig: tuple[Player, FakeLoop]) -> None:
    player, loop = rig
    sink = Sink(codec=PCMA)
    player.play(sink, ["menu"])
    tick(loop, 5)
    menu = PCMA.encode(np.full(160, PROMPTS["menu"][0], np.int16))
    assert [payload for payload, _, _ in sink.frames] == [menu, menu]


async def test_one_frame_per_tick_for_every_sink(rig: tuple[Player, FakeLoop]) -> None:
    player, loop = rig
    sinks = [Sink() for _ in range(50)]
    for sink in sinks:
        player.play(sink, [Silence(10_000)])
    tick(loop, 7)
    assert {len(sink.frames) for sink in sinks} == {7}
    assert len(loop.pending()) == 1  # one timer, not one per call


async def test_numbers_digits_and_ordinals_expand_to_word_prompts(
    rig: tuple[Player, FakeLoop],
) -> None:
    player, loop = rig
    sink = Sink()
    items = [Number(42), Digits("1#"), Ordinal(3), Duration(61), Number("1999")]
    await_me = player.play(sink, items)
    tick(loop, 40)
    assert (await await_me.done).reason == "finished"
    assert names(sink) == [
        "forty",
        "two",
        "one",
        "pound",
        "third",
        "one",
        "minute",
        "one",
        "second",
        "one",
        "thousand",
        "nine",
        "hundred",
        "ninety",
        "nine",
    ]


async def test_a_loop_plays_until_stopped(rig: tuple[Player, FakeLoop]) -> None:
    player, loop = rig
    sink = Sink()
    playback = player.play(sink, ["menu", "welcome"], loop=True)
    tick(loop, 12)
    assert len(sink.frames) == 12
    assert names(sink) == ["menu", "welcome", "menu", "welcome", "menu", "welcome"][:5]
    assert [m for _, _, m in sink.frames].count(True) == 1  # a loop is one talkspurt
    playback.stop()
    tick(loop, 3)
    assert len(sink.frames) == 12
    assert (await playback.done).reason == "stopped"


async def test_barge_in_interrupts_only_when_asked(rig: tuple[Player, FakeLoop]) -> None:
    player, loop = rig
    deaf, listening = Sink(), Sink()
    keeps_playing = player.play(deaf, [Silence(1000)])
    stops = player.play(listening, [Silence(1000)], barge_in=True)
    tick(loop, 3)
    keeps_playing.interrupt("5")
    player.interrupt(listening, "5")
    tick(loop, 3)
    assert len(deaf.frames) == 6 and keeps_playing.active
    assert len(listening.frames) == 3
    result = await stops.done
    assert (result.reason, result.digit, result.frames) == ("interrupted", "5", 3)


async def test_a_new_playback_replaces_the_old_with_a_marker(
    rig: tuple[Player, FakeLoop],
) -> None:
    player, loop = rig
    sink = Sink()
    hold_music = player.play(sink, ["welcome"], loop=True)
    tick(loop, 4)
    announcement = player.play(sink, [Number(3)])
    assert (await hold_music.done).reason == "stopped"
    assert player.current(sink) is announcement
    tick(loop, 3)
    assert names(sink) == ["welcome", "three"]
    assert [m for _, _, m in sink.frames] == [True, False, False, False, True]


async def test_an_unknown_prompt_leaves_the_current_playback_alone(
    rig: tuple[Player, FakeLoop],
) -> None:
    player, loop = rig
    sink = Sink()
    playing = player.play(sink, [Silence(200)])
    with pytest.raises(KeyError, match="no prompt named 'nonesuch'"):
        player.play(sink, ["welcome", "nonesuch"])
    with pytest.raises(FileNotFoundError):
        player.play(sink, [WavFile("/nonexistent/x.wav")])
    tick(loop, 2)
    assert playing.active and len(sink.frames) == 2


async def test_an_empty_playlist_finishes_at_once(rig: tuple[Player, FakeLoop]) -> None:
    player, _ = rig
    playback = player.play(Sink(), [Silence(0)])
    assert (await playback.done).reason == "finished"
    assert not player.clock.running


async def test_a_stall_skips_audio_and_rtp_time_together(rig: tuple[Player, FakeLoop]) -> None:
    player, loop = rig
    skipping, plain = SkippingSink(), Sink()
    for sink in (skipping, plain):
        player.play(sink, [Silence(2000)])
    tick(loop)
    (timer,) = loop.pending()
    loop.timers.remove(timer)
    loop.now = timer.when + 0.150  # blocked: 8 ticks due, 3 run, 5 skipped
    timer.callback()
    assert skipping.skipped == [5 * 160]
    assert len(skipping.frames) == 4
    # Without skip_audio the far end is told to re-sync by the marker bit.
    assert [m for _, _, m in plain.frames] == [True, True, False, False]
    tick(loop, 200)
    # 100 frames of audio: 95 sent plus 5 skipped.
    assert len(skipping.frames) == 95


async def test_a_failing_sink_does_not_stop_the_others(rig: tuple[Player, FakeLoop]) -> None:
    player, loop = rig

    class Broken(Sink):
        def send_audio(self, payload: bytes, samples: int, *, marker: bool = False) -> None:
            raise OSError("network unreachable")

    broken, fine = Broken(), Sink()
    failed = player.play(broken, [Silence(100)])
    player.play(fine, [Silence(100)])
    tick(loop, 5)
    assert (await failed.done).reason == "failed"
    assert len(fine.frames) == 5


async def test_stopping_from_a_done_callback_in_mid_tick(rig: tuple[Player, FakeLoop]) -> None:
    player, loop = rig
    first, second = Sink(), Sink()

    class Stopper(Sink):
        def send_audio(self, payload: bytes, samples: int, *, marker: bool = False) -> None:
            super().send_audio(payload, samples, marker=marker)
            player.stop(second)

    stopper = Stopper()
    player.play(first, [Silence(100)])
    player.play(stopper, [Silence(100)])
    player.play(second, [Silence(100)])
    tick(loop)
    assert (len(first.frames), len(stopper.frames), len(second.frames)) == (1, 1, 0)


def test_the_library_reads_its_manifest(tmp_path: Path) -> None:
    write_wav(tmp_path / "hello_v2.wav", np.zeros(160, np.int16))
    write_wav(tmp_path / "extra.wav", np.zeros(160, np.int16))
    (tmp_path / "manifest.json").write_text('{"prompts": {"hello": {"file": "hello_v2.wav"}}}')
    library = PromptLibrary.from_directory(tmp_path)
    assert library.path("hello") == tmp_path / "hello_v2.wav"
    assert "extra" in library and len(library) == 3
    (tmp_path / "manifest.json").write_text("[]")
    with pytest.raises(ValueError, match="not a prompt manifest"):
        PromptLibrary.from_directory(tmp_path)


# --------------------------------------------------------------------------
# Real time


async def test_real_time_pacing_on_the_event_loop(library: PromptLibrary) -> None:
    player = Player(MediaClock(), library)
    sinks = [Sink() for _ in range(100)]
    started = time.monotonic()
    for sink in sinks:
        player.play(sink, ["welcome"], loop=True)
    second = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(1.0, second.set_result, None)
    await second
    elapsed = time.monotonic() - started
    counts = {len(sink.frames) for sink in sinks}
    player.close()
    # One frame per 20 ms since the first tick, 20 ms after the start; a
    # slow host may run late, but the drift-free schedule catches up.
    expected = int(elapsed / 0.020)
    assert len(counts) == 1
    (count,) = counts
    assert expected - 3 <= count <= expected + 1
    assert player.clock.stats.mean < 0.005
    assert not player.clock.running
