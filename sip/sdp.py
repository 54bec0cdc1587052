"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for the call's audio.

:class:`SessionDescription` parses and serialises a body: ``v= o= s= c= b= t=
a= m=`` are modelled, attributes are kept in order, and lines the model does
not interpret (``i= u= e= p= z= k=`` and unknown letters) are kept as text, so
a body from a real phone serialises back byte for byte. Parsing is lenient
where phones are sloppy (bare LF, trailing spaces, a missing ``s=`` or
``t=``) and strict where a call depends on it (ports, payload types,
``rtpmap``, ``ptime``, connection addresses); it raises :class:`SdpError` and
nothing else.

:func:`make_offer`, :func:`negotiate` and :func:`parse_answer` implement the
offer/answer exchange for one audio stream with PCMU, PCMA and RFC 4733
telephone-event; :func:`is_hold` and :func:`revise` serve re-INVITEs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, NamedTuple

from ._sdp_parse import (
    BITS,
    DIRECTIONS,
    Attribute,
    Attributed,
    Bandwidth,
    Connection,
    Direction,
    Format,
    Line,
    Origin,
    Rtcp,
    SdpError,
    Timing,
    is_rtp,
    parse_attribute,
    parse_bandwidth,
    parse_connection,
    parse_fmtp,
    parse_media,
    parse_origin,
    parse_ptime,
    parse_rtcp,
    parse_rtpmap,
    parse_timing,
    split_lines,
    static_format,
)
from ._sdp_secure import (
    SECURE_PROTOS,
    WEBRTC_PROTO,
    SecureMedia,
    Setup,
    answer_setup,
    has_ice,
)

__all__ = [
    "DEFAULT_FORMATS",
    "DIRECTIONS",
    "PCMA",
    "PCMU",
    "SECURE_PROTOS",
    "TELEPHONE_EVENT",
    "WEBRTC_PROTO",
    "Attribute",
    "Bandwidth",
    "Connection",
    "Direction",
    "Format",
    "MediaDescription",
    "Negotiation",
    "Origin",
    "Rtcp",
    "SdpError",
    "SecureMedia",
    "SessionDescription",
    "Setup",
    "Timing",
    "answer_setup",
    "is_hold",
    "make_offer",
    "negotiate",
    "parse_answer",
    "revise",
]

PCMU: Final = Format(0, "PCMU", 8000)
PCMA: Final = Format(8, "PCMA", 8000)
TELEPHONE_EVENT: Final = Format(101, "telephone-event", 8000, fmtp="0-16")
DEFAULT_FORMATS: Final[tuple[Format, ...]] = (PCMU, PCMA, TELEPHONE_EVENT)
_DEFAULT_PTIME: Final = 20

_FROM_BITS: Final[dict[tuple[bool, bool], Direction]] = {bits: d for d, bits in BITS.items()}

# Where lines kept as text are written (RFC 4566 5 order): 0 before c=, 1
# before the a= lines, 2 (letters RFC 4566 does not define) after them.
_SLOT: Final = {"i": 0, "u": 0, "e": 0, "p": 0, "z": 1, "k": 1}
_SESSION_ONLY: Final = frozenset("vostrzuep")


