"""Real softphones as agents: baresip and pyVoIP answer calls on their own, and both
sides of the conversation are in the recording.

A SIPp caller (a trunk, from 127.0.0.1) dials an agent's extension (route
``_10XX``) or a queue the agent is logged in to (``200``), both recorded,
and sends a 440 Hz tone (a capture written by
``write_tone_pcap``); the agent's phone answers by itself and sends its own
tone: pyVoIP through ``acd simulate-agents`` (600 Hz for agent 1001),
baresip with ``answermode=auto`` and its ``ausine`` source (1000 Hz). The
stereo recording, fetched through the API, must hold the caller's tone on
the left and the agent's on the right, for most of the call.
"""

from __future__ import annotations

import datetime as dt
import io
import sys
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from .conftest import (
    ROOT,
    RunningEngine,
    agent_password,
    free_port,
    free_port_pair,
    require_tool,
    write_config,
)
from .interop_helpers import PeerProcess, sipp_call, tone_caller
from .test_acd_sipp import DEFAULT_QUEUE, login_all

pytestmark = pytest.mark.interop

CALLER_HZ = 440
CALL_SECONDS = 4.0
QUEUE_WAIT = 3.0  # seconds of ringing allowed for before the agent answers a queued call
REGISTER_TIMEOUT = 30.0
BARESIP_MODULES = Path("/usr/lib/baresip/modules")


def _config(tmp_path: Path) -> Path:
    low = 30000 + (free_port() % 1000) * 20
    extra = "\n".join(
        [
            "trunks:",
            "  - {name: carrier, addresses: [127.0.0.1]}",
            "routes:",
            '  - {match: _10XX, extension: "*", record: true}',
            '  - {match: "200", queue: q}',
            "queues:",
            f"  q: {DEFAULT_QUEUE}",
            f"prompts: {{dir: {ROOT / 'config' / 'prompts'}}}",
            f"media: {{rtp_ports: [{low}, {low + 19}]}}",
        ]
    )
    return write_config(tmp_path / "acd.yaml", agents=2, extra=extra)


def _record(engine: RunningEngine) -> dict[str, object]:
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = (today - dt.timedelta(days=1)).isoformat().replace("+00:00", "Z")  # near midnight too
    until = (today + dt.timedelta(days=2)).isoformat().replace("+00:00", "Z")
    found: list[dict[str, object]] = []

    def stored() -> bool:
        rows = engine.http_json(f"/api/v1/calls?since={since}&until={until}")["calls"]
        assert isinstance(rows, list)
        found[:] = [row for row in rows if row.get("recording_id")]
        return len(found) == 1

    engine.wait_for(stored, 15.0, "the recorded call's record")
    return found[0]


def _recording(engine: RunningEngine, record: dict[str, object]) -> npt.NDArray[np.int16]:
    data = engine.http_bytes(str(record["recording_url"]))
    with wave.open(io.BytesIO(data)) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 8000, 2)
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return frames.reshape(-1, 2)


def _dial(engine: RunningEngine, tmp_path: Path, agent: str, via: str) -> None:
    """Call ``agent`` at its extension, or through the queue after logging it in."""
    seconds = CALL_SECONDS
    if via == "queue":
        login_all(engine, [agent])
        # The engine answers a queued caller at once, so the tone starts while
        # the agent's phone still rings: stay on longer, to talk as long.
        seconds += QUEUE_WAIT
    number = agent if via == "extension" else "200"
    sipp_call(engine, tmp_path, tone_caller(tmp_path, CALLER_HZ, seconds), number)


def _dominant(samples: npt.NDArray[np.int16]) -> float:
    x = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / 8000)[np.argmax(spectrum)])


