"""RFC 3261 section 17 transactions (with RFC 6026), sans-I/O.

Messages and the time go in through :meth:`TransactionLayer.receive`,
:meth:`~TransactionLayer.send_request`, :meth:`~TransactionLayer.send_response`
and :meth:`~TransactionLayer.handle_timer`; events come back as return values
and bytes wait in :meth:`~TransactionLayer.messages_to_send`. The four state
machines are transition tables in ``_txn_client`` and ``_txn_server``; this
module matches messages to transactions, routes responses and runs the timers.

Beyond the transaction state machines proper, the layer also does three jobs
RFC 3261 gives the UA core, because every TU above needs them done the same
way: it answers CANCEL (9.2), builds and holds the CANCEL for a client INVITE
(9.1), and retransmits a UAS 2xx until its ACK arrives (13.3.1.4).
"""

from __future__ import annotations

import logging

from ._entropy import token_urlsafe
from ._grammar import SipSyntaxError
from ._timers import (
    Context,
    Durations,
    IllegalTransition,
    Input,
    State,
    Timer,
    TimerHeap,
    Transaction,
    TransactionError,
    Trigger,
)
from ._txn_client import ClientTransaction, build_cancel
from ._txn_server import MAGIC_COOKIE, ServerTransaction, to_tag, transaction_key
from .events import (
    AckReceived,
    Address,
    CancelReceived,
    Event,
    RequestReceived,
    TransactionTerminated,
)
from .headers import Via
from .message import Request, Response, make_response

__all__ = [
    "IllegalTransition",
    "TransactionError",
    "TransactionLayer",
    "new_branch",
    "new_tag",
    "response_destination",
    "stamp_via",
]

logger = logging.getLogger("sip.transaction")

_DialogKey = tuple[str, int, str, str]


def new_branch() -> str:
    """A fresh RFC 3261 branch: the magic cookie and 16 random url-safe characters."""
    return MAGIC_COOKIE + token_urlsafe(12)


def new_tag() -> str:
    """A fresh From/To tag with 64 random bits (RFC 3261 19.3 asks for 32)."""
    return token_urlsafe(8)


def _format_host(host: str) -> str:
    # Bracketed, as RFC 5118 4.5 notes many stacks (and our own parser) expect.
    return f"[{host}]" if ":" in host else host


def stamp_via(request: Request, source: Address) -> Via:
    """Record where ``request`` really came from in its top Via (RFC 3261 18.2.1, RFC 3581).

    Adds ``received`` when the sent-by host is not the source IP, and fills in
    ``rport`` (then also ``received``, as RFC 3581 4 requires) when present.
    An ``rport`` that already has a value is overwritten too: the only port a
    response can reach through a NAT is the one the request came from.
    """
    via = request.top_via
    params = via.params
    if "rport" in params:
        params["rport"] = str(source.port)
        params["received"] = _format_host(source.host)
    elif via.host != source.host:
        params["received"] = _format_host(source.host)
    else:
        return via
    request.replace_top_via(via)
    return via


def response_destination(via: Via, source: Address) -> Address:
    """Where responses to a request with top Via ``via`` from ``source`` go (18.2.2, RFC 3581).

    Stream transports answer on the connection the request came in on. Over
    UDP: ``rport`` sends to the source port of the ``received`` (or source)
    address; ``received`` alone to that address at the sent-by port; otherwise
    to sent-by itself (a name there is the transport's to resolve). ``maddr``
    is not supported: multicast responses are out of scope.
    """
    if source.reliable:
        return source
    params = via.params
    received = params.get("received")
    host = received.strip("[]") if received else None
    if "rport" in params:
        rport = params["rport"]
        port = source.port
        if rport and rport.isascii() and rport.isdigit() and 0 < int(rport) < 65536:
            port = int(rport)
        return Address(source.transport, host or source.host, port)
    return Address(source.transport, host or via.host, via.port or 5060)


def _response_tag(txn: ServerTransaction) -> str | None:
    """The To tag of the last response of a server transaction, None before one has a tag.

    In Accepted the parsed 2xx is gone and the tag is kept in ``dialog``.
    """
    if txn.last_response is not None:
        return to_tag(txn.last_response)
    if txn.dialog is not None:
        return txn.dialog[3] or None
    return None


class _Io:
    """The layer as transactions see it (the ``Effects`` protocol)."""

    __slots__ = ("durations", "layer")

    def __init__(self, layer: TransactionLayer, durations: Durations) -> None:
        self.layer = layer
        self.durations = durations

    def send(self, data: bytes, destination: Address, *, retransmission: bool = False) -> None:
        self.layer._out.append((data, destination))
        if retransmission:
            self.layer.retransmissions += 1

    def emit(self, event: Event) -> None:
        self.layer._events.append(event)

    def arm(self, transaction: Transaction, timer: Timer, delay: float, now: float) -> None:
        self.layer._timers.push(transaction, timer, now + delay)


