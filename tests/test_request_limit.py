"""A flood from one address is dropped before parsing; trunks and registered phones are not.

In process, the endpoint shows what a blocked request costs (no parse, no
transaction, no answer) and that responses are never counted. Over real
sockets, an ``acd serve`` with a trunk on 127.0.0.1 takes a burst of OPTIONS
from 127.0.0.2 and answers at most the threshold, while the trunk and a phone
registered from 127.0.0.3 are answered throughout. Loopback only, bounded in
count; waits are socket timeouts or polls with a deadline. The engine's
socket queue is first in, first out, so once it answers a probe sent after
the burst, it has read every datagram of the burst that reached it.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from acd.config import load_config
from acd.server import Engine
from sip import Response, parse_message
from sip.endpoint import EndpointPolicy, SipEndpoint
from sip.events import Address, Event, RequestReceived
from sip.ratelimit import RequestLimiter

from .conftest import RunningEngine, write_config
from .test_registrar import register
from .test_registrar_wire import Phone
from .test_server import request

FLOOD_HOST = "127.0.0.2"
PHONE_HOST = "127.0.0.3"
THRESHOLD = 100


# -- the endpoint, in process ------------------------------------------------------------


class _Seen:
    def __init__(self) -> None:
        self.messages = 0

    def incoming(self, message: object) -> None:
        self.messages += 1

    def outgoing(self, data: bytes) -> None:
        pass


async def test_blocked_requests_cost_no_parse_no_transaction_no_answer() -> None:
    events: list[Event] = []
    observer = _Seen()
    limiter = RequestLimiter(threshold=3, window=10.0, block_time=60.0)
    endpoint = SipEndpoint(EndpointPolicy(), events.append, observer, limiter)
    sent: list[bytes] = []
    endpoint.transports.send = lambda data, destination: sent.append(data)  # type: ignore[method-assign]
    source = Address("UDP", "192.0.2.9", 5060)
    for _ in range(5):
        endpoint.message_received(request("OPTIONS", host="192.0.2.9", port=5060)[0], source)
    assert [type(e) for e in events] == [RequestReceived] * 3
    assert observer.messages == 3
    assert len(endpoint.transactions) == 3
    # Garbage from the blocked source is not even looked at, let alone answered.
    endpoint.message_received(b"NOT SIP AT ALL\r\n\r\n", source)
    assert endpoint.malformed == 0
    assert sent == []
    # Keep-alives are not requests, and responses are never counted nor dropped.
    endpoint.message_received(b"\r\n\r\n", source)
    response = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKnone\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: stray\r\n"
        b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    endpoint.message_received(response, source)
    assert observer.messages == 4
    assert (limiter.dropped, limiter.blocks) == (3, 1)
    await endpoint.close()


def test_the_engine_exempts_trunks_and_registered_phones(tmp_path: Path) -> None:
    config = load_config(
        write_config(tmp_path / "a.yaml", extra="trunks:\n  - {name: c, addresses: [10.0.0.0/8]}"),
        env={"ACD_DATA_DIR": str(tmp_path / "d")},
    )
    engine = Engine(config)
    limiter = engine.request_limiter
    assert limiter is not None and limiter.exempt is not None
    assert (limiter.threshold, limiter.window, limiter.block_time) == (200, 2.0, 60.0)
    assert limiter.exempt("10.20.30.40")
    assert not limiter.exempt("192.0.2.5")
    source = Address("UDP", "192.0.2.5", 5060)
    engine.location.register(register("<sip:1001@192.0.2.5>"), "1001", source, 0.0)
    assert limiter.exempt("192.0.2.5")
    assert not limiter.exempt("::1")


# -- the engine, over loopback -----------------------------------------------------------


def metric(engine: RunningEngine, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", engine.http_text("/metrics"), re.MULTILINE)
    assert match, f"{name} is not exported"
    return float(match.group(1))


def udp_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # Room for every answer the flood could get, so none is lost uncounted.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((host, 0))
    return sock


def ask_all(sock: socket.socket, engine: RunningEngine, count: int, host: str) -> int:
    """Send ``count`` OPTIONS in batches and retransmit until each is answered 200."""
    port = sock.getsockname()[1]
    answered = 0
    deadline = time.monotonic() + 30.0
    for start in range(0, count, 50):
        size = min(50, count - start)
        batch = {cid: data for data, cid in (request(host=host, port=port) for _ in range(size))}
        for data in batch.values():
            sock.sendto(data, ("127.0.0.1", engine.sip_port))
        while batch:
            assert time.monotonic() < deadline, f"{len(batch)} OPTIONS from {host} unanswered"
            sock.settimeout(1.0)
            try:
                raw, _ = sock.recvfrom(65535)
            except TimeoutError:
                # Timer E: UDP loses datagrams, so an unanswered request is resent.
                for data in batch.values():
                    sock.sendto(data, ("127.0.0.1", engine.sip_port))
                continue
            message = parse_message(raw)
            if isinstance(message, Response) and message.call_id in batch:
                assert message.status == 200
                del batch[message.call_id]
                answered += 1
    return answered


def drain(sock: socket.socket) -> list[Response]:
    """Every answer already waiting on ``sock``, without waiting for more."""
    sock.setblocking(False)
    out: list[Response] = []
    try:
        while True:
            message = parse_message(sock.recvfrom(65535)[0])
            assert isinstance(message, Response)
            out.append(message)
    except BlockingIOError:
        return out
    finally:
        sock.setblocking(True)


@pytest.fixture
def flooded(tmp_path: Path, engine_factory: object) -> RunningEngine:
    config = write_config(
        tmp_path / "flood.yaml",
        # A long window, so a slow shared machine cannot spread the burst over several.
        security=f"request_limit: {{requests: {THRESHOLD}, window: 10, block_time: 60}}",
        extra="trunks:\n  - {name: carrier, addresses: [127.0.0.1/32]}",
    )
    return engine_factory(config)  # type: ignore[operator, no-any-return]


def test_a_flood_is_blocked_while_the_trunk_and_phones_are_answered(
    flooded: RunningEngine,
) -> None:
    engine = flooded
    phone = Phone(engine, "1001")
    phone.sock.close()
    phone.sock = udp_socket(PHONE_HOST)
    phone.sock.settimeout(5.0)
    phone.port = phone.sock.getsockname()[1]
    flood = udp_socket(FLOOD_HOST)
    trunk = udp_socket("127.0.0.1")
    try:
        assert phone.register(300).status == 200
        assert metric(engine, "sip_requests_throttled_total") == 0
        flood_port = flood.getsockname()[1]
        burst = [request("OPTIONS", host=FLOOD_HOST, port=flood_port)[0] for _ in range(2000)]
        target = ("127.0.0.1", engine.sip_port)
        for data in burst[:1000]:
            flood.sendto(data, target)
        # The trunk mid-flood, and again after it: once that is answered, the
        # engine has read all of the burst that reached its socket.
        assert ask_all(trunk, engine, 1, "127.0.0.1") == 1
        for data in burst[1000:]:
            flood.sendto(data, target)
        assert ask_all(trunk, engine, 1, "127.0.0.1") == 1

        answers = drain(flood)
        assert 1 <= len(answers) <= THRESHOLD
        assert all(a.status == 200 for a in answers)
        throttled = metric(engine, "sip_requests_throttled_total")
        assert throttled >= 1
        assert len(answers) + throttled <= len(burst)
        assert metric(engine, "sip_sources_blocked") == 1
        assert metric(engine, "sip_source_blocks_total") == 1

        # Each further request of the blocked source is counted and unanswered.
        for data in burst[:100]:
            flood.sendto(data, target)
        assert ask_all(trunk, engine, 1, "127.0.0.1") == 1
        assert metric(engine, "sip_requests_throttled_total") == throttled + 100
        assert drain(flood) == []

        # Well over the threshold inside one window, and never blocked.
        assert ask_all(trunk, engine, 3 * THRESHOLD, "127.0.0.1") == 3 * THRESHOLD
        assert ask_all(phone.sock, engine, 3 * THRESHOLD, PHONE_HOST) == 3 * THRESHOLD
        assert metric(engine, "sip_sources_blocked") == 1
        assert metric(engine, "sip_source_blocks_total") == 1
    finally:
        for sock in (flood, trunk):
            sock.close()
        phone.close()
    log = engine.log()
    assert log.count(f"blocking requests from {FLOOD_HOST}") == 1
    assert "blocking requests from 127.0.0.1" not in log
    assert f"blocking requests from {PHONE_HOST}" not in log


def test_the_limit_can_be_turned_off(tmp_path: Path, engine_factory: object) -> None:
    engine: RunningEngine = engine_factory(  # type: ignore[operator]
        write_config(
            tmp_path / "off.yaml", security="request_limit: {enabled: false, requests: 10}"
        )
    )
    flood = udp_socket(FLOOD_HOST)
    try:
        assert ask_all(flood, engine, 60, FLOOD_HOST) == 60
        assert metric(engine, "sip_requests_throttled_total") == 0
        assert metric(engine, "sip_sources_blocked") == 0
    finally:
        flood.close()
