"""RTCP packets (RFC 3550 section 6): SR, RR, SDES, BYE, and compound datagrams.

An RTCP datagram is a compound of packets laid end to end, each with its own
four-octet header. :func:`parse_compound` splits one into packet objects and
:func:`serialize_compound` joins them back; each packet class has
``serialize()``. Packet types this engine does not act on (APP, the RFC 4585
feedback messages, XR) come back as :class:`UnknownRtcpPacket` with their
bodies untouched, so a compound from a video phone still yields its reports.

Well-formed packets round-trip octet for octet, with one exception: padding
(the P bit) is accepted and dropped, since only encrypted RTCP pads and this
engine sends none. Malformed input raises :class:`RtcpParseError`, a
``ValueError`` whose message names the packet and the field.

Also here: the NTP timestamp arithmetic behind the LSR/DLSR fields and the
round-trip time a sender derives from them (RFC 3550 6.4.1), and the RFC 5761
test that tells RTCP from RTP on a multiplexed port. Sans-I/O throughout:
times are passed in.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "SDES_CNAME",
    "Bye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "RtcpParseError",
    "SdesChunk",
    "SdesItem",
    "SenderReport",
    "SourceDescription",
    "UnknownRtcpPacket",
    "is_rtcp",
    "ntp_timestamp",
    "parse_compound",
    "round_trip_time",
    "serialize_compound",
]

_RTCP_SR = 200
_RTCP_RR = 201
_RTCP_SDES = 202
_RTCP_BYE = 203

SDES_CNAME = 1
"""SDES item type of the canonical name, the one item RFC 3550 requires."""

_HEADER = struct.Struct("!BBH")
_SENDER_INFO = struct.Struct("!IQIII")
_REPORT_BLOCK = struct.Struct("!IIIIII")
_SSRC = struct.Struct("!I")

# Seconds from the NTP epoch (1900) to the Unix epoch (1970).
_NTP_UNIX_OFFSET = 2_208_988_800


class RtcpParseError(ValueError):
    """A datagram is not well-formed RTCP; the message says which packet and field."""


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """Reception report about one source (RFC 3550 6.4.1), 24 octets on the wire.

    ``packets_lost`` is the signed 24-bit cumulative count (duplicates can
    make it negative); ``highest_sequence`` is the extended highest sequence
    number (cycles in the upper 16 bits); ``jitter`` is in timestamp units;
    ``lsr`` is the middle 32 bits of the NTP timestamp of the last SR received
    from the source, and ``dlsr`` the delay since, in units of 1/65536 s.
    """

    ssrc: int
    fraction_lost: int = 0
    packets_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    def _serialize(self) -> bytes:
        if not 0 <= self.fraction_lost <= 255:
            raise ValueError(f"fraction lost {self.fraction_lost} is outside 0-255")
        if not -0x800000 <= self.packets_lost <= 0x7FFFFF:
            raise ValueError(f"packets lost {self.packets_lost} does not fit 24 signed bits")
        try:
            return _REPORT_BLOCK.pack(
                self.ssrc,
                (self.fraction_lost << 24) | (self.packets_lost & 0xFFFFFF),
                self.highest_sequence,
                self.jitter,
                self.lsr,
                self.dlsr,
            )
        except struct.error as exc:
            raise ValueError(f"report block field out of range: {exc}") from None

    @classmethod
    def _parse(cls, body: bytes, offset: int) -> ReportBlock:
        ssrc, loss, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(body, offset)
        lost = loss & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, loss >> 24, lost, highest, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (PT 200): sender info and reception reports from an active sender.

    ``ntp_timestamp`` is the full 64-bit NTP timestamp (see
    :func:`ntp_timestamp`); ``rtp_timestamp`` is the same instant on the RTP
    clock; ``octet_count`` counts payload octets only. ``extension`` is any
    profile-specific extension after the report blocks, kept as received.
    """

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def serialize(self) -> bytes:
        """The packet's bytes, header included."""
        try:
            info = _SENDER_INFO.pack(
                self.ssrc,
                self.ntp_timestamp,
                self.rtp_timestamp,
                self.packet_count,
                self.octet_count,
            )
        except struct.error as exc:
            raise ValueError(f"SR sender info out of range: {exc}") from None
        body = info + b"".join(block._serialize() for block in self.reports) + self.extension
        return _packet(_RTCP_SR, len(self.reports), body, "report blocks")


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (PT 201): reception reports from a participant that has not sent lately."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def serialize(self) -> bytes:
        """The packet's bytes, header included."""
        body = (
            _pack_ssrc(self.ssrc)
            + b"".join(block._serialize() for block in self.reports)
            + self.extension
        )
        return _packet(_RTCP_RR, len(self.reports), body, "report blocks")


