"""The store of a user agent's dialogs and the matching of received messages to them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._dialog_state import DialogId, LocalDialogError, Outcome, RequestCheck
from .message import Request, Response

if TYPE_CHECKING:
    from .dialog import Dialog

__all__ = ["DialogSet"]


class DialogSet:
    """The dialogs of one user agent, keyed by :class:`DialogId`.

    ``find`` turns a message into its dialog: a request we receive names our tag
    in To and the peer's in From; a response we receive names ours in From and
    the peer's in To (12.2.2, 12.2.1.2).
    """

    __slots__ = ("_dialogs",)

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}

    def add(self, dialog: Dialog) -> None:
        """Store ``dialog``; a different dialog with the same id is an error."""
        existing = self._dialogs.get(dialog.id)
        if existing is not None and existing is not dialog:
            raise LocalDialogError(f"dialog {dialog.id} already exists")
        self._dialogs[dialog.id] = dialog

    def remove(self, dialog_id: DialogId) -> Dialog | None:
        """Forget a dialog; returns it, or None when it was not stored."""
        return self._dialogs.pop(dialog_id, None)

    def get(self, dialog_id: DialogId) -> Dialog | None:
        """The dialog with this id, if stored."""
        return self._dialogs.get(dialog_id)

    def find(self, message: Request | Response) -> Dialog | None:
        """The dialog a received request or response belongs to, if any."""
        if isinstance(message, Request):
            local, remote = message.to.tag, message.from_.tag
        else:
            local, remote = message.from_.tag, message.to.tag
        if local is None:
            return None
        return self._dialogs.get(DialogId(message.call_id, local, remote or ""))

    def by_call_id(self, call_id: str) -> list[Dialog]:
        """Every dialog of a Call-ID, e.g. the early dialogs of a forked INVITE (12.3)."""
        return [d for d in self._dialogs.values() if d.id.call_id == call_id]

    def check_request(self, request: Request) -> RequestCheck:
        """Classify a received request (RFC 3261 12.2.2).

        No To tag: not in a dialog. A To tag but no dialog: 481, except for ACK,
        which no response may answer and so is dropped. Otherwise the dialog's
        own checks: CSeq order and re-INVITE overlap.
        """
        if request.to.tag is None:
            return RequestCheck(Outcome.OUT_OF_DIALOG)
        dialog = self.find(request)
        if dialog is None:
            if request.method == "ACK":
                return RequestCheck(Outcome.DROP, reason="ACK for an unknown dialog")
            return RequestCheck(Outcome.REJECT, None, 481, reason="no such dialog")
        return dialog.receive_request(request)

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def __contains__(self, dialog_id: object) -> bool:
        return dialog_id in self._dialogs
