"""SIP requests and responses: parse from bytes, serialise to bytes.

Parsing is strict where the RFC 3261 grammar is strict (request line, the
headers a transaction routes on, numeric limits) and lenient where real
phones are sloppy. The headers a transaction needs (Via, From, To, Call-ID,
CSeq, Max-Forwards, Content-Length) are checked at parse time, so a message
that comes out of :func:`parse_message` can be routed without further checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ._grammar import WSP, SipSyntaxError, is_token, split_commas
from .headers import (
    SINGLE_HEADERS,
    CSeq,
    Headers,
    NameAddr,
    Via,
    canonical_name,
    display_name,
    parse_uint,
)
from .uri import SipUri, Uri, parse_uri

__all__ = [
    "REASONS",
    "Message",
    "MessageError",
    "ParseFailure",
    "Request",
    "Response",
    "make_response",
    "parse_message",
]

SIP_VERSION: Final = "SIP/2.0"
MAGIC_COOKIE: Final = "z9hG4bK"

REASONS: Final[dict[int, str]] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


class Message:
    """What requests and responses share: headers, body and parsed routing headers."""

    __slots__ = ("_cache", "body", "headers")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self._cache: dict[str, object] = {}

    # -- routing headers, parsed once ------------------------------------------------

    def invalidate(self) -> None:
        """Forget parsed header values after editing ``headers`` directly."""
        self._cache.clear()

    @property
    def vias(self) -> list[Via]:
        """Every Via entry, topmost first."""
        cached = self._cache.get("via")
        if cached is None:
            cached = [Via.parse(v) for v in self.headers.get_list("via")]
            self._cache["via"] = cached
        return cached  # type: ignore[return-value]

    @property
    def top_via(self) -> Via:
        """The topmost Via (raises SipSyntaxError when there is none)."""
        vias = self.vias
        if not vias:
            raise SipSyntaxError("missing Via")
        return vias[0]

    def _name_addr(self, key: str) -> NameAddr:
        cached = self._cache.get(key)
        if cached is None:
            value = self.headers.get(key)
            if value is None:
                raise SipSyntaxError(f"missing {key} header")
            cached = NameAddr.parse(value, key)
            self._cache[key] = cached
        return cached  # type: ignore[return-value]

    @property
    def from_(self) -> NameAddr:
        """The From header."""
        return self._name_addr("from")

    @property
    def to(self) -> NameAddr:
        """The To header."""
        return self._name_addr("to")

    @property
    def call_id(self) -> str:
        """The Call-ID."""
        value = self.headers.get("call-id")
        if value is None:
            raise SipSyntaxError("missing Call-ID")
        return value

    @property
    def cseq(self) -> CSeq:
        """The CSeq header."""
        cached = self._cache.get("cseq")
        if cached is None:
            value = self.headers.get("cseq")
            if value is None:
                raise SipSyntaxError("missing CSeq")
            cached = CSeq.parse(value)
            self._cache["cseq"] = cached
        return cached  # type: ignore[return-value]

    @property
    def contacts(self) -> list[NameAddr] | None:
        """Contact entries; None for the ``*`` wildcard, [] when absent."""
        values = self.headers.get_list("contact")
        if len(values) == 1 and values[0] == "*":
            return None
        return [NameAddr.parse(v, "Contact") for v in values]

    def header_list(self, name: str) -> list[str]:
        """Elements of a comma-separated list header, e.g. ``Supported``."""
        return self.headers.get_list(name)

    # -- serialisation ----------------------------------------------------------------

    def _start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        """The message as bytes, with Content-Length set from the body."""
        out = [self._start_line(), "\r\n"]
        for k, v in self.headers:
            if k != "content-length":
                out.append(f"{display_name(k)}: {v}\r\n")
        out.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        return "".join(out).encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.serialize()


class Request(Message):
    """A SIP request."""

    __slots__ = ("method", "uri")

    def __init__(
        self, method: str, uri: Uri, headers: Headers | None = None, body: bytes = b""
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards, or None when absent."""
        value = self.headers.get("max-forwards")
        return None if value is None else parse_uint(value, "Max-Forwards", 255)

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    """A SIP response."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = REASONS.get(status, "Unknown") if reason is None else reason

    @property
    def is_provisional(self) -> bool:
        """1xx."""
        return self.status < 200

    @property
    def is_success(self) -> bool:
        """2xx."""
        return 200 <= self.status < 300

    def _start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """What survives of a message that failed to parse: enough to send a 400.

    ``headers`` holds whatever header lines could be read; ``is_request`` tells
    whether to answer (requests) or drop (responses).
    """

    error: SipSyntaxError
    is_request: bool
    method: str | None
    headers: Headers


class MessageError(SipSyntaxError):
    """A message that does not parse, with what could be salvaged to answer it."""

    def __init__(self, error: SipSyntaxError, failure: ParseFailure) -> None:
        super().__init__(str(error), error.status)
        self.failure = failure


def _split_head(data: bytes) -> tuple[str, bytes]:
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        head, body = data[:end], data[end + 4 :]
    else:
        # Bare LF line ends are a common sloppiness; accept them.
        end = data.find(b"\n\n")
        if end < 0:
            head, body = data, b""
        else:
            head, body = data[:end], data[end + 2 :]
    return head.decode("utf-8", "surrogateescape"), body


def _header_lines(head: str) -> list[str]:
    lines = head.replace("\r\n", "\n").split("\n")
    # Unfold continuation lines (RFC 3261 7.3.1): a line starting with SP/HT
    # belongs to the previous header.
    out: list[str] = []
    for line in lines:
        if line and line[0] in WSP and out:
            out[-1] = out[-1].rstrip(WSP) + " " + line.strip(WSP)
        else:
            out.append(line)
    return out


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one message from ``data``.

    With ``stream=False`` (datagrams) a missing Content-Length means "the rest of
    the datagram", extra octets after Content-Length are discarded and a
    Content-Length that runs past the datagram is an error (RFC 3261 18.3).
    Raises ``MessageError`` (a ``SipSyntaxError``) on malformed input.
    """
    head, body = _split_head(data)
    lines = _header_lines(head)
    while lines and not lines[0]:
        lines.pop(0)  # leading CRLFs are keep-alives or garbage (RFC 3261 7.5)
    if not lines:
        error = SipSyntaxError("empty message")
        raise MessageError(error, ParseFailure(error, False, None, Headers()))
    start = lines[0]
    is_request = not start.startswith("SIP/")
    method = start.split(" ", 1)[0] if is_request else None
    headers = Headers()
    try:
        for line in lines[1:]:
            if not line:
                continue
            name, colon, value = line.partition(":")
            name = name.rstrip(WSP)
            if not colon or not is_token(name):
                raise SipSyntaxError(f"malformed header line {line[:40]!r}")
            headers._items.append((canonical_name(name), value.strip(WSP)))
        msg = _build(start, headers, body, stream)
    except SipSyntaxError as exc:
        raise MessageError(exc, ParseFailure(exc, is_request, method, headers)) from None
    return msg


