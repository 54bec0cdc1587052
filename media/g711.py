"""G.711 PCMU (mu-law) and PCMA (A-law) by lookup tables, and a codec registry.

Every table is built once, at import, with numpy: a 256-entry decode table per
law and a 65536-entry encode table indexed by the int16 sample reinterpreted as
uint16, so encoding a frame is one fancy-indexing operation and decoding is
another. ``audioop`` did the same job in C but is gone in Python 3.13.

The quantisation follows ITU-T G.711 exactly as the classic Sun reference code
(``g711.c``) does it, so encoded bytes match what other stacks produce:

* mu-law works on the sample shifted right by 2 (14 bits), adds a bias of 33,
  clips the magnitude at 8159 and codes a 3-bit segment and 4-bit mantissa,
  then inverts every bit (``0xFF`` is silence, ``0x80``/``0x00`` are +/-32124);
* A-law works on the sample shifted right by 3 (13 bits), codes negative
  samples by their one's complement, and inverts the even bits (``0xD5`` is
  the smallest positive step, +8).

PCMU and PCMA are converted into each other by a 256-byte table for
:meth:`bytes.translate`, so a bridge between a PCMU leg and a PCMA leg never
decodes to linear.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "PCMA",
    "PCMU",
    "Codec",
    "PcmaCodec",
    "PcmuCodec",
    "codec_for",
    "register_codec",
    "transcode_table",
]

_U16 = np.arange(65536, dtype=np.uint16)
_ALL_INT16 = _U16.view(np.int16).astype(np.int32)
_ALL_CODES = np.arange(256, dtype=np.int32)


def _bit_length(values: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """Bit length of non-negative integers (0 has length 0), exact for < 2**53."""
    _, exponent = np.frexp(values.astype(np.float64))
    return exponent.astype(np.int32)


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    x = _ALL_INT16 >> 2  # arithmetic shift: the reference code floors negatives
    negative = x < 0
    # The reference clips the magnitude at 8159 and adds the bias of 33, and a
    # sum past 0x1FFF codes as the largest step: clamping the sum is the same.
    biased = np.minimum(np.abs(x) + 33, 0x1FFF)
    segment = _bit_length(biased) - 6
    mantissa = (biased >> (segment + 1)) & 0x0F
    code = (segment << 4) | mantissa
    mask = np.where(negative, 0x7F, 0xFF)
    encoded: npt.NDArray[np.uint8] = (code ^ mask).astype(np.uint8)
    return encoded


def _build_ulaw_decode() -> npt.NDArray[np.int16]:
    inverted = _ALL_CODES ^ 0xFF
    segment = (inverted >> 4) & 0x07
    magnitude = ((((inverted & 0x0F) << 3) + 0x84) << segment) - 0x84
    return np.where(inverted & 0x80, -magnitude, magnitude).astype(np.int16)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    x = _ALL_INT16 >> 3
    negative = x < 0
    magnitude = np.where(negative, -x - 1, x)  # one's complement, as G.711 codes it
    segment = np.maximum(_bit_length(magnitude) - 5, 0)
    # Segments 0 and 1 share a step size of 2 (in 13-bit units), hence max(seg, 1).
    mantissa = (magnitude >> np.maximum(segment, 1)) & 0x0F
    code = (segment << 4) | mantissa
    mask = np.where(negative, 0x55, 0xD5)
    return (code ^ mask).astype(np.uint8)


def _build_alaw_decode() -> npt.NDArray[np.int16]:
    toggled = _ALL_CODES ^ 0x55
    segment = (toggled >> 4) & 0x07
    step = ((toggled & 0x0F) << 4) + np.where(segment == 0, 8, 0x108)
    magnitude = np.where(segment > 1, step << np.maximum(segment - 1, 0), step)
    return np.where(toggled & 0x80, magnitude, -magnitude).astype(np.int16)


_ULAW_ENCODE = _build_ulaw_encode()
_ULAW_DECODE = _build_ulaw_decode()
_ALAW_ENCODE = _build_alaw_encode()
_ALAW_DECODE = _build_alaw_decode()
for _table in (_ULAW_ENCODE, _ULAW_DECODE, _ALAW_ENCODE, _ALAW_DECODE):
    _table.setflags(write=False)

# Transcoding goes through linear once, here, rather than per packet: decode by
# one law and re-encode by the other, the nearest step either way.
_ULAW_TO_ALAW = _ALAW_ENCODE[_ULAW_DECODE.view(np.uint16)].tobytes()
_ALAW_TO_ULAW = _ULAW_ENCODE[_ALAW_DECODE.view(np.uint16)].tobytes()


class Codec(ABC):
    """An audio codec for RTP: its SDP name, static payload type and clock rate.

    ``encode`` takes linear 16-bit PCM at ``clock_rate`` and returns the RTP
    payload; ``decode`` does the reverse. Codecs are stateless, so one instance
    serves every call.
    """

    name: ClassVar[str]
    payload_type: ClassVar[int]
    clock_rate: ClassVar[int] = 8000

    @abstractmethod
    def encode(self, pcm: npt.NDArray[np.int16]) -> bytes:
        """Encode int16 samples into an RTP payload."""

    @abstractmethod
    def decode(self, data: bytes) -> npt.NDArray[np.int16]:
        """Decode an RTP payload into int16 samples (a new, writable array)."""

    def silence(self, samples: int) -> bytes:
        """A payload of ``samples`` samples of digital silence."""
        return self.encode(np.zeros(samples, dtype=np.int16))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}/{self.clock_rate} pt={self.payload_type}>"


class _TableCodec(Codec):
    """A sample-by-sample codec driven by an encode and a decode table."""

    _encode_table: ClassVar[npt.NDArray[np.uint8]]
    _decode_table: ClassVar[npt.NDArray[np.int16]]

    def encode(self, pcm: npt.NDArray[np.int16]) -> bytes:
        # A float or int32 array would be silently wrapped by a cast; refuse it.
        if pcm.dtype != np.int16:
            raise TypeError(f"{self.name} encodes int16 samples, not {pcm.dtype}")
        return self._encode_table[pcm.view(np.uint16)].tobytes()

    def decode(self, data: bytes) -> npt.NDArray[np.int16]:
        return self._decode_table[np.frombuffer(data, dtype=np.uint8)]


class PcmuCodec(_TableCodec):
    """G.711 mu-law, static payload type 0 (RFC 3551)."""

    name = "PCMU"
    payload_type = 0
    _encode_table = _ULAW_ENCODE
    _decode_table = _ULAW_DECODE


class PcmaCodec(_TableCodec):
    """G.711 A-law, static payload type 8 (RFC 3551)."""

    name = "PCMA"
    payload_type = 8
    _encode_table = _ALAW_ENCODE
    _decode_table = _ALAW_DECODE


PCMU = PcmuCodec()
PCMA = PcmaCodec()

_by_name: dict[str, Codec] = {}
_by_payload_type: dict[int, Codec] = {}


def register_codec(codec: Codec) -> None:
    """Make ``codec`` reachable through :func:`codec_for` by name and payload type.

    Only static payload types (0-95) are registered by number: a dynamic one
    means whatever each call's SDP says, so it cannot name a codec globally.
    """
    _by_name[codec.name.upper()] = codec
    if codec.payload_type < 96:
        _by_payload_type[codec.payload_type] = codec


def codec_for(name_or_pt: str | int) -> Codec:
    """The codec for an SDP encoding name or a static RTP payload type.

    Names are case-insensitive and may carry the clock rate as in an
    ``a=rtpmap`` line (``"pcma/8000"``). Raises :class:`KeyError` for a codec
    that is not registered or a clock rate it does not run at.
    """
    if isinstance(name_or_pt, int):
        try:
            return _by_payload_type[name_or_pt]
        except KeyError:
            raise KeyError(f"no codec for static payload type {name_or_pt}") from None
    name, _, rate = name_or_pt.strip().partition("/")
    codec = _by_name.get(name.upper())
    if codec is None:
        raise KeyError(f"no codec named {name!r}")
    if rate and rate.split("/")[0] != str(codec.clock_rate):
        raise KeyError(f"{codec.name} runs at {codec.clock_rate} Hz, not {rate}")
    return codec


def transcode_table(source: Codec, target: Codec) -> bytes | None:
    """A :meth:`bytes.translate` table from ``source`` payloads to ``target`` ones.

    ``None`` when the two are the same codec (relay the payload untouched).
    Raises :class:`ValueError` for a pair that is not sample-for-sample.
    """
    if source.name == target.name:
        return None
    pair = (source.name, target.name)
    if pair == ("PCMU", "PCMA"):
        return _ULAW_TO_ALAW
    if pair == ("PCMA", "PCMU"):
        return _ALAW_TO_ULAW
    raise ValueError(f"no byte table from {source.name} to {target.name}")


register_codec(PCMU)
register_codec(PCMA)