@dataclass(frozen=True, slots=True)
class SdesItem:
    """One SDES item: its type (1 CNAME .. 8 PRIV) and value, UTF-8 text as octets."""

    item_type: int
    value: bytes


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """The SDES items describing one source."""

    ssrc: int
    items: tuple[SdesItem, ...] = ()

    @property
    def cname(self) -> str | None:
        """The CNAME item's text, or ``None`` when the chunk has none."""
        for item in self.items:
            if item.item_type == SDES_CNAME:
                return item.value.decode("utf-8", "replace")
        return None

    def _serialize(self) -> bytes:
        parts = [_pack_ssrc(self.ssrc)]
        for item in self.items:
            if not 1 <= item.item_type <= 255:
                raise ValueError(f"SDES item type {item.item_type} is outside 1-255")
            if len(item.value) > 255:
                raise ValueError(f"SDES item value is {len(item.value)} bytes, at most 255")
            parts.append(bytes((item.item_type, len(item.value))) + item.value)
        chunk = b"".join(parts)
        # The END item (a zero octet) plus zeros to the next 32-bit boundary:
        # between one and four null octets in all.
        return chunk + bytes(4 - len(chunk) % 4)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES (PT 202): one chunk of items per source; CNAME is the one that matters."""

    chunks: tuple[SdesChunk, ...] = ()

    @classmethod
    def with_cname(cls, ssrc: int, cname: str) -> SourceDescription:
        """The SDES every compound RTCP packet must carry: one source, its CNAME."""
        return cls((SdesChunk(ssrc, (SdesItem(SDES_CNAME, cname.encode()),)),))

    def serialize(self) -> bytes:
        """The packet's bytes, header included."""
        body = b"".join(chunk._serialize() for chunk in self.chunks)
        return _packet(_RTCP_SDES, len(self.chunks), body, "chunks")


@dataclass(frozen=True, slots=True)
class Bye:
    """BYE (PT 203): the sources leave the session, with an optional reason."""

    sources: tuple[int, ...] = ()
    reason: str | None = None

    def serialize(self) -> bytes:
        """The packet's bytes, header included."""
        body = b"".join(_pack_ssrc(ssrc) for ssrc in self.sources)
        if self.reason is not None:
            text = self.reason.encode()
            if len(text) > 255:
                raise ValueError(f"BYE reason is {len(text)} bytes in UTF-8, at most 255")
            reason = bytes((len(text),)) + text
            body += reason + bytes(-len(reason) % 4)
        return _packet(_RTCP_BYE, len(self.sources), body, "sources")


@dataclass(frozen=True, slots=True)
class UnknownRtcpPacket:
    """A packet type this engine does not interpret (APP, RTPFB, PSFB, XR), kept whole.

    ``count`` is the five-bit field after the P bit (a subtype or FMT for
    most types); ``body`` is everything after the four-octet header.
    """

    packet_type: int
    count: int
    body: bytes

    def serialize(self) -> bytes:
        """The packet's bytes, header included."""
        if not 0 <= self.packet_type <= 255:
            raise ValueError(f"RTCP packet type {self.packet_type} is outside 0-255")
        return _packet(self.packet_type, self.count, self.body, "count")


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcpPacket
"""Any packet :func:`parse_compound` returns."""


