"""The C fast path (media/_fastrtp_src/) against the Python reference it replaces.

Each C type must give exactly what its Python twin gives for the same
inputs: hypothesis drives both with random packet sequences (sequence
jumps, wraps, duplicates, reordering, timestamp wraps, odd arrival times)
and compares every figure after every step. The relay itself is compared
end to end in tests/test_bridge.py, whose every test runs on both paths.

In CI the extension must be built (scripts/test installs a compiler and the
Python headers); elsewhere these tests skip without it.
"""

from __future__ import annotations

import os
import random
import socket
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media import PCMA, PCMU
from media._native import fastrtp
from media._stats import PyReceiverStats, PySenderState
from media._wavwriter import WavTimeline, _Channel

if fastrtp is None:
    if os.environ.get("CI"):
        pytest.fail("media._fastrtp is not built; scripts/test builds it", pytrace=False)
    pytest.skip("media._fastrtp is not built", allow_module_level=True)

from media._native_stats import ReceiverStats as NativeReceiverStats
from media._native_stats import SenderState as NativeSenderState

_header = struct.Struct("!BBHII")

# -- ReceiverStats -------------------------------------------------------------------------

steps = st.lists(
    st.one_of(
        # (sequence step, timestamp step, arrival step): mostly in order, sometimes not.
        st.tuples(
            st.sampled_from([1, 1, 1, 1, 2, 0, -1, -3, 5, 150, 3001, -101, 40000]),
            st.sampled_from([160, 160, 160, 0, 320, -160, 2**31, 12345]),
            st.floats(min_value=0.0, max_value=0.2, allow_nan=False),
        ),
        st.just("report"),
        st.tuples(st.just("sr"), st.integers(min_value=0, max_value=2**64 - 1)),
    ),
    max_size=200,
)


def figures(stats: object) -> tuple[object, ...]:
    return tuple(
        getattr(stats, name)
        for name in (
            "ssrc",
            "clock_rate",
            "valid",
            "received",
            "expected",
            "cumulative_lost",
            "extended_highest_sequence",
            "jitter",
            "jitter_seconds",
            "fraction_lost",
        )
    )


@settings(max_examples=300, deadline=None)
@given(
    start_seq=st.integers(0, 0xFFFF),
    start_ts=st.integers(0, 0xFFFFFFFF),
    min_sequential=st.integers(1, 3),
    script=steps,
)
def test_receiver_stats_match_the_reference(
    start_seq: int, start_ts: int, min_sequential: int, script: list[object]
) -> None:
    python = PyReceiverStats(0xABCD, 8000, min_sequential=min_sequential)
    native = NativeReceiverStats(0xABCD, 8000, min_sequential=min_sequential)
    seq, ts, now = start_seq, start_ts, 1000.0
    for step in script:
        if step == "report":
            assert native.report_block(now) == python.report_block(now)
        elif isinstance(step, tuple) and step[0] == "sr":
            native.sender_report_received(step[1], arrival=now)
            python.sender_report_received(step[1], arrival=now)
        else:
            assert isinstance(step, tuple)
            d_seq, d_ts, d_now = step
            seq, ts, now = (seq + d_seq) & 0xFFFF, (ts + d_ts) & 0xFFFFFFFF, now + d_now
            assert native.update(seq, ts, now) == python.update(seq, ts, now)
        assert figures(native) == figures(python)


def test_receiver_stats_refuse_what_the_reference_refuses() -> None:
    for kwargs in ({"clock_rate": 0}, {"clock_rate": 8000, "min_sequential": 0}):
        with pytest.raises(ValueError):
            NativeReceiverStats(1, **kwargs)


# -- SenderState ---------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    script=st.lists(
        st.tuples(
            st.sampled_from(["build", "next", "skip"]),
            st.binary(max_size=320),
            st.integers(0, 127),
            st.integers(0, 2**33),
            st.booleans(),
        ),
        max_size=50,
    ),
)
def test_sender_state_matches_the_reference(
    seed: int, script: list[tuple[str, bytes, int, int, bool]]
) -> None:
    python = PySenderState(8000, rng=random.Random(seed))
    native = NativeSenderState(8000, rng=random.Random(seed))
    for action, payload, payload_type, samples, marker in script:
        if action == "build":
            built = native.build(payload, payload_type, samples, marker=marker)
            assert built == python.build(payload, payload_type, samples, marker=marker)
        elif action == "next":
            packet = native.next_packet(payload, payload_type, samples, marker=marker)
            assert packet == python.next_packet(payload, payload_type, samples, marker=marker)
        else:
            native.skip(samples)
            python.skip(samples)
        assert [
            getattr(native, n)
            for n in ("ssrc", "sequence_number", "timestamp", "packet_count", "octet_count")
        ] == [
            getattr(python, n)
            for n in ("ssrc", "sequence_number", "timestamp", "packet_count", "octet_count")
        ]
    assert native.sender_report(1.5e9) == python.sender_report(1.5e9)


def test_sender_state_refuses_a_payload_type_out_of_range() -> None:
    sender = NativeSenderState(8000)
    with pytest.raises(ValueError, match="outside 0-127"):
        sender.build(b"", 128, 0)
    with pytest.raises(ValueError):
        NativeSenderState(0)


# -- the recorder's placement --------------------------------------------------------------


def packet(seq: int, ts: int, payload: bytes, *, csrc: int = 0, padding: int = 0) -> bytes:
    first = 0x80 | csrc | (0x20 if padding else 0)
    data = _header.pack(first, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, 7) + b"\0\0\0\1" * csrc
    data += payload
    if padding:
        data += b"\0" * (padding - 1) + bytes([padding])
    return data


