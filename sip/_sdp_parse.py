"""SDP fields (RFC 4566 5, RFC 8866): the value of each line and its parser.

:mod:`sip.sdp` assembles these into session and media descriptions. Every
parser takes the text and the line number it came from and returns a value
object, or raises :class:`SdpError` naming that line. Numbers are matched with
``[0-9]`` and a bounded length before ``int()``, so neither Unicode digits nor
a 5,000-digit port can raise anything but ``SdpError``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "AUXILIARY",
    "BITS",
    "DIRECTIONS",
    "Attribute",
    "Attributed",
    "Bandwidth",
    "Connection",
    "Direction",
    "Format",
    "Line",
    "Origin",
    "Rtcp",
    "SdpError",
    "Timing",
    "is_rtp",
    "parse_attribute",
    "parse_bandwidth",
    "parse_connection",
    "parse_fmtp",
    "parse_media",
    "parse_origin",
    "parse_ptime",
    "parse_rtcp",
    "parse_rtpmap",
    "parse_timing",
    "split_lines",
    "static_format",
]


class SdpError(ValueError):
    """A session description that cannot be used.

    ``line`` is the 1-based number of the offending line when there is one,
    and ``reason`` the message without its ``line N:`` prefix. A UAS answers
    an INVITE whose SDP raises this with 400 or 488.
    """

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason if line is None else f"line {line}: {reason}")
        self.reason = reason
        self.line = line


Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
DIRECTIONS: Final[tuple[Direction, ...]] = ("sendrecv", "sendonly", "recvonly", "inactive")

# (may send, may receive) for each direction attribute (RFC 3264 5.1).
BITS: Final[dict[Direction, tuple[bool, bool]]] = {
    "sendrecv": (True, True),
    "sendonly": (True, False),
    "recvonly": (False, True),
    "inactive": (False, False),
}

# Formats that ride along with a codec rather than being one: never chosen as
# the call's codec, answered only at the codec's clock rate (RFC 4733 2.1).
AUXILIARY: Final = frozenset({"telephone-event", "cn"})

_WSP: Final = " \t"
_FIELDS = re.compile(r"[ \t]+")
_UINT = re.compile(r"[0-9]{1,20}")
_PORT = re.compile(r"([0-9]{1,5})(?:/([0-9]{1,5}))?")
_PTIME = re.compile(r"([0-9]{1,6})(?:\.[0-9]{0,6})?")
_RTPMAP = re.compile(r"([0-9]{1,3})[ \t]+([^/ \t]+)/([0-9]{1,10})(?:/([^ \t]*))?")
_FMTP = re.compile(r"([^ \t]+)(?:[ \t]+(.*))?", re.DOTALL)
_IP4_LIKE = re.compile(r"[0-9.]+")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9.])?")


@dataclass(frozen=True, slots=True)
class Line:
    """One ``<type>=<value>`` line with its 1-based number in the body."""

    number: int
    type: str
    value: str


@dataclass(frozen=True, slots=True)
class Format:
    """An RTP payload format: what ``m=`` numbers, ``a=rtpmap`` names and ``a=fmtp`` tunes."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None

    @property
    def rtpmap(self) -> str:
        """The ``a=rtpmap`` value: ``0 PCMU/8000``, ``96 opus/48000/2``."""
        channels = "" if self.channels == 1 else f"/{self.channels}"
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{channels}"

    @property
    def is_auxiliary(self) -> bool:
        """telephone-event and comfort noise accompany a codec rather than being one."""
        return self.encoding.lower() in AUXILIARY

    def same_codec(self, other: Format) -> bool:
        """Same encoding (case-insensitive, RFC 4855 3), clock rate and channels.

        Payload type numbers and fmtp are not compared: a dynamic number is
        the offerer's choice, and G.711 and telephone-event take no fmtp that
        changes what is on the wire.
        """
        return (
            self.encoding.lower() == other.encoding.lower()
            and self.clock_rate == other.clock_rate
            and self.channels == other.channels
        )


