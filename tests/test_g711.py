"""G.711 tables against the ITU-T algorithm written out independently, sample by sample.

The reference below is the classic segment search and quantisation of the
Sun ``g711.c`` code that most stacks descend from, in plain Python; the module
under test builds its tables with vectorised numpy arithmetic instead, so the
two agree only if both follow G.711.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from media import g711
from media.g711 import PCMA, PCMU, Codec, codec_for, register_codec, transcode_table

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
ALL_CODES = bytes(range(256))

_ULAW_SEGMENT_ENDS = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_ALAW_SEGMENT_ENDS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _segment(value: int, ends: tuple[int, ...]) -> int:
    for segment, end in enumerate(ends):
        if value <= end:
            return segment
    return len(ends)


def reference_ulaw_encode(sample: int) -> int:
    value = sample >> 2
    if value < 0:
        value, mask = -value, 0x7F
    else:
        mask = 0xFF
    value = min(value, 8159) + (0x84 >> 2)
    segment = _segment(value, _ULAW_SEGMENT_ENDS)
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def reference_ulaw_decode(code: int) -> int:
    code = ~code & 0xFF
    value = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return 0x84 - value if code & 0x80 else value - 0x84


def reference_alaw_encode(sample: int) -> int:
    value = sample >> 3
    if value >= 0:
        mask = 0xD5
    else:
        mask, value = 0x55, -value - 1
    segment = _segment(value, _ALAW_SEGMENT_ENDS)
    if segment >= 8:
        return 0x7F ^ mask
    shift = 1 if segment < 2 else segment
    return ((segment << 4) | ((value >> shift) & 0x0F)) ^ mask


def reference_alaw_decode(code: int) -> int:
    code ^= 0x55
    value = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    if segment == 0:
        value += 8
    elif segment == 1:
        value += 0x108
    else:
        value = (value + 0x108) << (segment - 1)
    return value if code & 0x80 else -value


REFERENCES = [
    (PCMU, reference_ulaw_encode, reference_ulaw_decode),
    (PCMA, reference_alaw_encode, reference_alaw_decode),
]


@pytest.mark.parametrize(("codec", "encode", "decode"), REFERENCES, ids=["PCMU", "PCMA"])
def test_all_256_decodes_match_the_reference(codec: Codec, encode: object, decode: object) -> None:
    assert callable(decode)
    assert codec.decode(ALL_CODES).tolist() == [decode(code) for code in range(256)]


@pytest.mark.parametrize(("codec", "encode", "decode"), REFERENCES, ids=["PCMU", "PCMA"])
def test_all_65536_encodes_match_the_reference(
    codec: Codec, encode: object, decode: object
) -> None:
    assert callable(encode)
    expected = bytes(encode(sample) for sample in range(-32768, 32768))
    assert codec.encode(ALL_INT16) == expected


@pytest.mark.parametrize(
    ("codec", "code", "sample"),
    [
        (PCMU, 0xFF, 0),
        (PCMU, 0x7F, 0),  # mu-law's negative zero
        (PCMU, 0x80, 32124),
        (PCMU, 0x00, -32124),
        (PCMU, 0xFE, 8),
        (PCMU, 0x7E, -8),
        (PCMA, 0xD5, 8),
        (PCMA, 0x55, -8),
        (PCMA, 0xAA, 32256),
        (PCMA, 0x2A, -32256),
    ],
)
def test_known_decode_values(codec: Codec, code: int, sample: int) -> None:
    assert codec.decode(bytes([code])).tolist() == [sample]


@pytest.mark.parametrize(
    ("codec", "sample", "code"),
    [
        (PCMU, 0, 0xFF),
        (PCMU, 3, 0xFF),
        (PCMU, -1, 0x7E),  # the reference shifts before it takes the sign
        (PCMU, 32767, 0x80),
        (PCMU, -32768, 0x00),
        (PCMA, 0, 0xD5),
        (PCMA, 7, 0xD5),
        (PCMA, -1, 0x55),
        (PCMA, 32767, 0xAA),
        (PCMA, -32768, 0x2A),
    ],
)
def test_known_encode_values(codec: Codec, sample: int, code: int) -> None:
    assert codec.encode(np.array([sample], dtype=np.int16)) == bytes([code])


@pytest.mark.parametrize("codec", [PCMU, PCMA], ids=["PCMU", "PCMA"])
def test_round_trip_error_is_within_half_a_step(codec: Codec) -> None:
    # Four mantissa bits per segment: the step is 1/16 of the segment's base,
    # so half a step is within 1/32 of the value, plus the smallest steps.
    decoded = codec.decode(codec.encode(ALL_INT16)).astype(np.int64)
    original = ALL_INT16.astype(np.int64)
    assert np.all(np.abs(decoded - original) <= np.abs(original) / 32 + 8)
    assert np.all(np.diff(decoded) >= 0)  # monotonic: louder never decodes quieter


def test_every_code_but_negative_zero_survives_decode_and_encode() -> None:
    assert PCMA.encode(PCMA.decode(ALL_CODES)) == ALL_CODES
    expected = bytearray(ALL_CODES)
    expected[0x7F] = 0xFF
    assert PCMU.encode(PCMU.decode(ALL_CODES)) == bytes(expected)


@pytest.mark.parametrize("codec", [PCMU, PCMA], ids=["PCMU", "PCMA"])
def test_matches_audioop_where_python_still_has_it(codec: Codec) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    linear = ALL_INT16.tobytes()
    if codec is PCMU:
        encoded, decoded = audioop.lin2ulaw(linear, 2), audioop.ulaw2lin(ALL_CODES, 2)
    else:
        encoded, decoded = audioop.lin2alaw(linear, 2), audioop.alaw2lin(ALL_CODES, 2)
    assert codec.encode(ALL_INT16) == encoded
    assert codec.decode(ALL_CODES).tobytes() == decoded


@given(arrays(np.int16, st.integers(0, 400)))
def test_encode_is_one_byte_per_sample_and_decode_inverts_it(pcm: np.ndarray) -> None:
    for codec in (PCMU, PCMA):
        payload = codec.encode(pcm)
        assert len(payload) == len(pcm)
        again = codec.decode(payload)
        assert again.dtype == np.int16
        assert codec.encode(again) == payload


def test_decode_returns_a_fresh_writable_array() -> None:
    samples = PCMU.decode(b"\xff" * 4)
    samples[0] = 1
    assert PCMU.decode(b"\xff").tolist() == [0]


def test_encode_refuses_samples_that_are_not_int16() -> None:
    with pytest.raises(TypeError, match="int16"):
        PCMU.encode(np.zeros(4, dtype=np.float64))  # type: ignore[arg-type]


def test_silence() -> None:
    assert PCMU.silence(160) == b"\xff" * 160
    assert PCMA.silence(160) == b"\xd5" * 160


def test_transcoding_tables_are_decode_then_encode() -> None:
    to_alaw = transcode_table(PCMU, PCMA)
    to_ulaw = transcode_table(PCMA, PCMU)
    assert to_alaw is not None and to_ulaw is not None
    assert ALL_CODES.translate(to_alaw) == PCMA.encode(PCMU.decode(ALL_CODES))
    assert ALL_CODES.translate(to_ulaw) == PCMU.encode(PCMA.decode(ALL_CODES))
    assert transcode_table(PCMU, PCMU) is None
    assert transcode_table(PCMA, PCMA) is None


def test_transcoding_a_bridged_frame_costs_at_most_one_step() -> None:
    speechlike = (np.sin(np.arange(160) * 0.3) * 12000).astype(np.int16)
    caller = PCMU.encode(speechlike)
    to_alaw = transcode_table(PCMU, PCMA)
    assert to_alaw is not None
    heard = PCMA.decode(caller.translate(to_alaw)).astype(np.int64)
    sent = PCMU.decode(caller).astype(np.int64)
    assert np.all(np.abs(heard - sent) <= np.abs(sent) / 16 + 16)


def test_registry_by_name_and_static_payload_type() -> None:
    assert codec_for("PCMU") is PCMU
    assert codec_for("pcma") is PCMA
    assert codec_for("PCMA/8000") is PCMA
    assert codec_for(0) is PCMU
    assert codec_for(8) is PCMA
    assert (PCMU.payload_type, PCMU.clock_rate, PCMA.payload_type) == (0, 8000, 8)


@pytest.mark.parametrize("key", ["G729", "PCMU/16000", 18, 101, ""])
def test_registry_rejects_what_it_does_not_know(key: str | int) -> None:
    with pytest.raises(KeyError):
        codec_for(key)


def test_registering_a_codec_with_a_dynamic_payload_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(g711, "_by_name", dict(g711._by_name))
    monkeypatch.setattr(g711, "_by_payload_type", dict(g711._by_payload_type))

    class Loopback(Codec):
        name = "X-LOOPBACK"
        payload_type = 120

        def encode(self, pcm: np.ndarray) -> bytes:
            return pcm.tobytes()

        def decode(self, data: bytes) -> np.ndarray:
            return np.frombuffer(data, dtype=np.int16).copy()

    codec = Loopback()
    register_codec(codec)
    assert codec_for("x-loopback") is codec
    with pytest.raises(KeyError):
        codec_for(120)  # a dynamic number means what each call's SDP says
    assert "X-LOOPBACK" in repr(codec)
