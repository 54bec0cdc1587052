"""The transaction layer between two in-memory endpoints with a fake clock.

A client :class:`TransactionLayer` (the caller, 192.0.2.10) and a server one
(the callee, 192.0.2.20) are wired by :class:`Wire`, which moves
``messages_to_send()`` between them through the real parser, can lose chosen
messages, and advances the clock from one ``next_timer()`` to the next.
"""

from __future__ import annotations

import itertools
import logging
from typing import TypeVar

import pytest

from sip.events import (
    AckReceived,
    Address,
    CancelReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from sip.headers import Via
from sip.message import Request, Response, make_response, parse_message
from sip.transaction import (
    TransactionLayer,
    new_branch,
    new_tag,
    response_destination,
    stamp_via,
)

CALLER = "192.0.2.10"
CALLEE = "192.0.2.20"


def request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bK-default",
    cseq: int = 1,
    call_id: str = "call-1@192.0.2.10",
    from_tag: str | None = "caller-tag",
    to_tag: str | None = None,
    transport: str = "UDP",
    via_host: str = CALLER,
    rport: bool = True,
    extra: str = "",
    uri: str = f"sip:agent@{CALLEE}",
) -> Request:
    """A request as the caller's TU would build it, parsed from literal bytes."""
    via = f"SIP/2.0/{transport} {via_host}:5060"
    if rport:
        via += ";rport"
    if branch is not None:
        via += f";branch={branch}"
    from_ = "<sip:caller@192.0.2.10>" + (f";tag={from_tag}" if from_tag else "")
    to = f"<sip:agent@{CALLEE}>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        "Route: <sip:proxy.example.com;lr>\r\n"
        f"From: {from_}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"{extra}"
        "\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def ack_for(response: Response, invite: Request) -> Request:
    """The ACK a TU sends for a 2xx: a new transaction, so a new branch."""
    ack = request(
        "ACK",
        branch=new_branch(),
        cseq=invite.cseq.seq,
        call_id=invite.call_id,
        to_tag=response.to.tag,
    )
    return ack


class Wire:
    """Two transaction layers back to back, a fake clock and a lossy path.

    ``drop`` holds the indexes (0-based, in order of sending, both directions)
    of messages lost on the way. ``log`` records every message moved as
    ``(time, direction, first line)``.
    """

    def __init__(
        self, transport: str = "UDP", *, t1: float = 0.5, drop: tuple[int, ...] = ()
    ) -> None:
        self.client = TransactionLayer(t1=t1)
        self.server = TransactionLayer(t1=t1)
        self.client_addr = Address(transport, CALLER, 5060)
        self.server_addr = Address(transport, CALLEE, 5060)
        self.now = 0.0
        self.drop = set(drop)
        self.sent = 0
        self.log: list[tuple[float, str, str]] = []
        self.client_events: list[Event] = []
        self.server_events: list[Event] = []
        # What the TUs do on their own: ACK every 2xx to INVITE (RFC 6026), and
        # the server TU answers nothing unless a test tells it to.
        self.auto_ack = True
        self.invite: Request | None = None

    # -- the client TU -----------------------------------------------------------------

    def call(self, message: Request) -> str:
        if message.method == "INVITE":
            self.invite = message
        return self.client.send_request(message, self.server_addr, self.now)

    # -- the server TU -----------------------------------------------------------------

    def received(self) -> list[RequestReceived]:
        return [e for e in self.server_events if isinstance(e, RequestReceived)]

    def answer(self, status: int, *, index: int = -1, to_tag: str = "callee-tag") -> None:
        event = self.received()[index]
        response = make_response(event.request, status, to_tag=to_tag)
        self.server.send_response(event.transaction, response, self.now)

    # -- the network -------------------------------------------------------------------

    def pump(self) -> None:
        """Deliver queued messages both ways until both queues are empty."""
        while True:
            from_client = self.client.messages_to_send()
            from_server = self.server.messages_to_send()
            if not from_client and not from_server:
                return
            for data, destination in from_client:
                assert destination == self.server_addr
                self._deliver(data, "->", self.server, self.client_addr, self.server_events)
            for data, destination in from_server:
                assert destination == self.client_addr, destination
                self._deliver(data, "<-", self.client, self.server_addr, self.client_events)

    def _deliver(
        self,
        data: bytes,
        direction: str,
        layer: TransactionLayer,
        source: Address,
        events: list[Event],
    ) -> None:
        index = self.sent
        self.sent += 1
        first_line = data.split(b"\r\n", 1)[0].decode()
        if index in self.drop:
            self.log.append((self.now, "x" + direction, first_line))
            return
        self.log.append((self.now, direction, first_line))
        new = layer.receive(parse_message(data), source, self.now)
        events.extend(new)
        if layer is self.client:
            self._client_tu(new)

    def _client_tu(self, events: list[Event]) -> None:
        for event in events:
            if (
                self.auto_ack
                and isinstance(event, ResponseReceived)
                and event.response.is_success
                and event.response.cseq.method == "INVITE"
                and self.invite is not None
            ):
                ack = ack_for(event.response, self.invite)
                self.client.send_stateless(ack, self.server_addr)

    def advance(self, until: float) -> None:
        """Run the clock to ``until``, firing timers and delivering messages on the way."""
        self.pump()
        while True:
            pending = (self.client.next_timer(), self.server.next_timer())
            deadlines = [t for t in pending if t is not None]
            if not deadlines or min(deadlines) > until:
                break
            self.now = max(self.now, min(deadlines))
            new = self.client.handle_timer(self.now)
            self.client_events.extend(new)
            self._client_tu(new)
            self.server_events.extend(self.server.handle_timer(self.now))
            self.pump()
        self.now = until

    def settle(self) -> None:
        """Run the clock until no timer is left on either side."""
        self.advance(10_000.0)
        assert len(self.client) == 0 and len(self.server) == 0

    # -- inspection --------------------------------------------------------------------

    def times(self, direction: str, first_line: str) -> list[float]:
        return [t for t, d, line in self.log if d.endswith(direction) and line == first_line]

    def lines(self, direction: str) -> list[str]:
        return [line for _, d, line in self.log if d == direction]


