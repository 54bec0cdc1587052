"""Per-stream RTP state: what a receiver measures and what a sender numbers.

:class:`ReceiverStats` follows RFC 3550 appendix A: sequence validation with
probation and wrap (A.1), cumulative and interval loss (A.3) and interarrival
jitter (A.8), and it produces the report block an SR or RR carries.
:class:`SenderState` owns an outgoing stream's SSRC, sequence number and
timestamp, and the counts its SR reports.

Both are sans-I/O: arrival and report times are passed in, in seconds on any
monotonic clock (the loop's ``time()``); only :meth:`SenderState.sender_report`
takes a wall-clock time, because the SR's NTP timestamp must be one.

The classes here are the pure-Python reference implementations
(:class:`PyReceiverStats`, :class:`PySenderState`). When the C fast path is
built (media/_native.py), ``ReceiverStats`` and ``SenderState`` are its
twins from media/_native_stats.py, which the relay updates in place without
a Python call per packet; tests/test_fastrtp.py holds the two to the same
results. Type checkers see the reference classes.
"""

from __future__ import annotations

import random
import struct
from typing import TYPE_CHECKING

from .rtcp import ReportBlock, SenderReport, ntp_timestamp
from .rtp import RtpPacket

__all__ = ["PyReceiverStats", "PySenderState", "ReceiverStats", "SenderState"]

_SEQ_MOD = 1 << 16
_pack_fixed = struct.Struct("!BBHII").pack


class PyReceiverStats:
    """Reception statistics for one remote SSRC (RFC 3550 A.1, A.3, A.8).

    Feed every packet of the source to :meth:`update` with its sequence
    number, RTP timestamp and arrival time. A source is believed once
    ``min_sequential`` packets arrive in sequence (probation, so a stray
    packet does not start a stream); a jump of more than ``max_dropout``
    ahead or ``max_misorder`` behind is taken for a restart only when the
    next packet follows it. Reordered and duplicate packets are counted as
    received, so reordering is not loss.

    :meth:`report_block` closes a reporting interval: the fraction lost it
    reports covers the packets since the previous call.
    """

    def __init__(
        self,
        ssrc: int,
        clock_rate: int,
        *,
        min_sequential: int = 2,
        max_dropout: int = 3000,
        max_misorder: int = 100,
    ) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock rate {clock_rate} must be positive")
        if min_sequential < 1:
            raise ValueError(f"min_sequential {min_sequential} must be at least 1")
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.fraction_lost = 0
        """Fraction lost (in 256ths) over the interval the last report block closed."""
        self._min_sequential = min_sequential
        self._max_dropout = max_dropout
        self._max_misorder = max_misorder
        self._started = False
        self._probation = min_sequential
        self._max_seq = 0
        self._cycles = 0
        self._base_seq = 0
        self._bad_seq = _SEQ_MOD + 1
        self._received = 0
        self._received_prior = 0
        self._expected_prior = 0
        self._transit: float | None = None
        self._jitter = 0.0
        self._lsr = 0
        self._lsr_arrival = 0.0

    def update(self, sequence_number: int, timestamp: int, arrival: float) -> bool:
        """Account for one packet; ``False`` if it is not (yet) part of a valid stream.

        ``False`` means the source is still on probation or the packet made a
        jump too large to trust; the relay may still forward it.
        """
        if not self._started:
            self._started = True
            self._init_seq(sequence_number)
            # The first packet is the start of probation, not a step in it.
            self._max_seq = (sequence_number - 1) & 0xFFFF
            self._probation = self._min_sequential
        valid = self._update_seq(sequence_number)
        # Transit time in timestamp units; only differences matter, so the
        # clocks' different origins cancel out (A.8).
        transit = arrival * self.clock_rate - timestamp
        if valid and self._transit is not None:
            delta = transit - self._transit
            # The RTP timestamp wraps at 2**32: take the short way round.
            delta = (delta + 0x8000_0000) % 0x1_0000_0000 - 0x8000_0000
            self._jitter += (abs(delta) - self._jitter) / 16
        self._transit = transit
        return valid

    def _init_seq(self, seq: int) -> None:
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = _SEQ_MOD + 1
        self._cycles = 0
        self._received = 0
        self._received_prior = 0
        self._expected_prior = 0
        # A restarted source has a new timestamp origin: an old transit would
        # show up as one enormous jitter sample.
        self._transit = None

    def _update_seq(self, seq: int) -> bool:
        """RFC 3550 A.1 ``update_seq``, with the probation wrap fixed."""
        udelta = (seq - self._max_seq) & 0xFFFF
        if self._probation:
            # The C original compares with max_seq + 1 unmasked and so never
            # accepts 0 after 65535; mask it.
            if seq == (self._max_seq + 1) & 0xFFFF:
                self._probation -= 1
                self._max_seq = seq
                if self._probation == 0:
                    self._init_seq(seq)
                    self._received += 1
                    return True
            else:
                self._probation = self._min_sequential - 1
                self._max_seq = seq
            return False
        if udelta < self._max_dropout:
            if seq < self._max_seq:
                self._cycles += _SEQ_MOD
            self._max_seq = seq
        elif udelta <= _SEQ_MOD - self._max_misorder:
            if seq != self._bad_seq:
                self._bad_seq = (seq + 1) & 0xFFFF
                return False
            # Two packets in sequence after a big jump: the sender restarted
            # without telling us, so start over from here.
            self._init_seq(seq)
        self._received += 1
        return True

    @property
    def valid(self) -> bool:
        """Whether the source has passed probation."""
        return self._started and not self._probation

    @property
    def received(self) -> int:
        """Packets counted since the source became valid (duplicates included)."""
        return self._received

    @property
    def extended_highest_sequence(self) -> int:
        """Highest sequence number seen, with the count of wraps in the upper 16 bits."""
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        """Packets expected since the source became valid."""
        if not self.valid:
            return 0
        return self._cycles + self._max_seq - self._base_seq + 1

    @property
    def cumulative_lost(self) -> int:
        """Expected minus received; negative when duplicates outnumber losses."""
        return self.expected - self._received

    @property
    def jitter(self) -> float:
        """Interarrival jitter estimate in RTP timestamp units."""
        return self._jitter

    @property
    def jitter_seconds(self) -> float:
        """Interarrival jitter estimate in seconds."""
        return self._jitter / self.clock_rate

    def sender_report_received(self, ntp_timestamp: int, arrival: float) -> None:
        """Remember an SR from this source, for the LSR and DLSR of the next report."""
        self._lsr = (ntp_timestamp >> 16) & 0xFFFF_FFFF
        self._lsr_arrival = arrival

    def report_block(self, now: float) -> ReportBlock | None:
        """The report block about this source, closing the interval (RFC 3550 A.3).

        ``None`` while the source is on probation: RFC 3550 reports only
        sources heard from, and an unproven one may be a stray packet.
        """
        if not self.valid:
            return None
        expected = self.expected
        expected_interval = expected - self._expected_prior
        received_interval = self._received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self._received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            self.fraction_lost = 0
        else:
            self.fraction_lost = (lost_interval << 8) // expected_interval
        # The wire field is 24 bits signed: saturate rather than wrap.
        lost = max(-0x800000, min(0x7FFFFF, expected - self._received))
        dlsr = 0
        if self._lsr:
            dlsr = max(0, min(0xFFFF_FFFF, int((now - self._lsr_arrival) * 65536)))
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=self.fraction_lost,
            packets_lost=lost,
            highest_sequence=self.extended_highest_sequence & 0xFFFF_FFFF,
            jitter=int(self._jitter),
            lsr=self._lsr,
            dlsr=dlsr,
        )


