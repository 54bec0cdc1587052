"""G.711 throughput on one core: 20 ms frames as RTP carries them, and long buffers.

Run: ``.venv/bin/python bench/media_g711.py`` (from the repository root). Each
figure is the best of three runs of one second. A 20 ms frame is 160 samples
(320 octets of linear PCM, 160 of G.711); one call direction needs 50 frames a
second, so frames per second over 50 is how many call directions one core
could code if it did nothing else. The last line is the in-band DTMF detector
on the same frames, for sizing calls that have no RFC 4733.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media.dtmf import GoertzelDetector
from media.g711 import PCMA, PCMU, transcode_table

FRAME = 160
LONG = 8000 * 60  # one minute of audio


def rate(fn: Callable[[], object], seconds: float = 1.0, runs: int = 3) -> float:
    """Best calls per second over ``runs`` timed loops of about ``seconds`` each."""
    best = 0.0
    for _ in range(runs):
        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(100):
                fn()
            count += 100
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, count / (now - start))
    return best


def main() -> None:
    """Print frames per second and megabytes of linear PCM per second."""
    rng = np.random.default_rng(0)
    speechlike = np.clip(rng.normal(0, 3000, LONG), -32768, 32767).astype(np.int16)
    frame = speechlike[:FRAME].copy()
    lines: list[tuple[str, float, float]] = []
    for codec in (PCMU, PCMA):
        payload, long_payload = codec.encode(frame), codec.encode(speechlike)
        per_frame = rate(partial(codec.encode, frame))
        lines.append((f"{codec.name} encode 160-sample frame", per_frame, per_frame * 2 * FRAME))
        per_frame = rate(partial(codec.decode, payload))
        lines.append((f"{codec.name} decode 160-sample frame", per_frame, per_frame * 2 * FRAME))
        per_call = rate(partial(codec.encode, speechlike), runs=2)
        lines.append((f"{codec.name} encode 60 s buffer", per_call, per_call * 2 * LONG))
        per_call = rate(partial(codec.decode, long_payload), runs=2)
        lines.append((f"{codec.name} decode 60 s buffer", per_call, per_call * 2 * LONG))
    table = transcode_table(PCMU, PCMA)
    assert table is not None
    ulaw_frame = PCMU.encode(frame)
    per_frame = rate(lambda: ulaw_frame.translate(table))
    lines.append(("PCMU->PCMA translate 160 octets", per_frame, per_frame * FRAME))
    detector = GoertzelDetector()
    per_frame = rate(lambda: detector.feed(frame))
    lines.append(("in-band DTMF detector, 160 samples", per_frame, per_frame * 2 * FRAME))
    for name, calls, octets in lines:
        sys.stdout.write(f"{name:36} {calls:>12,.0f} /s {octets / 1e6:>9,.1f} MB/s\n")


if __name__ == "__main__":
    main()