E = TypeVar("E")


def of(events: list[Event], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


def statuses(events: list[Event], key: str | None = None) -> list[int]:
    return [
        e.response.status
        for e in events
        if isinstance(e, ResponseReceived) and (key is None or e.transaction == key)
    ]


INVITE_LINE = f"INVITE sip:agent@{CALLEE} SIP/2.0"


# -- INVITE -------------------------------------------------------------------------------


def test_invite_answered_then_acked_then_gone_after_timer_l() -> None:
    wire = Wire()
    key = wire.call(request(branch=new_branch()))
    ((data, _),) = wire.client.messages_to_send()
    events = wire.server.receive(parse_message(data), wire.client_addr, 0.0)
    # 100 Trying is queued before receive() returns.
    ((trying, destination),) = wire.server.messages_to_send()
    assert trying.startswith(b"SIP/2.0 100 Trying") and destination == wire.client_addr
    assert b";tag=" not in trying.split(b"\r\nTo:")[1].split(b"\r\n")[0]
    (received,) = events
    assert isinstance(received, RequestReceived) and received.request.method == "INVITE"
    wire.server_events += events
    wire.client_events += wire.client.receive(parse_message(trying), wire.server_addr, 0.0)

    wire.answer(180)
    wire.pump()
    wire.advance(2.0)
    wire.answer(200)
    wire.pump()
    assert statuses(wire.client_events, key) == [100, 180, 200]
    (ack,) = of(wire.server_events, AckReceived)
    assert ack.request.method == "ACK"
    assert wire.client.retransmissions == 0 and wire.server.retransmissions == 0

    # The server keeps the transaction in Accepted until Timer L (64*T1 after the 2xx).
    wire.advance(2.0 + 32.0 - 0.01)
    assert len(wire.server) == 1
    wire.advance(2.0 + 32.0)
    assert len(wire.server) == 0
    assert not of(wire.server_events, TransactionTimedOut)
    assert of(wire.server_events, TransactionTerminated) == [
        TransactionTerminated(received.transaction, "INVITE")
    ]
    wire.settle()
    assert of(wire.client_events, TransactionTerminated) == [TransactionTerminated(key, "INVITE")]


def test_trying_echoes_timestamp() -> None:
    server = TransactionLayer()
    invite = request(extra="Timestamp: 54.2\r\n")
    server.receive(invite, Address("UDP", CALLER, 5060), 0.0)
    ((data, _),) = server.messages_to_send()
    assert b"\r\nTimestamp: 54.2\r\n" in data


def test_2xx_retransmitted_doubling_to_t2_until_ack() -> None:
    wire = Wire()
    wire.auto_ack = False
    wire.call(request(branch=new_branch()))
    wire.pump()
    wire.answer(200)
    wire.advance(9.0)
    # Sent at 0, then T1, 2*T1, 4*T1, T2, T2: 0.5, 1.5, 3.5, 7.5 ...
    assert wire.times("<-", "SIP/2.0 200 OK") == [0.0, 0.5, 1.5, 3.5, 7.5]
    # Every retransmission reaches the TU (RFC 6026), which ACKs this one.
    assert statuses(wire.client_events) == [100, 200, 200, 200, 200, 200]
    last = wire.client_events[-1]
    assert isinstance(last, ResponseReceived) and wire.invite is not None
    wire.client.send_stateless(ack_for(last.response, wire.invite), wire.server_addr)
    wire.advance(30.0)
    assert wire.times("<-", "SIP/2.0 200 OK") == [0.0, 0.5, 1.5, 3.5, 7.5]
    assert len(of(wire.server_events, AckReceived)) == 1
    assert wire.server.retransmissions == 4
    wire.settle()
    assert not of(wire.server_events, TransactionTimedOut)


def test_2xx_retransmissions_reach_t2_and_timer_l_reports_missing_ack() -> None:
    wire = Wire()
    wire.auto_ack = False
    wire.call(request(branch=new_branch()))
    wire.pump()
    wire.answer(200)
    key = wire.received()[0].transaction
    wire.advance(40.0)
    times = wire.times("<-", "SIP/2.0 200 OK")
    assert times[:7] == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert all(b - a == 4.0 for a, b in itertools.pairwise(times[4:]))
    assert times[-1] < 32.0
    assert of(wire.server_events, TransactionTimedOut) == [TransactionTimedOut(key, "INVITE")]
    assert len(wire.server) == 0


def test_invite_retransmitted_after_2xx_is_absorbed_and_answered_with_the_2xx() -> None:
    wire = Wire()
    invite = request(branch=new_branch())
    wire.call(invite)
    wire.pump()
    wire.answer(200)
    wire.pump()
    retransmissions = wire.server.retransmissions
    events = wire.server.receive(parse_message(invite.serialize()), wire.client_addr, 1.0)
    assert events == []
    ((data, _),) = wire.server.messages_to_send()
    assert data.startswith(b"SIP/2.0 200 OK")
    assert wire.server.retransmissions == retransmissions + 1
    assert len(wire.received()) == 1


def test_late_ack_in_accepted_and_after_timer_l_still_reaches_the_tu() -> None:
    wire = Wire()
    wire.call(request(branch=new_branch()))
    wire.pump()
    wire.answer(200)
    wire.pump()
    (first,) = of(wire.server_events, AckReceived)
    # An ACK retransmitted while Accepted goes up again (RFC 6026 8.9).
    again = wire.server.receive(parse_message(first.request.serialize()), wire.client_addr, 5.0)
    assert [type(e) for e in again] == [AckReceived]
    wire.settle()
    # After Timer L there is no transaction: the dialog layer decides.
    late = wire.server.receive(parse_message(first.request.serialize()), wire.client_addr, 99.0)
    assert [type(e) for e in late] == [AckReceived]
    assert len(wire.server) == 0


def test_2xx_from_another_fork_in_accepted_is_passed_up() -> None:
    client = TransactionLayer()
    invite = request(branch=new_branch())
    key = client.send_request(invite, Address("UDP", CALLEE, 5060), 0.0)
    source = Address("UDP", CALLEE, 5060)
    for tag in ("fork-a", "fork-b", "fork-a"):
        ok = make_response(invite, 200, to_tag=tag)
        events = client.receive(parse_message(ok.serialize()), source, 1.0)
        assert [e.response.to.tag for e in events if isinstance(e, ResponseReceived)] == [tag]
    # Non-2xx and 1xx in Accepted are dropped.
    assert client.receive(make_response(invite, 180, to_tag="x"), source, 2.0) == []
    assert client.receive(make_response(invite, 486, to_tag="x"), source, 2.0) == []
    assert key.endswith("|INVITE")


# -- CANCEL -------------------------------------------------------------------------------


def test_cancel_before_any_provisional_is_held_until_one_arrives() -> None:
    wire = Wire()
    key = wire.call(request(branch=new_branch()))
    cancel_key = wire.client.cancel(key, 0.0)
    assert cancel_key is not None and cancel_key.endswith("|CANCEL")
    assert cancel_key.split("|")[0] == key.split("|")[0]
    assert wire.client.cancel(key, 0.0) == cancel_key
    # Only the INVITE leaves now; the 100 Trying releases the CANCEL.
    ((data, _),) = wire.client.messages_to_send()
    assert data.startswith(b"INVITE ")
    wire.server_events += wire.server.receive(parse_message(data), wire.client_addr, 0.0)
    wire.pump()
    assert wire.lines("->") == [f"CANCEL sip:agent@{CALLEE} SIP/2.0"]
    (cancelled,) = of(wire.server_events, CancelReceived)
    assert cancelled.transaction == wire.received()[0].transaction
    wire.answer(487)
    wire.pump()
    assert statuses(wire.client_events, cancel_key) == [200]
    assert statuses(wire.client_events, key) == [100, 487]
    wire.settle()


def test_held_cancel_is_dropped_when_a_final_response_comes_first() -> None:
    client = TransactionLayer()
    invite = request(branch=new_branch())
    server = Address("UDP", CALLEE, 5060)
    key = client.send_request(invite, server, 0.0)
    cancel_key = client.cancel(key, 0.0)
    client.messages_to_send()
    events = client.receive(make_response(invite, 486, to_tag="busy"), server, 0.1)
    assert TransactionTerminated(str(cancel_key), "CANCEL") in events
    assert [d.split(b" ", 1)[0] for d, _ in client.messages_to_send()] == [b"ACK"]
    assert client.cancel(key, 0.2) is None
    assert client.messages_to_send() == []


def test_held_cancel_and_timer_b() -> None:
    client = TransactionLayer()
    key = client.send_request(request(branch=new_branch()), Address("UDP", CALLEE, 5060), 0.0)
    cancel_key = client.cancel(key, 1.0)
    events = client.handle_timer(32.0)
    assert events == [
        TransactionTimedOut(key, "INVITE"),
        TransactionTerminated(str(cancel_key), "CANCEL"),
        TransactionTerminated(key, "INVITE"),
    ]
    assert not [d for d, _ in client.messages_to_send() if d.startswith(b"CANCEL")]
    assert len(client) == 0


def test_cancel_after_provisional_gets_200_then_487_acked_by_the_layer() -> None:
    wire = Wire()
    invite = request(branch=new_branch())
    key = wire.call(invite)
    wire.pump()
    wire.answer(180)
    wire.pump()
    cancel_key = wire.client.cancel(key, wire.now)
    wire.pump()
    (cancelled,) = of(wire.server_events, CancelReceived)
    assert cancelled.request.method == "CANCEL"
    wire.answer(487)
    wire.pump()
    assert statuses(wire.client_events, cancel_key) == [200]
    assert statuses(wire.client_events, key) == [100, 180, 487]
    assert wire.lines("->") == [
        INVITE_LINE,
        f"CANCEL sip:agent@{CALLEE} SIP/2.0",
        f"ACK sip:agent@{CALLEE} SIP/2.0",
    ]
    # The ACK reused the INVITE's branch: the server matched it (no AckReceived).
    assert not of(wire.server_events, AckReceived)
    wire.settle()
    assert not of(wire.server_events, TransactionTimedOut)


def test_ack_and_cancel_built_per_rfc() -> None:
    client = TransactionLayer()
    invite = request(branch=new_branch(), cseq=7)
    server = Address("UDP", CALLEE, 5060)
    key = client.send_request(invite, server, 0.0)
    client.receive(make_response(invite, 183, to_tag="early"), server, 0.1)
    client.messages_to_send()
    client.cancel(key, 0.2)
    ((data, _),) = client.messages_to_send()
    cancel = parse_message(data)
    assert isinstance(cancel, Request) and cancel.method == "CANCEL"
    assert str(cancel.uri) == str(invite.uri)
    assert cancel.top_via.branch == invite.top_via.branch and len(cancel.vias) == 1
    assert (cancel.cseq.seq, cancel.cseq.method) == (7, "CANCEL")
    assert cancel.to.tag is None and cancel.from_.tag == "caller-tag"
    assert cancel.headers.get_all("route") == ["<sip:proxy.example.com;lr>"]
    client.receive(make_response(invite, 603, to_tag="nope"), server, 0.3)
    ((data, _),) = client.messages_to_send()
    ack = parse_message(data)
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.top_via.branch == invite.top_via.branch
    assert (ack.cseq.seq, ack.cseq.method) == (7, "ACK")
    assert ack.to.tag == "nope" and ack.call_id == invite.call_id
    assert ack.headers.get_all("route") == ["<sip:proxy.example.com;lr>"]
    # A retransmitted 603 is absorbed by resending the same ACK.
    assert client.receive(make_response(invite, 603, to_tag="nope"), server, 0.4) == []
    assert [d for d, _ in client.messages_to_send()] == [data]
    assert client.cancel(key, 0.5) is None  # final response in: nothing to cancel


def test_cancel_racing_the_200() -> None:
    wire = Wire()
    key = wire.call(request(branch=new_branch()))
    wire.pump()
    wire.answer(180)
    wire.pump()
    wire.answer(200)  # queued on the server, not yet delivered
    cancel_key = wire.client.cancel(key, wire.now)
    assert cancel_key is not None
    wire.pump()
    assert not of(wire.server_events, CancelReceived)
    assert statuses(wire.client_events, cancel_key) == [200]
    assert statuses(wire.client_events, key) == [100, 180, 200]
    assert len(of(wire.server_events, AckReceived)) == 1
    wire.settle()
    assert not of(wire.server_events, TransactionTimedOut)
    assert not of(wire.client_events, TransactionTimedOut)


def test_cancel_for_an_unknown_transaction_gets_481() -> None:
    server = TransactionLayer()
    events = server.receive(request("CANCEL"), Address("UDP", CALLER, 5060), 0.0)
    assert not of(events, CancelReceived) and not of(events, RequestReceived)
    ((data, _),) = server.messages_to_send()
    assert data.startswith(b"SIP/2.0 481 ")
    # A retransmitted CANCEL gets the same answer again.
    server.receive(request("CANCEL"), Address("UDP", CALLER, 5060), 0.5)
    assert server.messages_to_send() == [(data, Address("UDP", CALLER, 5060))]


def test_cancel_after_final_response_gets_200_without_event() -> None:
    server = TransactionLayer()
    source = Address("UDP", CALLER, 5060)
    (event,) = server.receive(request(), source, 0.0)
    assert isinstance(event, RequestReceived)
    server.send_response(event.transaction, make_response(event.request, 486, to_tag="t"), 0.1)
    server.messages_to_send()
    assert server.receive(request("CANCEL"), source, 0.2) == []
    ((data, _),) = server.messages_to_send()
    assert data.startswith(b"SIP/2.0 200 OK")


def test_cancel_guard_gives_up_64_t1_after_cancelling() -> None:
    wire = Wire()
    key = wire.call(request(branch=new_branch()))
    wire.pump()
    wire.answer(180)
    wire.advance(10.0)
    wire.client.cancel(key, 10.0)
    wire.advance(41.9)  # the server TU ignores CancelReceived: no 487
    assert not of(wire.client_events, TransactionTimedOut)
    wire.advance(42.0)
    assert TransactionTimedOut(key, "INVITE") in wire.client_events


def test_cancel_of_final_or_unknown_transaction_is_none() -> None:
    client = TransactionLayer()
    assert client.cancel("nope|INVITE", 0.0) is None
    options = client.send_request(request("OPTIONS"), Address("UDP", CALLEE, 5060), 0.0)
    assert client.cancel(options, 0.0) is None


# -- timeouts -----------------------------------------------------------------------------


@pytest.mark.parametrize("t1", [0.5, 0.25, 1.0])
def test_timer_a_and_b(t1: float) -> None:
    client = TransactionLayer(t1=t1)
    key = client.send_request(request(branch=new_branch()), Address("UDP", CALLEE, 5060), 0.0)
    sent = [0.0]
    client.messages_to_send()
    events: list[Event] = []
    while (deadline := client.next_timer()) is not None:
        events += client.handle_timer(deadline)
        sent += [deadline for _ in client.messages_to_send()]
    # Timer A doubles with no T2 cap; Timer B fires at exactly 64*T1.
    assert sent == [t1 * (2**n - 1) for n in range(7)]
    assert deadline is None
    assert events == [TransactionTimedOut(key, "INVITE"), TransactionTerminated(key, "INVITE")]
    assert client.retransmissions == 6


@pytest.mark.parametrize("t1", [0.5, 0.25])
def test_timer_e_and_f(t1: float) -> None:
    client = TransactionLayer(t1=t1, t2=4.0)
    key = client.send_request(request("OPTIONS"), Address("UDP", CALLEE, 5060), 0.0)
    client.messages_to_send()
    sent: list[float] = []
    last = 0.0
    events: list[Event] = []
    while (deadline := client.next_timer()) is not None:
        events += client.handle_timer(deadline)
        sent += [deadline for _ in client.messages_to_send()]
        last = deadline
    assert last == 64 * t1
    intervals = [b - a for a, b in zip([0.0, *sent], sent, strict=False)]
    expected = [min(t1 * 2**n, 4.0) for n in range(len(intervals))]
    assert intervals == expected
    assert events == [TransactionTimedOut(key, "OPTIONS"), TransactionTerminated(key, "OPTIONS")]


def test_timer_e_runs_at_t2_in_proceeding() -> None:
    client = TransactionLayer()
    server = Address("UDP", CALLEE, 5060)
    options = request("OPTIONS", branch=new_branch())
    client.send_request(options, server, 0.0)
    client.receive(make_response(options, 100), server, 0.1)
    client.messages_to_send()
    sent = []
    while (deadline := client.next_timer()) is not None and deadline < 20:
        client.handle_timer(deadline)
        sent += [deadline for _ in client.messages_to_send()]
    assert sent[:4] == [0.5, 4.5, 8.5, 12.5]


def test_non_2xx_retransmitted_with_timer_g_then_timer_h() -> None:
    wire = Wire(drop=tuple(range(3, 100)))  # INVITE, 100, 486 get through; nothing after
    wire.call(request(branch=new_branch()))
    wire.pump()
    wire.answer(486)
    key = wire.received()[0].transaction
    wire.advance(100.0)
    times = wire.times("<-", "SIP/2.0 486 Busy Here")
    assert times[:6] == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5]
    assert max(times) < 32.0
    assert TransactionTimedOut(key, "INVITE") in wire.server_events
    # An ACK after Timer H finds no transaction and is left to the dialog layer.
    assert wire.invite is not None
    late = wire.server.receive(
        request("ACK", branch=wire.invite.top_via.branch, to_tag="callee-tag"),
        wire.client_addr,
        wire.now,
    )
    assert [type(e) for e in late] == [AckReceived]


