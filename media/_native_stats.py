"""``ReceiverStats`` and ``SenderState`` on the C fast path (media/_fastrtp_src/).

The per-packet parts (``update``, ``build``, the counters) are C; what runs
a few times a second per stream (report blocks, sender reports, the
packet object a DTMF sender adjusts) stays here in Python, built from the
same fields. Behaviour is that of the reference classes in media/_stats.py,
which tests/test_fastrtp.py checks packet for packet.

Imported only when the extension is built (media/_native.py).
"""

from __future__ import annotations

import os
import random

from ._fastrtp import ReceiverStatsCore, SenderStateCore
from .rtcp import ReportBlock, SenderReport, ntp_timestamp
from .rtp import RtpPacket

__all__ = ["ReceiverStats", "SenderState"]


class ReceiverStats(ReceiverStatsCore):
    """Reception statistics for one remote SSRC (RFC 3550 A.1, A.3, A.8), in C.

    See :class:`media._stats.PyReceiverStats` for the behaviour.
    """

    __slots__ = ()

    def report_block(self, now: float) -> ReportBlock | None:
        """The report block about this source, closing the interval (RFC 3550 A.3).

        ``None`` while the source is on probation.
        """
        fields = self._report(now)
        if fields is None:
            return None
        ssrc, fraction_lost, packets_lost, highest, jitter, lsr, dlsr = fields
        return ReportBlock(
            ssrc=ssrc,
            fraction_lost=fraction_lost,
            packets_lost=packets_lost,
            highest_sequence=highest,
            jitter=jitter,
            lsr=lsr,
            dlsr=dlsr,
        )


class SenderState(SenderStateCore):
    """An outgoing RTP stream's SSRC, sequence number, timestamp and SR counts, in C.

    See :class:`media._stats.PySenderState` for the behaviour; the random
    start values come from ``rng`` when given, else from the operating system.
    """

    __slots__ = ()

    def __init__(
        self, clock_rate: int, *, ssrc: int | None = None, rng: random.Random | None = None
    ) -> None:
        super().__init__(clock_rate)
        if rng is not None:
            drawn = rng.getrandbits(32), rng.getrandbits(15), rng.getrandbits(32)
        else:  # one system call for the three
            seed = int.from_bytes(os.urandom(10))
            drawn = seed & 0xFFFFFFFF, (seed >> 32) & 0x7FFF, seed >> 48
        self.ssrc = drawn[0] if ssrc is None else ssrc
        # Below 2**15, as browsers do (see the reference class).
        self.sequence_number = drawn[1]
        self.timestamp = drawn[2]
        self.packet_count = 0
        self.octet_count = 0

    def next_packet(
        self, payload: bytes, payload_type: int, samples: int, *, marker: bool = False
    ) -> RtpPacket:
        """Like :meth:`build`, but the packet as an :class:`RtpPacket` to adjust first."""
        packet = RtpPacket(
            payload_type, self.sequence_number, self.timestamp, self.ssrc, payload, marker
        )
        self._advance(len(payload), samples)
        return packet

    def sender_report(
        self, wallclock: float, reports: tuple[ReportBlock, ...] = ()
    ) -> SenderReport:
        """An SR for this stream, stamped with Unix time ``wallclock``."""
        return SenderReport(
            ssrc=self.ssrc,
            ntp_timestamp=ntp_timestamp(wallclock),
            rtp_timestamp=self.timestamp,
            packet_count=self.packet_count,
            octet_count=self.octet_count,
            reports=reports,
        )
