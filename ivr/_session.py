"""What the interpreter needs from a call: the :class:`CallSession` protocol.

The interpreter never touches SIP or RTP. Call control (``acd``) implements
:class:`CallSession` on a real call; tests implement it with a scripted digit
feed. Everything the caller hears is a sequence of :data:`PlayItem` values,
already rendered from the flow's templates; the media player decides how each
is spoken (a prompt WAV, espeak-ng for text, number and digit phrases).

Key presses reach the session as ``media.dtmf.DtmfReceived`` events (RFC 4733,
SIP INFO or in-band alike); the session buffers their digits for
:meth:`CallSession.get_digit` and lets one interrupt a barge-in prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeAlias

__all__ = [
    "CallSession",
    "CallerHungUp",
    "Digits",
    "Number",
    "PlayItem",
    "Prompt",
    "Silence",
    "Text",
    "Wav",
]


@dataclass(frozen=True, slots=True)
class Prompt:
    """A recorded prompt by name, looked up in the session's language."""

    name: str


@dataclass(frozen=True, slots=True)
class Text:
    """Free text to synthesise (espeak-ng); ``voice`` None means the language's default."""

    text: str
    voice: str | None = None


@dataclass(frozen=True, slots=True)
class Number:
    """A number spoken as a quantity: 42 is "forty-two"."""

    value: int


@dataclass(frozen=True, slots=True)
class Digits:
    """A string spoken digit by digit: "42" is "four two"."""

    value: str


@dataclass(frozen=True, slots=True)
class Silence:
    """A pause of ``ms`` milliseconds."""

    ms: int


@dataclass(frozen=True, slots=True)
class Wav:
    """A WAV file by absolute path (relative paths in a flow are made absolute at load)."""

    path: Path


PlayItem: TypeAlias = Prompt | Text | Number | Digits | Silence | Wav


class CallerHungUp(Exception):
    """The caller has gone; raised by any :class:`CallSession` method from then on.

    The interpreter catches it and ends the flow cleanly with outcome
    ``caller_hung_up``; it never calls the session again afterwards.
    """


class CallSession(Protocol):
    """One caller's call as the interpreter sees it.

    Attributes:
        call_id: the engine's id of the call (for logs and templates).
        caller: the calling number (``{caller}`` in templates).
        did: the dialled number (``{did}`` in templates).
        variables: flow variables; ``set``, ``collect`` and ``http`` nodes
            write here and every template reads here. Call control keeps them
            with the call (the agent's screen pop shows them).
        language: the language for prompts and speech (a ``language`` node
            changes it), e.g. ``en-GB``.
        recording: whether the call is being recorded; when true the flow's
            recording notice is played before anything else.
    """

    call_id: str
    caller: str
    did: str
    variables: dict[str, str]
    language: str
    recording: bool

    async def play(self, items: Sequence[PlayItem], *, barge_in: bool = False) -> str | None:
        """Play ``items`` in order; return the digit that interrupted them, else None.

        With ``barge_in`` a key press stops the playback at once and its digit
        is returned (and not buffered). Without it, digits pressed during the
        playback are buffered for :meth:`get_digit`.
        """
        ...

    async def get_digit(self, timeout: float) -> str | None:
        """The next buffered or arriving digit, or None after ``timeout`` seconds."""
        ...

    def flush_digits(self) -> None:
        """Discard buffered digits (pressed while a prompt could not be interrupted)."""
        ...

    async def enqueue(self, queue: str, priority: int, skills: Mapping[str, int]) -> None:
        """Hand the call to the ACD; return when the call is done with the queue.

        That is when it was answered and has ended, or when it left the queue
        (maximum wait); in the first case later calls raise CallerHungUp.
        """
        ...

    async def transfer(self, target: str) -> None:
        """Transfer the call to an extension or a SIP URI."""
        ...

    async def hangup(self, cause: int | None = None) -> None:
        """End the call; ``cause`` is the Q.850 cause to report, None for normal clearing."""
        ...

    def record_node(self, node_id: str) -> None:
        """Keep ``node_id`` with the call's record: the IVR path, in visiting order."""
        ...

    def record_digit(self, digit: str) -> None:
        """Keep a digit the flow consumed with the call's record, in pressing order."""
        ...

    def set_survey_score(self, score: int) -> None:
        """Store the caller's post-call rating (1 to 5) with the call."""
        ...
