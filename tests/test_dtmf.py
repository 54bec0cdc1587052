"""DTMF from RFC 4733 packets, SIP INFO bodies and in-band tones.

The RFC 4733 receiver is proved on SIPp's own captures (one key press each,
with the end packet sent three times); the Goertzel detector on generated
tones at the ITU-T Q.24 limits, passed through G.711 as a caller's audio is,
and on white noise, a harmonic signal with a gliding pitch and synthetic
speech, none of which may produce a digit.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import wave
from collections.abc import Iterable
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pytest

from media.dtmf import (
    DtmfReceived,
    GoertzelDetector,
    Rfc4733Receiver,
    Rfc4733Sender,
    TelephoneEvent,
    parse_info_body,
)
from media.g711 import PCMA, PCMU, Codec
from media.pcap import UdpDatagram, read_udp

KEYS = "123A456B789C*0#D"
SIPP_CAPTURES = sorted(Path("/usr/share/sip-tester").glob("dtmf_2833_*.pcap"))
NAMED_KEYS = {"star": "*", "pound": "#"}

# --------------------------------------------------------------------------
# RTP from captures


def rtp_header(data: bytes) -> tuple[int, bool, int, bytes]:
    """Payload type, marker, timestamp and payload of an RTP packet (RFC 3550 5.1)."""
    first, second, _sequence, timestamp, _ssrc = struct.unpack_from("!BBHII", data)
    assert first >> 6 == 2, "not RTP version 2"
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    end = len(data) - (data[-1] if first & 0x20 else 0)
    return second & 0x7F, bool(second & 0x80), timestamp, data[offset:end]


def replay(receiver: Rfc4733Receiver, datagrams: Iterable[UdpDatagram]) -> list[DtmfReceived]:
    events: list[DtmfReceived] = []
    now = 0.0
    for datagram in datagrams:
        payload_type, marker, timestamp, payload = rtp_header(datagram.payload)
        now = datagram.timestamp
        events += receiver.poll(now)
        if payload_type == receiver.payload_type:
            events += receiver.receive(timestamp, marker, payload, now)
    return events + receiver.poll(now + 10)


def test_the_sipp_captures_are_installed() -> None:
    if not SIPP_CAPTURES:
        pytest.skip("SIPp's captures are not installed (apt-get install sip-tester)")
    assert len(SIPP_CAPTURES) == 12


@pytest.mark.parametrize("capture", SIPP_CAPTURES, ids=lambda path: path.stem)
def test_each_sipp_capture_yields_exactly_its_digit(capture: Path) -> None:
    name = capture.stem.removeprefix("dtmf_2833_")
    digit = NAMED_KEYS.get(name, name)
    datagrams = list(read_udp(capture))
    assert len(datagrams) == 10  # start, six updates, the end packet three times
    events = replay(Rfc4733Receiver(101), datagrams)
    assert events == [DtmfReceived(digit, 280, "rfc4733")]


@pytest.mark.parametrize("capture", SIPP_CAPTURES[:1], ids=lambda path: path.stem)
def test_a_capture_with_its_start_packet_lost_still_yields_the_digit(capture: Path) -> None:
    datagrams = list(read_udp(capture))
    assert rtp_header(datagrams[0].payload)[1], "the first packet carries the marker"
    assert replay(Rfc4733Receiver(101), datagrams[1:]) == [DtmfReceived("0", 280, "rfc4733")]


@pytest.mark.parametrize("capture", SIPP_CAPTURES[:1], ids=lambda path: path.stem)
def test_a_capture_with_every_end_packet_lost_yields_the_digit_on_timeout(capture: Path) -> None:
    datagrams = list(read_udp(capture))[:-3]
    receiver = Rfc4733Receiver(101, end_timeout=0.3)
    events: list[DtmfReceived] = []
    for datagram in datagrams:
        _, marker, timestamp, payload = rtp_header(datagram.payload)
        events += receiver.receive(timestamp, marker, payload, datagram.timestamp)
    last = datagrams[-1].timestamp
    assert events == []
    assert receiver.next_deadline() == pytest.approx(last + 0.3)
    assert receiver.poll(last + 0.29) == []
    assert receiver.poll(last + 0.3) == [DtmfReceived("0", 240, "rfc4733")]
    assert receiver.next_deadline() is None
    assert receiver.poll(last + 5) == []


@pytest.mark.parametrize("capture", SIPP_CAPTURES[:1], ids=lambda path: path.stem)
def test_a_capture_sent_twice_over_is_still_one_key_press(capture: Path) -> None:
    datagrams = list(read_udp(capture))
    doubled = [d for pair in zip(datagrams, datagrams, strict=True) for d in pair]
    assert replay(Rfc4733Receiver(101), doubled + datagrams) == [DtmfReceived("0", 280, "rfc4733")]


# --------------------------------------------------------------------------
# RFC 4733 receiver on hand-made packets


def block(event: int, duration: int, end: bool = False) -> bytes:
    return TelephoneEvent(event, end, 10, duration).serialize()


def test_telephone_event_round_trips_byte_for_byte() -> None:
    wire = bytes.fromhex("058a08c0")
    event = TelephoneEvent.parse(wire)
    assert event == TelephoneEvent(5, True, 10, 2240)
    assert event.digit == "5"
    assert event.serialize() == wire
    assert TelephoneEvent.parse(bytes.fromhex("0b3f0000")).digit == "#"
    assert TelephoneEvent.parse(bytes.fromhex("10000000")).digit is None  # flash
    with pytest.raises(ValueError, match="4"):
        TelephoneEvent.parse(b"\x05\x0a")


def test_repeated_end_packets_emit_once() -> None:
    receiver = Rfc4733Receiver(101)
    assert receiver.receive(1000, True, block(7, 0), 0.0) == []
    assert receiver.receive(1000, False, block(7, 400), 0.05) == []
    assert receiver.receive(1000, False, block(7, 800, end=True), 0.1) == [
        DtmfReceived("7", 100, "rfc4733")
    ]
    for repeat in range(3):
        assert receiver.receive(1000, False, block(7, 800, end=True), 0.1 + repeat / 100) == []
    assert receiver.poll(10.0) == []


def test_an_event_seen_only_by_its_end_packet_is_reported() -> None:
    receiver = Rfc4733Receiver(101)
    assert receiver.receive(5000, False, block(11, 1280, end=True), 0.0) == [
        DtmfReceived("#", 160, "rfc4733")
    ]


def test_the_same_key_twice_is_two_events() -> None:
    receiver = Rfc4733Receiver(101)
    first = receiver.receive(1000, True, block(1, 800, end=True), 0.0)
    second = receiver.receive(3000, True, block(1, 800, end=True), 0.3)
    assert first == second == [DtmfReceived("1", 100, "rfc4733")]


def test_an_event_whose_end_was_lost_is_reported_when_the_next_starts() -> None:
    receiver = Rfc4733Receiver(101)
    receiver.receive(1000, True, block(4, 0), 0.0)
    receiver.receive(1000, False, block(4, 640), 0.08)
    assert receiver.receive(4000, True, block(9, 0), 0.4) == [DtmfReceived("4", 80, "rfc4733")]
    assert receiver.receive(4000, False, block(9, 800, end=True), 0.5) == [
        DtmfReceived("9", 100, "rfc4733")
    ]


def test_a_late_packet_of_an_earlier_event_is_ignored() -> None:
    receiver = Rfc4733Receiver(101)
    receiver.receive(1000, True, block(2, 800, end=True), 0.0)
    receiver.receive(2000, True, block(3, 0), 0.2)
    assert receiver.receive(1000, False, block(2, 400), 0.21) == []  # reported already
    assert receiver.receive(900, False, block(2, 400), 0.22) == []  # older still
    assert receiver.receive(2000, False, block(3, 800, end=True), 0.3) == [
        DtmfReceived("3", 100, "rfc4733")
    ]


def test_events_across_the_timestamp_wrap() -> None:
    receiver = Rfc4733Receiver(101)
    assert receiver.receive(0xFFFFFF00, True, block(5, 800, end=True), 0.0)
    assert receiver.receive(0x00000100, True, block(6, 800, end=True), 0.2) == [
        DtmfReceived("6", 100, "rfc4733")
    ]


def test_a_long_event_continued_under_a_new_timestamp_stays_one_event() -> None:
    # RFC 4733 2.5.2.3: past 0xFFFF ticks the sender starts a new segment at
    # timestamp + 0xFFFF, without the marker.
    receiver = Rfc4733Receiver(101)
    assert receiver.receive(10_000, True, block(0, 0), 0.0) == []
    assert receiver.receive(10_000, False, block(0, 0xFFFF), 8.19) == []
    assert receiver.receive(10_000 + 0xFFFF, False, block(0, 800), 8.29) == []
    assert receiver.receive(10_000 + 0xFFFF, False, block(0, 1600, end=True), 8.39) == [
        DtmfReceived("0", (0xFFFF + 1600) * 1000 // 8000, "rfc4733")
    ]


def test_malformed_and_non_dtmf_payloads_are_ignored() -> None:
    receiver = Rfc4733Receiver(101)
    assert receiver.receive(1000, True, b"\x05", 0.0) == []
    assert receiver.malformed == 1
    assert receiver.receive(2000, True, block(16, 800, end=True), 0.1) == []  # hook flash
    assert receiver.next_deadline() is None


def test_a_16khz_clock_scales_durations() -> None:
    receiver = Rfc4733Receiver(101, clock_rate=16000)
    assert receiver.receive(0, True, block(8, 1600, end=True), 0.0) == [
        DtmfReceived("8", 100, "rfc4733")
    ]


# --------------------------------------------------------------------------
# RFC 4733 sender


def test_sender_packets_for_a_key_press() -> None:
    sender = Rfc4733Sender(payload_type=101)
    packets = sender.packets("5", timestamp=123_456, duration_ms=120)
    assert [p.offset_ms for p in packets] == [0, 50, 100, 120, 140, 160]
    assert [p.marker for p in packets] == [True] + [False] * 5
    assert {p.timestamp for p in packets} == {123_456}
    blocks = [TelephoneEvent.parse(p.payload) for p in packets]
    assert [b.duration for b in blocks] == [0, 400, 800, 960, 960, 960]
    assert [b.end for b in blocks] == [False, False, False, True, True, True]
    assert {(b.event, b.volume) for b in blocks} == {(5, 10)}
    assert len(set(p.payload for p in packets[-3:])) == 1


@pytest.mark.parametrize("digit", list(KEYS))
def test_sender_to_receiver_round_trip(digit: str) -> None:
    sender, receiver = Rfc4733Sender(), Rfc4733Receiver(101)
    events = []
    for packet in sender.packets(digit, timestamp=4_000_000_000, duration_ms=160):
        events += receiver.receive(
            packet.timestamp, packet.marker, packet.payload, packet.offset_ms / 1000
        )
    assert events == [DtmfReceived(digit, 160, "rfc4733")]


def test_round_trip_with_the_start_and_two_end_packets_lost() -> None:
    packets = Rfc4733Sender().packets("*", timestamp=0, duration_ms=200)
    survivors = packets[1:-3] + packets[-1:]
    receiver = Rfc4733Receiver(101)
    events = []
    for packet in survivors:
        events += receiver.receive(
            packet.timestamp, packet.marker, packet.payload, packet.offset_ms / 1000
        )
    assert events == [DtmfReceived("*", 200, "rfc4733")]


@pytest.mark.parametrize(("digit", "duration"), [("E", 100), ("12", 100), ("1", 0), ("1", 9000)])
def test_sender_refuses_what_it_cannot_send(digit: str, duration: int) -> None:
    with pytest.raises(ValueError):
        Rfc4733Sender().packets(digit, timestamp=0, duration_ms=duration)


# --------------------------------------------------------------------------
# SIP INFO


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", ("5", 160)),
        ("Application/DTMF-Relay; charset=us-ascii", b"signal= #\nduration= 250", ("#", 250)),
        ("application/dtmf-relay", "Signal=*\r\n", ("*", 100)),
        ("application/dtmf-relay", "Signal=10\r\nDuration=80", ("*", 80)),
        ("application/dtmf-relay", "Signal=11\r\nDuration=80", ("#", 80)),
        ("application/dtmf-relay", "Signal=d\r\nDuration=80", ("D", 80)),
        ("application/dtmf", "5", ("5", 100)),
        ("application/dtmf", b"#\r\n", ("#", 100)),
    ],
)
def test_info_bodies(content_type: str, body: str | bytes, expected: tuple[str, int]) -> None:
    assert parse_info_body(content_type, body) == DtmfReceived(*expected, "info")


def test_info_bodies_of_other_types_are_not_dtmf() -> None:
    assert parse_info_body("application/sdp", "v=0\r\n") is None
    assert parse_info_body("application/media_control+xml", "<x/>") is None


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/dtmf-relay", "Duration=160"),
        ("application/dtmf-relay", "Signal=Z\r\nDuration=160"),
        ("application/dtmf-relay", "Signal=5\r\nDuration=long"),
        ("application/dtmf", "55"),
        ("application/dtmf", ""),
        ("application/dtmf", b"\xff"),
    ],
)
def test_unreadable_dtmf_bodies_raise(content_type: str, body: str | bytes) -> None:
    with pytest.raises(ValueError):
        parse_info_body(content_type, body)


def test_the_event_is_a_frozen_slotted_fact() -> None:
    event = DtmfReceived("1", 100, "inband")
    with pytest.raises(FrozenInstanceError):
        event.digit = "2"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


# --------------------------------------------------------------------------
# In-band: signals

RATE = 8000
ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0, 1633.0)
LAYOUT = ("123A", "456B", "789C", "*0#D")


def amplitude(dbm0: float) -> float:
    """Peak of a sine at ``dbm0``: a full-scale sine is +3.14 dBm0 (G.711 A-law)."""
    return 32767.0 * 10 ** ((dbm0 - 3.14) / 20)


def tone(
    key: str,
    ms: float,
    low_dbm0: float = -10.0,
    high_dbm0: float = -10.0,
    low_deviation: float = 0.0,
    high_deviation: float = 0.0,
) -> np.ndarray:
    row = next(index for index, keys in enumerate(LAYOUT) if key in keys)
    col = LAYOUT[row].index(key)
    t = np.arange(round(ms * RATE / 1000)) / RATE
    low = amplitude(low_dbm0) * np.sin(2 * np.pi * ROWS[row] * (1 + low_deviation) * t + 0.4)
    high = amplitude(high_dbm0) * np.sin(2 * np.pi * COLS[col] * (1 + high_deviation) * t + 1.1)
    return low + high


def silence(ms: float) -> np.ndarray:
    return np.zeros(round(ms * RATE / 1000))


def press(signal: np.ndarray, lead_samples: int = 0) -> np.ndarray:
    """A key press with silence either side, starting ``lead_samples`` into a frame."""
    return np.concatenate((silence(100), np.zeros(lead_samples), signal, silence(200)))


def detect(signal: np.ndarray, frame: int = 160, codec: Codec | None = PCMU) -> list[str]:
    return [event.digit for event in detect_events(signal, frame, codec)]


def detect_events(
    signal: np.ndarray, frame: int = 160, codec: Codec | None = PCMU
) -> list[DtmfReceived]:
    """Run a signal through G.711 (as a caller's audio arrives) and the detector."""
    pcm = np.clip(np.round(signal), -32768, 32767).astype(np.int16)
    if codec is not None:
        pcm = codec.decode(codec.encode(pcm))
    detector = GoertzelDetector()
    events = []
    for start in range(0, len(pcm), frame):
        events += detector.feed(pcm[start : start + frame])
    return events + detector.flush()


# --------------------------------------------------------------------------
# In-band: what must be detected


def test_every_key_at_nominal_frequencies() -> None:
    for key in KEYS:
        events = detect_events(press(tone(key, 100)))
        assert [e.digit for e in events] == [key]
        assert events[0].source == "inband"
        assert abs(events[0].duration_ms - 100) <= 3


def test_a_dialled_sequence_with_short_pauses() -> None:
    signal = np.concatenate([np.concatenate((tone(key, 60), silence(60))) for key in KEYS])
    assert "".join(detect(press(signal))) == KEYS


@pytest.mark.parametrize("deviation", [0.015, -0.015])
@pytest.mark.parametrize("which", ["low", "high", "both"])
def test_frequency_deviation_of_1_5_percent_is_accepted(deviation: float, which: str) -> None:
    low = deviation if which in ("low", "both") else 0.0
    high = deviation if which in ("high", "both") else 0.0
    for key in KEYS:
        assert detect(press(tone(key, 60, low_deviation=low, high_deviation=high))) == [key]


@pytest.mark.parametrize("deviation", [0.035, -0.035])
@pytest.mark.parametrize("which", ["low", "high", "both"])
def test_frequency_deviation_of_3_5_percent_is_rejected(deviation: float, which: str) -> None:
    low = deviation if which in ("low", "both") else 0.0
    high = deviation if which in ("high", "both") else 0.0
    for key in KEYS:
        assert detect(press(tone(key, 100, low_deviation=low, high_deviation=high))) == []


@pytest.mark.parametrize(
    ("low_dbm0", "high_dbm0", "accepted"),
    [
        (-14.0, -10.0, True),  # forward twist 4 dB, the limit
        (-16.0, -10.0, False),  # 6 dB
        (-6.0, -14.0, True),  # reverse twist 8 dB, the limit
        (-6.0, -16.0, False),  # 10 dB
    ],
)
def test_twist_limits(low_dbm0: float, high_dbm0: float, accepted: bool) -> None:
    for key in KEYS:
        found = detect(press(tone(key, 80, low_dbm0, high_dbm0)))
        assert found == ([key] if accepted else []), key


@pytest.mark.parametrize("lead", [0, 13, 27, 40, 77])
@pytest.mark.parametrize("dbm0", [-25.0, -10.0, 0.0])
def test_tone_duration_40_and_50_ms_accepted_30_rejected(lead: int, dbm0: float) -> None:
    for ms in (40, 50):
        events = detect_events(press(tone("5", ms, dbm0, dbm0), lead))
        assert [e.digit for e in events] == ["5"], (ms, lead, dbm0)
        assert abs(events[0].duration_ms - ms) <= 3
    for ms in (20, 30):
        assert detect(press(tone("5", ms, dbm0, dbm0), lead)) == [], (ms, lead, dbm0)


@pytest.mark.parametrize("lead", [0, 21, 55])
def test_a_40_ms_pause_separates_presses_and_a_10_ms_drop_out_does_not(lead: int) -> None:
    twice = np.concatenate((tone("0", 60), silence(40), tone("0", 60)))
    assert detect(press(twice, lead)) == ["0", "0"]
    interrupted = np.concatenate((tone("0", 60), silence(10), tone("0", 60)))
    assert detect(press(interrupted, lead)) == ["0"]


def test_signal_level_threshold() -> None:
    for key in KEYS:
        assert detect(press(tone(key, 60, -25.0, -25.0))) == [key]
        assert detect(press(tone(key, 60, -36.0, -36.0))) == []


def test_a_key_in_noise_at_15_db_snr() -> None:
    rng = np.random.default_rng(15)
    for key in KEYS:
        signal = press(tone(key, 80, -12.0, -12.0))
        tone_power = 2 * amplitude(-12.0) ** 2 / 2
        noise = rng.normal(0.0, np.sqrt(tone_power / 10 ** (15 / 10)), len(signal))
        assert detect(signal + noise) == [key]


@pytest.mark.parametrize("frame", [80, 160, 240, 1000, 37])
def test_any_frame_size_and_both_laws(frame: int) -> None:
    signal = press(np.concatenate((tone("9", 70), silence(50), tone("#", 45))), 11)
    assert detect(signal, frame=frame, codec=PCMA) == ["9", "#"]
    assert detect(signal, frame=frame, codec=None) == ["9", "#"]


def test_a_key_held_at_the_end_of_the_stream_is_reported_by_flush() -> None:
    detector = GoertzelDetector()
    pcm = np.round(np.concatenate((silence(40), tone("B", 120)))).astype(np.int16)
    assert detector.feed(pcm) == []
    assert [e.digit for e in detector.flush()] == ["B"]
    assert detector.flush() == []


# --------------------------------------------------------------------------
# In-band: what must not be detected


@pytest.mark.parametrize("dbm0", [-30.0, -15.0, -3.0])
def test_white_noise_gives_no_digits(dbm0: float) -> None:
    noise = np.random.default_rng(7).normal(0.0, amplitude(dbm0) / np.sqrt(2), 5 * RATE)
    assert detect(noise) == []


@pytest.mark.parametrize(("low_f0", "high_f0"), [(85, 180), (110, 260), (160, 420), (220, 520)])
@pytest.mark.parametrize("harmonics", [2, 3, 12])
def test_a_voiced_signal_with_gliding_pitch_gives_no_digits(
    low_f0: float, high_f0: float, harmonics: int
) -> None:
    # Vowel-like: a fundamental and its harmonics falling as 1/k, the pitch
    # gliding slowly enough that harmonics dwell on the DTMF frequencies.
    t = np.arange(6 * RATE) / RATE
    f0 = low_f0 + (high_f0 - low_f0) * (0.5 - 0.5 * np.cos(2 * np.pi * 0.25 * t))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, harmonics + 1))
    syllables = 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    signal = voiced * syllables
    assert detect(signal / np.max(np.abs(signal)) * amplitude(-6.0)) == []


