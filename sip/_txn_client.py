"""Client transactions: INVITE (RFC 3261 17.1.1, RFC 6026 7.2) and non-INVITE (17.1.2).

Also the two requests the layer builds on the TU's behalf from a client
INVITE: the ACK for a non-2xx final response (17.1.1.3) and the CANCEL (9.1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar

from ._timers import Context, Input, State, Timer, Transaction, Trigger
from .events import Address, ResponseReceived, TransactionTimedOut, TransportFailed
from .headers import Headers
from .message import Message, Request, Response

__all__ = ["ClientTransaction", "build_ack", "build_cancel"]

ClientAction = Callable[["ClientTransaction", Context], None]
ClientTable = Mapping[tuple[State, Trigger], tuple[State, tuple[ClientAction, ...]]]

CALLING = State.CALLING
TRYING = State.TRYING
PROCEEDING = State.PROCEEDING
COMPLETED = State.COMPLETED
ACCEPTED = State.ACCEPTED
TERMINATED = State.TERMINATED


class ClientTransaction(Transaction):
    """One request we sent, until its final response has been dealt with.

    ``data`` is the serialised request, kept for retransmissions. For INVITE,
    ``ack_data`` is the ACK the transaction sent for a non-2xx final response
    (resent whenever that response is retransmitted), and ``cancel_key`` /
    ``held_cancel`` record a CANCEL asked for by the TU (held until a
    provisional response arrives, RFC 3261 9.1).
    """

    __slots__ = ("ack_data", "cancel_key", "data", "held_cancel", "request")

    MACHINE = "client"
    TIMERS: ClassVar[Mapping[State, frozenset[Timer]]] = {
        CALLING: frozenset((Timer.A, Timer.B)),
        # Non-INVITE keeps retransmitting (at T2) and timing out in Proceeding;
        # INVITE only keeps the guard a CANCEL starts.
        TRYING: frozenset((Timer.E, Timer.F)),
        PROCEEDING: frozenset((Timer.E, Timer.F, Timer.CANCEL_GUARD)),
        COMPLETED: frozenset((Timer.D, Timer.K)),
        ACCEPTED: frozenset((Timer.M,)),
    }

    def __init__(self, key: str, request: Request, data: bytes, destination: Address) -> None:
        invite = request.method == "INVITE"
        super().__init__(key, request.method, CALLING if invite else TRYING, destination)
        self.request = request
        self.data = data
        self.ack_data: bytes | None = None
        self.cancel_key: str | None = None
        self.held_cancel: Request | None = None

    @property
    def is_invite(self) -> bool:
        """True for an INVITE client transaction."""
        return self.method == "INVITE"

    def start(self, ctx: Context) -> None:
        """Send the request for the first time and start Timers A/B or E/F."""
        ctx.io.send(self.data, self.destination)
        durations = ctx.io.durations
        if not self.reliable:
            self.interval = durations.t1
            self.arm(ctx, Timer.A if self.is_invite else Timer.E, durations.t1)
        self.arm(ctx, Timer.B if self.is_invite else Timer.F, durations.timeout)

    def step(self, trigger: Trigger, ctx: Context) -> None:
        """Apply ``trigger`` through the INVITE or non-INVITE client table."""
        table: ClientTable = _INVITE_TABLE if self.is_invite else _NON_INVITE_TABLE
        for action in self._transition(table, trigger):
            action(self, ctx)


def _header(message: Message, name: str) -> str:
    value = message.headers.get(name)
    if value is None:
        raise ValueError(f"{message!r} has no {name} header")
    return value


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response (RFC 3261 17.1.1.3).

    Request-URI, Call-ID, From, CSeq number, the top Via and Route come from
    the INVITE; To (with the tag the UAS chose) from the response.
    """
    return _same_hop(invite, "ACK", _header(response, "to"))


def build_cancel(invite: Request) -> Request:
    """The CANCEL for a pending INVITE (RFC 3261 9.1).

    Same Request-URI, Call-ID, To, From and CSeq number as the INVITE, its top
    Via only (so the CANCEL shares the INVITE's branch) and its Route set.
    """
    return _same_hop(invite, "CANCEL", _header(invite, "to"))


def _same_hop(invite: Request, method: str, to: str) -> Request:
    # ACK and CANCEL travel exactly where the INVITE went, within its transaction.
    headers = Headers()
    headers.add("via", str(invite.top_via))
    headers.add("max-forwards", "70")
    for route in invite.headers.get_all("route"):
        headers.add("route", route)
    headers.add("from", _header(invite, "from"))
    headers.add("to", to)
    headers.add("call-id", invite.call_id)
    headers.add("cseq", f"{invite.cseq.seq} {method}")
    return Request(method, invite.uri, headers)


# -- actions ---------------------------------------------------------------------------


def _retransmit_a(txn: ClientTransaction, ctx: Context) -> None:
    # Timer A doubles without the T2 cap (RFC 3261 17.1.1.2); Timer B ends it.
    ctx.io.send(txn.data, txn.destination, retransmission=True)
    txn.interval *= 2
    txn.arm(ctx, Timer.A, txn.interval)


def _retransmit_e(txn: ClientTransaction, ctx: Context) -> None:
    # Doubling up to T2 while Trying; once a provisional arrived, every T2 (17.1.2.2).
    ctx.io.send(txn.data, txn.destination, retransmission=True)
    t2 = ctx.io.durations.t2
    txn.interval = min(2 * txn.interval, t2) if txn.state is TRYING else t2
    txn.arm(ctx, Timer.E, txn.interval)