batches = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from([160, 160, 160, 0, 80, 480, -160, 2**31, 7777]),  # timestamp step
            st.floats(0.0, 0.25, allow_nan=False),  # arrival step
            st.integers(0, 200),  # payload size
            st.sampled_from(["plain", "plain", "csrc", "padding", "broken", "v1"]),
        ),
        max_size=40,
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(
    codec=st.sampled_from([PCMU, PCMA]),
    start_ts=st.integers(0, 0xFFFFFFFF),
    origin=st.floats(0.0, 10_000.0, allow_nan=False),
    script=batches,
)
def test_placement_matches_the_reference(
    codec: object, start_ts: int, origin: float, script: list[list[tuple[int, float, int, str]]]
) -> None:
    timeline = WavTimeline.__new__(WavTimeline)
    timeline.origin, timeline.rate, timeline._tolerance = origin, 8000, 640
    python, native = _Channel(), _Channel()
    table = codec.decode(bytes(range(256))).astype(np.int16).tobytes()  # type: ignore[attr-defined]
    ts, now, seq = start_ts, origin, 0
    for batch in script:
        items: list[float | bytes] = []
        for d_ts, d_now, size, kind in batch:
            ts, now, seq = (ts + d_ts) & 0xFFFFFFFF, now + d_now, seq + 1
            payload = bytes((seq * 7 + n) & 0xFF for n in range(size))
            if kind == "csrc":
                data = packet(seq, ts, payload, csrc=2)
            elif kind == "padding":
                data = packet(seq, ts, payload, padding=4)
            elif kind == "broken":  # a padding count beyond the packet
                data = packet(seq, ts, payload, padding=4)[:-1] + b"\xff"
            elif kind == "v1":
                data = b"\x40" + packet(seq, ts, payload)[1:]
            else:
                data = packet(seq, ts, payload)
            items += [now, data]
        expected = WavTimeline._place(timeline, python, codec, items)  # type: ignore[arg-type]
        runs, native.next_pos, native.next_ts = fastrtp.place(
            items, table, origin, 8000, 640, native.next_pos, native.next_ts
        )
        assert [(s, np.frombuffer(pcm, dtype=np.int16).tolist()) for s, pcm in runs] == [
            (s, samples.tolist()) for s, samples in expected
        ]
        assert (native.next_pos, native.next_ts) == (python.next_pos, python.next_ts)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    script=st.lists(
        st.tuples(
            st.integers(0, 30),  # packets on the left channel in this flush
            st.integers(0, 30),  # on the right
            st.floats(0.0, 1.0, allow_nan=False),  # how long until the flush
        ),
        min_size=1,
        max_size=8,
    ),
    end=st.one_of(st.none(), st.floats(0.0, 3.0, allow_nan=False)),
)
def test_a_recording_is_the_same_file_on_both_paths(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    script: list[tuple[int, int, float]],
    end: float | None,
) -> None:
    """The whole timeline, placement and mixing, written by the C path and by numpy."""
    import media._wavwriter as wavwriter

    rng = random.Random(seed)
    folder = tmp_path_factory.mktemp("wav")
    flushes: list[tuple[list[list[float | bytes]], float]] = []
    now, clocks = 100.0, [rng.getrandbits(32), rng.getrandbits(32)]
    for left, right in (s[:2] for s in script):
        batches: list[list[float | bytes]] = []
        for channel, count in enumerate((left, right)):
            items: list[float | bytes] = []
            for _ in range(count):
                now += rng.choice([0.0, 0.02, 0.02, 0.02, 0.05, 0.3])
                clocks[channel] = (clocks[channel] + rng.choice([160, 160, 0, 480, -160])) & (
                    2**32 - 1
                )
                size = rng.choice([160, 160, 80, 0])
                items += [
                    now,
                    packet(1, clocks[channel], bytes(rng.getrandbits(8) for _ in range(size))),
                ]
            batches.append(items)
        flushes.append((batches, now + rng.random()))

    def write(name: str) -> tuple[bytes, tuple[float, int, str]]:
        timeline = WavTimeline(folder / name, origin=100.0)
        for batches, cut in flushes:
            timeline.write([[(PCMU, items)] for items in batches], cut)
        facts = timeline.finish(None if end is None else 100.0 + end)
        return (folder / name).read_bytes(), facts

    native = write("c.wav")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(wavwriter, "fastrtp", None)
        python = write("python.wav")
    assert native == python


# -- Port ------------------------------------------------------------------------------


def test_a_port_reads_what_is_queued_in_order_and_drops_oversized_datagrams() -> None:
    """More datagrams than one recvmmsg takes, one too large among them: every other
    one reaches the handler in order, with its source; a drained socket returns."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        sender.bind(("127.0.0.1", 0))
        port = fastrtp.Port(receiver.fileno())
        got: list[tuple[bytes, tuple[str, int]]] = []
        port.handler = lambda data, source: got.append((data, source))
        sent = [b"%03d" % i + b"x" * i for i in range(20)]
        for i, datagram in enumerate(sent):
            sender.sendto(b"y" * 5000 if i == 7 else datagram, receiver.getsockname())
        # Everything was sent on loopback before the read: it is all queued.
        port.readable()
        assert [data for data, _ in got] == [d for i, d in enumerate(sent) if i != 7]
        assert {source for _, source in got} == {sender.getsockname()}
        assert port.dropped == 1
        port.readable()  # nothing queued: returns at once
        assert len(got) == 19
        # More than a call's batch (64) waits for the next call.
        for i in range(70):
            sender.sendto(b"%02d" % i, receiver.getsockname())
        got.clear()
        port.readable()
        assert len(got) == 64
        port.readable()
        assert [data for data, _ in got][-6:] == [b"%02d" % i for i in range(64, 70)]
    finally:
        receiver.close()
        sender.close()
