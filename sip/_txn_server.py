"""Server transactions: INVITE (RFC 3261 17.2.1, RFC 6026 7.1) and non-INVITE (17.2.2).

Also the keys requests are matched on (17.2.3): the branch, sent-by and
method when the branch carries the RFC 3261 magic cookie, and the RFC 2543
fallback built from the Request-URI, tags, Call-ID, CSeq and top Via when it
does not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import ClassVar, Final

from ._grammar import SipSyntaxError
from ._timers import Context, Input, State, Timer, Transaction, Trigger
from .events import AckReceived, Address, TransactionTimedOut, TransportFailed
from .message import Request, Response, make_response

__all__ = ["MAGIC_COOKIE", "ServerTransaction", "to_tag", "transaction_key"]

logger = logging.getLogger("sip.transaction")

MAGIC_COOKIE: Final = "z9hG4bK"

ServerAction = Callable[["ServerTransaction", Context], None]
ServerTable = Mapping[tuple[State, Trigger], tuple[State, tuple[ServerAction, ...]]]

TRYING = State.TRYING
PROCEEDING = State.PROCEEDING
COMPLETED = State.COMPLETED
CONFIRMED = State.CONFIRMED
ACCEPTED = State.ACCEPTED
TERMINATED = State.TERMINATED


def transaction_key(request: Request, method: str, to_tag: str | None) -> str:
    """The server transaction key of ``request`` as if its method were ``method``.

    ``method`` is INVITE for an ACK or a CANCEL looking for its INVITE. With a
    magic-cookie branch the key is branch, sent-by and method (RFC 3261
    17.2.3); otherwise it is the RFC 2543 tuple, for which the caller says
    which To tag to use (an ACK carries the tag of the response, not of the
    INVITE). Compute it before ``received``/``rport`` are stamped on the Via.
    """
    via = request.top_via
    branch = via.branch
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return f"{branch}|{via.host.lower()}|{via.port or ''}|{method}"
    return "|".join(
        (
            "2543",
            method,
            str(request.uri),
            to_tag or "",
            request.from_.tag or "",
            request.call_id,
            str(request.cseq.seq),
            str(via),
        )
    )


def to_tag(response: Response) -> str | None:
    """The To tag of a response the TU built, or None when it has none (or a broken To).

    Responses come from the TU, not the parser, so their To is parsed here
    first; a failure must not leave a transaction half way through a step.
    """
    try:
        return response.to.tag
    except SipSyntaxError:
        return None


class ServerTransaction(Transaction):
    """One request we received, until its final response has been delivered.

    ``last_data`` is the last response sent, serialised once and resent for
    request retransmissions and Timers G and 2xx. ``acked`` records, in
    Accepted, that the ACK for our 2xx arrived (so Timer L ends quietly).
    """

    __slots__ = ("acked", "dialog", "last_data", "last_response", "request", "source")

    MACHINE = "server"
    TIMERS: ClassVar[Mapping[State, frozenset[Timer]]] = {
        TRYING: frozenset((Timer.TU_GUARD,)),
        PROCEEDING: frozenset((Timer.TU_GUARD,)),
        COMPLETED: frozenset((Timer.G, Timer.H, Timer.J)),
        CONFIRMED: frozenset((Timer.I,)),
        ACCEPTED: frozenset((Timer.L, Timer.RETRANSMIT_2XX)),
    }

    def __init__(self, key: str, request: Request, source: Address, destination: Address) -> None:
        invite = request.method == "INVITE"
        super().__init__(key, request.method, PROCEEDING if invite else TRYING, destination)
        # None once a non-INVITE transaction has answered, or an INVITE one has
        # sent its 2xx: nothing reads it again, and at thousands of requests a
        # second the Completed or Accepted wait (Timer J or L, 32 s over UDP)
        # would otherwise keep every parsed request alive.
        self.request: Request | None = request
        self.source = source
        self.last_data: bytes | None = None
        self.last_response: Response | None = None
        self.acked = False
        # (Call-ID, CSeq number, From tag, To tag) of our 2xx, for matching its ACK.
        self.dialog: tuple[str, int, str, str] | None = None

    @property
    def is_invite(self) -> bool:
        """True for an INVITE server transaction."""
        return self.method == "INVITE"

    def start(self, ctx: Context) -> None:
        """Begin: an INVITE answers 100 Trying at once (17.2.1), others wait for the TU."""
        if self.is_invite:
            # make_response echoes Timestamp into the 100 (RFC 3261 8.2.6.1).
            assert self.request is not None
            trying = make_response(self.request, 100)
            self.step(Input.SEND_1XX, ctx._replace(message=trying))
        else:
            self.arm(ctx, Timer.TU_GUARD, ctx.io.durations.timeout)

    def step(self, trigger: Trigger, ctx: Context) -> None:
        """Apply ``trigger`` through the INVITE or non-INVITE server table."""
        table: ServerTable = _INVITE_TABLE if self.is_invite else _NON_INVITE_TABLE
        for action in self._transition(table, trigger):
            action(self, ctx)


# -- actions ---------------------------------------------------------------------------


def _send_response(txn: ServerTransaction, ctx: Context) -> None:
    response = ctx.message
    assert isinstance(response, Response)
    txn.last_response = response
    txn.last_data = response.serialize()
    ctx.io.send(txn.last_data, txn.destination)


def _resend_last(txn: ServerTransaction, ctx: Context) -> None:
    if txn.last_data is not None:
        ctx.io.send(txn.last_data, txn.destination, retransmission=True)


def _start_g_h(txn: ServerTransaction, ctx: Context) -> None:
    durations = ctx.io.durations
    if not txn.reliable:
        txn.interval = durations.t1
        txn.arm(ctx, Timer.G, durations.t1)
    txn.arm(ctx, Timer.H, durations.timeout)


def _retransmit_capped(txn: ServerTransaction, ctx: Context) -> None:
    # Timer G and the 2xx timer both double up to T2 (17.2.1, 13.3.1.4).
    _resend_last(txn, ctx)
    txn.interval = min(2 * txn.interval, ctx.io.durations.t2)
    txn.arm(ctx, Timer.G if txn.state is COMPLETED else Timer.RETRANSMIT_2XX, txn.interval)


def _start_i(txn: ServerTransaction, ctx: Context) -> None:
    txn.arm(ctx, Timer.I, ctx.io.durations.wait_t4(txn.reliable))


def _start_j(txn: ServerTransaction, ctx: Context) -> None:
    # Completed only resends last_data; drop the parsed messages (see __init__).
    txn.request = None
    txn.last_response = None
    txn.arm(ctx, Timer.J, ctx.io.durations.wait_j(txn.reliable))


def _accept(txn: ServerTransaction, ctx: Context) -> None:
    # RFC 6026 Accepted: Timer L bounds the wait for the ACK; over UDP the 2xx
    # is retransmitted until it comes (the UAS core's job in RFC 3261 13.3.1.4).
    durations = ctx.io.durations
    response = txn.last_response
    assert response is not None and txn.request is not None
    txn.dialog = (
        txn.request.call_id,
        txn.request.cseq.seq,
        txn.request.from_.tag or "",
        to_tag(response) or "",
    )
    # Accepted resends last_data and matches ACKs and CANCELs by ``dialog``:
    # the parsed INVITE and 2xx (dozens of objects with the SDP) need not live
    # through Timer L, 32 s over UDP, for every call.
    txn.request = None
    txn.last_response = None
    txn.arm(ctx, Timer.L, durations.timeout)
    if not txn.reliable:
        txn.interval = durations.t1
        txn.arm(ctx, Timer.RETRANSMIT_2XX, durations.t1)


def _ack_2xx(txn: ServerTransaction, ctx: Context) -> None:
    request = ctx.message
    assert isinstance(request, Request) and ctx.source is not None
    txn.acked = True
    txn.disarm(Timer.RETRANSMIT_2XX)
    ctx.io.emit(AckReceived(request, ctx.source))


def _timed_out(txn: ServerTransaction, ctx: Context) -> None:
    ctx.io.emit(TransactionTimedOut(txn.key, txn.method))


def _timed_out_unless_acked(txn: ServerTransaction, ctx: Context) -> None:
    # Timer L with no ACK: the TU must BYE the half-established dialog (13.3.1.4).
    if not txn.acked:
        ctx.io.emit(TransactionTimedOut(txn.key, txn.method))


def _transport_failed(txn: ServerTransaction, ctx: Context) -> None:
    ctx.io.emit(TransportFailed(txn.key, txn.method))


def _transport_failed_unless_acked(txn: ServerTransaction, ctx: Context) -> None:
    if not txn.acked:
        ctx.io.emit(TransportFailed(txn.key, txn.method))


def _tu_silent(txn: ServerTransaction, ctx: Context) -> None:
    logger.warning("no response from the TU to %s %s; forgetting it", txn.method, txn.key)


# -- tables ----------------------------------------------------------------------------

_INVITE_TABLE: ServerTable = {
    (PROCEEDING, Input.RECV_REQUEST): (PROCEEDING, (_resend_last,)),
    (PROCEEDING, Input.RECV_ACK): (PROCEEDING, ()),
    (PROCEEDING, Input.SEND_1XX): (PROCEEDING, (_send_response,)),
    (PROCEEDING, Input.SEND_2XX): (ACCEPTED, (_send_response, _accept)),
    (PROCEEDING, Input.SEND_ERROR): (COMPLETED, (_send_response, _start_g_h)),
    (PROCEEDING, Input.TRANSPORT_ERROR): (TERMINATED, (_transport_failed,)),
    (COMPLETED, Input.RECV_REQUEST): (COMPLETED, (_resend_last,)),
    (COMPLETED, Input.RECV_ACK): (CONFIRMED, (_start_i,)),
    (COMPLETED, Timer.G): (COMPLETED, (_retransmit_capped,)),
    (COMPLETED, Timer.H): (TERMINATED, (_timed_out,)),
    (COMPLETED, Input.TRANSPORT_ERROR): (TERMINATED, (_transport_failed,)),
    # Confirmed only soaks up ACK retransmissions until Timer I.
    (CONFIRMED, Input.RECV_REQUEST): (CONFIRMED, ()),
    (CONFIRMED, Input.RECV_ACK): (CONFIRMED, ()),
    (CONFIRMED, Input.TRANSPORT_ERROR): (CONFIRMED, ()),
    (CONFIRMED, Timer.I): (TERMINATED, ()),
    # RFC 6026 7.1: INVITE retransmissions are absorbed (we answer them with the
    # 2xx, which is what the client is missing), every ACK goes up to the TU,
    # and the TU may hand us the 2xx again.
    (ACCEPTED, Input.RECV_REQUEST): (ACCEPTED, (_resend_last,)),
    (ACCEPTED, Input.RECV_ACK): (ACCEPTED, (_ack_2xx,)),
    (ACCEPTED, Input.SEND_2XX): (ACCEPTED, (_send_response,)),
    (ACCEPTED, Timer.RETRANSMIT_2XX): (ACCEPTED, (_retransmit_capped,)),
    (ACCEPTED, Timer.L): (TERMINATED, (_timed_out_unless_acked,)),
    (ACCEPTED, Input.TRANSPORT_ERROR): (TERMINATED, (_transport_failed_unless_acked,)),
}

_NON_INVITE_TABLE: ServerTable = {
    (TRYING, Input.RECV_REQUEST): (TRYING, ()),
    (TRYING, Input.SEND_1XX): (PROCEEDING, (_send_response,)),
    (TRYING, Input.SEND_2XX): (COMPLETED, (_send_response, _start_j)),
    (TRYING, Input.SEND_ERROR): (COMPLETED, (_send_response, _start_j)),
    (TRYING, Input.TRANSPORT_ERROR): (TERMINATED, (_transport_failed,)),
    (TRYING, Timer.TU_GUARD): (TERMINATED, (_tu_silent,)),
    (PROCEEDING, Input.RECV_REQUEST): (PROCEEDING, (_resend_last,)),
    (PROCEEDING, Input.SEND_1XX): (PROCEEDING, (_send_response,)),
    (PROCEEDING, Input.SEND_2XX): (COMPLETED, (_send_response, _start_j)),
    (PROCEEDING, Input.SEND_ERROR): (COMPLETED, (_send_response, _start_j)),
    (PROCEEDING, Input.TRANSPORT_ERROR): (TERMINATED, (_transport_failed,)),
    (PROCEEDING, Timer.TU_GUARD): (TERMINATED, (_tu_silent,)),
    (COMPLETED, Input.RECV_REQUEST): (COMPLETED, (_resend_last,)),
    (COMPLETED, Input.TRANSPORT_ERROR): (TERMINATED, (_transport_failed,)),
    (COMPLETED, Timer.J): (TERMINATED, ()),
}