@dataclass(slots=True)
class MediaDescription(Attributed):
    """One ``m=`` section (RFC 4566 5.14) with its ``c=``, ``b=`` and ``a=`` lines.

    ``formats`` are the ``m=`` format tokens as written; for RTP they are
    payload type numbers, read through :meth:`format` and :meth:`rtp_formats`.
    A ``port`` of 0 marks a rejected or disabled stream (RFC 3264 6).
    """

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    extra_lines: list[tuple[str, str]] = field(default_factory=list)

    @property
    def is_rtp(self) -> bool:
        """Whether the transport is an RTP profile."""
        return is_rtp(self.proto)

    @property
    def payload_types(self) -> list[int]:
        """The payload type numbers of an RTP stream, in the ``m=`` line's order."""
        if not self.is_rtp:
            return []
        return [int(f) for f in self.formats if f.isascii() and f.isdigit()]

    def fmtp(self, fmt: int | str) -> str | None:
        """The ``a=fmtp`` parameters for a format, if given."""
        for attribute in self.attributes_named("fmtp"):
            name, params = parse_fmtp(attribute.value or "", None)
            if name == str(fmt):
                return params
        return None

    def format(self, payload_type: int) -> Format | None:
        """What a payload type means here: its ``a=rtpmap``, else the static table."""
        known: Format | None
        for attribute in self.attributes_named("rtpmap"):
            known = parse_rtpmap(attribute.value or "", None)
            if known.payload_type == payload_type:
                break
        else:
            known = static_format(payload_type)
        if known is None:
            return None
        return replace(known, fmtp=self.fmtp(payload_type) or None)

    def rtp_formats(self) -> list[Format]:
        """The formats of the ``m=`` line that are known, in its (preference) order."""
        found = (self.format(pt) for pt in self.payload_types)
        return [f for f in found if f is not None]

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in milliseconds: the packet time the sender wants to receive."""
        attribute = self.attribute("ptime")
        return None if attribute is None else parse_ptime(attribute.value or "", "ptime", None)

    @property
    def maxptime(self) -> int | None:
        """``a=maxptime`` in milliseconds."""
        attribute = self.attribute("maxptime")
        if attribute is None:
            return None
        return parse_ptime(attribute.value or "", "maxptime", None)

    @property
    def rtcp(self) -> Rtcp | None:
        """``a=rtcp`` (RFC 3605): where RTCP goes when not RTP port + 1."""
        attribute = self.attribute("rtcp")
        if attribute is None:
            return None
        return parse_rtcp(attribute.value or "", None)

    @property
    def rtcp_mux(self) -> bool:
        """``a=rtcp-mux`` (RFC 5761): RTP and RTCP share the port."""
        return self.attribute("rtcp-mux") is not None

    def copy(self) -> MediaDescription:
        """A copy whose lists can be edited without touching this one."""
        return replace(
            self,
            formats=list(self.formats),
            bandwidths=list(self.bandwidths),
            attributes=list(self.attributes),
            extra_lines=list(self.extra_lines),
        )

    def _lines(self) -> Iterator[str]:
        count = "" if self.port_count is None else f"/{self.port_count}"
        yield " ".join([f"m={self.media} {self.port}{count} {self.proto}", *self.formats])
        yield from _extras(self.extra_lines, 0)
        if self.connection is not None:
            yield f"c={self.connection}"
        yield from (f"b={b}" for b in self.bandwidths)
        yield from _extras(self.extra_lines, 1)
        yield from (f"a={a}" for a in self.attributes)
        yield from _extras(self.extra_lines, 2)


@dataclass(slots=True)
class SessionDescription(Attributed):
    """A session description (RFC 4566): the body of an offer or an answer.

    Build one with :meth:`parse`, :func:`make_offer` or :func:`negotiate`;
    :meth:`serialize` writes CRLF lines in the RFC 4566 5 order.
    """

    origin: Origin
    name: str = "-"
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    timing: list[Timing] = field(default_factory=lambda: [Timing()])
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    extra_lines: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Parse a body; raises :class:`SdpError` (and nothing else) naming the bad line."""
        return _parse(split_lines(data))

    def serialize(self) -> bytes:
        """The body as bytes, one CRLF-terminated line per field."""
        lines = ["v=0", f"o={self.origin}", f"s={self.name}"]
        lines += _extras(self.extra_lines, 0)
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines += (f"b={b}" for b in self.bandwidths)
        for timing in self.timing:
            lines.append(f"t={timing.start} {timing.stop}")
            lines += (f"r={r}" for r in timing.repeats)
        lines += _extras(self.extra_lines, 1)
        lines += (f"a={a}" for a in self.attributes)
        lines += _extras(self.extra_lines, 2)
        for media in self.media:
            lines += media._lines()
        return "".join(line + "\r\n" for line in lines).encode("utf-8", "surrogateescape")

    def copy(self) -> SessionDescription:
        """A copy whose lists and media can be edited without touching this one."""
        return replace(
            self,
            bandwidths=list(self.bandwidths),
            timing=list(self.timing),
            attributes=list(self.attributes),
            media=[m.copy() for m in self.media],
            extra_lines=list(self.extra_lines),
        )

    def next_version(self) -> SessionDescription:
        """A copy with the ``o=`` version one higher: the SDP changed (RFC 3264 8)."""
        copy = self.copy()
        copy.origin = replace(self.origin, version=self.origin.version + 1)
        return copy

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """Where a stream's media goes: its own ``c=`` over the session's (RFC 4566 5.7)."""
        return media.connection if media.connection is not None else self.connection

    def direction_of(self, media: MediaDescription) -> Direction:
        """A stream's direction: media level over session level, else sendrecv (RFC 3264 5.1)."""
        return media.direction or self.direction or "sendrecv"


