"""SIP over WebSocket (RFC 7118): the server side of RFC 6455, sans-I/O.

Bytes from a TCP (or TLS) connection go in through
:meth:`WebSocketServer.receive_data`; events come out (the handshake done or
refused, whole messages, pings, pongs, the close) and the bytes to write
back wait in :meth:`WebSocketServer.data_to_send`. Nothing here opens a
socket or reads a clock: the adapter in ``sip/transport.py`` does both.

What the two RFCs ask of a SIP WebSocket server, and where it is done here:

- The opening handshake (RFC 6455 4.2) must offer the ``sip`` subprotocol
  (RFC 7118 4); one that does not is refused with 400, a request that is
  not an Upgrade with 426, a version other than 13 with 426 naming 13.
- Frames from a client are masked (RFC 6455 5.1), carry no reserved bits
  (no extension is ever negotiated), and control frames are single frames
  of at most 125 octets (5.5); otherwise the connection fails with 1002.
- A message may come in fragments (5.4); each whole message, text or
  binary, is exactly one SIP message (RFC 7118 5.1). A message longer than
  the SIP ``max_message_size`` fails the connection with 1009 as soon as a
  frame header announces it, before its payload is buffered; a text message
  that is not UTF-8 fails it with 1007 (RFC 6455 8.1).
- A ping is answered with a pong carrying its payload (5.5.2); a close is
  answered with a close (5.5.1, 7.1.1), after which the adapter closes TCP.

Malformed input never raises: it becomes a :class:`ConnectionFailed` event,
the close frame is queued, and the adapter closes once it is written.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
from dataclasses import dataclass
from enum import Enum, IntEnum

__all__ = [
    "CloseCode",
    "CloseReceived",
    "ConnectionFailed",
    "HandshakeCompleted",
    "HandshakeRefused",
    "MessageReceived",
    "PingReceived",
    "PongReceived",
    "WebSocketEvent",
    "WebSocketServer",
    "WsState",
    "accept_key",
    "is_keepalive",
]

SUBPROTOCOL = "sip"
"""The one subprotocol a SIP WebSocket server speaks (RFC 7118 4, IANA registry)."""

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
_MAX_HEAD = 8192
"""Octets an opening handshake may take before it is refused with 431."""
_MAX_CONTROL = 125


class CloseCode(IntEnum):
    """Status codes of a close frame (RFC 6455 7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005
    ABNORMAL = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011


# Codes a peer may put in a close frame (RFC 6455 7.4.1-7.4.2): 1004-1006 and
# 1015 are reserved for reporting, never sent; 1012-1014 are IANA-registered.
_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


class WsState(Enum):
    """Where a connection is: handshake, open, closing handshake under way, done."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class _Op(IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


_OPCODES = frozenset(int(op) for op in _Op)


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    """The opening handshake was accepted with the ``sip`` subprotocol; the 101 is queued."""

    path: str
    origin: str | None
    user_agent: str


@dataclass(frozen=True, slots=True)
class HandshakeRefused:
    """The opening handshake was refused; the HTTP answer is queued, then close."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A whole WebSocket message arrived: one SIP message (RFC 7118 5.1)."""

    data: bytes
    text: bool


@dataclass(frozen=True, slots=True)
class PingReceived:
    """A ping arrived; the pong is queued."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class PongReceived:
    """A pong arrived (an answer to our ping, or an unsolicited heartbeat)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer sent a close frame; ``code`` is 1005 when it carried none.

    If we had not sent one, the answering close is queued; either way the
    closing handshake is complete and the state is ``CLOSED``.
    """

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionFailed:
    """The peer broke the protocol; a close frame with ``code`` is queued (RFC 6455 7.1.7)."""

    code: int
    reason: str


WebSocketEvent = (
    HandshakeCompleted
    | HandshakeRefused
    | MessageReceived
    | PingReceived
    | PongReceived
    | CloseReceived
    | ConnectionFailed
)


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value answering ``Sec-WebSocket-Key`` ``key``."""
    digest = hashlib.sha1(key.encode("ascii") + _GUID, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


def is_keepalive(message: bytes) -> bool | None:
    """Whether a WebSocket message is a CRLF keep-alive rather than a SIP message.

    Some SIP WebSocket clients (SIP.js) send RFC 5626's double-CRLF ping as a
    message of its own and wait for a single CRLF back. True for such a ping
    (answer it), False for a lone CRLF (nothing to do), None for anything
    else (a SIP message).
    """
    if message.strip(b"\r\n"):
        return None
    return b"\r\n\r\n" in message


class _Refusal(Exception):
    def __init__(self, status: int, reason: str, detail: str, *extra: tuple[str, str]) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.extra = extra


def _tokens(value: str | None) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip()]


class WebSocketServer:
    """One WebSocket connection, server side, from the first handshake octet to the close.

    ``path`` is the one request path accepted (any when None); ``origins``,
    when not empty, the ``Origin`` values a browser may come from (RFC 6455
    10.2; a client without Origin is not a browser and passes).
    ``max_message_size`` bounds each message (RFC 7118: one SIP message).
    """

    __slots__ = (
        "_broken",
        "_buf",
        "_close_sent",
        "_decoder",
        "_fragments",
        "_fragments_size",
        "_fragments_text",
        "_in_message",
        "_max",
        "_origins",
        "_out",
        "_path",
        "_skip",
        "close_code",
        "state",
    )

    def __init__(
        self,
        max_message_size: int = 65535,
        *,
        path: str | None = None,
        origins: tuple[str, ...] = (),
    ) -> None:
        if max_message_size <= 0:
            raise ValueError("max_message_size must be positive")
        self._max = max_message_size
        self._path = path
        self._origins = frozenset(o.rstrip("/").lower() for o in origins)
        self.state = WsState.CONNECTING
        self.close_code: int | None = None
        """The code of the close frame we sent, once we sent one."""
        self._buf = bytearray()
        self._out = bytearray()
        self._close_sent = False
        # After a framing error there is no telling where the next frame
        # starts: every further octet is discarded.
        self._broken = False
        # Payload octets still to throw away (a frame refused by its header).
        self._skip = 0
        self._in_message = False
        self._fragments: list[bytes] = []
        self._fragments_size = 0
        self._fragments_text = False
        self._decoder: codecs.BufferedIncrementalDecoder | None = None

    # -- output --------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Octets to write to the connection, in order; empties the queue."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def send_message(self, data: bytes) -> bool:
        """Queue ``data`` as one message: a text frame when it is UTF-8, else binary.

        False once the connection is not open (a close was sent or received):
        the message cannot go any more.
        """
        if self.state is not WsState.OPEN:
            return False
        self._frame(_Op.TEXT if _is_utf8(data) else _Op.BINARY, data)
        return True

    def ping(self, payload: bytes = b"") -> bool:
        """Queue a ping (at most 125 octets); False once the connection is not open."""
        if len(payload) > _MAX_CONTROL:
            raise ValueError("a ping carries at most 125 octets")
        if self.state is not WsState.OPEN:
            return False
        self._frame(_Op.PING, payload)
        return True

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the closing handshake (or refuse a handshake still under way with 503)."""
        if self.state is WsState.CONNECTING:
            self._refuse(_Refusal(503, "Service Unavailable", reason or "shutting down"))
            return
        if self.state is WsState.OPEN:
            self._send_close(code, reason)
            self.state = WsState.CLOSING

    def _frame(self, op: _Op, payload: bytes) -> None:
        n = len(payload)
        out = self._out
        out.append(0x80 | op)  # FIN: a server never fragments
        if n < 126:
            out.append(n)
        elif n < 1 << 16:
            out.append(126)
            out += n.to_bytes(2, "big")
        else:
            out.append(127)
            out += n.to_bytes(8, "big")
        out += payload

    def _send_close(self, code: int | None, reason: str) -> None:
        if self._close_sent:
            return
        self._close_sent = True
        if code is None:
            self._frame(_Op.CLOSE, b"")
            return
        self.close_code = code
        # A reason is cut to fit a control frame, on a character boundary.
        text = reason.encode("utf-8")[: _MAX_CONTROL - 2].decode("utf-8", "ignore").encode()
        self._frame(_Op.CLOSE, code.to_bytes(2, "big") + text)

    # -- input ---------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[WebSocketEvent]:
        """Feed octets received; returns the events they complete, in order."""
        if self.state is WsState.CLOSED or self._broken:
            return []
        self._buf += data
        events: list[WebSocketEvent] = []
        if self.state is WsState.CONNECTING:
            self._handshake(events)
        while self.state in (WsState.OPEN, WsState.CLOSING) and not self._broken:
            if not self._next_frame(events):
                break
        if self._broken:
            self._buf.clear()
        return events

    # The opening handshake (RFC 6455 4.2.1, 4.2.2) -------------------------------------

    def _handshake(self, events: list[WebSocketEvent]) -> None:
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_HEAD:
                refusal = _Refusal(431, "Request Header Fields Too Large", "handshake too long")
                events.append(self._refuse(refusal))
            return
        head = bytes(buf[:end])
        del buf[: end + 4]
        try:
            completed = self._accept(head)
        except _Refusal as refusal:
            events.append(self._refuse(refusal))
            return
        self.state = WsState.OPEN
        events.append(completed)

    def _accept(self, head: bytes) -> HandshakeCompleted:
        try:
            text = head.decode("ascii")
        except UnicodeDecodeError:
            raise _Refusal(400, "Bad Request", "non-ASCII octets in the handshake") from None
        request_line, *lines = text.split("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise _Refusal(400, "Bad Request", "not an HTTP request line")
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise _Refusal(400, "Bad Request", "malformed header line")
            key = name.lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if version != "HTTP/1.1":
            raise _Refusal(400, "Bad Request", "a WebSocket handshake is HTTP/1.1")
        if method != "GET":
            raise _Refusal(
                405, "Method Not Allowed", "a WebSocket handshake is a GET", ("Allow", "GET")
            )
        path = target.split("?", 1)[0]
        if self._path is not None and path != self._path:
            raise _Refusal(404, "Not Found", "no SIP WebSocket at this path")
        upgrade = [t.lower() for t in _tokens(headers.get("upgrade"))]
        connection = [t.lower() for t in _tokens(headers.get("connection"))]
        if "websocket" not in upgrade or "upgrade" not in connection:
            raise _Refusal(
                426,
                "Upgrade Required",
                "this port speaks SIP over WebSocket only",
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Version", "13"),
            )
        if headers.get("sec-websocket-version") != "13":
            raise _Refusal(
                426,
                "Upgrade Required",
                "WebSocket version 13 only",
                ("Sec-WebSocket-Version", "13"),
            )
        key = headers.get("sec-websocket-key", "")
        try:
            valid_key = len(base64.b64decode(key, validate=True)) == 16
        except (binascii.Error, ValueError):
            valid_key = False
        if not valid_key:
            raise _Refusal(400, "Bad Request", "Sec-WebSocket-Key is not 16 octets in base64")
        if not headers.get("host"):
            raise _Refusal(400, "Bad Request", "no Host header")
        origin = headers.get("origin")
        if self._origins and origin is not None and origin.rstrip("/").lower() not in self._origins:
            raise _Refusal(403, "Forbidden", "origin not allowed")
        if SUBPROTOCOL not in _tokens(headers.get("sec-websocket-protocol")):
            raise _Refusal(
                400, "Bad Request", "the sip WebSocket subprotocol is required (RFC 7118)"
            )
        self._out += (
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n"
            f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
        ).encode("ascii")
        return HandshakeCompleted(path, origin, headers.get("user-agent", ""))

    def _refuse(self, refusal: _Refusal) -> HandshakeRefused:
        body = (refusal.detail + "\n").encode()
        lines = [f"HTTP/1.1 {refusal.status} {refusal.reason}"]
        lines += [f"{name}: {value}" for name, value in refusal.extra]
        lines += [
            "Connection: close",
            "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}",
        ]
        self._out += ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body
        self.state = WsState.CLOSED
        self._buf.clear()
        return HandshakeRefused(refusal.status, refusal.detail)

    # Frames (RFC 6455 5.2) ------------------------------------------------------------

    def _next_frame(self, events: list[WebSocketEvent]) -> bool:
        """Take one frame from the buffer; False when more octets are needed."""
        buf = self._buf
        if self._skip:
            dropped = min(self._skip, len(buf))
            del buf[:dropped]
            self._skip -= dropped
            if self._skip:
                return False
        if len(buf) < 2:
            return False
        first, second = buf[0], buf[1]
        fin = bool(first & 0x80)
        opcode = first & 0x0F
        length = second & 0x7F
        offset = 2
        if length == 126:
            if len(buf) < 4:
                return False
            length = int.from_bytes(buf[2:4], "big")
            offset = 4
        elif length == 127:
            if len(buf) < 10:
                return False
            length = int.from_bytes(buf[2:10], "big")
            offset = 10
        if first & 0x70:
            return self._fail(events, CloseCode.PROTOCOL_ERROR, "reserved bits set")
        if opcode not in _OPCODES:
            return self._fail(events, CloseCode.PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
        if not second & 0x80:
            return self._fail(events, CloseCode.PROTOCOL_ERROR, "client frame not masked")
        if length >> 63:
            return self._fail(events, CloseCode.PROTOCOL_ERROR, "frame length over 2^63")
        control = opcode >= _Op.CLOSE
        if control and (length > _MAX_CONTROL or not fin):
            reason = "control frame fragmented" if not fin else "control frame over 125 octets"
            return self._fail(events, CloseCode.PROTOCOL_ERROR, reason)
        if not control:
            if self.state is WsState.CLOSING:
                # Data after our close is discarded (RFC 6455 5.5.1), unbuffered.
                self._skip = 4 + length
                del buf[:offset]
                return True
            size = length + (self._fragments_size if opcode == _Op.CONTINUATION else 0)
            if size > self._max:
                # Refused on its header: the payload is skipped as it arrives,
                # so the peer's answering close can still be read.
                self._skip = 4 + length
                del buf[:offset]
                reason = f"message over {self._max} octets"
                return self._fail(events, CloseCode.MESSAGE_TOO_BIG, reason, in_sync=True)
        end = offset + 4 + length
        if len(buf) < end:
            return False
        mask = bytes(buf[offset : offset + 4])
        payload = _unmask(bytes(buf[offset + 4 : end]), mask)
        del buf[:end]
        if control:
            self._control(_Op(opcode), payload, events)
        else:
            self._data(_Op(opcode), fin, payload, events)
        return True

    def _data(self, op: _Op, fin: bool, payload: bytes, events: list[WebSocketEvent]) -> None:
        if op is _Op.CONTINUATION:
            if not self._in_message:
                self._fail(events, CloseCode.PROTOCOL_ERROR, "continuation without a message")
                return
        elif self._in_message:
            self._fail(events, CloseCode.PROTOCOL_ERROR, "new message inside a fragmented one")
            return
        elif fin:  # the usual case: a whole message in one frame
            text = op is _Op.TEXT
            if text and not _is_utf8(payload):
                self._fail(events, CloseCode.INVALID_DATA, "text message is not UTF-8", True)
                return
            events.append(MessageReceived(payload, text))
            return
        else:
            self._in_message = True
            self._fragments_text = op is _Op.TEXT
            if self._fragments_text:
                self._decoder = codecs.getincrementaldecoder("utf-8")()
        if self._decoder is not None:
            # Checked fragment by fragment, so bad text fails at once (RFC 6455 8.1).
            try:
                self._decoder.decode(payload, final=fin)
            except UnicodeDecodeError:
                self._fail(events, CloseCode.INVALID_DATA, "text message is not UTF-8", True)
                return
        self._fragments.append(payload)
        self._fragments_size += len(payload)
        if not fin:
            return
        message = b"".join(self._fragments)
        text = self._fragments_text
        self._forget_message()
        events.append(MessageReceived(message, text))

    def _forget_message(self) -> None:
        self._in_message = False
        self._fragments = []
        self._fragments_size = 0
        self._decoder = None

    def _control(self, op: _Op, payload: bytes, events: list[WebSocketEvent]) -> None:
        if op is _Op.PING:
            if self.state is WsState.OPEN:
                self._frame(_Op.PONG, payload)
                events.append(PingReceived(payload))
            return
        if op is _Op.PONG:
            events.append(PongReceived(payload))
            return
        if len(payload) == 1:
            self._fail(events, CloseCode.PROTOCOL_ERROR, "close frame of one octet", True)
            return
        code: int = CloseCode.NO_STATUS
        reason = ""
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if code not in _SENDABLE and not 3000 <= code <= 4999:
                self._fail(events, CloseCode.PROTOCOL_ERROR, f"close code {code}", True)
                return
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                self._fail(events, CloseCode.INVALID_DATA, "close reason is not UTF-8", True)
                return
        # Echo the peer's code (7.1.5), or none when it gave none.
        self._send_close(None if code == CloseCode.NO_STATUS else code, "")
        self.state = WsState.CLOSED
        self._buf.clear()
        events.append(CloseReceived(code, reason))

    def _fail(
        self, events: list[WebSocketEvent], code: int, reason: str, in_sync: bool = False
    ) -> bool:
        """Fail the connection (RFC 6455 7.1.7): queue a close with ``code``; stop reading
        frames unless the stream is still in step (the peer's close may still come)."""
        if self.state is WsState.OPEN:
            self._send_close(code, reason)
            self.state = WsState.CLOSING
            events.append(ConnectionFailed(code, reason))
        if not in_sync:
            self._broken = True
        self._forget_message()
        return in_sync


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the repeating four-octet ``mask`` (RFC 6455 5.3), as big ints."""
    n = len(payload)
    if not n:
        return payload
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
