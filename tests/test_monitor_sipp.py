"""A supervisor monitors an agent's call from their own phone, over the API, under SIPp.

A SIPp caller speaks a 440 Hz tone into a queue, a SIPp agent answers and
plays its own capture, and a supervisor asks the API to listen from
extension 9001: the engine rings 9001's registered phone (SIPp doing the
signalling, the test's own socket the media), the supervisor hears the
caller's tone, switches to whisper over the API and to barge from the
phone's keypad (6), and hangs up over the API. The call's record keeps every
step. Who hears whom in each mode is asserted on the audio in
tests/test_monitor.py; here the whole path is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from media import PCMU
from tests.conftest import SIPP_DIR, RunningEngine, agent_password, free_port
from tests.interop_helpers import PeerProcess, tone_caller
from tests.rtp_peer import RtpPeer
from tests.test_acd_sipp import (
    Sipp,
    acd_config,
    events_of,
    login_all,
    queue,
    scenario_copy,
    sipp_factory,  # noqa: F401 (a fixture)
    wait_records,
)

MONITOR_UAS = Path(__file__).resolve().parent / "data" / "sipp" / "monitor_uas.xml"


def level(samples: np.ndarray, frequency: float) -> float:
    n = np.arange(len(samples))
    bin_ = np.dot(samples.astype(np.float64), np.exp(-2j * np.pi * frequency * n / 8000))
    return float(2 * abs(bin_) / len(samples))


def assert_nothing_left(engine: RunningEngine) -> None:
    """Every call, leg, RTP port and playback of the calls is gone (a full collection first)."""
    names = ("calls", "calls_alive", "legs_alive", "rtp_ports_in_use", "playbacks")
    left: dict[str, object] = {}

    def idle() -> bool:
        left.update(engine.http_json("/api/v1/live/resources"))
        return all(left.get(name) == 0 for name in names)

    try:
        engine.wait_for(idle, timeout=64 * 0.5 + 20, what="the engine to let go of the calls")
    except AssertionError:
        raise AssertionError(f"left behind: {left}") from None


def phone(sipp: Sipp, user: str, media: RtpPeer) -> PeerProcess:
    """``user``'s phone: SIPp answers at once, ``media`` (a test socket) is its RTP end."""
    port = free_port()
    sipp.register(user, port)
    return sipp._run(
        f"phone-{user}",
        [
            "-sf", str(MONITOR_UAS), "-i", "127.0.0.1", "-p", str(port),
            "-key", "rtp_port", str(media.port), "-m", "1", "-timeout", "90s",
        ],
    )  # fmt: skip


def tone_call(sipp: Sipp, tmp_path: Path, seconds: int) -> PeerProcess:
    """One SIPp caller to queue number 200 speaking 440 Hz for ``seconds``, then hanging up."""
    return sipp._run(
        "caller",
        [
            "-sf", str(tone_caller(tmp_path, 440, seconds)), "-s", "200",
            "-i", "127.0.0.1", "-p", str(free_port()),
            "-mi", "127.0.0.1", "-mp", str(free_port()),
            "-m", "1", "-timeout", "60s", "-timeout_error", "-trace_err",
        ],
    )  # fmt: skip


def monitor_state(engine: RunningEngine, agent: str) -> tuple[int, object]:
    return engine.request("GET", f"/api/v1/agents/{agent}/monitor")


