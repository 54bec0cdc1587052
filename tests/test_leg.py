"""RtpLeg on loopback: audio both ways, numbering, latching, drops, DTMF, timeout, RTCP, close.

Every wait is on an event or a poll with a deadline; every socket is on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import cast

import pytest

from media import PCMA, PCMU, DtmfReceived, PortPool, RtpLeg, RtpPacket, SenderState
from media._native import fastrtp
from media.dtmf import Rfc4733Sender, TelephoneEvent
from tests.conftest import use_pure_python

HOST = "127.0.0.1"
Address = tuple[str, int]


class Peer(asyncio.DatagramProtocol):
    """A plain UDP socket standing in for a phone's RTP port."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls, port: int = 0) -> Peer:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(cls, local_addr=(HOST, port))
        return peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's UDP transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.queue.put_nowait((data, addr))

    @property
    def address(self) -> Address:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def send(self, data: bytes, to: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, to)

    async def receive(self, timeout: float = 2.0) -> bytes:
        data, _ = await asyncio.wait_for(self.queue.get(), timeout)
        return data

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.005)


def collect_audio(leg: RtpLeg, count: int) -> tuple[list[tuple[bytes, int]], asyncio.Event]:
    """Make ``leg.on_audio`` keep (payload, timestamp) and set the event after ``count``."""
    got: list[tuple[bytes, int]] = []
    done = asyncio.Event()

    def on_audio(_leg: RtpLeg, payload: bytes, timestamp: int, _arrival: float) -> None:
        got.append((payload, timestamp))
        if len(got) >= count:
            done.set()

    leg.on_audio = on_audio
    return got, done


async def test_two_legs_exchange_audio(pool: PortPool) -> None:
    a = await RtpLeg.open(pool)
    b = await RtpLeg.open(pool)
    a.configure(b.local_address, PCMU, 0)
    b.configure(a.local_address, PCMU, 0)
    at_b, b_done = collect_audio(b, 5)
    at_a, a_done = collect_audio(a, 5)
    for n in range(5):
        a.send_audio(bytes([n]) * 160, 160)
        b.send_audio(bytes([0x80 + n]) * 160, 160)
    await asyncio.wait_for(asyncio.gather(a_done.wait(), b_done.wait()), 2)
    assert [payload[0] for payload, _ in at_b] == [0, 1, 2, 3, 4]
    assert [payload[0] for payload, _ in at_a] == [0x80, 0x81, 0x82, 0x83, 0x84]
    assert [ts - at_b[0][1] for _, ts in at_b] == [0, 160, 320, 480, 640]
    assert a.packets_sent == b.packets_received == 5
    a.close()
    b.close()


async def test_ssrc_sequence_and_timestamp_continue_across_audio_and_dtmf(pool: PortPool) -> None:
    peer = await Peer.open()
    leg = await RtpLeg.open(pool)
    leg.configure(peer.address, PCMA, 8, telephone_event_pt=101)
    for _ in range(3):
        leg.send_audio(b"\xd5" * 160, 160)
    leg.send_dtmf("7", duration_ms=100)
    packets = [RtpPacket.parse(await peer.receive()) for _ in range(3 + 5)]
    leg.send_audio(b"\xd5" * 160, 160)
    packets.append(RtpPacket.parse(await peer.receive()))

    assert {p.ssrc for p in packets} == {leg.sender.ssrc}
    first = packets[0].sequence_number
    assert [p.sequence_number for p in packets] == [(first + n) & 0xFFFF for n in range(9)]
    audio, events = packets[:3], packets[3:8]
    assert [p.timestamp - audio[0].timestamp for p in audio] == [0, 160, 320]
    assert {p.payload_type for p in events} == {101}
    # Every packet of the event carries the event's start; the first is marked.
    assert {p.timestamp for p in events} == {audio[0].timestamp + 480}
    assert [p.marker for p in events] == [True, False, False, False, False]
    blocks = [TelephoneEvent.parse(p.payload) for p in events]
    assert [b.end for b in blocks] == [False, False, True, True, True]
    assert blocks[-1].duration == 800 and blocks[-1].digit == "7"
    assert packets[8].timestamp == audio[0].timestamp + 480
    leg.close()
    peer.close()