def test_non_2xx_retransmissions_stop_at_the_ack() -> None:
    # Lose the ACK for the 486 twice: Timer G resends, the client answers each with the ACK.
    wire = Wire(drop=(3, 5))
    key = wire.call(request(branch=new_branch()))
    wire.pump()
    wire.answer(486)
    wire.advance(40.0)
    assert wire.times("<-", "SIP/2.0 486 Busy Here") == [0.0, 0.5, 1.5]
    assert wire.lines("->").count(f"ACK sip:agent@{CALLEE} SIP/2.0") == 1
    assert statuses(wire.client_events, key) == [100, 486]
    assert not of(wire.server_events, TransactionTimedOut)
    assert not of(wire.server_events, AckReceived)
    wire.settle()


# -- non-INVITE ---------------------------------------------------------------------------


def test_non_invite_retransmission_absorbed_and_last_response_resent() -> None:
    wire = Wire()
    key = wire.call(request("REGISTER", branch=new_branch(), uri="sip:192.0.2.20"))
    wire.pump()
    # No answer yet: Timer E retransmissions are absorbed in Trying.
    wire.advance(2.0)
    assert len(wire.received()) == 1
    assert wire.lines("<-") == []
    wire.answer(100)
    wire.pump()
    wire.advance(4.0)  # retransmission at 3.5 gets the 100 again
    assert wire.lines("<-") == ["SIP/2.0 100 Trying", "SIP/2.0 100 Trying"]
    wire.answer(200)
    wire.drop.add(wire.sent)  # lose the 200
    wire.advance(8.0)
    assert wire.lines("<-")[-1] == "SIP/2.0 200 OK"
    assert statuses(wire.client_events, key) == [100, 100, 200]
    assert len(wire.received()) == 1
    wire.settle()


