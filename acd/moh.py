"""Music on hold, synthesised: a calm chord progression that loops without a seam.

The engine needs music it may play to every caller without a licence, so it
makes its own: eight bars of a slow progression in C major (Cmaj7, Am7,
Fmaj7, G6, Em7, Am7, Dm7, Gsus4) at 60 beats a minute, a soft pad holding
each chord under a plucked arpeggio. ``acd prompts build`` writes it as the
prompt ``moh`` (:func:`music_on_hold`), 8 kHz mono 16-bit like every prompt.

What a telephone line and this engine need from it, each checked by
``tests/test_moh.py``:

* **A seamless loop.** Every sound is laid on a circular buffer, so a note
  still ringing at the end of the last bar continues at the start of the
  first: the file is one period of a periodic signal, and the jump from its
  last sample to its first is no larger than between any two neighbours.
* **A moderate level**, -20 dBFS RMS with peaks below -6 dBFS, so G.711
  carries it cleanly and it is not louder than the prompts around it.
* **Nothing the in-band DTMF detector could take for a key.** A key is two
  pure tones, one from 697-941 Hz and one from 1209-1633 Hz, holding most of
  the signal's energy. Every note's fundamental here is at most 660 Hz (E5),
  below the lowest DTMF row tone, and its few harmonics are weak, so no
  20 ms window is ever dominated by a DTMF pair.
* **Deterministic**: no randomness, so the same version renders the same
  music, and :data:`VERSION` is what ``acd prompts build`` hashes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["BARS", "RATE", "SECONDS_PER_BAR", "VERSION", "music_on_hold"]

VERSION = "moh-c-major-8-bars-v1"
"""Changes whenever the music does, so ``acd prompts build`` renders it again."""

RATE = 8000
SECONDS_PER_BAR = 4.0
TARGET_RMS = 10 ** (-20 / 20)  # -20 dBFS

# MIDI note numbers: (pad chord, arpeggio pattern) per bar.
BARS: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = (
    ((48, 55, 64, 71), (60, 64, 67, 71, 72, 71, 67, 64)),  # Cmaj7
    ((45, 52, 60, 67), (57, 60, 64, 67, 69, 67, 64, 60)),  # Am7
    ((41, 48, 57, 64), (53, 57, 60, 64, 65, 64, 60, 57)),  # Fmaj7
    ((43, 50, 59, 64), (55, 59, 62, 64, 67, 64, 62, 59)),  # G6
    ((40, 47, 55, 62), (52, 55, 59, 62, 64, 62, 59, 55)),  # Em7
    ((45, 52, 60, 67), (57, 60, 64, 67, 72, 67, 64, 60)),  # Am7
    ((38, 45, 53, 60), (50, 53, 57, 60, 62, 60, 57, 53)),  # Dm7
    ((43, 50, 55, 60), (55, 60, 62, 67, 74, 67, 62, 60)),  # Gsus4
)

_PLUCK_SECONDS = 2.5
_PLUCK_HARMONICS = ((1, 1.0, 0.9), (2, 0.25, 0.5), (3, 0.08, 0.3))  # number, level, decay s
_ATTACK = 0.006  # seconds: a softened onset, no click
_PAD_LEVEL = 0.35  # relative to a pluck's start
_PAD_FADE = 1.0  # seconds of raised-cosine fade either side of a bar


def _hz(note: int) -> float:
    return float(440.0 * 2 ** ((note - 69) / 12))


def _add_circular(
    buffer: npt.NDArray[np.float64], start: int, sound: npt.NDArray[np.float64]
) -> None:
    """Add ``sound`` from ``start``, wrapping past the end back to the beginning."""
    size = len(buffer)
    start %= size
    head = min(len(sound), size - start)
    buffer[start : start + head] += sound[:head]
    rest = sound[head:]
    while len(rest):
        part = rest[:size]
        buffer[: len(part)] += part
        rest = rest[size:]


def _pluck(frequency: float) -> npt.NDArray[np.float64]:
    t = np.arange(int(_PLUCK_SECONDS * RATE)) / RATE
    sound = np.zeros_like(t)
    for number, level, decay in _PLUCK_HARMONICS:
        sound += level * np.exp(-t / decay) * np.sin(2 * np.pi * number * frequency * t)
    sound *= np.minimum(t / _ATTACK, 1.0)
    # End at silence, so a note's tail never stops short.
    sound *= np.cos(np.clip((t - (_PLUCK_SECONDS - 0.5)) / 0.5, 0.0, 1.0) * np.pi / 2) ** 2
    return sound


def _pad(chord: tuple[int, ...], bar: float) -> npt.NDArray[np.float64]:
    """A chord held for a bar, faded in and out over ``_PAD_FADE`` beyond each end."""
    length = bar + 2 * _PAD_FADE
    t = np.arange(int(length * RATE)) / RATE
    envelope = np.ones_like(t)
    rise = t < 2 * _PAD_FADE
    envelope[rise] = 0.5 - 0.5 * np.cos(np.pi * t[rise] / (2 * _PAD_FADE))
    fall = t > length - 2 * _PAD_FADE
    envelope[fall] = 0.5 - 0.5 * np.cos(np.pi * (length - t[fall]) / (2 * _PAD_FADE))
    sound = np.zeros_like(t)
    for note in chord:
        frequency = _hz(note)
        # Two voices 0.4 Hz apart: a slow, gentle beating instead of a static tone.
        sound += np.sin(2 * np.pi * (frequency - 0.2) * t) + np.sin(
            2 * np.pi * (frequency + 0.2) * t
        )
    return _PAD_LEVEL * envelope * sound / (2 * len(chord))


def music_on_hold() -> npt.NDArray[np.int16]:
    """The whole loop: ``len(BARS) * SECONDS_PER_BAR`` seconds of 8 kHz mono int16."""
    bar_samples = int(SECONDS_PER_BAR * RATE)
    music = np.zeros(len(BARS) * bar_samples)
    for index, (chord, arpeggio) in enumerate(BARS):
        start = index * bar_samples
        _add_circular(music, start - int(_PAD_FADE * RATE), _pad(chord, SECONDS_PER_BAR))
        step = bar_samples // len(arpeggio)
        for beat, note in enumerate(arpeggio):
            # The first note of each bar a little louder, for a gentle pulse.
            accent = 1.0 if beat == 0 else 0.7
            _add_circular(music, start + beat * step, accent * _pluck(_hz(note)))
    music *= TARGET_RMS / np.sqrt(np.mean(music**2))
    return np.round(music * 32767).astype(np.int16)
