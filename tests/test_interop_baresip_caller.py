"""baresip (Debian baresip-core 1.0.0) as a caller: it dials the IVR and presses keys.

baresip registers as agent 1001 and dials 100 with no trunk configured, so
its INVITE is challenged and authenticated like any softphone's: the path by
which an agent calls the IVR from their own phone. It is driven through its
``ctrl_tcp`` module (netstring-framed JSON commands ``dial``, ``sndcode``,
``hangup``; events such as ``CALL_ESTABLISHED`` come back on the same
connection). ``ausine`` gives it a microphone (a 440 Hz tone) and
``sndfile`` writes what it hears to WAV files, which the test reads to check
that the prompts really reached the phone. Keys go as RFC 4733 events, which
baresip sends when the engine's answer offers telephone-event.
"""

from __future__ import annotations

import json
import socket
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import RunningEngine, agent_password, free_port, free_port_pair, require_tool
from .interop_helpers import PeerProcess
from .test_calls_sipp import call_records, ivr_config

pytestmark = pytest.mark.interop

MODULE_PATH = Path("/usr/lib/baresip/modules")
USER = "1001"


class Control:
    """baresip's ctrl_tcp: netstring-framed JSON commands and events on one TCP connection."""

    def __init__(self, port: int, deadline: float) -> None:
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.buffer = b""
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self.sock.close()

    def command(self, command: str, params: str = "") -> None:
        body = json.dumps({"command": command, "params": params, "token": command}).encode()
        self.sock.sendall(b"%d:%s," % (len(body), body))

    def _read(self, deadline: float) -> dict[str, Any] | None:
        while True:
            head, colon, rest = self.buffer.partition(b":")
            if colon:
                size = int(head)
                if len(rest) > size:
                    self.buffer = rest[size + 1 :]
                    message: dict[str, Any] = json.loads(rest[:size])
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not data:
                raise AssertionError("baresip closed its control connection")
            self.buffer += data

    def wait_event(self, kind: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("type") == kind:
                return event
        while True:
            message = self._read(deadline)
            if message is None:
                seen = [e.get("type") for e in self.events]
                raise AssertionError(f"no {kind} event from baresip; saw {seen}")
            if message.get("event"):
                self.events.append(message)
                if message.get("type") == kind:
                    return message


@pytest.fixture
def phone() -> str:
    """The baresip executable, with the modules this test loads."""
    exe = require_tool("baresip")
    for module in ("account", "menu", "ctrl_tcp", "g711", "ausine", "sndfile"):
        if not (MODULE_PATH / f"{module}.so").exists():
            pytest.fail(f"baresip's {module} module is missing from {MODULE_PATH}")
    return exe


def start_phone(exe: str, engine: RunningEngine, directory: Path) -> tuple[PeerProcess, Control]:
    directory.mkdir()
    heard = directory / "heard"
    heard.mkdir()
    control_port = free_port()
    aor = f"sip:{USER}@127.0.0.1:{engine.sip_port}"
    (directory / "accounts").write_text(f"<{aor}>;auth_pass={agent_password(USER)};regint=60\n")
    (directory / "config").write_text(
        "poll_method\t\tepoll\n"
        f"sip_listen\t\t127.0.0.1:{free_port_pair()}\n"
        f"module_path\t\t{MODULE_PATH}\n"
        "module\t\t\tg711.so\n"
        "module\t\t\tausine.so\n"
        "module\t\t\tsndfile.so\n"
        "module_app\t\taccount.so\n"
        "module_app\t\tmenu.so\n"
        "module_app\t\tctrl_tcp.so\n"
        f"ctrl_tcp_listen\t\t127.0.0.1:{control_port}\n"
        "audio_source\t\tausine,440\n"
        "ausrc_srate\t\t48000\n"
        "auplay_srate\t\t48000\n"
        "ausrc_channels\t\t2\n"
        "audio_player\t\tausine,none\n"
        f"snd_path\t\t{heard}\n"
    )
    peer = PeerProcess([exe, "-f", str(directory), "-s", "-t", "90"], directory / "baresip.log")
    peer.wait_for_output(r"baresip is ready\.", 10)
    return peer, Control(control_port, time.monotonic() + 10)


def loudness(path: Path) -> float:
    with wave.open(str(path)) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0


def test_baresip_dials_the_ivr_and_its_key_leads_to_sales(
    tmp_path: Path, engine_factory: object, phone: str
) -> None:
    engine: RunningEngine = engine_factory(ivr_config(tmp_path, trunk=False))  # type: ignore[operator]
    peer, control = start_phone(phone, engine, tmp_path / "baresip")
    try:
        # Registered before the control connection opened: ask the engine.
        engine.wait_for(lambda: engine.registrations(USER), timeout=10, what="registration")
        control.command("dial", f"sip:100@127.0.0.1:{engine.sip_port}")
        control.wait_event("CALL_ESTABLISHED", 10)
        # The welcome prompt allows barge-in: the key cuts it short and leads on.
        control.command("sndcode", "1")

        def reached_sales() -> bool:
            live = engine.http_json("/api/v1/live/calls")["calls"]
            return any("sales" in (c.get("ivr_path") or []) for c in live)  # type: ignore[union-attr]

        engine.wait_for(reached_sales, timeout=15, what="the call to reach the sales node")
        control.command("hangup")
        control.wait_event("CALL_CLOSED", 10)
    finally:
        control.close()
        peer.stop()

    def recorded() -> bool:
        return len(call_records(engine)) == 1

    engine.wait_for(recorded, timeout=10, what="the call record")
    (record,) = call_records(engine)
    assert record["caller_number"] == USER
    assert record["trunk"] is None  # authenticated as the agent, not a trunk
    assert record["digits"] == "1"
    assert record["ivr_path"][:3] == ["welcome", "menu", "sales"]  # type: ignore[index]
    assert record["hangup_side"] == "caller"
    # What baresip heard (sndfile's decoded stream) is the prompts, not silence.
    heard = sorted((tmp_path / "baresip" / "heard").glob("*.wav"))
    assert heard, "sndfile wrote no recording of the call"
    assert max(loudness(path) for path in heard) > 300