def _slot(line: tuple[str, str]) -> int:
    return _SLOT.get(line[0], 2)


def _extras(lines: list[tuple[str, str]], slot: int) -> list[str]:
    """The kept lines that are written at ``slot``, in order."""
    return [f"{kind}={value}" for kind, value in lines if _slot((kind, value)) == slot]


def _parse(lines: list[Line]) -> SessionDescription:
    """Assemble typed lines into a session description (RFC 4566 5 grammar, leniently)."""
    if not lines:
        raise SdpError("empty session description", 1)
    first = lines[0]
    if first.type != "v":
        raise SdpError(f"expected v=0 as the first line, got {first.type}=", first.number)
    if first.value.strip() != "0":
        raise SdpError(f"unsupported SDP version v={first.value}", first.number)
    origin: Origin | None = None
    name: str | None = None
    sdp = SessionDescription(Origin("-", "0", 0, "IN", "IP4", "0.0.0.0"), timing=[])
    media: MediaDescription | None = None
    media_lines: list[int] = []
    for line in lines[1:]:
        kind, value, number = line.type, line.value, line.number
        if kind == "m":
            media_type, port, count, proto, formats = parse_media(value, number)
            media = MediaDescription(media_type, port, proto, formats, port_count=count)
            sdp.media.append(media)
            media_lines.append(number)
            continue
        level: SessionDescription | MediaDescription = sdp if media is None else media
        if kind == "a":
            level.attributes.append(parse_attribute(value, number))
        elif kind == "c":
            if level.connection is not None:
                raise SdpError("second c= line at the same level", number)
            level.connection = parse_connection(value, number)
        elif kind == "b":
            level.bandwidths.append(parse_bandwidth(value, number))
        elif media is not None and kind in _SESSION_ONLY:
            raise SdpError(f"{kind}= is a session-level line and cannot follow an m= line", number)
        elif kind == "v":
            raise SdpError("second v= line", number)
        elif kind == "o":
            if origin is not None:
                raise SdpError("second o= line", number)
            origin = parse_origin(value, number)
        elif kind == "s":
            if name is not None:
                raise SdpError("second s= line", number)
            name = value
        elif kind == "t":
            sdp.timing.append(parse_timing(value, number))
        elif kind == "r":
            if not sdp.timing:
                raise SdpError("r= line before any t= line", number)
            last = sdp.timing[-1]
            sdp.timing[-1] = replace(last, repeats=(*last.repeats, value))
        else:
            level.extra_lines.append((kind, value))
    if origin is None:
        raise SdpError("missing o= line (RFC 4566 5.2)")
    sdp.origin = origin
    # Sloppy UAs leave out s= and t=; the defaults are what everyone sends.
    sdp.name = "-" if name is None else name
    sdp.timing = sdp.timing or [Timing()]
    # Kept lines are held in the order they are written, so parse(serialize()) is stable.
    for kept in (sdp.extra_lines, *(m.extra_lines for m in sdp.media)):
        kept.sort(key=_slot)
    for media, number in zip(sdp.media, media_lines, strict=True):
        if media.port != 0 and sdp.connection_for(media) is None:
            raise SdpError("m= line has no c= line and the session has none (RFC 4566 5.7)", number)
    return sdp


