"""Message parsing and serialisation: headers, addresses, Via, framing on datagrams, responses."""

from __future__ import annotations

import pytest

from sip.headers import CSeq, Headers, NameAddr, Via, parse_sip_date, parse_uint
from sip.message import (
    MessageError,
    Request,
    Response,
    make_response,
    parse_message,
    request_uri_is_sip,
    salvage_response,
)
from sip.uri import AbsoluteUri, SipUri, parse_uri

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"

# A message exactly as this stack writes one: long header names in their usual
# spelling, single spaces, Content-Length last.
CANONICAL = (
    b"INVITE sip:2000@pbx.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1;rport\r\n"
    b"Via: SIP/2.0/TCP proxy.example.com;branch=z9hG4bK-0;received=192.0.2.9\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice" <sip:1001@pbx.example.com>;tag=a1\r\n'
    b"To: <sip:2000@pbx.example.com>\r\n"
    b"Call-ID: c1@192.0.2.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:1001@192.0.2.1:5060>\r\n"
    b"Record-Route: <sip:proxy.example.com;lr>\r\n"
    b"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n"
    b"Supported: replaces, timer\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)


def _request(text: bytes) -> Request:
    msg = parse_message(text)
    assert isinstance(msg, Request)
    return msg


def _message(
    *headers: str, start: str = "OPTIONS sip:a@example.com SIP/2.0", body: bytes = b""
) -> bytes:
    lines = [start, *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


BASE = (
    "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-x",
    "From: <sip:b@example.com>;tag=1",
    "To: <sip:a@example.com>",
    "Call-ID: base-1",
    "CSeq: 1 OPTIONS",
)


def _with(*extra: str, drop: str = "", body: bytes = b"") -> bytes:
    headers = [h for h in BASE if not drop or not h.lower().startswith(drop.lower())]
    return _message(*headers, *extra, body=body)


def _rejected(data: bytes, *, stream: bool = False) -> MessageError:
    with pytest.raises(MessageError) as info:
        parse_message(data, stream=stream)
    return info.value


# -- serialisation ------------------------------------------------------------------


def test_canonical_message_round_trips_byte_for_byte() -> None:
    msg = parse_message(CANONICAL)
    assert msg.serialize() == CANONICAL
    assert bytes(msg) == CANONICAL


def test_built_message_serialises_with_content_length() -> None:
    req = Request("OPTIONS", SipUri("example.com", user="a"))
    req.headers.add("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-y")
    req.headers.add("f", "<sip:b@example.com>;tag=9")
    req.headers.add("t", "<sip:a@example.com>")
    req.headers.add("i", "built-1")
    req.headers.add("CSeq", "2 OPTIONS")
    req.body = b"hello"
    data = req.serialize()
    assert data.startswith(b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: ")
    assert b"From: <sip:b@example.com>;tag=9\r\n" in data
    assert data.endswith(b"Content-Length: 5\r\n\r\nhello")
    again = _request(data)
    assert (again.call_id, again.cseq, again.body) == ("built-1", CSeq(2, "OPTIONS"), b"hello")


# -- header names ---------------------------------------------------------------------


def test_compact_forms_expand_to_long_names() -> None:
    data = _message(
        "v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-c",
        "f: <sip:b@example.com>;tag=1",
        "t: <sip:a@example.com>",
        "i: compact-1",
        "CSeq: 1 OPTIONS",
        "m: <sip:b@192.0.2.1>",
        "k: timer",
        "s: hello",
        "c: text/plain",
        "e: gzip",
        "l: 2",
        body=b"hi",
    )
    req = _request(data)
    assert req.call_id == "compact-1"
    assert req.headers.get("Supported") == "timer"
    assert req.headers.get("subject") == "hello"
    assert req.headers.get("content-encoding") == "gzip"
    assert req.content_type == "text/plain"
    assert req.contacts is not None and len(req.contacts) == 1
    assert req.body == b"hi"
    out = req.serialize()
    assert b"\r\nCall-ID: compact-1\r\n" in out and b"\r\nContact: <sip:b@192.0.2.1>\r\n" in out


def test_header_names_are_case_insensitive() -> None:
    data = _message(
        "VIA: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-u",
        "fRoM: <sip:b@example.com>;tag=1",
        "TO  : <sip:a@example.com>",
        "cAlL-iD: case-1",
        "cseq:1 OPTIONS",
        "X-Custom-Header: yes",
    )
    req = _request(data)
    assert req.call_id == "case-1"
    assert req.headers.get("x-custom-header") == "yes"
    assert req.headers.get("X-CUSTOM-HEADER") == "yes"
    assert "Call-Id" in req.headers and "i" in req.headers


def test_folded_lines_are_unfolded() -> None:
    data = _message(
        "Via: SIP/2.0/UDP",
        "   192.0.2.1;branch=z9hG4bK-f",
        "From: <sip:b@example.com>",
        "\t;tag=1",
        "To: <sip:a@example.com>",
        "Call-ID: fold-1",
        "CSeq: 1",
        "  OPTIONS",
        "Subject: one",
        "  two  ",
        " three",
    )
    req = _request(data)
    assert req.top_via.host == "192.0.2.1"
    assert req.from_.tag == "1"
    assert req.cseq == CSeq(1, "OPTIONS")
    assert req.headers.get("subject") == "one two three"


def test_many_continuation_lines_stay_linear() -> None:
    data = _with("X-Long: a" + "\r\n b" * 20000)
    assert (_request(data).headers.get("x-long") or "").count("b") == 20000


@pytest.mark.parametrize(
    "line",
    ["no colon here", ": empty name", "Bad Name: x", "Bad\x00Name: x", "Ünicode: x"],
)
def test_malformed_header_lines(line: str) -> None:
    error = _rejected(_with(line))
    assert error.status == 400
    # Lexing goes on past the bad line, so the answer can still be routed.
    assert error.failure.headers.get("call-id") == "base-1"
    assert salvage_response(error.failure, 400, "Bad Request") is not None


def test_bare_lf_line_ends_are_accepted() -> None:
    data = _with("Content-Length: 2", body=b"ok").replace(b"\r\n", b"\n")
    req = _request(data)
    assert (req.call_id, req.body) == ("base-1", b"ok")


def test_bare_lf_blank_line_before_a_crlf_one_in_the_body() -> None:
    data = b"\n".join(s.encode() for s in ("OPTIONS sip:a@example.com SIP/2.0", *BASE))
    data += b"\n\nbody\r\n\r\nmore"
    assert _request(data).body == b"body\r\n\r\nmore"


def test_bare_cr_is_rejected() -> None:
    assert _rejected(_with("Subject: a\rInjected: b")).status == 400


def test_leading_crlfs_are_ignored() -> None:
    assert _request(b"\r\n\r\n" + _with()).call_id == "base-1"


# -- list headers -----------------------------------------------------------------------


def test_comma_separated_vias_contacts_and_routes() -> None:
    data = _message(
        "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK-1, SIP/2.0/TCP b.example.com:5070"
        ";branch=z9hG4bK-2",
        "Via: SIP/2.0/TLS c.example.com;branch=z9hG4bK-3",
        *BASE[1:],
        'Contact: "Doe, John" <sip:john@192.0.2.1>;q=0.7, <sip:john@192.0.2.2>;expires=60',
        "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
        "Route: <sip:p3.example.com;lr>",
        "Record-Route: <sip:r1.example.com;lr>,<sip:r2.example.com;lr>",
    )
    req = _request(data)
    assert [(v.transport, v.host, v.port) for v in req.vias] == [
        ("UDP", "a.example.com", None),
        ("TCP", "b.example.com", 5070),
        ("TLS", "c.example.com", None),
    ]
    contacts = req.contacts
    assert contacts is not None
    assert [c.display for c in contacts] == ["Doe, John", None]
    assert contacts[0].params == {"q": "0.7"}
    assert contacts[1].params == {"expires": "60"}
    assert [str(r.uri) for r in req.routes] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
        "sip:p3.example.com;lr",
    ]
    assert [str(r.uri) for r in req.record_routes] == [
        "sip:r1.example.com;lr",
        "sip:r2.example.com;lr",
    ]
    assert req.header_list("route") == [
        "<sip:p1.example.com;lr>",
        "<sip:p2.example.com;lr>",
        "<sip:p3.example.com;lr>",
    ]


def test_generic_list_header_keeps_quoted_commas() -> None:
    req = _request(_with('Accept-Language: da, en-gb;q=0.8, x-"a,b"'))
    assert req.header_list("accept-language") == ["da", "en-gb;q=0.8", 'x-"a,b"']


@pytest.mark.parametrize(
    "extra",
    [
        "Contact: <sip:a@example.com>,,<sip:b@example.com>",
        "Contact: <sip:a@example.com>;;",
        "Route: <sip:a@example.com>, ",
        "Contact: *, <sip:a@example.com>",
        "Contact: <sip:a@example.com",
    ],
)
def test_malformed_routing_lists(extra: str) -> None:
    assert _rejected(_with(extra)).status == 400


def test_contact_wildcard() -> None:
    req = _request(_with("Contact: *", "Expires: 0"))
    assert req.contacts is None


def test_contact_absent_is_empty() -> None:
    req = _request(_with())
    assert req.contacts == [] and req.routes == [] and req.record_routes == []


# -- addresses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "display"),
    [
        ('"Alice Smith" <sip:alice@example.com>', "Alice Smith"),
        ('"Say \\"hi\\" \\\\ bye" <sip:alice@example.com>', 'Say "hi" \\ bye'),
        ('""<sip:alice@example.com>', ""),
        ("Alice  Smith <sip:alice@example.com>", "Alice Smith"),
        ("Alice<sip:alice@example.com>", "Alice"),
        ("<sip:alice@example.com>", None),
        ("sip:alice@example.com", None),
        ('"Jörg" <sip:alice@example.com>', "Jörg"),
    ],
)
def test_display_names(text: str, display: str | None) -> None:
    addr = NameAddr.parse(text)
    assert addr.display == display
    assert addr.uri == SipUri("example.com", user="alice")


def test_params_belong_to_the_header_in_addr_spec_form() -> None:
    addr = NameAddr.parse("sip:alice@example.com;tag=1;lr")
    assert addr.params == {"tag": "1", "lr": None}
    assert isinstance(addr.uri, SipUri) and addr.uri.params == {}


def test_params_inside_brackets_belong_to_the_uri() -> None:
    addr = NameAddr.parse("<sip:alice@example.com;transport=tcp?Subject=hi>;tag=1")
    assert isinstance(addr.uri, SipUri)
    assert addr.uri.params == {"transport": "tcp"}
    assert addr.uri.header_fields == [("Subject", "hi")]
    assert addr.tag == "1"


def test_header_params_with_quotes_lws_and_ipv6() -> None:
    addr = NameAddr.parse('<sip:a@example.com> ; x = "a;b" ;y=[2001:db8::1]; Flag')
    assert addr.params == {"x": '"a;b"', "y": "[2001:db8::1]", "flag": None}


def test_name_addr_serialises_to_a_parseable_form() -> None:
    addr = NameAddr.parse('"Say \\"hi\\"" <sip:alice@example.com;lr>;tag=1')
    assert str(addr) == '"Say \\"hi\\"" <sip:alice@example.com;lr>;tag=1'
    assert NameAddr.parse(str(addr)) == addr


def test_other_schemes_in_addresses() -> None:
    addr = NameAddr.parse("<tel:+15551234;phone-context=example.com>;tag=1")
    assert addr.uri == AbsoluteUri("tel", "+15551234;phone-context=example.com")
    assert addr.tag == "1"
    assert NameAddr.parse("tel:+15551234;tag=2").params == {"tag": "2"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        '"unterminated <sip:a@example.com>',
        "Bell, Alexander <sip:a@example.com>",
        '"quoted" sip:a@example.com',
        "< sip:a@example.com >",
        "sip:a@example.com?Route=x",
        "sip:a@example.com junk",
        "<sip:a@example.com> junk",
        "<sip:a@example.com>;",
        "<sip:a@example.com>;tag=",
        "<sip:a@example.com>;tag=a b",
        "<sip:a@example.com>;maddr=2001:db8::1",
        '"bad \x01 ctl" <sip:a@example.com>',
        "<sip:a@exa mple.com>",
    ],
)
def test_malformed_addresses(text: str) -> None:
    with pytest.raises(ValueError):
        NameAddr.parse(text)