def test_tones_with_strong_second_harmonics_give_no_digit() -> None:
    t = np.arange(round(0.1 * RATE)) / RATE
    fundamentals = amplitude(-10) * (np.sin(2 * np.pi * 697 * t) + np.sin(2 * np.pi * 1209 * t))
    harmonics = amplitude(-22) * (np.sin(2 * np.pi * 1394 * t) + np.sin(2 * np.pi * 2418 * t))
    assert detect(press(fundamentals)) == ["1"]
    assert detect(press(fundamentals + harmonics)) == []


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed")
    phrases = [
        ("en", "hello, you are caller number three"),
        ("en-us", "please hold, your call is important to us"),
        ("en+f3", "press one for sales, two for support, or stay on the line"),
    ]
    rendered = []
    for index, (voice, text) in enumerate(phrases):
        path = tmp_path_factory.mktemp("speech") / f"phrase{index}.wav"
        subprocess.run([espeak, "-v", voice, "-w", str(path), text], check=True, timeout=30)
        rendered.append(resample_to_8k(path))
    return rendered


def resample_to_8k(path: Path) -> np.ndarray:
    """Read a mono 16-bit WAV and resample it to 8 kHz by truncating its spectrum."""
    with wave.open(str(path)) as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    length = len(samples) * RATE // rate
    spectrum = np.fft.rfft(samples.astype(np.float64))[: length // 2 + 1]
    return np.fft.irfft(spectrum, length) * length / len(samples)


@pytest.mark.parametrize("peak_dbfs", [0.0, -10.0, -20.0])
def test_synthetic_speech_gives_no_digits(speech: list[np.ndarray], peak_dbfs: float) -> None:
    for phrase in speech:
        scaled = phrase / np.max(np.abs(phrase)) * 32000 * 10 ** (peak_dbfs / 20)
        assert detect(scaled) == []


def test_a_key_pressed_after_speech_is_still_found(speech: list[np.ndarray]) -> None:
    talk = speech[0] / np.max(np.abs(speech[0])) * 20000
    assert detect(np.concatenate((talk, silence(60), tone("7", 80), silence(100)))) == ["7"]
