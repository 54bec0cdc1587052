"""What a datagram on a WebRTC leg's one port is: RFC 7983's first-octet ranges.

ICE, DTLS, SRTP and SRTCP share one UDP port (RTP and RTCP multiplexed by
RFC 5761), so each datagram is told apart by its first octet: 0-3 STUN,
20-63 DTLS, 128-191 RTP or RTCP, and then by the second octet, whose
payload-type bits 64-95 (packet types 192-223) mean RTCP (RFC 5761 4).
Anything else (ZRTP, TURN channels, noise) is dropped by the caller.
"""

from __future__ import annotations

import enum

__all__ = ["PacketKind", "classify"]


class PacketKind(enum.IntEnum):
    """The protocol of one datagram."""

    OTHER = 0
    STUN = 1
    DTLS = 2
    RTP = 3
    RTCP = 4


def _table() -> tuple[PacketKind, ...]:
    kinds = [PacketKind.OTHER] * 256
    for octet in range(0, 4):
        kinds[octet] = PacketKind.STUN
    for octet in range(20, 64):
        kinds[octet] = PacketKind.DTLS
    for octet in range(128, 192):
        kinds[octet] = PacketKind.RTP
    return tuple(kinds)


_FIRST_OCTET = _table()


def classify(data: bytes) -> PacketKind:
    """The kind of a datagram by RFC 7983 (and RFC 5761 for RTP against RTCP)."""
    if not data:
        return PacketKind.OTHER
    kind = _FIRST_OCTET[data[0]]
    if kind is PacketKind.RTP:
        if len(data) < 2:
            return PacketKind.OTHER
        if 192 <= data[1] <= 223:
            return PacketKind.RTCP
    return kind
