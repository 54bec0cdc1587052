"""Media: RTP/RTCP, codecs, DTMF, player, bridge and recorder.

The packet layer is sans-I/O (bytes and time in, packets and decisions out);
the asyncio adapter that owns the sockets comes with the bridge and player.
"""

from ._stats import (
    ReceiverStats,
    SenderState,
)
from .latch import (
    MediaTimeout,
    SymmetricLatch,
)
from .portpool import (
    PortPool,
    PortPoolExhausted,
)
from .rtcp import (
    SDES_CNAME,
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    RtcpParseError,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    UnknownRtcpPacket,
    is_rtcp,
    ntp_timestamp,
    parse_compound,
    round_trip_time,
    serialize_compound,
)
from .rtp import (
    RTP_HEADER_SIZE,
    RtpPacket,
    RtpParseError,
    peek_header,
)

__all__ = [
    "RTP_HEADER_SIZE",
    "SDES_CNAME",
    "Bye",
    "MediaTimeout",
    "PortPool",
    "PortPoolExhausted",
    "ReceiverReport",
    "ReceiverStats",
    "ReportBlock",
    "RtcpPacket",
    "RtcpParseError",
    "RtpPacket",
    "RtpParseError",
    "SdesChunk",
    "SdesItem",
    "SenderReport",
    "SenderState",
    "SourceDescription",
    "SymmetricLatch",
    "UnknownRtcpPacket",
    "is_rtcp",
    "ntp_timestamp",
    "parse_compound",
    "peek_header",
    "round_trip_time",
    "serialize_compound",
]