# Static payload types (RFC 3551 6), which an offer may list without a=rtpmap.
_STATIC: Final = {
    f.payload_type: f
    for f in (
        Format(0, "PCMU", 8000),
        Format(3, "GSM", 8000),
        Format(4, "G723", 8000),
        Format(5, "DVI4", 8000),
        Format(6, "DVI4", 16000),
        Format(7, "LPC", 8000),
        Format(8, "PCMA", 8000),
        Format(9, "G722", 8000),  # 8000 despite 16 kHz audio: RFC 3551 4.5.2
        Format(10, "L16", 44100, 2),
        Format(11, "L16", 44100),
        Format(12, "QCELP", 8000),
        Format(13, "CN", 8000),
        Format(14, "MPA", 90000),
        Format(15, "G728", 8000),
        Format(16, "DVI4", 11025),
        Format(17, "DVI4", 22050),
        Format(18, "G729", 8000),
        Format(31, "H261", 90000),
        Format(32, "MPV", 90000),
        Format(34, "H263", 90000),
    )
}


def static_format(payload_type: int) -> Format | None:
    """What a static payload type means without ``a=rtpmap`` (RFC 3551 6)."""
    return _STATIC.get(payload_type)


@dataclass(frozen=True, slots=True)
class Attribute:
    """One ``a=`` line (RFC 4566 5.13): a flag ``a=name`` or ``a=name:value``."""

    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class Origin:
    """The ``o=`` line (RFC 4566 5.2); ``version`` grows by one per change (RFC 3264 8)."""

    username: str
    session_id: str
    version: int
    nettype: str
    addrtype: str
    address: str

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """A ``c=`` line (RFC 4566 5.7): where media for a session or stream goes."""

    nettype: str
    addrtype: str
    address: str

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """``IN IP4`` or ``IN IP6`` for a literal address or host name."""
        addrtype = "IP6" if ":" in address else "IP4"
        _check_address(addrtype, address, None)
        return cls("IN", addrtype, address)

    @property
    def host(self) -> str:
        """The address without a multicast ``/ttl`` or ``/count`` suffix."""
        return self.address.partition("/")[0]

    @property
    def is_null(self) -> bool:
        """``0.0.0.0`` (or ``::``): send neither RTP nor RTCP there (RFC 3264 8.4)."""
        return self.host in ("0.0.0.0", "::")

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """A ``b=<bwtype>:<bandwidth>`` line (RFC 4566 5.8), e.g. ``AS:64`` in kbit/s."""

    bwtype: str
    bandwidth: int

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass(frozen=True, slots=True)
class Timing:
    """A ``t=`` line and its ``r=`` repeat lines, kept as text (RFC 4566 5.9, 5.10)."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rtcp:
    """An ``a=rtcp`` attribute (RFC 3605): the RTCP port, and address when not the RTP one."""

    port: int
    connection: Connection | None = None


class Attributed:
    """Attribute look-ups shared by the session and media levels."""

    __slots__ = ()
    attributes: list[Attribute]

    def attribute(self, name: str) -> Attribute | None:
        """The first attribute called ``name`` (case-insensitive), if any."""
        key = name.lower()
        return next((a for a in self.attributes if a.name.lower() == key), None)

    def attributes_named(self, name: str) -> list[Attribute]:
        """Every attribute called ``name``, in order."""
        key = name.lower()
        return [a for a in self.attributes if a.name.lower() == key]

    @property
    def direction(self) -> Direction | None:
        """The direction attribute at this level, if one is given (RFC 3264 5.1)."""
        for attribute in self.attributes:
            key = attribute.name.lower()
            if key in BITS:
                return key
        return None

    def set_direction(self, direction: Direction) -> None:
        """Replace any direction attribute with ``direction``, keeping its place."""
        if direction not in BITS:
            raise ValueError(f"unknown direction {direction!r}")
        kept: list[Attribute] = []
        place = None
        for attribute in self.attributes:
            if attribute.name.lower() not in BITS:
                kept.append(attribute)
            elif place is None:
                place = len(kept)
        kept.insert(len(kept) if place is None else place, Attribute(direction))
        self.attributes[:] = kept


def _show(text: str, limit: int = 40) -> str:
    """Quote remote text for an error message, cut short so logs stay readable."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def split_lines(data: bytes | str) -> list[Line]:
    """Split a body into typed lines.

    Lenient where phones are sloppy: bare LF as well as CRLF (RFC 4566 5 asks
    parsers to accept it), spaces or tabs around a line, blank lines. Octets
    that are not UTF-8 are kept by ``surrogateescape`` so a body round-trips.
    """
    if isinstance(data, str):
        try:
            data.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as exc:
            raise SdpError(f"text cannot be encoded as UTF-8: {exc.reason}") from None
        text = data
    else:
        text = data.decode("utf-8", "surrogateescape")
    lines: list[Line] = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip(" \t\r")
        if not line:
            continue
        kind = line[0]
        if len(line) < 2 or line[1] != "=" or not (kind.isascii() and kind.isalpha()):
            raise SdpError(f"expected <type>=<value>, got {_show(line)}", number)
        lines.append(Line(number, kind, line[2:]))
    return lines


