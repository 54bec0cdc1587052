"""Two RTP legs joined: :class:`Bridge` relays each one's audio to the other, and records it.

The relay is the one per-packet cost that grows with every bridged call, so
it is built for speed rather than generality. For each direction the bridge
makes two closures over everything that stays fixed between negotiations
(payload type numbers, transcoding table, the outbound leg's sender state,
transport and target, the recording channel):

* ``receive(data, addr)`` is installed as the inbound leg's socket handler.
  For the common packet (version 2, no CSRC/extension/padding, the audio
  payload type, the known peer at its latched address) it does the leg's
  bookkeeping itself (statistics, media-timeout clock, count) and relays.
  Anything else goes to the leg's full receive path, which validates,
  latches, reports DTMF and hands accepted packets back to ``forward``.
* ``forward(data, arrival)`` re-stamps the packet with the outbound leg's
  own SSRC, sequence number and timestamp, maps the payload type,
  transcodes PCMU<->PCMA with one ``bytes.translate`` and sends it; audio
  is appended, untouched, to the recording channel for the writer thread.

With the C fast path built (media/_native.py) both are methods of one
:class:`media._fastrtp.Relay` per direction, which does the same work with
no Python code per packet; the closures below are the reference it is
tested against (tests/test_fastrtp.py) and the fallback without it.

When anything cached changes (a re-INVITE, a latch, a new peer SSRC, a leg
closing) the leg says so and the closures are rebuilt. The outbound
timestamp is the inbound one plus an offset fixed when the inbound stream
starts, so upstream loss shows as a timestamp gap downstream, while the
first relayed packet continues exactly from where the outbound leg's last
packet (say, from the player) left off, marked as a new talkspurt.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable

from ._mix import AGENT, CALLER, FRAME, MonitorMode, SampleBuffer, TickSource, hearing, mix
from ._native import fastrtp
from ._udp import Handler
from .g711 import transcode_table
from .leg import Address, RtpLeg
from .recorder import Recorder, RecordingChannel
from .rtp import RtpPacket, RtpParseError

__all__ = ["Bridge", "MonitorMode"]

logger = logging.getLogger(__name__)

_pack = struct.Struct("!BBHII").pack
_peek = struct.Struct("!xBHII").unpack_from

Receive = Handler
"""What the inbound socket's port calls: a Python closure, or a C Relay itself."""
Forward = Callable[[bytes, float], None]


class _Restamp:
    """One direction's mapping from inbound to outbound timestamps.

    Kept outside the closures so that rebuilding them (a latch, a re-INVITE)
    does not start a new talkspurt; only a new inbound SSRC or a new bridge does.
    """

    __slots__ = ("offset", "ssrc")

    def __init__(self) -> None:
        self.ssrc: int | None = None
        self.offset = 0


def _relay(
    loop: asyncio.AbstractEventLoop,
    source: RtpLeg,
    destination: RtpLeg,
    channel: RecordingChannel | None,
    restamp: _Restamp,
) -> tuple[Receive, Forward]:
    """The receive and forward functions for one direction, ``source`` to ``destination``."""
    native = _native_relay(source, destination, channel, restamp)
    if native is not None:
        return native
    return _python_relay(loop, source, destination, channel, restamp)


def _fast_path(source: RtpLeg) -> bool:
    """Whether a relay may take ``source``'s packets itself rather than its leg's full path.

    Not when the leg drops everything (hold), must look at every payload
    (in-band DTMF), or has no peer yet.
    """
    return source.receives and not source.inband_dtmf and source.target is not None


def _native_relay(
    source: RtpLeg,
    destination: RtpLeg,
    channel: RecordingChannel | None,
    restamp: _Restamp,
) -> tuple[Receive, Forward] | None:
    """One direction as a C :class:`media._fastrtp.Relay`; None without the extension."""
    if fastrtp is None:
        return None
    stats, sender = source.stats, destination.sender
    if not isinstance(stats, fastrtp.ReceiverStatsCore) or not isinstance(
        sender, fastrtp.SenderStateCore
    ):
        return None
    target = destination.target
    fast = _fast_path(source)
    source_te = source.telephone_event_pt
    relay = fastrtp.Relay(
        slow=source.receive_datagram,
        stats=stats,
        source_target=source.target if fast else None,
        source_pt=source.payload_type,
        source_te=source_te,
        peer_ssrc=stats.ssrc,
        sender=sender,
        fd=destination.rtp_fileno,
        target=target,
        sending=destination.sends and target is not None,
        out_pt=destination.payload_type,
        # Events go across only when both sides negotiated telephone-event.
        out_te=destination.telephone_event_pt if source_te is not None else None,
        table=transcode_table(source.codec, destination.codec),
        channel=channel,
        restamp=restamp,
    )
    return (relay if fast else source.receive_datagram), relay.forward


