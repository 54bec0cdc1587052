"""Media: RTP/RTCP, codecs, DTMF, player, bridge and recorder.

The packet layer is sans-I/O (bytes and time in, packets and decisions out);
the asyncio adapter that owns the sockets comes with the bridge and player.
"""

from ._stats import (
    ReceiverStats,
    SenderState,
)
from .dtmf import (
    DtmfReceived,
    DtmfSource,
    GoertzelDetector,
    Rfc4733Packet,
    Rfc4733Receiver,
    Rfc4733Sender,
    TelephoneEvent,
    parse_info_body,
)
from .g711 import (
    PCMA,
    PCMU,
    Codec,
    PcmaCodec,
    PcmuCodec,
    codec_for,
    register_codec,
    transcode_table,
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
    "PCMA",
    "PCMU",
    "RTP_HEADER_SIZE",
    "SDES_CNAME",
    "Bye",
    "Codec",
    "DtmfReceived",
    "DtmfSource",
    "GoertzelDetector",
    "MediaTimeout",
    "PcmaCodec",
    "PcmuCodec",
    "PortPool",
    "PortPoolExhausted",
    "ReceiverReport",
    "ReceiverStats",
    "ReportBlock",
    "Rfc4733Packet",
    "Rfc4733Receiver",
    "Rfc4733Sender",
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
    "TelephoneEvent",
    "UnknownRtcpPacket",
    "codec_for",
    "is_rtcp",
    "ntp_timestamp",
    "parse_compound",
    "parse_info_body",
    "peek_header",
    "register_codec",
    "round_trip_time",
    "serialize_compound",
    "transcode_table",
]
