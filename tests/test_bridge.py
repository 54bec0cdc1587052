"""Bridge on loopback: re-stamping, payload-type mapping, transcoding, events, stop().

Every test runs twice: on the C relay (media/_fastrtp_src/) and on the Python
closures it replaces, so the two are held to the same behaviour.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from media import (
    PCMA,
    PCMU,
    Bridge,
    DtmfReceived,
    PortPool,
    Recorder,
    RtpLeg,
    RtpPacket,
    SenderState,
    transcode_table,
)
from media.dtmf import Rfc4733Sender
from tests.test_leg import Peer, collect_audio, until

pytestmark = pytest.mark.usefixtures("relay_path")


class Call:
    """A caller and an agent (plain sockets) with a leg each, as call control sets them up."""

    def __init__(self, caller: Peer, agent: Peer, a: RtpLeg, b: RtpLeg) -> None:
        self.caller, self.agent, self.a, self.b = caller, agent, a, b
        self.caller_stream = SenderState(8000)
        self.agent_stream = SenderState(8000)

    @classmethod
    async def open(cls, pool: PortPool) -> Call:
        return cls(
            await Peer.open(), await Peer.open(), await RtpLeg.open(pool), await RtpLeg.open(pool)
        )

    def from_caller(
        self, payload: bytes, pt: int, samples: int = 160, marker: bool = False
    ) -> None:
        data = self.caller_stream.build(payload, pt, samples, marker=marker)
        self.caller.send(data, self.a.local_address)

    def from_agent(self, payload: bytes, pt: int, samples: int = 160) -> None:
        self.agent.send(self.agent_stream.build(payload, pt, samples), self.b.local_address)

    def close(self) -> None:
        for leg in (self.a, self.b):
            leg.close()
        self.caller.close()
        self.agent.close()


def tone(frequency: float, samples: int, amplitude: float = 8000.0) -> np.ndarray:
    t = np.arange(samples) / 8000
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


async def test_restamps_and_maps_the_payload_type_continuing_the_players_stream(
    pool: PortPool,
) -> None:
    call = await Call.open(pool)
    nat_free_sdp = await Peer.open()  # the caller's SDP address; its packets come from elsewhere
    call.a.configure(nat_free_sdp.address, PCMU, 0)
    call.b.configure(call.agent.address, PCMU, 100)  # PCMU under a dynamic number
    # The player speaks to the agent first, on the agent leg's own stream.
    call.b.send_audio(b"\x11" * 160, 160)
    played = RtpPacket.parse(await call.agent.receive())
    bridge = Bridge(call.a, call.b)
    for n in range(6):
        call.from_caller(bytes([n]) * 160, 0)
    relayed = [RtpPacket.parse(await call.agent.receive()) for _ in range(6)]

    assert {p.ssrc for p in relayed} == {played.ssrc}
    assert {p.payload_type for p in relayed} == {100}
    assert [p.sequence_number for p in relayed] == [
        (played.sequence_number + 1 + n) & 0xFFFF for n in range(6)
    ]
    assert [p.timestamp for p in relayed] == [
        (played.timestamp + 160 * (1 + n)) & 0xFFFF_FFFF for n in range(6)
    ]
    assert [p.marker for p in relayed] == [True] + [False] * 5  # a new talkspurt begins
    assert [p.payload[0] for p in relayed] == list(range(6))
    assert call.a.target == call.caller.address  # latched through the bridge's slow path
    assert call.b.packets_sent == 7
    bridge.stop()
    call.close()
    nat_free_sdp.close()


async def test_upstream_loss_shows_as_a_timestamp_gap(pool: PortPool) -> None:
    call = await Call.open(pool)
    call.a.configure(call.caller.address, PCMU, 0)
    call.b.configure(call.agent.address, PCMU, 0)
    bridge = Bridge(call.a, call.b)
    call.from_caller(b"\x01" * 160, 0)
    call.caller_stream.skip(160)  # one packet lost on the way in
    call.caller_stream.sequence_number += 1
    call.from_caller(b"\x02" * 160, 0)
    first, second = [RtpPacket.parse(await call.agent.receive()) for _ in range(2)]
    assert second.timestamp - first.timestamp == 320
    assert second.sequence_number == (first.sequence_number + 1) & 0xFFFF
    bridge.stop()
    call.close()


async def test_a_new_caller_stream_is_a_new_talkspurt_on_the_same_outbound_stream(
    pool: PortPool,
) -> None:
    """The far side changes SSRC (its own transfer, a restart): the agent hears one stream
    going on, numbered on, with the marker on the first packet of the new one."""
    call = await Call.open(pool)
    call.a.configure(call.caller.address, PCMU, 0)
    call.b.configure(call.agent.address, PCMU, 0)
    bridge = Bridge(call.a, call.b)
    for n in range(3):
        call.from_caller(bytes([n]) * 160, 0)
    call.caller_stream = SenderState(8000)  # a new SSRC, sequence and timestamp
    for n in range(3, 6):
        call.from_caller(bytes([n]) * 160, 0)
    relayed = [RtpPacket.parse(await call.agent.receive()) for _ in range(6)]
    first = relayed[0]
    assert {p.ssrc for p in relayed} == {call.b.sender.ssrc}
    assert [p.sequence_number for p in relayed] == [
        (first.sequence_number + n) & 0xFFFF for n in range(6)
    ]
    assert [p.timestamp for p in relayed] == [
        (first.timestamp + 160 * n) & 0xFFFF_FFFF for n in range(6)
    ]
    assert [p.marker for p in relayed] == [True, False, False, True, False, False]
    assert [p.payload[0] for p in relayed] == list(range(6))
    assert call.a.packets_received == 6
    bridge.stop()
    call.close()


async def test_relays_the_payload_of_packets_with_csrcs_extension_and_padding(
    pool: PortPool,
) -> None:
    call = await Call.open(pool)
    call.a.configure(call.caller.address, PCMU, 0)
    call.b.configure(call.agent.address, PCMA, 8)
    bridge = Bridge(call.a, call.b)
    payload = bytes(range(160))
    sent = [
        call.caller_stream.next_packet(payload, 0, 160),
        call.caller_stream.next_packet(payload, 0, 160),
        call.caller_stream.next_packet(payload, 0, 160),
    ]
    sent[0].csrc = (11, 12)
    sent[1].extension_profile, sent[1].extension = 0xBEDE, b"\x10\x01\x00\x00"
    sent[2].padding = RtpPacket.padding_for(3)
    for packet in sent:
        call.caller.send(packet.serialize(), call.a.local_address)
    relayed = [RtpPacket.parse(await call.agent.receive()) for _ in range(3)]
    table = transcode_table(PCMU, PCMA)
    assert table is not None
    assert [p.payload for p in relayed] == [payload.translate(table)] * 3
    assert all((p.csrc, p.extension_profile, p.padding) == ((), None, b"") for p in relayed)
    bridge.stop()
    call.close()


async def test_a_strangers_packets_are_not_relayed(pool: PortPool) -> None:
    call = await Call.open(pool)
    stranger = await Peer.open()
    call.a.configure(call.caller.address, PCMU, 0)
    call.b.configure(call.agent.address, PCMU, 0)
    bridge = Bridge(call.a, call.b)
    call.from_caller(b"\x01" * 160, 0)
    assert RtpPacket.parse(await call.agent.receive()).payload == b"\x01" * 160
    intruder = SenderState(8000)
    for _ in range(5):
        stranger.send(intruder.build(b"\x66" * 160, 0, 160), call.a.local_address)
    call.from_caller(b"\x02" * 160, 0)
    assert RtpPacket.parse(await call.agent.receive()).payload == b"\x02" * 160
    await until(lambda: call.a.dropped_source == 5)
    assert call.agent.queue.empty()
    bridge.stop()
    call.close()
    stranger.close()


async def test_records_each_direction_on_its_channel(pool: PortPool, tmp_path: Path) -> None:
    call = await Call.open(pool)
    call.a.configure(call.caller.address, PCMU, 0, telephone_event_pt=101)
    call.b.configure(call.agent.address, PCMA, 8, telephone_event_pt=101)
    # No flush while the test looks at what the channels collected.
    recorder = Recorder(tmp_path / "call.wav", flush_interval=3600)
    bridge = Bridge(call.a, call.b, recorder)
    call.from_caller(b"\x01" * 160, 0)
    call.from_agent(b"\x02" * 160, 8)
    event = Rfc4733Sender(101).packets("5", call.caller_stream.timestamp, 60)[0]
    call.from_caller(event.payload, 101, 0)  # events are relayed, not recorded
    for peer in (call.agent, call.caller, call.agent):
        await peer.receive()
    left, right = recorder.channel(0).buffer, recorder.channel(1).buffer
    assert [len(x) for x in left[1::2]] == [172] and [len(x) for x in right[1::2]] == [172]
    assert all(isinstance(x, float) for x in left[0::2] + right[0::2])
    bridge.stop()
    await recorder.close()
    call.close()


@pytest.mark.parametrize(("caller_codec", "agent_codec"), [(PCMU, PCMA), (PCMA, PCMU)])
async def test_transcodes_between_mu_law_and_a_law(
    pool: PortPool, caller_codec, agent_codec
) -> None:
    call = await Call.open(pool)
    call.a.configure(call.caller.address, caller_codec, caller_codec.payload_type)
    call.b.configure(call.agent.address, agent_codec, agent_codec.payload_type)
    bridge = Bridge(call.a, call.b)
    caller_pcm = tone(440, 800)
    agent_pcm = tone(1000, 800, amplitude=3000)
    sent_by_caller = caller_codec.encode(caller_pcm)
    sent_by_agent = agent_codec.encode(agent_pcm)
    for n in range(5):
        call.from_caller(sent_by_caller[n * 160 : (n + 1) * 160], caller_codec.payload_type)
        call.from_agent(sent_by_agent[n * 160 : (n + 1) * 160], agent_codec.payload_type)
    to_agent = [RtpPacket.parse(await call.agent.receive()) for _ in range(5)]
    to_caller = [RtpPacket.parse(await call.caller.receive()) for _ in range(5)]
    assert {p.payload_type for p in to_agent} == {agent_codec.payload_type}
    assert {p.payload_type for p in to_caller} == {caller_codec.payload_type}
    heard_by_agent = agent_codec.decode(b"".join(p.payload for p in to_agent))
    heard_by_caller = caller_codec.decode(b"".join(p.payload for p in to_caller))
    # Decoded both sides: the same signal, to within one step of the coarser law.
    sent = caller_codec.decode(sent_by_caller).astype(np.int32)
    assert np.max(np.abs(heard_by_agent.astype(np.int32) - sent)) <= np.max(np.abs(sent)) // 16
    back = agent_codec.decode(sent_by_agent).astype(np.int32)
    assert np.max(np.abs(heard_by_caller.astype(np.int32) - back)) <= np.max(np.abs(back)) // 16
    # And byte for byte what the translation table says.
    table = transcode_table(caller_codec, agent_codec)
    assert table is not None
    assert b"".join(p.payload for p in to_agent) == sent_by_caller.translate(table)
    bridge.stop()
    call.close()


async def test_forwards_telephone_events_mapped_and_reports_them(pool: PortPool) -> None:
    call = await Call.open(pool)
    call.a.configure(call.caller.address, PCMU, 0, telephone_event_pt=101)
    call.b.configure(call.agent.address, PCMU, 0, telephone_event_pt=96)
    digits: list[DtmfReceived] = []
    call.a.on_dtmf = digits.append
    bridge = Bridge(call.a, call.b)
    call.from_caller(b"\xff" * 160, 0)
    start = call.caller_stream.timestamp
    events = Rfc4733Sender(101).packets("9", start, duration_ms=100)
    for packet in events:
        call.from_caller(packet.payload, 101, samples=0, marker=packet.marker)
    relayed = [RtpPacket.parse(await call.agent.receive()) for _ in range(1 + len(events))]
    audio, forwarded = relayed[0], relayed[1:]
    assert {p.payload_type for p in forwarded} == {96}
    assert [p.payload for p in forwarded] == [e.payload for e in events]
    assert [p.marker for p in forwarded] == [e.marker for e in events]
    # The event keeps its place on the media clock, one packet after the audio.
    assert {p.timestamp for p in forwarded} == {(audio.timestamp + 160) & 0xFFFF_FFFF}
    await until(lambda: len(digits) == 1)
    assert digits == [DtmfReceived("9", 100, "rfc4733")]
    bridge.stop()
    call.close()


async def test_events_stay_behind_when_the_far_leg_has_no_telephone_event(pool: PortPool) -> None:
    call = await Call.open(pool)
    call.a.configure(call.caller.address, PCMU, 0, telephone_event_pt=101)
    call.b.configure(call.agent.address, PCMU, 0)
    digits: list[DtmfReceived] = []
    call.a.on_dtmf = digits.append
    bridge = Bridge(call.a, call.b)
    for packet in Rfc4733Sender(101).packets("1", call.caller_stream.timestamp):
        call.from_caller(packet.payload, 101, samples=0, marker=packet.marker)
    call.from_caller(b"\x42" * 160, 0)
    assert RtpPacket.parse(await call.agent.receive()).payload == b"\x42" * 160
    assert digits == [DtmfReceived("1", 100, "rfc4733")]
    bridge.stop()
    call.close()


async def test_stop_detaches_and_restores_the_legs(pool: PortPool) -> None:
    call = await Call.open(pool)
    call.a.configure(call.caller.address, PCMU, 0)
    call.b.configure(call.agent.address, PCMU, 0)
    bridge = Bridge(call.a, call.b)
    call.from_caller(b"\x01" * 160, 0)
    assert RtpPacket.parse(await call.agent.receive()).payload == b"\x01" * 160
    bridge.stop()
    bridge.stop()
    assert not bridge.active and not call.a.relayed and not call.b.relayed

    heard, done = collect_audio(call.a, 1)
    call.from_caller(b"\x02" * 160, 0)
    await asyncio.wait_for(done.wait(), 2)
    assert heard[0][0] == b"\x02" * 160
    # Had the packet been relayed it would be in the agent's queue before this one.
    call.b.send_audio(b"\x03" * 160, 160)
    assert RtpPacket.parse(await call.agent.receive()).payload == b"\x03" * 160
    # A leg can be bridged again once stopped.
    again = Bridge(call.a, call.b)
    with pytest.raises(RuntimeError):
        Bridge(call.a, call.b)
    again.stop()
    call.close()


async def test_a_closing_leg_stops_the_bridge(pool: PortPool) -> None:
    call = await Call.open(pool)
    call.a.configure(call.caller.address, PCMU, 0)
    call.b.configure(call.agent.address, PCMU, 0)
    bridge = Bridge(call.a, call.b)
    call.b.close()
    assert not bridge.active and not call.a.relayed
    _, done = collect_audio(call.a, 1)
    call.from_caller(b"\x05" * 160, 0)
    await asyncio.wait_for(done.wait(), 2)
    call.close()


async def test_hold_on_the_far_leg_stops_relaying_to_it(pool: PortPool) -> None:
    call = await Call.open(pool)
    call.a.configure(call.caller.address, PCMU, 0)
    call.b.configure(call.agent.address, PCMU, 0)
    bridge = Bridge(call.a, call.b)
    call.b.configure(call.agent.address, PCMU, 0, sends=False)  # re-INVITE: agent on hold
    call.from_caller(b"\x01" * 160, 0)
    await until(lambda: call.a.packets_received == 1)
    call.b.configure(call.agent.address, PCMU, 0)  # and back
    call.from_caller(b"\x02" * 160, 0)
    assert RtpPacket.parse(await call.agent.receive()).payload == b"\x02" * 160
    bridge.stop()
    call.close()
