"""Parser and serialiser throughput on one core: a softphone INVITE and a 200 OK.

Run: ``.venv/bin/python bench/sip_parser.py`` (from the repository root). Each figure
is the best of three runs of two seconds, in operations per second.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sip.message import parse_message

SDP = (
    b"v=0\r\n"
    b"o=- 3912847561 3912847561 IN IP4 192.168.1.34\r\n"
    b"s=softphone\r\n"
    b"c=IN IP4 192.168.1.34\r\n"
    b"t=0 0\r\n"
    b"m=audio 40012 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:2000@pbx.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.34:5060;branch=z9hG4bK-524287-1---f1b6a1d8a1d1e2c3;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"Contact: <sip:1001@192.168.1.34:5060;transport=udp>\r\n"
    b'To: "Sales" <sip:2000@pbx.example.com>\r\n'
    b'From: "Alice Smith" <sip:1001@pbx.example.com>;tag=4f9a8e1c\r\n'
    b"Call-ID: 8Yc1XUbJ4sDq2Zl0nDq1bA..\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Supported: replaces, norefersub, extended-refer, timer, outbound, path\r\n"
    b"User-Agent: Z 5.6.1 v2.10.20.1\r\n"
    b"Allow-Events: presence, kpml, talk\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.34:5060;branch=z9hG4bK-524287-1---f1b6a1d8a1d1e2c3;"
    b"rport=5060;received=192.168.1.34\r\n"
    b"Record-Route: <sip:10.0.0.1;lr>\r\n"
    b"Contact: <sip:2000@10.0.0.1:5060>\r\n"
    b'To: "Sales" <sip:2000@pbx.example.com>;tag=as5f2c1b9e\r\n'
    b'From: "Alice Smith" <sip:1001@pbx.example.com>;tag=4f9a8e1c\r\n'
    b"Call-ID: 8Yc1XUbJ4sDq2Zl0nDq1bA..\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Server: acd-engine\r\n"
    b"Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO\r\n"
    b"Supported: replaces, timer\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)


def rate(fn: Callable[[], object], seconds: float = 2.0, runs: int = 3) -> float:
    """Best operations per second over ``runs`` timed loops of about ``seconds`` each."""
    best = 0.0
    for _ in range(runs):
        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(1000):
                fn()
            count += 1000
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, count / (now - start))
    return best


def main() -> None:
    """Print parses and serialisations per second."""
    invite = parse_message(INVITE)
    ok = parse_message(OK)
    figures = {
        "parse INVITE (13 headers + SDP)": rate(lambda: parse_message(INVITE)),
        "parse 200 OK (12 headers + SDP)": rate(lambda: parse_message(OK)),
        "serialize INVITE": rate(invite.serialize),
        "serialize 200 OK": rate(ok.serialize),
    }
    for name, value in figures.items():
        sys.stdout.write(f"{name:34} {value:>10,.0f} /s\n")


if __name__ == "__main__":
    main()
