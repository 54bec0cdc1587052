"""The asyncio adapter for one RTP stream: :class:`RtpLeg`.

A leg owns an even UDP port from the :class:`~media.portpool.PortPool` for RTP
and the port above it for RTCP, and drives the sans-I/O pieces of this
package with them: :class:`~media.latch.SymmetricLatch` says where to send,
:class:`~media._stats.ReceiverStats` and :class:`~media._stats.SenderState`
number and measure the streams, :class:`~media.dtmf.Rfc4733Receiver` and
:class:`~media.dtmf.GoertzelDetector` turn packets into key presses, and
:class:`~media.latch.MediaTimeout` says when the peer has gone quiet.

The receive path is the cost that scales with calls, so it reads the four
header fields it needs with one ``struct`` unpack and builds no packet
object; only a packet with CSRCs, an extension or padding is parsed in full.
Each socket's protocol calls an instance attribute rather than a method, so
a :class:`~media.bridge.Bridge` can install its relay function there and take
packets without an intermediate call (:meth:`RtpLeg.attach_relay`).

A leg nobody listens to (a caller hearing a prompt or music on hold: no
relay, no :attr:`on_audio`, no in-band detector) still counts, measures and
times out on its peer's audio; with the C fast path built (media/_native.py)
a :class:`media._fastrtp.Relay` that sends nothing does that for the common
packet, and the rest (key presses, strangers, a new SSRC) take the full path.

Timers are few and lazy: one media-timeout timer per leg, re-armed on expiry
from the time the last packet arrived (never touched per packet); one RTCP
timer; and a DTMF end timer only while a telephone-event is in progress.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
import struct
import time
from collections.abc import Callable
from typing import ClassVar

from ._native import fastrtp
from ._stats import ReceiverStats, SenderState
from ._udp import Address, Handler, PortIo, UdpIo, discard, open_io
from .dtmf import DtmfReceived, GoertzelDetector, Rfc4733Receiver, Rfc4733Sender
from .g711 import PCMU, Codec
from .latch import MediaTimeout, SymmetricLatch
from .portpool import PortPool
from .rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    RtcpParseError,
    SenderReport,
    SourceDescription,
    parse_compound,
    round_trip_time,
    serialize_compound,
)
from .rtp import RtpPacket, RtpParseError

__all__ = ["Address", "RtpLeg"]

logger = logging.getLogger(__name__)

# Payload type, sequence number, timestamp and SSRC in one unpack (the first
# octet is checked by hand, the marker stays in the second octet).
_peek = struct.Struct("!xBHII").unpack_from
_NOWHERE: Address = ("", 0)
_BIND_ATTEMPTS = 32


class _NoRestamp:
    """The restamp state of a listener, which never sends."""

    __slots__ = ("offset", "ssrc")

    def __init__(self) -> None:
        self.ssrc: int | None = None
        self.offset = 0


def _bind_pair(pool: PortPool, host: str) -> tuple[int, socket.socket, socket.socket]:
    """An even port from the pool with RTP and RTCP sockets bound; busy ports are skipped."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(_BIND_ATTEMPTS):
        port = pool.allocate()
        bound: list[socket.socket] = []
        try:
            for offset in (0, 1):
                sock = socket.socket(family, socket.SOCK_DGRAM)
                bound.append(sock)
                sock.setblocking(False)
                sock.bind((host, port + offset))
        except OSError as exc:
            for sock in bound:
                sock.close()
            # The pool only does bookkeeping: another program may hold the
            # port. Released ports go to the back of the queue, so the next
            # allocate() tries a different one.
            pool.release(port)
            if exc.errno != errno.EADDRINUSE:
                raise
            logger.debug("RTP port %d or %d is busy, trying another", port, port + 1)
            continue
        return port, bound[0], bound[1]
    raise OSError(errno.EADDRINUSE, f"no free RTP port pair after {_BIND_ATTEMPTS} attempts")


class _ParkedPair:
    """A closed plain leg's two sockets, bound and read (and dropped) in C, kept by
    the pool for the next leg on the same address."""

    __slots__ = ("rtcp", "rtp")

    def __init__(self, rtp: PortIo, rtcp: PortIo) -> None:
        self.rtp = rtp
        self.rtcp = rtcp

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()


