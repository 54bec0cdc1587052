"""SIP requests and responses: parse from bytes, serialise to bytes.

Parsing is strict where the RFC 3261 grammar is strict (request line, the
headers a transaction routes on, numeric limits) and lenient where real
phones are sloppy (bare LF line ends, LWS in odd places). The headers a
transaction or dialog needs (Via, From, To, Call-ID, CSeq, Max-Forwards,
Contact, Route, Record-Route, Content-Length) are checked at parse time, so a
message that comes out of :func:`parse_message` can be routed without
further checks; other headers are kept as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from ._grammar import WSP, SipSyntaxError, parse_params, split_commas, split_list
from ._parse import (
    SIP_VERSION,
    HeaderBlock,
    find_head_end,
    is_status_line,
    parse_content_length,
    read_head,
    split_request_line,
    split_status_line,
)
from .headers import _VIA_SENT_BY_RE, CSeq, Headers, NameAddr, Via, display_name, parse_uint
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
    "request_uri_is_sip",
    "salvage_response",
]
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
    """What requests and responses share: headers, body and parsed routing headers.

    The routing headers are parsed once and cached; after editing ``headers``
    directly, call :meth:`invalidate`.
    """

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
            cached = _parse_vias(self.headers.get_all("via"))
            self._cache["via"] = cached
        return cached  # type: ignore[return-value]

    @property
    def top_via(self) -> Via:
        """The topmost Via (raises SipSyntaxError when there is none)."""
        vias = self.vias
        if not vias:
            raise SipSyntaxError("missing Via")
        return vias[0]

    def replace_top_via(self, via: Via) -> None:
        """Make ``via`` the topmost Via, in the header text as well as the parsed list.

        Responses copy Via lines verbatim (:func:`make_response`), so an
        edited top Via must be written back into the text, not only into the
        parsed object. Other entries on the same line stay as they were.
        """
        vias = self.vias
        if not vias:
            raise SipSyntaxError("missing Via")
        items = self.headers.items()
        for i, (name, value) in enumerate(items):
            if name == "via":
                rest = split_commas(value)[1:] if "," in value else []
                items[i] = ("via", ", ".join([str(via), *rest]))
                # A new Headers: whoever holds the old one (a request being
                # resent, say) keeps the text it had.
                self.headers = Headers(items)
                vias[0] = via
                return

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
        if "contact" not in self._cache:
            self._cache["contact"] = _parse_contacts(self.headers.get_all("contact"))
        return self._cache["contact"]  # type: ignore[return-value]

    @property
    def routes(self) -> list[NameAddr]:
        """Route entries in order (the route set a request follows)."""
        return self._addresses("route")

    @property
    def record_routes(self) -> list[NameAddr]:
        """Record-Route entries in order."""
        return self._addresses("record-route")

    def _addresses(self, key: str) -> list[NameAddr]:
        cached = self._cache.get(key)
        if cached is None:
            cached = _parse_addresses(self.headers.get_all(key), key)
            self._cache[key] = cached
        return cached  # type: ignore[return-value]

    @property
    def content_type(self) -> str | None:
        """The media type of the body (``type/subtype``, lower-cased, no parameters)."""
        value = self.headers.get("content-type")
        if value is None:
            return None
        return value.partition(";")[0].strip(WSP).lower()

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
        if "max-forwards" not in self._cache:
            value = self.headers.get("max-forwards")
            hops = None if value is None else parse_uint(value, "Max-Forwards", 255)
            self._cache["max-forwards"] = hops
        return self._cache["max-forwards"]  # type: ignore[return-value]

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


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one message from ``data``.

    With ``stream=False`` (datagrams) a missing Content-Length means "the rest of
    the datagram", extra octets after Content-Length are discarded (RFC 4475
    dblreq) and a Content-Length that runs past the datagram is an error (RFC
    3261 18.3). With ``stream=True`` ``data`` is one message as framed by
    :class:`sip.framing.StreamFramer`: Content-Length is mandatory and must match.
    Raises ``MessageError`` (a ``SipSyntaxError``) on malformed input.
    """
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")  # CRLFs before the start line (RFC 3261 7.5)
    head_end = data.find(b"\r\n\r\n")
    body_start = head_end + 4
    if head_end < 0:
        head_end = body_start = len(data)
    block = read_head(data[:head_end].decode("utf-8", "surrogateescape"))
    if block.bare_lf:
        # With bare LF line ends the blank line may be an earlier LF LF.
        lf_end, lf_body = find_head_end(data)
        if 0 <= lf_end < head_end:
            head_end, body_start = lf_end, lf_body
            block = read_head(data[:head_end].decode("utf-8", "surrogateescape"))
    try:
        return _build(block, data, body_start, stream)
    except SipSyntaxError as exc:
        is_request = not is_status_line(block.start)
        method = block.start.split(" ", 1)[0] if is_request and block.start else None
        failure = ParseFailure(exc, is_request, method, Headers(block.items))
        raise MessageError(exc, failure) from None


def _build(block: HeaderBlock, data: bytes, body_start: int, stream: bool) -> Request | Response:
    if not block.start:
        raise block.error or SipSyntaxError("empty message")
    msg: Request | Response
    if is_status_line(block.start):
        status, reason = split_status_line(block.start)
        msg = Response(status, reason, Headers(block.items))
    else:
        method, uri_text = split_request_line(block.start)
        uri = parse_uri(uri_text, "Request-URI")
        # RFC 3261 19.1.1: headers are not allowed in a Request-URI (RFC 4475 escruri).
        if isinstance(uri, SipUri) and uri.headers is not None:
            raise SipSyntaxError("headers in the Request-URI")
        msg = Request(method, uri, Headers(block.items))
    if block.error is not None:
        raise block.error
    _validate(msg, block)
    length_value = block.singles.get("content-length")
    available = len(data) - body_start
    if length_value is None:
        if stream:
            raise SipSyntaxError("missing Content-Length on a stream transport")
        msg.body = data[body_start:]
        return msg
    length = parse_content_length(length_value)
    if length > available:
        raise SipSyntaxError("Content-Length larger than the message body")
    if stream and length < available:
        raise SipSyntaxError("octets after the body on a stream transport")
    msg.body = data[body_start : body_start + length]
    return msg