# -- Via ---------------------------------------------------------------------------------


def test_via_fields() -> None:
    via = Via.parse("SIP/2.0/udp pc33.example.com:5066;branch=z9hG4bK776asdhds;rport;ttl=1")
    assert (via.protocol, via.transport, via.host, via.port) == (
        "SIP/2.0",
        "UDP",
        "pc33.example.com",
        5066,
    )
    assert via.params == {"branch": "z9hG4bK776asdhds", "rport": None, "ttl": "1"}
    assert via.has_rfc3261_branch
    assert str(via) == "SIP/2.0/UDP pc33.example.com:5066;branch=z9hG4bK776asdhds;rport;ttl=1"


def test_via_with_lws_everywhere() -> None:
    via = Via.parse("SIP / 2.0 / TCP  host.example.com : 5070 ; branch = z9hG4bK-1 ; rport")
    assert (via.transport, via.host, via.port) == ("TCP", "host.example.com", 5070)
    assert via.params == {"branch": "z9hG4bK-1", "rport": None}


@pytest.mark.parametrize(
    ("text", "received"),
    [
        ("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK-6;received=2001:db8::9", "2001:db8::9"),
        ("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK-6;received=[2001:db8::9]", "2001:db8::9"),
        ("SIP/2.0/UDP [2001:db8::1];received=::ffff:192.0.2.1;rport=5060", "::ffff:192.0.2.1"),
        ("SIP/2.0/UDP 192.0.2.1;received=192.0.2.9", "192.0.2.9"),
        ("SIP/2.0/UDP 192.0.2.1", None),
    ],
)
def test_via_ipv6_sent_by_and_received_rfc5118(text: str, received: str | None) -> None:
    via = Via.parse(text)
    assert via.received == received
    assert Via.parse(str(via)) == via
    if text.startswith("SIP/2.0/UDP ["):
        assert via.host.startswith(("2001:db8::", "2001"))


