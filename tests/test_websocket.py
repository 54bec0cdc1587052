"""The sans-I/O WebSocket server (sip/websocket.py): handshake, frames, limits, close.

No sockets: client octets are built here by hand (masked, as RFC 6455 5.3
requires of a client) and what the server queues is decoded back. The
property tests cut messages into arbitrary frames and the frames' octets into
arbitrary chunks, and throw arbitrary octets at both phases.
"""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip.websocket import (
    CloseCode,
    CloseReceived,
    ConnectionFailed,
    HandshakeCompleted,
    HandshakeRefused,
    MessageReceived,
    PingReceived,
    PongReceived,
    WebSocketEvent,
    WebSocketServer,
    WsState,
    accept_key,
    is_keepalive,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3's example
TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def handshake(**headers: str | None) -> bytes:
    """A browser's opening handshake for SIP; a header given as None is left out."""
    fields: dict[str, str | None] = {
        "Host": "acd.example:8088",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": "sip",
        "Origin": "https://agents.example",
        "User-Agent": "JsSIP 3.10",
    }
    request_line = headers.pop("request_line", None) or "GET /ws HTTP/1.1"
    fields.update({k.replace("_", "-"): v for k, v in headers.items()})
    lines = [request_line] + [f"{k}: {v}" for k, v in fields.items() if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def frame(
    op: int, payload: bytes = b"", *, fin: bool = True, mask: bytes | None = b"\x37\xfa\x21\x3d"
) -> bytes:
    """One client frame (masked unless ``mask`` is None)."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | op])
    bit = 0x80 if mask is not None else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if mask is None:
        return head + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def close_frame(code: int | None = 1000, reason: bytes = b"") -> bytes:
    return frame(CLOSE, b"" if code is None else code.to_bytes(2, "big") + reason)


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Decode what the server wrote: unmasked, unfragmented frames."""
    frames = []
    while data:
        assert data[0] & 0x80, "server frames are never fragmented"
        assert not data[1] & 0x80, "server frames are never masked"
        op, n, offset = data[0] & 0x0F, data[1] & 0x7F, 2
        if n == 126:
            n, offset = int.from_bytes(data[2:4], "big"), 4
        elif n == 127:
            n, offset = int.from_bytes(data[2:10], "big"), 10
        frames.append((op, data[offset : offset + n]))
        data = data[offset + n :]
    return frames


def opened(max_message_size: int = 65535, **kw: object) -> WebSocketServer:
    ws = WebSocketServer(max_message_size, **kw)  # type: ignore[arg-type]
    (event,) = ws.receive_data(handshake())
    assert isinstance(event, HandshakeCompleted)
    assert ws.data_to_send().startswith(b"HTTP/1.1 101 ")
    return ws


def close_sent(ws: WebSocketServer) -> int | None:
    ((op, payload),) = server_frames(ws.data_to_send())
    assert op == CLOSE
    return int.from_bytes(payload[:2], "big") if payload else None


REGISTER = (
    b"REGISTER sip:acd.local SIP/2.0\r\n"
    b"Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK56sdasks\r\n"
    b"From: <sip:1001@acd.local>;tag=ab\r\nTo: <sip:1001@acd.local>\r\n"
    b"Call-ID: 1@df7jal23ls0d.invalid\r\nCSeq: 1 REGISTER\r\n"
    b"Contact: <sip:abc@df7jal23ls0d.invalid;transport=ws>\r\nContent-Length: 0\r\n\r\n"
)


# -- the opening handshake ----------------------------------------------------------------


def test_accept_key_is_rfc_6455s_example() -> None:
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_sip_handshake_is_switched_with_the_sip_subprotocol() -> None:
    ws = WebSocketServer()
    events = ws.receive_data(handshake(Sec_WebSocket_Protocol="foo, sip"))
    assert events == [HandshakeCompleted("/ws", "https://agents.example", "JsSIP 3.10")]
    assert ws.state is WsState.OPEN
    answer = ws.data_to_send().decode()
    assert answer.startswith("HTTP/1.1 101 Switching Protocols\r\n")
    assert "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in answer
    assert "\r\nSec-WebSocket-Protocol: sip\r\n" in answer
    assert "Sec-WebSocket-Extensions" not in answer  # nothing is negotiated
    assert answer.endswith("\r\n\r\n")


def test_the_handshake_may_come_an_octet_at_a_time_with_a_frame_behind_it() -> None:
    ws = WebSocketServer()
    data = handshake() + frame(TEXT, REGISTER)
    events: list[WebSocketEvent] = []
    for i in range(len(data)):
        events += ws.receive_data(data[i : i + 1])
    assert [type(e) for e in events] == [HandshakeCompleted, MessageReceived]
    assert events[1] == MessageReceived(REGISTER, True)


@pytest.mark.parametrize(
    ("headers", "status", "expect"),
    [
        ({"Sec_WebSocket_Protocol": None}, 400, "subprotocol is required"),
        ({"Sec_WebSocket_Protocol": "xmpp, SIPS"}, 400, "subprotocol is required"),
        ({"Upgrade": None, "Connection": None}, 426, "Upgrade: websocket"),
        ({"Connection": "keep-alive"}, 426, "Upgrade: websocket"),
        ({"Sec_WebSocket_Version": "8"}, 426, "Sec-WebSocket-Version: 13"),
        ({"Sec_WebSocket_Key": "c2hvcnQ="}, 400, "Sec-WebSocket-Key"),
        ({"Sec_WebSocket_Key": "not base64!!"}, 400, "Sec-WebSocket-Key"),
        ({"Sec_WebSocket_Key": None}, 400, "Sec-WebSocket-Key"),
        ({"Host": None}, 400, "Host"),
        ({"request_line": "POST /ws HTTP/1.1"}, 405, "Allow: GET"),
        ({"request_line": "GET /ws HTTP/1.0"}, 400, "HTTP/1.1"),
        ({"request_line": "GET /ws"}, 400, "request line"),
        ({"request_line": "INVITE sip:1001@acd.local SIP/2.0"}, 400, "request line"),
    ],
)
def test_a_handshake_that_is_not_sip_over_websocket_is_refused(
    headers: dict[str, str | None], status: int, expect: str
) -> None:
    ws = WebSocketServer()
    (event,) = ws.receive_data(handshake(**headers))
    assert isinstance(event, HandshakeRefused) and event.status == status
    answer = ws.data_to_send().decode()
    assert answer.startswith(f"HTTP/1.1 {status} ")
    assert "\r\nConnection: close\r\n" in answer
    assert expect in answer
    assert ws.state is WsState.CLOSED
    assert ws.receive_data(frame(TEXT, REGISTER)) == []  # nothing after a refusal


def test_path_and_origin_are_checked_when_configured() -> None:
    (event,) = WebSocketServer(path="/sip").receive_data(handshake())
    assert isinstance(event, HandshakeRefused) and event.status == 404
    only = ("https://desk.example",)
    (event,) = WebSocketServer(origins=only).receive_data(handshake())
    assert isinstance(event, HandshakeRefused) and event.status == 403
    ok = WebSocketServer(path="/ws", origins=("https://AGENTS.example/",))
    (event,) = ok.receive_data(handshake(request_line="GET /ws?token=1 HTTP/1.1"))
    assert isinstance(event, HandshakeCompleted) and event.path == "/ws"
    # A client that is not a browser sends no Origin: the check is a browser's.
    (event,) = WebSocketServer(origins=only).receive_data(handshake(Origin=None))
    assert isinstance(event, HandshakeCompleted) and event.origin is None


def test_an_endless_handshake_is_refused_with_431() -> None:
    ws = WebSocketServer()
    assert ws.receive_data(b"GET / HTTP/1.1\r\n") == []
    (event,) = ws.receive_data(b"X-Pad: " + b"a" * 9000)
    assert isinstance(event, HandshakeRefused) and event.status == 431


def test_closing_during_the_handshake_answers_503() -> None:
    ws = WebSocketServer()
    ws.receive_data(b"GET /ws HTTP/1.1\r\n")
    ws.close(CloseCode.GOING_AWAY, "shutting down")
    assert ws.data_to_send().startswith(b"HTTP/1.1 503 ")
    assert ws.state is WsState.CLOSED


# -- messages ------------------------------------------------------------------------------


def test_text_and_binary_frames_each_carry_one_sip_message() -> None:
    ws = opened()
    body = REGISTER + b"\xff\xfe"  # not UTF-8: it can only come as binary
    events = ws.receive_data(frame(TEXT, REGISTER) + frame(BINARY, body))
    assert events == [MessageReceived(REGISTER, True), MessageReceived(body, False)]
    assert ws.data_to_send() == b""


def test_a_fragmented_message_is_reassembled_around_a_ping() -> None:
    ws = opened()
    events = ws.receive_data(
        frame(TEXT, REGISTER[:10], fin=False)
        + frame(CONT, REGISTER[10:20], fin=False)
        + frame(PING, b"are you there")
        + frame(CONT, b"", fin=False)
        + frame(CONT, REGISTER[20:])
    )
    assert events == [PingReceived(b"are you there"), MessageReceived(REGISTER, True)]
    assert server_frames(ws.data_to_send()) == [(PONG, b"are you there")]


def test_a_character_split_between_fragments_is_valid_text() -> None:
    ws = opened()
    text = "Display: Zoë ☎".encode()
    cut = text.index("ë".encode()) + 1
    events = ws.receive_data(frame(TEXT, text[:cut], fin=False) + frame(CONT, text[cut:]))
    assert events == [MessageReceived(text, True)]


def test_an_empty_first_fragment_still_opens_a_message() -> None:
    ws = opened()
    events = ws.receive_data(frame(BINARY, b"", fin=False) + frame(CONT, REGISTER))
    assert events == [MessageReceived(REGISTER, False)]


def test_pongs_are_reported() -> None:
    ws = opened()
    assert ws.receive_data(frame(PONG, b"1")) == [PongReceived(b"1")]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(TEXT, REGISTER, mask=None), CloseCode.PROTOCOL_ERROR),
        (bytes([0x80 | 0x40 | TEXT]) + frame(TEXT, b"x")[1:], CloseCode.PROTOCOL_ERROR),
        (bytes([0x83]) + frame(TEXT, b"x")[1:], CloseCode.PROTOCOL_ERROR),
        (frame(CONT, b"orphan"), CloseCode.PROTOCOL_ERROR),
        (frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), CloseCode.PROTOCOL_ERROR),
        (frame(PING, b"x" * 126), CloseCode.PROTOCOL_ERROR),
        (frame(PING, b"x", fin=False), CloseCode.PROTOCOL_ERROR),
        (frame(TEXT, b"\xc3\x28"), CloseCode.INVALID_DATA),
        (frame(TEXT, b"ok \xed\xa0\x80"), CloseCode.INVALID_DATA),  # a UTF-16 surrogate
        (frame(TEXT, b"\xf0\x9f", fin=False) + frame(CONT, b"(("), CloseCode.INVALID_DATA),
        (frame(CLOSE, b"\x03"), CloseCode.PROTOCOL_ERROR),
        (close_frame(1005), CloseCode.PROTOCOL_ERROR),
        (close_frame(999), CloseCode.PROTOCOL_ERROR),
        (close_frame(2000), CloseCode.PROTOCOL_ERROR),
        (close_frame(1000, b"\xff"), CloseCode.INVALID_DATA),
    ],
)
def test_a_protocol_error_fails_the_connection_with_its_code(data: bytes, code: int) -> None:
    ws = opened()
    events = ws.receive_data(data)
    assert [type(e) for e in events] == [ConnectionFailed]
    assert events[0].code == code  # type: ignore[union-attr]
    assert close_sent(ws) == code
    assert ws.state is WsState.CLOSING
    assert ws.close_code == code
    assert not ws.send_message(REGISTER)  # nothing more goes after a close
    later = ws.receive_data(frame(TEXT, REGISTER) + os.urandom(64))
    assert not [e for e in later if isinstance(e, MessageReceived)]