def _validate(msg: Request | Response, block: HeaderBlock) -> None:
    """Parse the routing headers now, so the layers above can trust them."""
    singles = block.singles
    lists = block.lists
    cache = msg._cache
    try:
        from_, to, call_id, cseq_value = (
            singles["from"],
            singles["to"],
            singles["call-id"],
            singles["cseq"],
        )
    except KeyError as exc:
        raise SipSyntaxError(f"missing {exc.args[0]} header") from None
    vias = _parse_vias(lists["via"])
    if not vias:
        raise SipSyntaxError("missing Via header")
    cache["via"] = vias
    cache["from"] = NameAddr.parse(from_, "from")
    cache["to"] = NameAddr.parse(to, "to")
    if _CALL_ID_RE.fullmatch(call_id) is None:
        raise SipSyntaxError("bad Call-ID")
    cseq = CSeq.parse(cseq_value)
    cache["cseq"] = cseq
    if isinstance(msg, Request):
        if cseq.method != msg.method:
            raise SipSyntaxError("CSeq method does not match the request method")
        value = singles.get("max-forwards")
        cache["max-forwards"] = None if value is None else parse_uint(value, "Max-Forwards", 255)
    values = lists["contact"]
    cache["contact"] = _parse_contacts(values) if values else []
    values = lists["route"]
    cache["route"] = _parse_addresses(values, "route") if values else []
    values = lists["record-route"]
    cache["record-route"] = _parse_addresses(values, "record-route") if values else []


# Call-ID is a 'word [@ word]' in RFC 3261; any visible ASCII is taken, since
# phones stray from 'word' and nothing routes on its characters.
_CALL_ID_RE = re.compile(r"[!-~]++")


def _parse_vias(values: list[str]) -> list[Via]:
    out: list[Via] = []
    for value in values:
        if "," in value:
            out.extend(Via.parse(item) for item in split_list(value, "Via"))
        else:
            out.append(Via.parse(value))
    return out


def _parse_contacts(values: list[str]) -> list[NameAddr] | None:
    if len(values) == 1 and values[0].strip(WSP) == "*":
        return None
    out: list[NameAddr] = []
    for value in values:
        for item in split_list(value, "Contact"):
            if item == "*":
                raise SipSyntaxError("Contact * mixed with other contacts")
            out.append(NameAddr.parse(item, "Contact"))
    return out


def _parse_addresses(values: list[str], what: str) -> list[NameAddr]:
    return [NameAddr.parse(item, what) for value in values for item in split_list(value, what)]


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


def salvage_response(
    failure: ParseFailure, status: int, reason: str, *, to_tag: str | None = None
) -> Response | None:
    """An error response built from a request that did not parse, if it can be routed.

    Needs a top Via to send it back along and a CSeq for the client to match it
    (RFC 3261 17.1.3); without either, None tells the caller to drop the request.
    A top Via with broken parameters (RFC 4475 badinv01) is copied with those
    parameters removed. From, To and Call-ID are copied when present, the first
    of each if repeated (RFC 4475 multi01); ``to_tag`` is added to a To that
    parses and has none.
    """
    source = failure.headers
    vias = _salvage_vias(source.get_all("via"))
    cseq = source.get("cseq")
    if not vias or cseq is None or "\r" in cseq:
        return None
    headers = Headers()
    for via in vias:
        headers.add("via", via)
    for key in ("from", "to", "call-id"):
        value = source.get(key)
        if value is None or "\r" in value:
            continue
        if key == "to" and to_tag is not None and status != 100:
            try:
                if NameAddr.parse(value, "To").tag is None:
                    value = f"{value};tag={to_tag}"
            except SipSyntaxError:
                pass
        headers.add(key, value)
    headers.add("cseq", cseq)
    return Response(status, reason, headers)


def _salvage_vias(values: list[str]) -> list[str]:
    """The Via entries worth copying: the top one (repaired if need be), then the
    ones below it up to the first that does not parse."""
    items: list[str] = []
    try:
        for value in values:
            items.extend(split_commas(value))
    except SipSyntaxError:
        pass
    if not items:
        return []
    top = _repair_via(items[0])
    if top is None:
        return []
    out = [top]
    for item in items[1:]:
        try:
            Via.parse(item)
        except SipSyntaxError:
            break
        out.append(item)
    return out


def _repair_via(text: str) -> str | None:
    if "\r" in text:
        return None
    try:
        Via.parse(text)
        return text
    except SipSyntaxError:
        pass
    text = text.strip(WSP)
    m = _VIA_SENT_BY_RE.match(text)
    if m is None:
        return None
    kept = ""
    for chunk in text[m.end() :].split(";")[1:]:
        try:
            if parse_params(";" + chunk, "Via", frozenset(["received"])):
                kept += ";" + chunk.strip(WSP)
        except SipSyntaxError:
            continue
    try:
        return str(Via.parse(text[: m.end()] + kept))
    except SipSyntaxError:
        return None


def request_uri_is_sip(req: Request) -> bool:
    """True when the Request-URI is sip: or sips: (else a UAS answers 416)."""
    return isinstance(req.uri, SipUri)
