"""WAV files in, 8 kHz mono int16 out: reading, resampling, writing and a cache.

Prompts and music on hold arrive as whatever the recording studio or a TTS
engine produced: 16-bit 44.1 kHz stereo, 24-bit, 32-bit float at 48 kHz,
G.711 already. The stdlib :mod:`wave` reads only integer PCM, so the RIFF
chunks are parsed here and the samples decoded with numpy.

Resampling is done in the frequency domain: the whole file's spectrum is cut
to the 8 kHz rate's band and transformed back at the new length. Cutting the
spectrum *is* the anti-aliasing filter, as sharp as a filter can be; a
raised-cosine roll-off from 3.5 to 3.95 kHz keeps it from ringing. Telephony
carries 300-3400 Hz, so nothing audible is lost. It costs one FFT pair per
file, once, because :class:`WavCache` keeps the result.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .g711 import PCMA, PCMU, Codec

__all__ = [
    "RATE",
    "WavCache",
    "WavData",
    "load_wav",
    "read_wav",
    "resample",
    "write_wav",
]

RATE = 8000
"""The sample rate every prompt is converted to: G.711's."""

_PCM = 0x0001
_FLOAT = 0x0003
_ALAW = 0x0006
_MULAW = 0x0007
_EXTENSIBLE = 0xFFFE
_FMT = struct.Struct("<HHIIHH")
_CHUNK = struct.Struct("<4sI")
_PASS_EDGE = 3500.0
_STOP_EDGE = 3950.0
_PAD_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class WavData:
    """A decoded WAV file: float samples in [-1, 1), shaped (frames, channels), and the rate."""

    samples: npt.NDArray[np.float64]
    rate: int

    @property
    def channels(self) -> int:
        """How many channels the file has."""
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return float(self.samples.shape[0] / self.rate)


def _chunks(data: bytes, name: str) -> dict[bytes, memoryview]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{name}: not a WAV file (no RIFF/WAVE header)")
    view = memoryview(data)
    chunks: dict[bytes, memoryview] = {}
    offset = 12
    while offset + _CHUNK.size <= len(data):
        chunk_id, size = _CHUNK.unpack_from(data, offset)
        body = offset + _CHUNK.size
        if body + size > len(data):
            raise ValueError(
                f"{name}: truncated: chunk {chunk_id!r} declares {size} bytes,"
                f" {len(data) - body} remain"
            )
        chunks.setdefault(chunk_id, view[body : body + size])
        offset = body + size + (size & 1)  # chunks are padded to an even length
    for required in (b"fmt ", b"data"):
        if required not in chunks:
            raise ValueError(f"{name}: no {required.decode().strip()!r} chunk")
    return chunks


def _decode(
    body: memoryview, tag: int, bits: int, channels: int, name: str
) -> npt.NDArray[np.float64]:
    width = bits // 8
    frame = width * channels
    usable = len(body) - len(body) % frame
    raw = body[:usable]
    samples: npt.NDArray[np.float64]
    if tag == _PCM and bits == 8:
        samples = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128) / 128
    elif tag == _PCM and bits == 16:
        samples = np.frombuffer(raw, "<i2") / 32768.0
    elif tag == _PCM and bits == 24:
        triples = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        widened = np.zeros((len(triples), 4), np.uint8)
        widened[:, 1:] = triples  # little-endian: the sample lands in the top 3 bytes
        samples = widened.view("<i4").ravel() / 2147483648.0
    elif tag == _PCM and bits == 32:
        samples = np.frombuffer(raw, "<i4") / 2147483648.0
    elif tag == _FLOAT and bits in (32, 64):
        samples = np.frombuffer(raw, "<f4" if bits == 32 else "<f8").astype(np.float64)
    elif tag in (_ALAW, _MULAW) and bits == 8:
        codec = PCMA if tag == _ALAW else PCMU
        samples = codec.decode(bytes(raw)) / 32768.0
    else:
        raise ValueError(f"{name}: unsupported WAV format {tag:#06x} with {bits} bits per sample")
    return samples.reshape(-1, channels)


def read_wav(path: str | os.PathLike[str]) -> WavData:
    """Decode a WAV file of any common format; :class:`ValueError` naming the file if bad."""
    name = os.fspath(path)
    data = Path(path).read_bytes()
    chunks = _chunks(data, name)
    fmt = chunks[b"fmt "]
    if len(fmt) < _FMT.size:
        raise ValueError(f"{name}: 'fmt' chunk is {len(fmt)} bytes, needs {_FMT.size}")
    tag, channels, rate, _byte_rate, _block_align, bits = _FMT.unpack_from(fmt)
    if tag == _EXTENSIBLE:
        if len(fmt) < 26:
            raise ValueError(f"{name}: WAVE_FORMAT_EXTENSIBLE without its sub-format")
        (tag,) = struct.unpack_from("<H", fmt, 24)  # first two bytes of the GUID
    if channels < 1:
        raise ValueError(f"{name}: {channels} channels")
    if not 1000 <= rate <= 384000:
        raise ValueError(f"{name}: sample rate {rate} Hz is not plausible")
    if bits % 8 or not 8 <= bits <= 64:
        raise ValueError(f"{name}: {bits} bits per sample")
    samples = _decode(chunks[b"data"], tag, bits, channels, name)
    return WavData(samples, rate)


