"""DTMF from every source a caller's key press can take, as one event.

A key press reaches the engine in one of three ways, and each ends as the same
:class:`DtmfReceived`:

* RFC 4733 telephone-events in RTP (:class:`Rfc4733Receiver`; the sending side
  is :class:`Rfc4733Sender`);
* a SIP INFO body, ``application/dtmf-relay`` or ``application/dtmf``
  (:func:`parse_info_body`);
* tones in the audio itself, found by Goertzel filters
  (:class:`GoertzelDetector`).

Everything here is sans-I/O: packets, bodies and samples go in with the time
they arrived, events come out, and a timeout is a deadline the owner asks for
(:meth:`Rfc4733Receiver.next_deadline`) and reports back (``poll(now)``).
"""

from __future__ import annotations

import math
import struct
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided, sliding_window_view

__all__ = [
    "DtmfReceived",
    "DtmfSource",
    "GoertzelDetector",
    "Rfc4733Packet",
    "Rfc4733Receiver",
    "Rfc4733Sender",
    "TelephoneEvent",
    "parse_info_body",
]

DtmfSource = Literal["rfc4733", "info", "inband"]

# RFC 4733 section 3.2: events 0-15 are the sixteen DTMF keys, in this order.
_DIGITS = "0123456789*#ABCD"


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """A caller pressed a key: the digit, how long it was held, and how it arrived."""

    digit: str
    duration_ms: int
    source: DtmfSource


# --------------------------------------------------------------------------
# RFC 4733 telephone-event payloads


