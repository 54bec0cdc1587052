"""SDP for WebRTC audio: our ICE-lite offer, answering a browser's offer, reading its answer."""

from __future__ import annotations

import pytest

from sip import (
    DEFAULT_FORMATS,
    WEBRTC_PROTO,
    SdpError,
    SecureMedia,
    SessionDescription,
    answer_setup,
    is_hold,
    make_offer,
    negotiate,
)
from sip.sdp import parse_answer

FINGERPRINT = "sha-256 " + ":".join(["AB"] * 32)
OURS = SecureMedia(
    ice_ufrag="lite",
    ice_pwd="enginepasswordenginepass",
    fingerprint=FINGERPRINT,
    setup="actpass",
    candidates=("1 1 udp 2130706431 192.0.2.1 20000 typ host",),
    ice_lite=True,
)

# What Chromium offers for one microphone (trimmed of video, ids shortened).
CHROME_OFFER = (
    "v=0\r\n"
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0\r\n"
    "a=extmap-allow-mixed\r\n"
    "a=msid-semantic: WMS stream\r\n"
    "m=audio 54400 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n"
    "c=IN IP4 192.0.2.33\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=candidate:3348839131 1 udp 2122260223 192.0.2.33 54400 typ host generation 0\r\n"
    "a=ice-ufrag:7sFv\r\n"
    "a=ice-pwd:dOTZKZNVlO9RSGsEGM63JXT2\r\n"
    "a=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:"
    "24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n"
    "a=setup:actpass\r\n"
    "a=mid:0\r\n"
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"
    "a=sendrecv\r\n"
    "a=msid:stream track\r\n"
    "a=rtcp-mux\r\n"
    "a=rtpmap:111 opus/48000/2\r\n"
    "a=rtcp-fb:111 transport-cc\r\n"
    "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
    "a=rtpmap:63 red/48000/2\r\n"
    "a=fmtp:63 111/111\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:13 CN/8000\r\n"
    "a=rtpmap:110 telephone-event/48000\r\n"
    "a=rtpmap:126 telephone-event/8000\r\n"
    "a=ssrc:3735928559 cname:abc\r\n"
)


def _answer(offer: str, secure: SecureMedia | None = OURS):  # type: ignore[no-untyped-def]
    return negotiate(
        SessionDescription.parse(offer),
        DEFAULT_FORMATS,
        "192.0.2.1",
        20000,
        session_id=1,
        version=1,
        secure=secure,
    )


def test_our_offer_is_webrtc() -> None:
    offer = make_offer("192.0.2.1", 20000, session_id=1, version=1, secure=OURS)
    text = offer.serialize().decode()
    assert "m=audio 20000 UDP/TLS/RTP/SAVPF 0 8 101\r\n" in text
    for line in (
        "a=ice-lite",
        "a=ice-ufrag:lite",
        "a=ice-pwd:enginepasswordenginepass",
        f"a=fingerprint:{FINGERPRINT}",
        "a=setup:actpass",
        "a=rtcp-mux",
        "a=candidate:1 1 udp 2130706431 192.0.2.1 20000 typ host",
        "a=end-of-candidates",
    ):
        assert f"\r\n{line}\r\n" in text
    # a=ice-lite is a session-level line (RFC 8839 5.3), before m=.
    assert text.index("a=ice-lite") < text.index("m=audio")
    assert text.rstrip().endswith("a=sendrecv")
    assert SessionDescription.parse(offer.serialize()) == offer
    read = SecureMedia.read(offer, offer.media[0])
    assert read == OURS


def test_answering_chromes_offer() -> None:
    negotiation = _answer(CHROME_OFFER)
    assert negotiation.accepted
    assert negotiation.codec is not None and negotiation.codec.encoding == "PCMU"
    assert negotiation.telephone_event == 126
    assert negotiation.remote_rtp == ("192.0.2.33", 54400)
    theirs = negotiation.secure
    assert theirs is not None
    assert (theirs.ice_ufrag, theirs.ice_pwd, theirs.setup, theirs.mid) == (
        "7sFv",
        "dOTZKZNVlO9RSGsEGM63JXT2",
        "actpass",
        "0",
    )
    assert theirs.fingerprint.startswith("sha-256 7B:8B")
    assert not theirs.ice_lite and theirs.rtcp_mux
    media = negotiation.answer.media[0]
    assert media.proto == WEBRTC_PROTO and media.formats == ["0", "126"]
    assert media.attribute("setup") is not None
    assert media.attribute("setup").value == "active"  # type: ignore[union-attr]
    assert media.attribute("mid").value == "0"  # type: ignore[union-attr]
    assert media.attribute("rtcp-mux") is not None
    assert negotiation.answer.attribute("ice-lite") is not None


