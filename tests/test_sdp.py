"""SDP (RFC 4566) and offer/answer (RFC 3264): fixtures from real phones, negotiation, fuzz."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sip.sdp import (
    DEFAULT_FORMATS,
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Attribute,
    Connection,
    Format,
    Negotiation,
    Rtcp,
    SdpError,
    SessionDescription,
    Timing,
    is_hold,
    make_offer,
    negotiate,
    parse_answer,
    revise,
)


def _sdp(*lines: str) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode()


BARESIP_IP6 = _sdp(
    "v=0",
    "o=- 1912367218 3207561487 IN IP6 2001:db8:0:1::20",
    "s=-",
    "c=IN IP6 2001:db8:0:1::20",
    "t=0 0",
    "a=tool:baresip 1.0.0",
    "m=audio 10946 RTP/AVP 9 0 8 101",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=sendrecv",
    "a=label:1",
    "a=ssrc:2516364719 cname:ad9cf53c-52a1-4e6c-a4d1-0e5a5ebc9e50",
    "a=rtcp-rsize",
    "a=ptime:20",
)

LINPHONE = _sdp(
    "v=0",
    "o=1001 2134 1839 IN IP4 192.168.1.101",
    "s=Talk",
    "c=IN IP4 192.168.1.101",
    "t=0 0",
    "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics",
    "a=record:off",
    "m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100",
    "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 useinbandfec=1",
    "a=rtpmap:97 SILK/16000",
    "a=rtpmap:98 speex/16000",
    "a=fmtp:98 vbr=on",
    "a=fmtp:18 annexb=yes",
    "a=rtpmap:101 telephone-event/48000",
    "a=rtpmap:99 telephone-event/16000",
    "a=rtpmap:100 telephone-event/8000",
    "a=rtcp:7079",
    "a=rtcp-fb:* trr-int 1000",
    "a=rtcp-fb:* ccm tmmbr",
    "m=video 9078 RTP/AVP 96 97",
    "a=rtpmap:96 VP8/90000",
    "a=rtpmap:97 H264/90000",
    "a=fmtp:97 profile-level-id=42801F",
    "a=rtcp:9079",
    "a=rtcp-fb:* trr-int 1000",
    "a=rtcp-fb:96 nack pli",
    "a=rtcp-fb:97 ccm fir",
)

ZOIPER = _sdp(
    "v=0",
    "o=Z 0 1370546 IN IP4 10.0.0.52",
    "s=Z",
    "c=IN IP4 10.0.0.52",
    "t=0 0",
    "m=audio 52814 RTP/AVP 106 9 98 101 0 8 3",
    "a=rtpmap:106 opus/48000/2",
    "a=fmtp:106 sprop-maxcapturerate=16000; minptime=20; useinbandfec=1",
    "a=rtpmap:98 telephone-event/48000",
    "a=fmtp:98 0-16",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=sendrecv",
    "a=rtcp-mux",
)

PYVOIP = _sdp(
    "v=0",
    "o=pyVoIP 1612197478 1612197480 IN IP4 192.168.0.55",
    "s=pyVoIP 1.6.8",
    "c=IN IP4 192.168.0.55",
    "t=0 0",
    "m=audio 10348 RTP/AVP 0 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=ptime:20",
    "a=maxptime:150",
    "a=sendrecv",
)

# SIPp's built-in uac_pcap scenario with its keywords filled in.
SIPP_UAC_PCAP = _sdp(
    "v=0",
    "o=user1 53655765 2353687637 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 6000 RTP/AVP 8 101",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-11,16",
)

FREESWITCH = _sdp(
    "v=0",
    "o=FreeSWITCH 1712345678 1712345679 IN IP4 203.0.113.5",
    "s=FreeSWITCH",
    "c=IN IP4 203.0.113.5",
    "t=0 0",
    "m=audio 24602 RTP/AVP 8 0 101",
    "b=AS:64",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:30",
    "a=silenceSupp:off - - - -",
    "a=rtcp:24603 IN IP4 203.0.113.6",
)

FIXTURES = {
    "baresip-ipv6": BARESIP_IP6,
    "linphone": LINPHONE,
    "zoiper": ZOIPER,
    "pyvoip": PYVOIP,
    "sipp-uac-pcap": SIPP_UAC_PCAP,
    "freeswitch": FREESWITCH,
}

HERE = "192.0.2.10"


def _answer(offer: bytes | SessionDescription, **kwargs: Any) -> Negotiation:
    if isinstance(offer, bytes):
        offer = SessionDescription.parse(offer)
    return negotiate(offer, DEFAULT_FORMATS, HERE, 40000, session_id=77, version=1, **kwargs)


def _offer(*media_lines: str, session: tuple[str, ...] = ()) -> bytes:
    return _sdp(
        "v=0",
        "o=- 1 1 IN IP4 198.51.100.7",
        "s=-",
        "c=IN IP4 198.51.100.7",
        "t=0 0",
        *session,
        *media_lines,
    )


# -- parse and serialise ------------------------------------------------------------------


@pytest.mark.parametrize("raw", FIXTURES.values(), ids=FIXTURES.keys())
def test_real_phones_round_trip_byte_for_byte(raw: bytes) -> None:
    assert SessionDescription.parse(raw).serialize() == raw


@pytest.mark.parametrize("raw", FIXTURES.values(), ids=FIXTURES.keys())
def test_bare_lf_trailing_spaces_and_text_input_are_accepted(raw: bytes) -> None:
    sloppy = raw.replace(b"\r\n", b" \n") + b"\n"
    assert SessionDescription.parse(sloppy).serialize() == raw
    assert SessionDescription.parse(raw.decode()).serialize() == raw


def test_linphone_model() -> None:
    sdp = SessionDescription.parse(LINPHONE)
    assert sdp.origin.username == "1001"
    assert (sdp.origin.session_id, sdp.origin.version) == ("2134", 1839)
    assert sdp.name == "Talk"
    assert sdp.connection == Connection("IN", "IP4", "192.168.1.101")
    assert sdp.timing == [Timing(0, 0)]
    assert sdp.attribute("record") == Attribute("record", "off")
    audio, video = sdp.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 7078, "RTP/AVP")
    assert audio.payload_types == [96, 97, 98, 0, 8, 18, 101, 99, 100]
    assert audio.format(96) == Format(96, "opus", 48000, 2, "useinbandfec=1")
    assert audio.format(18) == Format(18, "G729", 8000, fmtp="annexb=yes")  # static, fmtp only
    assert audio.format(0) == PCMU
    assert audio.format(100) == Format(100, "telephone-event", 8000)
    assert audio.rtcp == Rtcp(7079)
    assert audio.direction is None
    assert sdp.direction_of(audio) == "sendrecv"
    assert audio.ptime is None
    assert [a.value for a in audio.attributes_named("rtcp-fb")] == [
        "* trr-int 1000",
        "* ccm tmmbr",
    ]
    assert video.format(97) == Format(97, "H264", 90000, fmtp="profile-level-id=42801F")


def test_ipv6_rtcp_mux_ptime_and_rtcp_address() -> None:
    baresip = SessionDescription.parse(BARESIP_IP6)
    assert baresip.connection == Connection("IN", "IP6", "2001:db8:0:1::20")
    assert baresip.origin.addrtype == "IP6"
    assert baresip.media[0].ptime == 20
    assert baresip.attribute("tool") == Attribute("tool", "baresip 1.0.0")
    zoiper = SessionDescription.parse(ZOIPER).media[0]
    assert zoiper.rtcp_mux and zoiper.direction == "sendrecv"
    pyvoip = SessionDescription.parse(PYVOIP).media[0]
    assert (pyvoip.ptime, pyvoip.maxptime) == (20, 150)
    freeswitch = SessionDescription.parse(FREESWITCH).media[0]
    assert freeswitch.rtcp == Rtcp(24603, Connection("IN", "IP4", "203.0.113.6"))
    assert [str(b) for b in freeswitch.bandwidths] == ["AS:64"]


def test_missing_s_and_t_get_defaults() -> None:
    sdp = SessionDescription.parse(
        b"v=0\r\no=- 5 5 IN IP4 10.1.1.1\r\nc=IN IP4 10.1.1.1\r\nm=audio 4000 RTP/AVP 0\r\n"
    )
    assert sdp.name == "-"
    assert sdp.timing == [Timing(0, 0)]
    assert b"s=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\n" in sdp.serialize()


def test_lines_the_model_does_not_interpret_are_kept() -> None:
    raw = _sdp(
        "v=0",
        "o=- 1 1 IN IP4 10.1.1.1",
        "s=call",
        "i=session info",
        "u=http://example.com/x",
        "e=ops@example.com",
        "c=IN IP4 10.1.1.1",
        "t=3034423619 3042462419",
        "r=7d 1h 0 25h",
        "z=2882844526 -1h",
        "a=x-unknown:1",
        "m=audio 4000/2 RTP/AVP 0",
        "i=audio stream",
        "c=IN IP4 224.2.1.1/127/2",
        "b=TIAS:64000",
        "k=prompt",
        "a=rtpmap:0 PCMU/8000",
        "y=0100000001",
        "m=application 5060 TCP/MSRP *",
        "a=accept-types:text/plain",
    )
    sdp = SessionDescription.parse(raw)
    assert sdp.serialize() == raw
    assert sdp.timing == [Timing(3034423619, 3042462419, ("7d 1h 0 25h",))]
    assert sdp.media[0].port_count == 2
    assert sdp.media[0].connection is not None
    assert sdp.media[0].connection.host == "224.2.1.1"
    assert sdp.media[0].extra_lines == [("i", "audio stream"), ("k", "prompt"), ("y", "0100000001")]
    assert sdp.media[1].formats == ["*"] and sdp.media[1].payload_types == []


def test_flag_and_empty_valued_attributes_stay_distinct() -> None:
    raw = _offer("m=audio 4000 RTP/AVP 0", "a=rtcp-mux", "a=x-empty:")
    media = SessionDescription.parse(raw).media[0]
    assert media.attributes == [Attribute("rtcp-mux"), Attribute("x-empty", "")]
    assert SessionDescription.parse(raw).serialize() == raw


def test_set_direction_replaces_in_place() -> None:
    media = SessionDescription.parse(PYVOIP).media[0]
    media.set_direction("sendonly")
    assert [a.name for a in media.attributes][-3:] == ["ptime", "maxptime", "sendonly"]
    media.attributes.insert(0, Attribute("inactive"))
    media.set_direction("recvonly")
    assert media.attributes[0] == Attribute("recvonly")
    assert [a.name for a in media.attributes].count("recvonly") == 1
    assert media.direction == "recvonly"


@pytest.mark.parametrize(
    ("raw", "line", "words"),
    [
        (b"", 1, "empty"),
        (b"o=- 1 1 IN IP4 1.2.3.4\r\n", 1, "v=0"),
        (b"v=1\r\n", 1, "version"),
        (b"v=0\r\nhello\r\n", 2, "<type>=<value>"),
        (b"v=0\r\no=- 1 IN IP4 1.2.3.4\r\n", 2, "6 fields"),
        (b"v=0\r\no=- 1 x IN IP4 1.2.3.4\r\n", 2, "o= version 'x' is not a number"),
        (b"v=0\r\no=- 1 1 IN IP4 999.1.1.1\r\n", 2, "not an IP4 address"),
        (_offer("m=audio abc RTP/AVP 0"), 6, "m= port 'abc' is not a number"),
        (_offer("m=audio 70000 RTP/AVP 0"), 6, "out of range"),
        (_offer("m=audio 4000 RTP/AVP PCMU"), 6, "not an RTP payload type"),
        (_offer("m=audio 4000 RTP/AVP 128"), 6, "not an RTP payload type"),
        (_offer("m=audio 4000 RTP/AVP"), 6, "no formats"),
        (_offer("m=audio 4000 RTP/AVP 96", "a=rtpmap:96 opus"), 7, "a=rtpmap must be"),
        (_offer("m=audio 4000 RTP/AVP 0", "a=ptime:abc"), 7, "a=ptime 'abc'"),
        (_offer("m=audio 4000 RTP/AVP 0", "a=rtcp:x"), 7, "a=rtcp port"),
        (_offer("m=audio 4000 RTP/AVP 0", "c=IN IP6 10.0.0.1"), 7, "IP6"),
        (_offer("m=audio 4000 RTP/AVP 0", "t=0 0"), 7, "session-level"),
        (_offer(session=("o=- 2 2 IN IP4 1.1.1.1",)), 6, "second o="),
        (b"v=0\r\ns=-\r\nc=IN IP4 1.2.3.4\r\n", None, "missing o="),
        (b"v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\n\r\nm=audio 4000 RTP/AVP 0\r\n", 4, "no c= line"),
    ],
)
def test_parse_errors_name_the_line(raw: bytes, line: int | None, words: str) -> None:
    with pytest.raises(SdpError) as caught:
        SessionDescription.parse(raw)
    assert caught.value.line == line
    assert words in str(caught.value)
    if line is not None:
        assert str(caught.value).startswith(f"line {line}: ")


def test_rejected_stream_without_formats_or_connection_is_accepted() -> None:
    sdp = SessionDescription.parse(b"v=0\r\no=- 1 1 IN IP4 1.1.1.1\r\nm=video 0 RTP/AVP\r\n")
    assert sdp.media[0].port == 0 and sdp.media[0].formats == []


# -- offer/answer -------------------------------------------------------------------------


def test_make_offer() -> None:
    offer = make_offer(HERE, 40000, session_id=3912847561, version=1)
    assert offer.serialize() == _sdp(
        "v=0",
        "o=- 3912847561 1 IN IP4 192.0.2.10",
        "s=-",
        "c=IN IP4 192.0.2.10",
        "t=0 0",
        "m=audio 40000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    )
    held = make_offer("2001:db8::5", 40000, direction="sendonly", session_id=1, version=2)
    assert held.connection == Connection("IN", "IP6", "2001:db8::5")
    assert is_hold(held)
    with pytest.raises(ValueError):
        make_offer(HERE, 70000, session_id=1, version=1)


def test_answer_to_a_pcmu_offer() -> None:
    result = _answer(PYVOIP)
    assert result.accepted
    assert result.codec == PCMU
    assert result.telephone_event == 101
    assert result.ptime == 20
    assert result.direction == "sendrecv" and result.sends and result.receives
    assert result.remote_rtp == ("192.168.0.55", 10348)
    assert result.remote_rtcp == ("192.168.0.55", 10349)
    assert result.answer.serialize() == _sdp(
        "v=0",
        "o=- 77 1 IN IP4 192.0.2.10",
        "s=-",
        "c=IN IP4 192.0.2.10",
        "t=0 0",
        "m=audio 40000 RTP/AVP 0 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    )


def test_offerers_preference_order_wins() -> None:
    result = _answer(FREESWITCH)  # 8 0 101, and we list PCMU first
    assert result.codec == PCMA
    assert result.answer.media[0].formats == ["8", "101"]
    assert result.ptime == 30  # the offer's ptime is honoured
    assert b"a=ptime:30\r\n" in result.answer.serialize()
    assert result.remote_rtcp == ("203.0.113.6", 24603)


def test_sipp_offer_gets_pcma() -> None:
    result = _answer(SIPP_UAC_PCAP)
    assert (result.codec, result.telephone_event, result.ptime) == (PCMA, 101, 20)


def test_telephone_event_keeps_the_offerers_payload_type() -> None:
    offer = _offer(
        "m=audio 5004 RTP/AVP 0 96", "a=rtpmap:96 telephone-event/8000", "a=fmtp:96 0-15"
    )
    result = _answer(offer)
    assert result.telephone_event == 96
    media = result.answer.media[0]
    assert media.formats == ["0", "96"]
    assert media.format(96) == Format(96, "telephone-event", 8000, fmtp="0-16")
    assert media.format(101) is None


def test_telephone_event_matches_the_codec_clock_rate() -> None:
    result = _answer(LINPHONE)  # 101 is /48000, 99 /16000, 100 /8000
    assert result.codec == PCMU
    assert result.telephone_event == 100
    assert result.remote_rtcp == ("192.168.1.101", 7079)
    zoiper = _answer(ZOIPER)  # 98 is /48000, 101 /8000
    assert zoiper.telephone_event == 101
    no_dtmf = _answer(_offer("m=audio 5004 RTP/AVP 0 97", "a=rtpmap:97 telephone-event/16000"))
    assert no_dtmf.accepted and no_dtmf.telephone_event is None
    assert no_dtmf.answer.media[0].formats == ["0"]


def test_static_payload_types_without_rtpmap() -> None:
    result = _answer(_offer("m=audio 5004 RTP/AVP 18 8 0"))
    assert result.codec == PCMA
    assert result.telephone_event is None


def test_dynamic_payload_type_for_a_static_codec() -> None:
    result = _answer(_offer("m=audio 5004 RTP/AVP 112", "a=rtpmap:112 pcmu/8000"))
    assert result.codec == Format(112, "PCMU", 8000)


def test_no_common_codec_is_not_accepted() -> None:
    result = _answer(_offer("m=audio 5004 RTP/AVP 18 9 101", "a=rtpmap:101 telephone-event/8000"))
    assert not result.accepted
    assert result.codec is None and result.remote_rtp is None
    assert result.direction == "inactive"
    media = result.answer.media[0]
    assert (media.port, media.formats) == (0, ["18", "9", "101"])
    assert b"m=audio 0 RTP/AVP 18 9 101\r\n" in result.answer.serialize()


def test_rejected_offer_stream_and_srtp_are_answered_with_port_zero() -> None:
    assert not _answer(_offer("m=audio 0 RTP/AVP 0")).accepted
    srtp = _answer(_offer("m=audio 5004 RTP/SAVP 0", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 x"))
    assert not srtp.accepted and srtp.answer.media[0].port == 0


def test_video_is_rejected_and_audio_accepted_in_order() -> None:
    offer = _offer(
        "m=video 5006 RTP/AVP 97",
        "a=rtpmap:97 H264/90000",
        "m=audio 5004 RTP/AVP 8",
        "m=audio 5008 RTP/AVP 0",
        "m=image 5010 udptl t38",
    )
    result = _answer(offer)
    assert result.accepted and result.media_index == 1
    assert result.remote_rtp == ("198.51.100.7", 5004)
    answered = [(m.media, m.port, m.formats) for m in result.answer.media]
    assert answered == [
        ("video", 0, ["97"]),
        ("audio", 40000, ["8"]),
        ("audio", 0, ["0"]),
        ("image", 0, ["t38"]),
    ]
    linphone = _answer(LINPHONE).answer
    assert [(m.media, m.port) for m in linphone.media] == [("audio", 40000), ("video", 0)]


def test_media_level_connection_wins() -> None:
    result = _answer(_offer("m=audio 5004 RTP/AVP 0", "c=IN IP6 2001:db8::9"))
    assert result.remote_rtp == ("2001:db8::9", 5004)


@pytest.mark.parametrize(
    ("offered", "requested", "answered"),
    [
        ("sendrecv", None, "sendrecv"),
        ("sendonly", None, "recvonly"),
        ("recvonly", None, "sendonly"),
        ("inactive", None, "inactive"),
        ("sendrecv", "sendonly", "sendonly"),
        ("sendonly", "sendonly", "inactive"),
        ("recvonly", "inactive", "inactive"),
    ],
)
def test_answer_direction(offered: str, requested: str | None, answered: str) -> None:
    offer = SessionDescription.parse(_offer("m=audio 5004 RTP/AVP 0", f"a={offered}"))
    result = _answer(offer, direction=requested)
    assert result.accepted
    assert result.direction == answered
    assert result.answer.media[0].direction == answered
    assert is_hold(offer) == (offered in ("sendonly", "inactive"))


def test_session_level_direction_applies_to_streams() -> None:
    offer = SessionDescription.parse(_offer("m=audio 5004 RTP/AVP 0", session=("a=sendonly",)))
    assert is_hold(offer)
    assert _answer(offer).direction == "recvonly"


def test_rfc2543_hold_with_null_address() -> None:
    offer = SessionDescription.parse(
        _sdp("v=0", "o=- 1 2 IN IP4 198.51.100.7", "s=-", "c=IN IP4 0.0.0.0", "t=0 0")
        + _sdp("m=audio 5004 RTP/AVP 0", "a=sendrecv")
    )
    assert is_hold(offer)
    result = _answer(offer)
    assert result.accepted
    assert result.direction == "recvonly" and not result.sends
    assert result.remote_address == "0.0.0.0"
    assert not is_hold(SessionDescription.parse(PYVOIP))
    assert not is_hold(SessionDescription.parse(_offer("m=audio 0 RTP/AVP 0")))


def test_ptime_falls_back_to_maxptime_then_default() -> None:
    assert _answer(_offer("m=audio 5004 RTP/AVP 0", "a=maxptime:10")).ptime == 10
    assert _answer(_offer("m=audio 5004 RTP/AVP 0", "a=ptime:20.0")).ptime == 20
    assert _answer(_offer("m=audio 5004 RTP/AVP 0"), ptime=30).ptime == 30
    assert _answer(_offer("m=audio 5004 RTP/AVP 0", session=("a=ptime:40",))).ptime == 40


def test_parse_answer_as_offerer() -> None:
    offer = make_offer(HERE, 40000, session_id=9, version=1)
    answer = SessionDescription.parse(
        _offer(
            "m=audio 6000 RTP/AVP 8 96",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:96 telephone-event/8000",
            "a=fmtp:96 0-15",
            "a=ptime:30",
            "a=recvonly",
        )
    )
    result = parse_answer(offer, answer)
    assert result.accepted and result.answer is answer
    assert result.codec == PCMA
    assert result.telephone_event == 96  # the number the agent's phone wants to receive
    assert result.ptime == 30
    assert result.direction == "sendonly"
    assert result.remote_rtp == ("198.51.100.7", 6000)


def test_parse_answer_rejections_and_mismatches() -> None:
    offer = make_offer(HERE, 40000, session_id=9, version=1)
    rejected = SessionDescription.parse(_offer("m=audio 0 RTP/AVP 0"))
    assert not parse_answer(offer, rejected).accepted
    with pytest.raises(SdpError, match="m= lines"):
        parse_answer(offer, SessionDescription.parse(_offer()))
    with pytest.raises(SdpError, match="video"):
        parse_answer(offer, SessionDescription.parse(_offer("m=video 6000 RTP/AVP 97")))


def test_our_answer_reads_back_as_the_same_negotiation() -> None:
    for raw in FIXTURES.values():
        offer = SessionDescription.parse(raw)
        ours = _answer(offer)
        theirs = parse_answer(offer, SessionDescription.parse(ours.answer.serialize()))
        assert (theirs.codec, theirs.telephone_event) == (ours.codec, ours.telephone_event)
        assert theirs.direction == "sendrecv" == ours.direction


def test_versions_follow_rfc3264_section_8() -> None:
    first = make_offer(HERE, 40000, session_id=5, version=1)
    assert first.next_version().origin.version == 2
    assert first.origin.version == 1
    same = make_offer(HERE, 40000, session_id=999, version=42)
    assert revise(first, same).origin == first.origin  # unchanged re-offer keeps the version
    hold = revise(first, make_offer(HERE, 40000, direction="sendonly", session_id=5, version=1))
    assert hold.origin.version == 2 and hold.origin.session_id == "5"
    resume = revise(hold, make_offer(HERE, 40000, session_id=5, version=0))
    assert resume.origin.version == 3
    assert resume.media[0].direction == "sendrecv"


def test_answer_to_a_re_invite_that_holds() -> None:
    first = _answer(PYVOIP)
    held_offer = SessionDescription.parse(PYVOIP.replace(b"a=sendrecv", b"a=sendonly"))
    again = _answer(held_offer)
    body = revise(first.answer, again.answer)
    assert again.direction == "recvonly"
    assert body.origin.version == first.answer.origin.version + 1
    assert revise(body, _answer(held_offer).answer).origin.version == body.origin.version


def test_format_helpers() -> None:
    assert Format(96, "opus", 48000, 2).rtpmap == "96 opus/48000/2"
    assert TELEPHONE_EVENT.rtpmap == "101 telephone-event/8000"
    assert TELEPHONE_EVENT.is_auxiliary and not PCMU.is_auxiliary
    assert Format(112, "pcmu", 8000).same_codec(PCMU)


# -- fuzz ---------------------------------------------------------------------------------

_LETTERS = "vosicbtrzkamuepxy"
_VALUES = st.text(alphabet="0123456789 ./:-IPN46abcdefAVRTPm=*\t²", max_size=30) | st.sampled_from(
    [
        "0",
        "- 1 1 IN IP4 1.2.3.4",
        "IN IP4 10.0.0.1",
        "IN IP6 ::1",
        "IN IP4 0.0.0.0",
        "0 0",
        "audio 4000 RTP/AVP 0 8 101",
        "audio 0 RTP/AVP 0",
        "video 4002 RTP/AVP 96",
        "rtpmap:101 telephone-event/8000",
        "rtpmap:96 telephone-event/8000",
        "fmtp:101 0-16",
        "ptime:30",
        "maxptime:10",
        "sendonly",
        "inactive",
        "recvonly",
        "rtcp:4001 IN IP4 10.0.0.2",
        "rtcp-mux",
        "AS:64",
    ]
)
_LINES = st.lists(st.tuples(st.sampled_from(_LETTERS), _VALUES), max_size=16).map(
    lambda lines: ["v=0", "o=- 1 1 IN IP4 1.2.3.4", *(f"{k}={v}" for k, v in lines)]
)


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for position, length, insert in edits:
        at = position % (len(data) + 1)
        data = data[:at] + insert + data[at + length :]
    return data


_MUTATED = st.builds(
    _mutate,
    st.sampled_from(list(FIXTURES.values())),
    st.lists(
        st.tuples(
            st.integers(0, 2000),
            st.integers(0, 4),
            st.sampled_from([b"", b" ", b"\r\n", b"=", b"/", b":", b"9", b"\xff", b"a=", b"m="]),
        ),
        max_size=4,
    ),
)


def _check(data: bytes | str) -> None:
    """Parse only raises SdpError; what parses, reserialises stably and negotiates."""
    try:
        sdp = SessionDescription.parse(data)
    except SdpError:
        return
    again = SessionDescription.parse(sdp.serialize())
    assert again == sdp
    assert again.serialize() == sdp.serialize()
    result = _answer(sdp)
    answer = SessionDescription.parse(result.answer.serialize())
    assert len(answer.media) == len(sdp.media)
    assert parse_answer(sdp, answer).codec == result.codec
    is_hold(sdp)


_FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data: bytes) -> None:
    _check(data)


@_FUZZ
@given(st.text(max_size=200))
def test_fuzz_random_text(data: str) -> None:
    _check(data)


@_FUZZ
@given(_MUTATED)
def test_fuzz_mutated_phone_sdp(data: bytes) -> None:
    _check(data)


@_FUZZ
@given(_LINES)
def test_fuzz_generated_lines(lines: list[str]) -> None:
    _check("\r\n".join(lines))