class PySenderState:
    """An outgoing RTP stream: its SSRC, next sequence number and timestamp, SR counts.

    The SSRC, first sequence number and first timestamp are random (RFC 3550
    5.1), from ``rng`` when given (tests pass a seeded one), else from the
    operating system. Each packet advances the sequence number by one and
    the timestamp by the samples it carries; :meth:`skip` advances the
    timestamp alone, across silence or hold.
    """

    def __init__(
        self, clock_rate: int, *, ssrc: int | None = None, rng: random.Random | None = None
    ) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock rate {clock_rate} must be positive")
        source = rng if rng is not None else random.SystemRandom()
        self.clock_rate = clock_rate
        self.ssrc = source.getrandbits(32) if ssrc is None else ssrc
        # Below 2**15, as browsers do: an SRTP receiver guessing the rollover
        # counter from the first packet then never sees a wrap straight away.
        self.sequence_number = source.getrandbits(15)
        self.timestamp = source.getrandbits(32)
        self.packet_count = 0
        self.octet_count = 0

    def build(
        self, payload: bytes, payload_type: int, samples: int, *, marker: bool = False
    ) -> bytes:
        """The next packet's bytes, then advance by one packet and ``samples``.

        ``samples=0`` keeps the timestamp, as the packets of one RFC 4733
        event require. Built straight from a struct, with no packet object,
        because a player sends one of these per call every 20 ms.
        """
        if not 0 <= payload_type <= 127:
            raise ValueError(f"RTP payload type {payload_type} is outside 0-127")
        data = (
            _pack_fixed(
                0x80,
                (0x80 if marker else 0) | payload_type,
                self.sequence_number,
                self.timestamp,
                self.ssrc,
            )
            + payload
        )
        self._advance(len(payload), samples)
        return data

    def next_packet(
        self, payload: bytes, payload_type: int, samples: int, *, marker: bool = False
    ) -> RtpPacket:
        """Like :meth:`build`, but the packet as an :class:`RtpPacket` to adjust first."""
        packet = RtpPacket(
            payload_type, self.sequence_number, self.timestamp, self.ssrc, payload, marker
        )
        self._advance(len(payload), samples)
        return packet

    def skip(self, samples: int) -> None:
        """Advance the timestamp without sending: the media clock runs on in silence."""
        self.timestamp = (self.timestamp + samples) & 0xFFFF_FFFF

    def _advance(self, octets: int, samples: int) -> None:
        self.sequence_number = (self.sequence_number + 1) & 0xFFFF
        self.timestamp = (self.timestamp + samples) & 0xFFFF_FFFF
        # Both counts wrap, as the 32-bit SR fields do (RFC 3550 6.4.1).
        self.packet_count = (self.packet_count + 1) & 0xFFFF_FFFF
        self.octet_count = (self.octet_count + octets) & 0xFFFF_FFFF

    def sender_report(
        self, wallclock: float, reports: tuple[ReportBlock, ...] = ()
    ) -> SenderReport:
        """An SR for this stream, stamped with Unix time ``wallclock``.

        The RTP timestamp is that of the next packet, which the shared media
        clock sends within one frame of now; receivers use the pair only to
        line streams up, which a frame's error does not upset.
        """
        return SenderReport(
            ssrc=self.ssrc,
            ntp_timestamp=ntp_timestamp(wallclock),
            rtp_timestamp=self.timestamp,
            packet_count=self.packet_count,
            octet_count=self.octet_count,
            reports=reports,
        )


if TYPE_CHECKING:
    ReceiverStats = PyReceiverStats
    SenderState = PySenderState
else:
    from ._native import fastrtp

    if fastrtp is not None:
        from ._native_stats import ReceiverStats, SenderState
    else:
        ReceiverStats, SenderState = PyReceiverStats, PySenderState
