"""RTP data packets (RFC 3550 section 5): parse, serialise, and a relay fast path.

:meth:`RtpPacket.parse` turns a datagram into a packet with every header
field, CSRC list, header extension and padding kept, so that
``RtpPacket.parse(data).serialize() == data`` for every well-formed packet.
A malformed datagram raises :class:`RtpParseError` (a ``ValueError``) whose
message says which field is wrong and by how much.

A relay that only needs to learn who sent a packet and where it sits in the
stream calls :func:`peek_header`, which reads the four fields it needs
straight from the bytes and builds no packet object: at 100,000 packets a
second the object and its slices are most of the cost of a full parse.

The module is sans-I/O: bytes in, objects out, no sockets and no clock.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "RTP_HEADER_SIZE",
    "RtpPacket",
    "RtpParseError",
    "peek_header",
]

RTP_HEADER_SIZE = 12
"""Octets in the fixed RTP header, before any CSRC or header extension."""

_FIXED = struct.Struct("!BBHII")
_unpack_fixed = _FIXED.unpack_from
_pack_fixed = _FIXED.pack
# The first octet is skipped: peek_header checks the version by hand, and the
# marker is masked off the second octet, so one unpack yields all it returns.
_unpack_peek = struct.Struct("!xBHII").unpack_from
_EXTENSION_HEADER = struct.Struct("!HH")
# One Struct per CSRC count, built once: formatting "!{n}I" per packet would
# cost more than the unpack itself.
_CSRC = tuple(struct.Struct(f"!{n}I") for n in range(16))

_MAX_EXTENSION_SIZE = 0xFFFF * 4


class RtpParseError(ValueError):
    """A datagram is not a well-formed RTP packet; the message says why."""


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet: the RFC 3550 fixed header, CSRCs, extension, payload, padding.

    ``extension_profile`` is ``None`` when the X bit is clear; otherwise it is
    the 16-bit profile word (``0xBEDE`` for RFC 8285 one-byte elements) and
    ``extension`` holds the extension body, a multiple of four octets, as
    received. ``padding`` holds the trailing padding octets exactly as received
    (its last octet is its own length), empty when the P bit is clear; build it
    with :meth:`padding_for`. The version is always 2 and is not stored.

    The class is mutable, unlike the SIP events, because a relay may rewrite
    the sequence number, timestamp or SSRC of a packet it forwards, and a
    frozen dataclass makes every construction slower.
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension: bytes = b""
    padding: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one RTP datagram; raise :class:`RtpParseError` if it is malformed."""
        length = len(data)
        if length < 12:
            raise RtpParseError(
                f"RTP packet is {length} bytes, shorter than the 12-byte fixed header"
            )
        first, second, sequence_number, timestamp, ssrc = _unpack_fixed(data)
        if first >> 6 != 2:
            raise RtpParseError(f"RTP version is {first >> 6}, expected 2")

        position = 12
        csrc_count = first & 0x0F
        csrc: tuple[int, ...] = ()
        if csrc_count:
            position += 4 * csrc_count
            if length < position:
                raise RtpParseError(
                    f"RTP packet is {length} bytes, too short for {csrc_count} CSRC "
                    f"identifiers ending at byte {position}"
                )
            csrc = _CSRC[csrc_count].unpack_from(data, 12)

        extension_profile: int | None = None
        extension = b""
        if first & 0x10:
            if length < position + 4:
                raise RtpParseError(
                    f"RTP packet is {length} bytes, too short for the header extension "
                    f"header at byte {position}"
                )
            extension_profile, words = _EXTENSION_HEADER.unpack_from(data, position)
            start = position + 4
            position = start + 4 * words
            if length < position:
                raise RtpParseError(
                    f"RTP header extension of {words} words ends at byte {position}, "
                    f"beyond the {length}-byte packet"
                )
            extension = data[start:position]

        end = length
        padding = b""
        if first & 0x20:
            padding_size = data[-1]
            if padding_size == 0:
                raise RtpParseError("RTP padding bit is set but the padding count is 0")
            if padding_size > length - position:
                raise RtpParseError(
                    f"RTP padding count {padding_size} exceeds the {length - position} "
                    "bytes after the header"
                )
            end = length - padding_size
            padding = data[end:]

        return cls(
            second & 0x7F,
            sequence_number,
            timestamp,
            ssrc,
            data[position:end],
            second > 0x7F,
            csrc,
            extension_profile,
            extension,
            padding,
        )

    def serialize(self) -> bytes:
        """The packet's bytes; raise ``ValueError`` if a field does not fit its width."""
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"RTP payload type {self.payload_type} is outside 0-127")
        first = 0x80
        csrc = self.csrc
        if csrc:
            if len(csrc) > 15:
                raise ValueError(f"RTP packet has {len(csrc)} CSRC identifiers, at most 15")
            first |= len(csrc)
        if self.extension_profile is not None:
            first |= 0x10
        padding = self.padding
        if padding:
            first |= 0x20
        try:
            header = _pack_fixed(
                first,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number,
                self.timestamp,
                self.ssrc,
            )
        except struct.error as exc:
            raise ValueError(f"RTP header field out of range: {exc}") from None
        if first == 0x80:
            # The common case: a plain audio packet, one concatenation.
            return header + self.payload

        parts = [header]
        if csrc:
            try:
                parts.append(_CSRC[len(csrc)].pack(*csrc))
            except struct.error as exc:
                raise ValueError(f"RTP CSRC out of range: {exc}") from None
        if self.extension_profile is not None:
            extension = self.extension
            if len(extension) % 4 or len(extension) > _MAX_EXTENSION_SIZE:
                raise ValueError(
                    f"RTP header extension is {len(extension)} bytes; it must be a multiple "
                    f"of 4 and at most {_MAX_EXTENSION_SIZE}"
                )
            try:
                parts.append(_EXTENSION_HEADER.pack(self.extension_profile, len(extension) // 4))
            except struct.error as exc:
                raise ValueError(f"RTP header extension profile out of range: {exc}") from None
            parts.append(extension)
        parts.append(self.payload)
        if padding:
            if padding[-1] != len(padding):
                raise ValueError(
                    f"RTP padding is {len(padding)} bytes but its last byte says {padding[-1]}"
                )
            parts.append(padding)
        return b"".join(parts)

    @property
    def padding_size(self) -> int:
        """Octets of padding after the payload, the count octet included."""
        return len(self.padding)

    @staticmethod
    def padding_for(size: int) -> bytes:
        """Padding of ``size`` octets (1-255): zeros, then the count, as RFC 3550 5.1 lays out."""
        if not 1 <= size <= 255:
            raise ValueError(f"RTP padding size {size} is outside 1-255")
        return bytes(size - 1) + bytes((size,))


def peek_header(data: bytes) -> tuple[int, int, int, int]:
    """``(payload_type, sequence_number, timestamp, ssrc)`` of an RTP datagram, cheaply.

    Only the fixed header is checked (length and version), which is all a
    relay needs before it forwards the datagram untouched. Raise
    :class:`RtpParseError` if the datagram is shorter than 12 bytes or is not
    version 2 (a STUN or DTLS packet multiplexed on the port, say).
    """
    if len(data) < 12 or data[0] >> 6 != 2:
        if len(data) < 12:
            raise RtpParseError(
                f"RTP packet is {len(data)} bytes, shorter than the 12-byte fixed header"
            )
        raise RtpParseError(f"RTP version is {data[0] >> 6}, expected 2")
    second, sequence_number, timestamp, ssrc = _unpack_peek(data)
    return second & 0x7F, sequence_number, timestamp, ssrc