def test_unanswered_non_invite_is_forgotten_after_64_t1() -> None:
    server = TransactionLayer()
    server.receive(request("OPTIONS"), Address("UDP", CALLER, 5060), 0.0)
    assert server.next_timer() == 32.0
    (event,) = server.handle_timer(32.0)
    assert isinstance(event, TransactionTerminated) and len(server) == 0


@pytest.mark.parametrize("t1", [0.5, 2.0])
def test_timer_j_and_k(t1: float) -> None:
    wire = Wire(t1=t1)
    wire.call(request("BYE", branch=new_branch(), to_tag="callee-tag"))
    wire.pump()
    wire.answer(200)
    wire.pump()
    assert wire.client.next_timer() == 5.0  # K = T4
    assert wire.server.next_timer() == 64 * t1  # J = 64*T1
    wire.settle()


# -- reliable transports ------------------------------------------------------------------


def test_reliable_transport_no_retransmissions_and_zero_d_i_j_k() -> None:
    wire = Wire("TCP")
    key = wire.call(request(branch=new_branch(), transport="TCP"))
    assert wire.client.next_timer() == 32.0  # B only: no Timer A
    wire.pump()
    wire.answer(486)
    wire.pump()
    # D (client) and I (server) are zero: both gone at the next handle_timer.
    assert wire.client.next_timer() == wire.now == wire.server.next_timer()
    wire.advance(wire.now)
    assert len(wire.client) == 0 and len(wire.server) == 0
    assert statuses(wire.client_events, key) == [100, 486]

    wire.call(request("OPTIONS", branch=new_branch(), transport="TCP"))
    wire.pump()
    wire.answer(200, index=-1)
    wire.pump()
    assert wire.client.next_timer() == wire.now == wire.server.next_timer()  # K, J
    wire.advance(wire.now)
    assert len(wire.client) == 0 and len(wire.server) == 0

    # 2xx over a stream: no retransmission, Timer L still bounds the wait.
    wire.auto_ack = False
    wire.call(request(branch=new_branch(), transport="TCP", cseq=2))
    wire.pump()
    wire.answer(200, index=-1)
    wire.advance(100.0)
    assert wire.client.retransmissions == 0 and wire.server.retransmissions == 0
    assert len(of(wire.server_events, TransactionTimedOut)) == 1
    assert len(wire.server) == 0