async def test_latches_to_the_nat_address_and_then_drops_strangers(pool: PortPool) -> None:
    sdp = await Peer.open()  # what the caller's SDP names: never sends
    nat = await Peer.open()  # where its packets really come from
    stranger = await Peer.open()
    leg = await RtpLeg.open(pool)
    leg.configure(sdp.address, PCMU, 0)
    got, done = collect_audio(leg, 4)
    caller = SenderState(8000)
    for _ in range(4):
        nat.send(caller.build(b"\x01" * 160, 0, 160), leg.local_address)
    await asyncio.wait_for(done.wait(), 2)
    # Before the peer is confirmed its packets are taken from anywhere.
    assert len(got) == 4
    assert leg.target == nat.address and leg.latched

    leg.send_audio(b"\x02" * 160, 160)
    assert RtpPacket.parse(await nat.receive()).payload == b"\x02" * 160
    assert sdp.queue.empty()

    intruder = SenderState(8000)
    stranger.send(intruder.build(b"\x03" * 160, 0, 160), leg.local_address)
    nat.send(caller.build(b"\x04" * 160, 0, 160), leg.local_address)
    await until(lambda: len(got) == 5)
    assert got[-1][0] == b"\x04" * 160
    assert leg.dropped_source == 1
    leg.close()
    for peer in (sdp, nat, stranger):
        peer.close()


async def test_unknown_payload_type_and_bad_version_are_dropped(pool: PortPool) -> None:
    peer = await Peer.open()
    leg = await RtpLeg.open(pool)
    leg.configure(peer.address, PCMU, 0, telephone_event_pt=101)
    got, done = collect_audio(leg, 1)
    sender = SenderState(8000)
    peer.send(sender.build(b"\x00" * 160, 18, 160), leg.local_address)  # G.729: not offered
    peer.send(b"\x40" + sender.build(b"\x00" * 160, 0, 160)[1:], leg.local_address)  # version 1
    peer.send(b"\x80\x00", leg.local_address)  # too short
    peer.send(sender.build(b"\x05" * 160, 0, 160), leg.local_address)
    await asyncio.wait_for(done.wait(), 2)
    assert [payload for payload, _ in got] == [b"\x05" * 160]
    assert leg.dropped_payload_type == 1
    assert leg.dropped_malformed == 2
    assert leg.packets_received == 1
    leg.close()
    peer.close()


async def test_rfc4733_key_press_arrives_as_one_event(pool: PortPool) -> None:
    peer = await Peer.open()
    leg = await RtpLeg.open(pool)
    leg.configure(peer.address, PCMU, 0, telephone_event_pt=96)
    digits: list[DtmfReceived] = []
    leg.on_dtmf = digits.append
    _, sentinel = collect_audio(leg, 1)
    sender = SenderState(8000)
    start = sender.timestamp
    for packet in Rfc4733Sender(96).packets("#", start, duration_ms=160):
        data = sender.build(packet.payload, 96, 0, marker=packet.marker)
        peer.send(data, leg.local_address)
    sender.skip(1280)
    peer.send(sender.build(b"\xff" * 160, 0, 160), leg.local_address)
    await asyncio.wait_for(sentinel.wait(), 2)
    assert digits == [DtmfReceived("#", 160, "rfc4733")]
    leg.close()
    peer.close()


async def test_dtmf_between_two_legs(pool: PortPool) -> None:
    a = await RtpLeg.open(pool)
    b = await RtpLeg.open(pool)
    a.configure(b.local_address, PCMU, 0, telephone_event_pt=101)
    b.configure(a.local_address, PCMU, 0, telephone_event_pt=101)
    pressed: asyncio.Future[DtmfReceived] = asyncio.get_running_loop().create_future()
    b.on_dtmf = pressed.set_result
    a.send_dtmf("5", duration_ms=120)
    assert await asyncio.wait_for(pressed, 2) == DtmfReceived("5", 120, "rfc4733")
    with pytest.raises(ValueError, match="not a DTMF key"):
        a.send_dtmf("x")
    a.close()
    b.close()


async def test_a_second_key_press_after_the_first_arrives(pool: PortPool) -> None:
    """Sending a key looks through the timers of the keys sent before. Under uvloop
    the first packet's timer (no delay) is a Handle without ``when()``, which the
    leg must not ask for."""
    a = await RtpLeg.open(pool)
    b = await RtpLeg.open(pool)
    a.configure(b.local_address, PCMU, 0, telephone_event_pt=101)
    b.configure(a.local_address, PCMU, 0, telephone_event_pt=101)
    keys: asyncio.Queue[str] = asyncio.Queue()
    b.on_dtmf = lambda event: keys.put_nowait(event.digit)
    a.send_dtmf("1", duration_ms=60)
    assert await asyncio.wait_for(keys.get(), 2) == "1"
    a.send_audio(b"\xff" * 160, 160)  # the next event starts at a later timestamp
    a.send_dtmf("2", duration_ms=60)
    assert await asyncio.wait_for(keys.get(), 2) == "2"
    a.close()
    b.close()