def _build(start: str, headers: Headers, body: bytes, stream: bool) -> Request | Response:
    msg: Request | Response
    if start.startswith("SIP/"):
        parts = start.split(" ", 2)
        if len(parts) < 2:
            raise SipSyntaxError("bad status line")
        if parts[0] != SIP_VERSION:
            raise SipSyntaxError("unsupported SIP version", 505)
        code = parts[1]
        if len(code) != 3 or not code.isdigit() or code[0] == "0":
            raise SipSyntaxError("bad status code")
        msg = Response(int(code), parts[2] if len(parts) == 3 else "", headers)
    else:
        parts = start.split(" ")
        if len(parts) != 3 or not all(parts):
            raise SipSyntaxError("malformed request line")
        method, uri_text, version = parts
        if not is_token(method):
            raise SipSyntaxError("bad method")
        if not version.startswith("SIP/") or not version[4:].replace(".", "").isdigit():
            raise SipSyntaxError("bad SIP version")
        if version != SIP_VERSION:
            raise SipSyntaxError("unsupported SIP version", 505)
        if uri_text.startswith("<"):
            raise SipSyntaxError("Request-URI must not be enclosed in <>")
        uri = parse_uri(uri_text, "Request-URI")
        msg = Request(method, uri, headers)
    _validate(msg, headers)
    length_value = headers.get("content-length")
    if length_value is None:
        if stream:
            raise SipSyntaxError("missing Content-Length on a stream transport")
        msg.body = body
    else:
        length = parse_uint(length_value, "Content-Length", 2**31 - 1)
        if length > len(body):
            raise SipSyntaxError("Content-Length larger than the message body")
        msg.body = body[:length] if length < len(body) else body
    return msg