def _python_relay(
    loop: asyncio.AbstractEventLoop,
    source: RtpLeg,
    destination: RtpLeg,
    channel: RecordingChannel | None,
    restamp: _Restamp,
) -> tuple[Receive, Forward]:
    """The receive and forward closures for one direction, in Python."""
    now_fn = loop.time
    slow = source.receive_datagram
    source_pt = source.payload_type
    source_te = source.telephone_event_pt
    source_target = source.target
    stats = source.stats
    peer_ssrc = stats.ssrc
    update_stats = stats.update
    media_clock = source.media_clock
    sending = destination.sends and destination.target is not None
    target: Address = destination.target or ("", 0)  # not sent to unless sending
    out_pt = destination.payload_type
    # Events go across only when both sides negotiated telephone-event.
    out_te = destination.telephone_event_pt if source_te is not None else None
    table = transcode_table(source.codec, destination.codec)
    sender = destination.sender
    sendto = destination.rtp_sendto
    record = channel.buffer.append if channel is not None else None

    def forward(data: bytes, arrival: float) -> None:
        if data[0] == 0x80:
            payload = data[12:]
        else:
            try:
                payload = RtpPacket.parse(data).payload
            except RtpParseError:
                return
        second, _, timestamp, ssrc = _peek(data)
        payload_type = second & 0x7F
        if payload_type == source_pt:
            if record is not None and channel is not None and channel.active:
                record(arrival)
                record(data)
            pt = out_pt
            samples = len(payload)
            if table is not None:
                payload = payload.translate(table)
        elif payload_type == source_te and out_te is not None:
            pt = out_te
            samples = 0  # every packet of an event carries the event's start time
        else:
            return
        if not sending:
            return
        marker = second & 0x80
        if ssrc != restamp.ssrc:
            restamp.ssrc = ssrc
            restamp.offset = sender.timestamp - timestamp
            marker = 0x80
        out_timestamp = (timestamp + restamp.offset) & 0xFFFF_FFFF
        sequence_number = sender.sequence_number
        sendto(
            _pack(0x80, marker | pt, sequence_number, out_timestamp, sender.ssrc) + payload,
            target,
        )
        sender.sequence_number = (sequence_number + 1) & 0xFFFF
        if samples:
            sender.timestamp = (out_timestamp + samples) & 0xFFFF_FFFF
        sender.packet_count = (sender.packet_count + 1) & 0xFFFF_FFFF
        sender.octet_count = (sender.octet_count + len(payload)) & 0xFFFF_FFFF

    if not _fast_path(source):
        return slow, forward

    def receive(data: bytes, addr: Address) -> None:
        if addr != source_target or data[0] != 0x80 or len(data) < 12:
            slow(data, addr)
            return
        second, sequence_number, timestamp, ssrc = _peek(data)
        if second & 0x7F != source_pt or ssrc != peer_ssrc:
            slow(data, addr)
            return
        arrival = now_fn()
        update_stats(sequence_number, timestamp, arrival)
        media_clock.last_seen = arrival
        source.packets_received += 1
        forward(data, arrival)

    return receive, forward