async def test_media_timeout_fires_once_silence_lasts(pool: PortPool) -> None:
    loop = asyncio.get_running_loop()
    peer = await Peer.open()
    leg = await RtpLeg.open(pool, media_timeout=0.2)
    timed_out: asyncio.Future[float] = loop.create_future()
    leg.on_timeout = lambda _leg: timed_out.set_result(loop.time())
    leg.configure(peer.address, PCMU, 0)
    # Packets every 50 ms for 0.4 s keep the leg alive past its 0.2 s timeout.
    sender = SenderState(8000)
    start = loop.time()
    sent_at: list[float] = []

    def send() -> None:
        peer.send(sender.build(b"\xff" * 160, 0, 160), leg.local_address)
        sent_at.append(loop.time())

    for n in range(9):
        loop.call_at(start + n * 0.05, send)
    fired = await asyncio.wait_for(timed_out, 3)
    assert len(sent_at) == 9
    assert fired - sent_at[-1] >= 0.19
    assert leg.timed_out
    leg.close()
    peer.close()


async def test_hold_suspends_the_media_timeout(pool: PortPool) -> None:
    loop = asyncio.get_running_loop()
    peer = await Peer.open()
    leg = await RtpLeg.open(pool, media_timeout=0.1)
    timed_out = asyncio.Event()
    leg.on_timeout = lambda _leg: timed_out.set()
    leg.configure(peer.address, PCMU, 0, receives=False)
    # Absence of an event can only be shown by waiting a bounded while: 4x the timeout.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(timed_out.wait(), 0.4)
    started = loop.time()
    leg.configure(peer.address, PCMU, 0, receives=True)
    await asyncio.wait_for(timed_out.wait(), 2)
    assert loop.time() - started >= 0.09
    leg.close()
    peer.close()


async def test_packets_on_hold_are_dropped(pool: PortPool) -> None:
    peer = await Peer.open()
    leg = await RtpLeg.open(pool)
    leg.configure(peer.address, PCMU, 0, receives=False)
    got, _ = collect_audio(leg, 1)
    peer.send(SenderState(8000).build(b"\xff" * 160, 0, 160), leg.local_address)
    await until(lambda: leg.dropped_inactive == 1)
    assert got == []
    leg.close()
    peer.close()


async def test_rtcp_reports_give_round_trip_time_and_remote_loss(pool: PortPool) -> None:
    loop = asyncio.get_running_loop()
    listener = await RtpLeg.open(pool, rtcp_interval=0.05)  # receives only: sends RR
    talker = await RtpLeg.open(pool, rtcp_interval=0.05)  # sends: SR
    listener.configure(talker.local_address, PCMU, 0, sends=False)
    talker.configure(listener.local_address, PCMU, 0)
    _, _ = collect_audio(listener, 1)
    start = loop.time()
    for n in range(20):
        loop.call_at(start + n * 0.02, talker.send_audio, b"\xff" * 160, 160)
    # The RTT needs an SR from the talker and then an RR echoing it.
    await until(lambda: talker.round_trip_time is not None, timeout=5)
    assert talker.round_trip_time is not None and 0 <= talker.round_trip_time < 0.5
    report = talker.remote_report
    assert report is not None and report.ssrc == talker.sender.ssrc
    assert report.packets_lost == 0
    assert listener.packets_sent == 0 and listener.rtcp_sent >= 1
    assert listener.rtcp_received >= 1 and talker.rtcp_received >= 1
    listener.close()
    talker.close()


async def test_close_releases_the_port_and_is_idempotent(pool: PortPool) -> None:
    peer = await Peer.open()
    leg = await RtpLeg.open(pool)
    port = leg.local_address[1]
    assert port % 2 == 0 and port in pool
    leg.configure(peer.address, PCMU, 0, telephone_event_pt=101)
    leg.send_audio(b"\xff" * 160, 160)
    await peer.receive()
    leg.close()
    leg.close()
    assert port not in pool and pool.in_use == 0
    assert leg.closed
    leg.send_audio(b"\xff" * 160, 160)  # a no-op, not an error
    with pytest.raises(RuntimeError):
        leg.configure(peer.address, PCMU, 0)
    peer.close()


async def test_a_busy_port_is_skipped(pool: PortPool) -> None:
    small = PortPool(41900, 41905)  # pairs 41900/1, 41902/3, 41904/5
    squatter = await Peer.open(41901)  # another program holds the first RTCP port
    leg = await RtpLeg.open(small)
    assert leg.local_address[1] == 41902
    leg.close()
    assert small.in_use == 0
    squatter.close()