def _assert_both_tones(frames: npt.NDArray[np.int16], agent_hz: int) -> None:
    assert len(frames) / 8000 >= CALL_SECONDS - 1.0, f"{len(frames) / 8000} s recorded"
    for channel, hz in ((0, CALLER_HZ), (1, agent_hz)):
        audio = frames[:, channel]
        assert _dominant(audio) == pytest.approx(hz, abs=5), (channel, _dominant(audio))
        # The tone is there for most of the call, not a moment of it:
        # count the 100 ms blocks where it dominates.
        blocks = audio[: len(audio) // 800 * 800].reshape(-1, 800)
        held = [
            abs(_dominant(block) - hz) <= 20 and np.sqrt(np.mean(block.astype(float) ** 2)) > 300
            for block in blocks
        ]
        assert sum(held) >= 0.7 * len(held), f"channel {channel}: {sum(held)}/{len(held)} blocks"


@pytest.mark.parametrize("via", ["extension", "queue"])
def test_pyvoip_agent_answers_and_both_tones_are_recorded(
    tmp_path: Path, engine_factory: Callable[[Path], RunningEngine], via: str
) -> None:
    engine = engine_factory(_config(tmp_path))
    args = [
        sys.executable, "-u", "-m", "acd.cli", "simulate-agents",
        "--config", str(tmp_path / "acd.yaml"), "--server", f"127.0.0.1:{engine.sip_port}",
        "--agents", "1001", "--answer-after", "0.3",
    ]  # fmt: skip
    with PeerProcess(args, tmp_path / "simulator.log", cwd=ROOT) as phone:
        phone.wait_for_output(r"1 agents ready", REGISTER_TIMEOUT)
        _dial(engine, tmp_path, "1001", via)
        record = _record(engine)
        assert record["agent"] == "1001" and record["disposition"] == "answered", record
        _assert_both_tones(_recording(engine, record), 600)
        phone.wait_for_output(r"^1001 answered .+ with 600 Hz", 10.0)


def _start_baresip(engine: RunningEngine, directory: Path, user: str, hz: int) -> PeerProcess:
    exe = require_tool("baresip")
    for module in ("account", "menu", "g711", "ausine"):
        if not (BARESIP_MODULES / f"{module}.so").exists():
            pytest.fail(f"baresip's {module} module is missing from {BARESIP_MODULES}")
    directory.mkdir()
    aor = f"sip:{user}@127.0.0.1:{engine.sip_port}"
    (directory / "accounts").write_text(
        f"<{aor}>;auth_pass={agent_password(user)};regint=60;answermode=auto\n"
    )
    for _ in range(3):
        (directory / "config").write_text(
            "poll_method\t\tepoll\n"
            f"sip_listen\t\t127.0.0.1:{free_port_pair()}\n"
            f"module_path\t\t{BARESIP_MODULES}\n"
            "module\t\t\tg711.so\n"
            "module\t\t\tausine.so\n"
            "module_app\t\taccount.so\n"
            "module_app\t\tmenu.so\n"
            f"audio_source\t\tausine,{hz}\n"
            "ausrc_srate\t\t48000\n"
            "auplay_srate\t\t48000\n"
            "ausrc_channels\t\t2\n"
            "audio_player\t\tausine,none\n"
        )
        log = directory / "baresip.log"
        peer = PeerProcess([exe, "-f", str(directory), "-s", "-t", "90"], log)
        if "init failed" not in peer.wait_for_output(r"baresip is ready\.|init failed", 10)[0]:
            return peer
        # Lost a race for its SIP port, or the TLS port beside it: try others.
        peer.stop()
    raise AssertionError(f"baresip could not bind its ports\n{peer.describe()}")


@pytest.mark.parametrize("via", ["extension", "queue"])
def test_baresip_agent_answers_and_both_tones_are_recorded(
    tmp_path: Path, engine_factory: Callable[[Path], RunningEngine], via: str
) -> None:
    engine = engine_factory(_config(tmp_path))
    with _start_baresip(engine, tmp_path / "baresip", "1002", 1000) as phone:
        try:
            engine.wait_for(lambda: engine.registrations("1002"), REGISTER_TIMEOUT, "baresip")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{phone.describe()}") from None
        _dial(engine, tmp_path, "1002", via)
        record = _record(engine)
        assert record["agent"] == "1002" and record["disposition"] == "answered", record
        _assert_both_tones(_recording(engine, record), 1000)
