"""Header names, the header container and the structured headers SIP routes on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ._grammar import (
    DIGITS,
    TOKEN_CHARS,
    WSP,
    SipSyntaxError,
    find_unquoted,
    format_params,
    is_token,
    parse_params,
    quote,
    split_commas,
    unquote,
)
from .uri import SipUri, Uri, format_host, parse_uri, split_hostport

__all__ = [
    "CSeq",
    "Headers",
    "NameAddr",
    "Via",
    "canonical_name",
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

# Headers whose value is a comma-separated list (RFC 3261 7.3.1) and may be split.
LIST_HEADERS = frozenset(
    [
        "via",
        "contact",
        "route",
        "record-route",
        "allow",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "allow-events",
        "content-encoding",
        "in-reply-to",
    ]
)
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
        self._items.append((canonical_name(name), value))

    def prepend(self, name: str, value: str) -> None:
        """Insert a header line before all others (used for Via)."""
        self._items.insert(0, (canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every line of ``name`` with one line holding ``value``."""
        key = canonical_name(name)
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


@dataclass(slots=True)
class NameAddr:
    """A ``name-addr`` or ``addr-spec`` with header parameters (From, To, Contact, Route)."""

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
        if not text:
            raise SipSyntaxError(f"empty {what}")
        lt = find_unquoted(text, "<")
        if lt >= 0:
            display_text = text[:lt].strip(WSP)
            gt = text.find(">", lt)
            if gt < 0:
                raise SipSyntaxError(f"unterminated <...> in {what}")
            uri = parse_uri(text[lt + 1 : gt], what)
            rest = text[gt + 1 :].lstrip(WSP)
            display: str | None = None
            if display_text:
                if display_text[0] == '"':
                    display = unquote(display_text)
                else:
                    for word in display_text.split():
                        if not is_token(word):
                            raise SipSyntaxError(f"bad display name in {what}")
                    display = " ".join(display_text.split())
        else:
            if text[0] == '"':
                raise SipSyntaxError(f"display name without <uri> in {what}")
            semi = text.find(";")
            uri_text, rest = (text, "") if semi < 0 else (text[:semi], text[semi:])
            # In addr-spec form a URI cannot carry ';' params, '?' headers or commas.
            if "?" in uri_text or "," in uri_text:
                raise SipSyntaxError(f"addr-spec with reserved characters in {what}; use <>")
            uri = parse_uri(uri_text.rstrip(WSP), what)
            display = None
        params: dict[str, str | None] = {}
        if rest:
            if rest[0] != ";":
                raise SipSyntaxError(f"garbage after address in {what}")
            params = parse_params(rest[1:], what)
        return cls(uri=uri, display=display, params=params)

    def __str__(self) -> str:
        head = f"{quote(self.display)} " if self.display else ""
        return f"{head}<{self.uri}>{format_params(self.params)}"


@dataclass(slots=True)
class Via:
    """One Via entry: ``SIP/2.0/UDP host:port;branch=...;rport;received=...``."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter (the transaction id when it has the magic cookie)."""
        return self.params.get("branch")

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one Via value (no commas)."""
        parts = text.split("/", 2)
        if len(parts) != 3:
            raise SipSyntaxError("bad sent-protocol in Via")
        name, version = parts[0].strip(WSP), parts[1].strip(WSP)
        rest = parts[2].lstrip(WSP)
        if name.upper() != "SIP" or version != "2.0":
            raise SipSyntaxError("bad sent-protocol in Via")
        i = 0
        while i < len(rest) and rest[i] in TOKEN_CHARS:
            i += 1
        transport = rest[:i]
        if not transport:
            raise SipSyntaxError("missing transport in Via")
        rest = rest[i:].lstrip(WSP)
        semi = find_unquoted(rest, ";")
        hostport, param_text = (rest, "") if semi < 0 else (rest[:semi], rest[semi + 1 :])
        hostport = hostport.strip(WSP)
        # LWS is allowed around the ':' of sent-by.
        if ":" in hostport and not hostport.startswith("["):
            h, _, p = hostport.partition(":")
            hostport = h.strip(WSP) + ":" + p.strip(WSP)
        host, port = split_hostport(hostport, "Via")
        params = parse_params(param_text, "Via") if semi >= 0 else {}
        return cls(transport=transport.upper(), host=host, port=port, params=params)

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return (
            f"SIP/2.0/{self.transport} {format_host(self.host)}{port}{format_params(self.params)}"
        )


@dataclass(frozen=True, slots=True)
class CSeq:
    """The CSeq header: sequence number and method."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """Parse ``123 INVITE``; the number must fit in 32 bits (RFC 3261 8.1.1.5)."""
        parts = text.split()
        if len(parts) != 2:
            raise SipSyntaxError("bad CSeq")
        num, method = parts
        if not num or len(num) > 10 or not all(c in DIGITS for c in num):
            raise SipSyntaxError("bad CSeq number")
        seq = int(num)
        if seq >= 2**31:
            raise SipSyntaxError("CSeq number too large")
        if not is_token(method):
            raise SipSyntaxError("bad CSeq method")
        return cls(seq, method)

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_uint(text: str, what: str, limit: int) -> int:
    """Parse a non-negative decimal header value no greater than ``limit``."""
    text = text.strip(WSP)
    if not text or len(text) > 10 or not all(c in DIGITS for c in text):
        raise SipSyntaxError(f"bad {what}")
    value = int(text)
    if value > limit:
        raise SipSyntaxError(f"{what} too large")
    return value


def contact_list(values: list[str]) -> list[NameAddr] | None:
    """Parse Contact values; None stands for the ``*`` wildcard."""
    if len(values) == 1 and values[0].strip(WSP) == "*":
        return None
    return [NameAddr.parse(v, "Contact") for v in values]


def host_of(uri: Uri) -> str:
    """The host of a SIP URI ('' for other schemes)."""
    return uri.host if isinstance(uri, SipUri) else ""