_EVENT = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 event block: event code, end bit, volume (-dBm0), duration in ticks."""

    event: int
    end: bool
    volume: int
    duration: int

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        """Read the first event block of a payload; :class:`ValueError` if it is short."""
        if len(data) < _EVENT.size:
            raise ValueError(f"telephone-event payload is {len(data)} octets, needs 4")
        event, flags, duration = _EVENT.unpack_from(data)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def serialize(self) -> bytes:
        """The 4-octet block, the reserved bit zero."""
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        """The DTMF key this event names, or ``None`` for other events (flash, tones)."""
        return _DIGITS[self.event] if self.event < len(_DIGITS) else None


def _newer(a: int, b: int) -> bool:
    """Whether RTP timestamp ``a`` is after ``b``, across the 32-bit wrap."""
    return 0 < (a - b) & 0xFFFFFFFF < 0x80000000


@dataclass(slots=True)
class _Event:
    first_timestamp: int  # the first segment's, when a long event spans several
    timestamp: int
    digit: str
    duration: int
    last_seen: float


class Rfc4733Receiver:
    """Turns a stream of telephone-event packets into one :class:`DtmfReceived` per key press.

    An event is identified by its RTP timestamp, not by the marker bit, so a
    lost start packet costs nothing: the first packet seen with a new timestamp
    starts the event. The first packet with the E bit ends it and emits the
    digit; the two or three repeats of that end packet, and any late packet
    of an event already reported, are ignored. An event whose end packets are
    all lost is reported when the next event starts or when ``poll(now)``
    finds nothing heard of it for ``end_timeout`` seconds. An event longer
    than a duration field can hold, which the sender continues under a new
    timestamp without the marker (RFC 4733 section 2.5.2.3), stays one event.

    ``payload_type`` is the negotiated telephone-event number, kept for the
    RTP session to route packets here; ``now`` is any monotonic clock in
    seconds.
    """

    def __init__(self, payload_type: int, clock_rate: int = 8000, end_timeout: float = 0.3) -> None:
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.end_timeout = end_timeout
        self.malformed = 0
        self._current: _Event | None = None
        # Timestamps already reported, so their repeated end packets are dropped.
        self._reported: deque[int] = deque(maxlen=8)

    def receive(
        self, timestamp: int, marker: bool, payload: bytes, now: float
    ) -> list[DtmfReceived]:
        """Take one telephone-event packet; return the key presses it completes."""
        try:
            block = TelephoneEvent.parse(payload)
        except ValueError:
            self.malformed += 1
            return []
        digit = block.digit
        if digit is None or timestamp in self._reported:
            return []
        events: list[DtmfReceived] = []
        current = self._current
        if current is not None and timestamp != current.timestamp:
            if not _newer(timestamp, current.timestamp):
                return []  # a late packet of an older event
            gap = (timestamp - current.timestamp) & 0xFFFFFFFF
            if not marker and digit == current.digit and gap <= current.duration:
                current.timestamp = timestamp  # the next segment of a long event
                current.duration = 0
            else:
                events.append(self._report(current))  # its end packets were lost
                current = None
        if current is None:
            current = self._current = _Event(timestamp, timestamp, digit, 0, now)
        current.duration = max(current.duration, block.duration)
        current.last_seen = now
        if block.end:
            events.append(self._report(current))
        return events

    def poll(self, now: float) -> list[DtmfReceived]:
        """Report an event whose end never arrived, once ``end_timeout`` has passed."""
        current = self._current
        if current is not None and now >= current.last_seen + self.end_timeout:
            return [self._report(current)]
        return []

    def next_deadline(self) -> float | None:
        """When :meth:`poll` next has something to do, or ``None``."""
        current = self._current
        return None if current is None else current.last_seen + self.end_timeout

    def _report(self, event: _Event) -> DtmfReceived:
        self._current = None
        self._reported.append(event.timestamp)
        ticks = ((event.timestamp - event.first_timestamp) & 0xFFFFFFFF) + event.duration
        return DtmfReceived(event.digit, ticks * 1000 // self.clock_rate, "rfc4733")


@dataclass(frozen=True, slots=True)
class Rfc4733Packet:
    """A telephone-event packet to send ``offset_ms`` after the key press began."""

    offset_ms: int
    timestamp: int
    marker: bool
    payload: bytes


class Rfc4733Sender:
    """Builds the RFC 4733 packets for one key press.

    The first packet carries the marker bit; updates follow every
    ``interval_ms`` with the duration so far, all under the timestamp of the
    start; the final duration goes out in ``end_repeats`` end packets
    ``end_spacing_ms`` apart, because a lone end packet is easily lost. The
    RTP session adds sequence numbers and sends each packet at its offset.
    """

    def __init__(
        self,
        payload_type: int = 101,
        clock_rate: int = 8000,
        interval_ms: int = 50,
        volume: int = 10,
        end_repeats: int = 3,
        end_spacing_ms: int = 20,
    ) -> None:
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.interval_ms = interval_ms
        self.volume = volume
        self.end_repeats = end_repeats
        self.end_spacing_ms = end_spacing_ms

    def packets(self, digit: str, timestamp: int, duration_ms: int = 100) -> list[Rfc4733Packet]:
        """The packets for ``digit`` held ``duration_ms``, starting at RTP ``timestamp``."""
        event = _DIGITS.find(digit.upper())
        if len(digit) != 1 or event < 0:
            raise ValueError(f"not a DTMF key: {digit!r}")
        total = duration_ms * self.clock_rate // 1000
        if not 0 < total <= 0xFFFF:
            raise ValueError(f"duration {duration_ms} ms does not fit one event segment")
        packets = []
        for offset in range(0, duration_ms, self.interval_ms):
            block = TelephoneEvent(event, False, self.volume, offset * self.clock_rate // 1000)
            packets.append(Rfc4733Packet(offset, timestamp, offset == 0, block.serialize()))
        end = TelephoneEvent(event, True, self.volume, total).serialize()
        for repeat in range(self.end_repeats):
            offset = duration_ms + repeat * self.end_spacing_ms
            packets.append(Rfc4733Packet(offset, timestamp, False, end))
        return packets


# --------------------------------------------------------------------------
# SIP INFO bodies


_INFO_DEFAULT_DURATION_MS = 100  # what most phones send when they omit Duration=


def _info_digit(value: str) -> str:
    value = value.strip().upper()
    if len(value) == 1 and value in _DIGITS:
        return value
    # Some gateways send the RFC 4733 event number for * # A-D instead of the key.
    if value.isdigit() and 10 <= int(value) < len(_DIGITS):
        return _DIGITS[int(value)]
    raise ValueError(f"not a DTMF key: {value!r}")


def parse_info_body(content_type: str, body: bytes | str) -> DtmfReceived | None:
    """The key press in a SIP INFO body, or ``None`` if the body is not a DTMF type.

    ``application/dtmf-relay`` carries ``Signal=5`` and ``Duration=160`` lines
    (milliseconds; Duration defaults to 100 when absent); ``application/dtmf``
    carries the key alone. A DTMF body that cannot be read raises
    :class:`ValueError`, so the caller can answer 400 rather than 415.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in ("application/dtmf-relay", "application/dtmf"):
        return None
    text = body.decode("ascii") if isinstance(body, bytes) else body
    if media_type == "application/dtmf":
        return DtmfReceived(_info_digit(text), _INFO_DEFAULT_DURATION_MS, "info")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    if "signal" not in fields:
        raise ValueError("dtmf-relay body has no Signal= line")
    duration = fields.get("duration", str(_INFO_DEFAULT_DURATION_MS))
    if not duration.isdigit():
        raise ValueError(f"dtmf-relay Duration is not a number of ms: {duration!r}")
    return DtmfReceived(_info_digit(fields["signal"]), int(duration), "info")


