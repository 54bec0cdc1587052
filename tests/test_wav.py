"""WAV reading in every common format, resampling to 8 kHz, and the conversion cache.

Files are generated here, byte by byte, so each format is exactly what the
test says; the resampler is checked by the spectrum of its output: a 1 kHz
tone stays at 1 kHz, and a 6 kHz tone (above 8 kHz's Nyquist) is filtered
out instead of folding back to 2 kHz.
"""

from __future__ import annotations

import os
import struct
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media.g711 import PCMA, PCMU
from media.wav import WavCache, load_wav, read_wav, resample, write_wav


def tone(freq: float, rate: int, seconds: float = 1.0, amp: float = 0.5) -> npt.NDArray[np.float64]:
    t = np.arange(int(rate * seconds)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def riff(
    tag: int, channels: int, rate: int, bits: int, body: bytes, extensible: bool = False
) -> bytes:
    block = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block, block, bits)
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + guid_tail
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"LIST" + struct.pack("<I", 3) + b"abc\0"  # odd-sized chunk, padded
    chunks += b"data" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def peak_hz(pcm: npt.NDArray[np.int16], rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.argmax(spectrum) * rate / len(pcm))


def rms(pcm: npt.NDArray[np.int16]) -> float:
    middle = pcm[len(pcm) // 10 : -len(pcm) // 10].astype(np.float64)
    return float(np.sqrt(np.mean(middle**2)))


def test_16_bit_44k1_stereo_through_the_stdlib_writer(tmp_path: Path) -> None:
    left, right = tone(1000, 44100), tone(1000, 44100, amp=0.3)
    frames = (np.stack([left, right], axis=1) * 32767).astype("<i2")
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44100)
        out.writeframes(frames.tobytes())
    data = read_wav(path)
    assert (data.rate, data.channels) == (44100, 2)
    assert data.duration == pytest.approx(1.0)
    pcm = load_wav(path)
    assert pcm.dtype == np.int16 and len(pcm) == 8000
    assert peak_hz(pcm) == pytest.approx(1000, abs=2)
    # Downmixed by averaging: amplitude (0.5 + 0.3) / 2.
    assert rms(pcm) == pytest.approx(0.4 * 32768 / np.sqrt(2), rel=0.02)


@pytest.mark.parametrize(
    ("name", "tag", "bits", "rate", "encode"),
    [
        ("8-bit unsigned", 1, 8, 11025, lambda x: (x * 127 + 128).astype(np.uint8).tobytes()),
        ("16-bit", 1, 16, 16000, lambda x: (x * 32767).astype("<i2").tobytes()),
        (
            "24-bit",
            1,
            24,
            22050,
            lambda x: b"".join(int(v).to_bytes(3, "little", signed=True) for v in x * 8388607),
        ),
        ("32-bit int", 1, 32, 32000, lambda x: (x * 2147483647).astype("<i4").tobytes()),
        ("32-bit float", 3, 32, 48000, lambda x: x.astype("<f4").tobytes()),
        ("64-bit float", 3, 64, 24000, lambda x: x.astype("<f8").tobytes()),
        ("mu-law", 7, 8, 8000, lambda x: PCMU.encode((x * 32767).astype(np.int16))),
        ("A-law", 6, 8, 8000, lambda x: PCMA.encode((x * 32767).astype(np.int16))),
    ],
)
def test_every_format_reads_as_the_same_tone(
    tmp_path: Path, name: str, tag: int, bits: int, rate: int, encode: object
) -> None:
    signal = tone(1000, rate, 0.5)
    path = tmp_path / "tone.wav"
    path.write_bytes(riff(tag, 1, rate, bits, encode(signal)))  # type: ignore[operator]
    data = read_wav(path)
    assert data.rate == rate and data.channels == 1
    assert np.max(np.abs(data.samples[:, 0] - signal)) < (0.03 if bits == 8 else 1e-3), name
    pcm = load_wav(path)
    assert len(pcm) == 4000
    assert peak_hz(pcm) == pytest.approx(1000, abs=2)
    assert rms(pcm) == pytest.approx(0.5 * 32768 / np.sqrt(2), rel=0.03)


def test_wave_format_extensible_float_multichannel(tmp_path: Path) -> None:
    signal = tone(440, 48000, 0.5)
    frames = np.stack([signal, signal, signal, signal], axis=1).astype("<f4")
    path = tmp_path / "quad.wav"
    path.write_bytes(riff(3, 4, 48000, 32, frames.tobytes(), extensible=True))
    pcm = load_wav(path)
    assert len(pcm) == 4000
    assert peak_hz(pcm) == pytest.approx(440, abs=2)


