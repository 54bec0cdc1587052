"""RTP packet throughput on one core: a 172-byte PCMU packet (12-byte header, 20 ms of audio).

Run: ``.venv/bin/python bench/media_rtp_parse.py`` (from the repository root). Each
figure is the best of three runs of two seconds, in operations per second. The
relay budget is 100,000 packets a second per core; ``peek_header`` is what the
relay calls per packet, a full parse is for the packets it must look inside.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media.rtp import RtpPacket, peek_header

PCMU = (
    bytes.fromhex("80 00 12 34")  # V=2, PT=0 (PCMU), seq 4660
    + bytes.fromhex("00 01 e2 40")  # timestamp
    + bytes.fromhex("de ad be ef")  # SSRC
    + b"\xff" * 160  # 20 ms of mu-law silence at 8 kHz
)


def rate(fn: Callable[[], object], seconds: float = 2.0, runs: int = 3) -> float:
    """Best operations per second over ``runs`` timed loops of about ``seconds`` each."""
    best = 0.0
    for _ in range(runs):
        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(1000):
                fn()
            count += 1000
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, count / (now - start))
    return best


def main() -> None:
    """Print parse, serialise and header-peek rates for one PCMU packet."""
    assert len(PCMU) == 172
    packet = RtpPacket.parse(PCMU)
    assert packet.serialize() == PCMU
    parse = RtpPacket.parse
    figures = {
        "parse + serialize (172-byte PCMU)": rate(lambda: parse(PCMU).serialize()),
        "parse": rate(lambda: parse(PCMU)),
        "serialize": rate(packet.serialize),
        "peek_header (relay fast path)": rate(lambda: peek_header(PCMU)),
    }
    for name, value in figures.items():
        sys.stdout.write(f"{name:34} {value:>10,.0f} /s\n")


if __name__ == "__main__":
    main()
