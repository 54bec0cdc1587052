"""RTP packets, the relay fast path, receiver statistics and sender state.

Byte fixtures are laid out by hand from the RFC 3550 5.1 header diagram, one
32-bit word per line, so each can be checked against the RFC by eye.
"""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media._stats import ReceiverStats, SenderState
from media.rtcp import ReportBlock, parse_compound, round_trip_time
from media.rtp import RtpPacket, RtpParseError, peek_header

PCMU_PAYLOAD = b"\xff" * 160

PCMU = (
    bytes.fromhex("80 00 12 34")  # V=2 P=0 X=0 CC=0 | M=0 PT=0 (PCMU) | seq 4660
    + bytes.fromhex("00 01 e2 40")  # timestamp 123456
    + bytes.fromhex("de ad be ef")  # SSRC
    + PCMU_PAYLOAD
)

DTMF_START = (
    bytes.fromhex("80 e5 00 07")  # M=1 PT=101 (telephone-event) | seq 7
    + bytes.fromhex("00 00 03 20")  # timestamp 800
    + bytes.fromhex("00 00 00 01")  # SSRC 1
    + bytes.fromhex("01 0a 00 a0")  # RFC 4733: event 1, E=0, volume 10, duration 160
)

WITH_CSRC = (
    bytes.fromhex("82 08 ff ff")  # CC=2 | PT=8 (PCMA) | seq 65535
    + bytes.fromhex("ff ff ff ff")  # timestamp 2**32 - 1
    + bytes.fromhex("00 00 00 2a")  # SSRC 42
    + bytes.fromhex("11 11 11 11")  # CSRC 1
    + bytes.fromhex("22 22 22 22")  # CSRC 2
    + b"\xd5" * 8
)

WITH_EXTENSION = (
    bytes.fromhex("90 00 00 01")  # X=1
    + bytes.fromhex("00 00 00 00")
    + bytes.fromhex("00 00 00 01")
    + bytes.fromhex("be de 00 01")  # RFC 8285 one-byte profile, 1 word
    + bytes.fromhex("10 ff 00 00")  # element id 1, length 1, value 0xff, padding
    + b"\x7f\x7f"
)

WITH_PADDING = (
    bytes.fromhex("a0 00 00 01")  # P=1
    + bytes.fromhex("00 00 00 00")
    + bytes.fromhex("00 00 00 01")
    + b"abcd"
    + bytes.fromhex("00 00 03")  # 3 octets of padding, the last one the count
)

EVERYTHING = (
    bytes.fromhex("b1 e5 00 02")  # P=1 X=1 CC=1 | M=1 PT=101
    + bytes.fromhex("00 00 00 03")
    + bytes.fromhex("00 00 00 04")
    + bytes.fromhex("00 00 00 05")  # CSRC
    + bytes.fromhex("10 00 00 00")  # profile 0x1000, empty extension
    + b"xyz"
    + bytes.fromhex("aa 02")  # padding octets need not be zero
)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (PCMU, RtpPacket(0, 0x1234, 123456, 0xDEADBEEF, PCMU_PAYLOAD)),
        (DTMF_START, RtpPacket(101, 7, 800, 1, bytes.fromhex("010a00a0"), marker=True)),
        (
            WITH_CSRC,
            RtpPacket(8, 65535, 0xFFFFFFFF, 42, b"\xd5" * 8, csrc=(0x11111111, 0x22222222)),
        ),
        (
            WITH_EXTENSION,
            RtpPacket(
                0,
                1,
                0,
                1,
                b"\x7f\x7f",
                extension_profile=0xBEDE,
                extension=bytes.fromhex("10ff0000"),
            ),
        ),
        (WITH_PADDING, RtpPacket(0, 1, 0, 1, b"abcd", padding=b"\x00\x00\x03")),
        (
            EVERYTHING,
            RtpPacket(
                101,
                2,
                3,
                4,
                b"xyz",
                marker=True,
                csrc=(5,),
                extension_profile=0x1000,
                padding=b"\xaa\x02",
            ),
        ),
    ],
    ids=["pcmu", "dtmf", "csrc", "extension", "padding", "everything"],
)
def test_fixture_parses_and_round_trips(data: bytes, expected: RtpPacket) -> None:
    packet = RtpPacket.parse(data)
    assert packet == expected
    assert packet.serialize() == data
    assert expected.serialize() == data