def test_an_oversize_message_fails_with_1009_on_its_header_alone() -> None:
    ws = opened(max_message_size=1024)
    big = frame(TEXT, b"x" * 5000)
    header = big[:8]  # two octets, a 16-bit length, the mask
    (event,) = ws.receive_data(header)
    assert event == ConnectionFailed(CloseCode.MESSAGE_TOO_BIG, "message over 1024 octets")
    assert close_sent(ws) == CloseCode.MESSAGE_TOO_BIG
    # The payload is skipped as it comes, so the client's answering close is read.
    assert ws.receive_data(big[8:4000]) == []
    events = ws.receive_data(big[4000:] + close_frame(1009))
    assert events == [CloseReceived(1009, "")]
    assert ws.state is WsState.CLOSED
    assert ws.data_to_send() == b""  # our close went already; no second one


def test_fragments_adding_up_past_the_cap_fail_with_1009() -> None:
    ws = opened(max_message_size=1024)
    assert ws.receive_data(frame(TEXT, b"a" * 1000, fin=False)) == []
    (event,) = ws.receive_data(frame(CONT, b"b" * 25))
    assert isinstance(event, ConnectionFailed) and event.code == CloseCode.MESSAGE_TOO_BIG


def test_a_message_of_exactly_the_cap_passes() -> None:
    ws = opened(max_message_size=1024)
    events = ws.receive_data(frame(TEXT, b"a" * 600, fin=False) + frame(CONT, b"b" * 424))
    assert events == [MessageReceived(b"a" * 600 + b"b" * 424, True)]


