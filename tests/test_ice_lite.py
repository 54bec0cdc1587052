"""STUN (RFC 8489), the ICE-lite responder and RFC 7983 demultiplexing, without sockets.

The STUN vectors are RFC 5769's: a request and responses whose
MESSAGE-INTEGRITY and FINGERPRINT were computed by others, so our checks and
our serialiser are held to an outside reference. The responder is driven
with checks built the way a browser builds them, and a fake clock.
"""

from __future__ import annotations

import pytest

from media.demux import PacketKind, classify
from media.ice import (
    CandidateSelected,
    ConsentExpired,
    IceCredentials,
    IceLiteResponder,
    host_candidate,
)
from media.stun import (
    BINDING_ERROR,
    BINDING_REQUEST,
    BINDING_SUCCESS,
    ICE_CONTROLLED,
    ICE_CONTROLLING,
    PRIORITY,
    SOFTWARE,
    USE_CANDIDATE,
    USERNAME,
    StunError,
    StunMessage,
    is_stun,
    verify_fingerprint,
    verify_integrity,
)

# RFC 5769 2.1: a Binding request with USERNAME "evtj:h6vY".
REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae"
    "802200105354554e20746573742063 6c69656e74"
    "002400046e0001ff"
    "80290008932ff9b151263b36"
    "000600096576746a3a68367659202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    "80280004e57a3bcf".replace(" ", "")
)
PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"
# RFC 5769 2.2: the IPv4 response, mapped address 192.0.2.1:32853.
RESPONSE_V4 = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)
# RFC 5769 2.3: the IPv6 response, 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
RESPONSE_V6 = bytes.fromhex(
    "010100482112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
    "00080014a382954e4be67bf11784c97c8292c275bfe3ed41"
    "80280004c8fb0b4c"
)


def test_rfc5769_request_parses_and_verifies() -> None:
    message = StunMessage.parse(REQUEST)
    assert message.message_type == BINDING_REQUEST
    assert message.transaction_id == bytes.fromhex("b7e7a701bc34d686fa87dfae")
    assert message.username == "evtj:h6vY"
    assert message.priority == 0x6E0001FF
    assert message.has(ICE_CONTROLLED)
    assert message.has_integrity and message.has_fingerprint
    assert verify_integrity(REQUEST, PASSWORD)
    assert not verify_integrity(REQUEST, b"wrong")
    assert verify_fingerprint(REQUEST)
    assert is_stun(REQUEST)


@pytest.mark.parametrize(
    ("data", "address"),
    [
        (RESPONSE_V4, ("192.0.2.1", 32853)),
        (RESPONSE_V6, ("2001:db8:1234:5678:11:2233:4455:6677", 32853)),
    ],
)
def test_rfc5769_responses(data: bytes, address: tuple[str, int]) -> None:
    message = StunMessage.parse(data)
    assert message.message_type == BINDING_SUCCESS
    assert message.xor_mapped_address == address
    assert verify_integrity(data, PASSWORD)
    assert verify_fingerprint(data)


def test_our_serialisation_matches_rfc5769_up_to_padding() -> None:
    """Built from the vector's fields, the response differs only in SOFTWARE's padding
    octet (a space there, zero here), so integrity and fingerprint are ours to check."""
    ours = StunMessage(BINDING_SUCCESS, bytes.fromhex("b7e7a701bc34d686fa87dfae"))
    ours.add(SOFTWARE, b"test vector").add_xor_mapped_address(("192.0.2.1", 32853))
    data = ours.serialize(PASSWORD)
    assert len(data) == len(RESPONSE_V4)
    assert data[:35] == RESPONSE_V4[:35] and data[36:48] == RESPONSE_V4[36:48]
    assert verify_integrity(data, PASSWORD) and verify_fingerprint(data)
    parsed = StunMessage.parse(data)
    assert parsed.xor_mapped_address == ("192.0.2.1", 32853)
    assert parsed.attributes == ours.attributes


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x00\x01\x00", "shorter"),
        (REQUEST[:-1], "length"),
        (b"\x00\x01\x00\x00\x21\x12\xa4\x43" + bytes(12), "magic cookie"),
        (b"\xc0\x01\x00\x00\x21\x12\xa4\x42" + bytes(12), "first two bits"),
        (b"\x00\x01\x00\x04\x21\x12\xa4\x42" + bytes(12) + b"\x00\x06\x00\x08", "past"),
    ],
)
def test_malformed_stun_raises(data: bytes, why: str) -> None:
    with pytest.raises(StunError, match=why):
        StunMessage.parse(data)


LOCAL = IceCredentials("lite", "enginepasswordenginepass")
BROWSER = ("192.0.2.7", 50000)


def _check(
    *,
    username: str = "lite:brws",
    key: bytes = LOCAL.pwd.encode(),
    nominate: bool = False,
    controlled: bool = False,
    priority: bool = True,
) -> bytes:
    request = StunMessage(BINDING_REQUEST)
    request.add(USERNAME, username.encode())
    if priority:
        request.add(PRIORITY, (1853824767).to_bytes(4, "big"))
    if controlled:
        request.add(ICE_CONTROLLED, bytes(8))
    else:
        request.add(ICE_CONTROLLING, bytes(8))
    if nominate:
        request.add(USE_CANDIDATE)
    return request.serialize(key)