def _fields(value: str) -> list[str]:
    """Split a value on runs of spaces and tabs (RFC 4566 asks for single spaces)."""
    value = value.strip(_WSP)
    return _FIELDS.split(value) if value else []


def _uint(text: str, what: str, line: int | None, maximum: int | None = None) -> int:
    if _UINT.fullmatch(text) is None:
        raise SdpError(f"{what} {_show(text)} is not a number", line)
    number = int(text)
    if maximum is not None and number > maximum:
        raise SdpError(f"{what} {number} is out of range (0-{maximum})", line)
    return number


def _check_address(addrtype: str, address: str, line: int | None) -> None:
    """Check a connection address against its address type (RFC 4566 5.7).

    IP4 and IP6 take a literal address or a host name, optionally followed by
    the multicast ``/ttl`` and ``/count`` suffixes; other types are kept as text.
    """
    host, *suffixes = address.split("/")
    for suffix in suffixes:
        _uint(suffix, "multicast TTL or address count", line)
    kind = addrtype.upper()
    if not host:
        raise SdpError("empty connection address", line)
    if kind not in ("IP4", "IP6"):
        return
    literal = _IP4_LIKE.fullmatch(host) is not None if kind == "IP4" else ":" in host
    if not literal:
        if _HOSTNAME.fullmatch(host) is None or _IP4_LIKE.fullmatch(host) is not None:
            raise SdpError(f"{_show(host)} is neither an {kind} address nor a host name", line)
        return
    try:
        if kind == "IP4":
            ipaddress.IPv4Address(host)
        else:
            ipaddress.IPv6Address(host)
    except ValueError:
        raise SdpError(f"{_show(host)} is not an {kind} address", line) from None


def parse_origin(value: str, line: int) -> Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`` (5.2)."""
    parts = _fields(value)
    if len(parts) != 6:
        raise SdpError(
            "o= needs 6 fields (username, session id, version, nettype, addrtype,"
            f" address), got {len(parts)}",
            line,
        )
    username, session_id, version, nettype, addrtype, address = parts
    _check_address(addrtype, address, line)
    return Origin(
        username, session_id, _uint(version, "o= version", line), nettype, addrtype, address
    )


def parse_connection(value: str, line: int | None) -> Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (5.7)."""
    parts = _fields(value)
    if len(parts) != 3:
        raise SdpError(f"c= needs 3 fields (nettype, addrtype, address), got {len(parts)}", line)
    _check_address(parts[1], parts[2], line)
    return Connection(*parts)