def test_a_64_bit_length_with_its_top_bit_set_is_a_protocol_error() -> None:
    ws = opened()
    data = bytes([0x80 | BINARY, 0x80 | 127]) + (1 << 63).to_bytes(8, "big") + b"mask"
    (event,) = ws.receive_data(data)
    assert isinstance(event, ConnectionFailed) and event.code == CloseCode.PROTOCOL_ERROR


# -- closing ---------------------------------------------------------------------------


def test_a_close_from_the_client_is_echoed_and_ends_the_connection() -> None:
    ws = opened()
    assert ws.receive_data(close_frame(1001, b"page closed")) == [
        CloseReceived(1001, "page closed")
    ]
    assert server_frames(ws.data_to_send()) == [(CLOSE, (1001).to_bytes(2, "big"))]
    assert ws.state is WsState.CLOSED
    assert ws.receive_data(frame(TEXT, REGISTER)) == []


def test_a_close_without_a_code_is_answered_without_one() -> None:
    ws = opened()
    assert ws.receive_data(close_frame(None)) == [CloseReceived(CloseCode.NO_STATUS, "")]
    assert server_frames(ws.data_to_send()) == [(CLOSE, b"")]


def test_an_application_code_is_accepted() -> None:
    ws = opened()
    assert ws.receive_data(close_frame(4000)) == [CloseReceived(4000, "")]