class _Spent:
    """A closed leg's sockets once another leg may have them: the counts it had."""

    __slots__ = ("fast_packets", "last_arrival")

    fileno = -1

    def __init__(self, fast_packets: int, last_arrival: float) -> None:
        self.fast_packets = fast_packets
        self.last_arrival = last_arrival

    @property
    def handler(self) -> Handler:
        return discard

    @handler.setter
    def handler(self, handler: Handler) -> None:
        pass

    def sendto(self, data: bytes, address: Address) -> None:
        pass  # closed: nothing goes out

    def close(self) -> None:
        pass


class RtpLeg:
    """One RTP stream between a local even port (RTCP on the port above) and one peer.

    Made by :meth:`open`, shaped by :meth:`configure` (from the SDP offer and
    answer, again on every re-INVITE), closed by :meth:`close`.

    Receiving: a packet is dropped when it is not RTP version 2
    (``dropped_malformed``), carries a payload type the SDP did not
    negotiate (``dropped_payload_type``), or comes from a source other than
    the peer once the peer is known (``dropped_source``; see
    :class:`~media.latch.SymmetricLatch`: until the first packet is confirmed
    as the peer's, packets from anywhere are taken, because a NATed caller's
    first packets come from an address its SDP does not name). Audio goes to
    :attr:`on_audio`, key presses (RFC 4733, and in-band tones when
    ``inband_dtmf``) to :attr:`on_dtmf`. No RTP for ``media_timeout`` seconds
    while receiving calls :attr:`on_timeout` once; :meth:`configure` starts
    the clock again.

    Sending: :meth:`send_audio` and :meth:`send_dtmf` number packets with the
    leg's own SSRC, sequence and timestamp (:attr:`sender`), so a player and
    a bridge feeding the leg in turn make one continuous stream.

    RTCP: an SR (an RR when the leg has sent nothing since the last report)
    with a report block about the peer goes out every ``rtcp_interval``
    seconds, randomised by +/-50% as RFC 3550 6.2 asks; incoming SR and RR
    update :attr:`round_trip_time` and :attr:`remote_report`.
    """

    on_dtmf: Callable[[DtmfReceived], None] | None
    on_timeout: Callable[[RtpLeg], None] | None
    is_webrtc: ClassVar[bool] = False
    """A browser's leg (ICE-lite, DTLS-SRTP: media/webrtc.py's WebRtcLeg)."""
    # The statistics and sender classes: the C ones when built, which a C
    # relay may drive. A leg whose packets must pass through Python (SRTP,
    # media/webrtc.py) names the pure-Python twins, and no C relay takes it.
    _receiver_stats: type[ReceiverStats] = ReceiverStats
    _sender_state: type[SenderState] = SenderState

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pool: PortPool,
        host: str,
        port: int,
        rtp: UdpIo,
        rtcp: UdpIo,
        *,
        media_timeout: float,
        rtcp_interval: float,
    ) -> None:
        """Use :meth:`open`; this wires up sockets that are already bound."""
        self.local_address: Address = (host, port)
        self._on_audio: Callable[[RtpLeg, bytes, int, float], None] | None = None
        self.on_dtmf = None
        self.on_timeout = None
        self.codec: Codec = PCMU
        self._packets_received = 0
        self.dropped_malformed = 0
        self.dropped_payload_type = 0
        self.dropped_source = 0
        self.dropped_inactive = 0
        self.rtcp_sent = 0
        self.rtcp_received = 0
        self.round_trip_time: float | None = None
        """Seconds, from the last report about our stream that echoed an SR of ours."""
        self.remote_report: ReportBlock | None = None
        """The peer's last report block about our stream: its loss and jitter."""
        self.timed_out = False
        self._loop = loop
        self._time = loop.time
        self._pool = pool
        self._port = port
        self._rtp = rtp
        self._rtcp = rtcp
        rtp.handler = self._on_rtp
        rtcp.handler = self._on_rtcp
        self._closed = False
        self._payload_type = PCMU.payload_type
        self._te_pt: int | None = None
        self._ptime_ms = 20
        self._sends = False
        self._receives = False
        self._remote: Address | None = None
        self._latch = SymmetricLatch(_NOWHERE)
        self._confirmed = False
        self._rtcp_target: Address | None = None
        self.sender = self._sender_state(PCMU.clock_rate)
        self.stats = self._receiver_stats(0, PCMU.clock_rate)
        self._dtmf: Rfc4733Receiver | None = None
        self._detector: GoertzelDetector | None = None
        self._timeout = MediaTimeout(self._time(), media_timeout)
        self._timeout_handle: asyncio.TimerHandle | None = None
        self._dtmf_handle: asyncio.TimerHandle | None = None
        self._dtmf_sends: list[tuple[float, asyncio.Handle]] = []
        self._rtcp_interval = rtcp_interval
        self._rtcp_handle: asyncio.TimerHandle | None = None
        self._reported_packets = 0
        self._cname = f"leg-{self.sender.ssrc:08x}@{host}"
        self._relay: Callable[[bytes, float], None] | None = None
        self._relay_changed: Callable[[], None] | None = None
        self._schedule_rtcp()

    @classmethod
    async def open(
        cls,
        pool: PortPool,
        host: str = "127.0.0.1",
        *,
        media_timeout: float = 30.0,
        rtcp_interval: float = 5.0,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> RtpLeg:
        """Bind an even port from ``pool`` (RTCP above it) on ``host`` and return the leg.

        A port another program holds is released and another tried. The leg
        sends nothing until :meth:`configure` gives it a peer.
        """
        loop = loop or asyncio.get_running_loop()
        parked = pool.unpark(host, loop.time())
        if parked is not None:
            port, pair = parked
            assert isinstance(pair, _ParkedPair)
            # Whatever the old call's peer sent since is not the new peer's.
            pair.rtp.idle()
            pair.rtcp.idle()
            return cls(
                loop,
                pool,
                host,
                port,
                pair.rtp,
                pair.rtcp,
                media_timeout=media_timeout,
                rtcp_interval=rtcp_interval,
            )
        port, rtp_sock, rtcp_sock = _bind_pair(pool, host)
        try:
            rtp = await open_io(loop, rtp_sock)
        except BaseException:
            rtp_sock.close()
            rtcp_sock.close()
            pool.release(port)
            raise
        try:
            rtcp = await open_io(loop, rtcp_sock)
        except BaseException:
            rtp.close()
            rtcp_sock.close()
            pool.release(port)
            raise
        return cls(
            loop,
            pool,
            host,
            port,
            rtp,
            rtcp,
            media_timeout=media_timeout,
            rtcp_interval=rtcp_interval,
        )

    # ------------------------------------------------------------------
    # Negotiated state

    def configure(
        self,
        remote: Address | None,
        codec: Codec,
        payload_type: int,
        *,
        telephone_event_pt: int | None = None,
        ptime_ms: int = 20,
        sends: bool = True,
        receives: bool = True,
        inband_dtmf: bool = False,
    ) -> None:
        """Apply an SDP negotiation: the peer's address, codec, payload types, direction.

        May be called again for a re-INVITE: a new ``remote`` starts latching
        afresh; ``sends=False`` (hold, ``a=recvonly``) stops sending;
        ``receives=False`` (``a=sendonly``) drops incoming RTP and suspends
        the media timeout. ``remote`` ``None`` means no address yet: the leg
        sends to whoever it latches on to, and nowhere before that.
        """
        if self._closed:
            raise RuntimeError("configure() on a closed RTP leg")
        if remote != self._remote:
            self._remote = None if remote is None else (remote[0], remote[1])
            self._latch.rebase(_NOWHERE if self._remote is None else self._remote)
            self._confirmed = False
            self._rtcp_target = None
        if codec.clock_rate != self.sender.clock_rate:
            self.sender = self._sender_state(codec.clock_rate)
            self.stats = self._receiver_stats(0, codec.clock_rate)
        self.codec = codec
        self._payload_type = payload_type
        self._ptime_ms = ptime_ms
        self._sends = sends
        self._receives = receives
        if telephone_event_pt != self._te_pt or self._dtmf is None:
            self._te_pt = telephone_event_pt
            self._dtmf = (
                None
                if telephone_event_pt is None
                else Rfc4733Receiver(telephone_event_pt, codec.clock_rate)
            )
        if inband_dtmf and self._detector is None:
            self._detector = GoertzelDetector(codec.clock_rate)
        elif not inband_dtmf:
            self._detector = None
        # A re-INVITE or an unhold gives the peer a fresh media-timeout window.
        self._timeout.last_seen = self._time()
        self.timed_out = False
        if receives:
            self._arm_timeout()
        self._changed()

    @property
    def on_audio(self) -> Callable[[RtpLeg, bytes, int, float], None] | None:
        """Called with ``(leg, payload, timestamp, arrival)`` for each audio packet, unrelayed."""
        return self._on_audio

    @on_audio.setter
    def on_audio(self, handler: Callable[[RtpLeg, bytes, int, float], None] | None) -> None:
        self._on_audio = handler
        self._update_receiver()

    @property
    def remote_address(self) -> Address | None:
        """The peer's address as its SDP gave it, or ``None``."""
        return self._remote

    @property
    def latched(self) -> bool:
        """Whether :attr:`target` was learnt from the peer's packets (NAT) rather than SDP."""
        return self._latch.latched

    @property
    def inband_dtmf(self) -> bool:
        """Whether audio is searched for DTMF tones (which a relay must then pass in)."""
        return self._detector is not None

    @property
    def target(self) -> Address | None:
        """Where RTP goes now: the latched source or the SDP address; ``None`` for nowhere."""
        target = self._latch.target
        return None if target == _NOWHERE else target

    @property
    def payload_type(self) -> int:
        """The negotiated audio payload type number."""
        return self._payload_type

    @property
    def telephone_event_pt(self) -> int | None:
        """The negotiated telephone-event payload type, or ``None``."""
        return self._te_pt

    @property
    def ptime_ms(self) -> int:
        """Packetisation time from SDP, for whoever feeds the leg."""
        return self._ptime_ms

    @property
    def sends(self) -> bool:
        """Whether the leg sends RTP (``False`` on hold)."""
        return self._sends and not self._closed

    @property
    def receives(self) -> bool:
        """Whether the leg takes RTP in (``False`` when our side is ``a=sendonly``)."""
        return self._receives and not self._closed

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    @property
    def packets_sent(self) -> int:
        """RTP packets sent on this leg (audio and telephone-events), mod 2**32."""
        return self.sender.packet_count

    @property
    def packets_dropped(self) -> int:
        """Incoming packets dropped for any reason."""
        return (
            self.dropped_malformed
            + self.dropped_payload_type
            + self.dropped_source
            + self.dropped_inactive
        )

    @property
    def media_clock(self) -> MediaTimeout:
        """The media timeout; a Python relay sets ``last_seen`` for each packet it takes."""
        # What a C relay took on the socket's fast path is folded in when asked.
        self._timeout.seen(self._rtp.last_arrival)
        return self._timeout

    @property
    def packets_received(self) -> int:
        """RTP packets accepted from the peer (the C fast path's included)."""
        return self._packets_received + self._rtp.fast_packets

    @packets_received.setter
    def packets_received(self, value: int) -> None:
        self._packets_received = value - self._rtp.fast_packets

    @property
    def rtp_fileno(self) -> int:
        """The RTP socket's descriptor, for a C relay that sends on it directly."""
        return self._rtp.fileno

    @property
    def rtp_sendto(self) -> Callable[[bytes, Address], None]:
        """Send one datagram from the RTP socket, for a relay."""
        return self._rtp.sendto

    # ------------------------------------------------------------------
    # Sending

    def skip_audio(self, samples: int) -> None:
        """Advance the RTP timestamp over frames the media clock skipped after a stall.

        The far end then sees a gap in time, true to the wall clock, rather
        than audio arriving late (media.player.SkippingSink).
        """
        self.sender.skip(samples)

    def send_audio(self, payload: bytes, samples: int, *, marker: bool = False) -> None:
        """Send one audio packet of ``samples`` samples; nothing while not sending.

        ``payload`` is already encoded with :attr:`codec`.
        """
        target = self._latch.target
        if not self._sends or self._closed or target == _NOWHERE:
            return
        data = self.sender.build(payload, self._payload_type, samples, marker=marker)
        self._rtp.sendto(data, target)

    def send_dtmf(self, digit: str, duration_ms: int = 100) -> None:
        """Send one key press as RFC 4733 telephone-events, paced by the loop's timers.

        The packets go out over ``duration_ms`` plus the end repeats (about
        40 ms more), each scheduled with ``loop.call_later``; the caller does
        not pace them. Audio sent meanwhile keeps its own timestamps, which
        RFC 4733 allows. Raises ``ValueError`` if no telephone-event payload
        type was negotiated or ``digit`` is not a DTMF key.
        """
        if self._te_pt is None:
            raise ValueError("no telephone-event payload type negotiated on this leg")
        sender = Rfc4733Sender(self._te_pt, self.sender.clock_rate)
        packets = sender.packets(digit, self.sender.timestamp, duration_ms)
        now = self._time()
        # Due times are kept beside the handles: uvloop's call_later with no
        # delay returns a plain Handle, which has no ``when()``.
        self._dtmf_sends = [(due, h) for due, h in self._dtmf_sends if due > now]
        for packet in packets:
            delay = packet.offset_ms / 1000
            handle = self._loop.call_later(
                delay,
                self._send_event,
                packet.payload,
                packet.timestamp,
                packet.marker,
            )
            self._dtmf_sends.append((now + delay, handle))

    def _send_event(self, payload: bytes, timestamp: int, marker: bool) -> None:
        target = self._latch.target
        if not self._sends or self._closed or self._te_pt is None or target == _NOWHERE:
            return
        # All packets of one event share the timestamp of its start, whatever
        # the audio has done since: take the sequence number, keep the stamp.
        packet = self.sender.next_packet(payload, self._te_pt, 0, marker=marker)
        packet.timestamp = timestamp
        self._rtp.sendto(packet.serialize(), target)

    # ------------------------------------------------------------------
    # Receiving

    def _on_rtp(self, data: bytes, addr: Address) -> None:
        """Every incoming RTP datagram when no relay has taken the fast path."""
        if len(data) < 12 or data[0] & 0xC0 != 0x80:
            self.dropped_malformed += 1
            return
        second, sequence_number, timestamp, ssrc = _peek(data)
        payload_type = second & 0x7F
        if payload_type != self._payload_type and payload_type != self._te_pt:
            self.dropped_payload_type += 1
            return
        if not self._receives or self._closed:
            self.dropped_inactive += 1
            return
        if len(addr) != 2:
            addr = (addr[0], addr[1])
        latch = self._latch
        before = latch.target
        newly_confirmed = False
        if latch.receive(addr, ssrc):
            newly_confirmed = not self._confirmed
            self._confirmed = True
            if latch.target != before:
                logger.info("RTP leg %s latched to %s:%d", self.local_address, *latch.target)
                self._rtcp_target = None
                self._changed()
                newly_confirmed = False
        elif self._confirmed:
            self.dropped_source += 1
            return
        now = self._time()
        self._packets_received += 1
        self._timeout.last_seen = now
        stats = self.stats
        if ssrc != stats.ssrc:
            stats = self.stats = self._receiver_stats(ssrc, self.sender.clock_rate)
            self._changed()
        elif newly_confirmed:
            self._update_receiver()
        stats.update(sequence_number, timestamp, now)
        if payload_type == self._payload_type:
            self._audio(data, timestamp, now)
        else:
            self._telephone_event(data, timestamp, second > 0x7F, now)

    def _payload(self, data: bytes) -> bytes | None:
        if data[0] == 0x80:
            return data[12:]
        try:
            return RtpPacket.parse(data).payload
        except RtpParseError:
            self.dropped_malformed += 1
            return None

    def _audio(self, data: bytes, timestamp: int, now: float) -> None:
        relay = self._relay
        on_audio = self.on_audio if relay is None else None
        if relay is not None:
            relay(data, now)
        if on_audio is None and self._detector is None:
            return
        payload = self._payload(data)
        if payload is None:
            return
        if on_audio is not None:
            on_audio(self, payload, timestamp, now)
        if self._detector is not None:
            for event in self._detector.feed(self.codec.decode(payload)):
                self._report_dtmf(event)

    def _telephone_event(self, data: bytes, timestamp: int, marker: bool, now: float) -> None:
        relay = self._relay
        if relay is not None:
            relay(data, now)
        receiver = self._dtmf
        payload = self._payload(data)
        if receiver is None or payload is None:
            return
        for event in receiver.receive(timestamp, marker, payload, now):
            self._report_dtmf(event)
        self._arm_dtmf_timer()

    def _report_dtmf(self, event: DtmfReceived) -> None:
        if self.on_dtmf is not None:
            self.on_dtmf(event)

    def _arm_dtmf_timer(self) -> None:
        receiver = self._dtmf
        deadline = None if receiver is None else receiver.next_deadline()
        if self._dtmf_handle is not None:
            self._dtmf_handle.cancel()
            self._dtmf_handle = None
        if deadline is not None and not self._closed:
            self._dtmf_handle = self._loop.call_at(deadline, self._poll_dtmf)

    def _poll_dtmf(self) -> None:
        self._dtmf_handle = None
        if self._dtmf is not None:
            for event in self._dtmf.poll(self._time()):
                self._report_dtmf(event)
        self._arm_dtmf_timer()

    # ------------------------------------------------------------------
    # Media timeout: one timer, re-armed lazily

    def _arm_timeout(self) -> None:
        if self._timeout_handle is None and not self._closed:
            self._timeout_handle = self._loop.call_at(self._timeout.deadline, self._check_timeout)

    def _check_timeout(self) -> None:
        self._timeout_handle = None
        if self._closed or not self._receives:
            return
        if not self.media_clock.expired(self._time()):
            # Packets came since the timer was set: sleep until the new deadline.
            self._arm_timeout()
            return
        self.timed_out = True
        logger.info("RTP leg %s: no media for %.1f s", self.local_address, self._timeout.timeout)
        if self.on_timeout is not None:
            self.on_timeout(self)

    # ------------------------------------------------------------------
    # RTCP

    def _schedule_rtcp(self) -> None:
        delay = self._rtcp_interval * random.uniform(0.5, 1.5)
        self._rtcp_handle = self._loop.call_later(delay, self._send_rtcp)

    def _rtcp_destination(self) -> Address | None:
        if self._rtcp_target is not None:
            return self._rtcp_target
        target = self._latch.target
        return None if target == _NOWHERE else (target[0], target[1] + 1)

    def _reports(self) -> list[RtcpPacket]:
        block = self.stats.report_block(self._time())
        blocks = () if block is None else (block,)
        sender = self.sender
        report: RtcpPacket
        if sender.packet_count != self._reported_packets:
            report = sender.sender_report(time.time(), blocks)
        else:
            report = ReceiverReport(sender.ssrc, blocks)
        self._reported_packets = sender.packet_count
        return [report, SourceDescription.with_cname(sender.ssrc, self._cname)]

    def _send_rtcp(self) -> None:
        self._rtcp_handle = None
        if self._closed:
            return
        destination = self._rtcp_destination()
        if destination is not None:
            self._rtcp.sendto(serialize_compound(self._reports()), destination)
            self.rtcp_sent += 1
        self._schedule_rtcp()

    def _on_rtcp(self, data: bytes, addr: Address) -> None:
        try:
            packets = parse_compound(data)
        except RtcpParseError as exc:
            logger.debug("RTP leg %s: bad RTCP from %s: %s", self.local_address, addr, exc)
            return
        arrival = self._time()
        wallclock = time.time()
        ours = self.sender.ssrc
        for packet in packets:
            if isinstance(packet, SenderReport):
                if packet.ssrc == self.stats.ssrc:
                    self.stats.sender_report_received(packet.ntp_timestamp, arrival)
                blocks = packet.reports
            elif isinstance(packet, ReceiverReport):
                blocks = packet.reports
            else:
                continue
            if packet.ssrc == self._latch.expected_ssrc:
                # Symmetric RTCP: answer where the peer's reports come from.
                self._rtcp_target = (addr[0], addr[1])
            for block in blocks:
                if block.ssrc == ours:
                    self.remote_report = block
                    rtt = round_trip_time(block, wallclock)
                    if rtt is not None:
                        self.round_trip_time = rtt
        self.rtcp_received += 1

    # ------------------------------------------------------------------
    # Relay hooks and life cycle

    def attach_relay(
        self,
        receive: Handler,
        forward: Callable[[bytes, float], None],
        changed: Callable[[], None],
    ) -> None:
        """Hand the leg's packets to a relay (the bridge); :meth:`detach_relay` undoes it.

        ``receive`` becomes the RTP socket's handler: it takes the packets it
        can relay cheaply and passes the rest to :meth:`receive_datagram`,
        which validates them, latches, and calls ``forward(data, arrival)``
        for each packet accepted. ``changed()`` is called whenever something
        a relay may have cached changes: negotiation, latch, peer SSRC, close.
        """
        if self._relay is not None:
            raise RuntimeError(f"RTP leg {self.local_address} is already relayed")
        self._relay = forward
        self._relay_changed = changed
        self._rtp.handler = receive

    def detach_relay(self) -> None:
        """Give the leg its own receive path back; :attr:`on_audio` takes audio again."""
        self._relay = None
        self._relay_changed = None
        self._rtp.handler = self._on_rtp
        self._update_receiver()

    @property
    def relayed(self) -> bool:
        """Whether a relay (a bridge) has the leg's packets."""
        return self._relay is not None

    @property
    def receive_datagram(self) -> Callable[[bytes, Address], None]:
        """The leg's full receive path, for a relay's packets off its fast path."""
        return self._on_rtp

    def _changed(self) -> None:
        if self._relay_changed is not None:
            self._relay_changed()
        else:
            self._update_receiver()

    def _update_receiver(self) -> None:
        """Point the RTP socket at the cheapest handler that does all the leg must do.

        Unrelayed, with nobody taking its audio, a confirmed peer's audio only
        needs counting, statistics and the media clock: a sending-less C
        relay does that; anything else goes on to :meth:`_on_rtp`.
        """
        if self._relay is not None or self._closed:
            return
        handler: Handler = self._on_rtp
        stats = self.stats
        if (
            fastrtp is not None
            and self._confirmed
            and self._receives
            and self._on_audio is None
            and self._detector is None
            and isinstance(stats, fastrtp.ReceiverStatsCore)
            and isinstance(self.sender, fastrtp.SenderStateCore)
        ):
            handler = fastrtp.Relay(
                slow=self._on_rtp,
                stats=stats,
                source_target=self._latch.target,
                source_pt=self._payload_type,
                source_te=self._te_pt,
                peer_ssrc=stats.ssrc,
                sender=self.sender,
                fd=-1,
                target=None,
                sending=False,
                out_pt=self._payload_type,
                out_te=None,
                table=None,
                channel=None,
                restamp=_NoRestamp(),
            )
        self._rtp.handler = handler

    def close(self) -> None:
        """Close both sockets, cancel timers, release the port; a BYE goes out if we sent.

        Idempotent. A relay attached to the leg is told, and stops using it.
        """
        if self._closed:
            return
        self._closed = True
        for handle in (self._timeout_handle, self._dtmf_handle, self._rtcp_handle):
            if handle is not None:
                handle.cancel()
        for _, send in self._dtmf_sends:
            send.cancel()
        self._timeout_handle = self._dtmf_handle = self._rtcp_handle = None
        self._dtmf_sends = []
        destination = self._rtcp_destination()
        if destination is not None and self.sender.packet_count:
            packets = [*self._reports(), Bye((self.sender.ssrc,))]
            try:
                self._rtcp.sendto(serialize_compound(packets), destination)
                self.rtcp_sent += 1
            except OSError as exc:
                logger.debug("RTP leg %s: RTCP BYE not sent: %s", self.local_address, exc)
        self._changed()
        self._relay = None
        self._relay_changed = None
        # Whoever keeps a closed leg for its statistics (metrics, a report)
        # must not keep its owner alive through these.
        self._on_audio = None
        self.on_dtmf = None
        self.on_timeout = None
        rtp, rtcp = self._rtp, self._rtcp
        if isinstance(rtp, PortIo) and isinstance(rtcp, PortIo):
            # Bound and registered with the loop: the next leg takes them as they
            # are. What this leg's figures read from them is kept first.
            self._rtp = self._rtcp = _Spent(rtp.fast_packets, rtp.last_arrival)
            rtp.idle()
            rtcp.idle()
            pair = _ParkedPair(rtp, rtcp)
            self._pool.park(self._port, self.local_address[0], pair, self._time())
            return
        rtp.handler = discard
        rtcp.handler = discard
        rtp.close()
        rtcp.close()
        self._pool.release(self._port)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"-> {self.target}"
        return f"<RtpLeg {self.local_address[0]}:{self.local_address[1]} {state}>"
