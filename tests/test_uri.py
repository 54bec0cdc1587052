"""SIP URIs (RFC 3261 19.1): parsing, escapes, parameters, headers, IPv6, comparison."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip.uri import AbsoluteUri, SipUri, format_host, parse_uri


def _sip(text: str) -> SipUri:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    return uri


def test_full_sip_uri() -> None:
    uri = _sip("sip:alice:secret@atlanta.example.com:5070;transport=tcp;lr?subject=hi&x=")
    assert uri.scheme == "sip"
    assert (uri.user, uri.password) == ("alice", "secret")
    assert (uri.host, uri.port) == ("atlanta.example.com", 5070)
    assert uri.params == {"transport": "tcp", "lr": None}
    assert uri.headers == "subject=hi&x="
    assert uri.transport == "tcp"


def test_minimal_uris() -> None:
    assert _sip("sip:example.com") == SipUri("example.com")
    assert _sip("sips:192.0.2.4").transport == "tls"
    assert _sip("sip:192.0.2.4").transport == "udp"


def test_scheme_and_param_names_are_case_insensitive() -> None:
    uri = _sip("SIP:bob@Biloxi.Example.COM;Transport=TCP;LR")
    assert uri.scheme == "sip"
    assert uri.params == {"transport": "TCP", "lr": None}
    assert uri.transport == "tcp"
    assert uri.host == "Biloxi.Example.COM"  # kept; compared case-insensitively


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@atlanta.example.com",
        "sips:alice@atlanta.example.com:5061;transport=tls",
        "sip:+15551234567;phone-context=example.com@gw.example.com;user=phone",
        "sip:[2001:db8::1]:5060;transport=tcp;lr",
        "sip:user@example.com?Route=%3Csip:example.com%3E&Subject=a%20b",
        "sip:%61lice@example.com;maddr=239.255.255.1;ttl=15",
        "sip:a:@h",
    ],
)
def test_canonical_uris_round_trip_exactly(text: str) -> None:
    assert str(parse_uri(text)) == text


def test_escapes_in_user_part() -> None:
    uri = _sip("sip:I%20have%20spaces@example.net")
    assert uri.user == "I%20have%20spaces"
    assert uri.user_unescaped == "I have spaces"
    assert _sip("sip:null-%00-null@example.com").user_unescaped == "null-\x00-null"
    assert _sip("sip:plain@example.com").user_unescaped == "plain"


def test_semicolons_in_user_part() -> None:
    uri = _sip("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u%40example.net"
    assert uri.user_unescaped == "user;par=u@example.net"
    assert uri.params == {}


def test_escaped_param_names_and_values() -> None:
    uri = _sip("sip:caller@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert uri.has_param("lr")
    assert uri.param("lr") is None
    assert uri.param("NAME") == "value%41"  # one level of unescaping only
    assert not uri.has_param("maddr")
    assert uri.param("maddr") is None


def test_uri_headers_are_decoded_on_request() -> None:
    uri = _sip("sip:user@example.com?Route=%3Csip:sip.example.com%3E&Subject=a%20b")
    assert uri.header_fields == [("Route", "<sip:sip.example.com>"), ("Subject", "a b")]
    assert _sip("sip:user@example.com").header_fields == []


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::1]", "2001:db8::1", None),
        ("sip:alice@[2001:db8::1]:5070", "2001:db8::1", 5070),
        ("sips:[::1]:5061;transport=tls", "::1", 5061),
        ("sip:[::ffff:192.0.2.1]", "::ffff:192.0.2.1", None),
    ],
)
def test_ipv6_references(text: str, host: str, port: int | None) -> None:
    uri = _sip(text)
    assert (uri.host, uri.port) == (host, port)
    assert format_host(uri.host) == f"[{host}]"
    assert str(uri) == text


@pytest.mark.parametrize(
    "text",
    [
        "sip:[2001:db8::zz]",
        "sip:[2001:db8::1",
        "sip:2001:db8::1",
        "sip:[fe80::1%25eth0]",
        "sip:alice@example.com:65536",
        "sip:alice@example.com:123456",
        "sip:alice@example.com:",
        "sip:@example.com",
        "sip:alice@",
        "sip:",
        "sip:alice@exa mple.com",
        "sip:al ice@example.com",
        "sip:alice@example.com;x=",
        "sip:alice@example.com;;lr",
        "sip:alice@example.com;=x",
        "sip:al%4@example.com",
        "sip:al%zzice@example.com",
        "sip:alice@example.com?subject",
        "sip:alice@example.com?=x",
        "sip:alice@example_com",
        "sip:alice@example.com>",
        'sip:"alice"@example.com',
        "sip:alicé@example.com",
        "sip:alice@example.com\x00",
    ],
)
def test_malformed_sip_uris(text: str) -> None:
    with pytest.raises(ValueError):
        parse_uri(text)


@pytest.mark.parametrize(
    ("text", "scheme", "rest"),
    [
        (
            "tel:+1-201-555-0123;phone-context=example.com",
            "tel",
            "+1-201-555-0123;phone-context=example.com",
        ),
        ("TEL:+15551234", "tel", "+15551234"),
        ("http://www.example.com/a?b=c", "http", "//www.example.com/a?b=c"),
        ("urn:service:sos", "urn", "service:sos"),
        ("soap.beep://192.0.2.103:3002", "soap.beep", "//192.0.2.103:3002"),
    ],
)
def test_other_schemes_are_kept_verbatim(text: str, scheme: str, rest: str) -> None:
    uri = parse_uri(text)
    assert uri == AbsoluteUri(scheme, rest)
    assert str(uri) == f"{scheme}:{rest}"


@pytest.mark.parametrize(
    "text", ["", "nocolon", ":rest", "1tel:123", "tel:", "tel:a b", "tel:<x>", 'tel:"x"', "tél:1"]
)
def test_malformed_absolute_uris(text: str) -> None:
    with pytest.raises(ValueError):
        parse_uri(text)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        (
            "sip:biloxi.com;transport=tcp;method=REGISTER",
            "sip:biloxi.com;method=REGISTER;transport=tcp",
        ),
        ("sip:alice@atlanta.com?subject=project", "sip:alice@atlanta.com?priority=urgent"),
        ("sip:a@h;%6C%72;transport=udp", "sip:a@h;lr;%74ransport=UDP"),
    ],
)
def test_equivalent_uris_rfc3261_19_1_4(a: str, b: str) -> None:
    assert parse_uri(a) == parse_uri(b)
    assert hash(parse_uri(a)) == hash(parse_uri(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com", "sips:bob@biloxi.com"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;maddr=192.0.2.1"),
    ],
)
def test_different_uris_rfc3261_19_1_4(a: str, b: str) -> None:
    assert parse_uri(a) != parse_uri(b)


def test_with_params_copies() -> None:
    uri = _sip("sip:alice@example.com;lr")
    other = uri.with_params(transport="tcp")
    assert other.params == {"lr": None, "transport": "tcp"}
    assert uri.params == {"lr": None}


_users = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()&=+$,;?/", min_size=1)
_labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
_pnames = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()", min_size=1)
_pvalues = st.none() | st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-[]/:&+$", min_size=1)


@settings(max_examples=200, deadline=None)
@given(
    scheme=st.sampled_from(["sip", "sips"]),
    user=st.none() | _users,
    host=st.lists(_labels, min_size=1, max_size=4).map(".".join) | st.ip_addresses().map(str),
    port=st.none() | st.integers(0, 65535),
    params=st.dictionaries(_pnames, _pvalues, max_size=4),
)
def test_generated_uris_round_trip(
    scheme: str, user: str | None, host: str, port: int | None, params: dict[str, str | None]
) -> None:
    uri = SipUri(host=host, user=user, port=port, scheme=scheme, params=params)
    parsed = _sip(str(uri))
    assert str(parsed) == str(uri)
    assert parsed == uri
    assert (parsed.user, parsed.host, parsed.port, parsed.params) == (user, host, port, params)