# --------------------------------------------------------------------------
# In-band detection


_ROWS = (697.0, 770.0, 852.0, 941.0)
_COLS = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")

# A full-scale sine is +3.14 dBm0 (G.711 A-law; mu-law's +3.17 differs by nothing
# that matters here), so this is the mean-square value of a 0 dBm0 tone.
_DBM0_POWER = (32767.0 / 10 ** (3.14 / 20)) ** 2 / 2


def _db(ratio: float) -> float:
    return 10 * math.log10(ratio) if ratio > 0 else -math.inf


@dataclass(slots=True)
class _Run:
    """Consecutive analysis windows that all look like one key."""

    digit: str
    row: int
    col: int
    samples: list[npt.NDArray[np.float64]]  # kept for analysis, up to a cap
    length: int  # samples seen since the run began
    energy: float  # their energy
    valid_length: int  # both, up to the end of the last window that showed the key
    valid_energy: float
    peak_power: float  # mean power of the strongest window, roughly the tone's level
    steps: list[npt.NDArray[np.float64]]  # phase turned by row and column per hop
    last: npt.NDArray[np.complex128] | None
    misses: int = 0


class GoertzelDetector:
    """In-band DTMF detection within ITU-T Q.24, one event per key press.

    Feed int16 frames of any length with :meth:`feed`; a key is reported when
    it is released (so its duration is known), and :meth:`flush` reports one
    still held at the end of the stream.

    How it decides, and the Q.24 values it is built to (class attributes):

    * Every 5 ms a 20 ms Hann-windowed Goertzel filter bank measures the eight
      DTMF frequencies. A window shows a key when the strongest row and
      column tones are each above ``min_level_dbm0`` (-30 dBm0 per tone;
      0 dBm0 is a sine 3.14 dB below full scale), each at least
      ``group_margin_db`` (6 dB) above the others of its group, and together
      hold ``min_tone_share`` (70%) of the window's energy. That alone keeps
      noise and speech out: speech spreads its energy over many harmonics.
    * Consecutive windows showing the same key form a run, and ``end_misses``
      (7) windows without it, 35 ms, end the run: a drop-out of up to 20 ms
      does not split a press, a pause of 30 ms or more (Q.24: 40 ms) separates
      two.
    * A run becomes a key press only if all of these hold:

      - its duration, the run's energy divided by the tone's steady power, is
        at least ``min_duration_ms`` (35 ms). Q.24 asks that 40 ms tones be
        accepted and short ones rejected; the measure is good to a
        millisecond or two at any level and wherever the edges fall, so 40 ms
        always passes and 30 ms never does;
      - each tone's frequency, measured from how far its filter's phase turns
        from one window to the next, is within ``max_deviation`` (2.5%) of
        nominal, halfway between Q.24's must-accept 1.5% and must-reject 3.5%;
      - the twist, the high-group level minus the low-group level (both
        fitted at the measured frequencies over the steady part of the tone),
        is at most ``max_forward_twist_db`` (4 dB, high group louder) and at
        least minus ``max_reverse_twist_db`` (8 dB, low group louder), plus a
        ``twist_margin_db`` (1 dB) allowance for measurement error;
      - the second harmonic of each tone is at least ``min_harmonic_margin_db``
        (20 dB) below it: a key is two clean sines, a voiced sound a
        fundamental with a train of harmonics.

    The filters are evaluated as one matrix product per frame rather than by
    the Goertzel recurrence sample by sample: the result per window is the same
    DFT term, and a Python loop over samples would cost fifty times more.
    """

    min_level_dbm0 = -30.0
    group_margin_db = 6.0
    min_tone_share = 0.7
    min_duration_ms = 35.0
    max_deviation = 0.025
    max_forward_twist_db = 4.0
    max_reverse_twist_db = 8.0
    twist_margin_db = 1.0
    min_harmonic_margin_db = 20.0
    end_misses = 7
    max_analysis_ms = 400

    def __init__(self, sample_rate: int = 8000) -> None:
        self.sample_rate = sample_rate
        self._hop = sample_rate // 200
        self._size = 4 * self._hop
        n = np.arange(self._size)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / self._size)
        omega = 2 * np.pi * np.array(_ROWS + _COLS) / sample_rate
        self._basis = window[:, None] * np.exp(-1j * np.outer(n, omega))
        # Scales |X|^2 to the mean-square power of a sine, and the windowed
        # energy to mean-square power, so the two can be compared directly.
        self._tone_scale = 2.0 / window.sum() ** 2
        self._energy_weights = window**2 / np.sum(window**2)
        # Removes the phase a tone at exactly the nominal frequency turns per hop.
        self._unspin = np.exp(-1j * omega * self._hop)
        self._max_samples = self.max_analysis_ms * sample_rate // 1000
        self._max_steps = self._max_samples // self._hop
        self._min_power = _DBM0_POWER * 10 ** (self.min_level_dbm0 / 10)
        self._group_ratio = 10 ** (-self.group_margin_db / 10)
        self._tail: npt.NDArray[np.float64] = np.zeros(self._size - self._hop)
        self._run: _Run | None = None

    def feed(self, frame: npt.NDArray[np.int16]) -> list[DtmfReceived]:
        """Analyse the next samples of the stream; return the key presses they complete."""
        x = np.concatenate((self._tail, frame.astype(np.float64)))
        count = (len(x) - self._size) // self._hop + 1
        if count <= 0:
            self._tail = x
            return []
        step = x.strides[0]
        # as_strided: sliding_window_view costs three times as much per call.
        windows = as_strided(x, (count, self._size), (self._hop * step, step), writeable=False)
        self._tail = x[count * self._hop :]
        spectra = windows @ self._basis
        power = (spectra.real**2 + spectra.imag**2).reshape(count, 2, 4) * self._tone_scale
        squares = windows * windows
        ranked = np.sort(power, axis=2)
        best, runner_up = ranked[:, :, 3], ranked[:, :, 2]
        shows_key = (
            np.all(best >= self._min_power, axis=1)
            & (best.sum(axis=1) >= self.min_tone_share * (squares @ self._energy_weights))
            & np.all(runner_up <= best * self._group_ratio, axis=1)
        )
        if self._run is None and not shows_key.any():
            return []  # the usual case, speech or silence: no per-window work
        keys = np.argmax(power, axis=2)
        mean_power = squares.mean(axis=1)
        events: list[DtmfReceived] = []
        for i in range(count):
            fresh = windows[i, -self._hop :]
            if shows_key[i]:
                row, col = int(keys[i, 0]), int(keys[i, 1]) + 4
                tones = spectra[i, [row, col]]
                events.extend(self._show(windows[i], fresh, row, col, tones, mean_power[i]))
            else:
                events.extend(self._miss(fresh))
        return events

    def flush(self) -> list[DtmfReceived]:
        """Report a key still held when the stream ends, and start afresh."""
        run, self._run = self._run, None
        self._tail = np.zeros(self._size - self._hop)
        return self._decide(run) if run is not None else []

    def _show(
        self,
        window: npt.NDArray[np.float64],
        fresh: npt.NDArray[np.float64],
        row: int,
        col: int,
        tones: npt.NDArray[np.complex128],
        power: float,
    ) -> list[DtmfReceived]:
        digit = _KEYPAD[row][col - 4]
        run = self._run
        events: list[DtmfReceived] = []
        if run is not None and run.digit != digit:
            events.extend(self._decide(run))
            run = None
        if run is None:
            start = window.copy()
            energy = float(np.dot(start, start))
            self._run = _Run(
                digit, row, col, [start], len(start), energy, len(start), energy, power, [], tones
            )
            return events
        self._append(run, fresh)
        run.valid_length, run.valid_energy = run.length, run.energy
        run.peak_power = max(run.peak_power, power)
        if run.last is not None and len(run.steps) < self._max_steps:
            unspin = self._unspin[[row, col]]
            run.steps.append(np.angle(tones * np.conj(run.last) * unspin))
        run.last = tones
        run.misses = 0
        return events

    def _miss(self, fresh: npt.NDArray[np.float64]) -> list[DtmfReceived]:
        run = self._run
        if run is None:
            return []
        run.misses += 1
        run.last = None  # a phase step across a gap would alias; skip it
        if run.misses >= self.end_misses:
            self._run = None
            return self._decide(run)
        self._append(run, fresh)
        return []

    def _append(self, run: _Run, fresh: npt.NDArray[np.float64]) -> None:
        # A key held for minutes (or a stuck tone) must not grow without bound.
        if run.length < self._max_samples:
            run.samples.append(fresh.copy())
        run.length += len(fresh)
        run.energy += float(np.dot(fresh, fresh))

    def _decide(self, run: _Run) -> list[DtmfReceived]:
        if not run.steps:
            return []
        nominal = np.array((_ROWS[run.row], _COLS[run.col - 4]))
        # The median, because a key whose tone drops out and restarts has one
        # step across the restart that says nothing about frequency.
        step = np.median(np.array(run.steps), axis=0)
        offset = step * self.sample_rate / (2 * np.pi * self._hop)
        if np.any(np.abs(offset) > self.max_deviation * nominal):
            return []
        actual = nominal + offset
        segment = np.concatenate(run.samples)[: min(run.valid_length, self._max_samples)]
        pieces = self._steady_pieces(segment, run.peak_power)
        if pieces is None:
            return []
        low, high, low_2nd, high_2nd = self._levels(pieces, np.concatenate((actual, 2 * actual)))
        # The run's energy over the tones' fitted power is the tone's length,
        # whatever the level and wherever its edges fall between windows. The
        # strongest window's power would not do: two tones beat, and a 20 ms
        # window holds a fraction of a beat more or less than its share.
        duration_ms = run.valid_energy / (low + high) * 1000 / self.sample_rate
        if duration_ms < self.min_duration_ms:
            return []
        twist = _db(high / low)
        if twist > self.max_forward_twist_db + self.twist_margin_db:
            return []
        if -twist > self.max_reverse_twist_db + self.twist_margin_db:
            return []
        harmonic_ratio = 10 ** (-self.min_harmonic_margin_db / 10)
        if low_2nd > low * harmonic_ratio or high_2nd > high * harmonic_ratio:
            return []
        return [DtmfReceived(run.digit, round(duration_ms), "inband")]

    def _steady_pieces(
        self, segment: npt.NDArray[np.float64], peak_power: float
    ) -> npt.NDArray[np.float64] | None:
        """Up-to-40 ms pieces of the segment where the tone is on throughout.

        A piece that holds the tone's start, end or a drop-out smears each tone
        into its neighbours and would read as a harmonic. A hop counts as
        steady when it and both neighbours carry at least half the tone's
        power, which leaves out every hop that an edge falls in.
        """
        hops = len(segment) // self._hop
        power = np.mean(segment[: hops * self._hop].reshape(hops, self._hop) ** 2, axis=1)
        loud = power >= peak_power / 2
        steady = loud.copy()
        steady[1:] &= loud[:-1]
        steady[:-1] &= loud[1:]
        steady[[0, -1]] = False
        # Longest stretch of steady hops sets the piece length, up to 8 hops.
        longest = run = 0
        for flag in steady:
            run = run + 1 if flag else 0
            longest = max(longest, run)
        span = min(longest, 8)
        if span < 3:
            return None
        starts = np.flatnonzero(np.all(sliding_window_view(steady, span), axis=1))
        pieces = sliding_window_view(segment, span * self._hop)[:: self._hop]
        return pieces[starts[:: max(span // 2, 1)]]

    def _levels(
        self, pieces: npt.NDArray[np.float64], frequencies: npt.NDArray[np.float64]
    ) -> list[float]:
        """Mean-square power of a sine at each frequency, fitted jointly in each piece.

        A joint least-squares fit rather than one DFT per frequency, because a
        second harmonic can sit 38 Hz from a column tone (2 x 697 = 1394 Hz
        beside 1336 Hz + 1.5%), closer than a 40 ms window resolves; the fit
        separates them. Powers, not amplitudes, are averaged over the pieces,
        so a tone that restarts with another phase cannot cancel itself.
        """
        phase = np.outer(np.arange(pieces.shape[1]), 2 * np.pi * frequencies / self.sample_rate)
        basis = np.concatenate((np.cos(phase), np.sin(phase)), axis=1)
        fit = np.linalg.lstsq(basis, pieces.T, rcond=None)[0]
        power = np.mean(fit**2, axis=1) / 2
        return [float(p) for p in power[: len(frequencies)] + power[len(frequencies) :]]