def test_our_close_waits_for_the_clients_and_drops_data_meanwhile() -> None:
    ws = opened()
    ws.close(CloseCode.GOING_AWAY, "engine stopping")
    assert server_frames(ws.data_to_send()) == [
        (CLOSE, (1001).to_bytes(2, "big") + b"engine stopping")
    ]
    assert ws.state is WsState.CLOSING
    assert not ws.ping()
    big = frame(BINARY, b"z" * 70000)  # larger than the cap, yet only skipped
    assert ws.receive_data(frame(TEXT, REGISTER) + frame(PING) + big) == []
    assert ws.data_to_send() == b""  # no pong once closing
    assert ws.receive_data(close_frame(1001)) == [CloseReceived(1001, "")]
    assert ws.state is WsState.CLOSED
    assert ws.data_to_send() == b""


def test_a_long_close_reason_is_cut_to_fit_a_control_frame() -> None:
    ws = opened()
    ws.close(CloseCode.NORMAL, "é" * 200)
    ((op, payload),) = server_frames(ws.data_to_send())
    assert op == CLOSE and len(payload) <= 125
    payload[2:].decode("utf-8")  # not cut inside a character


# -- what the server sends -------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
def test_messages_are_sent_as_single_unmasked_frames(size: int) -> None:
    ws = opened()
    data = b"a" * size
    assert ws.send_message(data)
    assert server_frames(ws.data_to_send()) == [(TEXT, data)]


def test_a_message_that_is_not_utf8_goes_binary() -> None:
    ws = opened()
    assert ws.send_message(b"INVITE \xff")
    assert server_frames(ws.data_to_send()) == [(BINARY, b"INVITE \xff")]


