"""A finished call is freed by reference counting, not left for the cycle collector.

At hundreds of calls a second, whatever a call leaves in reference cycles
piles up until a collection, and those collections set the tail of the
call set-up time (docs/performance.md, "Call setup"). So with automatic
collection off, calls are answered, ACKed and hung up by the caller, and
every ``Call`` and leg must already be gone when its script has ended.

``CallControl`` is driven directly with a fake endpoint that keeps the
responses it is asked to send (as tests/test_call_shutdown.py does): what is
under test is what the call objects keep of each other, and a real endpoint
would add sockets but no reference to a call. The RTP legs are real, on
loopback ports.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from acd.calls import CallControl
from acd.calls._call import Call
from acd.calls._media import MediaEngine
from acd.config import Config
from acd.sipapp import ALLOW
from sip import Address, RequestReceived, Response, SipUri, Via
from sip.endpoint import EndpointPolicy
from sip.message import parse_message

CALLS = 20
SOURCE = Address("UDP", "127.0.0.1", 5070)

OFFER = (
    b"v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
)


def request(method: str, n: int, cseq: int, *, to_tag: str = "", body: bytes = b"") -> bytes:
    to = f"<sip:100@127.0.0.1>{f';tag={to_tag}' if to_tag else ''}"
    lines = [
        f"{method} sip:100@127.0.0.1:5060 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-cycles-{n}-{method}",
        "Max-Forwards: 70",
        f"From: <sip:+3225550100@127.0.0.1>;tag=caller-{n}",
        f"To: {to}",
        f"Call-ID: cycles-{n}@127.0.0.1",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:caller@127.0.0.1:5070>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class FakeEndpoint:
    """Keeps what call control sends; answers what legs ask of an endpoint."""

    policy = EndpointPolicy()

    def __init__(self) -> None:
        self.sent: list[tuple[str, Response]] = []

    def send_response(self, transaction: str, response: Response) -> None:
        self.sent.append((transaction, response))

    def via_for(self, destination: Address) -> Via:
        return Via("UDP", "127.0.0.1", 5060, {"branch": "z9hG4bK-engine"})

    def contact_uri(
        self, transport: str = "UDP", user: str | None = None, *, toward: str | None = None
    ) -> SipUri:
        return SipUri(host="127.0.0.1", port=5060)


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def test_a_call_answered_and_hung_up_by_the_caller_is_freed_without_a_collection(
    tmp_path: Path, no_automatic_gc: None
) -> None:
    endpoint = FakeEndpoint()
    media = MediaEngine("127.0.0.1", (42000, 42999), prompts_dir=None, cache_dir=tmp_path)
    control = CallControl(endpoint, Config(), media, allow=ALLOW)  # type: ignore[arg-type]
    answered: dict[str, asyncio.Event] = {}

    async def script(call: Call) -> None:
        assert await call.caller_leg.answer()
        answered[call.caller_leg.call_id].set()
        await call.caller_leg.ended

    control.handler = script
    calls: list[weakref.ref[Call]] = []
    legs: list[weakref.ref[object]] = []
    try:
        for n in range(CALLS):
            invite = parse_message(request("INVITE", n, 1, body=OFFER))
            answered[invite.call_id] = asyncio.Event()
            call = control.new_call(
                RequestReceived(invite, f"txn-{n}", SOURCE),  # type: ignore[arg-type]
                user=None,
                trunk=None,
            )
            assert call is not None
            to_tag = call.caller_leg.to_tag
            calls.append(weakref.ref(call))
            legs.append(weakref.ref(call.caller_leg))
            del call
            await asyncio.wait_for(answered[invite.call_id].wait(), timeout=10)
            control.ack(parse_message(request("ACK", n, 1, to_tag=to_tag)))  # type: ignore[arg-type]
            bye = parse_message(request("BYE", n, 2, to_tag=to_tag))
            control.in_dialog(RequestReceived(bye, f"bye-{n}", SOURCE))  # type: ignore[arg-type]
        deadline = asyncio.get_running_loop().time() + 10
        while control.calls and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)  # polling the engine's own state, with a deadline
        assert not control.calls, "the call scripts did not end"
        await asyncio.sleep(0)  # the tasks' done callbacks
        byes_answered = [r.status for t, r in endpoint.sent if t.startswith("bye-")]
        assert byes_answered == [200] * CALLS
        alive_calls = [ref() for ref in calls if ref() is not None]
        alive_legs = [ref() for ref in legs if ref() is not None]
        assert alive_calls == [] and alive_legs == [], (
            f"{len(alive_calls)} calls and {len(alive_legs)} legs wait for the cycle collector"
        )
        assert gc.collect() < 50 * CALLS // 10  # a few stray objects at most, not ~100 a call
    finally:
        await control.stop()
        media.close()
