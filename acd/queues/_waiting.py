"""What a queued caller hears: the queueing prompt, music on hold, announcements, offers.

One :class:`WaitingMusic` runs per waiting call as a cancellable task. It
plays "all our agents are busy, please hold" once, then loops music on hold
on the caller's RTP stream through the engine's one :class:`media.Player`.
Every ``announce_every`` seconds the music stops for the caller's position
and expected wait (and the callback offer when the queue has a callback
key), then starts again. A key press while waiting is read from the call's
digit queue, so the callback key works during music and announcements alike.

Music on hold is ``moh.wav`` beside the prompts; without it the caller hears
silence (RTP still flows, so no phone hangs up on a dead stream), and that is
logged once per process, not once per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import ivr
from media import player as mp

if TYPE_CHECKING:
    from ..calls import Call

__all__ = ["MOH_FILE", "WaitingMusic", "hold_music", "wait_announcement"]

log = logging.getLogger(__name__)

MOH_FILE: Final = "moh.wav"
_SILENCE: Final = (mp.Silence(1000),)
_moh_missing_logged = False


def hold_music(prompts_dir: Path | None) -> tuple[mp.PlayItem, ...]:
    """The looping playlist for music on hold: ``moh.wav`` beside the prompts, else silence."""
    global _moh_missing_logged
    path = prompts_dir / MOH_FILE if prompts_dir is not None else None
    if path is not None and path.is_file():
        return (mp.WavFile(path),)
    if not _moh_missing_logged:
        _moh_missing_logged = True
        log.warning("no music on hold (%s missing): waiting callers hear silence", path)
    return _SILENCE


def wait_announcement(position: int | None, expected_wait: float | None) -> list[mp.PlayItem]:
    """'You are number N in the queue. The expected wait is M minutes' as player items.

    An expected wait under a minute is said as "less than a minute"; whole
    minutes are rounded up, because a caller told "two minutes" who waits
    two and a half feels misled, one who waits one and a half does not.
    """
    items: list[mp.PlayItem] = []
    if position is not None and position > 0:
        items += [mp.Prompt("you_are_number"), mp.Number(position), mp.Prompt("in_the_queue")]
    if expected_wait is not None and expected_wait >= 0:
        items.append(mp.Prompt("expected_wait"))
        if expected_wait < 60:
            items.append(mp.Prompt("less_than_a_minute"))
        else:
            minutes = int(-(-expected_wait // 60))
            items += [mp.Number(minutes), mp.Prompt("minute" if minutes == 1 else "minutes")]
    return items


class WaitingMusic:
    """Music on hold, announcements and the callback offer for one waiting call.

    ``position`` and ``expected_wait`` are asked each time an announcement
    is due (the core knows them); ``on_key`` gets every key the caller
    presses and returns True when the wait is over (the callback key).
    """

    def __init__(
        self,
        call: Call,
        *,
        music: Sequence[mp.PlayItem],
        greeting: Sequence[mp.PlayItem],
        announce_every: float,
        callback_key: str | None,
        position: Callable[[], int | None],
        expected_wait: Callable[[], float | None],
        on_key: Callable[[str], bool],
    ) -> None:
        self.call = call
        self.music = tuple(music)
        self.greeting = tuple(greeting)
        self.announce_every = announce_every
        self.callback_key = callback_key
        self.position = position
        self.expected_wait = expected_wait
        self.on_key = on_key
        self.announcements = 0
        self._task: asyncio.Task[None] | None = None
        self._playback: mp.Playback | None = None

    @property
    def player(self) -> mp.Player:
        player: mp.Player = self.call.control.media.player
        return player

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"waiting {self.call.id}"
        )

    async def stop(self) -> None:
        """Silence the caller's stream and end the task (idempotent)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._stop_playback()

    def _stop_playback(self) -> None:
        if self._playback is not None:
            self._playback.stop()
            self._playback = None

    def _play(self, items: Sequence[mp.PlayItem], *, loop: bool = False) -> mp.Playback | None:
        rtp = self.call.caller_leg.rtp
        if rtp is None or rtp.closed or not items:
            return None
        try:
            self._playback = self.player.play(rtp, items, loop=loop)
        except (KeyError, ValueError, OSError) as exc:
            log.error("call %s: cannot play %s: %s", self.call.id, items, exc)
            return None
        return self._playback

    async def _play_once(self, items: Sequence[mp.PlayItem]) -> None:
        playback = self._play(items)
        if playback is None:
            return
        await self._until(playback.done)
        self._stop_playback()

    async def _until(self, future: asyncio.Future[mp.PlaybackResult]) -> None:
        """Wait for ``future``, handling the caller's keys meanwhile."""
        while not future.done():
            key = await self._key(None, future)
            if key is not None and self.on_key(key):
                return

    async def _key(
        self, timeout: float | None, also: asyncio.Future[mp.PlaybackResult] | None = None
    ) -> str | None:
        """The next key within ``timeout`` (or until ``also`` is done); None otherwise."""
        call = self.call
        if call.caller_leg.is_ended:
            raise ivr.CallerHungUp(call.id)
        getter = asyncio.ensure_future(call.get_digit(3600.0 if timeout is None else timeout))
        waits: set[asyncio.Future[object]] = {getter}  # type: ignore[arg-type]
        if also is not None:
            waits.add(also)  # type: ignore[arg-type]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
            elif not getter.cancelled():
                getter.exception()  # retrieved: re-raised below unless we were cancelled
        if getter.done() and not getter.cancelled():
            return getter.result()
        return None

    def _offer(self) -> list[mp.PlayItem]:
        return [mp.Prompt("callback_offer")] if self.callback_key else []

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await self._play_once([*self.greeting, *self._offer()])
            while True:
                self._play(self.music, loop=True)
                period = self.announce_every if self.announce_every > 0 else None
                deadline = loop.time() + period if period is not None else None
                while deadline is None or loop.time() < deadline:
                    left = None if deadline is None else max(0.0, deadline - loop.time())
                    key = await self._key(left)
                    if key is not None and self.on_key(key):
                        return
                self._stop_playback()
                self.announcements += 1
                items = wait_announcement(self.position(), self.expected_wait())
                await self._play_once([*items, *self._offer()])
        except ivr.CallerHungUp:
            pass
        finally:
            self._stop_playback()
