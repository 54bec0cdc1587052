"""Dialogs (RFC 3261 section 12): state, matching, and the requests sent inside them.

Sans-I/O and independent of the transaction layer: the TU (the B2BUA) hands
this layer the messages it sends and receives; the layer classifies them,
keeps the dialog state and builds in-dialog requests, and reports what
happened as small frozen events. It never sends anything itself.

Who calls what:

* UAS side: ``Dialog.from_uas(invite, response, contact)`` when sending a 101-299
  with a To tag; ``DialogSet.check_request(request)`` for every request that
  arrives with a To tag; ``dialog.response_sent(request, response)`` after
  answering one (confirms early dialogs, ends re-INVITE bookkeeping, applies
  target refreshes).
* UAC side: ``Dialog.from_uac(invite, response)`` when a 101-299 with a To tag
  arrives; ``dialog.create_request(...)`` / ``create_ack(...)`` to send;
  ``dialog.receive_response(response)`` for every response in the dialog.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from typing import Final

from ._dialog_routing import (
    copy_uri,
    parse_route_set,
    route_request,
    single_contact,
    with_tag,
    without_tag,
)
from ._dialog_set import DialogSet
from ._dialog_state import (
    TRANSITIONS,
    DialogError,
    DialogEstablished,
    DialogEvent,
    DialogId,
    DialogState,
    DialogStateError,
    DialogTerminated,
    LocalDialogError,
    Outcome,
    RemoteDialogError,
    RequestCheck,
    Role,
    TargetRefreshed,
)
from .headers import CSeq, Headers, NameAddr, Via
from .message import Request, Response
from .uri import SipUri, Uri

__all__ = [
    "DIALOG_CREATING_METHODS",
    "TARGET_REFRESH_METHODS",
    "Dialog",
    "DialogError",
    "DialogEstablished",
    "DialogEvent",
    "DialogId",
    "DialogSet",
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

_log = logging.getLogger(__name__)

# Requests whose 101-299 responses create a dialog (RFC 3261 12.1, RFC 6665, RFC 3515).
DIALOG_CREATING_METHODS: Final = frozenset(["INVITE", "SUBSCRIBE", "REFER"])
# Requests that may change the remote target (RFC 3261 12.2, RFC 3311, RFC 6665 4.1, RFC 3515):
# they carry our Contact, and an accepted one updates the peer's.
TARGET_REFRESH_METHODS: Final = frozenset(["INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"])

_MAX_FORWARDS: Final = "70"
# CSeq numbers must stay below 2**31 (8.1.1.5); starting in the lower half leaves
# a dialog room for a billion requests.
_SEQ_START_LIMIT: Final = 2**30
_SEQ_LIMIT: Final = 2**31
# A UAS asks the peer to retry an overlapping re-INVITE after 0-10 s (14.2).
_RETRY_AFTER_MAX: Final = 10
_SYSTEM_RNG: Final = random.SystemRandom()


class Dialog:
    """One dialog's state (RFC 3261 12): identity, targets, route set and sequence numbers.

    Build one with :meth:`from_uas` or :meth:`from_uac`. ``route_set`` holds
    Route values in the order they go into requests. ``remote_seq`` stays None
    until the peer sends a request (UAC side); ``local_seq`` stays None until we
    send one (UAS side). ``pending_invite_out`` / ``pending_invite_in`` record an
    INVITE transaction in progress in each direction, for glare (14.1, 14.2).
    """

    __slots__ = (
        "_creating_cseq",
        "_invite_seq",
        "_rng",
        "_state",
        "id",
        "local_seq",
        "local_target",
        "local_uri",
        "pending_invite_in",
        "pending_invite_out",
        "remote_seq",
        "remote_target",
        "remote_uri",
        "role",
        "route_set",
        "secure",
    )

    def __init__(
        self,
        *,
        id: DialogId,
        role: Role,
        state: DialogState,
        local_uri: NameAddr,
        remote_uri: NameAddr,
        local_target: NameAddr,
        remote_target: SipUri,
        route_set: list[str],
        local_seq: int | None,
        remote_seq: int | None,
        secure: bool,
        creating_cseq: CSeq,
        rng: random.Random | None = None,
    ) -> None:
        self.id = id
        self.role = role
        self._state = state
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.local_target = local_target
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.secure = secure
        self._creating_cseq = creating_cseq
        self._rng = rng if rng is not None else _SYSTEM_RNG
        # While the dialog is early the INVITE that creates it is still in
        # progress, which counts for glare like any other INVITE (14.1, 14.2).
        early_invite = state is DialogState.EARLY and creating_cseq.method == "INVITE"
        self.pending_invite_out = early_invite and role is Role.UAC
        self.pending_invite_in = early_invite and role is Role.UAS
        self._invite_seq: int | None = (
            creating_cseq.seq if role is Role.UAC and creating_cseq.method == "INVITE" else None
        )

    # -- construction (RFC 3261 12.1) ----------------------------------------------------

    @classmethod
    def from_uas(
        cls,
        request: Request,
        response: Response,
        local_contact: NameAddr | SipUri,
        *,
        rng: random.Random | None = None,
    ) -> Dialog:
        """The dialog a UAS creates by sending ``response`` to ``request`` (RFC 3261 12.1.1).

        ``response`` is a 2xx (confirmed dialog) or a 101-199 with a To tag
        (early dialog); it must carry ``local_contact`` as its Contact, which
        this layer does not add. Raises ``RemoteDialogError`` (answer with its
        ``status``) when the request cannot form a dialog, e.g. has no Contact.
        """
        state = _state_for(request, response)
        local_tag = response.to.tag
        if not local_tag:
            raise LocalDialogError("a dialog-creating response needs a To tag (12.1.1)")
        _check_same_transaction(request, response)
        contact = single_contact(request, request.method)
        if contact is None:
            raise RemoteDialogError(f"{request.method} without Contact (12.1.1)")
        assert isinstance(contact.uri, SipUri)  # single_contact checked it
        if isinstance(local_contact, SipUri):
            local_contact = NameAddr(uri=local_contact)
        return cls(
            id=DialogId(request.call_id, local_tag, request.from_.tag or ""),
            role=Role.UAS,
            state=state,
            local_uri=without_tag(request.to),
            remote_uri=without_tag(request.from_),
            local_target=local_contact,
            remote_target=copy_uri(contact.uri),
            route_set=parse_route_set(request, reverse=False),
            local_seq=None,
            # 12.1.1: the peer's CSeq so far is the one of the creating request.
            remote_seq=request.cseq.seq,
            secure=_is_secure(request),
            creating_cseq=request.cseq,
            rng=rng,
        )

    @classmethod
    def from_uac(
        cls, request: Request, response: Response, *, rng: random.Random | None = None
    ) -> Dialog:
        """The dialog a UAC creates on receiving ``response`` to ``request`` (RFC 3261 12.1.2).

        ``request`` is the INVITE/SUBSCRIBE/REFER we sent; ``response`` a 2xx or
        a 101-199 with a To tag. With forking, each To tag is its own dialog.
        """
        state = _state_for(request, response)
        if state is DialogState.EARLY and not response.to.tag:
            raise LocalDialogError("a provisional response without To tag creates no dialog")
        local_tag = request.from_.tag
        if not local_tag:
            raise LocalDialogError("our request has no From tag (8.1.1.3)")
        _check_same_transaction(request, response)
        local_contact = single_contact(request, request.method)
        if local_contact is None:
            raise LocalDialogError(f"our {request.method} has no Contact (8.1.1.8)")
        remote = single_contact(response, f"{response.status} response")
        if remote is None:
            if state is DialogState.CONFIRMED:
                raise RemoteDialogError(f"{response.status} response without Contact (12.1.1)")
            # Gateways often leave the Contact out of 180/183. Until the 2xx
            # brings one, the early dialog targets the Request-URI we used.
            if not isinstance(request.uri, SipUri):
                raise LocalDialogError("dialog request to a non-SIP Request-URI")
            target = request.uri
        else:
            assert isinstance(remote.uri, SipUri)  # single_contact checked it
            target = remote.uri
        return cls(
            # 12.1.2: a 2xx from an RFC 2543 UAS may lack the To tag; it is null then.
            id=DialogId(request.call_id, local_tag, response.to.tag or ""),
            role=Role.UAC,
            state=state,
            local_uri=without_tag(request.from_),
            remote_uri=without_tag(request.to),
            local_target=local_contact,
            remote_target=copy_uri(target),
            route_set=parse_route_set(response, reverse=True),
            # 12.1.2: our sequence continues from the creating request; the
            # peer's is empty until it sends a request of its own.
            local_seq=request.cseq.seq,
            remote_seq=None,
            secure=_is_secure(request),
            creating_cseq=request.cseq,
            rng=rng,
        )

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> DialogState:
        """The current state; changes only through the transition table."""
        return self._state

    def _set_state(self, new: DialogState) -> None:
        if new not in TRANSITIONS[self._state]:
            raise DialogStateError(
                f"dialog {self.id}: illegal transition {self._state.value} -> {new.value}"
            )
        _log.debug("dialog %s: %s -> %s", self.id, self._state.value, new.value)
        self._state = new

    @staticmethod
    def is_target_refresh(method: str) -> bool:
        """True for requests that carry a Contact and may change the remote target."""
        return method in TARGET_REFRESH_METHODS

    def confirm(self, response: Response) -> DialogEstablished:
        """Early -> confirmed on the 2xx to the creating request (sent or received).

        For a UAC, RFC 3261 13.2.2.4 says the route set MUST be recomputed from
        the 2xx (proxies that did not record-route the 1xx may do so on the 2xx,
        and the 2xx may come through another path), and 12.2.1.2 replaces the
        remote target with the 2xx's Contact when present. A UAS's route set and
        remote target come from the request and stay as they were (12.1.1).
        """
        if not response.is_success:
            raise LocalDialogError(f"a {response.status} response cannot confirm a dialog")
        if response.call_id != self.id.call_id or response.cseq != self._creating_cseq:
            raise LocalDialogError("response does not answer the request that made the dialog")
        # The To tag is always the UAS's: ours as UAS, the peer's as UAC.
        to_tag = self.id.local_tag if self.role is Role.UAS else self.id.remote_tag
        if (response.to.tag or "") != to_tag:
            raise LocalDialogError("response To tag is another dialog's (forked 2xx)")
        self._set_state(DialogState.CONFIRMED)
        if self.role is Role.UAC:
            self.route_set = parse_route_set(response, reverse=True)
            contact = single_contact(response, f"{response.status} response")
            if contact is not None:
                assert isinstance(contact.uri, SipUri)
                self.remote_target = copy_uri(contact.uri)
        if self._creating_cseq.method == "INVITE":
            self.pending_invite_in = False
            self.pending_invite_out = False
        return DialogEstablished(self.id)

    def terminate(self, reason: str) -> DialogTerminated | None:
        """End the dialog; None when it had already ended.

        Idempotent because several paths end a call at once (BYE in, BYE out,
        481/408, timeouts) and only the first one is news.
        """
        if self._state is DialogState.TERMINATED:
            return None
        self._set_state(DialogState.TERMINATED)
        return DialogTerminated(self.id, reason)

    def refresh_target(self, request: Request) -> TargetRefreshed | None:
        """Take the peer's new Contact from an accepted target refresh request (12.2.2).

        Call it once the TU accepts the request (``response_sent`` does so on a
        2xx). None when the request is no target refresh, has no Contact, or the
        Contact is unchanged.
        """
        if not self.is_target_refresh(request.method):
            return None
        contact = single_contact(request, request.method)
        if contact is None:
            return None
        return self._set_remote_target(contact.uri)

    def _set_remote_target(self, uri: Uri) -> TargetRefreshed | None:
        assert isinstance(uri, SipUri)  # single_contact checked it
        if str(uri) == str(self.remote_target):
            return None
        self.remote_target = copy_uri(uri)
        return TargetRefreshed(self.id)

    def glare_retry_delay(self, rng: random.Random | None = None) -> float:
        """Seconds to wait before retrying a re-INVITE that got 491 (RFC 3261 14.1).

        The owner of the Call-ID (the dialog's UAC) waits 2.1-4 s, the other
        side 0-2 s, both in 10 ms steps, so the two retries do not collide again.
        """
        rng = rng if rng is not None else self._rng
        if self.role is Role.UAC:
            return rng.randint(210, 400) / 100
        return rng.randint(0, 200) / 100

    # -- requests we send (RFC 3261 12.2.1) ----------------------------------------------

    def create_request(
        self,
        method: str,
        *,
        via: Via,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """A request inside this dialog (RFC 3261 12.2.1.1), advancing ``local_seq``.

        ``via`` carries the new branch. An INVITE marks ``pending_invite_out``
        until ``receive_response`` sees its final response. ACK for a 2xx is
        :meth:`create_ack`; CANCEL belongs to the INVITE's transaction (9.1).
        """
        if method in ("ACK", "CANCEL"):
            raise LocalDialogError(f"{method} takes the CSeq of its INVITE; not create_request")
        if self._state is DialogState.TERMINATED:
            raise LocalDialogError(f"{method} in terminated dialog {self.id}")
        if method == "BYE" and self.role is Role.UAS and self._state is DialogState.EARLY:
            # 15: the callee may not BYE an early dialog; it rejects the INVITE instead.
            raise LocalDialogError("a UAS must not send BYE in an early dialog (15)")
        if method == "INVITE" and (self.pending_invite_out or self.pending_invite_in):
            raise LocalDialogError("re-INVITE while another INVITE is in progress (14.1)")
        if self.local_seq is None:
            # 8.1.1.5/12.1.1: a UAS picks its first CSeq at random.
            seq = self._rng.randrange(1, _SEQ_START_LIMIT)
        else:
            seq = self.local_seq + 1
        if seq >= _SEQ_LIMIT:
            raise LocalDialogError("CSeq space exhausted (8.1.1.5)")
        contact = self.local_target if self.is_target_refresh(method) else None
        request = self._build(method, seq, via, body, content_type, contact, extra_headers)
        self.local_seq = seq
        if method == "INVITE":
            self.pending_invite_out = True
            self._invite_seq = seq
        return request

    def create_ack(
        self,
        invite: Request,
        via: Via,
        *,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """The ACK for a 2xx to ``invite`` (RFC 3261 13.2.2.4).

        Built like any in-dialog request but with the INVITE's CSeq number and
        its credentials, and without advancing ``local_seq``. Allowed in every
        state: a 2xx must be acknowledged even when we are about to hang up.
        """
        if invite.method != "INVITE" or invite.call_id != self.id.call_id:
            raise LocalDialogError("create_ack needs an INVITE of this dialog")
        extra = [
            (name, value)
            for name, value in invite.headers
            if name in ("authorization", "proxy-authorization")
        ]
        return self._build("ACK", invite.cseq.seq, via, body, content_type, None, extra)

    def _build(
        self,
        method: str,
        seq: int,
        via: Via,
        body: bytes,
        content_type: str | None,
        contact: NameAddr | None,
        extra_headers: Iterable[tuple[str, str]],
    ) -> Request:
        if body and content_type is None:
            raise LocalDialogError("a body needs a Content-Type (7.4.1)")
        uri, routes = route_request(self.route_set, self.remote_target)
        headers = Headers()
        headers.add("via", str(via))
        headers.add("max-forwards", _MAX_FORWARDS)
        for route in routes:
            headers.add("route", route)
        headers.add("from", str(with_tag(self.local_uri, self.id.local_tag)))
        headers.add("to", str(with_tag(self.remote_uri, self.id.remote_tag)))
        headers.add("call-id", self.id.call_id)
        headers.add("cseq", str(CSeq(seq, method)))
        if contact is not None:
            headers.add("contact", str(contact))
        if content_type is not None:
            headers.add("content-type", content_type)
        for name, value in extra_headers:
            headers.add(name, value)
        return Request(method, uri, headers, body)

    # -- responses we receive or send ----------------------------------------------------

    def receive_response(self, response: Response) -> list[DialogEvent]:
        """Update the dialog from a response to a request we sent in it (UAC side).

        Confirms an early dialog on the 2xx to the creating request; ends it on
        a non-2xx final one (12.3 ends every early dialog of the request, so
        the To tag does not matter); ends a dialog on 481 or 408 (12.2.1.2);
        takes a new remote target from a 2xx to a target refresh (12.2.1.2).
        """
        if self._state is DialogState.TERMINATED:
            return []
        cseq = response.cseq
        if cseq.method == "INVITE" and response.status >= 200 and cseq.seq == self._invite_seq:
            self.pending_invite_out = False
        if self._state is DialogState.EARLY and cseq == self._creating_cseq:
            if response.is_success:
                return [self.confirm(response)]
            if response.status >= 300:
                return _some(self.terminate(f"{response.status} {response.reason}"))
            return []
        if response.status in (408, 481):
            return _some(self.terminate(f"{response.status} {response.reason}"))
        if response.is_success and self.is_target_refresh(cseq.method):
            contact = single_contact(response, f"{response.status} response")
            if contact is not None:
                return _some(self._set_remote_target(contact.uri))
        return []

    def response_sent(self, request: Request, response: Response) -> list[DialogEvent]:
        """Update the dialog after answering ``request``, a request the peer sent in it.

        A final response ends our side of an incoming INVITE (14.2 bookkeeping);
        on an early dialog the answer to the creating request confirms or ends
        it; a 2xx to a target refresh applies the peer's new Contact (12.2.2).
        """
        if self._state is DialogState.TERMINATED:
            return []
        if request.method == "INVITE" and response.status >= 200:
            self.pending_invite_in = False
        if self._state is DialogState.EARLY and request.cseq == self._creating_cseq:
            if response.is_success:
                return [self.confirm(response)]
            if response.status >= 300:
                return _some(self.terminate(f"{response.status} {response.reason}"))
            return []
        if response.is_success:
            return _some(self.refresh_target(request))
        return []

    # -- requests we receive (RFC 3261 12.2.2) -------------------------------------------

    def receive_request(self, request: Request) -> RequestCheck:
        """Check a request the peer sent in this dialog and update ``remote_seq``.

        :meth:`DialogSet.check_request` calls this after matching the dialog.
        """
        method = request.method
        if self._state is DialogState.TERMINATED:
            if method == "ACK":
                return RequestCheck(Outcome.DROP, self, reason="ACK for a terminated dialog")
            return RequestCheck(Outcome.REJECT, self, 481, reason="dialog terminated")
        if method in ("ACK", "CANCEL"):
            # They repeat the CSeq of the request they refer to, so they are
            # neither out of order nor advance the sequence (12.2.2, 9.2).
            return RequestCheck(Outcome.ACCEPT, self)
        seq = request.cseq.seq
        if self.remote_seq is not None and seq <= self.remote_seq:
            # 12.2.2: out-of-order requests get 500. An equal number is no
            # retransmission either (the transaction layer absorbed those).
            return RequestCheck(
                Outcome.REJECT, self, 500, reason=f"CSeq {seq} not above {self.remote_seq}"
            )
        self.remote_seq = seq
        if method == "INVITE":
            if self.pending_invite_out:
                # 14.2: both sides re-INVITEd at once; each answers 491 and
                # retries after glare_retry_delay.
                return RequestCheck(Outcome.REJECT, self, 491, reason="re-INVITE glare")
            if self.pending_invite_in:
                # 14.2: an earlier INVITE from the peer still awaits our final response.
                return RequestCheck(
                    Outcome.REJECT,
                    self,
                    500,
                    retry_after=self._rng.randint(0, _RETRY_AFTER_MAX),
                    reason="previous INVITE still in progress",
                )
            self.pending_invite_in = True
        return RequestCheck(Outcome.ACCEPT, self)

    def __repr__(self) -> str:
        return f"<Dialog {self.role.value} {self._state.value} {self.id}>"


def _some(event: DialogEvent | None) -> list[DialogEvent]:
    return [] if event is None else [event]


def _state_for(request: Request, response: Response) -> DialogState:
    """The state a dialog starts in, or an error when the pair forms no dialog (12.1)."""
    if request.method not in DIALOG_CREATING_METHODS:
        raise LocalDialogError(f"{request.method} does not create dialogs")
    if response.is_success:
        return DialogState.CONFIRMED
    if 100 < response.status < 200:
        return DialogState.EARLY
    raise LocalDialogError(f"a {response.status} response creates no dialog")


def _check_same_transaction(request: Request, response: Response) -> None:
    if response.call_id != request.call_id or response.cseq != request.cseq:
        raise LocalDialogError("the response does not answer this request")


def _is_secure(request: Request) -> bool:
    # 12.1.1/12.1.2: secure when the creating request went over TLS to a SIPS
    # Request-URI. The top Via names the transport of the last hop.
    uri = request.uri
    return isinstance(uri, SipUri) and uri.scheme == "sips" and request.top_via.transport == "TLS"