def test_via_other_protocol_versions_parse() -> None:
    via = Via.parse("SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw")
    assert via.protocol == "SIP/7.0"
    assert str(via) == "SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw"


def test_branch_without_an_id_is_not_rfc3261() -> None:
    assert not Via.parse("SIP/2.0/UDP h;branch=z9hG4bK").has_rfc3261_branch
    assert not Via.parse("SIP/2.0/UDP h;branch=1234").has_rfc3261_branch
    assert not Via.parse("SIP/2.0/UDP h").has_rfc3261_branch


@pytest.mark.parametrize(
    "text",
    [
        "",
        "SIP/2.0 host",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP host:99999",
        "SIP/2.0/UDP host;;",
        "SIP/2.0/UDP 2001:db8::1",
        "SIP/2.0/UDP [2001:db8::1;branch=x",
        "SIP/2.0/UDP host;received=2001:db8::zz",
        "SIP/2.0/UDP host;maddr=2001:db8::1",
        "SIP/2.0/UDP host junk",
    ],
)
def test_malformed_vias(text: str) -> None:
    with pytest.raises(ValueError):
        Via.parse(text)


# -- scalar headers ----------------------------------------------------------------------


def test_cseq_limits() -> None:
    assert CSeq.parse("4294967295 INVITE") == CSeq(2**32 - 1, "INVITE")
    assert CSeq.parse(" 007\t BYE ") == CSeq(7, "BYE")
    for bad in ("4294967296 INVITE", "1", "INVITE", "-1 INVITE", "1 INV ITE", "²1 INVITE", ""):
        with pytest.raises(ValueError):
            CSeq.parse(bad)


