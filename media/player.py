"""The prompt player: playlists of prompts, numbers and silence, paced by the media clock.

One :class:`Player` serves the whole engine. It subscribes to the
:class:`~media.clock.MediaClock` while anything plays and, every 20 ms, hands
each playing sink its next frame. The per-frame work is a slice of bytes
encoded in advance: a playlist is resolved when it starts into a list of
payloads, each already in the sink's codec and padded with codec silence to
whole frames, taken from the :class:`~media.wav.WavCache` so a prompt is
converted and encoded once for every call that plays it.

A sink plays one playback at a time; a new one stops the old ("stopped") and
starts with the RTP marker bit, which tells the far end's jitter buffer that
a new talkspurt begins. Music on hold is a looping playback; barge-in is a
playback that a key press may interrupt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from ._speech import digit_words, duration_words, number_words, ordinal_words
from .clock import FRAME_SAMPLES, MediaClock
from .g711 import Codec
from .wav import RATE, WavCache

__all__ = [
    "PROMPT_MANIFEST",
    "AudioSink",
    "Digits",
    "Duration",
    "Number",
    "Ordinal",
    "PlayItem",
    "Playback",
    "PlaybackResult",
    "Player",
    "Prompt",
    "PromptLibrary",
    "Silence",
    "SkippingSink",
    "WavFile",
]

log = logging.getLogger(__name__)

PROMPT_MANIFEST = "manifest.json"
"""The file in a prompts directory that maps prompt names to WAV files."""


class AudioSink(Protocol):
    """Where a player's frames go: an RTP leg, a recorder, a test's list.

    ``send_audio`` gets one frame's payload, already encoded with ``codec``,
    and the samples it carries (the RTP timestamp step); ``marker`` is set on
    the first frame of each playback.
    """

    codec: Codec

    def send_audio(self, payload: bytes, samples: int, *, marker: bool = False) -> None: ...


@runtime_checkable
class SkippingSink(AudioSink, Protocol):
    """A sink that can also move its RTP timestamp on without sending.

    When the media clock has to skip frames (the loop was too late to catch
    up) the player calls ``skip_audio`` with the samples skipped, so the next
    packet's timestamp is true to wall time. A sink without it gets the marker
    bit on its next frame instead, so the far end re-syncs its playout.
    """

    def skip_audio(self, samples: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt by name, from the player's :class:`PromptLibrary`."""

    name: str


@dataclass(frozen=True, slots=True)
class WavFile:
    """A WAV file by path, in any format :func:`media.wav.read_wav` reads."""

    path: str | os.PathLike[str]


@dataclass(frozen=True, slots=True)
class Silence:
    """Silence for ``ms`` milliseconds, rounded up to whole 20 ms frames."""

    ms: int


@dataclass(frozen=True, slots=True)
class Number:
    """A whole number spoken in words: 42 is 'forty two'."""

    value: int | str


@dataclass(frozen=True, slots=True)
class Ordinal:
    """A position spoken as an ordinal: 3 is 'third'."""

    value: int | str


@dataclass(frozen=True, slots=True)
class Digits:
    """Keys spoken one by one: '1234#' is 'one two three four pound'."""

    digits: str


@dataclass(frozen=True, slots=True)
class Duration:
    """A wait in minutes and seconds: 150 is 'two minutes thirty seconds'."""

    seconds: float


PlayItem = Prompt | WavFile | Silence | Number | Ordinal | Digits | Duration | str
"""One entry of a playlist; a plain string is a prompt name."""


_Reason = Literal["finished", "stopped", "interrupted", "failed"]


@dataclass(frozen=True, slots=True)
class PlaybackResult:
    """How a playback ended, the key that interrupted it, and the frames it sent."""

    reason: _Reason
    frames: int
    digit: str | None = None