def _pass_up(txn: ClientTransaction, ctx: Context) -> None:
    response = ctx.message
    assert isinstance(response, Response) and ctx.source is not None
    ctx.io.emit(ResponseReceived(response, txn.key, ctx.source))


def _timed_out(txn: ClientTransaction, ctx: Context) -> None:
    ctx.io.emit(TransactionTimedOut(txn.key, txn.method))


def _transport_failed(txn: ClientTransaction, ctx: Context) -> None:
    ctx.io.emit(TransportFailed(txn.key, txn.method))


def _send_ack(txn: ClientTransaction, ctx: Context) -> None:
    response = ctx.message
    assert isinstance(response, Response)
    txn.ack_data = build_ack(txn.request, response).serialize()
    ctx.io.send(txn.ack_data, txn.destination)


def _resend_ack(txn: ClientTransaction, ctx: Context) -> None:
    if txn.ack_data is not None:
        ctx.io.send(txn.ack_data, txn.destination, retransmission=True)


def _arm_d(txn: ClientTransaction, ctx: Context) -> None:
    txn.arm(ctx, Timer.D, ctx.io.durations.wait_d(txn.reliable))


def _arm_k(txn: ClientTransaction, ctx: Context) -> None:
    txn.arm(ctx, Timer.K, ctx.io.durations.wait_t4(txn.reliable))


def _arm_m(txn: ClientTransaction, ctx: Context) -> None:
    txn.arm(ctx, Timer.M, ctx.io.durations.timeout)


# -- tables ----------------------------------------------------------------------------

_INVITE_TABLE: ClientTable = {
    (CALLING, Timer.A): (CALLING, (_retransmit_a,)),
    (CALLING, Timer.B): (TERMINATED, (_timed_out,)),
    (CALLING, Input.RECV_1XX): (PROCEEDING, (_pass_up,)),
    (CALLING, Input.RECV_2XX): (ACCEPTED, (_pass_up, _arm_m)),
    (CALLING, Input.RECV_ERROR): (COMPLETED, (_send_ack, _pass_up, _arm_d)),
    (CALLING, Input.TRANSPORT_ERROR): (TERMINATED, (_transport_failed,)),
    (PROCEEDING, Input.RECV_1XX): (PROCEEDING, (_pass_up,)),
    (PROCEEDING, Input.RECV_2XX): (ACCEPTED, (_pass_up, _arm_m)),
    (PROCEEDING, Input.RECV_ERROR): (COMPLETED, (_send_ack, _pass_up, _arm_d)),
    (PROCEEDING, Input.TRANSPORT_ERROR): (TERMINATED, (_transport_failed,)),
    (PROCEEDING, Timer.CANCEL_GUARD): (TERMINATED, (_timed_out,)),
    # Completed absorbs retransmissions of the final response by resending the ACK.
    (COMPLETED, Input.RECV_1XX): (COMPLETED, ()),
    (COMPLETED, Input.RECV_ERROR): (COMPLETED, (_resend_ack,)),
    # A 2xx after a non-2xx can only come from a misbehaving fork; the TU
    # still has to ACK and BYE it, so pass it up.
    (COMPLETED, Input.RECV_2XX): (COMPLETED, (_pass_up,)),
    (COMPLETED, Input.TRANSPORT_ERROR): (TERMINATED, (_transport_failed,)),
    (COMPLETED, Timer.D): (TERMINATED, ()),
    # RFC 6026 7.2: every 2xx (retransmissions, other forks) goes to the TU, which ACKs it.
    (ACCEPTED, Input.RECV_1XX): (ACCEPTED, ()),
    (ACCEPTED, Input.RECV_2XX): (ACCEPTED, (_pass_up,)),
    (ACCEPTED, Input.RECV_ERROR): (ACCEPTED, ()),
    (ACCEPTED, Input.TRANSPORT_ERROR): (ACCEPTED, ()),
    (ACCEPTED, Timer.M): (TERMINATED, ()),
}

_NON_INVITE_TABLE: ClientTable = {
    (TRYING, Timer.E): (TRYING, (_retransmit_e,)),
    (TRYING, Timer.F): (TERMINATED, (_timed_out,)),
    (TRYING, Input.RECV_1XX): (PROCEEDING, (_pass_up,)),
    (TRYING, Input.RECV_2XX): (COMPLETED, (_pass_up, _arm_k)),
    (TRYING, Input.RECV_ERROR): (COMPLETED, (_pass_up, _arm_k)),
    (TRYING, Input.TRANSPORT_ERROR): (TERMINATED, (_transport_failed,)),
    (PROCEEDING, Timer.E): (PROCEEDING, (_retransmit_e,)),
    (PROCEEDING, Timer.F): (TERMINATED, (_timed_out,)),
    (PROCEEDING, Input.RECV_1XX): (PROCEEDING, (_pass_up,)),
    (PROCEEDING, Input.RECV_2XX): (COMPLETED, (_pass_up, _arm_k)),
    (PROCEEDING, Input.RECV_ERROR): (COMPLETED, (_pass_up, _arm_k)),
    (PROCEEDING, Input.TRANSPORT_ERROR): (TERMINATED, (_transport_failed,)),
    # Completed only buffers response retransmissions (17.1.2.2).
    (COMPLETED, Input.RECV_1XX): (COMPLETED, ()),
    (COMPLETED, Input.RECV_2XX): (COMPLETED, ()),
    (COMPLETED, Input.RECV_ERROR): (COMPLETED, ()),
    (COMPLETED, Input.TRANSPORT_ERROR): (COMPLETED, ()),
    (COMPLETED, Timer.K): (TERMINATED, ()),
}