def test_parse_uint() -> None:
    assert parse_uint(" 0070 ", "Max-Forwards", 255) == 70
    for bad in ("256", "-1", "", "7a", "\u0661"):
        with pytest.raises(ValueError):
            parse_uint(bad, "Max-Forwards", 255)


def test_max_forwards() -> None:
    assert _request(_with("Max-Forwards: 0")).max_forwards == 0
    assert _request(_with()).max_forwards is None
    assert _rejected(_with("Max-Forwards: 256")).status == 400


def test_sip_date() -> None:
    date = parse_sip_date("Sat, 13 Nov 2010 23:29:00 GMT")
    assert date.isoformat() == "2010-11-13T23:29:00+00:00"
    for bad in ("Sat, 13 Nov 2010 23:29:00 UTC", "Sat, 31 Feb 2010 23:29:00 GMT", "13 Nov 2010"):
        with pytest.raises(ValueError):
            parse_sip_date(bad)


# -- start lines and required headers ----------------------------------------------------


def test_sip_version_is_case_insensitive() -> None:
    assert _request(_with().replace(b"SIP/2.0\r\n", b"sip/2.0\r\n", 1)).method == "OPTIONS"


@pytest.mark.parametrize(
    ("start", "status"),
    [
        ("OPTIONS sip:a@example.com SIP/3.0", 505),
        ("OPTIONS sip:a@example.com HTTP/1.1", 400),
        ("OPTIONS  sip:a@example.com SIP/2.0", 400),
        ("OPTIONS sip:a@example.com SIP/2.0 ", 400),
        ("OPTIONS sip:a@example.com", 400),
        ("OPT IONS sip:a@example.com SIP/2.0", 400),
        ("OPTIONS <sip:a@example.com> SIP/2.0", 400),
        ("OPTIONS sip:a@example.com?Subject=x SIP/2.0", 400),
        ("OPTIONS sip:a@exa\tmple.com SIP/2.0", 400),
    ],
)
def test_bad_request_lines(start: str, status: int) -> None:
    error = _rejected(_message(*BASE, start=start))
    assert error.status == status
    assert error.failure.is_request


