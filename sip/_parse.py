"""Lexing a SIP message: where the header block ends, header lines, start lines.

Shared by :func:`sip.message.parse_message` and the stream framer so that both
agree on where a header block ends and what its Content-Length says. Nothing
here builds message objects.
"""

from __future__ import annotations

import re
from typing import Final

from ._grammar import WSP, SipSyntaxError, is_token
from .headers import _COMPACT, _DISPLAY, SINGLE_HEADERS, canonical_name

__all__ = [
    "HeaderBlock",
    "find_head_end",
    "is_status_line",
    "parse_content_length",
    "read_head",
    "split_request_line",
    "split_status_line",
]

SIP_VERSION: Final = "SIP/2.0"

_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.I)
_STATUS_RE = re.compile(r"[1-6][0-9][0-9]")
_CTL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def find_head_end(data: bytes | bytearray, start: int = 0) -> tuple[int, int]:
    """Where the header block starting at ``start`` ends: ``(head_end, body_start)``.

    The blank line is CRLF CRLF, or LF LF from senders that use bare LF line
    ends, whichever comes first. ``(-1, -1)`` when there is none yet.
    """
    crlf = data.find(b"\r\n\r\n", start)
    # Only senders with bare LF line ends put an LF LF before the CRLF CRLF.
    lf = data.find(b"\n\n", start, len(data) if crlf < 0 else crlf)
    if lf >= 0:
        return lf, lf + 2
    if crlf >= 0:
        return crlf, crlf + 4
    return -1, -1


class HeaderBlock:
    """The lexed header block: start line, ``(key, value)`` entries and what went wrong.

    ``singles`` maps each single-valued header to its value and ``lists`` holds
    the lines of the routing list headers, both filled while lexing so the
    message layer does not scan the entries again. ``error`` is the first
    problem found; lexing goes on past it to salvage as many headers as it can
    for an error response. ``bare_lf`` says some lines end in LF alone.
    """

    __slots__ = ("bare_lf", "error", "items", "lists", "singles", "start")

    def __init__(self) -> None:
        self.start = ""
        self.items: list[tuple[str, str]] = []
        self.singles: dict[str, str] = {}
        self.lists: dict[str, list[str]] = {
            "via": [],
            "contact": [],
            "route": [],
            "record-route": [],
        }
        self.error: SipSyntaxError | None = None
        self.bare_lf = False

    def fail(self, message: str) -> None:
        """Record a problem (only the first one is reported)."""
        if self.error is None:
            self.error = SipSyntaxError(message)


# What lexing does with each header: 1 = single-valued, 2 = routing list.
_ROLES: Final[dict[str, int]] = {key: 1 for key in SINGLE_HEADERS}
_ROLES.update({key: 2 for key in ("via", "contact", "route", "record-route")})

# Header names as phones spell them, mapped straight to their key and role, so
# the usual header line costs one dict lookup instead of strip, check and lower.
_KNOWN_NAMES: Final[dict[str, tuple[str, int | None]]] = {}
for _key, _name in _DISPLAY.items():
    for _spelling in (_name, _key, _name.upper(), _key.title()):
        _KNOWN_NAMES[_spelling] = (_key, _ROLES.get(_key))
for _short, _key in _COMPACT.items():
    _KNOWN_NAMES[_short] = _KNOWN_NAMES[_short.upper()] = (_key, _ROLES.get(_key))


def read_head(head: str) -> HeaderBlock:
    """Split a decoded header block into its start line and header entries."""
    block = HeaderBlock()
    lines = head.split("\r\n")
    n = len(lines) - 1
    if head.count("\n") != n or head.count("\r") != n:
        # Bare LF line ends are a common sloppiness and accepted; a bare CR is not.
        block.bare_lf = head.count("\n") != n
        lines = head.replace("\r\n", "\n").split("\n")
        if "\r" in head.replace("\r\n", ""):
            block.fail("bare CR in header block")
    # Leading empty lines are CRLFs before the start line (RFC 3261 7.5).
    first = 0
    while first < len(lines) and not lines[first]:
        first += 1
    if first == len(lines):
        block.fail("empty message")
        return block
    if not _read_lines(block, lines, first):
        # Folded lines were found: start again on the unfolded block.
        error = block.error
        bare_lf = block.bare_lf
        block = HeaderBlock()
        block.error = error
        block.bare_lf = bare_lf
        _read_lines(block, _unfold(lines[first:]), 0)
    return block