# -- RFC 2543 -----------------------------------------------------------------------------


@pytest.mark.parametrize("branch", [None, "1234abc"])
def test_rfc2543_invite_matched_without_magic_cookie(branch: str | None) -> None:
    server = TransactionLayer()
    source = Address("UDP", CALLER, 5060)
    invite = request(branch=branch, rport=False)
    events = server.receive(invite, source, 0.0)
    (event,) = of(events, RequestReceived)
    server.messages_to_send()
    # A retransmission (same bytes) is absorbed with the 100 resent.
    assert server.receive(parse_message(invite.serialize()), source, 0.5) == []
    assert server.messages_to_send()[0][0].startswith(b"SIP/2.0 100 ")
    # A different CSeq is another transaction.
    (other,) = of(
        server.receive(request(branch=branch, rport=False, cseq=2), source, 0.6), RequestReceived
    )
    assert isinstance(other, RequestReceived) and other.transaction != event.transaction
    server.send_response(other.transaction, make_response(other.request, 486, to_tag="b"), 0.6)
    server.receive(request("ACK", branch=branch, rport=False, cseq=2, to_tag="b"), source, 0.6)
    # CANCEL finds the INVITE by the same fields.
    cancelled = server.receive(request("CANCEL", branch=branch, rport=False), source, 0.7)
    assert [e.transaction for e in of(cancelled, CancelReceived)] == [event.transaction]
    server.send_response(event.transaction, make_response(invite, 487, to_tag="t487"), 0.8)
    server.messages_to_send()
    # The ACK matches by the To tag of our response; it is absorbed, Timer G
    # stops and only Timer I (T4) of both INVITEs is left before the CANCEL's J.
    ack = request("ACK", branch=branch, rport=False, to_tag="t487")
    assert server.receive(ack, source, 0.9) == []
    assert server.next_timer() == 0.6 + 5.0
    server.handle_timer(0.6 + 5.0)
    assert server.next_timer() == 0.9 + 5.0
    while (deadline := server.next_timer()) is not None:
        server.handle_timer(deadline)
    assert len(server) == 0
    assert not [d for d, _ in server.messages_to_send() if b" 487 " in d]