# -- offer/answer (RFC 3264) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Negotiation:
    """The outcome of an offer/answer exchange for the call's audio stream.

    ``answer`` is the answer SDP (ours from :func:`negotiate`, the peer's from
    :func:`parse_answer`). ``codec`` and ``telephone_event`` carry the payload
    type numbers to send with, as the peer expects to receive them. ``direction``
    is our side's: whether we may send and receive. When ``accepted`` is false
    no audio stream was agreed and a UAS answers the INVITE with 488.
    """

    answer: SessionDescription
    accepted: bool
    codec: Format | None = None
    telephone_event: int | None = None
    ptime: int = _DEFAULT_PTIME
    direction: Direction = "inactive"
    remote_address: str | None = None
    remote_port: int = 0
    remote_rtcp: tuple[str, int] | None = None
    media_index: int | None = None
    secure: SecureMedia | None = None
    """The peer's ICE and DTLS parameters when the stream is DTLS-SRTP (WebRTC)."""

    @property
    def remote_rtp(self) -> tuple[str, int] | None:
        """Where to send RTP, as an address tuple."""
        return None if self.remote_address is None else (self.remote_address, self.remote_port)

    @property
    def sends(self) -> bool:
        """Whether we may send media on the stream."""
        return BITS[self.direction][0]

    @property
    def receives(self) -> bool:
        """Whether the peer may send us media on the stream."""
        return BITS[self.direction][1]


def make_offer(
    address: str,
    port: int,
    *,
    formats: Sequence[Format] = DEFAULT_FORMATS,
    ptime: int = _DEFAULT_PTIME,
    direction: Direction = "sendrecv",
    session_id: int,
    version: int,
    username: str = "-",
    session_name: str = "-",
    secure: SecureMedia | None = None,
) -> SessionDescription:
    """An offer with one audio stream (RFC 3264 5), formats in our order of preference.

    With ``secure`` the stream is WebRTC's: ``UDP/TLS/RTP/SAVPF`` with our
    ICE credentials, candidates, fingerprint, ``a=setup`` and ``a=rtcp-mux``.
    A re-offer reuses the session id; pass the result through :func:`revise`
    with the previous SDP so the version follows RFC 3264 8.
    """
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    if not formats:
        raise ValueError("an offer needs at least one format")
    connection = Connection.for_address(address)
    proto = "RTP/AVP" if secure is None else WEBRTC_PROTO
    return _secured(
        SessionDescription(
            origin=_origin(username, session_id, version, connection),
            name=session_name,
            connection=connection,
            media=[_audio(port, proto, formats, ptime, direction)],
        ),
        0,
        secure,
    )


def _secured(
    sdp: SessionDescription, index: int | None, secure: SecureMedia | None
) -> SessionDescription:
    """``sdp`` with our ICE/DTLS lines on stream ``index`` (nothing without ``secure``)."""
    if secure is None or index is None:
        return sdp
    sdp.attributes += secure.session_attributes()
    media = sdp.media[index]
    # Direction stays the last line, as _audio writes it.
    media.attributes[-1:-1] = secure.media_attributes()
    return sdp


