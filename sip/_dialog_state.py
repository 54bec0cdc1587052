"""The dialog layer's vocabulary: ids, states, roles, events, verdicts and errors.

Kept apart from :mod:`sip.dialog` so the dialog store and the routing helpers
can share it without importing the ``Dialog`` class itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .dialog import Dialog

__all__ = [
    "TRANSITIONS",
    "DialogError",
    "DialogEstablished",
    "DialogEvent",
    "DialogId",
    "DialogState",
    "DialogStateError",
    "DialogTerminated",
    "LocalDialogError",
    "Outcome",
    "RemoteDialogError",
    "RequestCheck",
    "Role",
    "TargetRefreshed",
]


class DialogError(Exception):
    """Base class of the dialog layer's errors."""


class LocalDialogError(DialogError):
    """Our own TU used a dialog wrongly (e.g. a BYE on an early UAS dialog, RFC 3261 15)."""


class RemoteDialogError(DialogError, ValueError):
    """The peer's messages cannot form or refresh a dialog (e.g. an INVITE without Contact).

    ``status`` is what a UAS answers the offending request with.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class DialogState(enum.Enum):
    """Where a dialog is in its life (RFC 3261 12)."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Role(enum.Enum):
    """Which side of the dialog-creating transaction we were."""

    UAC = "uac"
    UAS = "uas"


TRANSITIONS: Final[dict[DialogState, frozenset[DialogState]]] = {
    DialogState.EARLY: frozenset([DialogState.CONFIRMED, DialogState.TERMINATED]),
    DialogState.CONFIRMED: frozenset([DialogState.TERMINATED]),
    DialogState.TERMINATED: frozenset(),
}


class DialogStateError(LocalDialogError):
    """A state change the dialog state machine does not allow, e.g. terminated -> confirmed."""


@dataclass(frozen=True, slots=True)
class DialogId:
    """Call-ID plus local and remote tag (RFC 3261 12).

    A tag is ``""`` when an RFC 2543 peer sent none (12.1.1 treats it as null).
    """

    call_id: str
    local_tag: str
    remote_tag: str

    def __str__(self) -> str:
        return f"{self.call_id};local={self.local_tag};remote={self.remote_tag}"


@dataclass(frozen=True, slots=True)
class DialogEstablished:
    """The dialog became confirmed by a 2xx."""

    dialog_id: DialogId


@dataclass(frozen=True, slots=True)
class DialogTerminated:
    """The dialog ended; ``reason`` says why (``"BYE"``, ``"481"``, ``"486 Busy Here"``...)."""

    dialog_id: DialogId
    reason: str


@dataclass(frozen=True, slots=True)
class TargetRefreshed:
    """The peer's Contact changed through a target refresh (RFC 3261 12.2)."""

    dialog_id: DialogId


DialogEvent = DialogEstablished | DialogTerminated | TargetRefreshed


class Outcome(enum.Enum):
    """What to do with a request that arrived, according to the dialog layer."""

    ACCEPT = "accept"  # pass it to the TU along with its dialog
    REJECT = "reject"  # answer with RequestCheck.status
    DROP = "drop"  # discard silently: an ACK nothing can answer
    OUT_OF_DIALOG = "out-of-dialog"  # no To tag: a new request, not the dialog layer's


@dataclass(frozen=True, slots=True)
class RequestCheck:
    """The verdict of :meth:`DialogSet.check_request` on a received request.

    ``status`` is set for ``REJECT``; ``retry_after`` (seconds) goes into a
    ``Retry-After`` header when set. ``reason`` explains the verdict for logs.
    """

    outcome: Outcome
    dialog: Dialog | None = None
    status: int | None = None
    retry_after: int | None = None
    reason: str = ""

    @property
    def accepted(self) -> bool:
        """True when the TU should process the request in ``dialog``."""
        return self.outcome is Outcome.ACCEPT