def test_a_supervisor_listens_whispers_and_barges_from_their_phone(
    tmp_path: Path,
    engine_factory: Callable[..., RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811
) -> None:
    config = acd_config(
        tmp_path,
        agents={"1001": "{}", "9001": "{}"},
        queues={"q": queue(wrap_up=0)},
    )
    engine = engine_factory(config)
    sipp = sipp_factory(engine)
    sipp.agent("1001", scenario_copy(tmp_path, "agent_uas.xml", t3000=30000))
    login_all(engine, ["1001"])

    # Nobody is on a call yet: a monitor request says so.
    status, body = engine.request("POST", "/api/v1/agents/1001/monitor", {"extension": "9001"})
    assert status == 409 and body["error"] == "not_on_call", body  # type: ignore[index]
    status, body = engine.request("POST", "/api/v1/agents/1001/monitor", {"mode": "shout"})
    assert status == 400 and body["field"] == "mode", body  # type: ignore[index]

    with RtpPeer() as supervisor_media:
        phone(sipp, "9001", supervisor_media)
        caller = tone_call(sipp, tmp_path, 12)
        engine.wait_for(
            lambda: monitor_state(engine, "1001")[0] == 404, timeout=20, what="1001 on the call"
        )

        status, body = engine.request(
            "POST", "/api/v1/agents/1001/monitor", {"extension": "9001", "mode": "listen"}
        )
        assert status == 202, body
        assert isinstance(body, dict)
        assert (body["state"], body["mode"], body["extension"]) == ("ringing", "listen", "9001")
        engine.wait_for(
            lambda: monitor_state(engine, "1001")[1].get("state") == "connected",  # type: ignore[union-attr]
            timeout=10,
            what="the supervisor's phone answered",
        )
        # A second supervisor cannot take the call over.
        status, body = engine.request("POST", "/api/v1/agents/1001/monitor", {"extension": "1001"})
        assert (status, body["error"]) == (409, "conflict"), body  # type: ignore[index]

        # Listening: the caller's tone reaches the supervisor's phone.
        deadline = time.monotonic() + 10
        audio: list[np.ndarray] = []
        while len(audio) < 50:
            heard = supervisor_media.receive(deadline)
            assert heard is not None, f"the supervisor heard {len(audio)} packets only"
            if heard.packet.payload_type == 0:
                audio.append(PCMU.decode(heard.packet.payload))
        samples = np.concatenate(audio)
        assert level(samples, 440) > 500, "the supervisor does not hear the caller"

        status, body = engine.request("POST", "/api/v1/agents/1001/monitor", {"mode": "whisper"})
        assert status == 200 and body["mode"] == "whisper", body  # type: ignore[index]

        supervisor_media.press("6")  # barge, from the keypad
        engine.wait_for(
            lambda: monitor_state(engine, "1001")[1].get("mode") == "barge",  # type: ignore[union-attr]
            timeout=5,
            what="the keypad's 6 switching to barge",
        )
        status, body = engine.request("DELETE", "/api/v1/agents/1001/monitor")
        assert status == 200 and body["state"] == "ended", body  # type: ignore[index]
        engine.wait_for(
            lambda: monitor_state(engine, "1001")[0] == 404, timeout=5, what="the monitor gone"
        )
        assert caller.wait(40) == 0, caller.describe()

    (record,) = wait_records(engine, 1)
    assert record["disposition"] == "answered" and record["agent"] == "1001"
    steps = [
        (e["event"], e["data"].get("mode"))
        for e in events_of(engine, record["call_id"])
        if e["event"].startswith("MONITOR")
    ]
    assert steps == [
        ("MONITOR", "listen"),
        ("MONITOR", "whisper"),
        ("MONITOR", "barge"),
        ("MONITOREND", None),
    ]
    assert_nothing_left(engine)


def test_the_agent_pauses_the_recording_from_the_keypad_and_a_supervisor_over_the_api(
    tmp_path: Path,
    engine_factory: Callable[..., RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811
) -> None:
    """PCI: while the caller reads a card number the recording holds silence."""
    config = acd_config(tmp_path, routes={"200": "queue: q, record: true"})
    engine = engine_factory(config)
    sipp = sipp_factory(engine)
    with RtpPeer() as agent_media:
        phone(sipp, "1001", agent_media)
        login_all(engine, ["1001"])
        caller = tone_call(sipp, tmp_path, 9)

        def recording() -> object:
            status, body = engine.request("GET", "/api/v1/agents/1001/recording")
            return body.get("recording") if status == 200 else status  # type: ignore[union-attr]

        engine.wait_for(lambda: recording() == "recording", timeout=20, what="a recorded call")

        def hear(packets: int) -> None:
            deadline = time.monotonic() + 10
            for _ in range(packets):
                assert agent_media.receive(deadline) is not None, "the caller went quiet"

        hear(50)  # a second of the caller recorded
        agent_media.press("*")
        agent_media.press("7")
        engine.wait_for(lambda: recording() == "paused", timeout=5, what="*7 pausing")
        hear(75)  # a second and a half not recorded
        agent_media.press("*")
        agent_media.press("7")
        engine.wait_for(lambda: recording() == "recording", timeout=5, what="*7 resuming")
        hear(50)
        body = engine.post("/api/v1/agents/1001/recording/pause")
        assert body["recording"] == "paused"
        assert engine.post("/api/v1/agents/1001/recording/pause")["recording"] == "paused"
        hear(50)
        assert engine.post("/api/v1/agents/1001/recording/resume")["recording"] == "recording"
        assert caller.wait(40) == 0, caller.describe()
    status, body = engine.request("POST", "/api/v1/agents/1001/recording/pause")
    assert (status, body["error"]) == (409, "not_on_call"), body  # type: ignore[index]

    (record,) = wait_records(engine, 1)
    steps = [
        (e["event"], e["data"].get("by"))
        for e in events_of(engine, record["call_id"])
        if e["event"].startswith("RECORD")
    ]
    assert steps == [
        ("RECORDPAUSE", "keypad:1001"),
        ("RECORDRESUME", "keypad:1001"),
        ("RECORDPAUSE", "admin"),
        ("RECORDRESUME", "admin"),
    ]
    wav = tmp_path / "call.wav"
    wav.write_bytes(engine.http_bytes(f"/api/v1/recordings/{record['recording_id']}"))
    from media import read_wav

    left = read_wav(wav).samples[:, 0] * 32768
    windows = [left[i : i + 800] for i in range(0, len(left) - 800, 800)]  # 100 ms each
    toned = [level(w, 440) > 1000 for w in windows]
    # Tone, a silent stretch of about 1.5 s, tone, about 1 s silent, tone.
    runs: list[tuple[bool, int]] = []
    for value in toned:
        if runs and runs[-1][0] == value:
            runs[-1] = (value, runs[-1][1] + 1)
        else:
            runs.append((value, 1))
    silent = [n for value, n in runs if not value and n >= 5]
    assert len(silent) == 2, runs
    assert 10 <= silent[0] <= 25 and 6 <= silent[1] <= 18, runs


def hears_tone(media: RtpPeer, frequency: float, packets: int = 50) -> bool:
    """Whether the next ``packets`` of audio ``media`` receives carry ``frequency``."""
    deadline = time.monotonic() + 10
    audio: list[np.ndarray] = []
    while len(audio) < packets:
        heard = media.receive(deadline)
        assert heard is not None, f"only {len(audio)} packets arrived"
        if heard.packet.payload_type == 0:
            audio.append(PCMU.decode(heard.packet.payload))
    return level(np.concatenate(audio), frequency) > 500


def consult_state(engine: RunningEngine) -> object:
    status, body = engine.request("GET", "/api/v1/agents/1001/consult")
    return body.get("state") if status == 200 else status  # type: ignore[union-attr]


def test_the_agent_consults_a_colleague_then_transfers_the_caller(
    tmp_path: Path,
    engine_factory: Callable[..., RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811
) -> None:
    engine = engine_factory(acd_config(tmp_path, routes={"200": "queue: q, record: true"}))
    sipp = sipp_factory(engine)
    with RtpPeer() as agent_media, RtpPeer() as colleague_media:
        agent = phone(sipp, "1001", agent_media)
        phone(sipp, "1002", colleague_media)
        login_all(engine, ["1001"])
        caller = tone_call(sipp, tmp_path, 10)
        engine.wait_for(lambda: consult_state(engine) == 404, timeout=20, what="1001 on the call")
        assert hears_tone(agent_media, 440)
        status, body = engine.request("POST", "/api/v1/agents/1001/consult", {"extension": "1002"})
        assert status == 202 and body["state"] == "ringing", body  # type: ignore[index]
        status, body = engine.request("POST", "/api/v1/agents/1001/consult", {"extension": "1002"})
        assert status == 409, body  # one at a time
        engine.wait_for(lambda: consult_state(engine) == "talking", timeout=10, what="talking")
        status, body = engine.request("POST", "/api/v1/agents/1001/consult/transfer")
        assert status == 200 and body["state"] == "completed", body  # type: ignore[index]
        assert agent.wait(20) == 0, agent.describe()  # the agent's leg got its BYE
        assert hears_tone(colleague_media, 440), "the colleague does not hear the caller"
        assert caller.wait(40) == 0, caller.describe()

    (record,) = wait_records(engine, 1)
    assert (record["disposition"], record["agent"]) == ("transferred", "1002"), record
    steps = [
        (e["event"], e["data"].get("outcome") or e["data"].get("kind"))
        for e in events_of(engine, record["call_id"])
        if e["event"] in ("CONSULT", "CONSULTEND", "TRANSFER", "CONFERENCE")
    ]
    assert steps == [("CONSULT", None), ("CONSULTEND", "completed"), ("TRANSFER", "consult")]
    # Two bridges, two recordings: the agent's part, then the colleague's.
    assert record["recording_url"] == f"/api/v1/recordings/{record['call_id']}-2", record
    assert engine.http_bytes(f"/api/v1/recordings/{record['call_id']}")[:4] == b"RIFF"
    assert_nothing_left(engine)


def test_the_agent_makes_a_conference_of_three_and_the_colleague_leaves(
    tmp_path: Path,
    engine_factory: Callable[..., RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811
) -> None:
    engine = engine_factory(acd_config(tmp_path))
    sipp = sipp_factory(engine)
    with RtpPeer() as agent_media, RtpPeer() as colleague_media:
        phone(sipp, "1001", agent_media)
        phone(sipp, "1002", colleague_media)
        login_all(engine, ["1001"])
        caller = tone_call(sipp, tmp_path, 10)
        engine.wait_for(lambda: consult_state(engine) == 404, timeout=20, what="1001 on the call")
        status, body = engine.request("POST", "/api/v1/agents/1001/consult/conference")
        assert (status, body["error"]) == (404, "not_found"), body  # type: ignore[index]
        engine.request("POST", "/api/v1/agents/1001/consult", {"extension": "1002"})
        engine.wait_for(lambda: consult_state(engine) == "talking", timeout=10, what="talking")
        status, body = engine.request("POST", "/api/v1/agents/1001/consult/conference")
        assert status == 200 and body["state"] == "conference", body  # type: ignore[index]
        assert hears_tone(colleague_media, 440), "the colleague does not hear the caller"
        assert hears_tone(agent_media, 440), "the agent does not hear the caller"
        status, body = engine.request("POST", "/api/v1/agents/1001/consult/cancel")
        assert status == 200 and body["state"] == "cancelled", body  # type: ignore[index]
        engine.wait_for(lambda: consult_state(engine) == 404, timeout=5, what="consultation over")
        assert hears_tone(agent_media, 440), "the agent lost the caller"
        assert caller.wait(40) == 0, caller.describe()

    (record,) = wait_records(engine, 1)
    assert (record["disposition"], record["agent"]) == ("answered", "1001"), record
    steps = [
        (e["event"], e["data"].get("outcome"))
        for e in events_of(engine, record["call_id"])
        if e["event"] in ("CONSULT", "CONSULTEND", "CONFERENCE")
    ]
    assert steps == [("CONSULT", None), ("CONFERENCE", None), ("CONSULTEND", "cancelled")]
    assert_nothing_left(engine)


def dial_feature(
    sipp: Sipp, engine: RunningEngine, user: str, code: str, *, source: str = "127.0.0.2"
) -> PeerProcess:
    """``user``'s phone dials ``code``, authenticated (from an address that is no trunk)."""
    return sipp._run(
        f"dial-{user}",
        [
            "-sf", str(SIPP_DIR / "feature_code.xml"), "-s", code, "-key", "agent", user,
            "-au", user, "-ap", agent_password(user),
            "-auth_uri", f"{code}@127.0.0.1:{engine.sip_port}",
            "-i", source, "-p", str(free_port()), "-mi", source, "-mp", str(free_port()),
            "-m", "1", "-timeout", "40s", "-timeout_error",
        ],
    )  # fmt: skip


def test_a_supervisors_phone_dials_in_to_listen_and_an_agents_phone_may_not(
    tmp_path: Path,
    engine_factory: Callable[..., RunningEngine],
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811
) -> None:
    """*26<agent> from a supervisor's account joins the agent's call (listening) until
    the call ends; the same code from a plain agent's account hears the refusal."""
    config = acd_config(tmp_path, agents={"1001": "{}", "1002": "{}", "9001": "{}"})
    engine = engine_factory(config)
    status, _ = engine.request(
        "POST",
        "/api/v1/users",
        {"username": "9001", "role": "supervisor", "password": "sup-Password-9001"},
    )
    assert status == 201
    sipp = sipp_factory(engine)
    with RtpPeer() as agent_media:
        phone(sipp, "1001", agent_media)
        login_all(engine, ["1001"])
        caller = tone_call(sipp, tmp_path, 8)
        engine.wait_for(
            lambda: monitor_state(engine, "1001")[0] == 404, timeout=20, what="1001 on the call"
        )
        refused = dial_feature(sipp, engine, "1002", "*261001")
        assert refused.wait(30) == 0, refused.describe()  # the prompt, then our BYE
        assert monitor_state(engine, "1001")[0] == 404, "an agent's account may not listen"

        supervisor = dial_feature(sipp, engine, "9001", "*261001")
        engine.wait_for(
            lambda: monitor_state(engine, "1001")[1].get("state") == "connected",  # type: ignore[union-attr]
            timeout=10,
            what="the supervisor's phone joined",
        )
        _status, body = monitor_state(engine, "1001")
        assert isinstance(body, dict)
        assert (body["supervisor"], body["mode"], body["extension"]) == ("9001", "listen", "phone")
        assert caller.wait(40) == 0, caller.describe()
        assert supervisor.wait(20) == 0, supervisor.describe()  # the call ended: our BYE

    records = wait_records(engine, 3)
    call = next(r for r in records if r["agent"] == "1001")
    steps = [e["event"] for e in events_of(engine, call["call_id"])]
    assert "MONITOR" in steps and "MONITOREND" in steps, steps
    assert sorted(r["route"] for r in records if r["route"] != "200") == ["*261001", "*261001"]