def _read_lines(block: HeaderBlock, lines: list[str], first: int) -> bool:
    """Fill ``block`` from ``lines``; False (and stop) at a continuation line."""
    block.start = lines[first]
    append = block.items.append
    singles = block.singles
    lists = block.lists
    known = _KNOWN_NAMES
    for line in lines[first + 1 :]:
        name, colon, value = line.partition(":")
        entry = known.get(name)
        if entry is None or not colon:
            if line[:1] in (" ", "\t"):
                return False
            name = name.rstrip(WSP)
            if not colon or not is_token(name):
                block.fail(f"malformed header line {line[:40]!r}")
                continue
            key = canonical_name(name)
            entry = (key, _ROLES.get(key))
        key, role = entry
        value = value.strip(WSP)
        append((key, value))
        if role is None:
            continue
        if role == 1:
            if key in singles:
                block.fail(f"more than one {key} header")
                continue
            singles[key] = value
        else:
            lists[key].append(value)
    return True


def _unfold(lines: list[str]) -> list[str]:
    # A line starting with SP/HT continues the previous one (RFC 3261 7.3.1);
    # the line break and the whitespace around it become one SP. Pieces are
    # joined once per header, not concatenated per line, which would be
    # quadratic in the number of continuation lines. A folded start line stays
    # broken and fails as a malformed request or status line.
    out: list[str] = []
    pieces: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t") and pieces and pieces[0]:
            pieces[-1] = pieces[-1].rstrip(WSP)
            pieces.append(line.strip(WSP))
            continue
        if pieces:
            out.append(" ".join(pieces))
        pieces = [line]
    if pieces:
        out.append(" ".join(pieces))
    return out


def parse_content_length(value: str) -> int:
    """A Content-Length value: decimal digits only (RFC 4475 ncl: no sign)."""
    value = value.strip(WSP)
    if not value.isascii() or not value.isdigit() or len(value) > 10:
        raise SipSyntaxError("bad Content-Length")
    return int(value)


def split_request_line(start: str) -> tuple[str, str]:
    """Method and Request-URI text of a request line; raises on a bad version (505)."""
    parts = start.split(" ")
    # Exactly single SPs and no trailing space (RFC 4475 lwsstart, trws, lwsruri).
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise SipSyntaxError("malformed request line")
    method, uri_text, version = parts
    if not is_token(method):
        raise SipSyntaxError("bad method")
    # SIP-Version is case-insensitive (RFC 3261 7.1).
    if version.upper() != SIP_VERSION:
        if _VERSION_RE.fullmatch(version) is None:
            raise SipSyntaxError("malformed request line")
        raise SipSyntaxError("unsupported SIP version", 505)
    if uri_text[0] == "<":
        raise SipSyntaxError("Request-URI must not be enclosed in <>")
    return method, uri_text


def split_status_line(start: str) -> tuple[int, str]:
    """Status code and reason phrase of a status line."""
    parts = start.split(" ", 2)
    if len(parts) < 2:
        raise SipSyntaxError("bad status line")
    if parts[0].upper() != SIP_VERSION:
        raise SipSyntaxError("unsupported SIP version", 505)
    code = parts[1]
    if _STATUS_RE.fullmatch(code) is None:
        raise SipSyntaxError("bad status code")
    reason = parts[2] if len(parts) == 3 else ""
    if _CTL_RE.search(reason):
        raise SipSyntaxError("control character in reason phrase")
    return int(code), reason


def is_status_line(start: str) -> bool:
    """True when a start line is a status line (a response)."""
    return start[:4].upper() == "SIP/"