def _pack_ssrc(ssrc: int) -> bytes:
    try:
        return _SSRC.pack(ssrc)
    except struct.error as exc:
        raise ValueError(f"SSRC out of range: {exc}") from None


def _packet(packet_type: int, count: int, body: bytes, what: str) -> bytes:
    """Prefix ``body`` with the common header; the length is in 32-bit words minus one."""
    if count > 31:
        raise ValueError(f"RTCP packet type {packet_type} has {count} {what}, at most 31")
    if count < 0:
        raise ValueError(f"RTCP packet type {packet_type} has a negative {what}")
    if len(body) % 4:
        raise ValueError(
            f"RTCP packet type {packet_type} body is {len(body)} bytes, not a multiple of 4"
        )
    if len(body) > 0xFFFF * 4:
        raise ValueError(f"RTCP packet type {packet_type} body is {len(body)} bytes, too long")
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


def _parse_reports(
    name: str, body: bytes, offset: int, count: int
) -> tuple[tuple[ReportBlock, ...], bytes]:
    end = offset + 24 * count
    if len(body) < end:
        raise RtcpParseError(
            f"RTCP {name} body is {len(body)} bytes, too short for {count} report blocks "
            f"ending at byte {end}"
        )
    blocks = tuple(ReportBlock._parse(body, offset + 24 * i) for i in range(count))
    return blocks, body[end:]


def _parse_sr(count: int, body: bytes) -> SenderReport:
    if len(body) < 24:
        raise RtcpParseError(f"RTCP SR body is {len(body)} bytes, shorter than 24 of sender info")
    ssrc, ntp, rtp_timestamp, packets, octets = _SENDER_INFO.unpack_from(body)
    reports, extension = _parse_reports("SR", body, 24, count)
    return SenderReport(ssrc, ntp, rtp_timestamp, packets, octets, reports, extension)


def _parse_rr(count: int, body: bytes) -> ReceiverReport:
    if len(body) < 4:
        raise RtcpParseError(f"RTCP RR body is {len(body)} bytes, shorter than its 4-byte SSRC")
    (ssrc,) = _SSRC.unpack_from(body)
    reports, extension = _parse_reports("RR", body, 4, count)
    return ReceiverReport(ssrc, reports, extension)


def _parse_sdes(count: int, body: bytes) -> SourceDescription:
    chunks = []
    position = 0
    for index in range(count):
        if len(body) < position + 4:
            raise RtcpParseError(
                f"RTCP SDES chunk {index + 1} of {count} starts at byte {position}, "
                f"beyond the {len(body)}-byte body"
            )
        (ssrc,) = _SSRC.unpack_from(body, position)
        position += 4
        items = []
        while True:
            if position >= len(body):
                raise RtcpParseError(
                    f"RTCP SDES chunk {index + 1} has no END item before the body ends"
                )
            item_type = body[position]
            if item_type == 0:
                # END: skip the null octets up to the next 32-bit boundary.
                position += 4 - position % 4
                if position > len(body):
                    raise RtcpParseError(
                        f"RTCP SDES chunk {index + 1} padding runs past the {len(body)}-byte body"
                    )
                break
            if position + 2 > len(body):
                raise RtcpParseError(f"RTCP SDES item at byte {position} has no length octet")
            length = body[position + 1]
            start = position + 2
            position = start + length
            if position > len(body):
                raise RtcpParseError(
                    f"RTCP SDES item of type {item_type} ({length} bytes) at byte {start} "
                    f"runs past the {len(body)}-byte body"
                )
            items.append(SdesItem(item_type, body[start:position]))
        chunks.append(SdesChunk(ssrc, tuple(items)))
    if position != len(body):
        raise RtcpParseError(f"RTCP SDES has {len(body) - position} bytes after its {count} chunks")
    return SourceDescription(tuple(chunks))


