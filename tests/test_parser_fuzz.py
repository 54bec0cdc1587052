"""Fuzzing the parser: mutated messages and random header text.

Whatever arrives, ``parse_message`` returns a message or raises ``MessageError``;
nothing else may escape, since any other exception would be a crash in the
transport's receive path. Whatever it accepts must serialise to bytes it
accepts again, and a response built from an accepted request must parse too.
The header-level parsers may only raise ``SipSyntaxError``. Deadlines are off
and example counts sized so the module runs in well under 30 seconds.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sip._grammar import SipSyntaxError, parse_params, split_commas, unquote
from sip.framing import FramingError, StreamFramer
from sip.headers import CSeq, NameAddr, Via, parse_sip_date, parse_uint
from sip.message import (
    MessageError,
    Request,
    Response,
    make_response,
    parse_message,
    salvage_response,
)
from sip.uri import parse_uri

from .conftest import RFC4475_DIR

DATA = RFC4475_DIR

_SDP = (
    b"v=0\r\no=- 3912847561 3912847561 IN IP4 192.168.1.34\r\ns=-\r\n"
    b"c=IN IP4 192.168.1.34\r\nt=0 0\r\nm=audio 40012 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
)

TYPICAL = [
    b"INVITE sip:2000@pbx.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.34:5060;branch=z9hG4bK-524287-1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"Contact: <sip:1001@192.168.1.34:5060;transport=udp>\r\n"
    b'To: "Sales" <sip:2000@pbx.example.com>\r\n'
    b'From: "Alice, Smith" <sip:1001@pbx.example.com>;tag=4f9a8e1c\r\n'
    b"Call-ID: 8Yc1XUbJ4sDq2Zl0nDq1bA..\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Route: <sip:[2001:db8::1]:5060;lr>, <sip:p2.example.com;lr>\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Supported: replaces, timer\r\n"
    b"Content-Length: " + str(len(_SDP)).encode() + b"\r\n\r\n" + _SDP,
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP [2001:db8::5]:5060;branch=z9hG4bK-1;rport=5060;received=2001:db8::9\r\n"
    b"Record-Route: <sip:10.0.0.1;lr>\r\n"
    b"Contact: <sip:2000@10.0.0.1:5060>;expires=3600\r\n"
    b"To: <sip:2000@pbx.example.com>;tag=as5f2c1b9e\r\n"
    b"From: <sip:1001@pbx.example.com>;tag=4f9a8e1c\r\n"
    b"Call-ID: 8Yc1XUbJ4sDq2Zl0nDq1bA..\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(_SDP)).encode() + b"\r\n\r\n" + _SDP,
    b"REGISTER sip:pbx.example.com SIP/2.0\r\n"
    b"v: SIP/2.0/TCP 192.0.2.7:50611;branch=z9hG4bK-r1;alias\r\n"
    b"f: <sip:1001@pbx.example.com>;tag=r1\r\n"
    b"t: <sip:1001@pbx.example.com>\r\n"
    b"i: reg-1@192.0.2.7\r\n"
    b"CSeq: 20 REGISTER\r\n"
    b'm: <sip:1001@192.0.2.7:50611;transport=tcp>;+sip.instance="<urn:uuid:1>";reg-id=1\r\n'
    b'Authorization: Digest username="1001", realm="pbx", nonce="n", uri="sip:pbx"\r\n'
    b"Expires: 600\r\n"
    b"l: 0\r\n\r\n",
    b"BYE sip:1001@192.0.2.7:50611;transport=tcp SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK-b1\r\n"
    b"From: <sip:2000@pbx.example.com>;tag=x\r\n"
    b"To: <sip:1001@pbx.example.com>;tag=y\r\n"
    b"Call-ID: bye-1\r\n"
    b"CSeq: 2 BYE\r\n"
    b'Reason: Q.850;cause=16;text="Normal call clearing"\r\n'
    b"Content-Length: 0\r\n\r\n",
    b"SIP/2.0 180 Ringing\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-a, SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK-b\r\n"
    b"From: sip:a@example.com;tag=1\r\n"
    b"To: sip:b@example.com;tag=2\r\n"
    b"Call-ID: ring-1\r\n"
    b"CSeq: 7 INVITE\r\n\r\n",
]
SEEDS = TYPICAL + [p.read_bytes() for p in sorted(DATA.glob("*.dat"))]

_COMPACT = {
    b"Via": b"v",
    b"From": b"f",
    b"To": b"t",
    b"Call-ID": b"i",
    b"Contact": b"m",
    b"Content-Length": b"l",
    b"Content-Type": b"c",
    b"Supported": b"k",
    b"Subject": b"s",
}
_INTERESTING = [
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b"\r\n ",
    b",",
    b";",
    b":",
    b"<",
    b">",
    b'"',
    b"\\",
    b"%",
    b"%00",
    b"@",
    b"[",
    b"]",
    b"=",
    b"?",
    b"\x00",
    b"\xff",
    b"\xc3\xa9",
    b"4294967296",
    b"-1",
    b"z9hG4bK",
    b"sip:",
    b"SIP/2.0",
    b"\r\n\r\n",
]


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.integers(0, 9))
        at = draw(st.integers(0, len(data)))
        if kind == 0 and data:  # flip bits in one octet
            at = min(at, len(data) - 1)
            data[at] ^= draw(st.integers(1, 255))
        elif kind == 1:  # insert random octets
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == 2:  # delete a range
            data[at : at + draw(st.integers(1, 16))] = b""
        elif kind == 3:  # insert a token the grammar cares about
            data[at:at] = draw(st.sampled_from(_INTERESTING))
        elif kind == 4:  # insert random text, any Unicode
            data[at:at] = draw(st.text(max_size=6)).encode("utf-8", "surrogatepass")
        else:
            lines = bytes(data).split(b"\r\n")
            i = draw(st.integers(0, len(lines) - 1))
            if kind == 5:  # duplicate a line
                lines.insert(i, lines[i])
            elif kind == 6:  # delete a line
                del lines[i]
            elif kind == 7:  # switch a header name to its compact form
                name, colon, rest = lines[i].partition(b":")
                lines[i] = _COMPACT.get(name, name) + colon + rest
            elif kind == 8:  # change the case of a line
                lines[i] = lines[i].swapcase()
            else:  # swap two lines
                j = draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


def _check_message(data: bytes, stream: bool) -> None:
    try:
        msg = parse_message(data, stream=stream)
    except MessageError as exc:
        # An error answer, when one can be built, must itself be sendable.
        if exc.failure.is_request:
            response = salvage_response(exc.failure, exc.status, "Bad Request", to_tag="f1")
            if response is not None:
                response.serialize()
                assert response.top_via.host
        return
    assert isinstance(msg, Request | Response)
    again = parse_message(msg.serialize(), stream=True)
    assert type(again) is type(msg)
    assert again.call_id == msg.call_id
    assert again.cseq == msg.cseq
    assert again.body == msg.body
    assert len(again.vias) == len(msg.vias)
    if isinstance(msg, Request) and msg.method != "ACK":
        for status in (100, 200, 486):
            parse_message(make_response(msg, status, to_tag="f2").serialize())


@settings(
    max_examples=4000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_mutated(), st.booleans())
def test_mutated_messages_parse_or_raise_message_error(data: bytes, stream: bool) -> None:
    _check_message(data, stream)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_random_octets(data: bytes, stream: bool) -> None:
    _check_message(data, stream)


def test_every_seed_round_trips_or_is_rejected() -> None:
    for seed in SEEDS:
        _check_message(seed, stream=False)


_FRAGMENTS = [
    "sip:",
    "sips:",
    "tel:",
    "SIP/2.0/UDP ",
    "SIP / 2.0 / TCP ",
    "alice",
    "@",
    "example.com",
    "[2001:db8::1]",
    "2001:db8::1",
    "192.0.2.1",
    ":",
    "5060",
    "99999",
    ";",
    "=",
    "tag",
    "branch",
    "received",
    "z9hG4bK",
    "lr",
    "<",
    ">",
    '"',
    "\\",
    "\\\x07",
    " ",
    "\t",
    ",",
    "?",
    "&",
    "%",
    "%41",
    "%4",
    "INVITE",
    "1",
    "\x00",
    "é",
    "大",
    "\udc80",
    "*",
]
_sipish = st.lists(st.sampled_from(_FRAGMENTS), max_size=14).map("".join)
_texts = st.one_of(st.text(max_size=40), _sipish)

_HEADER_PARSERS: list[Callable[[str], object]] = [
    lambda t: NameAddr.parse(t, "To"),
    Via.parse,
    parse_uri,
    CSeq.parse,
    lambda t: parse_params(t, "x", frozenset(["received"])),
    split_commas,
    unquote,
    parse_sip_date,
    lambda t: parse_uint(t, "x", 255),
]


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(range(len(_HEADER_PARSERS))), _texts)
def test_header_parsers_raise_only_sip_syntax_error(which: int, text: str) -> None:
    with contextlib.suppress(SipSyntaxError):
        _HEADER_PARSERS[which](text)


@settings(max_examples=400, deadline=None)
@given(_sipish)
def test_accepted_addresses_round_trip(text: str) -> None:
    try:
        addr = NameAddr.parse(text)
    except SipSyntaxError:
        return
    again = NameAddr.parse(str(addr))
    assert str(again.uri) == str(addr.uri)
    assert again.params == addr.params
    assert (again.display or None) == (addr.display or None)


@settings(max_examples=400, deadline=None)
@given(_sipish)
def test_accepted_vias_round_trip(text: str) -> None:
    try:
        via = Via.parse(text)
    except SipSyntaxError:
        return
    assert Via.parse(str(via)) == via


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=60) | st.sampled_from([b"\r\n", b"\r\n\r\n"]), max_size=8))
def test_framer_raises_only_framing_error(pieces: list[bytes]) -> None:
    framer = StreamFramer(512)
    try:
        for piece in pieces:
            framer.feed(piece)
    except FramingError:
        pass


def test_hostile_repetitions_stay_linear() -> None:
    # Each expression uses possessive repetition; a backtracking one would take
    # seconds (or forever) on these.
    start = time.perf_counter()
    for ch in "a%;=:@.?/&\"<> \t\\[]',":
        body = ch * 20000
        for parse, text in (
            (parse_uri, "sip:" + body + "\x01"),
            (parse_uri, "sip:a@b;" + body + "<"),
            (lambda t: NameAddr.parse(t), '"' + body + '"x'),
            (lambda t: NameAddr.parse(t), "<sip:" + body + ">;" + body + "\x01"),
            (lambda t: NameAddr.parse(t), body + " <sip:a@b>"),
            (Via.parse, "SIP/2.0/UDP h;" + body + "\x01"),
            (Via.parse, "SIP / 2.0 / UDP " + body + ":1"),
        ):
            with contextlib.suppress(SipSyntaxError):
                parse(text)
    assert time.perf_counter() - start < 5.0
