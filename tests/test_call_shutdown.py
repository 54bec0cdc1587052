"""A new call while the engine stops is refused with 503 and Retry-After, never left in silence.

``CallControl`` is driven directly with a fake endpoint that keeps the
responses it is asked to send: the behaviour under test is the decision in
``new_call`` (which response, which header, no call made, no CDR note),
and a real endpoint would need sockets only to carry that response.
tests/test_kill_restart.py shows the same thing with SIPp during a SIGTERM
under load.
"""

from __future__ import annotations

from typing import Any

from acd.calls import CallControl
from acd.calls._control import SHUTDOWN_RETRY_AFTER
from acd.config import Config
from acd.sipapp import ALLOW
from sip import Address, RequestReceived, Response
from sip.message import parse_message

INVITE = (
    b"INVITE sip:100@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-shutdown-1\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:+3225550100@127.0.0.1>;tag=caller-1\r\n"
    b"To: <sip:100@127.0.0.1>\r\n"
    b"Call-ID: shutdown-1@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:caller@127.0.0.1:5070>\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)


class FakeEndpoint:
    """Keeps what call control answers, per server transaction (no sockets needed)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Response]] = []

    def send_response(self, transaction: str, response: Response) -> None:
        self.sent.append((transaction, response))


class NoteSpy:
    """Stands in for CallRecords: a refused call must not be noted as in progress."""

    def __init__(self) -> None:
        self.started: list[Any] = []

    def call_started(self, call: Any) -> None:
        self.started.append(call)


def invite_event(transaction: str = "txn-1") -> RequestReceived:
    request = parse_message(INVITE)
    return RequestReceived(request, transaction, Address("UDP", "127.0.0.1", 5070))  # type: ignore[arg-type]


def control(config: Config | None = None) -> tuple[CallControl, FakeEndpoint, NoteSpy]:
    endpoint = FakeEndpoint()
    calls = CallControl(
        endpoint,  # type: ignore[arg-type]
        config or Config(),
        None,  # type: ignore[arg-type]  # no media: a refused call never gets any
        allow=ALLOW,
    )
    notes = NoteSpy()
    calls.records = notes  # type: ignore[assignment]
    return calls, endpoint, notes


async def test_a_call_arriving_once_stopping_has_begun_gets_503_with_retry_after() -> None:
    calls, endpoint, notes = control()
    assert not calls.stopping
    await calls.stop()
    assert calls.stopping

    assert calls.new_call(invite_event("txn-7"), user=None, trunk=None) is None

    ((transaction, response),) = endpoint.sent
    assert transaction == "txn-7"
    assert response.status == 503
    assert response.headers.get("Retry-After") == str(SHUTDOWN_RETRY_AFTER)
    assert response.headers.get("Call-ID") == "shutdown-1@127.0.0.1"
    assert calls.calls == {}
    assert calls.calls_refused == 1
    assert calls.calls_started == 0
    assert notes.started == []
    assert calls._tasks == set() and calls._inbound == {}


async def test_stop_is_idempotent_and_keeps_refusing() -> None:
    calls, endpoint, _ = control()
    await calls.stop()
    await calls.stop()
    for n in range(3):
        calls.new_call(invite_event(f"txn-{n}"), user=None, trunk=None)
    assert [r.status for _, r in endpoint.sent] == [503, 503, 503]
    assert calls.calls_refused == 3


async def test_overload_keeps_its_shorter_retry_after() -> None:
    config = Config.model_validate({"calls": {"max_calls": 1}})
    calls, endpoint, notes = control(config)
    calls.calls["busy"] = object()  # type: ignore[assignment]  # one call already up
    assert calls.new_call(invite_event(), user=None, trunk=None) is None
    ((_, response),) = endpoint.sent
    assert response.status == 503
    assert response.headers.get("Retry-After") == str(config.calls.retry_after)
    assert notes.started == []