def test_rtp_header_fields_read_by_the_leg_match_the_packet_class() -> None:
    data = SenderState(8000, ssrc=0xDEADBEEF).build(b"\x00" * 160, 8, 160, marker=True)
    second, _, _, ssrc = struct.unpack_from("!xBHII", data)
    assert second == 0x88 and ssrc == 0xDEADBEEF


@pytest.mark.parametrize("path", ["c", "python"])
async def test_a_leg_nobody_listens_to_still_counts_measures_and_reports_keys(
    pool: PortPool, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """A caller hearing music on hold: with no relay and no on_audio, the C path takes
    its audio (counts, statistics, media clock) and leaves key presses and strangers to
    the full path; giving the leg an on_audio hands it the audio again."""
    if path == "python":
        use_pure_python(monkeypatch)
    elif fastrtp is None:
        pytest.skip("media._fastrtp is not built")
    peer, stranger = await Peer.open(), await Peer.open()
    leg = await RtpLeg.open(pool)
    leg.configure(peer.address, PCMU, 0, telephone_event_pt=101)
    keys: asyncio.Queue[str] = asyncio.Queue()
    leg.on_dtmf = lambda event: keys.put_nowait(event.digit)
    sender = SenderState(8000)
    started = asyncio.get_running_loop().time()
    for _ in range(10):
        peer.send(sender.build(b"\xff" * 160, 0, 160), leg.local_address)
    await until(lambda: leg.packets_received == 10)
    assert leg.stats.valid and leg.stats.cumulative_lost == 0
    assert leg.stats.ssrc == sender.ssrc
    on_c_path = fastrtp is not None and isinstance(leg._rtp.handler, fastrtp.Relay)
    assert on_c_path == (path == "c")
    assert leg.media_clock.last_seen >= started
    for event in Rfc4733Sender(101).packets("7", sender.timestamp, duration_ms=60):
        peer.send(sender.build(event.payload, 101, 0, marker=event.marker), leg.local_address)
    assert await asyncio.wait_for(keys.get(), 2) == "7"
    intruder = SenderState(8000)
    for _ in range(3):
        stranger.send(intruder.build(b"\x11" * 160, 0, 160), leg.local_address)
    await until(lambda: leg.dropped_source == 3)
    heard, done = collect_audio(leg, 2)
    for _ in range(2):
        peer.send(sender.build(b"\x22" * 160, 0, 160), leg.local_address)
    await asyncio.wait_for(done.wait(), 2)
    assert [payload for payload, _ in heard] == [b"\x22" * 160] * 2
    assert leg.packets_received == 10 + 5 + 2
    leg.close()
    peer.close()
    stranger.close()


async def test_a_closed_legs_sockets_are_parked_and_serve_the_next_leg_afresh() -> None:
    """A plain leg's sockets stay bound after close (parked) and the next leg on the
    address takes them once rested: same port, counters from zero, and nothing that
    arrived while parked reaches it."""
    if fastrtp is None:
        pytest.skip("parking needs the C port")
    pool = PortPool(41950, 41959, rest=0.0)
    old_peer, new_peer = await Peer.open(), await Peer.open()
    try:
        first = await RtpLeg.open(pool)
        first.configure(old_peer.address, PCMU, 0)
        _got, done = collect_audio(first, 3)
        for n in range(3):
            old_peer.send(_packet(n), first.local_address)
        await asyncio.wait_for(done.wait(), 2)
        port = first.local_address[1]
        first.close()
        assert (pool.in_use, pool.parked, port in pool) == (0, 1, False)
        old_peer.send(_packet(9), (HOST, port))  # late: dropped while parked

        second = await RtpLeg.open(pool)
        assert second.local_address[1] == port and pool.parked == 0
        assert second.packets_received == 0
        second.configure(new_peer.address, PCMU, 0)
        fresh, arrived = collect_audio(second, 2)
        new_peer.send(_packet(20), second.local_address)
        new_peer.send(_packet(21), second.local_address)
        await asyncio.wait_for(arrived.wait(), 2)
        assert [payload[0] for payload, _ in fresh] == [20, 21]
        assert second.packets_received == 2
        assert first.packets_received == 3  # a closed leg's figures stay its own
        second.send_audio(b"\x01" * 160, 160)
        assert (await new_peer.receive())[12:13] == b"\x01"
        second.close()
    finally:
        pool.close_parked()
        old_peer.close()
        new_peer.close()
    assert pool.parked == 0 and pool.in_use == 0


def _packet(n: int) -> bytes:
    """An RTP packet of PCMU with ``n`` as sequence number and payload byte."""
    return SenderState(8000, ssrc=0x1234).build(bytes([n]) * 160, 0, 160 * n)
