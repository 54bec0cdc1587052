"""A tiny reader (and writer) of UDP datagrams in classic libpcap capture files.

Enough to replay RTP captures (SIPp's ``dtmf_2833_*.pcap``, a softphone's
Wireshark trace) into the media layer in tests and tools: the global header in
either byte order with microsecond or nanosecond timestamps; Ethernet (with
802.1Q tags), Linux cooked, BSD loopback and raw IP link layers; IPv4 and IPv6
(without extension headers); UDP. Anything else in the file is skipped, and
so are IP fragments, which are not reassembled. The pcapng format is not read.

``write_udp`` writes datagrams back out as Ethernet/IPv4/UDP frames, the
form SIPp's ``play_pcap_audio`` replays: that is how tests make captures of
their own (in-band DTMF tones, test tones) rather than ship binary files.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

__all__ = ["PcapError", "UdpDatagram", "read_udp", "write_udp"]

_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}

_LINKTYPE_NULL = 0
_LINKTYPE_ETHERNET = 1
_LINKTYPE_RAW = 101
_LINKTYPE_LINUX_SLL = 113
_LINKTYPE_IPV4 = 228
_LINKTYPE_IPV6 = 229

_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
_ETHERTYPE_VLAN = (0x8100, 0x88A8)
_IPPROTO_UDP = 17

_UDP_HEADER = struct.Struct("!HHHH")


class PcapError(ValueError):
    """The file is not a classic pcap capture, or is cut short inside a record."""


class UdpDatagram(NamedTuple):
    """One captured UDP datagram: capture time (seconds since the epoch), addresses, payload."""

    timestamp: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


def read_udp(source: str | Path | BinaryIO) -> Iterator[UdpDatagram]:
    """Yield the UDP datagrams of a pcap file (a path or a binary file object) in order."""
    if isinstance(source, str | Path):
        with open(source, "rb") as stream:
            yield from _read(stream)
    else:
        yield from _read(source)


def _read(stream: BinaryIO) -> Iterator[UdpDatagram]:
    header = stream.read(24)
    if len(header) < 24:
        raise PcapError(f"pcap global header is 24 octets, file has {len(header)}")
    try:
        order, tick = _MAGIC[header[:4]]
    except KeyError:
        raise PcapError(f"not a classic pcap file (magic {header[:4].hex()})") from None
    (linktype,) = struct.unpack(order + "I", header[20:24])
    record = struct.Struct(order + "IIII")
    number = 0
    while True:
        head = stream.read(record.size)
        if not head:
            return
        number += 1
        if len(head) < record.size:
            raise PcapError(f"record {number}: header cut short at {len(head)} octets")
        seconds, fraction, captured, _original = record.unpack(head)
        frame = stream.read(captured)
        if len(frame) < captured:
            raise PcapError(f"record {number}: {captured} octets announced, {len(frame)} present")
        datagram = _udp_in_frame(linktype, frame, seconds + fraction * tick)
        if datagram is not None:
            yield datagram


def _udp_in_frame(linktype: int, frame: bytes, timestamp: float) -> UdpDatagram | None:
    if linktype == _LINKTYPE_ETHERNET:
        offset = 12
        ethertype = int.from_bytes(frame[12:14], "big")
        while ethertype in _ETHERTYPE_VLAN:
            offset += 4
            ethertype = int.from_bytes(frame[offset : offset + 2], "big")
        return _udp_in_ip(ethertype, frame[offset + 2 :], timestamp)
    if linktype == _LINKTYPE_LINUX_SLL:
        return _udp_in_ip(int.from_bytes(frame[14:16], "big"), frame[16:], timestamp)
    if linktype == _LINKTYPE_NULL:
        # The address family is in the capturing host's byte order; IPv4 is 2
        # everywhere, IPv6 differs between BSDs, so look at the IP version.
        return _udp_in_ip(None, frame[4:], timestamp)
    if linktype in (_LINKTYPE_RAW, _LINKTYPE_IPV4, _LINKTYPE_IPV6):
        return _udp_in_ip(None, frame, timestamp)
    return None


def _udp_in_ip(ethertype: int | None, packet: bytes, timestamp: float) -> UdpDatagram | None:
    if not packet or ethertype not in (None, _ETHERTYPE_IPV4, _ETHERTYPE_IPV6):
        return None
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        header_length = (packet[0] & 0x0F) * 4
        total_length = int.from_bytes(packet[2:4], "big")
        fragment = int.from_bytes(packet[6:8], "big")
        if packet[9] != _IPPROTO_UDP or fragment & 0x3FFF:  # MF flag or an offset
            return None
        src_ip = str(ipaddress.IPv4Address(packet[12:16]))
        dst_ip = str(ipaddress.IPv4Address(packet[16:20]))
        # total_length, not the frame, bounds the datagram: Ethernet pads short frames.
        segment = packet[header_length:total_length]
    elif version == 6 and len(packet) >= 40:
        if packet[6] != _IPPROTO_UDP:
            return None
        payload_length = int.from_bytes(packet[4:6], "big")
        src_ip = str(ipaddress.IPv6Address(packet[8:24]))
        dst_ip = str(ipaddress.IPv6Address(packet[24:40]))
        segment = packet[40 : 40 + payload_length]
    else:
        return None
    if len(segment) < _UDP_HEADER.size:
        return None
    src_port, dst_port, udp_length, _checksum = _UDP_HEADER.unpack_from(segment)
    payload = segment[_UDP_HEADER.size : udp_length] if udp_length >= 8 else b""
    return UdpDatagram(timestamp, (src_ip, src_port), (dst_ip, dst_port), payload)


_IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")


def _ipv4_checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def write_udp(target: str | Path | BinaryIO, datagrams: Iterable[UdpDatagram]) -> int:
    """Write IPv4 ``datagrams`` as an Ethernet capture (microsecond stamps); returns the count.

    The UDP checksum is left zero ("not computed", allowed over IPv4); the IP
    header checksum is filled in, so Wireshark shows the capture clean.
    """
    if isinstance(target, (str, Path)):
        with open(target, "wb") as file:
            return write_udp(file, datagrams)
    stream = target
    stream.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, _LINKTYPE_ETHERNET))
    count = 0
    for datagram in datagrams:
        src = ipaddress.IPv4Address(datagram.src[0]).packed
        dst = ipaddress.IPv4Address(datagram.dst[0]).packed
        udp = _UDP_HEADER.pack(datagram.src[1], datagram.dst[1], 8 + len(datagram.payload), 0)
        length = _IPV4_HEADER.size + len(udp) + len(datagram.payload)
        header = _IPV4_HEADER.pack(
            0x45, 0, length, count & 0xFFFF, 0, 64, _IPPROTO_UDP, 0, src, dst
        )
        header = header[:10] + struct.pack("!H", _ipv4_checksum(header)) + header[12:]
        ethernet = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
        frame = ethernet + struct.pack("!H", _ETHERTYPE_IPV4) + header + udp + datagram.payload
        seconds = int(datagram.timestamp)
        micros = round((datagram.timestamp - seconds) * 1e6)
        if micros >= 1_000_000:
            seconds, micros = seconds + 1, micros - 1_000_000
        stream.write(struct.pack("<IIII", seconds, micros, len(frame), len(frame)))
        stream.write(frame)
        count += 1
    return count