def parse_bandwidth(value: str, line: int) -> Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (5.8)."""
    bwtype, colon, amount = value.partition(":")
    if not colon or not bwtype:
        raise SdpError(f"b= must be <bwtype>:<bandwidth>, got {_show(value)}", line)
    return Bandwidth(bwtype, _uint(amount.strip(_WSP), "b= bandwidth", line))


def parse_timing(value: str, line: int) -> Timing:
    """``t=<start-time> <stop-time>`` (5.9)."""
    parts = _fields(value)
    if len(parts) != 2:
        raise SdpError(f"t= needs 2 fields (start, stop), got {len(parts)}", line)
    return Timing(_uint(parts[0], "t= start time", line), _uint(parts[1], "t= stop time", line))


def is_rtp(proto: str) -> bool:
    """Whether a transport is an RTP profile (RTP/AVP, RTP/SAVPF, UDP/TLS/RTP/SAVP...)."""
    return "RTP/" in proto.upper()


def parse_media(value: str, line: int) -> tuple[str, int, int | None, str, list[str]]:
    """``m=<media> <port>[/<number of ports>] <proto> <fmt> ...`` (5.14).

    For an RTP profile every format must be a payload type number, 0-127
    (RFC 3551 3); a stream in use must list at least one format.
    """
    parts = _fields(value)
    if len(parts) < 3:
        raise SdpError(f"m= needs media, port, proto and formats, got {_show(value)}", line)
    media, port_text, proto, *formats = parts
    match = _PORT.fullmatch(port_text)
    if match is None:
        raise SdpError(f"m= port {_show(port_text)} is not a number", line)
    port = _uint(match[1], "m= port", line, 65535)
    count = None if match[2] is None else _uint(match[2], "m= port count", line, 65535)
    if count == 0:
        raise SdpError("m= port count must be at least 1", line)
    if not formats and port != 0:
        raise SdpError("m= line lists no formats", line)
    if is_rtp(proto):
        for fmt in formats:
            if _UINT.fullmatch(fmt) is None or int(fmt) > 127:
                raise SdpError(f"m= format {_show(fmt)} is not an RTP payload type (0-127)", line)
    return media, port, count, proto, formats


def parse_rtpmap(value: str, line: int | None) -> Format:
    """``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`` (RFC 4566 6)."""
    match = _RTPMAP.fullmatch(value.strip(_WSP))
    if match is None:
        raise SdpError(
            f"a=rtpmap must be <payload type> <encoding>/<clock rate>, got {_show(value)}", line
        )
    payload_type = _uint(match[1], "a=rtpmap payload type", line, 127)
    clock_rate = _uint(match[3], "a=rtpmap clock rate", line)
    channels = 1 if match[4] is None else _uint(match[4], "a=rtpmap channel count", line)
    if clock_rate == 0 or channels == 0:
        raise SdpError("a=rtpmap clock rate and channel count must not be 0", line)
    return Format(payload_type, match[2], clock_rate, channels)


def parse_fmtp(value: str, line: int | None) -> tuple[str, str]:
    """``a=fmtp:<format> <format specific parameters>`` (RFC 4566 6)."""
    match = _FMTP.fullmatch(value.strip(_WSP))
    if match is None:
        raise SdpError("a=fmtp names no format", line)
    return match[1], match[2] or ""


def parse_ptime(value: str, what: str, line: int | None) -> int:
    """``a=ptime`` or ``a=maxptime`` in milliseconds.

    RFC 8866 6.4 allows a decimal value; G.711 packets are whole milliseconds,
    so it is rounded (and never below 1).
    """
    text = value.strip(_WSP)
    if _PTIME.fullmatch(text) is None:
        raise SdpError(f"a={what} {_show(text)} is not a number of milliseconds", line)
    milliseconds = float(text)
    if milliseconds == 0:
        raise SdpError(f"a={what} must be greater than 0", line)
    return max(1, round(milliseconds))


def parse_rtcp(value: str, line: int | None) -> Rtcp:
    """``a=rtcp:<port> [<nettype> <addrtype> <connection-address>]`` (RFC 3605 2.1)."""
    parts = _fields(value)
    if not parts:
        raise SdpError("a=rtcp names no port", line)
    port = _uint(parts[0], "a=rtcp port", line, 65535)
    if len(parts) == 1:
        return Rtcp(port)
    if len(parts) != 4:
        raise SdpError("a=rtcp address must be <nettype> <addrtype> <address>", line)
    _check_address(parts[2], parts[3], line)
    return Rtcp(port, Connection(*parts[1:]))


def parse_attribute(value: str, line: int) -> Attribute:
    """``a=<name>[:<value>]`` (5.13), checking the attributes offer/answer reads.

    Checking ``rtpmap``, ``fmtp``, ``ptime``, ``maxptime`` and ``rtcp`` here
    means the accessors that read them later cannot fail; others are kept as text.
    """
    name, colon, text = value.partition(":")
    attribute = Attribute(name, text if colon else None)
    key = name.lower()
    if key not in ("rtpmap", "fmtp", "ptime", "maxptime", "rtcp"):
        return attribute
    if not colon:
        raise SdpError(f"a={name} needs a value", line)
    if key == "rtpmap":
        parse_rtpmap(text, line)
    elif key == "fmtp":
        parse_fmtp(text, line)
    elif key == "rtcp":
        parse_rtcp(text, line)
    else:
        parse_ptime(text, key, line)
    return attribute