def test_request_uri_scheme() -> None:
    assert request_uri_is_sip(_request(_with()))
    tel = _request(_message(*BASE, start="OPTIONS tel:+15551234 SIP/2.0"))
    assert not request_uri_is_sip(tel)
    assert tel.uri == parse_uri("tel:+15551234")


@pytest.mark.parametrize(
    "start",
    [
        "SIP/2.0 099 Odd",
        "SIP/2.0 700 Odd",
        "SIP/2.0 20 OK",
        "SIP/2.0 2000 OK",
        "SIP/2.0 200 O\x07K",
    ],
)
def test_bad_status_lines_are_dropped(start: str) -> None:
    base = tuple(h.replace("OPTIONS", "INVITE") if h.startswith("CSeq") else h for h in BASE)
    error = _rejected(_message(*base, start=start))
    assert not error.failure.is_request


def test_status_line_without_reason() -> None:
    for start in ("SIP/2.0 180 ", "SIP/2.0 180"):
        msg = parse_message(_message(*BASE, start=start))
        assert isinstance(msg, Response) and (msg.status, msg.reason) == (180, "")


@pytest.mark.parametrize("missing", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_required_headers(missing: str) -> None:
    assert _rejected(_with(drop=missing)).status == 400


@pytest.mark.parametrize("header", ["To: <sip:c@example.com>", "Call-ID: again", "CSeq: 2 OPTIONS"])
def test_single_valued_headers_must_not_repeat(header: str) -> None:
    assert _rejected(_with(header)).status == 400


def test_call_id_must_be_visible_ascii() -> None:
    assert _rejected(_with(drop="Call-ID") + b"").status == 400
    data = _message(*BASE[:3], "Call-ID: a b", BASE[4])
    assert _rejected(data).status == 400


# -- Content-Length on datagrams and streams ----------------------------------------------


def test_missing_content_length_on_a_datagram_means_the_rest() -> None:
    assert _request(_with(body=b"all of it\r\n")).body == b"all of it\r\n"


def test_extra_octets_after_content_length_are_dropped() -> None:
    assert _request(_with("Content-Length: 3", body=b"abcdef")).body == b"abc"


def test_content_length_larger_than_the_datagram_is_400() -> None:
    error = _rejected(_with("Content-Length: 7", body=b"abc"))
    assert error.status == 400
    assert salvage_response(error.failure, 400, "Bad Request") is not None


@pytest.mark.parametrize("value", ["-1", "+3", "3 4", "0x3", "99999999999"])
def test_malformed_content_length(value: str) -> None:
    assert _rejected(_with(f"Content-Length: {value}", body=b"abc")).status == 400


def test_stream_messages_need_an_exact_content_length() -> None:
    assert _request(_with("Content-Length: 3", body=b"abc")).body == b"abc"
    assert parse_message(_with("Content-Length: 3", body=b"abc"), stream=True).body == b"abc"
    assert _rejected(_with(body=b"abc"), stream=True).status == 400
    assert _rejected(_with("Content-Length: 2", body=b"abc"), stream=True).status == 400


def test_empty_and_garbage_input() -> None:
    for data in (b"", b"\r\n\r\n", b"garbage", b"\x00\xff\xfe"):
        _rejected(data)


# -- responses -------------------------------------------------------------------------


def test_make_response_copies_the_dialog_headers() -> None:
    req = _request(
        CANONICAL.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nTimestamp: 54\r\n")
    )
    ok = make_response(req, 200, to_tag="b2")
    assert ok.headers.get_all("via") == req.headers.get_all("via")
    assert ok.headers.get("from") == req.headers.get("from")
    assert ok.headers.get("to") == "<sip:2000@pbx.example.com>;tag=b2"
    assert ok.to.tag == "b2"
    assert ok.call_id == req.call_id and ok.cseq == req.cseq
    assert ok.reason == "OK"
    # Record-Route is copied into a 2xx to INVITE (RFC 3261 12.1.1).
    assert ok.headers.get_all("record-route") == ["<sip:proxy.example.com;lr>"]
    assert ok.headers.get("timestamp") is None
    again = parse_message(ok.serialize())
    assert isinstance(again, Response) and again.to.tag == "b2"


def test_100_trying_has_no_tag_and_echoes_timestamp() -> None:
    req = _request(
        CANONICAL.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nTimestamp: 54\r\n")
    )
    trying = make_response(req, 100, to_tag="b2")
    assert trying.to.tag is None
    assert trying.headers.get("timestamp") == "54"
    assert trying.headers.get("record-route") is None


def test_error_responses_carry_no_record_route() -> None:
    req = _request(CANONICAL)
    busy = make_response(req, 486, to_tag="b3")
    assert busy.to.tag == "b3"
    assert busy.headers.get("record-route") is None


def test_existing_to_tag_is_kept() -> None:
    req = _request(_with().replace(b"To: <sip:a@example.com>", b"To: <sip:a@example.com>;tag=have"))
    assert make_response(req, 200, to_tag="new").to.tag == "have"


def test_salvage_needs_a_via_and_a_cseq() -> None:
    no_via = _rejected(_with("Content-Length: 9", drop="Via")).failure
    assert salvage_response(no_via, 400, "Bad Request") is None
    no_cseq = _rejected(_with("Content-Length: 9", drop="CSeq")).failure
    assert salvage_response(no_cseq, 400, "Bad Request") is None
    bad_sent_by = _rejected(
        _with("Content-Length: 9").replace(b"UDP 192.0.2.1", b"UDP [::1")
    ).failure
    assert salvage_response(bad_sent_by, 400, "Bad Request") is None


def test_salvage_copies_the_vias_and_adds_a_to_tag() -> None:
    data = _with("Content-Length: 9").replace(
        b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-x",
        b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-x;rport, "
        b"SIP/2.0/TCP p.example.com;branch=z9hG4bK-p",
    )
    failure = _rejected(data).failure
    response = salvage_response(failure, 400, "Bad Request", to_tag="t9")
    assert response is not None
    assert [v.host for v in response.vias] == ["192.0.2.1", "p.example.com"]
    assert response.to.tag == "t9"
    again = parse_message(response.serialize())
    assert isinstance(again, Response) and again.status == 400


def test_salvage_never_copies_a_bare_cr() -> None:
    failure = _rejected(
        _with().replace(b"Call-ID: base-1", b"Call-ID: base-1\rInjected: x")
    ).failure
    response = salvage_response(failure, 400, "Bad Request")
    assert response is not None and b"\r\nInjected" not in response.serialize()


# -- containers ----------------------------------------------------------------------------


def test_headers_container() -> None:
    headers = Headers()
    headers.add("Via", "a")
    headers.add("v", "b")
    headers.add("Subject", "s")
    headers.prepend("VIA", "top")
    assert headers.get_all("via") == ["top", "a", "b"]
    assert headers.count("Via") == 3 and len(headers) == 4
    headers.set("via", "only")
    assert headers.get_all("via") == ["only"]
    assert headers.items()[0] == ("via", "only")
    headers.remove("subject")
    assert "Subject" not in headers and headers.get("s", "none") == "none"
    copy = headers.copy()
    copy.add("To", "x")
    assert "to" not in headers


def test_cached_headers_follow_invalidate() -> None:
    req = _request(_with())
    assert req.from_.tag == "1"
    req.headers.set("From", "<sip:b@example.com>;tag=2")
    assert req.from_.tag == "1"
    req.invalidate()
    assert req.from_.tag == "2"


def test_content_type_property() -> None:
    assert (
        _request(_with("Content-Type: Application/SDP ; charset=x")).content_type
        == "application/sdp"
    )
    assert _request(_with()).content_type is None


def test_header_values_cannot_carry_line_breaks() -> None:
    headers = Headers()
    for bad in ("a\r\nVia: x", "a\nb", "a\rb"):
        with pytest.raises(ValueError):
            headers.add("Subject", bad)
        with pytest.raises(ValueError):
            headers.set("Subject", bad)
        with pytest.raises(ValueError):
            headers.prepend("Subject", bad)
    assert len(headers) == 0


def test_display_names_with_control_characters_serialise_as_quoted_pairs() -> None:
    addr = NameAddr(SipUri("example.com", user="a"), display='BEL:\x07 "q" \\ NUL:\x00')
    assert NameAddr.parse(str(addr)) == addr
    injected = NameAddr(SipUri("example.com"), display="x\r\nVia: SIP/2.0/UDP evil")
    assert "\r" not in str(injected) and "\n" not in str(injected)
    assert NameAddr.parse(str(injected)).display == "x  Via: SIP/2.0/UDP evil"


def test_built_message_wildcard_contact() -> None:
    req = _request(_with())
    req.headers.add("Contact", " * ")
    req.invalidate()
    assert req.contacts is None