class PromptLibrary:
    """Prompt names mapped to WAV files, usually a directory ``acd prompts build`` wrote."""

    def __init__(self, files: Mapping[str, str | os.PathLike[str]], *, origin: str = "") -> None:
        self._files = {name: Path(path) for name, path in files.items()}
        self._origin = origin or "the prompt library"

    @classmethod
    def from_directory(cls, directory: str | os.PathLike[str]) -> PromptLibrary:
        """Every ``*.wav`` by its stem, then the manifest's names, which win."""
        root = Path(directory)
        if not root.is_dir():
            raise FileNotFoundError(f"prompt directory {root} does not exist")
        files: dict[str, Path] = {path.stem: path for path in sorted(root.glob("*.wav"))}
        manifest = root / PROMPT_MANIFEST
        if manifest.is_file():
            try:
                entries = json.loads(manifest.read_text())["prompts"]
                files.update({name: root / entry["file"] for name, entry in entries.items()})
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{manifest}: not a prompt manifest ({exc})") from exc
        return cls(files, origin=str(root))

    def __contains__(self, name: object) -> bool:
        return name in self._files

    def __len__(self) -> int:
        return len(self._files)

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def path(self, name: str) -> Path:
        """The file of prompt ``name``; :class:`KeyError` naming the library if unknown."""
        try:
            return self._files[name]
        except KeyError:
            raise KeyError(f"no prompt named {name!r} in {self._origin}") from None


class Playback:
    """One playlist playing on one sink; ``done`` resolves with a :class:`PlaybackResult`."""

    __slots__ = (
        "_barge_in",
        "_index",
        "_loop",
        "_marker",
        "_player",
        "_pos",
        "_segment",
        "_segments",
        "_send",
        "_skip",
        "done",
        "frames",
        "sink",
    )

    def __init__(
        self,
        player: Player,
        sink: AudioSink,
        segments: list[bytes],
        *,
        loop: bool,
        barge_in: bool,
        done: asyncio.Future[PlaybackResult],
    ) -> None:
        self._player = player
        self.sink = sink
        self.done = done
        self.frames = 0
        self._segments = segments
        self._loop = loop
        self._barge_in = barge_in
        self._index = 0
        self._pos = 0
        self._segment = segments[0] if segments else b""
        self._marker = True
        self._send = sink.send_audio
        self._skip: Callable[[int], None] | None = (
            sink.skip_audio if isinstance(sink, SkippingSink) else None
        )

    @property
    def active(self) -> bool:
        """Whether frames are still being sent."""
        return not self.done.done()

    def stop(self) -> None:
        """Stop sending; ``done`` resolves as "stopped" (no-op once finished)."""
        self._finish("stopped")

    def interrupt(self, digit: str) -> None:
        """A key was pressed: stop if this is a barge-in playback, recording ``digit``."""
        if self._barge_in:
            self._finish("interrupted", digit)

    def _finish(self, reason: _Reason, digit: str | None = None) -> None:
        if self.done.done():
            return
        self.done.set_result(PlaybackResult(reason, self.frames, digit))
        self._player._forget(self)

    def _next_segment(self) -> bool:
        """Move to the next segment, wrapping if looping; False when the playlist is over."""
        self._index += 1
        self._pos = 0
        if self._index == len(self._segments):
            if not self._loop:
                return False
            self._index = 0
        self._segment = self._segments[self._index]
        return True

    def _advance(self, frames: int) -> bool:
        """Move on ``frames`` frames without sending; False if that ends the playlist."""
        step = FRAME_SAMPLES
        if self._loop:
            # Only the offset within one pass over the playlist matters.
            frames %= sum(len(segment) for segment in self._segments) // step
        while frames:
            left = (len(self._segment) - self._pos) // step
            if frames < left:
                self._pos += frames * step
                return True
            frames -= left
            if not self._next_segment():
                return False
        return True

    def _tick(self, skipped: int) -> None:
        if skipped:
            if self._skip is not None:
                self._skip(skipped * FRAME_SAMPLES)
            else:
                self._marker = True
            if not self._advance(skipped):
                self._finish("finished")
                return
        pos = self._pos
        end = pos + FRAME_SAMPLES
        try:
            self._send(self._segment[pos:end], FRAME_SAMPLES, marker=self._marker)
        except Exception:
            log.exception("sink %r failed; its playback is abandoned", self.sink)
            self._finish("failed")
            return
        self._marker = False
        self.frames += 1
        self._pos = end
        if end >= len(self._segment) and not self._next_segment():
            self._finish("finished")