def test_an_8k_mono_16_bit_file_comes_back_sample_for_sample(tmp_path: Path) -> None:
    pcm = (tone(1000, 8000) * 32767).astype(np.int16)
    write_wav(tmp_path / "x.wav", pcm)
    assert np.array_equal(load_wav(tmp_path / "x.wav"), pcm)
    with wave.open(str(tmp_path / "x.wav")) as check:  # what we write, others read
        assert (check.getframerate(), check.getnchannels(), check.getsampwidth()) == (8000, 1, 2)


@pytest.mark.parametrize("rate", [16000, 22050, 44100, 48000])
def test_resampling_keeps_1k_and_removes_6k(rate: int) -> None:
    kept = resample(tone(1000, rate), rate)
    assert len(kept) == 8000
    kept16 = (kept * 32767).astype(np.int16)
    assert peak_hz(kept16) == pytest.approx(1000, abs=2)
    assert rms(kept16) == pytest.approx(0.5 * 32767 / np.sqrt(2), rel=0.01)
    # 6 kHz would alias to 2 kHz at 8 kHz; it must be at least 60 dB down.
    aliased = resample(tone(6000, rate), rate)
    assert np.sqrt(np.mean(aliased[800:-800] ** 2)) < 0.5 / np.sqrt(2) * 1e-3


def test_resampling_a_sweep_never_folds_back() -> None:
    rate = 48000
    for freq in (4200, 5000, 7000, 11000, 20000):
        out = resample(tone(freq, rate), rate)
        assert np.max(np.abs(out[800:-800])) < 1e-3, freq


def test_resampling_has_no_wraparound_at_the_edges() -> None:
    rate = 44100
    loud_end = np.concatenate([np.zeros(rate), tone(1000, rate, 0.1)])
    out = resample(loud_end, rate)
    # The start of the output is silence, not the end's tone leaking round.
    assert np.max(np.abs(out[: 8000 - 400])) < 1e-3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a WAV file"),
        (b"garbage" * 20, "not a WAV file"),
        (b"RIFF\x24\x00\x00\x00WAVE", "no 'fmt' chunk"),
        (
            b"RIFF\x24\x00\x00\x00WAVEfmt \x04\x00\x00\x00abcddata\x00\x00\x00\x00",
            "'fmt' chunk is 4 bytes",
        ),
    ],
)
def test_garbage_is_a_clear_error_naming_the_file(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        read_wav(path)
    assert str(path) in str(info.value)


def test_a_truncated_file_is_a_clear_error(tmp_path: Path) -> None:
    whole = riff(1, 1, 8000, 16, (tone(1000, 8000) * 32767).astype("<i2").tobytes())
    path = tmp_path / "cut.wav"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="truncated"):
        read_wav(path)


@pytest.mark.parametrize(
    ("tag", "bits", "message"),
    [(2, 4, "4 bits"), (0x55, 16, "unsupported WAV format 0x0055"), (1, 12, "12 bits")],
)
def test_unsupported_formats_say_which(tmp_path: Path, tag: int, bits: int, message: str) -> None:
    path = tmp_path / "odd.wav"
    path.write_bytes(riff(tag, 1, 8000, bits, b"\0" * 64))
    with pytest.raises(ValueError, match=message):
        read_wav(path)


def test_the_cache_converts_once_and_encodes_once_per_codec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.wav"
    write_wav(path, (tone(1000, 8000, 0.05) * 32767).astype(np.int16))  # 400 samples
    loads: list[str] = []
    import media.wav as wav_module

    real = wav_module.load_wav
    monkeypatch.setattr(wav_module, "load_wav", lambda p: loads.append(str(p)) or real(p))
    now = [0.0]
    cache = WavCache(clock=lambda: now[0])
    ulaw = cache.payload(path, PCMU)
    assert cache.payload(path, PCMU) is ulaw
    alaw = cache.payload(path, PCMA)
    assert len(loads) == 1
    # 400 samples padded with codec silence to 3 frames of 160.
    assert len(ulaw) == len(alaw) == 480
    assert ulaw[400:] == PCMU.silence(80) and alaw[400:] == PCMA.silence(80)
    assert not cache.pcm(path).flags.writeable
    # A file rewritten on disk (new size, new mtime) is converted again, once
    # the cache looks (at most every second: not for every call of a busy engine).
    write_wav(path, np.zeros(1000, np.int16))
    os.utime(path, ns=(1, 1))
    now[0] = 0.9
    assert cache.payload(path, PCMU) is ulaw
    now[0] = 1.0
    assert len(cache.payload(path, PCMU)) == 1120
    assert len(loads) == 2


def test_the_cache_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.wav"):
        WavCache().payload(tmp_path / "nope.wav", PCMU)
