"""RTCP packets and compounds, laid out by hand from the RFC 3550 6.4-6.6 diagrams."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.rtcp import (
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

BLOCK = (
    bytes.fromhex("ca fe ba be")  # SSRC of the source reported on
    + bytes.fromhex("19 00 00 0a")  # fraction lost 25/256 | cumulative lost 10
    + bytes.fromhex("00 01 00 05")  # extended highest sequence: 1 cycle, seq 5
    + bytes.fromhex("00 00 00 28")  # interarrival jitter 40
    + bytes.fromhex("3a 80 40 00")  # LSR
    + bytes.fromhex("00 00 80 00")  # DLSR: 0.5 s
)
BLOCK_OBJECT = ReportBlock(0xCAFEBABE, 25, 10, 0x10005, 40, 0x3A804000, 0x8000)

SR = (
    bytes.fromhex("81 c8 00 0c")  # V=2 P=0 RC=1 | PT=200 | length 12 words - 1
    + bytes.fromhex("de ad be ef")  # sender SSRC
    + bytes.fromhex("e9 5f 3a 80")  # NTP seconds
    + bytes.fromhex("40 00 00 00")  # NTP fraction: a quarter second
    + bytes.fromhex("00 01 e2 40")  # RTP timestamp
    + bytes.fromhex("00 00 00 64")  # sender's packet count 100
    + bytes.fromhex("00 00 3e 80")  # sender's octet count 16000
    + BLOCK
)
SR_OBJECT = SenderReport(0xDEADBEEF, 0xE95F3A80_40000000, 123456, 100, 16000, (BLOCK_OBJECT,))

RR_EMPTY = bytes.fromhex("80 c9 00 01") + bytes.fromhex("00 00 00 01")

RR_NEGATIVE_LOSS = (
    bytes.fromhex("81 c9 00 07")
    + bytes.fromhex("00 00 00 01")
    + bytes.fromhex("00 00 00 02")
    + bytes.fromhex("00 ff ff fe")  # cumulative lost -2 (duplicates)
    + bytes.fromhex("00 00 ff ff")
    + bytes.fromhex("00 00 00 00") * 3
)

SDES = (
    bytes.fromhex("81 ca 00 04")  # SC=1 | PT=202 | 5 words in all
    + bytes.fromhex("de ad be ef")
    + bytes.fromhex("01 09")  # CNAME, 9 octets
    + b"user@host"
    + bytes.fromhex("00")  # END, which also reaches the 32-bit boundary
)

SDES_TWO_CHUNKS = (
    bytes.fromhex("82 ca 00 09")  # SC=2 | PT=202 | 10 words in all
    + bytes.fromhex("00 00 00 01")
    + bytes.fromhex("01 0a")
    + b"0123456789"  # 16 octets so far: the END item takes a whole word
    + bytes.fromhex("00 00 00 00")
    + bytes.fromhex("00 00 00 02")
    + bytes.fromhex("01 01")
    + b"a"
    + bytes.fromhex("06 05")  # TOOL
    + b"acd/1"
    + bytes.fromhex("00 00")  # END and one null octet to the boundary
)

BYE = bytes.fromhex("81 cb 00 01") + bytes.fromhex("de ad be ef")

BYE_WITH_REASON = (
    bytes.fromhex("82 cb 00 05")  # SC=2 | PT=203 | 6 words in all
    + bytes.fromhex("00 00 00 01")
    + bytes.fromhex("00 00 00 02")
    + bytes.fromhex("08")  # reason length
    + b"hung up!"
    + bytes.fromhex("00 00 00")  # to the 32-bit boundary
)

APP = bytes.fromhex("83 cc 00 02") + bytes.fromhex("00 00 00 01") + b"name"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (SR, SR_OBJECT),
        (RR_EMPTY, ReceiverReport(1)),
        (RR_NEGATIVE_LOSS, ReceiverReport(1, (ReportBlock(2, 0, -2, 0xFFFF),))),
        (SDES, SourceDescription.with_cname(0xDEADBEEF, "user@host")),
        (
            SDES_TWO_CHUNKS,
            SourceDescription(
                (
                    SdesChunk(1, (SdesItem(1, b"0123456789"),)),
                    SdesChunk(2, (SdesItem(1, b"a"), SdesItem(6, b"acd/1"))),
                )
            ),
        ),
        (BYE, Bye((0xDEADBEEF,))),
        (BYE_WITH_REASON, Bye((1, 2), "hung up!")),
        (APP, UnknownRtcpPacket(204, 3, bytes.fromhex("00000001") + b"name")),
    ],
    ids=[
        "sr",
        "rr-empty",
        "rr-negative-loss",
        "sdes",
        "sdes-two-chunks",
        "bye",
        "bye-reason",
        "app",
    ],
)
def test_fixture_parses_and_round_trips(data: bytes, expected: RtcpPacket) -> None:
    assert parse_compound(data) == [expected]
    assert expected.serialize() == data
    assert serialize_compound(parse_compound(data)) == data


def test_compound_rr_sdes_bye() -> None:
    data = RR_NEGATIVE_LOSS + SDES + BYE
    packets = parse_compound(data)
    assert [type(p) for p in packets] == [ReceiverReport, SourceDescription, Bye]
    assert serialize_compound(packets) == data
    sdes = packets[1]
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks[0].cname == "user@host"
    assert SdesChunk(1, (SdesItem(6, b"x"),)).cname is None


def test_padding_is_accepted_and_dropped() -> None:
    padded = bytes.fromhex("a0 c9 00 02 00 00 00 01 00 00 00 04")
    assert parse_compound(padded) == [ReceiverReport(1)]
    assert parse_compound(padded + SDES)[1] == SourceDescription.with_cname(0xDEADBEEF, "user@host")


def test_sr_and_rr_keep_a_profile_extension() -> None:
    data = bytes.fromhex("80 c9 00 02 00 00 00 01 ab cd ef 01")
    (packet,) = parse_compound(data)
    assert packet == ReceiverReport(1, (), bytes.fromhex("abcdef01"))
    assert packet.serialize() == data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "datagram is empty"),
        (RR_EMPTY + b"\x80\xc9", "header at byte 8 is truncated to 2 bytes"),
        (b"\x40" + RR_EMPTY[1:], "version 1, expected 2"),
        (RR_EMPTY[:4] + b"\x00\x00", "claims 4 body bytes but only 2 remain"),
        (bytes.fromhex("a0 c9 00 01 00 00 00 00"), "padding count 0 is invalid"),
        (bytes.fromhex("a0 c9 00 01 00 00 00 09"), "padding count 9 is invalid"),
        (bytes.fromhex("a0 c9 00 00"), "padding count 0 is invalid for a 0-byte body"),
        (bytes.fromhex("80 c8 00 01 00 00 00 01"), "SR body is 4 bytes, shorter than 24"),
        (bytes.fromhex("80 c9 00 00"), "RR body is 0 bytes, shorter than its 4-byte SSRC"),
        (RR_EMPTY[:1].replace(b"\x80", b"\x81") + RR_EMPTY[1:], "too short for 1 report blocks"),
        (SR[:1].replace(b"\x81", b"\x82") + SR[1:], "too short for 2 report blocks"),
        (bytes.fromhex("81 ca 00 00"), "SDES chunk 1 of 1 starts at byte 0"),
        (bytes.fromhex("81 ca 00 01 00 00 00 01"), "chunk 1 has no END item"),
        (bytes.fromhex("81 ca 00 02 00 00 00 01 01 09 61 62"), "runs past the 8-byte body"),
        (bytes.fromhex("81 ca 00 02 00 00 00 01 01 01 61 01"), "has no length octet"),
        (bytes.fromhex("81 ca 00 03 00 00 00 01 00 00 00 00 00 00 00 00"), "4 bytes after its 1"),
        (bytes.fromhex("82 cb 00 01 00 00 00 01"), "BYE body is 4 bytes, too short for 2"),
        (bytes.fromhex("81 cb 00 02 00 00 00 01 04 61 62 63"), "reason of 4 bytes runs past"),
        (bytes.fromhex("81 cb 00 02 00 00 00 01 02 ff fe 00"), "reason is not UTF-8"),
        (bytes.fromhex("81 cb 00 03 00 00 00 01 01 61 00 00 00 00 00 00"), "6 bytes after"),
    ],
)
def test_malformed_rtcp_names_the_packet_and_field(data: bytes, message: str) -> None:
    with pytest.raises(RtcpParseError, match=message):
        parse_compound(data)


def test_sdes_padding_past_a_padded_body_is_an_error() -> None:
    # P=1 strips the last octet, so the END item's null octets would run past the body.
    data = bytes.fromhex("a1 ca 00 02 00 00 00 01 00 00 00 01")
    with pytest.raises(RtcpParseError, match="padding runs past the 7-byte body"):
        parse_compound(data)


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (ReceiverReport(1, (ReportBlock(2),) * 32), "32 report blocks, at most 31"),
        (ReceiverReport(1 << 32), "SSRC out of range"),
        (ReceiverReport(1, (ReportBlock(2, fraction_lost=256),)), "fraction lost 256"),
        (ReceiverReport(1, (ReportBlock(2, packets_lost=1 << 23),)), "24 signed bits"),
        (ReceiverReport(1, (ReportBlock(2, jitter=-1),)), "report block field out of range"),
        (ReceiverReport(1, (), b"abc"), "not a multiple of 4"),
        (SenderReport(1, 1 << 64, 0, 0, 0), "SR sender info out of range"),
        (SourceDescription((SdesChunk(1, (SdesItem(0, b""),)),)), "item type 0"),
        (SourceDescription((SdesChunk(1, (SdesItem(1, b"x" * 256),)),)), "256 bytes"),
        (Bye((1,), "é" * 128), "256 bytes in UTF-8"),
        (UnknownRtcpPacket(256, 0, b""), "packet type 256"),
        (UnknownRtcpPacket(204, -1, b""), "negative"),
        (UnknownRtcpPacket(204, 0, bytes(0x40000)), "too long"),
    ],
)
def test_serialize_rejects_what_does_not_fit(packet: RtcpPacket, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        packet.serialize()


def test_is_rtcp_tells_rtcp_from_rtp_on_a_muxed_port() -> None:
    assert is_rtcp(SR) and is_rtcp(RR_EMPTY) and is_rtcp(BYE)
    assert not is_rtcp(bytes.fromhex("80 00 00 01"))  # PCMU
    assert not is_rtcp(bytes.fromhex("80 e5 00 01"))  # telephone-event with marker
    assert not is_rtcp(b"\x80")


def test_ntp_timestamp_and_round_trip_time() -> None:
    assert ntp_timestamp(0.0) == 2_208_988_800 << 32
    assert ntp_timestamp(1.5) == ((2_208_988_801 << 32) | 0x8000_0000)
    sent = 1_700_000_000.0
    lsr = (ntp_timestamp(sent) >> 16) & 0xFFFFFFFF
    block = ReportBlock(1, lsr=lsr, dlsr=16384)  # the peer held our SR 0.25 s
    assert round_trip_time(block, sent + 0.75) == pytest.approx(0.5, abs=1e-4)
    assert round_trip_time(block, sent + 0.1) == 0.0  # clocks disagree: not negative
    assert round_trip_time(ReportBlock(1), sent) is None


# --- property tests -----------------------------------------------------------------------

u32 = st.integers(0, 0xFFFFFFFF)
report_blocks = st.builds(
    ReportBlock,
    u32,
    st.integers(0, 255),
    st.integers(-0x800000, 0x7FFFFF),
    u32,
    u32,
    u32,
    u32,
)
words = st.binary(max_size=32).map(lambda b: b[: len(b) // 4 * 4])
rtcp_packets: st.SearchStrategy[RtcpPacket] = st.one_of(
    st.builds(
        SenderReport,
        u32,
        st.integers(0, (1 << 64) - 1),
        u32,
        u32,
        u32,
        st.lists(report_blocks, max_size=31).map(tuple),
        words,
    ),
    st.builds(ReceiverReport, u32, st.lists(report_blocks, max_size=31).map(tuple), words),
    st.builds(
        SourceDescription,
        st.lists(
            st.builds(
                SdesChunk,
                u32,
                st.lists(
                    st.builds(SdesItem, st.integers(1, 255), st.binary(max_size=255)), max_size=4
                ).map(tuple),
            ),
            max_size=31,
        ).map(tuple),
    ),
    st.builds(
        Bye,
        st.lists(u32, max_size=31).map(tuple),
        st.none() | st.text(max_size=60).filter(lambda t: len(t.encode()) <= 255),
    ),
    st.builds(
        UnknownRtcpPacket,
        st.sampled_from([204, 205, 206, 207]),
        st.integers(0, 31),
        words,
    ),
)


@given(st.lists(rtcp_packets, min_size=1, max_size=5))
def test_valid_compounds_round_trip(packets: list[RtcpPacket]) -> None:
    data = serialize_compound(packets)
    assert parse_compound(data) == packets
    assert serialize_compound(parse_compound(data)) == data


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        parse_compound(data)


@given(st.lists(rtcp_packets, min_size=1, max_size=3), st.data())
def test_corrupted_compounds_raise_only_value_error(
    packets: list[RtcpPacket], data: st.DataObject
) -> None:
    wire = bytearray(serialize_compound(packets))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(wire) - 1))
        wire[index] = data.draw(st.integers(0, 255))
    with contextlib.suppress(ValueError):
        parse_compound(bytes(wire))
