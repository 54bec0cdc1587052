"""Mutated messages through the whole engine in-process: nothing escapes, nothing leaks.

The parser and the transaction layer are fuzzed on their own; this drives
the full path (front door, transactions, registrar, authentication, OPTIONS)
of a real ``Engine`` with thousands of mutated RFC 4475 and softphone
messages, straight into ``SipEndpoint.message_received`` as a transport
would. No exception may escape, nothing sent may carry a Python traceback,
the engine still answers afterwards, and once its timers have run no
transaction is left.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

from acd.config import load_config
from acd.server import Engine
from sip.events import Address

from .conftest import RFC4475_DIR, write_config

SOURCE = Address("UDP", "127.0.0.1", 40000)

REGISTER = (
    b"REGISTER sip:acd.local SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKfuzz1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:1001@acd.local>;tag=ab\r\n"
    b"To: <sip:1001@acd.local>\r\n"
    b"Call-ID: fuzz-register\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:1001@127.0.0.1:40000>;expires=60\r\n"
    b'Authorization: Digest username="1001", realm="acd.local", nonce="x", '
    b'uri="sip:acd.local", response="0123", algorithm=MD5\r\n'
    b"Content-Length: 0\r\n\r\n"
)
INVITE = (
    b"INVITE sip:100@acd.local SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKfuzz2;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Caller" <sip:5551234@acd.local>;tag=cd\r\n'
    b"To: <sip:100@acd.local>\r\n"
    b"Call-ID: fuzz-invite\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:5551234@127.0.0.1:40000>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 40\r\n\r\n"
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four byte- or line-level mutations."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        if not out:
            out += b"\r\n"
        pos = rng.randrange(len(out))
        if kind == 0:
            out[pos] = rng.randrange(256)
        elif kind == 1:
            del out[pos : pos + rng.randint(1, 8)]
        elif kind == 2:
            out[pos:pos] = rng.choice([b";", b",", b"<", b">", b'"', b"\\", b"%", b" ", b"\r\n"])
        elif kind == 3:
            lines = bytes(out).split(b"\r\n")
            i = rng.randrange(len(lines))
            lines.insert(rng.randrange(len(lines) + 1), lines[i])
            out = bytearray(b"\r\n".join(lines))
        elif kind == 4:
            lines = bytes(out).split(b"\r\n")
            del lines[rng.randrange(len(lines))]
            out = bytearray(b"\r\n".join(lines))
        else:
            out[pos:pos] = str(rng.choice([0, -1, 2**31, 2**32, 10**20])).encode()
    return bytes(out)


async def test_mutated_messages_never_escape_or_leak_tracebacks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(
        # Thousands of messages from one address would be throttled before
        # the parser saw most of them: the request limit has its own tests.
        write_config(tmp_path / "fuzz.yaml", security="request_limit: {enabled: false}"),
        env={"ACD_SIP_PORT": "0", "ACD_HTTP_PORT": "0", "ACD_DATA_DIR": str(tmp_path / "d")},
    )
    engine = Engine(config)
    await engine.start()
    sent: list[bytes] = []
    endpoint = engine.endpoint
    endpoint.transports.send = lambda data, destination: sent.append(data)  # type: ignore[method-assign]
    try:
        seeds = [p.read_bytes() for p in sorted(RFC4475_DIR.glob("*.dat"))] + [REGISTER, INVITE]
        rng = random.Random(4475)
        for i in range(4000):
            data = mutate(rng.choice(seeds), rng)
            source = Address(rng.choice(["UDP", "TCP"]), "127.0.0.1", 40000 + i % 50)
            endpoint.message_received(data, source)
        # An hour later every timer has fired and every transaction has ended.
        for event in endpoint.transactions.handle_timer(endpoint.now() + 3600):
            engine.app.handle(event)
        assert len(endpoint.transactions) == 0
        assert sent, "the engine answered nothing at all"
        # The endpoint turns an application exception into a 500 and logs it at
        # ERROR; none may have happened.
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
        assert not [s for s in sent if b"Traceback" in s or b'File "' in s]
        sent.clear()
        probe = (
            b"OPTIONS sip:acd.local SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKprobe;rport\r\n"
            b"From: <sip:t@acd.local>;tag=1\r\nTo: <sip:acd.local>\r\nCall-ID: probe\r\n"
            b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        endpoint.message_received(probe, SOURCE)
        assert any(s.startswith(b"SIP/2.0 200 ") and b"Call-ID: probe" in s for s in sent)
    finally:
        await engine.stop()