class TransactionLayer:
    """RFC 3261 section 17 transactions, sans-I/O: messages and time in, events and bytes out.

    Client transaction keys are ``branch|method``; server keys are opaque
    strings handed out in :class:`~sip.events.RequestReceived`. Every key the
    layer hands out ends with exactly one
    :class:`~sip.events.TransactionTerminated`. Only ``receive``,
    ``handle_timer`` and ``transport_error`` produce events: zero-length
    timers (D, I, J, K on streams) are due at once and fire from the next
    ``handle_timer``, so ``send_response`` never ends a transaction itself.

    Besides the TU's messages the layer sends some of its own: 100 Trying,
    the 200/481 to a CANCEL, the ACK for a non-2xx final response, the CANCEL
    from :meth:`cancel`, and every retransmission.

    ``retransmissions`` counts messages sent again (for
    ``sip_retransmissions_total``); ``stray_responses`` counts responses that
    matched no client transaction and were dropped.
    """

    def __init__(self, *, t1: float = 0.5, t2: float = 4.0, t4: float = 5.0) -> None:
        if not 0 < t1 <= t2 or t4 <= 0:
            raise ValueError("timers need 0 < T1 <= T2 and T4 > 0")
        self.durations = Durations(t1, t2, t4)
        self.retransmissions = 0
        self.stray_responses = 0
        self._io = _Io(self, self.durations)
        self._clients: dict[str, ClientTransaction] = {}
        self._servers: dict[str, ServerTransaction] = {}
        # INVITE server transactions in Accepted by the dialog of their 2xx:
        # the ACK for a 2xx has a branch of its own (RFC 3261 17.1.1.3).
        self._accepted: dict[_DialogKey, ServerTransaction] = {}
        self._by_destination: dict[Address, set[Transaction]] = {}
        self._timers = TimerHeap()
        self._out: list[tuple[bytes, Address]] = []
        self._events: list[Event] = []

    def __len__(self) -> int:
        return len(self._clients) + len(self._servers)

    def __repr__(self) -> str:
        return f"<TransactionLayer clients={len(self._clients)} servers={len(self._servers)}>"

    # -- output ---------------------------------------------------------------------------

    def messages_to_send(self) -> list[tuple[bytes, Address]]:
        """Drain the output queue: serialised messages and where each goes."""
        out, self._out = self._out, []
        return out

    def send_stateless(self, message: Request | Response, destination: Address) -> None:
        """Queue a message that belongs to no transaction (ACK for 2xx, stateless replies)."""
        self._out.append((message.serialize(), destination))

    def _take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    # -- timers ---------------------------------------------------------------------------

    def next_timer(self) -> float | None:
        """The earliest timer deadline (same clock as ``now``), or None when idle."""
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> list[Event]:
        """Fire every timer due at ``now``, in deadline order."""
        while (due := self._timers.pop_due(now)) is not None:
            transaction, timer = due
            self._safe_step(transaction, timer, Context(None, None, now, self._io))
        return self._take_events()

    # -- incoming -------------------------------------------------------------------------

    def receive(self, message: Request | Response, source: Address, now: float) -> list[Event]:
        """Feed one parsed message from ``source``; return what the TU must hear of it."""
        try:
            # Touch every routing header first: a hand-built message without
            # one fails here, before any transaction has changed.
            message.top_via  # noqa: B018
            message.call_id  # noqa: B018
            message.cseq  # noqa: B018
            message.from_  # noqa: B018
            message.to  # noqa: B018
            ctx = Context(message, source, now, self._io)
            if isinstance(message, Request):
                self._receive_request(message, ctx)
            else:
                self._receive_response(message, ctx)
        except SipSyntaxError as exc:
            logger.info("dropping %r from %s: %s", message, source, exc)
        except IllegalTransition as exc:
            logger.error("transaction table has no entry: %s", exc)
        return self._take_events()

    def _receive_request(self, request: Request, ctx: Context) -> None:
        source = ctx.source
        assert source is not None
        method = request.method
        if method == "ACK":
            self._receive_ack(request, ctx)
            return
        to_tag = request.to.tag
        key = transaction_key(request, method, to_tag)
        existing = self._servers.get(key)
        if existing is not None:
            self._step(existing, Input.RECV_REQUEST, ctx)
            return
        # Keys hash the Via as received, so take them before stamping it.
        invite_key = transaction_key(request, "INVITE", to_tag) if method == "CANCEL" else ""
        via = stamp_via(request, source)
        txn = ServerTransaction(key, request, source, response_destination(via, source))
        self._add(txn)
        if method == "CANCEL":
            self._answer_cancel(txn, invite_key, ctx)
            return
        txn.start(ctx)
        self._io.emit(RequestReceived(request, key, source))

    def _answer_cancel(self, txn: ServerTransaction, invite_key: str, ctx: Context) -> None:
        # RFC 3261 9.2: the CANCEL is answered here; the INVITE is the TU's to end (487).
        request = txn.request
        assert request is not None  # a CANCEL transaction is answered as it is created
        invite = self._servers.get(invite_key)
        if invite is None or not invite.is_invite:
            status, tag = 481, new_tag()
        else:
            status = 200
            # Reuse the tag of a provisional response, likely the one the 487 will carry.
            tag = _response_tag(invite) or new_tag()
        response = make_response(request, status, to_tag=tag)
        trigger = Input.SEND_2XX if status == 200 else Input.SEND_ERROR
        self._step(txn, trigger, ctx._replace(message=response))
        if invite is not None and status == 200 and invite.state is State.PROCEEDING:
            assert ctx.source is not None
            self._io.emit(CancelReceived(request, invite.key, ctx.source))

    def _receive_ack(self, ack: Request, ctx: Context) -> None:
        txn = self._match_ack(ack)
        if txn is None:
            dialog = (ack.call_id, ack.cseq.seq, ack.from_.tag or "", ack.to.tag or "")
            txn = self._accepted.get(dialog)
        if txn is None:
            # An ACK for a 2xx whose transaction is gone (or never was): the
            # dialog layer decides what it means.
            assert ctx.source is not None
            self._io.emit(AckReceived(ack, ctx.source))
            return
        self._step(txn, Input.RECV_ACK, ctx)

    def _match_ack(self, ack: Request) -> ServerTransaction | None:
        branch = ack.top_via.branch
        if branch is not None and branch.startswith(MAGIC_COOKIE):
            return self._servers.get(transaction_key(ack, "INVITE", None))
        # RFC 2543 (17.2.3): the ACK's To tag is that of our response; the
        # INVITE had none (initial request) or the same one (re-INVITE).
        ack_tag = ack.to.tag
        for invite_to_tag in (ack_tag, None) if ack_tag is not None else (None,):
            txn = self._servers.get(transaction_key(ack, "INVITE", invite_to_tag))
            if (
                txn is not None
                and txn.is_invite
                and txn.last_data is not None
                and _response_tag(txn) == ack_tag
            ):
                return txn
        return None

    def _receive_response(self, response: Response, ctx: Context) -> None:
        branch = response.top_via.branch
        txn = self._clients.get(f"{branch}|{response.cseq.method}") if branch else None
        if txn is None:
            self.stray_responses += 1
            logger.debug("stray %r (branch %s) from %s", response, branch, ctx.source)
            return
        status = response.status
        if status < 200:
            trigger = Input.RECV_1XX
        elif status < 300:
            trigger = Input.RECV_2XX
        else:
            trigger = Input.RECV_ERROR
        self._step(txn, trigger, ctx)

    # -- outgoing -------------------------------------------------------------------------

    def send_request(self, request: Request, destination: Address, now: float) -> str:
        """Start a client transaction for ``request``; return its key.

        The top Via must carry a magic-cookie branch; one is added if it does
        not. Raises ValueError for an ACK (use :meth:`send_stateless`), a
        request without Via, Call-ID, CSeq, From or To, or a branch in use.
        """
        if request.method == "ACK":
            raise ValueError("an ACK has no client transaction; use send_stateless")
        via = request.top_via
        request.call_id  # noqa: B018 - the ACK and CANCEL built later need these
        request.cseq  # noqa: B018
        request.from_  # noqa: B018
        request.to  # noqa: B018
        branch = via.branch
        if branch is None or not branch.startswith(MAGIC_COOKIE) or branch == MAGIC_COOKIE:
            branch = new_branch()
            via.params["branch"] = branch
            request.replace_top_via(via)
        key = f"{branch}|{request.method}"
        if key in self._clients:
            raise ValueError(f"branch {branch} is already in use by {key}")
        self._start_client(key, request, destination, Context(None, None, now, self._io))
        return key

    def _start_client(
        self, key: str, request: Request, destination: Address, ctx: Context
    ) -> ClientTransaction:
        txn = ClientTransaction(key, request, request.serialize(), destination)
        self._add(txn)
        txn.start(ctx)
        return txn

    def send_response(self, transaction: str, response: Response, now: float) -> None:
        """Send the TU's ``response`` through server transaction ``transaction``.

        A response for a transaction that is gone (it timed out, its transport
        failed) or that the state machine cannot take (a second final
        response) is logged and dropped.
        """
        txn = self._servers.get(transaction)
        if txn is None:
            logger.warning("%r for unknown transaction %s dropped", response, transaction)
            return
        status = response.status
        if status < 200:
            trigger = Input.SEND_1XX
        elif status < 300:
            trigger = Input.SEND_2XX
        else:
            trigger = Input.SEND_ERROR
        self._safe_step(txn, trigger, Context(response, None, now, self._io))

    def cancel(self, transaction: str, now: float) -> str | None:
        """CANCEL the client INVITE ``transaction`` (RFC 3261 9.1); return the CANCEL's key.

        Returns None when there is nothing to cancel (no such INVITE, or its
        final response has arrived). Before any provisional response the
        CANCEL is held and sent when one arrives, or dropped (with
        TransactionTerminated for its key) when a final response comes first.
        Calling it again before the final response returns the same key.
        """
        txn = self._clients.get(transaction)
        if txn is None or not txn.is_invite:
            return None
        if txn.state is not State.CALLING and txn.state is not State.PROCEEDING:
            return None
        if txn.cancel_key is not None:
            return txn.cancel_key
        request = build_cancel(txn.request)
        key = f"{request.top_via.branch}|CANCEL"
        if key in self._clients:
            return key  # the TU sent its own CANCEL with this branch
        txn.cancel_key = key
        txn.held_cancel = request
        if txn.state is State.PROCEEDING:
            self._release_cancel(txn, Context(None, None, now, self._io))
        return key

    def _release_cancel(self, txn: ClientTransaction, ctx: Context) -> None:
        request, txn.held_cancel = txn.held_cancel, None
        assert request is not None and txn.cancel_key is not None
        if txn.state is State.PROCEEDING:
            self._start_client(txn.cancel_key, request, txn.destination, ctx)
            # RFC 3261 9.1: no final response 64*T1 after the CANCEL: give up on the INVITE.
            txn.arm(ctx, Timer.CANCEL_GUARD, self.durations.timeout)
        else:
            # A final response (or a failure) beat the provisional: nothing to cancel.
            self._io.emit(TransactionTerminated(txn.cancel_key, "CANCEL"))

    def transport_error(self, destination: Address, now: float) -> list[Event]:
        """Sending to ``destination`` failed: fail every transaction sending there."""
        ctx = Context(None, None, now, self._io)
        for txn in list(self._by_destination.get(destination, ())):
            if txn.state is not State.TERMINATED:
                self._safe_step(txn, Input.TRANSPORT_ERROR, ctx)
        return self._take_events()

    # -- bookkeeping ----------------------------------------------------------------------

    def _add(self, txn: ClientTransaction | ServerTransaction) -> None:
        if isinstance(txn, ClientTransaction):
            self._clients[txn.key] = txn
        else:
            self._servers[txn.key] = txn
        self._by_destination.setdefault(txn.destination, set()).add(txn)

    def _safe_step(self, txn: Transaction, trigger: Trigger, ctx: Context) -> None:
        try:
            self._step(txn, trigger, ctx)
        except IllegalTransition as exc:
            # Timers cannot cause this (leaving a state disarms its timers), so
            # it is the TU acting out of turn: its mistake, not the caller's crash.
            logger.warning("ignored: %s", exc)

    def _step(self, txn: Transaction, trigger: Trigger, ctx: Context) -> None:
        txn.step(trigger, ctx)
        if isinstance(txn, ClientTransaction):
            if txn.held_cancel is not None and txn.state is not State.CALLING:
                self._release_cancel(txn, ctx)
        elif (
            isinstance(txn, ServerTransaction)
            and txn.dialog is not None
            and txn.state is State.ACCEPTED
        ):
            self._accepted[txn.dialog] = txn
        if txn.state is State.TERMINATED:
            self._forget(txn)

    def _forget(self, txn: Transaction) -> None:
        if isinstance(txn, ClientTransaction):
            del self._clients[txn.key]
        elif isinstance(txn, ServerTransaction):
            del self._servers[txn.key]
            if txn.dialog is not None and self._accepted.get(txn.dialog) is txn:
                del self._accepted[txn.dialog]
        txn.armed.clear()
        peers = self._by_destination.get(txn.destination)
        if peers is not None:
            peers.discard(txn)
            if not peers:
                del self._by_destination[txn.destination]
        self._io.emit(TransactionTerminated(txn.key, txn.method))