def test_rfc2543_ack_with_wrong_to_tag_does_not_match() -> None:
    server = TransactionLayer()
    source = Address("UDP", CALLER, 5060)
    (event,) = server.receive(request(branch=None), source, 0.0)
    assert isinstance(event, RequestReceived)
    server.send_response(event.transaction, make_response(event.request, 404, to_tag="a"), 0.0)
    events = server.receive(request("ACK", branch=None, to_tag="b"), source, 0.1)
    assert [type(e) for e in events] == [AckReceived]


def test_rfc2543_accepted_matches_by_the_2xx_tag_without_keeping_parsed_messages() -> None:
    # Accepted lasts Timer L (32 s): it keeps the 2xx's bytes and tag, not the
    # parsed INVITE and 2xx, yet CANCEL and an RFC 2543 ACK still find it.
    server = TransactionLayer()
    source = Address("UDP", CALLER, 5060)
    (event,) = server.receive(request(branch=None, rport=False), source, 0.0)
    assert isinstance(event, RequestReceived)
    server.send_response(event.transaction, make_response(event.request, 200, to_tag="t"), 0.0)
    (txn,) = server._servers.values()
    assert txn.request is None and txn.last_response is None
    cancel = server.receive(request("CANCEL", branch=None, rport=False), source, 0.1)
    assert not of(cancel, CancelReceived)  # too late to cancel, but answered
    sent = [data for data, _ in server.messages_to_send()]
    assert any(d.startswith(b"SIP/2.0 200 ") and b"CANCEL" in d and b"tag=t" in d for d in sent)
    # An ACK with another tag is not ours: the 2xx keeps being retransmitted.
    server.receive(request("ACK", branch=None, rport=False, to_tag="x"), source, 0.2)
    server.handle_timer(0.5)
    assert [d for d, _ in server.messages_to_send() if d.startswith(b"SIP/2.0 200 OK")]
    # Ours stops the retransmissions and reaches the TU.
    events = server.receive(request("ACK", branch=None, rport=False, to_tag="t"), source, 0.6)
    assert [type(e) for e in events] == [AckReceived]
    server.handle_timer(1.5)
    assert not [d for d, _ in server.messages_to_send() if d.startswith(b"SIP/2.0 200 OK")]