def test_a_browser_offer_is_refused_without_webrtc_media() -> None:
    """A leg that was not opened for WebRTC answers a SAVPF stream with port 0 (then 488)."""
    assert not _answer(CHROME_OFFER, secure=None).accepted


def test_a_plain_offer_is_refused_by_a_webrtc_leg() -> None:
    plain = make_offer("192.0.2.9", 4000, session_id=2, version=1).serialize().decode()
    assert not _answer(plain).accepted
    assert _answer(plain, secure=None).accepted


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.replace("a=rtcp-mux\r\n", ""),
        lambda s: s.replace("a=ice-pwd:dOTZKZNVlO9RSGsEGM63JXT2\r\n", ""),
        lambda s: s.replace("a=setup:actpass", "a=setup:holdconn"),
        lambda s: "".join(line for line in s.splitlines(True) if "fingerprint" not in line),
    ],
)
def test_unusable_browser_offers_are_refused(edit) -> None:  # type: ignore[no-untyped-def]
    assert not _answer(edit(CHROME_OFFER)).accepted


@pytest.mark.parametrize(
    ("offered", "ours"), [("actpass", "active"), ("active", "passive"), ("passive", "active")]
)
def test_answer_setup(offered: str, ours: str) -> None:
    assert answer_setup(offered) == ours


def test_answer_setup_refuses_holdconn() -> None:
    with pytest.raises(SdpError):
        answer_setup("holdconn")


def test_ice_null_connection_is_no_hold() -> None:
    trickled = CHROME_OFFER.replace("c=IN IP4 192.0.2.33", "c=IN IP4 0.0.0.0")
    sdp = SessionDescription.parse(trickled)
    assert not is_hold(sdp)
    negotiation = _answer(trickled)
    assert negotiation.sends and negotiation.receives
    assert is_hold(SessionDescription.parse(trickled.replace("a=sendrecv", "a=sendonly")))


def test_reading_a_browsers_answer_to_our_offer() -> None:
    offer = make_offer("192.0.2.1", 20000, session_id=1, version=1, secure=OURS)
    answer = (
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 0 101\r\nc=IN IP4 0.0.0.0\r\n"
        "a=ice-ufrag:brws\r\na=ice-pwd:browserpasswordbrowserpw\r\n"
        f"a=fingerprint:{FINGERPRINT}\r\na=setup:active\r\na=mid:0\r\na=rtcp-mux\r\n"
        "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
    negotiation = parse_answer(offer, SessionDescription.parse(answer))
    assert negotiation.accepted and negotiation.sends
    assert negotiation.secure is not None and negotiation.secure.setup == "active"
    assert negotiation.secure.ice_ufrag == "brws"
    plain = answer.replace("UDP/TLS/RTP/SAVPF", "RTP/AVP")
    assert not parse_answer(offer, SessionDescription.parse(plain)).accepted


@pytest.mark.parametrize(
    ("established", "offered", "answered"),
    [
        ("passive", "actpass", "passive"),  # a browser's re-offer: we keep our role
        ("active", "actpass", "active"),
        ("passive", "active", "passive"),
        ("active", "active", None),  # both active: refused
        ("passive", "passive", None),
    ],
)
def test_a_reoffer_keeps_the_established_role(
    established: str, offered: str, answered: str | None
) -> None:
    from dataclasses import replace

    offer = CHROME_OFFER.replace("a=setup:actpass", f"a=setup:{offered}")
    negotiation = _answer(offer, secure=replace(OURS, setup=established))  # type: ignore[arg-type]
    if answered is None:
        assert not negotiation.accepted
    else:
        setup = negotiation.answer.media[0].attribute("setup")
        assert setup is not None and setup.value == answered
