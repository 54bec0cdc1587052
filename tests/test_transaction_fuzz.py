"""Fuzz the transaction layer with random traffic, TU actions and clock jumps.

A client and a server :class:`TransactionLayer` are wired together through a
lossy, duplicating wire; on top of that, requests from a small pool of
branches, methods, CSeqs, tags and transports are injected into the server,
and responses of random status (some with the wrong branch or method) into
the client. The checks: nothing ever raises, every transaction key handed
out ends with exactly one TransactionTerminated, and once the TUs have
answered or cancelled what they hold and the clock runs far enough, both
layers are empty.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sip.events import (
    Address,
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
)
from sip.message import Request, Response, make_response, parse_message
from sip.transaction import TransactionLayer, new_branch

CLIENT_UDP = Address("UDP", "192.0.2.10", 5060)
CLIENT_TCP = Address("TCP", "192.0.2.10", 50123)
SERVER_UDP = Address("UDP", "192.0.2.20", 5060)
SERVER_TCP = Address("TCP", "192.0.2.20", 5060)

METHODS = ["INVITE", "ACK", "CANCEL", "INVITE", "ACK", "BYE", "OPTIONS", "REGISTER", "INFO"]
BRANCHES = ["z9hG4bKaaa", "z9hG4bKbbb", "z9hG4bK", None, "1234"]
TAGS = [None, "t1", "callee"]
# Repeats make the interesting answers (ringing, 2xx) common.
STATUSES = [180, 200, 100, 180, 200, 183, 202, 302, 404, 481, 486, 487, 500, 603, 699]
STEPS = [0.0, 0.01, 0.5, 1.0, 4.0, 5.0, 16.0, 31.9, 32.0, 33.0, 64.0]


def build_request(
    method: str,
    branch: str | None,
    cseq: int,
    call: int,
    from_tag: str | None,
    to_tag: str | None,
    transport: str,
    rport: bool,
) -> Request:
    via = f"SIP/2.0/{transport} 192.0.2.10:5060"
    via += ";rport" if rport else ""
    via += f";branch={branch}" if branch is not None else ""
    text = (
        f"{method} sip:agent@192.0.2.20 SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:caller@192.0.2.10>{f';tag={from_tag}' if from_tag else ''}\r\n"
        f"To: <sip:agent@192.0.2.20>{f';tag={to_tag}' if to_tag else ''}\r\n"
        f"Call-ID: call-{call}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


class TransactionFuzz(RuleBasedStateMachine):
    """Random operations on a client/server pair of transaction layers."""

    def __init__(self) -> None:
        super().__init__()
        self.client = TransactionLayer(t1=0.5, t2=4.0, t4=5.0)
        self.server = TransactionLayer(t1=0.5, t2=4.0, t4=5.0)
        self.now = 0.0
        self.client_events: list[Event] = []
        self.server_events: list[Event] = []
        # Client keys handed out (send_request, cancel) and what was sent.
        self.client_keys: Counter[str] = Counter()
        self.sent: list[Request] = []
        self.delivered: list[tuple[bytes, bool]] = []  # (data, to the server?)

    # -- helpers -----------------------------------------------------------------------

    def _to_server(self, message: Request | Response, source: Address) -> None:
        self.server_events += self.server.receive(message, source, self.now)

    def _to_client(self, message: Request | Response, source: Address) -> None:
        events = self.client.receive(message, source, self.now)
        self.client_events += events
        for event in events:
            # The client TU ACKs every 2xx to INVITE, retransmissions included (RFC 6026).
            response = event.response if isinstance(event, ResponseReceived) else None
            if response is not None and response.is_success and response.cseq.method == "INVITE":
                ack = build_request("ACK", new_branch(), 1, 3, "f9", response.to.tag, "UDP", True)
                self.client.send_stateless(ack, SERVER_UDP)

    def _deliver(self, data: bytes, to_server: bool) -> None:
        message = parse_message(data)
        self.delivered.append((data, to_server))
        if to_server:
            self._to_server(message, CLIENT_UDP)
        else:
            self._to_client(message, SERVER_UDP)

    # -- traffic -----------------------------------------------------------------------

    @rule(
        method=st.sampled_from(METHODS),
        branch=st.sampled_from(BRANCHES),
        cseq=st.integers(1, 3),
        call=st.integers(1, 2),
        from_tag=st.sampled_from(["f1", None]),
        to_tag=st.sampled_from(TAGS),
        reliable=st.booleans(),
        rport=st.booleans(),
    )
    def inject_request(
        self,
        method: str,
        branch: str | None,
        cseq: int,
        call: int,
        from_tag: str | None,
        to_tag: str | None,
        reliable: bool,
        rport: bool,
    ) -> None:
        transport = "TCP" if reliable else "UDP"
        request = build_request(method, branch, cseq, call, from_tag, to_tag, transport, rport)
        self._to_server(request, CLIENT_TCP if reliable else CLIENT_UDP)

    @rule(
        index=st.integers(0, 50),
        status=st.sampled_from(STATUSES),
        tag=st.sampled_from(TAGS),
        wrong_branch=st.sampled_from([False, False, False, True]),
        wrong_method=st.sampled_from([False, False, False, True]),
        invite_only=st.booleans(),
    )
    def inject_response(
        self,
        index: int,
        status: int,
        tag: str | None,
        wrong_branch: bool,
        wrong_method: bool,
        invite_only: bool,
    ) -> None:
        sent = [r for r in self.sent if r.method == "INVITE"] if invite_only else self.sent
        if not sent:
            return
        request = sent[-1 - index % len(sent)]
        response = make_response(request, status, to_tag=tag)
        if wrong_branch:
            response.headers.set("via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKother")
        if wrong_method:
            response.headers.set("cseq", f"{request.cseq.seq} OPTIONS")
        self._to_client(parse_message(response.serialize()), SERVER_UDP)

    @rule(index=st.integers(0, 50))
    def replay(self, index: int) -> None:
        """Deliver an old message again: a retransmission or a duplicate."""
        if self.delivered:
            data, to_server = self.delivered[index % len(self.delivered)]
            self._deliver(data, to_server)

    @rule(
        drops=st.lists(st.sampled_from([False, False, False, True]), max_size=8),
        duplicate=st.sampled_from([False, False, True]),
    )
    def pump(self, drops: list[bool], duplicate: bool) -> None:
        """Move what both layers queued, losing some and doubling others."""
        for n, (data, destination) in enumerate(
            self.client.messages_to_send() + self.server.messages_to_send()
        ):
            if n < len(drops) and drops[n]:
                continue
            to_server = destination.host == SERVER_UDP.host
            for _ in range(2 if duplicate else 1):
                self._deliver(data, to_server)

    # -- the TUs -----------------------------------------------------------------------

    @rule(
        method=st.sampled_from(["INVITE", "INVITE", "OPTIONS", "BYE", "REGISTER"]),
        reliable=st.booleans(),
        has_branch=st.booleans(),
    )
    def send_request(self, method: str, reliable: bool, has_branch: bool) -> None:
        transport = "TCP" if reliable else "UDP"
        branch = new_branch() if has_branch else None
        request = build_request(method, branch, 1, 3, "f9", None, transport, True)
        destination = SERVER_TCP if reliable else SERVER_UDP
        key = self.client.send_request(request, destination, self.now)
        self.client_keys[key] += 1
        self.sent.append(request)

    @rule(index=st.integers(0, 50))
    def cancel(self, index: int) -> None:
        if not self.sent:
            return
        request = self.sent[-1 - index % len(self.sent)]
        key = f"{request.top_via.branch}|{request.method}"
        cancel_key = self.client.cancel(key, self.now)
        if cancel_key is not None and cancel_key not in self.client_keys:
            self.client_keys[cancel_key] += 1

    @rule(
        index=st.integers(0, 50),
        status=st.sampled_from(STATUSES),
        tag=st.sampled_from(TAGS),
        invite_only=st.booleans(),
    )
    def answer(self, index: int, status: int, tag: str | None, invite_only: bool) -> None:
        received = [
            e
            for e in self.server_events
            if isinstance(e, RequestReceived) and (not invite_only or e.request.method == "INVITE")
        ]
        if received:
            # Counting from the newest: recent requests are the likely live ones.
            event = received[-1 - index % len(received)]
            response = make_response(event.request, status, to_tag=tag)
            self.server.send_response(event.transaction, response, self.now)

    @rule(to_server=st.booleans(), reliable=st.booleans())
    def transport_error(self, to_server: bool, reliable: bool) -> None:
        if to_server:
            destination = SERVER_TCP if reliable else SERVER_UDP
            self.client_events += self.client.transport_error(destination, self.now)
        else:
            destination = CLIENT_TCP if reliable else CLIENT_UDP
            self.server_events += self.server.transport_error(destination, self.now)

    @rule(step=st.sampled_from(STEPS))
    def advance(self, step: float) -> None:
        self.now += step
        self.client_events += self.client.handle_timer(self.now)
        self.server_events += self.server.handle_timer(self.now)

    # -- checks ------------------------------------------------------------------------

    @invariant()
    def timers_never_in_the_past(self) -> None:
        # handle_timer() fired everything due; whatever was armed since is due now or later.
        for layer in (self.client, self.server):
            deadline = layer.next_timer()
            assert deadline is None or deadline >= self.now

    @invariant()
    def responses_only_for_our_transactions(self) -> None:
        for event in self.client_events:
            if isinstance(event, ResponseReceived):
                assert event.transaction in self.client_keys

    def teardown(self) -> None:
        # The TUs finish their business: answer what is unanswered, cancel
        # what rings; then let every timer run out.
        for event in self.server_events:
            if isinstance(event, RequestReceived):
                final = make_response(event.request, 500, to_tag="end")
                self.server.send_response(event.transaction, final, self.now)
        for key in list(self.client_keys):
            self.client.cancel(key, self.now)
        for _ in range(10_000):
            pending = (self.client.next_timer(), self.server.next_timer())
            deadlines = [t for t in pending if t is not None]
            if not deadlines:
                break
            self.now = max(self.now, min(deadlines))
            self.client_events += self.client.handle_timer(self.now)
            self.server_events += self.server.handle_timer(self.now)
            # Keep the wire empty: replies to late traffic must not revive anything.
            self.client.messages_to_send()
            self.server.messages_to_send()
        assert len(self.client) == 0 and len(self.server) == 0
        assert self.client.next_timer() is None and self.server.next_timer() is None

        terminated = Counter(
            e.transaction
            for e in self.client_events + self.server_events
            if isinstance(e, TransactionTerminated)
        )
        for key in self.client_keys:
            assert terminated[key] == 1, key
        created = Counter(
            e.transaction for e in self.server_events if isinstance(e, RequestReceived)
        )
        for key, count in created.items():
            assert terminated[key] == count, key


TransactionFuzz.TestCase.settings = settings(
    max_examples=400,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_transaction_fuzz = TransactionFuzz.TestCase