def negotiate(
    offer: SessionDescription,
    supported: Sequence[Format],
    local_address: str,
    local_port: int,
    *,
    direction: Direction | None = None,
    ptime: int = _DEFAULT_PTIME,
    session_id: int,
    version: int,
    username: str = "-",
    session_name: str = "-",
    secure: SecureMedia | None = None,
) -> Negotiation:
    """Answer an offer (RFC 3264 6): accept the first usable audio stream, reject the rest.

    Without ``secure`` a usable stream is plain ``RTP/AVP``; with it, a
    DTLS-SRTP one (``UDP/TLS/RTP/SAVPF`` and the like, with ICE credentials,
    a fingerprint and ``a=rtcp-mux``), answered with ``secure``'s lines, its
    ``a=setup`` chosen by :func:`answer_setup` (or kept, when ``secure``
    names an established ``active`` or ``passive``) and the offer's ``a=mid``
    echoed. An ICE stream's ``c=0.0.0.0`` is no hold (RFC 8839 4.2.1.1).

    The codec is the first of the offer's formats that we support: the
    offerer's preference order (RFC 3264 6.1). The answer uses the offer's
    payload type numbers, including a dynamic telephone-event number that
    differs from ours. The answer lists one codec plus telephone-event, so
    both sides know which codec the other sends. ``direction`` (say
    ``sendonly`` to put the peer on hold) is narrowed by the offer's. Every
    offered ``m=`` line is answered, in order; those not accepted get port 0.
    """
    if direction is not None and direction not in BITS:
        raise ValueError(f"unknown direction {direction!r}")
    connection = Connection.for_address(local_address)
    answer = SessionDescription(
        origin=_origin(username, session_id, version, connection),
        name=session_name,
        connection=connection,
    )
    accepted: _Accepted | None = None
    theirs: SecureMedia | None = None
    setup: Setup | None = None
    ours_secure: SecureMedia | None = None
    for index, media in enumerate(offer.media):
        remote = offer.connection_for(media)
        picked = None
        if not accepted and remote is not None:
            picked = _answer_formats(media, supported, secure=secure is not None)
        if picked is not None and secure is not None:
            theirs, setup = _secure_offer(offer, media, secure.setup)
            if theirs is None or setup is None:
                picked = None
        if remote is None or picked is None:
            answer.media.append(_rejected(media))
            continue
        ours = _intersect(_reverse(offer.direction_of(media)), direction or "sendrecv")
        if remote.is_null and theirs is None:
            ours = _intersect(ours, "recvonly")
        packet_time = _ptime(media, offer, ptime)
        answer.media.append(_audio(local_port, media.proto, picked, packet_time, ours))
        accepted = _Accepted(index, media, picked, remote, ours, packet_time)
        if secure is not None and theirs is not None and setup is not None:
            ours_secure = replace(secure, setup=setup, mid=theirs.mid)
    if accepted is not None:
        _secured(answer, len(answer.media) - 1, ours_secure)
    return _negotiation(answer, accepted, theirs)


def _secure_offer(
    offer: SessionDescription, media: MediaDescription, ours: Setup
) -> tuple[SecureMedia | None, Setup | None]:
    """An offered DTLS-SRTP stream's parameters and our a=setup, or Nones when unusable.

    ``ours`` is ``actpass`` to choose by :func:`answer_setup`, or the role an
    association already has, kept when the offer allows it (RFC 8842 5.5).
    Unusable: ICE or DTLS lines missing or half there, ``holdconn``, a role
    the offer rules out, or no ``a=rtcp-mux`` (RTCP shares the one ICE port).
    """
    try:
        theirs = SecureMedia.read(offer, media)
        if theirs is None or not theirs.rtcp_mux:
            return None, None
        chosen = answer_setup(theirs.setup)
    except SdpError:
        return None, None
    if ours == "actpass":
        return theirs, chosen
    if theirs.setup == "actpass" or chosen == ours:
        return theirs, ours
    return None, None