# -- response routing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("via", "source", "expected"),
    [
        # RFC 3581: rport filled in by receive() wins, at the received address.
        (
            "SIP/2.0/UDP 10.0.0.5:5060;rport=40000;received=198.51.100.7",
            Address("UDP", "198.51.100.7", 40000),
            Address("UDP", "198.51.100.7", 40000),
        ),
        # rport without a value (not stamped): the source port.
        (
            "SIP/2.0/UDP 10.0.0.5;rport",
            Address("UDP", "198.51.100.7", 40000),
            Address("UDP", "198.51.100.7", 40000),
        ),
        # received alone: that address, at the sent-by port.
        (
            "SIP/2.0/UDP 10.0.0.5:5070;received=198.51.100.7",
            Address("UDP", "198.51.100.7", 40000),
            Address("UDP", "198.51.100.7", 5070),
        ),
        # received alone, no port in sent-by: 5060.
        (
            "SIP/2.0/UDP pc.example.com;received=198.51.100.7",
            Address("UDP", "198.51.100.7", 40000),
            Address("UDP", "198.51.100.7", 5060),
        ),
        # Neither: sent-by as is.
        (
            "SIP/2.0/UDP 198.51.100.7:5062",
            Address("UDP", "198.51.100.7", 5062),
            Address("UDP", "198.51.100.7", 5062),
        ),
        # Streams: back on the connection, whatever the Via says.
        (
            "SIP/2.0/TCP 10.0.0.5:5060;rport=1;received=192.0.2.1",
            Address("TCP", "198.51.100.7", 49152),
            Address("TCP", "198.51.100.7", 49152),
        ),
        (
            "SIP/2.0/TLS client.example.com",
            Address("TLS", "2001:db8::7", 49152),
            Address("TLS", "2001:db8::7", 49152),
        ),
        # IPv6, bracketed received (RFC 5118) and rport.
        (
            "SIP/2.0/UDP [2001:db8::5]:5060;rport=40000;received=[2001:db8::7]",
            Address("UDP", "2001:db8::7", 40000),
            Address("UDP", "2001:db8::7", 40000),
        ),
        (
            "SIP/2.0/UDP [2001:db8::5]:5062",
            Address("UDP", "2001:db8::5", 5062),
            Address("UDP", "2001:db8::5", 5062),
        ),
        # A nonsense rport value falls back to the source port.
        (
            "SIP/2.0/UDP 10.0.0.5;rport=99999;received=198.51.100.7",
            Address("UDP", "198.51.100.7", 40000),
            Address("UDP", "198.51.100.7", 40000),
        ),
    ],
)
def test_response_destination(via: str, source: Address, expected: Address) -> None:
    assert response_destination(Via.parse(via), source) == expected


def test_stamp_via_received_and_rport() -> None:
    nat = Address("UDP", "198.51.100.7", 40000)
    invite = request(via_host="10.0.0.5", rport=True)
    via = stamp_via(invite, nat)
    assert via.params["rport"] == "40000" and via.params["received"] == "198.51.100.7"
    # The header text is rewritten too, so responses copy the stamped Via.
    response = make_response(invite, 100)
    assert response.top_via.params["received"] == "198.51.100.7"
    assert response_destination(response.top_via, nat) == nat


def test_stamp_via_only_when_needed() -> None:
    same = request(rport=False)
    before = same.serialize()
    stamp_via(same, Address("UDP", CALLER, 5060))
    assert same.serialize() == before
    named = request(via_host="pc.example.com", rport=False)
    assert stamp_via(named, Address("UDP", CALLER, 5060)).params["received"] == CALLER
    # RFC 3581: with rport, received is added even when sent-by is the source IP.
    mine = request(rport=True)
    assert stamp_via(mine, Address("UDP", CALLER, 5061)).params == {
        "rport": "5061",
        "branch": "z9hG4bK-default",
        "received": CALLER,
    }


def test_stamp_via_ipv6_round_trips_through_the_parser() -> None:
    invite = request(via_host="[2001:db8::5]", rport=True)
    stamp_via(invite, Address("UDP", "2001:db8::7", 40000))
    reparsed = parse_message(make_response(invite, 180, to_tag="x").serialize())
    assert reparsed.top_via.params["received"] == "[2001:db8::7]"
    destination = response_destination(reparsed.top_via, Address("UDP", "2001:db8::7", 40000))
    assert destination == Address("UDP", "2001:db8::7", 40000)


def test_responses_follow_the_stamped_via() -> None:
    server = TransactionLayer()
    nat = Address("UDP", "198.51.100.7", 40000)
    (event,) = server.receive(request(via_host="10.0.0.5", rport=True), nat, 0.0)
    assert isinstance(event, RequestReceived)
    ((_, destination),) = server.messages_to_send()
    assert destination == nat
    server.send_response(event.transaction, make_response(event.request, 200, to_tag="t"), 0.1)
    assert server.messages_to_send()[0][1] == nat


# -- lossy path ---------------------------------------------------------------------------


@pytest.mark.parametrize("lost", range(8))
def test_invite_completes_despite_a_lost_message(lost: int) -> None:
    wire = Wire(drop=(lost,))
    key = wire.call(request(branch=new_branch()))
    wire.advance(0.6)  # past Timer A, in case the INVITE itself was lost
    wire.answer(180)
    wire.advance(1.0)
    wire.answer(200)
    wire.advance(60.0)
    assert 200 in statuses(wire.client_events, key)
    assert of(wire.server_events, AckReceived)
    assert not of(wire.server_events, TransactionTimedOut)
    assert not of(wire.client_events, TransactionTimedOut)
    assert len(wire.received()) == 1
    wire.settle()


