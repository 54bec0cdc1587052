"""RFC 4475 torture messages: what a conforming element must do, at the parser level.

Every file in the test-data directory must have a row in ``CASES`` saying the
RFC section and the expected outcome:

- ``VALID``: the message parses, and serialising it gives bytes that parse to an
  equivalent message; a per-file check looks at the values the RFC calls out.
- ``REJECT``: a request that must be answered with an error: parsing raises
  ``MessageError`` with that status, and ``salvage_response`` builds a response
  that can be routed back (top Via parses, CSeq copied).
- ``DROP``: a response that must be discarded: ``MessageError`` with
  ``failure.is_request`` False.

The section 3.3 cases are decided by the engine (416, 420, 415, 483, 406, 401);
for them the parser must accept the message and expose what the engine needs.

Where this parser takes one of the choices the RFC leaves open:

- baddate (3.1.2.12) parses: the RFC says not to reject for the Date unless its
  contents matter, and the engine never reads Date; ``parse_sip_date`` rejects it.
- mismatch02 (3.1.2.18) is a 400: the RFC prefers 501 but allows 400, and the
  parser cannot tell an unknown method from a known one.
- insuf (3.3.1) is a 400 with only Via and CSeq copied: the RFC says ideally
  respond 400, and Via plus CSeq are what the client matches a response on.
- badinv01 (3.1.2.1) is answered with the empty Via parameters removed, so the
  400 the RFC asks for can be sent to the sent-by.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sip.framing import FramingError, StreamFramer
from sip.headers import parse_sip_date
from sip.message import (
    REASONS,
    MessageError,
    Request,
    Response,
    parse_message,
    request_uri_is_sip,
    salvage_response,
)
from sip.uri import AbsoluteUri, SipUri

from .conftest import RFC4475_DIR

DATA = RFC4475_DIR

VALID = "valid"
REJECT = "reject"
DROP = "drop"


@dataclass(frozen=True)
class Case:
    """One RFC 4475 message: section, expected outcome and (for REJECT) the status."""

    section: str
    outcome: str
    status: int = 0


CASES: dict[str, Case] = {
    # 3.1.1 Valid messages: must parse.
    "wsinv": Case("3.1.1.1 A Short Tortuous INVITE", VALID),
    "intmeth": Case("3.1.1.2 Wide Range of Valid Characters", VALID),
    "esc01": Case("3.1.1.3 Valid Use of the % Escaping Mechanism", VALID),
    "escnull": Case("3.1.1.4 Escaped Nulls in URIs", VALID),
    "esc02": Case("3.1.1.5 Use of % When It Is Not an Escape", VALID),
    "lwsdisp": Case("3.1.1.6 Message with No LWS between Display Name and <", VALID),
    "longreq": Case("3.1.1.7 Long Values in Header Fields", VALID),
    "dblreq": Case("3.1.1.8 Extra Trailing Octets in a UDP Datagram", VALID),
    "semiuri": Case("3.1.1.9 Semicolon-Separated Parameters in URI User Part", VALID),
    "transports": Case("3.1.1.10 Varied and Unknown Transport Types", VALID),
    "mpart01": Case("3.1.1.11 Multipart MIME Message", VALID),
    "unreason": Case("3.1.1.12 Unusual Reason Phrase", VALID),
    "noreason": Case("3.1.1.13 Empty Reason Phrase", VALID),
    # 3.1.2 Invalid messages: 400 (505 for the version) to requests, drop responses.
    "badinv01": Case("3.1.2.1 Extraneous Header Field Separators", REJECT, 400),
    "clerr": Case("3.1.2.2 Content Length Larger Than Message", REJECT, 400),
    "ncl": Case("3.1.2.3 Negative Content-Length", REJECT, 400),
    "scalar02": Case("3.1.2.4 Request Scalar Fields with Overlarge Values", REJECT, 400),
    "scalarlg": Case("3.1.2.5 Response Scalar Fields with Overlarge Values", DROP),
    "quotbal": Case("3.1.2.6 Unterminated Quoted String in Display Name", REJECT, 400),
    "ltgtruri": Case("3.1.2.7 <> Enclosing Request-URI", REJECT, 400),
    "lwsruri": Case("3.1.2.8 Malformed SIP Request-URI (embedded LWS)", REJECT, 400),
    "lwsstart": Case("3.1.2.9 Multiple SP Separating Request-Line Elements", REJECT, 400),
    "trws": Case("3.1.2.10 SP Characters at End of Request-Line", REJECT, 400),
    "escruri": Case("3.1.2.11 Escaped Headers in SIP Request-URI", REJECT, 400),
    "baddate": Case("3.1.2.12 Invalid Time Zone in Date Header Field", VALID),
    "regbadct": Case("3.1.2.13 Failure to Enclose name-addr URI in <>", REJECT, 400),
    "badaspec": Case("3.1.2.14 Spaces within addr-spec", REJECT, 400),
    "baddn": Case("3.1.2.15 Non-token Characters in Display Name", REJECT, 400),
    "badvers": Case("3.1.2.16 Unknown Protocol Version", REJECT, 505),
    "mismatch01": Case("3.1.2.17 Start Line and CSeq Method Mismatch", REJECT, 400),
    "mismatch02": Case("3.1.2.18 Unknown Method with CSeq Method Mismatch", REJECT, 400),
    "bigcode": Case("3.1.2.19 Overlarge Response Code", DROP),
    # 3.2 Transaction layer semantics.
    "badbranch": Case("3.2.1 Missing Transaction Identifier", VALID),
    # 3.3 Application layer semantics.
    "insuf": Case("3.3.1 Missing Required Header Fields", REJECT, 400),
    "unkscm": Case("3.3.2 Request-URI with Unknown Scheme", VALID),
    "novelsc": Case("3.3.3 Request-URI with Known but Atypical Scheme", VALID),
    "unksm2": Case("3.3.4 Unknown URI Schemes in Header Fields", VALID),
    "bext01": Case("3.3.5 Proxy-Require and Require", VALID),
    "invut": Case("3.3.6 Unknown Content-Type", VALID),
    "regaut01": Case("3.3.7 Unknown Authorization Scheme", VALID),
    "multi01": Case("3.3.8 Multiple Values in Single Value Required Fields", REJECT, 400),
    "mcl01": Case("3.3.9 Multiple Content-Length Values", REJECT, 400),
    "bcast": Case("3.3.10 200 OK Response with Broadcast Via Header Field Value", VALID),
    "zeromf": Case("3.3.11 Max-Forwards of Zero", VALID),
    "cparam01": Case("3.3.12 REGISTER with a Contact Header Parameter", VALID),
    "cparam02": Case("3.3.13 REGISTER with a url-parameter", VALID),
    "regescrt": Case("3.3.14 REGISTER with a URL Escaped Header", VALID),
    "sdp01": Case("3.3.15 Unacceptable Accept Offering", VALID),
    # 3.4 Backward compatibility.
    "inv2543": Case("3.4.1 INVITE with RFC 2543 Syntax", VALID),
}

FILES = sorted(p.stem for p in DATA.glob("*.dat"))


def _load(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


def _parse(name: str) -> Request | Response:
    return parse_message(_load(name))


def _request(name: str) -> Request:
    msg = _parse(name)
    assert isinstance(msg, Request)
    return msg


def _sip(uri: object) -> SipUri:
    assert isinstance(uri, SipUri)
    return uri


def test_every_table_row_has_a_file() -> None:
    assert sorted(CASES) == FILES


@pytest.mark.parametrize("name", FILES)
def test_file_outcome(name: str) -> None:
    assert name in CASES, f"{name}.dat has no row in CASES: add its RFC 4475 section"
    case = CASES[name]
    data = _load(name)
    if case.outcome == VALID:
        _check_valid(data)
        CHECKS[name]()
        return
    with pytest.raises(MessageError) as info:
        parse_message(data)
    failure = info.value.failure
    if case.outcome == DROP:
        assert not failure.is_request
        return
    assert failure.is_request
    assert info.value.status == case.status
    response = salvage_response(failure, case.status, REASONS[case.status], to_tag="x1")
    assert response is not None, "the RFC expects a response to this request"
    assert response.status == case.status
    assert response.top_via.host  # routable: the top Via parses
    assert response.headers.get("cseq") == failure.headers.get("cseq")
    for key in ("from", "call-id"):
        assert response.headers.get(key) == failure.headers.get(key)
    assert response.serialize().startswith(f"SIP/2.0 {case.status} ".encode())
    REJECT_CHECKS.get(name, lambda _: None)(response)


def _check_valid(data: bytes) -> None:
    """Parses; serialise and re-parse gives an equivalent message."""
    first = parse_message(data)
    second = parse_message(first.serialize())
    assert type(second) is type(first)
    if isinstance(first, Request):
        assert isinstance(second, Request)
        assert second.method == first.method
        assert str(second.uri) == str(first.uri)
    else:
        assert isinstance(second, Response)
        assert (second.status, second.reason) == (first.status, first.reason)
    assert second.call_id == first.call_id
    assert second.cseq == first.cseq
    assert second.from_.tag == first.from_.tag
    assert second.to.tag == first.to.tag
    assert second.top_via.branch == first.top_via.branch
    assert len(second.vias) == len(first.vias)
    assert second.body == first.body
    assert second.headers.items()[:-1] == [
        item for item in first.headers.items() if item[0] != "content-length"
    ]


# -- 3.1.1 valid messages ------------------------------------------------------------


def _wsinv() -> None:
    req = _request("wsinv")
    assert _sip(req.uri).params == {"unknownparam": None}
    assert req.to.tag == "1918181833n"
    assert _sip(req.to.uri).user == "vivekg"
    assert req.from_.display == 'J Rosenberg \\"'
    assert req.from_.tag == "98asjd8"
    assert req.max_forwards == 68
    assert (req.cseq.seq, req.cseq.method) == (9, "INVITE")
    vias = [(v.transport, v.host, v.branch) for v in req.vias]
    assert vias == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert req.headers.get("subject") == ""  # "s :" with an empty value
    assert req.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert req.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert req.routes[0].uri == SipUri("services.example.com")
    assert _sip(req.routes[0].uri).params == {
        "lr": None,
        "unknownwith": "value",
        "unknown-no-value": None,
    }
    contacts = req.contacts
    assert contacts is not None and len(contacts) == 1
    assert contacts[0].display == 'Quoted string ""'
    assert contacts[0].params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert req.content_type == "application/sdp"
    assert len(req.body) == 150


def _intmeth() -> None:
    req = _request("intmeth")
    assert req.method == "!interesting-Method0123456789_*+`.%indeed'~"
    uri = _sip(req.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert req.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert req.from_.display == "token1~` token2'+_ token3*%!.-"
    assert req.from_.params["fromparam''~+*_!.-%"] == '"работающий"'
    assert req.from_.tag == "_token~1'+`*%!-."
    assert req.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert req.max_forwards == 255
    assert req.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def _esc01() -> None:
    req = _request("esc01")
    assert _sip(req.uri).user_unescaped == "sips:user@example.com"
    assert _sip(req.uri).host == "example.net"
    assert _sip(req.to.uri).user_unescaped == "user"
    assert _sip(req.from_.uri).user_unescaped == "I have spaces"
    contacts = req.contacts
    assert contacts is not None
    contact = _sip(contacts[0].uri)
    assert contact.user_unescaped == "caller"
    assert contact.has_param("lr")
    assert contact.param("lr") is None
    # Unescaping is never recursive: %25%34%31 is "%41", not "A".
    assert contact.param("name") == "value%41"


def _escnull() -> None:
    req = _request("escnull")
    assert _sip(req.to.uri).user_unescaped == "null-\x00-null"
    assert _sip(req.from_.uri).user_unescaped == "null-\x00-null"
    contacts = req.contacts
    assert contacts is not None
    assert [_sip(c.uri).user_unescaped for c in contacts] == ["\x00", "\x00\x00"]
    assert contacts[0].uri != contacts[1].uri


def _esc02() -> None:
    req = _request("esc02")
    assert req.method == "RE%47IST%45R"  # not REGISTER
    assert req.to.display == "%Z%45"
    assert req.from_.display == "%Z%45"
    assert req.contacts is not None and len(req.contacts) == 2
    assert req.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert req.top_via.branch == "z9hG4bK209%fzsnel234"


def _lwsdisp() -> None:
    req = _request("lwsdisp")
    assert req.from_.display == "caller"
    assert req.from_.tag == "323"


def _longreq() -> None:
    req = _request("longreq")
    assert req.to.display is not None and req.to.display.startswith("I have a user name of ext")
    to = _sip(req.to.uri)
    assert to.port == 6000
    assert len(to.params) == 3
    assert req.from_.tag == "1" + "298" * 50 + "2424"
    assert len(req.vias) == 34
    assert req.vias[0].host == "sip33.example.com"
    assert req.vias[-1].received == "192.0.2.5"
    assert req.vias[-1].branch is not None and req.vias[-1].branch.endswith("branchvalue")
    assert req.call_id.startswith("longreq.onereally")
    name = "Unknown-" + "Long" * 20 + "-Name"
    assert (req.headers.get(name) or "").startswith("unknown-longlong")
    assert len(req.body) == 150


def _dblreq() -> None:
    data = _load("dblreq")
    req = _request("dblreq")
    assert req.method == "REGISTER"
    assert req.body == b""
    assert req.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    assert b"INVITE sip:joe@example.com" in data  # the trailing octets are ignored
    assert "INVITE" not in req.serialize().decode()


def _semiuri() -> None:
    req = _request("semiuri")
    uri = _sip(req.uri)
    assert uri.user == "user;par=u%40example.net"
    assert uri.user_unescaped == "user;par=u@example.net"
    assert uri.host == "example.com"
    assert uri.params == {}
    assert req.header_list("accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def _transports() -> None:
    req = _request("transports")
    assert [v.transport for v in req.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert req.call_id == "transports.kijh4akdnaqjkwendsasfdj"
    # Transports survive serialisation, unknown ones included.
    assert b"SIP/2.0/UNKNOWN t4.example.com" in req.serialize()


def _mpart01() -> None:
    data = _load("mpart01")
    req = _request("mpart01")
    assert req.content_type == "multipart/mixed"
    assert req.body == data[data.index(b"\r\n\r\n") + 4 :]
    assert len(req.body) == 553
    assert b"\x00" in req.body
    assert req.body.endswith(b"--7a9cbec02ceef655--\r\n")


def _unreason() -> None:
    data = _load("unreason")
    msg = _parse("unreason")
    assert isinstance(msg, Response)
    assert msg.status == 200
    assert msg.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    first_line = data[: data.index(b"\r\n")]
    assert msg.serialize().split(b"\r\n", 1)[0] == first_line


def _noreason() -> None:
    msg = _parse("noreason")
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (100, "")
    assert msg.serialize().startswith(b"SIP/2.0 100 \r\n")


# -- 3.1.2 and 3.2: invalid, or a choice the RFC leaves open ------------------------


def _baddate() -> None:
    req = _request("baddate")
    date = req.headers.get("date")
    assert date == "Fri, 01 Jan 2010 16:00:00 EST"
    with pytest.raises(ValueError, match="GMT"):
        parse_sip_date(date)


def _badbranch() -> None:
    req = _request("badbranch")
    assert req.top_via.branch == "z9hG4bK"
    assert not req.top_via.has_rfc3261_branch  # the transaction layer decides


def _badinv01(response: Response) -> None:
    # The empty parameters are dropped so the 400 can be sent to the sent-by.
    assert response.headers.get_all("via") == ["SIP/2.0/UDP 192.0.2.15"]
    assert response.to.tag == "x1"


def _badvers(response: Response) -> None:
    assert response.top_via.protocol == "SIP/7.0"
    assert response.top_via.branch == "z9hG4bKkdjuw"


def _multi01(response: Response) -> None:
    assert response.headers.get_all("cseq") == ["5 INVITE"]
    assert response.headers.get_all("call-id") == ["multi01.98asdh@192.0.2.1"]
    assert response.from_.tag == "3413415"


def _insuf(response: Response) -> None:
    assert response.headers.get("from") is None and response.headers.get("call-id") is None
    assert response.top_via.branch == "z9hG4bKkdj.insuf"


def _escruri(response: Response) -> None:
    assert response.to.tag == "x1"


# -- 3.3 application layer: parse and expose what the engine decides on -------------


def _unkscm() -> None:
    req = _request("unkscm")
    assert not request_uri_is_sip(req)  # the engine answers 416
    assert req.uri == AbsoluteUri("nobodyknowsthisscheme", "totallyopaquecontent")
    assert isinstance(req.to.uri, SipUri)  # and must not route on To


def _novelsc() -> None:
    req = _request("novelsc")
    assert not request_uri_is_sip(req)
    assert isinstance(req.uri, AbsoluteUri) and req.uri.scheme == "soap.beep"


def _unksm2() -> None:
    req = _request("unksm2")
    assert req.to.uri == AbsoluteUri("isbn", "2983792873")  # a registrar answers 400
    assert req.from_.uri == AbsoluteUri("http", "//www.example.com")
    assert req.contacts is not None
    assert req.contacts[0].uri == AbsoluteUri("name", "John_Smith")


def _bext01() -> None:
    req = _request("bext01")
    assert req.header_list("require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert req.header_list("proxy-require") == [
        "noProxiesSupportThis",
        "norDoAnyProxiesSupportThis",
    ]


def _invut() -> None:
    req = _request("invut")
    assert req.content_type == "application/unknownformat"  # an endpoint answers 415
    assert len(req.body) == 40


def _regaut01() -> None:
    req = _request("regaut01")
    assert req.headers.get("authorization") == "NoOneKnowsThisScheme opaque-data=here"


def _bcast() -> None:
    msg = _parse("bcast")
    assert isinstance(msg, Response)
    assert msg.vias[1].host == "255.255.255.255"  # proxies drop it; not the parser


def _zeromf() -> None:
    assert _request("zeromf").max_forwards == 0


def _cparam01() -> None:
    contacts = _request("cparam01").contacts
    assert contacts is not None
    # addr-spec form: the parameter belongs to the header, not the URI.
    assert contacts[0].params == {"unknownparam": None}
    assert _sip(contacts[0].uri).params == {}
    assert _sip(contacts[0].uri).user == "+19725552222"


def _cparam02() -> None:
    contacts = _request("cparam02").contacts
    assert contacts is not None
    assert contacts[0].params == {}
    assert _sip(contacts[0].uri).params == {"unknownparam": None}


def _regescrt() -> None:
    contacts = _request("regescrt").contacts
    assert contacts is not None
    uri = _sip(contacts[0].uri)
    assert uri.headers == "Route=%3Csip:sip.example.com%3E"
    assert uri.header_fields == [("Route", "<sip:sip.example.com>")]
    assert str(uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


def _sdp01() -> None:
    req = _request("sdp01")
    assert req.header_list("accept") == ["text/nobodyKnowsThis"]
    assert req.content_type == "application/sdp"


def _inv2543() -> None:
    data = _load("inv2543")
    req = _request("inv2543")
    assert req.top_via.branch is None
    assert req.from_.tag is None
    assert req.max_forwards is None
    assert req.headers.get("content-length") is None
    assert req.body == data[data.index(b"\r\n\r\n") + 4 :]  # the rest of the datagram
    assert _sip(req.record_routes[0].uri).params == {"maddr": "ss1.example.com"}


CHECKS = {
    "wsinv": _wsinv,
    "intmeth": _intmeth,
    "esc01": _esc01,
    "escnull": _escnull,
    "esc02": _esc02,
    "lwsdisp": _lwsdisp,
    "longreq": _longreq,
    "dblreq": _dblreq,
    "semiuri": _semiuri,
    "transports": _transports,
    "mpart01": _mpart01,
    "unreason": _unreason,
    "noreason": _noreason,
    "baddate": _baddate,
    "badbranch": _badbranch,
    "unkscm": _unkscm,
    "novelsc": _novelsc,
    "unksm2": _unksm2,
    "bext01": _bext01,
    "invut": _invut,
    "regaut01": _regaut01,
    "bcast": _bcast,
    "zeromf": _zeromf,
    "cparam01": _cparam01,
    "cparam02": _cparam02,
    "regescrt": _regescrt,
    "sdp01": _sdp01,
    "inv2543": _inv2543,
}

REJECT_CHECKS = {
    "badinv01": _badinv01,
    "badvers": _badvers,
    "multi01": _multi01,
    "insuf": _insuf,
    "escruri": _escruri,
}


def test_every_valid_case_has_a_check() -> None:
    assert {n for n, c in CASES.items() if c.outcome == VALID} == set(CHECKS)


def test_scalar02_rejects_on_the_cseq() -> None:
    with pytest.raises(MessageError, match="CSeq"):
        parse_message(_load("scalar02"))


def test_mismatch_is_about_the_cseq_method() -> None:
    for name in ("mismatch01", "mismatch02"):
        with pytest.raises(MessageError, match="CSeq method"):
            parse_message(_load(name))


@pytest.mark.parametrize("name", ["ncl", "mcl01", "inv2543"])
def test_stream_framing_errors_close_the_connection(name: str) -> None:
    # Over TCP a negative, conflicting or missing Content-Length cannot be
    # recovered from (RFC 4475 3.1.2.3, 3.3.9; RFC 3261 18.3).
    with pytest.raises(FramingError):
        StreamFramer(65535).feed(_load(name))


def test_clerr_on_a_stream_waits_for_the_rest() -> None:
    # "there's not much the receiving party could do but wait for the next packet"
    framer = StreamFramer(65535)
    assert framer.feed(_load("clerr")) == []
    assert framer.buffered == len(_load("clerr"))


def test_dblreq_on_a_stream_frames_both_requests_then_fails_on_the_rest() -> None:
    # On a stream the trailing INVITE is a message of its own; its body is five
    # octets longer than its Content-Length, and those octets are no message.
    data = _load("dblreq")
    invite_end = data.index(b"\r\n\r\n", data.index(b"INVITE")) + 4 + 150
    framer = StreamFramer(65535)
    out = framer.feed(data[:invite_end])
    assert len(out) == 2
    assert isinstance(out[0], bytes) and out[0].startswith(b"REGISTER ")
    assert isinstance(out[1], bytes) and out[1].startswith(b"INVITE ")
    with pytest.raises(FramingError):
        framer.feed(data[invite_end:])