def parse_answer(offer: SessionDescription, answer: SessionDescription) -> Negotiation:
    """Read the answer to our offer (RFC 3264 7), e.g. an agent's 200 OK.

    Raises :class:`SdpError` when the answer does not match the offer's
    ``m=`` lines (RFC 3264 6). The codec is the answer's first format that we
    offered; its payload type is the answer's number, which we send with.
    """
    if len(answer.media) != len(offer.media):
        raise SdpError(
            f"the answer has {len(answer.media)} m= lines, the offer {len(offer.media)} "
            "(RFC 3264 6)"
        )
    accepted: _Accepted | None = None
    accepted_secure: SecureMedia | None = None
    for index, (ours, theirs) in enumerate(zip(offer.media, answer.media, strict=True)):
        if ours.media.lower() != theirs.media.lower():
            raise SdpError(
                f"m= line {index + 1} of the answer is {theirs.media}, the offer's {ours.media}"
            )
        remote = answer.connection_for(theirs)
        if accepted or remote is None or theirs.port == 0 or not _usable(ours, None):
            continue
        offered_secure = ours.proto.upper() in SECURE_PROTOS
        secure = SecureMedia.read(answer, theirs) if offered_secure else None
        if offered_secure and (secure is None or theirs.proto.upper() not in SECURE_PROTOS):
            continue
        offered = ours.rtp_formats()
        picked = [f for f in theirs.rtp_formats() if any(f.same_codec(o) for o in offered)]
        codecs = [f for f in picked if not f.is_auxiliary]
        if not codecs:
            continue
        aux = [f for f in picked if f.is_auxiliary and f.clock_rate == codecs[0].clock_rate]
        mine = _intersect(_reverse(answer.direction_of(theirs)), offer.direction_of(ours))
        if remote.is_null and secure is None:
            mine = _intersect(mine, "recvonly")
        packet_time = theirs.ptime or ours.ptime or _DEFAULT_PTIME
        accepted = _Accepted(index, theirs, [codecs[0], *aux], remote, mine, packet_time)
        accepted_secure = secure
    return _negotiation(answer, accepted, accepted_secure if accepted else None)


def is_hold(sdp: SessionDescription) -> bool:
    """Whether the SDP puts the call on hold: every audio stream in use is sendonly or
    inactive (RFC 3264 8.4), or sent to ``c=0.0.0.0`` (the RFC 2543 way)."""
    streams = [m for m in sdp.media if m.media.lower() == "audio" and m.port != 0]
    return bool(streams) and all(_held(sdp, m) for m in streams)


def revise(previous: SessionDescription, current: SessionDescription) -> SessionDescription:
    """``current`` as the next SDP of the session that ``previous`` began (RFC 3264 8).

    The ``o=`` line is the previous one; its version grows by one when
    anything else changed and stays the same for an unchanged re-offer.
    """
    revised = current.copy()
    revised.origin = previous.origin
    if revised == previous:
        return revised
    return revised.next_version()


def _origin(username: str, session_id: int, version: int, connection: Connection) -> Origin:
    return Origin(username, str(session_id), version, "IN", connection.addrtype, connection.address)


def _audio(
    port: int, proto: str, formats: Sequence[Format], ptime: int, direction: Direction
) -> MediaDescription:
    """An audio ``m=`` section: rtpmap (and fmtp) per format, ptime, direction."""
    if direction not in BITS:
        raise ValueError(f"unknown direction {direction!r}")
    if ptime < 1:
        raise ValueError(f"ptime {ptime} must be positive")
    attributes: list[Attribute] = []
    for fmt in formats:
        attributes.append(Attribute("rtpmap", fmt.rtpmap))
        if fmt.fmtp is not None:
            attributes.append(Attribute("fmtp", f"{fmt.payload_type} {fmt.fmtp}"))
    attributes += [Attribute("ptime", str(ptime)), Attribute(direction)]
    formats_text = [str(f.payload_type) for f in formats]
    return MediaDescription("audio", port, proto, formats_text, attributes=attributes)


def _rejected(offered: MediaDescription) -> MediaDescription:
    """Port 0 with the offer's formats: rejected but kept in place (RFC 3264 6)."""
    return MediaDescription(offered.media, 0, offered.proto, list(offered.formats))