class Bridge:
    """Relays RTP between two legs both ways, and feeds a :class:`Recorder` if given.

    Leg ``a`` is the caller (recorded on the left channel), ``b`` the agent
    (right). Audio is re-stamped with the outbound leg's own SSRC, sequence
    and timestamp, its payload type mapped to the outbound leg's number and,
    when the legs negotiated different G.711 laws, transcoded. RFC 4733
    telephone-events are forwarded (mapped) when both legs negotiated them,
    and reported through each leg's own ``on_dtmf`` as before. In-band DTMF
    detection, when a leg has it, keeps working while bridged.

    The bridge runs from construction until :meth:`stop`, which gives both
    legs their own receive path (and ``on_audio``) back; it also stops by
    itself when either leg closes. Raises ``ValueError`` for codecs that
    cannot be transcoded byte for byte, and ``RuntimeError`` if a leg is
    already bridged.

    A third leg can join (:meth:`monitor`): a supervisor who listens, whispers
    to the agent or barges in (:class:`MonitorMode`). Each party that hears
    one other still gets that one's packets relayed untouched; a party that
    hears two gets them mixed (media/_mix.py). While monitored every packet
    takes the legs' full receive path, in Python: the cost of one supervised
    call, not of every call. The recording keeps the caller on the left and
    the agent on the right; the monitor's voice is not recorded.
    """

    def __init__(self, a: RtpLeg, b: RtpLeg, recorder: Recorder | None = None) -> None:
        if a is b:
            raise ValueError("a leg cannot be bridged to itself")
        for leg in (a, b):
            if leg.relayed:
                raise RuntimeError(f"{leg!r} is already bridged")
        self.a = a
        self.b = b
        self.recorder = recorder
        self._loop = asyncio.get_running_loop()
        self._restamps = (_Restamp(), _Restamp())
        self._monitor: _Monitor | None = None
        self._active = False
        # Fail before touching either leg if the codecs cannot meet.
        transcode_table(a.codec, b.codec)
        self._active = True
        self._rebuild()

    @property
    def active(self) -> bool:
        """Whether the bridge is relaying."""
        return self._active

    def _rebuild(self) -> None:
        """Make the relay closures again from the legs' current state."""
        if not self._active:
            return
        a, b = self.a, self.b
        if a.closed or b.closed:
            logger.debug("bridge %r <-> %r: a leg closed, stopping", a, b)
            self.stop()
            return
        recorder = self.recorder
        left = right = None
        if recorder is not None:
            left = recorder.channel(0)
            right = recorder.channel(1)
            recorder.set_codec(0, a.codec)
            recorder.set_codec(1, b.codec)
        monitor = self._monitor
        if monitor is not None:
            if not monitor.leg.closed:
                monitor.rebuild(self._loop, (a, b), (left, right), self._rebuild)
                return
            logger.debug("bridge %r <-> %r: the monitor's leg closed", a, b)
            self._end_monitor()
        try:
            a_receive, a_forward = _relay(self._loop, a, b, left, self._restamps[0])
            b_receive, b_forward = _relay(self._loop, b, a, right, self._restamps[1])
        except ValueError:
            # A re-INVITE moved a leg to a codec the other cannot be
            # translated into: relay nothing rather than noise.
            logger.warning("bridge %r <-> %r: codecs %r and %r do not meet", a, b, a.codec, b.codec)
            a_receive, a_forward = a.receive_datagram, _drop
            b_receive, b_forward = b.receive_datagram, _drop
        for leg, receive, forward in ((a, a_receive, a_forward), (b, b_receive, b_forward)):
            leg.detach_relay()
            leg.attach_relay(receive, forward, self._rebuild)

    def stop(self) -> None:
        """Stop relaying and recording; both legs behave as before the bridge. Idempotent."""
        if not self._active:
            return
        self._active = False
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None
        for leg in (self.a, self.b):
            if not leg.closed:
                leg.detach_relay()

    # -- a third party ---------------------------------------------------------------

    def monitor(self, leg: RtpLeg, mode: MonitorMode, clock: TickSource) -> None:
        """Join ``leg`` as a supervisor in ``mode``; ``clock`` paces the mixes.

        Raises ``RuntimeError`` when the bridge has stopped, is monitored
        already or ``leg`` is relayed elsewhere, and ``ValueError`` when
        ``leg`` is one of the bridged legs. The monitor leaves when its leg
        closes, on :meth:`unmonitor` and when the bridge stops.
        """
        if not self._active:
            raise RuntimeError("the bridge has stopped")
        if self._monitor is not None:
            raise RuntimeError("the bridge is monitored already")
        if leg is self.a or leg is self.b:
            raise ValueError("a bridged leg cannot monitor its own bridge")
        if leg.relayed:
            raise RuntimeError(f"{leg!r} is already bridged")
        self._monitor = _Monitor(leg, MonitorMode(mode), clock)
        self._rebuild()

    @property
    def monitor_mode(self) -> MonitorMode | None:
        """The monitor's mode; None when nobody monitors the bridge."""
        return self._monitor.mode if self._monitor is not None else None

    def set_monitor_mode(self, mode: MonitorMode) -> None:
        """Switch the monitor between listen, whisper and barge; ``RuntimeError`` without one."""
        if self._monitor is None:
            raise RuntimeError("the bridge is not monitored")
        self._monitor.mode = MonitorMode(mode)
        self._rebuild()

    def unmonitor(self) -> None:
        """Let the monitor go (its leg stays open, unrelayed); caller and agent as before."""
        if self._monitor is not None:
            self._end_monitor()
            self._rebuild()

    def _end_monitor(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.close()
        # The relayed streams start again as new talkspurts from where the
        # mixes left the senders' timestamps.
        self._restamps = (_Restamp(), _Restamp())

    def __repr__(self) -> str:
        state = "active" if self._active else "stopped"
        return f"<Bridge {self.a!r} <-> {self.b!r} {state}>"


def _drop(data: bytes, arrival: float) -> None:
    """The forward function of a direction that relays nothing."""


class _Monitor:
    """The third party's side of a monitored bridge: taps, relays and mixes by mode."""

    def __init__(self, leg: RtpLeg, mode: MonitorMode, clock: TickSource) -> None:
        self.leg = leg
        self.mode = mode
        self._clock = clock
        self._unsubscribe: Callable[[], None] | None = None
        self._legs: tuple[RtpLeg, ...] = ()
        self._mixes: list[tuple[RtpLeg, list[SampleBuffer]]] = []
        self._restamps: dict[tuple[int, int], _Restamp] = {}
        self._buffers: dict[tuple[int, int], SampleBuffer] = {}
        self._built_for: MonitorMode | None = None

    def rebuild(
        self,
        loop: asyncio.AbstractEventLoop,
        bridged: tuple[RtpLeg, RtpLeg],
        channels: tuple[RecordingChannel | None, RecordingChannel | None],
        changed: Callable[[], None],
    ) -> None:
        """Install each party's tap for the current mode and the legs' current state."""
        legs = (*bridged, self.leg)
        if self._built_for is not self.mode:
            # A new mode: relayed streams restart as new talkspurts, mixes start empty.
            # Otherwise (a latch, a re-INVITE) what waits to be mixed stays.
            self._restamps = {}
            self._buffers = {}
            self._built_for = self.mode
        hears = hearing(self.mode)
        buffers = self._buffers
        self._mixes = []
        for listener, sources in enumerate(hears):
            if len(sources) > 1:
                mixed = [buffers.setdefault((s, listener), SampleBuffer()) for s in sources]
                self._mixes.append((legs[listener], mixed))
        for source, leg in enumerate(legs):
            relays: list[Forward] = []
            pushes: list[SampleBuffer] = []
            for listener, sources in enumerate(hears):
                if source not in sources:
                    continue
                if len(sources) == 1:
                    restamp = self._restamps.setdefault((source, listener), _Restamp())
                    relays.append(_python_relay(loop, leg, legs[listener], None, restamp)[1])
                else:
                    pushes.append(buffers[(source, listener)])
            channel = channels[source] if source in (CALLER, AGENT) else None
            tap = _tap(leg, relays, pushes, channel)
            leg.detach_relay()
            leg.attach_relay(leg.receive_datagram, tap, changed)
        self._legs = legs
        if self._mixes and self._unsubscribe is None:
            self._unsubscribe = self._clock.subscribe(self._tick)
        elif not self._mixes and self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _tick(self, tick: int, skipped: int) -> None:
        for listener, buffers in self._mixes:
            frames = [frame for frame in (b.take(FRAME) for b in buffers) if frame is not None]
            if frames:
                listener.send_audio(listener.codec.encode(mix(frames)), FRAME)

    def close(self) -> None:
        """Stop mixing and give the monitor's leg its own receive path back."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._mixes = []
        if not self.leg.closed and self.leg.relayed:
            self.leg.detach_relay()


def _tap(
    leg: RtpLeg,
    relays: list[Forward],
    pushes: list[SampleBuffer],
    channel: RecordingChannel | None,
) -> Forward:
    """What one party's accepted packets go through while monitored."""
    audio_pt = leg.payload_type
    codec = leg.codec
    record = channel.buffer.append if channel is not None else None

    def tap(data: bytes, arrival: float) -> None:
        for relay in relays:
            relay(data, arrival)
        if (data[1] & 0x7F) != audio_pt:
            return  # a telephone-event: relayed above where one party hears one, never mixed
        if record is not None and channel is not None and channel.active:
            record(arrival)
            record(data)
        if pushes:
            try:
                payload = data[12:] if data[0] == 0x80 else RtpPacket.parse(data).payload
            except RtpParseError:
                return
            samples = codec.decode(payload)
            for buffer in pushes:
                buffer.push(samples)

    return tap