class Player:
    """Plays playlists on any number of sinks, one frame each per media-clock tick."""

    def __init__(
        self,
        clock: MediaClock,
        prompts: PromptLibrary | None = None,
        *,
        cache: WavCache | None = None,
    ) -> None:
        self.clock = clock
        self.prompts = prompts if prompts is not None else PromptLibrary({})
        self.cache = cache if cache is not None else WavCache()
        self._playing: dict[int, Playback] = {}
        # What a tick walks: rebuilt lazily, at most once a tick, because
        # thousands of playbacks may start or end in the same tick.
        self._snapshot: tuple[Playback, ...] = ()
        self._changed = False
        self._unsubscribe: Callable[[], None] | None = None
        self._silence: dict[tuple[str, int], bytes] = {}

    def __len__(self) -> int:
        """How many sinks are playing."""
        return len(self._playing)

    def play(
        self,
        sink: AudioSink,
        items: Sequence[PlayItem],
        *,
        loop: bool = False,
        barge_in: bool = False,
    ) -> Playback:
        """Start ``items`` on ``sink``, replacing what it played; frames start next tick.

        Every item is resolved before anything changes, so an unknown prompt
        (:class:`KeyError`), a bad number or file (:class:`ValueError`,
        :class:`FileNotFoundError`) leaves the sink's current playback alone.
        An empty playlist finishes at once.
        """
        codec = sink.codec
        if codec.clock_rate != RATE:
            raise ValueError(f"{codec.name}/{codec.clock_rate}: the player sends 8 kHz codecs")
        segments = [payload for item in items for payload in self._resolve(item, codec)]
        segments = [segment for segment in segments if segment]
        previous = self._playing.get(id(sink))
        if previous is not None:
            previous.stop()
        playback = Playback(
            self,
            sink,
            segments,
            loop=loop,
            barge_in=barge_in,
            done=self.clock.loop.create_future(),
        )
        if not segments:
            playback._finish("finished")
            return playback
        self._playing[id(sink)] = playback
        self._changed = True
        if self._unsubscribe is None:
            self._unsubscribe = self.clock.subscribe(self._on_tick)
        return playback

    def current(self, sink: AudioSink) -> Playback | None:
        """What ``sink`` is playing, if anything."""
        return self._playing.get(id(sink))

    def stop(self, sink: AudioSink) -> None:
        """Stop whatever ``sink`` is playing."""
        playback = self._playing.get(id(sink))
        if playback is not None:
            playback.stop()

    def interrupt(self, sink: AudioSink, digit: str) -> None:
        """Pass a key press on ``sink`` to its playback (stops it only if barge-in)."""
        playback = self._playing.get(id(sink))
        if playback is not None:
            playback.interrupt(digit)

    def preload(self, codecs: Iterable[Codec]) -> None:
        """Convert and encode every library prompt now, not on a call's first play."""
        codecs = list(codecs)
        for name in self.prompts:
            for codec in codecs:
                self.cache.payload(self.prompts.path(name), codec, FRAME_SAMPLES)

    def close(self) -> None:
        """Stop every playback and leave the clock."""
        for playback in list(self._playing.values()):
            playback.stop()

    def _words(self, words: list[str], codec: Codec) -> list[bytes]:
        return [self._prompt(word, codec) for word in words]

    def _prompt(self, name: str, codec: Codec) -> bytes:
        return self.cache.payload(self.prompts.path(name), codec, FRAME_SAMPLES)

    def _resolve(self, item: PlayItem, codec: Codec) -> list[bytes]:
        match item:
            case str():
                return [self._prompt(item, codec)]
            case Prompt(name):
                return [self._prompt(name, codec)]
            case WavFile(path):
                return [self.cache.payload(path, codec, FRAME_SAMPLES)]
            case Silence(ms):
                return [self._silence_of(-(-ms // 20), codec)]
            case Number(value):
                return self._words(number_words(value), codec)
            case Ordinal(value):
                return self._words(ordinal_words(value), codec)
            case Digits(digits):
                return self._words(digit_words(digits), codec)
            case Duration(seconds):
                return self._words(duration_words(seconds), codec)
        raise TypeError(f"not a playlist item: {item!r}")

    def _silence_of(self, frames: int, codec: Codec) -> bytes:
        if frames <= 0:
            return b""
        key = (codec.name, frames)
        payload = self._silence.get(key)
        if payload is None:
            payload = self._silence[key] = codec.silence(frames * FRAME_SAMPLES)
        return payload

    def _forget(self, playback: Playback) -> None:
        key = id(playback.sink)
        if self._playing.get(key) is playback:
            del self._playing[key]
            self._changed = True
            if not self._playing and self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None

    def _on_tick(self, _tick: int, skipped: int) -> None:
        if self._changed:
            self._snapshot = tuple(self._playing.values())
            self._changed = False
        for playback in self._snapshot:
            # Stopped earlier in this tick, by a sink or a done callback.
            if not playback.done.done():
                playback._tick(skipped)