def _validate(msg: Request | Response, headers: Headers) -> None:
    seen: set[str] = set()
    for key, _ in headers:
        if key in SINGLE_HEADERS:
            if key in seen:
                raise SipSyntaxError(f"more than one {key} header")
            seen.add(key)
    for key in ("via", "from", "to", "call-id", "cseq"):
        if key not in seen and key != "via" and headers.get(key) is None:
            raise SipSyntaxError(f"missing {key} header")
    if not msg.vias:
        raise SipSyntaxError("missing Via header")
    msg.from_  # noqa: B018 - parse now so routing code can trust it
    msg.to  # noqa: B018
    call_id = msg.call_id
    if not call_id or any(c in WSP for c in call_id):
        raise SipSyntaxError("bad Call-ID")
    cseq = msg.cseq
    if isinstance(msg, Request):
        if cseq.method != msg.method:
            raise SipSyntaxError("CSeq method does not match the request method")
        msg.max_forwards  # noqa: B018
        if msg.method == "INVITE" or msg.method == "REGISTER":
            value = headers.get("expires")
            if value is not None and value.strip(WSP).isdigit():
                parse_uint(value, "Expires", 2**32 - 1)
    for value in headers.get_all("contact"):
        for item in split_commas(value):
            if item != "*":
                NameAddr.parse(item, "Contact")


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
) -> Response:
    """A response to ``request`` with Via, From, To, Call-ID and CSeq copied (RFC 3261 8.2.6).

    ``to_tag`` is added to To unless the request already carries one. 100 Trying
    never carries a tag and echoes Timestamp.
    """
    headers = Headers()
    items = headers._items
    for key, value in request.headers:
        if key == "via" or key == "from" or key == "call-id" or key == "cseq":
            items.append((key, value))
        elif key == "to":
            if to_tag is not None and status != 100 and request.to.tag is None:
                value = f"{value};tag={to_tag}"
            items.append((key, value))
        elif key == "timestamp" and status == 100:
            items.append((key, value))
    # Record-Route is copied into responses that may create dialogs (12.1.1).
    if 100 < status < 300 and request.method in ("INVITE", "SUBSCRIBE", "REFER"):
        for value in request.headers.get_all("record-route"):
            items.append(("record-route", value))
    return Response(status, reason, headers)


def salvage_response(failure: ParseFailure, status: int, reason: str) -> Response | None:
    """An error response built from a request that did not parse, if it can be routed.

    Needs at least a Via, From, To, Call-ID and CSeq line to be copied; without
    them nobody could match the answer, so None tells the caller to drop it.
    """
    headers = Headers()
    for key in ("via", "from", "to", "call-id", "cseq"):
        values = failure.headers.get_all(key)
        if not values:
            return None
        for value in values:
            headers.add(key, value)
    try:
        Via.parse(split_commas(headers.get("via") or "")[0])
    except (SipSyntaxError, IndexError):
        return None
    return Response(status, reason, headers)


def request_uri_is_sip(req: Request) -> bool:
    """True when the Request-URI is sip: or sips: (else a UAS answers 416)."""
    return isinstance(req.uri, SipUri)