def test_padding_helpers() -> None:
    assert RtpPacket.padding_for(4) == b"\x00\x00\x00\x04"
    assert RtpPacket.parse(WITH_PADDING).padding_size == 3
    with pytest.raises(ValueError, match="outside 1-255"):
        RtpPacket.padding_for(0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"0 bytes, shorter than the 12-byte fixed header"),
        (PCMU[:11], r"11 bytes, shorter than the 12-byte fixed header"),
        (b"\x40" + PCMU[1:], r"version is 1, expected 2"),
        (b"\x00" + PCMU[1:12], r"version is 0, expected 2"),
        (b"\x83" + PCMU[1:12] + b"\x00" * 8, r"too short for 3 CSRC identifiers ending at byte 24"),
        (
            b"\x90" + PCMU[1:12] + b"\xbe\xde",
            r"too short for the header extension header at byte 12",
        ),
        (
            b"\x90" + PCMU[1:12] + bytes.fromhex("bede0002") + b"\x00" * 4,
            r"extension of 2 words ends at byte 24, beyond the 20-byte packet",
        ),
        (b"\xa0" + PCMU[1:12] + b"ab\x00", r"padding count is 0"),
        (b"\xa0" + PCMU[1:12] + b"ab\x04", r"padding count 4 exceeds the 3 bytes after the header"),
        (b"\xa0" + PCMU[1:12], r"padding count 239 exceeds the 0 bytes"),
    ],
)
def test_malformed_packet_names_the_field(data: bytes, message: str) -> None:
    with pytest.raises(RtpParseError, match=message):
        RtpPacket.parse(data)


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (RtpPacket(128, 0, 0, 0), "payload type 128"),
        (RtpPacket(0, 65536, 0, 0), "out of range"),
        (RtpPacket(0, 0, 1 << 32, 0), "out of range"),
        (RtpPacket(0, 0, 0, -1), "out of range"),
        (RtpPacket(0, 0, 0, 0, csrc=tuple(range(16))), "16 CSRC"),
        (RtpPacket(0, 0, 0, 0, csrc=(1 << 32,)), "CSRC out of range"),
        (RtpPacket(0, 0, 0, 0, extension_profile=0, extension=b"abc"), "multiple of 4"),
        (RtpPacket(0, 0, 0, 0, extension_profile=1 << 16), "profile out of range"),
        (RtpPacket(0, 0, 0, 0, padding=b"\x00\x03"), "padding is 2 bytes but its last byte says 3"),
    ],
)
def test_serialize_rejects_fields_that_do_not_fit(packet: RtpPacket, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        packet.serialize()


def test_peek_header_reads_the_relay_fields() -> None:
    assert peek_header(PCMU) == (0, 0x1234, 123456, 0xDEADBEEF)
    assert peek_header(DTMF_START) == (101, 7, 800, 1)
    assert peek_header(EVERYTHING) == (101, 2, 3, 4)
    with pytest.raises(RtpParseError, match="5 bytes"):
        peek_header(PCMU[:5])
    # A STUN binding request (first two bits 00) multiplexed on the RTP port.
    with pytest.raises(RtpParseError, match="version is 0"):
        peek_header(bytes.fromhex("0001 0000 2112a442") + b"\x00" * 12)


# --- property tests -----------------------------------------------------------------------


@st.composite
def rtp_datagrams(draw: st.DrawFn) -> tuple[bytes, RtpPacket]:
    """A well-formed RTP datagram built field by field with struct, and the packet it holds."""
    payload_type = draw(st.integers(0, 127))
    marker = draw(st.booleans())
    sequence_number = draw(st.integers(0, 0xFFFF))
    timestamp = draw(st.integers(0, 0xFFFFFFFF))
    ssrc = draw(st.integers(0, 0xFFFFFFFF))
    csrc = tuple(draw(st.lists(st.integers(0, 0xFFFFFFFF), max_size=15)))
    payload = draw(st.binary(max_size=300))
    profile = draw(st.none() | st.integers(0, 0xFFFF))
    extension = draw(st.binary(max_size=64).map(lambda b: b[: len(b) // 4 * 4]))
    padding_size = draw(st.integers(0, 255))
    padding = b""
    if padding_size:
        padding = draw(st.binary(min_size=padding_size - 1, max_size=padding_size - 1))
        padding += bytes((padding_size,))

    first = 0x80 | len(csrc) | (0x10 if profile is not None else 0) | (0x20 if padding else 0)
    data = struct.pack(
        "!BBHII", first, (0x80 if marker else 0) | payload_type, sequence_number, timestamp, ssrc
    )
    data += b"".join(struct.pack("!I", c) for c in csrc)
    if profile is not None:
        data += struct.pack("!HH", profile, len(extension) // 4) + extension
    else:
        extension = b""
    data += payload + padding
    packet = RtpPacket(
        payload_type,
        sequence_number,
        timestamp,
        ssrc,
        payload,
        marker,
        csrc,
        profile,
        extension,
        padding,
    )
    return data, packet


@given(rtp_datagrams())
def test_valid_datagrams_round_trip(sample: tuple[bytes, RtpPacket]) -> None:
    data, expected = sample
    packet = RtpPacket.parse(data)
    assert packet == expected
    assert expected.serialize() == data
    assert packet.serialize() == data
    assert peek_header(data) == (
        packet.payload_type,
        packet.sequence_number,
        packet.timestamp,
        packet.ssrc,
    )


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_value_error_and_accepted_ones_round_trip(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except ValueError:
        return
    assert packet.serialize() == data


@given(st.binary(min_size=12, max_size=40).map(lambda b: bytes((0x80 | b[0] & 0x3F,)) + b[1:]))
def test_version_2_headers_mostly_parse(data: bytes) -> None:
    # Version 2 is forced, so only CSRC, extension and padding lengths can fail.
    try:
        packet = RtpPacket.parse(data)
    except RtpParseError as exc:
        assert "CSRC" in str(exc) or "extension" in str(exc) or "padding" in str(exc)
        return
    assert packet.serialize() == data


# --- ReceiverStats ------------------------------------------------------------------------

FRAME = 160  # samples per 20 ms PCMU frame at 8 kHz


def feed(stats: ReceiverStats, sequence: list[int], start_seq: int = 0) -> None:
    """Feed packets by index: index i has seq start+i, timestamp i*FRAME, arrives at i*20 ms."""
    for i in sequence:
        stats.update((start_seq + i) & 0xFFFF, (i * FRAME) & 0xFFFFFFFF, i * 0.02)


def test_no_loss_reports_zero_and_counts_the_wrap() -> None:
    stats = ReceiverStats(0xCAFE, 8000)
    feed(stats, list(range(1000)), start_seq=65000)
    block = stats.report_block(20.0)
    assert block is not None
    assert (block.fraction_lost, block.packets_lost) == (0, 0)
    assert block.highest_sequence == 65000 + 999  # one wrap: 0x10000 + 463
    assert block.jitter == 0
    assert stats.received == stats.expected == 999  # the first packet opened probation


def test_one_in_ten_lost_gives_a_tenth() -> None:
    stats = ReceiverStats(1, 8000)
    feed(stats, [i for i in range(1000) if i % 10 != 5])
    block = stats.report_block(20.0)
    assert block is not None
    # Counting starts at seq 1 (end of probation): 999 expected, 100 lost.
    assert block.packets_lost == 100
    assert block.fraction_lost == 100 * 256 // 999 == 25
    assert stats.fraction_lost == 25


def test_fraction_lost_covers_only_the_interval() -> None:
    stats = ReceiverStats(1, 8000)
    feed(stats, [i for i in range(500) if i % 10 != 5])
    first = stats.report_block(10.0)
    feed(stats, list(range(500, 1000)))
    second = stats.report_block(20.0)
    assert first is not None and second is not None
    assert first.fraction_lost == 25
    assert second.fraction_lost == 0
    assert second.packets_lost == first.packets_lost == 50


def test_reordering_is_not_loss() -> None:
    stats = ReceiverStats(1, 8000)
    order = [0, 1]
    for i in range(2, 1000, 2):
        order += [i + 1, i]  # every pair arrives swapped
    feed(stats, order)
    block = stats.report_block(20.0)
    assert block is not None
    assert (block.fraction_lost, block.packets_lost) == (0, 0)
    assert block.highest_sequence == 999


def test_reordering_across_the_wrap_is_not_loss_nor_a_new_cycle() -> None:
    stats = ReceiverStats(1, 8000)
    for seq in [65532, 65533, 65535, 65534, 1, 0, 2]:
        assert stats.update(seq, 0, 0.0) or seq == 65532
    assert stats.extended_highest_sequence == 0x10002
    assert stats.cumulative_lost == 0


def test_duplicates_make_loss_negative() -> None:
    stats = ReceiverStats(1, 8000)
    feed(stats, [0, 1, 2, 2, 3, 3, 4])
    assert stats.cumulative_lost == -2
    block = stats.report_block(1.0)
    assert block is not None and block.packets_lost == -2 and block.fraction_lost == 0


def test_probation_needs_two_in_sequence_including_across_the_wrap() -> None:
    stats = ReceiverStats(1, 8000)
    assert not stats.update(65535, 0, 0.0)
    assert stats.report_block(0.0) is None
    assert stats.update(0, FRAME, 0.02)  # 65535 -> 0 is in sequence
    assert stats.valid
    assert stats.extended_highest_sequence == 0


def test_stray_packets_do_not_validate_a_source() -> None:
    stats = ReceiverStats(1, 8000)
    for seq in (10, 500, 9000, 30):
        assert not stats.update(seq, 0, 0.0)
    assert not stats.valid
    assert stats.expected == 0


def test_a_single_big_jump_is_ignored_but_a_restart_resyncs() -> None:
    stats = ReceiverStats(1, 8000)
    feed(stats, list(range(100)))
    assert not stats.update(40000, 0, 2.0)  # one wild packet: not counted
    assert stats.extended_highest_sequence == 99
    assert stats.update(101, 0, 2.0)  # the stream goes on; seq 100 is lost
    assert stats.cumulative_lost == 1
    assert not stats.update(20000, 0, 2.1)
    assert stats.update(20001, 0, 2.12)  # in sequence after the jump: a restart
    assert stats.extended_highest_sequence == 20001
    assert stats.received == 1 and stats.expected == 1


def test_jitter_converges_for_alternating_delay() -> None:
    stats = ReceiverStats(1, 8000)
    for i in range(600):
        # Every other packet is 5 ms late: each |D| is 5 ms = 40 timestamp units.
        stats.update(i, i * FRAME, i * 0.02 + (0.005 if i % 2 else 0.0))
    assert stats.jitter == pytest.approx(40.0, abs=1e-6)
    assert stats.jitter_seconds == pytest.approx(0.005, abs=1e-9)
    block = stats.report_block(12.0)
    assert block is not None and block.jitter == 39  # truncation of 39.99...


def test_jitter_is_zero_for_constant_delay_across_a_timestamp_wrap() -> None:
    stats = ReceiverStats(1, 8000)
    start = 0xFFFFFFFF - 50 * FRAME
    for i in range(200):
        stats.update(i, (start + i * FRAME) & 0xFFFFFFFF, 1000.0 + i * 0.02)
    assert stats.jitter == pytest.approx(0.0, abs=1e-3)


def test_lsr_and_dlsr_come_from_the_last_sender_report() -> None:
    stats = ReceiverStats(7, 8000)
    feed(stats, [0, 1])
    block = stats.report_block(1.0)
    assert block is not None and (block.lsr, block.dlsr) == (0, 0)
    stats.sender_report_received(0x0123456789ABCDEF, arrival=10.0)
    block = stats.report_block(10.5)
    assert block is not None
    assert block.lsr == 0x456789AB
    assert block.dlsr == 32768  # half a second in 1/65536 s


@pytest.mark.parametrize("kwargs", [{"clock_rate": 0}, {"clock_rate": 8000, "min_sequential": 0}])
def test_receiver_stats_rejects_bad_configuration(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        ReceiverStats(1, **kwargs)


# --- SenderState --------------------------------------------------------------------------


def test_sender_numbers_packets_and_advances_per_frame() -> None:
    sender = SenderState(8000, rng=random.Random(3))
    seq, ts = sender.sequence_number, sender.timestamp
    assert seq < 1 << 15
    first = RtpPacket.parse(sender.build(PCMU_PAYLOAD, 0, FRAME, marker=True))
    second = sender.next_packet(PCMU_PAYLOAD, 0, FRAME)
    assert (first.sequence_number, first.timestamp, first.marker) == (seq, ts, True)
    assert first.ssrc == second.ssrc == sender.ssrc
    assert (second.sequence_number, second.timestamp) == (seq + 1, (ts + FRAME) & 0xFFFFFFFF)
    assert (sender.packet_count, sender.octet_count) == (2, 320)


def test_sender_keeps_the_timestamp_for_an_event_and_skips_silence() -> None:
    sender = SenderState(8000, ssrc=5, rng=random.Random(1))
    ts = sender.timestamp
    for _ in range(3):
        assert peek_header(sender.build(b"\x01\x0a\x00\xa0", 101, 0))[2] == ts
    sender.skip(8000)
    assert sender.timestamp == (ts + 8000) & 0xFFFFFFFF
    assert sender.ssrc == 5


def test_sender_sequence_and_timestamp_wrap() -> None:
    sender = SenderState(8000, rng=random.Random(1))
    sender.sequence_number = 0xFFFF
    sender.timestamp = 0xFFFFFFFF - 10
    sender.build(b"", 0, FRAME)
    assert (sender.sequence_number, sender.timestamp) == (0, FRAME - 11)


def test_sender_rejects_a_bad_payload_type() -> None:
    with pytest.raises(ValueError, match="payload type 200"):
        SenderState(8000).build(b"", 200, FRAME)


def test_sender_report_feeds_the_receiver_and_gives_round_trip_time() -> None:
    sender = SenderState(8000, rng=random.Random(9))
    for _ in range(50):
        sender.build(PCMU_PAYLOAD, 0, FRAME)
    report = sender.sender_report(wallclock=1_700_000_000.25)
    assert (report.packet_count, report.octet_count) == (50, 8000)
    assert report.rtp_timestamp == sender.timestamp
    (parsed,) = parse_compound(report.serialize())
    assert parsed == report

    # The peer receives the SR, holds it 0.125 s, and reports; it reaches us
    # 0.375 s after we sent the SR, so the network took 0.25 s both ways.
    peer = ReceiverStats(sender.ssrc, 8000)
    feed(peer, [0, 1])
    peer.sender_report_received(report.ntp_timestamp, arrival=50.0)
    block = peer.report_block(50.125)
    assert isinstance(block, ReportBlock)
    rtt = round_trip_time(block, 1_700_000_000.25 + 0.375)
    assert rtt == pytest.approx(0.25, abs=1e-4)