def test_ping_is_queued_and_capped() -> None:
    ws = opened()
    assert ws.ping(b"k")
    assert server_frames(ws.data_to_send()) == [(PING, b"k")]
    with pytest.raises(ValueError):
        ws.ping(b"x" * 126)


def test_nothing_is_sent_before_the_handshake() -> None:
    ws = WebSocketServer()
    assert not ws.send_message(REGISTER)
    assert not ws.ping()


def test_crlf_keepalives_are_told_from_sip_messages() -> None:
    assert is_keepalive(b"\r\n\r\n") is True
    assert is_keepalive(b"\r\n") is False
    assert is_keepalive(REGISTER) is None
    assert is_keepalive(b"") is False


def test_a_cap_must_be_positive() -> None:
    with pytest.raises(ValueError):
        WebSocketServer(0)


# -- properties ------------------------------------------------------------------------


@st.composite
def framed_message(draw: st.DrawFn) -> tuple[bytes, bool, bytes]:
    """A message, whether it is text, and its octets: cut into frames (pings between
    them), each masked with its own key."""
    text = draw(st.booleans())
    content = st.text(max_size=300).map(str.encode) if text else st.binary(max_size=300)
    message = draw(content)
    cuts = sorted(draw(st.lists(st.integers(0, len(message)), max_size=6)))
    pieces = [message[a:b] for a, b in zip([0, *cuts], [*cuts, len(message)], strict=True)]
    wire = b""
    for i, piece in enumerate(pieces):
        op = (TEXT if text else BINARY) if i == 0 else CONT
        mask = draw(st.binary(min_size=4, max_size=4))
        wire += frame(op, piece, fin=i == len(pieces) - 1, mask=mask)
        if draw(st.booleans()):
            wire += frame(PING, draw(st.binary(max_size=125)))
    return message, text, wire


def _chunks(draw: st.DataObject, data: bytes) -> list[bytes]:
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(data)), max_size=12)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(st.lists(framed_message(), min_size=1, max_size=4), st.data())
def test_any_message_cut_anyhow_reassembles(
    messages: list[tuple[bytes, bool, bytes]], data: st.DataObject
) -> None:
    ws = WebSocketServer(max_message_size=400)
    wire = handshake() + b"".join(m[2] for m in messages)
    events: list[WebSocketEvent] = []
    for chunk in _chunks(data, wire):
        events += ws.receive_data(chunk)
    received = [e for e in events if isinstance(e, MessageReceived)]
    assert received == [MessageReceived(m, t) for m, t, _ in messages]
    assert not [e for e in events if isinstance(e, ConnectionFailed | CloseReceived)]
    assert ws.state is WsState.OPEN


_EVENTS = (
    HandshakeCompleted,
    HandshakeRefused,
    MessageReceived,
    PingReceived,
    PongReceived,
    CloseReceived,
    ConnectionFailed,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=8), st.booleans())
def test_arbitrary_octets_never_raise(chunks: list[bytes], after_handshake: bool) -> None:
    ws = opened(max_message_size=256) if after_handshake else WebSocketServer(256)
    for chunk in chunks:
        for event in ws.receive_data(chunk):
            assert isinstance(event, _EVENTS)
        ws.data_to_send()
    if ws.state is WsState.CLOSING:
        assert ws.close_code is not None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40), st.sampled_from(list(range(16))), st.booleans(), st.booleans())
def test_any_single_frame_is_an_event_or_a_clean_failure(
    payload: bytes, op: int, fin: bool, masked: bool
) -> None:
    ws = opened(max_message_size=32)
    events = ws.receive_data(frame(op, payload, fin=fin, mask=b"abcd" if masked else None))
    for event in events:
        assert isinstance(event, _EVENTS)
        if isinstance(event, ConnectionFailed):
            assert close_sent(ws) == event.code


def test_a_random_key_round_trips_through_base64() -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    ws = WebSocketServer()
    (event,) = ws.receive_data(handshake(Sec_WebSocket_Key=key))
    assert isinstance(event, HandshakeCompleted)
    assert f"Sec-WebSocket-Accept: {accept_key(key)}".encode() in ws.data_to_send()