def test_a_valid_check_is_answered_and_selects_its_source() -> None:
    responder = IceLiteResponder(LOCAL)
    request = _check()
    data = responder.receive(request, BROWSER, 1.0)
    assert data is not None
    response = StunMessage.parse(data)
    assert response.message_type == BINDING_SUCCESS
    assert response.transaction_id == StunMessage.parse(request).transaction_id
    assert response.xor_mapped_address == BROWSER
    assert verify_integrity(data, LOCAL.pwd.encode()) and verify_fingerprint(data)
    assert responder.next_event() == CandidateSelected(BROWSER, nominated=False)
    assert responder.next_event() is None
    assert responder.selected == BROWSER and responder.connected


def test_nomination_moves_the_selection_once() -> None:
    responder = IceLiteResponder(LOCAL)
    relay = ("198.51.100.1", 3478)
    responder.receive(_check(), BROWSER, 1.0)
    responder.receive(_check(nominate=True), relay, 1.1)
    responder.receive(_check(), BROWSER, 1.2)  # a later check without USE-CANDIDATE
    responder.receive(_check(nominate=True), relay, 1.3)  # renominating the same pair
    events = [responder.next_event(), responder.next_event(), responder.next_event()]
    assert events == [
        CandidateSelected(BROWSER, nominated=False),
        CandidateSelected(relay, nominated=True),
        None,
    ]
    assert responder.selected == relay


@pytest.mark.parametrize(
    ("request_bytes", "code"),
    [
        (_check(username="other:brws"), 401),
        (_check(key=b"not our password"), 401),
        (_check(priority=False), 400),
        (_check(controlled=True), 487),
        (StunMessage(BINDING_REQUEST).add(USERNAME, b"lite:brws").serialize(), 400),
    ],
)
def test_bad_checks_are_refused_and_select_nothing(request_bytes: bytes, code: int) -> None:
    responder = IceLiteResponder(LOCAL)
    data = responder.receive(request_bytes, BROWSER, 1.0)
    assert data is not None
    response = StunMessage.parse(data)
    assert response.message_type == BINDING_ERROR
    assert response.error_code == code
    assert responder.selected is None and responder.next_event() is None
    assert responder.checks_refused == 1


def test_the_remote_ufrag_is_checked_once_known() -> None:
    responder = IceLiteResponder(LOCAL)
    responder.remote_ufrag = "brws"
    assert StunMessage.parse(responder.receive(_check(), BROWSER, 1.0) or b"").error_code is None
    refused = responder.receive(_check(username="lite:else"), BROWSER, 1.1)
    assert StunMessage.parse(refused or b"").error_code == 401


def test_a_tampered_fingerprint_is_refused() -> None:
    data = bytearray(_check())
    data[-1] ^= 1
    responder = IceLiteResponder(LOCAL)
    assert StunMessage.parse(responder.receive(bytes(data), BROWSER, 1.0) or b"").error_code == 400


def test_noise_and_responses_get_no_answer() -> None:
    responder = IceLiteResponder(LOCAL)
    assert responder.receive(b"\x00\x01junk", BROWSER, 1.0) is None
    assert responder.receive(RESPONSE_V4, BROWSER, 1.0) is None


def test_consent_expires_without_checks_and_is_renewed_by_them() -> None:
    responder = IceLiteResponder(LOCAL, consent_timeout=30.0)
    assert responder.get_timer() is None  # no deadline before the first check
    responder.receive(_check(nominate=True), BROWSER, 10.0)
    responder.next_event()
    assert responder.get_timer() == 40.0
    responder.receive(_check(), BROWSER, 25.0)
    assert responder.get_timer() == 55.0
    responder.handle_timer(54.9)
    assert responder.next_event() is None and responder.connected
    responder.handle_timer(55.0)
    assert responder.next_event() == ConsentExpired(BROWSER)
    assert not responder.connected and responder.get_timer() is None
    responder.handle_timer(99.0)
    assert responder.next_event() is None  # reported once


def test_generated_credentials_follow_rfc8445() -> None:
    credentials = IceCredentials.generate()
    assert len(credentials.ufrag) >= 4 and len(credentials.pwd) >= 22
    assert credentials != IceCredentials.generate()
    assert host_candidate("192.0.2.1", 20000) == "1 1 udp 2130706431 192.0.2.1 20000 typ host"


@pytest.mark.parametrize(
    ("first", "second", "kind"),
    [
        (0, 1, PacketKind.STUN),
        (3, 0, PacketKind.STUN),
        (20, 0, PacketKind.DTLS),
        (22, 254, PacketKind.DTLS),
        (63, 0, PacketKind.DTLS),
        (0x80, 0, PacketKind.RTP),
        (0x80, 0x80 | 101, PacketKind.RTP),  # a marked telephone-event
        (0x80, 200, PacketKind.RTCP),  # SR
        (0x81, 201, PacketKind.RTCP),  # RR
        (0x80, 223, PacketKind.RTCP),
        (0x80, 224, PacketKind.RTP),
        (191, 0, PacketKind.RTP),
        (4, 0, PacketKind.OTHER),
        (16, 0, PacketKind.OTHER),  # ZRTP
        (64, 0, PacketKind.OTHER),  # TURN channel
        (192, 0, PacketKind.OTHER),
    ],
)
def test_rfc7983_demultiplexing(first: int, second: int, kind: PacketKind) -> None:
    assert classify(bytes([first, second, 0, 0])) is kind


def test_demultiplexing_short_datagrams() -> None:
    assert classify(b"") is PacketKind.OTHER
    assert classify(b"\x80") is PacketKind.OTHER
