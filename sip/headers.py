"""Header names, the header container and the structured headers SIP routes on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NoReturn

from ._grammar import (
    BARE_IPV6_PARAMS,
    HEADER_PARAMS,
    HOSTNAME,
    IPV6_REF,
    QUOTED,
    TOKEN,
    WSP,
    SipSyntaxError,
    find_unquoted,
    format_params,
    params_from_valid,
    parse_params,
    quote,
    split_commas,
    unquote,
)
from .uri import (
    ADDR_SPEC_PATTERN,
    SIP_URI_PATTERN,
    Uri,
    format_host,
    parse_host,
    parse_uri,
    sip_uri_from_groups,
)

__all__ = [
    "CSeq",
    "Headers",
    "NameAddr",
    "Via",
    "canonical_name",
    "parse_sip_date",
    "parse_uint",
]

_COMPACT = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "r": "refer-to",
    "b": "referred-by",
    "u": "allow-events",
    "x": "session-expires",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
    "y": "identity",
}

_DISPLAY = {
    name.lower(): name
    for name in [
        "Accept",
        "Accept-Contact",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Authentication-Info",
        "Authorization",
        "Call-ID",
        "Call-Info",
        "Contact",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Date",
        "Error-Info",
        "Event",
        "Expires",
        "From",
        "Identity",
        "In-Reply-To",
        "Max-Forwards",
        "Min-Expires",
        "Min-SE",
        "MIME-Version",
        "Organization",
        "P-Asserted-Identity",
        "Priority",
        "Privacy",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "RAck",
        "Reason",
        "Record-Route",
        "Refer-To",
        "Referred-By",
        "Reject-Contact",
        "Replaces",
        "Reply-To",
        "Request-Disposition",
        "Require",
        "Retry-After",
        "Route",
        "RSeq",
        "Server",
        "Session-Expires",
        "Subject",
        "Subscription-State",
        "Supported",
        "Timestamp",
        "To",
        "Unsupported",
        "User-Agent",
        "Via",
        "Warning",
        "WWW-Authenticate",
    ]
}

# Headers that must appear at most once; a second copy is a 400 (RFC 4475 multi01).
SINGLE_HEADERS = frozenset(
    [
        "call-id",
        "cseq",
        "from",
        "to",
        "max-forwards",
        "content-length",
        "content-type",
        "expires",
        "min-expires",
    ]
)


def canonical_name(name: str) -> str:
    """The lower-case long form of a header name (compact forms expanded)."""
    key = name.lower()
    return _COMPACT.get(key, key)


def display_name(key: str) -> str:
    """The conventional spelling of a header from its lower-case key."""
    return _DISPLAY.get(key) or "-".join(p.capitalize() for p in key.split("-"))


class Headers:
    """An ordered multi-map of SIP headers with case-insensitive, compact-aware lookup.

    Entries are ``(key, value)`` with ``key`` the lower-case long name. Several
    lines of one header are kept as several entries, as received.
    """

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = items if items is not None else []

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        key = canonical_name(name)
        for k, v in self._items:
            if k == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every line's value of ``name``, in order."""
        key = canonical_name(name)
        return [v for k, v in self._items if k == key]

    def get_list(self, name: str) -> list[str]:
        """Every element of a comma-separated list header, across all its lines."""
        out: list[str] = []
        for value in self.get_all(name):
            out.extend(split_commas(value))
        return out

    def count(self, name: str) -> int:
        """How many lines of ``name`` there are."""
        key = canonical_name(name)
        return sum(1 for k, _ in self._items if k == key)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def add(self, name: str, value: str) -> None:
        """Append a header line."""
        self._items.append((canonical_name(name), _checked(value)))

    def prepend(self, name: str, value: str) -> None:
        """Insert a header line before all others (used for Via)."""
        self._items.insert(0, (canonical_name(name), _checked(value)))

    def set(self, name: str, value: str) -> None:
        """Replace every line of ``name`` with one line holding ``value``."""
        key = canonical_name(name)
        _checked(value)
        for i, (k, _) in enumerate(self._items):
            if k == key:
                self._items[i] = (key, value)
                self._items[i + 1 :] = [it for it in self._items[i + 1 :] if it[0] != key]
                return
        self._items.append((key, value))

    def remove(self, name: str) -> None:
        """Drop every line of ``name``."""
        key = canonical_name(name)
        self._items = [it for it in self._items if it[0] != key]

    def copy(self) -> Headers:
        """A shallow copy."""
        return Headers(list(self._items))

    def items(self) -> list[tuple[str, str]]:
        """The ``(key, value)`` entries in order."""
        return list(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def serialize_into(self, out: list[str]) -> None:
        """Append ``Name: value\\r\\n`` lines to ``out``."""
        for k, v in self._items:
            out.append(f"{display_name(k)}: {v}\r\n")


def _checked(value: str) -> str:
    # A CR or LF in a value would end the header line early and let whatever
    # follows pose as headers of its own (header injection).
    if "\r" in value or "\n" in value:
        raise ValueError(f"CR or LF in header value {value[:40]!r}")
    return value


@dataclass(slots=True)
class NameAddr:
    """A ``name-addr`` or ``addr-spec`` with header parameters (From, To, Contact, Route).

    In addr-spec form (no ``<>``) everything after the first ';' is a header
    parameter, never a URI parameter (RFC 3261 20.10, RFC 4475 cparam01).
    """

    uri: Uri
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (dialog identification)."""
        return self.params.get("tag")

    @classmethod
    def parse(cls, text: str, what: str = "name-addr") -> NameAddr:
        """Parse ``"Name" <uri>;params``, ``Name <uri>;params`` or ``uri;params``."""
        text = text.strip(WSP)
        # Fast path: a SIP URI, checked with the display name and parameters in
        # one match; anything else (other schemes, errors) takes the slow path.
        m = _SIP_NAME_ADDR_RE.fullmatch(text)
        if m is not None:
            g = m.groups()
            quoted, tokens, param_text = g[0], g[1], g[9]
            uri: Uri = sip_uri_from_groups(g[2:9], what)
        else:
            m = _SIP_ADDR_SPEC_RE.fullmatch(text)
            if m is None:
                return cls._parse_general(text, what)
            g = m.groups()
            quoted = tokens = None
            param_text = g[5]
            uri = sip_uri_from_groups((*g[:5], None, None), what)
        display: str | None = None
        if quoted is not None:
            display = quoted[1:-1]
            if "\\" in display:
                display = _QUOTED_PAIR_RE.sub(r"\1", display)
        elif tokens is not None:
            display = " ".join(tokens.split())
        return cls(uri, display, params_from_valid(param_text, what) if param_text else {})

    @classmethod
    def _parse_general(cls, text: str, what: str) -> NameAddr:
        m = _NAME_ADDR_RE.match(text)
        display: str | None = None
        if m is not None:
            quoted, tokens, uri_text = m.groups()
            if quoted is not None:
                display = unquote(quoted)
            elif tokens is not None:
                display = " ".join(tokens.split())
        else:
            m = _ADDR_SPEC_RE.match(text)
            if m is None or "<" in text:
                _diagnose_name_addr(text, what)
            uri_text = m.group()
        rest = text[m.end() :]
        uri = parse_uri(uri_text, what)
        params: dict[str, str | None] = {}
        if rest:
            if rest.lstrip(WSP)[:1] != ";":
                if display is None and text[0] != "<":
                    raise SipSyntaxError(f"addr-spec with reserved characters in {what}; use <>")
                raise SipSyntaxError(f"garbage after address in {what}")
            params = parse_params(rest, what)
        return cls(uri=uri, display=display, params=params)

    def __str__(self) -> str:
        head = f"{quote(self.display)} " if self.display else ""
        return f"{head}<{self.uri}>{format_params(self.params)}"


_DISPLAY_NAME = rf"(?:({QUOTED})|({TOKEN}(?:[ \t]++{TOKEN})*+))?[ \t]*+"
_SIP_NAME_ADDR_RE = re.compile(rf"{_DISPLAY_NAME}<{SIP_URI_PATTERN}>({HEADER_PARAMS})")
_SIP_ADDR_SPEC_RE = re.compile(rf"{ADDR_SPEC_PATTERN}({HEADER_PARAMS})")
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.S)
# name-addr: optional display name (quoted string, or tokens separated by LWS),
# then the URI in angle brackets; LWS before '<' is optional (RFC 4475 lwsdisp).
_NAME_ADDR_RE = re.compile(rf"{_DISPLAY_NAME}<([^<>]*+)>")
# addr-spec: a URI that cannot hold ';', ',', '?' or LWS, else it would need <>.
_ADDR_SPEC_RE = re.compile(r'[^ \t;,?<>"]++')


def _diagnose_name_addr(text: str, what: str) -> NoReturn:
    if not text:
        raise SipSyntaxError(f"empty {what}")
    lt = find_unquoted(text, "<")  # raises on an unterminated quoted string
    if lt < 0:
        if text[0] == '"':
            raise SipSyntaxError(f"display name without <uri> in {what}")
        raise SipSyntaxError(f"addr-spec with reserved characters in {what}; use <>")
    if text.find(">", lt) < 0:
        raise SipSyntaxError(f"unterminated <...> in {what}")
    display_text = text[:lt].strip(WSP)
    if display_text[:1] == '"':
        unquote(display_text)
    raise SipSyntaxError(f"bad display name in {what}")


@dataclass(slots=True)
class Via:
    """One Via entry: ``SIP/2.0/UDP host:port;branch=...;rport;received=...``.

    ``protocol`` is the sent-protocol name and version (``SIP/2.0``); the grammar
    allows other tokens there, and a response to a request from another version
    must still be routable (RFC 4475 badvers).
    """

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter (the transaction id when it has the magic cookie)."""
        return self.params.get("branch")

    @property
    def has_rfc3261_branch(self) -> bool:
        """True when the branch starts with the magic cookie and has an id after it.

        A bare ``z9hG4bK`` (RFC 4475 badbranch) claims RFC 3261 matching but gives
        nothing to match on.
        """
        branch = self.params.get("branch")
        return branch is not None and len(branch) > 7 and branch.startswith("z9hG4bK")

    @property
    def received(self) -> str | None:
        """The ``received`` address, IPv6 without brackets (RFC 5118 allows both forms)."""
        value = self.params.get("received")
        if value and value[0] == "[":
            return value[1:-1]
        return value

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one Via value (no commas); LWS is allowed around '/', ':', ';' and '='."""
        text = text.strip(WSP)
        m = _VIA_RE.fullmatch(text)
        if m is None:
            if _VIA_PROTOCOL_RE.match(text) is None:
                raise SipSyntaxError("bad sent-protocol in Via")
            if _VIA_SENT_BY_RE.match(text) is None:
                raise SipSyntaxError("bad sent-by in Via")
            raise SipSyntaxError("bad parameter in Via")
        name, version, transport, host, port_text, param_text = m.groups()
        if host[0] == "[":
            host = parse_host(host, "Via")
        port = None
        if port_text is not None:
            port = int(port_text)
            if port > 65535:
                raise SipSyntaxError("port out of range in Via")
        params = params_from_valid(param_text, "Via", _VIA_BARE_IPV6) if param_text else {}
        protocol = _PROTOCOL if name == "SIP" and version == "2.0" else f"{name}/{version}"
        return cls(transport.upper(), host, port, params, protocol)

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return (
            f"{self.protocol}/{self.transport} {format_host(self.host)}{port}"
            f"{format_params(self.params)}"
        )


_VIA_PROTOCOL = rf"({TOKEN})[ \t]*+/[ \t]*+({TOKEN})[ \t]*+/[ \t]*+({TOKEN})[ \t]++"
_VIA_SENT_BY = rf"({HOSTNAME}|{IPV6_REF})(?:[ \t]*+:[ \t]*+([0-9]{{1,5}}+))?"
_VIA_PROTOCOL_RE = re.compile(_VIA_PROTOCOL)
# sent-protocol and sent-by: a Via with its parameters cut off (used to repair one).
_VIA_SENT_BY_RE = re.compile(_VIA_PROTOCOL + _VIA_SENT_BY)
_VIA_RE = re.compile(rf"{_VIA_PROTOCOL}{_VIA_SENT_BY}({BARE_IPV6_PARAMS})")
_VIA_BARE_IPV6 = frozenset(["received"])
_PROTOCOL = "SIP/2.0"


@dataclass(frozen=True, slots=True)
class CSeq:
    """The CSeq header: sequence number and method."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """Parse ``123 INVITE``; the number must fit in 32 bits (RFC 3261 8.1.1.5)."""
        m = _CSEQ_RE.fullmatch(text.strip(WSP))
        if m is None:
            raise SipSyntaxError("bad CSeq")
        seq = int(m.group(1))
        if seq > 0xFFFFFFFF:
            raise SipSyntaxError("CSeq number too large")
        return cls(seq, m.group(2))

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


_CSEQ_RE = re.compile(rf"([0-9]{{1,10}}+)[ \t]++({TOKEN})")
_UINT_RE = re.compile(r"[0-9]{1,10}")


def parse_uint(text: str, what: str, limit: int) -> int:
    """Parse a non-negative decimal header value no greater than ``limit``."""
    text = text.strip(WSP)
    if _UINT_RE.fullmatch(text) is None:
        raise SipSyntaxError(f"bad {what}")
    value = int(text)
    if value > limit:
        raise SipSyntaxError(f"{what} too large")
    return value


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SIP_DATE_RE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) (" + "|".join(_MONTHS) + r") ([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT"
)


def parse_sip_date(text: str) -> datetime:
    """Parse a Date header value (RFC 3261 20.17: RFC 1123 form, GMT only).

    Any other zone is a syntax error (RFC 4475 baddate). The parser keeps Date
    as text and never calls this itself: a Date the engine does not use is no
    reason to reject a request.
    """
    m = _SIP_DATE_RE.fullmatch(text.strip(WSP))
    if m is None:
        raise SipSyntaxError("bad Date (RFC 1123 form in GMT expected)")
    day, month, year, hour, minute, second = m.groups()
    try:
        return datetime(
            int(year),
            _MONTHS.index(month) + 1,
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=UTC,
        )
    except ValueError:
        raise SipSyntaxError("bad Date") from None
