"""A WebRTC leg against aiortc as the browser, on loopback: ICE-lite, DTLS-SRTP, audio both ways.

The engine's side is a :class:`media.webrtc.WebRtcLeg`; the browser's is an
aiortc peer connection (tests/webrtc_peer.py) sending a 440 Hz tone while
the leg sends 1 kHz. Each side must hear the other's tone, decoded, so ICE,
the handshake, key export, SRTP and rtcp-mux are all checked at once. Both
directions of the offer are tried: the engine ringing a browser agent (we
offer actpass, the browser answers active) and a browser calling in (it
offers actpass, we answer active and start the handshake ourselves).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from media import PCMA, PCMU, Bridge, PortPool, Recorder, RtpLeg, read_wav
from media.dtls import DtlsCertificate, DtlsRole, Fingerprint
from media.ice import host_candidate
from media.webrtc import WebRtcLeg
from sip import DEFAULT_FORMATS, SecureMedia, SessionDescription, make_offer, negotiate
from sip.sdp import Negotiation, parse_answer

from .webrtc_peer import Browser, dominant_frequency

CERTIFICATE = DtlsCertificate.generate()
HOST = "127.0.0.1"


def secure_of(leg: WebRtcLeg, setup: str = "actpass") -> SecureMedia:
    return SecureMedia(
        ice_ufrag=leg.webrtc.credentials.ufrag,
        ice_pwd=leg.webrtc.credentials.pwd,
        fingerprint=str(leg.webrtc.fingerprint),
        setup=setup,  # type: ignore[arg-type]
        candidates=(host_candidate(HOST, leg.local_address[1]),),
        ice_lite=True,
        mid="0",
    )


def apply(leg: WebRtcLeg, negotiation: Negotiation, role: DtlsRole) -> None:
    assert negotiation.accepted and negotiation.codec is not None
    assert negotiation.secure is not None
    leg.configure(
        negotiation.remote_rtp,
        PCMU,
        negotiation.codec.payload_type,
        telephone_event_pt=negotiation.telephone_event,
    )
    leg.webrtc.start(
        role, negotiation.secure.ice_ufrag, Fingerprint.parse(negotiation.secure.fingerprint)
    )


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def exchange_tones(leg: WebRtcLeg, browser: Browser) -> np.ndarray:
    """Send 1 kHz from the leg for 1.6 s while collecting what it receives; returns that."""
    heard: list[bytes] = []
    leg.on_audio = lambda _leg, payload, _ts, _arrival: heard.append(payload)
    tone = PCMU.encode(
        (8000 * np.sin(2 * math.pi * 1000 * np.arange(160 * 80) / 8000)).astype(np.int16)
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(80):
        leg.send_audio(tone[i * 160 : (i + 1) * 160], 160)
        # Media pacing: one 20 ms frame per period, as the media clock sends.
        await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - loop.time()))
    await until(lambda: len(browser.heard) > 40, 5, "the browser to hear 40 frames")
    return np.frombuffer(b"".join(PCMU.decode(p).tobytes() for p in heard[10:]), np.int16)


async def test_engine_offers_and_the_browser_answers(pool: PortPool) -> None:
    leg = await WebRtcLeg.open_webrtc(pool, HOST, CERTIFICATE, handshake_timeout=10)
    failures: list[str] = []
    leg.on_failed = lambda _leg, reason: failures.append(reason)
    browser = Browser(tone=440)
    try:
        offer = make_offer(
            HOST, leg.local_address[1], session_id=1, version=1, secure=secure_of(leg)
        )
        answer = SessionDescription.parse(await browser.answer(offer.serialize()))
        negotiation = parse_answer(offer, answer)
        assert negotiation.secure is not None and negotiation.secure.setup == "active"
        apply(leg, negotiation, DtlsRole.SERVER)
        await until(lambda: leg.webrtc.connected, 10, "ICE and DTLS")
        heard = await exchange_tones(leg, browser)
        assert abs(dominant_frequency(heard) - 440) < 15
        assert abs(dominant_frequency(browser.received()) - 1000) < 15
        assert leg.webrtc.packets_refused == 0
        assert leg.webrtc.ice.nominated
        assert failures == []
    finally:
        await browser.close()
        leg.close()


async def test_the_browser_offers_and_the_engine_answers(pool: PortPool) -> None:
    leg = await WebRtcLeg.open_webrtc(pool, HOST, CERTIFICATE, handshake_timeout=10)
    browser = Browser(tone=440)
    try:
        offer = SessionDescription.parse(await browser.offer())
        negotiation = negotiate(
            offer,
            DEFAULT_FORMATS,
            HOST,
            leg.local_address[1],
            session_id=2,
            version=1,
            secure=secure_of(leg),
        )
        media = negotiation.answer.media[0]
        assert media.attribute("setup").value == "active"  # type: ignore[union-attr]
        apply(leg, negotiation, DtlsRole.CLIENT)
        await browser.accept(negotiation.answer.serialize())
        await until(lambda: leg.webrtc.connected, 10, "ICE and DTLS")
        assert leg.webrtc.role is DtlsRole.CLIENT
        heard = await exchange_tones(leg, browser)
        assert abs(dominant_frequency(heard) - 440) < 15
        assert abs(dominant_frequency(browser.received()) - 1000) < 15
    finally:
        await browser.close()
        leg.close()


async def test_no_browser_means_the_handshake_times_out(pool: PortPool) -> None:
    leg = await WebRtcLeg.open_webrtc(pool, HOST, CERTIFICATE, handshake_timeout=0.3)
    failed = asyncio.get_running_loop().create_future()
    leg.on_failed = lambda _leg, reason: failed.set_result(reason)
    try:
        leg.configure(("127.0.0.1", 9), PCMU, 0)
        leg.webrtc.start(DtlsRole.SERVER, "gone", CERTIFICATE.fingerprint)
        reason = await asyncio.wait_for(failed, 5)
        assert "ICE did not complete within 0.3 s" in reason
    finally:
        leg.close()


async def test_consent_lost_when_the_browser_goes(pool: PortPool) -> None:
    leg = await WebRtcLeg.open_webrtc(pool, HOST, CERTIFICATE, consent_timeout=1.0)
    failed = asyncio.get_running_loop().create_future()
    leg.on_failed = lambda _leg, reason: failed.set_result(reason)
    browser = Browser(tone=440)
    try:
        offer = make_offer(
            HOST, leg.local_address[1], session_id=1, version=1, secure=secure_of(leg)
        )
        negotiation = parse_answer(
            offer, SessionDescription.parse(await browser.answer(offer.serialize()))
        )
        apply(leg, negotiation, DtlsRole.SERVER)
        await until(lambda: leg.webrtc.connected, 10, "ICE and DTLS")
        assert not failed.done()
        # The browser vanishes without a word, as a killed tab does: its ICE
        # agent stops (no more consent checks) and no close_notify is sent.
        for transceiver in browser.pc.getTransceivers():
            await transceiver.sender.transport.transport._connection.close()
        reason = await asyncio.wait_for(failed, 10)
        assert "no ICE consent from the browser for 1 s" in reason
    finally:
        await browser.close()
        leg.close()


async def test_bridged_to_a_plain_leg_and_recorded(pool: PortPool, tmp_path: Path) -> None:
    """A caller's plain RTP leg bridged to the browser's WebRTC leg, as an agent's call is.

    The caller's phone is a plain leg of its own (``phone``) sending 1 kHz in
    PCMA; the browser sends 440 Hz. Each hears the other through the bridge
    (which transcodes A-law to mu-law for the browser), and the stereo
    recording holds the caller on the left, the browser on the right.
    """
    browser_leg = await WebRtcLeg.open_webrtc(pool, HOST, CERTIFICATE)
    caller_leg = await RtpLeg.open(pool, HOST)
    phone = await RtpLeg.open(pool, HOST)
    browser = Browser(tone=440)
    recorder = Recorder(tmp_path / "call.wav")
    bridge: Bridge | None = None
    try:
        offer = make_offer(
            HOST,
            browser_leg.local_address[1],
            session_id=1,
            version=1,
            secure=secure_of(browser_leg),
        )
        negotiation = parse_answer(
            offer, SessionDescription.parse(await browser.answer(offer.serialize()))
        )
        apply(browser_leg, negotiation, DtlsRole.SERVER)
        caller_leg.configure(phone.local_address, PCMA, 8)
        phone.configure(caller_leg.local_address, PCMA, 8)
        await until(lambda: browser_leg.webrtc.connected, 10, "ICE and DTLS")
        bridge = Bridge(caller_leg, browser_leg, recorder)
        heard: list[bytes] = []
        phone.on_audio = lambda _leg, payload, _ts, _arrival: heard.append(payload)
        tone = PCMA.encode(
            (8000 * np.sin(2 * math.pi * 1000 * np.arange(160 * 80) / 8000)).astype(np.int16)
        )
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(80):
            phone.send_audio(tone[i * 160 : (i + 1) * 160], 160)
            await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - loop.time()))
        await until(lambda: len(browser.heard) > 40 and len(heard) > 40, 5, "both sides")
        from_browser = np.frombuffer(
            b"".join(PCMA.decode(p).tobytes() for p in heard[10:]), np.int16
        )
        assert abs(dominant_frequency(from_browser) - 440) < 15
        assert abs(dominant_frequency(browser.received()) - 1000) < 15
        bridge.stop()
        bridge = None
        await recorder.close()
        wav = read_wav(tmp_path / "call.wav")
        assert wav.channels == 2
        left = (wav.samples[:, 0] * 32767).astype(np.int16)
        right = (wav.samples[:, 1] * 32767).astype(np.int16)
        assert abs(dominant_frequency(left[left != 0]) - 1000) < 15
        assert abs(dominant_frequency(right[right != 0]) - 440) < 15
    finally:
        if bridge is not None:
            bridge.stop()
            await recorder.close()
        await browser.close()
        for leg in (browser_leg, caller_leg, phone):
            leg.close()
