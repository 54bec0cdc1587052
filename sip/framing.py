"""Splitting a TCP or TLS byte stream into SIP messages (RFC 3261 18.3, RFC 5626 3.5.1).

A stream has no datagram boundaries, so each message ends where its header
block plus Content-Length octets end; Content-Length is mandatory. Between
messages a peer may send CRLFs: a double CRLF is an RFC 5626 keep-alive
"ping" the transport answers with a single CRLF "pong"; a single CRLF is
skipped (RFC 3261 7.5).

The framer is sans-I/O: bytes go in through :meth:`StreamFramer.feed`, complete
messages and keep-alives come out, and a :class:`FramingError` tells the
transport to close the connection, since after a framing error there is no
telling where the next message starts (RFC 4475 ncl, mcl01).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._grammar import SipSyntaxError
from ._parse import find_head_end, parse_content_length

__all__ = ["FramingError", "KeepAlive", "StreamFramer"]


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """A double-CRLF ping arrived between messages; answer it with a single CRLF."""


class FramingError(ValueError):
    """The stream cannot be split into messages any more: close the connection."""


_KEEPALIVE = KeepAlive()
# Content-Length (or compact 'l') at the start of a header line, case-insensitive,
# with any continuation lines; the start line never matches (it has no '\n'
# before it). The literal '\n' prefix lets the engine jump from line to line.
_CONTENT_LENGTH_RE = re.compile(
    rb"\n(?:content-length|l)[ \t]*+:([^\r\n]*+(?:\r?\n[ \t][^\r\n]*+)*+)", re.I
)


class StreamFramer:
    """Cuts a byte stream into complete SIP messages.

    ``feed(data)`` returns, in arrival order, each complete message as
    ``bytes`` (from the first octet of its start line to the last octet of its
    body, ready for ``parse_message(..., stream=True)``) and a ``KeepAlive`` for
    each double-CRLF ping between messages. Incomplete input is kept until more
    arrives, so a message may be fed in any number of pieces, one octet at a
    time included; several messages may arrive in one piece.

    ``feed`` raises ``FramingError`` when a header block grows past
    ``max_message_size`` octets without ending, when Content-Length is missing,
    malformed or repeated with different values, or when the whole message
    would exceed ``max_message_size``. The framer stays broken afterwards.

    Work is linear in the input: the search for the end of a header block
    resumes where the previous one stopped, and consumed octets are dropped
    once per call.
    """

    __slots__ = ("_buf", "_end", "_error", "_max", "_scan")

    def __init__(self, max_message_size: int = 65535) -> None:
        if max_message_size <= 0:
            raise ValueError("max_message_size must be positive")
        self._max = max_message_size
        self._buf = bytearray()
        # Where to resume looking for the blank line, relative to the buffer.
        self._scan = 0
        # End of the current message once its header block is known, else -1.
        self._end = -1
        self._error: FramingError | None = None

    @property
    def buffered(self) -> int:
        """Octets held back as the start of an incomplete message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | KeepAlive]:
        """Add received octets; return the messages and keep-alives they complete."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        buf += data
        out: list[bytes | KeepAlive] = []
        pos = 0
        try:
            while True:
                if self._end < 0:
                    pos = self._skip_crlfs(pos, out)
                    if pos == len(buf) or not self._find_head(pos):
                        break
                if len(buf) < self._end:
                    break
                out.append(bytes(memoryview(buf)[pos : self._end]))
                pos = self._scan = self._end
                self._end = -1
        except FramingError as exc:
            self._error = exc
            raise
        if pos:
            del buf[:pos]
            self._scan = max(0, self._scan - pos)
            if self._end >= 0:
                self._end -= pos
        return out

    def _skip_crlfs(self, pos: int, out: list[bytes | KeepAlive]) -> int:
        """Consume CRLFs between messages; returns where the next message starts."""
        buf = self._buf
        while True:
            left = len(buf) - pos
            if left >= 4 and buf.startswith(b"\r\n\r\n", pos):
                out.append(_KEEPALIVE)
                pos += 4
            elif left >= 2 and buf.startswith(b"\r\n", pos):
                # "\r\n" or "\r\n\r" may still become a ping: wait for more.
                if left == 2 or (left == 3 and buf[pos + 2] == 0x0D):
                    break
                pos += 2
            else:
                break
        if self._scan < pos:
            self._scan = pos
        return pos

    def _find_head(self, pos: int) -> bool:
        """Look for the end of the header block starting at ``pos``; set the message end."""
        buf = self._buf
        # Back up three octets so a blank line split across feeds is found.
        head_end, body_start = find_head_end(buf, max(pos, self._scan - 3))
        if head_end < 0:
            self._scan = len(buf)
            if len(buf) - pos > self._max:
                raise FramingError(f"header block longer than {self._max} octets")
            return False
        length = _content_length(bytes(memoryview(buf)[pos:head_end]))
        end = body_start + length
        if end - pos > self._max:
            raise FramingError(f"message of {end - pos} octets exceeds {self._max}")
        self._end = end
        return True


def _content_length(head: bytes) -> int:
    values = {
        m.group(1).replace(b"\r\n", b" ").replace(b"\n", b" ").strip(b" \t")
        for m in _CONTENT_LENGTH_RE.finditer(head)
    }
    if not values:
        raise FramingError("missing Content-Length on a stream transport")
    if len(values) > 1:
        raise FramingError("conflicting Content-Length values")
    try:
        return parse_content_length(values.pop().decode("ascii"))
    except (SipSyntaxError, UnicodeDecodeError):
        raise FramingError("bad Content-Length") from None
