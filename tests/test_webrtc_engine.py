"""A browser agent end to end: SIP over WebSocket, WebRTC media (aiortc), a queued caller.

The browser is two halves, as in a real one: aiohttp's WebSocket client
speaking SIP as JsSIP does (tests/test_websocket_wire.py), and aiortc's peer
connection for the media (tests/webrtc_peer.py). It registers as agent
1001 and is offered a caller waiting in queue 200 who sends a 1 kHz tone
over plain RTP; it answers with aiortc's SDP (ICE, DTLS-SRTP, rtcp-mux),
hears the caller's tone, sends its own 440 Hz back, and the stereo
recording holds the caller on the left and the browser on the right.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import threading
from pathlib import Path

import aiohttp
import numpy as np

from media import PCMU, read_wav
from media.rtp import RtpPacket
from sip import Request, SessionDescription

from .conftest import RunningEngine, free_port
from .test_acd_sipp import wait_records
from .test_websocket_wire import Browser, Caller, EngineFactory, connect, eventually, ws_config
from .webrtc_peer import Browser as Media
from .webrtc_peer import dominant_frequency

_UNSETTLED = ("legs_alive", "calls_alive")


def _voiced(samples: np.ndarray) -> np.ndarray:
    """The stretch between the first and last loud sample (the call's audio, no silence)."""
    loud = np.flatnonzero(np.abs(samples) > 1000)
    assert len(loud), "the channel is silent"
    return samples[loud[0] : loud[-1]]


def _response(request: Request, status: str) -> str:
    h = request.headers
    lines = [f"SIP/2.0 {status}"]
    lines += [f"Via: {v}" for v in h.get_all("via")]
    lines += [f"{name}: {h.get(name)}" for name in ("From", "To", "Call-ID", "CSeq")]
    return "\r\n".join([*lines, "Content-Length: 0"]) + "\r\n\r\n"


def _ok(browser: Browser, invite: Request, tag: str, sdp: bytes) -> str:
    h = invite.headers
    lines = ["SIP/2.0 200 OK"]
    lines += [f"Via: {v}" for v in h.get_all("via")]
    lines += [
        f"From: {h.get('from')}",
        f"To: {h.get('to')};tag={tag}",
        f"Call-ID: {h.get('call-id')}",
        f"CSeq: {h.get('cseq')}",
        f"Contact: <{browser.contact}>",
        "Content-Type: application/sdp",
        f"Content-Length: {len(sdp)}",
    ]
    return "\r\n".join(lines) + "\r\n\r\n" + sdp.decode()


class ToneSender(threading.Thread):
    """The caller's phone: 1 kHz PCMU every 20 ms to the engine's port, and what comes back."""

    def __init__(self, caller: Caller, target: tuple[str, int]) -> None:
        super().__init__(daemon=True)
        self.caller, self.target = caller, target
        self.stop = threading.Event()
        self.heard: list[bytes] = []

    def run(self) -> None:
        sock = self.caller.rtp
        sock.settimeout(0.02)
        tone = PCMU.encode(
            (8000 * np.sin(2 * math.pi * 1000 * np.arange(160 * 500) / 8000)).astype(np.int16)
        )
        ssrc, n = secrets.randbits(32), 0
        while not self.stop.is_set() and n < 500:
            packet = RtpPacket(0, n, n * 160, ssrc, payload=tone[n * 160 : (n + 1) * 160])
            sock.sendto(packet.serialize(), self.target)
            n += 1
            # The socket timeout paces the stream at about 20 ms a packet.
            try:
                self.heard.append(RtpPacket.parse(sock.recv(2048)).payload)
            except TimeoutError:
                pass
            except OSError:
                return


async def test_a_browser_agent_answers_a_queued_caller_over_webrtc(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    ws_port = free_port()
    # A short T1: ended dialogs and accepted INVITE transactions go after 64*T1.
    engine: RunningEngine = engine_factory(ws_config(tmp_path, ws_port, sip="timers: {t1: 0.05}"))
    media = Media(tone=440)
    async with aiohttp.ClientSession() as session, connect(session, ws_port) as ws:  # type: ignore[attr-defined]
        browser = Browser(ws, "1001")
        assert (await browser.register()).status == 200
        engine.post("/api/v1/agents/1001/login")
        caller = Caller(engine)
        sender: ToneSender | None = None
        try:
            answer = await asyncio.to_thread(caller.call)
            engine_sdp = SessionDescription.parse(answer.body)
            target = (engine_sdp.connection.host, engine_sdp.media[0].port)  # type: ignore[union-attr]
            sender = ToneSender(caller, target)
            sender.start()
            invite = await browser.recv()
            assert isinstance(invite, Request) and invite.method == "INVITE"
            offer = SessionDescription.parse(invite.body)
            assert offer.media[0].proto == "UDP/TLS/RTP/SAVPF"
            assert offer.attribute("ice-lite") is not None
            sdp = await media.answer(invite.body)
            await browser.send(_ok(browser, invite, "b1", sdp))
            ack = await browser.recv()
            assert isinstance(ack, Request) and ack.method == "ACK"
            await eventually(
                lambda: engine.http_json("/api/v1/agents/1001")["state"] == "on_call",
                "agent 1001 on the call",
            )
            await eventually(lambda: len(media.heard) > 60, "the browser hearing 60 frames")
            await eventually(lambda: len(sender.heard) > 60, "the caller hearing 60 frames")  # type: ignore[union-attr]
            assert abs(dominant_frequency(media.received(skip=20)) - 1000) < 15
            back = np.frombuffer(
                b"".join(PCMU.decode(p).tobytes() for p in sender.heard[20:]), np.int16
            )
            assert abs(dominant_frequency(back) - 440) < 15
            sender.stop.set()
            sender.join(5)
            assert (await asyncio.to_thread(caller.hang_up)).status == 200
            bye = await browser.recv()
            assert isinstance(bye, Request) and bye.method == "BYE"
            await browser.send(_response(bye, "200 OK"))
        finally:
            if sender is not None:
                sender.stop.set()
                sender.join(5)
            caller.close()
            await media.close()
    (record,) = await asyncio.to_thread(wait_records, engine, 1)
    assert record["agent"] == "1001"
    wav_path = tmp_path / "call.wav"
    wav_path.write_bytes(engine.http_bytes(str(record["recording_url"])))
    wav = read_wav(wav_path)
    left = (wav.samples[:, 0] * 32767).astype(np.int16)
    right = (wav.samples[:, 1] * 32767).astype(np.int16)
    assert abs(dominant_frequency(_voiced(left)) - 1000) < 15
    assert abs(dominant_frequency(_voiced(right)) - 440) < 15
    held: dict[str, object] = {}

    def idle() -> bool:
        held.update(engine.http_json("/api/v1/live/resources"))
        return all(value == 0 for name, value in held.items() if name not in ("tasks", *_UNSETTLED))

    try:
        await eventually(idle, "ports, dialogs and transactions released", timeout=64 * 0.05 + 20)
    except AssertionError:
        raise AssertionError(f"still held: {held}") from None
    # Nothing of the call is referenced any more (the ACD keeps the agent's last
    # call's record, not the call, for a wrap-up code given later).
    assert (held["calls_alive"], held["legs_alive"]) == (0, 0), held