def _parse_bye(count: int, body: bytes) -> Bye:
    end = 4 * count
    if len(body) < end:
        raise RtcpParseError(f"RTCP BYE body is {len(body)} bytes, too short for {count} SSRCs")
    sources = struct.unpack_from(f"!{count}I", body)
    reason = None
    if end < len(body):
        length = body[end]
        text_end = end + 1 + length
        if text_end > len(body):
            raise RtcpParseError(
                f"RTCP BYE reason of {length} bytes runs past the {len(body)}-byte body"
            )
        try:
            reason = body[end + 1 : text_end].decode()
        except UnicodeDecodeError as exc:
            raise RtcpParseError(f"RTCP BYE reason is not UTF-8: {exc.reason}") from None
        if len(body) - text_end > 3:
            raise RtcpParseError(
                f"RTCP BYE has {len(body) - text_end} bytes after its reason, more than padding"
            )
    return Bye(sources, reason)


_PARSERS: dict[int, Callable[[int, bytes], RtcpPacket]] = {
    _RTCP_SR: _parse_sr,
    _RTCP_RR: _parse_rr,
    _RTCP_SDES: _parse_sdes,
    _RTCP_BYE: _parse_bye,
}


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Split an RTCP datagram into its packets; raise :class:`RtcpParseError` if malformed."""
    if not data:
        raise RtcpParseError("RTCP datagram is empty")
    packets: list[RtcpPacket] = []
    position = 0
    while position < len(data):
        if len(data) - position < 4:
            raise RtcpParseError(
                f"RTCP packet header at byte {position} is truncated to "
                f"{len(data) - position} bytes"
            )
        first, packet_type, words = _HEADER.unpack_from(data, position)
        if first >> 6 != 2:
            raise RtcpParseError(
                f"RTCP packet at byte {position} has version {first >> 6}, expected 2"
            )
        start = position + 4
        end = start + 4 * words
        if end > len(data):
            raise RtcpParseError(
                f"RTCP packet type {packet_type} at byte {position} claims {4 * words} "
                f"body bytes but only {len(data) - start} remain"
            )
        body = data[start:end]
        if first & 0x20:
            padding = body[-1] if body else 0
            if padding == 0 or padding > len(body):
                raise RtcpParseError(
                    f"RTCP packet type {packet_type} padding count {padding} is invalid "
                    f"for a {len(body)}-byte body"
                )
            body = body[:-padding]
        count = first & 0x1F
        parser = _PARSERS.get(packet_type)
        if parser is None:
            packets.append(UnknownRtcpPacket(packet_type, count, body))
        else:
            packets.append(parser(count, body))
        position = end
    return packets


def serialize_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """Lay the packets end to end as one compound RTCP datagram."""
    return b"".join(packet.serialize() for packet in packets)


def is_rtcp(data: bytes) -> bool:
    """Whether a datagram on an rtcp-mux port is RTCP (RFC 5761 section 4).

    RTCP packet types 192-223 collide only with RTP payload types 64-95 with
    the marker set, which RFC 5761 forbids for muxed sessions.
    """
    return len(data) >= 2 and 192 <= data[1] <= 223


def ntp_timestamp(unix_time: float) -> int:
    """The 64-bit NTP timestamp (32.32 fixed point since 1900) of a Unix time."""
    seconds = int(unix_time)
    fraction = int((unix_time - seconds) * 0x1_0000_0000)
    return (((seconds + _NTP_UNIX_OFFSET) & 0xFFFF_FFFF) << 32) | fraction


def round_trip_time(block: ReportBlock, arrival: float) -> float | None:
    """Round-trip time in seconds from a report about our stream (RFC 3550 6.4.1).

    ``arrival`` is the Unix time the report arrived, on the same clock that
    stamped our SR. ``None`` when the peer has not received an SR yet
    (LSR is zero). A negative result (clock steps, a lying peer) gives 0.
    """
    if block.lsr == 0:
        return None
    middle = (ntp_timestamp(arrival) >> 16) & 0xFFFF_FFFF
    delta = (middle - block.lsr - block.dlsr) & 0xFFFF_FFFF
    if delta >= 0x8000_0000:
        return 0.0
    return delta / 65536