def _usable(media: MediaDescription, secure: bool | None) -> bool:
    """An audio stream in use, plain RTP/AVP (``secure`` false), DTLS-SRTP (true) or either.

    SDES-keyed RTP/SAVP is never usable: keys in signalling is what WebRTC forbids.
    """
    if media.media.lower() != "audio" or media.port == 0:
        return False
    proto = media.proto.upper()
    if secure is None:
        return proto == "RTP/AVP" or proto in SECURE_PROTOS
    return proto in SECURE_PROTOS if secure else proto == "RTP/AVP"


def _answer_formats(
    media: MediaDescription, supported: Sequence[Format], *, secure: bool
) -> list[Format] | None:
    """The formats to answer an offered stream with, or None to reject it (RFC 3264 6.1)."""
    if not _usable(media, secure):
        return None
    offered = media.rtp_formats()
    codec = next(
        (
            replace(ours, payload_type=theirs.payload_type)
            for theirs in offered
            if not theirs.is_auxiliary
            for ours in supported
            if not ours.is_auxiliary and ours.same_codec(theirs)
        ),
        None,
    )
    if codec is None:
        return None
    picked = [codec]
    for theirs in offered:
        if not theirs.is_auxiliary or theirs.clock_rate != codec.clock_rate:
            continue
        if any(p.encoding.lower() == theirs.encoding.lower() for p in picked):
            continue
        ours = next((s for s in supported if s.same_codec(theirs)), None)
        if ours is not None:
            picked.append(replace(ours, payload_type=theirs.payload_type))
    return picked


class _Accepted(NamedTuple):
    """The stream an exchange agreed on; ``media`` is the peer's description of it."""

    position: int
    media: MediaDescription
    formats: list[Format]
    remote: Connection
    direction: Direction
    ptime: int


def _negotiation(
    answer: SessionDescription, accepted: _Accepted | None, secure: SecureMedia | None = None
) -> Negotiation:
    if accepted is None:
        return Negotiation(answer, accepted=False)
    index, media, formats, remote, direction, ptime = accepted
    telephone_event = next(
        (f.payload_type for f in formats if f.encoding.lower() == "telephone-event"), None
    )
    rtcp = media.rtcp
    if rtcp is not None:
        rtcp_host = remote.host if rtcp.connection is None else rtcp.connection.host
        remote_rtcp: tuple[str, int] | None = (rtcp_host, rtcp.port)
    else:
        # RTP port + 1 unless a=rtcp says otherwise (RFC 3550 11, RFC 3605).
        remote_rtcp = (remote.host, media.port + 1) if media.port < 65535 else None
    return Negotiation(
        answer,
        accepted=True,
        codec=formats[0],
        telephone_event=telephone_event,
        ptime=ptime,
        direction=direction,
        remote_address=remote.host,
        remote_port=media.port,
        remote_rtcp=remote_rtcp,
        media_index=index,
        secure=secure,
    )


def _ptime(media: MediaDescription, offer: SessionDescription, default: int) -> int:
    """The offer's ptime (session level as a fallback), else ours capped by its maxptime."""
    explicit = media.ptime
    if explicit is None:
        session = offer.attribute("ptime")
        if session is not None:
            explicit = parse_ptime(session.value or "", "ptime", None)
    if explicit is not None:
        return explicit
    maxptime = media.maxptime
    return default if maxptime is None else min(default, maxptime)


def _held(sdp: SessionDescription, media: MediaDescription) -> bool:
    connection = sdp.connection_for(media)
    held = sdp.direction_of(media) in ("sendonly", "inactive")
    # ICE puts 0.0.0.0 in c= while it has no candidate yet (RFC 8839 4.2.1.1): no hold.
    null = connection is not None and connection.is_null and not has_ice((media, sdp))
    return held or null


def _reverse(direction: Direction) -> Direction:
    """The direction that complements the peer's: its sendonly is our recvonly."""
    sends, receives = BITS[direction]
    return _FROM_BITS[(receives, sends)]


def _intersect(a: Direction, b: Direction) -> Direction:
    return _FROM_BITS[(BITS[a][0] and BITS[b][0], BITS[a][1] and BITS[b][1])]
