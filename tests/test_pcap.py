"""media.pcap: what write_udp writes, read_udp (and so SIPp) reads back."""

from __future__ import annotations

import io
import itertools
import struct
from pathlib import Path

from media.pcap import UdpDatagram, read_udp, write_udp
from tests.captures import inband_dtmf_capture


def test_written_datagrams_read_back_exactly() -> None:
    datagrams = [
        UdpDatagram(1_700_000_000.25, ("10.0.0.1", 4000), ("10.0.0.2", 5000), b"first"),
        UdpDatagram(1_700_000_000.999_9996, ("192.0.2.7", 1), ("198.51.100.9", 65535), b""),
        UdpDatagram(1_700_000_001.0, ("127.0.0.1", 20000), ("127.0.0.1", 20002), bytes(172)),
    ]
    stream = io.BytesIO()
    assert write_udp(stream, datagrams) == 3
    stream.seek(0)
    back = list(read_udp(stream))
    assert [(d.src, d.dst, d.payload) for d in back] == [
        (d.src, d.dst, d.payload) for d in datagrams
    ]
    # Microsecond stamps: the one that rounds up carries into the next second.
    assert [round(d.timestamp, 6) for d in back] == [
        1_700_000_000.25,
        1_700_000_001.0,
        1_700_000_001.0,
    ]


def test_ip_header_checksum_verifies() -> None:
    stream = io.BytesIO()
    write_udp(stream, [UdpDatagram(0.0, ("10.1.2.3", 9), ("10.3.2.1", 7), b"x" * 33)])
    frame = stream.getvalue()[24 + 16 :]
    header = frame[14 : 14 + 20]
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    assert total == 0xFFFF


def test_inband_capture_is_paced_rtp(tmp_path: Path) -> None:
    path = inband_dtmf_capture(tmp_path / "key.pcap", "5", lead_ms=100, tone_ms=100, tail_ms=100)
    packets = list(read_udp(path))
    assert len(packets) == 15
    steps = {round(b.timestamp - a.timestamp, 6) for a, b in itertools.pairwise(packets)}
    assert steps == {0.02}
    assert all(len(p.payload) == 12 + 160 for p in packets)