@pytest.mark.parametrize("lost", range(4))
def test_non_invite_completes_despite_a_lost_message(lost: int) -> None:
    wire = Wire(drop=(lost,))
    key = wire.call(request("OPTIONS", branch=new_branch()))
    wire.advance(0.6)
    wire.answer(200)
    wire.advance(10.0)
    assert statuses(wire.client_events, key) == [200]
    wire.settle()


# -- edges --------------------------------------------------------------------------------


def test_send_request_adds_a_branch_and_refuses_misuse() -> None:
    client = TransactionLayer()
    server = Address("UDP", CALLEE, 5060)
    no_branch = request("OPTIONS", branch=None)
    key = client.send_request(no_branch, server, 0.0)
    branch = key.split("|")[0]
    assert branch.startswith("z9hG4bK") and len(branch) >= 7 + 16
    ((data, _),) = client.messages_to_send()
    assert f";branch={branch}".encode() in data
    old = request("OPTIONS", branch="123")
    assert client.send_request(old, server, 0.0).split("|")[0] != "123"
    with pytest.raises(ValueError):
        client.send_request(request("ACK"), server, 0.0)
    same = request("OPTIONS", branch=branch)
    with pytest.raises(ValueError):
        client.send_request(same, server, 0.0)


def test_stray_responses_are_counted_and_dropped() -> None:
    client = TransactionLayer()
    source = Address("UDP", CALLEE, 5060)
    invite = request(branch=new_branch())
    assert client.receive(make_response(invite, 200, to_tag="x"), source, 0.0) == []
    no_branch = make_response(request(branch=None), 200, to_tag="x")
    assert client.receive(no_branch, source, 0.0) == []
    assert client.stray_responses == 2
    # The right branch but another method is not a match either (17.1.3).
    client.send_request(invite, source, 0.0)
    assert (
        client.receive(make_response(request("BYE", branch="z9hG4bK-default"), 200), source, 0)
        == []
    )


def test_second_final_response_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    server = TransactionLayer()
    (event,) = server.receive(request("OPTIONS"), Address("UDP", CALLER, 5060), 0.0)
    assert isinstance(event, RequestReceived)
    server.send_response(event.transaction, make_response(event.request, 200, to_tag="t"), 0.0)
    with caplog.at_level(logging.WARNING, logger="sip.transaction"):
        server.send_response(event.transaction, make_response(event.request, 500), 0.1)
        server.send_response("no-such-key", make_response(event.request, 500), 0.1)
    assert len(caplog.records) == 2
    assert len(server.messages_to_send()) == 1


def test_transport_error_fails_transactions_to_that_destination() -> None:
    client = TransactionLayer()
    down = Address("TCP", CALLEE, 5060)
    up = Address("TCP", "192.0.2.30", 5060)
    invite = client.send_request(request(branch=new_branch(), transport="TCP"), down, 0.0)
    ping = request("OPTIONS", branch=new_branch(), transport="TCP")
    options = client.send_request(ping, up, 0.0)
    events = client.transport_error(down, 1.0)
    assert events == [TransportFailed(invite, "INVITE"), TransactionTerminated(invite, "INVITE")]
    assert len(client) == 1 and client.transport_error(down, 1.0) == []
    # The transaction to the other peer is untouched.
    (answer,) = client.receive(make_response(ping, 200, to_tag="t"), up, 1.1)
    assert isinstance(answer, ResponseReceived) and answer.transaction == options

    server = TransactionLayer()
    conn = Address("TCP", CALLER, 50000)
    (event,) = server.receive(request(transport="TCP"), conn, 0.0)
    assert isinstance(event, RequestReceived)
    failed = server.transport_error(conn, 0.5)
    assert failed == [
        TransportFailed(event.transaction, "INVITE"),
        TransactionTerminated(event.transaction, "INVITE"),
    ]


def test_receive_never_raises_on_hand_built_messages() -> None:
    layer = TransactionLayer()
    source = Address("UDP", CALLER, 5060)
    broken = request()
    broken.headers.remove("from")
    broken.invalidate()
    assert layer.receive(broken, source, 0.0) == []
    response = Response(200)
    assert layer.receive(response, source, 0.0) == []


def test_new_tag_and_branch_are_random_tokens() -> None:
    branches = {new_branch() for _ in range(100)}
    assert len(branches) == 100
    assert all(b.startswith("z9hG4bK") and len(b) >= 23 for b in branches)
    tags = {new_tag() for _ in range(100)}
    assert len(tags) == 100
    assert all(t.replace("-", "").replace("_", "").isalnum() for t in tags)


def test_timers_validated() -> None:
    with pytest.raises(ValueError):
        TransactionLayer(t1=5.0, t2=4.0)
    with pytest.raises(ValueError):
        TransactionLayer(t1=0.0)


def test_tu_response_with_broken_to_still_ends_the_transaction() -> None:
    server = TransactionLayer()
    source = Address("UDP", CALLER, 5060)
    (event,) = server.receive(request(), source, 0.0)
    assert isinstance(event, RequestReceived)
    ok = make_response(event.request, 200, to_tag="t")
    ok.headers.set("to", "<no-closing-bracket")
    ok.invalidate()
    server.send_response(event.transaction, ok, 0.0)
    # The CANCEL path reads the To tag of the last response too.
    server.receive(request("CANCEL"), source, 0.1)
    while (deadline := server.next_timer()) is not None:
        server.handle_timer(deadline)
    assert len(server) == 0