def _taper(frequencies: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """1 in the pass band, a raised cosine down to 0 at the stop edge."""
    ramp = np.clip((frequencies - _PASS_EDGE) / (_STOP_EDGE - _PASS_EDGE), 0.0, 1.0)
    gain: npt.NDArray[np.float64] = 0.5 * (1 + np.cos(np.pi * ramp))
    return gain


def resample(
    samples: npt.NDArray[np.float64], rate: int, target: int = RATE
) -> npt.NDArray[np.float64]:
    """Resample mono ``samples`` from ``rate`` to ``target`` Hz, band-limited below 3.95 kHz.

    Zeros are appended before the transform so that the end of the file does
    not wrap round into its start (the FFT sees a circle), and cut off after.
    """
    if rate == target or len(samples) == 0:
        return samples
    pad = int(rate * _PAD_SECONDS)
    padded = np.concatenate([samples, np.zeros(pad)])
    count = len(padded)
    out_count = max(1, round(count * target / rate))
    spectrum = np.fft.rfft(padded)
    bins = out_count // 2 + 1
    kept = min(bins, len(spectrum))
    resized = np.zeros(bins, dtype=np.complex128)
    frequencies = np.arange(kept, dtype=np.float64) * (rate / count)
    resized[:kept] = spectrum[:kept] * _taper(frequencies)
    out = np.fft.irfft(resized, n=out_count) * (out_count / count)
    return out[: round(len(samples) * target / rate)]


def _to_int16(samples: npt.NDArray[np.float64]) -> npt.NDArray[np.int16]:
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)


def load_wav(path: str | os.PathLike[str]) -> npt.NDArray[np.int16]:
    """A WAV file as 8 kHz mono int16, downmixed by averaging its channels."""
    wav = read_wav(path)
    mono = wav.samples.mean(axis=1) if wav.channels > 1 else wav.samples[:, 0]
    return _to_int16(resample(mono, wav.rate))


def write_wav(path: str | os.PathLike[str], pcm: npt.NDArray[np.int16], rate: int = RATE) -> None:
    """Write mono int16 ``pcm`` as a 16-bit PCM WAV file, atomically (temp file, rename)."""
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise TypeError(f"write_wav takes mono int16 samples, not {pcm.dtype} {pcm.shape}")
    body = pcm.astype("<i2").tobytes()
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + len(body))
        + b"WAVE"
        + _CHUNK.pack(b"fmt ", _FMT.size)
        + _FMT.pack(_PCM, 1, rate, rate * 2, 2, 16)
        + _CHUNK.pack(b"data", len(body))
    )
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_bytes(header + body + (b"\0" if len(body) & 1 else b""))
    temporary.replace(target)


@dataclass(slots=True)
class _Entry:
    key: tuple[int, int]
    pcm: npt.NDArray[np.int16]
    payloads: dict[str, bytes]
    checked_at: float = 0.0


class WavCache:
    """WAV files converted once to 8 kHz and encoded once per codec.

    Entries are keyed by path and checked against the file's modification
    time and size (one ``stat``) at most every ``recheck`` seconds, so a
    prompt re-recorded on disk is picked up within a second, and a busy
    engine does not ask the file system about its hold music for every call.
    """

    def __init__(
        self, *, recheck: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: dict[str, _Entry] = {}
        self._recheck = recheck
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, path: str | os.PathLike[str]) -> _Entry:
        name = os.path.abspath(path)
        entry = self._entries.get(name)
        now = self._clock()
        if entry is not None and now - entry.checked_at < self._recheck:
            return entry
        try:
            status = os.stat(name)
        except OSError as exc:
            raise FileNotFoundError(f"{name}: {exc.strerror}") from exc
        key = (status.st_mtime_ns, status.st_size)
        if entry is None or entry.key != key:
            pcm = load_wav(name)
            pcm.setflags(write=False)  # shared by every call that plays it
            entry = self._entries[name] = _Entry(key, pcm, {})
        entry.checked_at = now
        return entry

    def pcm(self, path: str | os.PathLike[str]) -> npt.NDArray[np.int16]:
        """The file as 8 kHz mono int16 (read-only: it is shared)."""
        return self._entry(path).pcm

    def payload(self, path: str | os.PathLike[str], codec: Codec, frame: int = 160) -> bytes:
        """The file encoded with ``codec``, padded with codec silence to whole frames."""
        entry = self._entry(path)
        payload = entry.payloads.get(codec.name)
        if payload is None:
            payload = codec.encode(entry.pcm)
            short = -len(entry.pcm) % frame
            if short:
                payload += codec.silence(short)
            entry.payloads[codec.name] = payload
        return payload

    def clear(self) -> None:
        """Forget every file."""
        self._entries.clear()
