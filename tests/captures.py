"""Captures the tests make for SIPp to replay, instead of shipping binary files.

``inband_dtmf_capture`` writes an RTP stream in PCMU whose audio is a DTMF
key as tones (ITU-T Q.23 pairs): what an analogue gateway or an old trunk
sends when it does not do RFC 4733. SIPp's ``play_pcap_audio`` replays it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from media.g711 import codec_for
from media.pcap import UdpDatagram, write_udp
from media.rtp import RtpPacket

RATE = 8000
FRAME = 160  # 20 ms
_ROWS = (697.0, 770.0, 852.0, 941.0)
_COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")


def dtmf_pair(key: str) -> tuple[float, float]:
    for row, keys in enumerate(_KEYPAD):
        column = keys.find(key.upper())
        if column >= 0:
            return _ROWS[row], _COLUMNS[column]
    raise ValueError(f"not a DTMF key: {key!r}")


def inband_dtmf_capture(
    path: Path, key: str, *, lead_ms: int = 400, tone_ms: int = 120, tail_ms: int = 600
) -> Path:
    """Silence, ``key`` as tones at about -10 dBm0 per tone, silence; PCMU, PT 0."""
    low, high = dtmf_pair(key)
    tone_samples = tone_ms * RATE // 1000
    t = np.arange(tone_samples) / RATE
    tone = 0.22 * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
    pcm = np.concatenate(
        [
            np.zeros(lead_ms * RATE // 1000),
            tone,
            np.zeros(tail_ms * RATE // 1000),
        ]
    )
    pcm = np.round(pcm * 32767).astype(np.int16)
    pcm = np.pad(pcm, (0, -len(pcm) % FRAME))
    codec = codec_for("PCMU")
    datagrams = []
    for index in range(len(pcm) // FRAME):
        packet = RtpPacket(
            payload_type=0,
            sequence_number=1000 + index,
            timestamp=index * FRAME,
            ssrc=0x5EED,
            payload=codec.encode(pcm[index * FRAME : (index + 1) * FRAME]),
            marker=index == 0,
        )
        datagrams.append(
            UdpDatagram(
                1_700_000_000 + index * 0.02,
                ("10.0.0.1", 40000),
                ("10.0.0.2", 50000),
                packet.serialize(),
            )
        )
    write_udp(path, datagrams)
    return path
