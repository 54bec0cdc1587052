"""Character classes and small lexical helpers from the RFC 3261 section 25 ABNF.

Everything here works on ``str`` (messages are decoded as UTF-8 with
``surrogateescape`` so bytes round-trip exactly) and raises ``SipSyntaxError``
on input that breaks the grammar.
"""

from __future__ import annotations

import string


class SipSyntaxError(ValueError):
    """The remote side sent something that breaks the SIP grammar.

    ``status`` is the response code a UAS answers a request with (400 unless a
    more precise code applies, such as 416 or 505).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


_ALNUM = frozenset(string.ascii_letters + string.digits)
TOKEN_CHARS = _ALNUM | frozenset("-.!%*_+`'~")
# RFC 3261 'word' allows a few more separators (Call-ID).
WORD_CHARS = TOKEN_CHARS | frozenset('()<>:\\"/[]?{}')
UNRESERVED = _ALNUM | frozenset("-_.!~*'()")
USER_CHARS = UNRESERVED | frozenset("%&=+$,;?/")
PASSWORD_CHARS = UNRESERVED | frozenset("%&=+$,")
PARAM_CHARS = UNRESERVED | frozenset("%[]/:&+$")
HEADER_CHARS = UNRESERVED | frozenset("%[]/?:+$")
HOST_CHARS = _ALNUM | frozenset("-.")
DIGITS = frozenset(string.digits)
HEX = frozenset(string.hexdigits)
WSP = " \t"


def is_token(value: str) -> bool:
    """True when ``value`` is a non-empty RFC 3261 token."""
    return bool(value) and all(c in TOKEN_CHARS for c in value)


def check_escapes(value: str, allowed: frozenset[str], what: str) -> None:
    """Check that ``value`` uses only ``allowed`` characters and well-formed %HH escapes."""
    for i, c in enumerate(value):
        if c not in allowed:
            raise SipSyntaxError(f"invalid character {c!r} in {what}")
        # A slice past the end is "", which is not in HEX, so truncated escapes fail too.
        if c == "%" and (value[i + 1 : i + 2] not in HEX or value[i + 2 : i + 3] not in HEX):
            raise SipSyntaxError(f"bad escape in {what}")


def unquote(value: str) -> str:
    """Strip the quotes of a quoted-string and resolve its backslash escapes."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        raise SipSyntaxError("expected a quoted string")
    inner = value[1:-1]
    if "\\" not in inner:
        if '"' in inner:
            raise SipSyntaxError("unescaped quote inside quoted string")
        return inner
    out: list[str] = []
    i = 0
    while i < len(inner):
        c = inner[i]
        if c == "\\":
            if i + 1 >= len(inner):
                raise SipSyntaxError("dangling backslash in quoted string")
            out.append(inner[i + 1])
            i += 2
            continue
        if c == '"':
            raise SipSyntaxError("unescaped quote inside quoted string")
        out.append(c)
        i += 1
    return "".join(out)


def quote(value: str) -> str:
    """Make a quoted-string of ``value``, escaping quotes and backslashes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def find_unquoted(text: str, chars: str, start: int = 0) -> int:
    """Index of the first of ``chars`` at or after ``start`` outside quotes and <>, or -1."""
    in_quotes = False
    in_angle = False
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if in_quotes:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_quotes = False
        elif not in_angle and c in chars:
            return i
        elif c == '"':
            in_quotes = True
        elif c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        i += 1
    if in_quotes:
        raise SipSyntaxError("unterminated quoted string")
    return -1


def split_commas(text: str) -> list[str]:
    """Split a header value on commas that are outside quoted strings and angle brackets."""
    if "," not in text:
        stripped = text.strip()
        return [stripped] if stripped else []
    parts: list[str] = []
    start = 0
    while True:
        idx = find_unquoted(text, ",", start)
        if idx < 0:
            part = text[start:].strip()
            if part:
                parts.append(part)
            return parts
        part = text[start:idx].strip()
        if part:
            parts.append(part)
        start = idx + 1


def parse_params(text: str, what: str) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` generic parameters (``text`` starts after the first ';').

    Names are kept lower-cased (parameter names are case-insensitive); values may be
    tokens, quoted strings (kept with their quotes) or bracketed IPv6 hosts.
    """
    params: dict[str, str | None] = {}
    if not text:
        return params
    start = 0
    while True:
        idx = find_unquoted(text, ";", start)
        chunk = text[start:] if idx < 0 else text[start:idx]
        name, eq, value = chunk.partition("=")
        name = name.strip(WSP)
        if not is_token(name):
            raise SipSyntaxError(f"bad parameter name {name!r} in {what}")
        if eq:
            value = value.strip(WSP)
            if not value:
                raise SipSyntaxError(f"empty value for parameter {name!r} in {what}")
            if value[0] == '"':
                unquote(value)
            elif value[0] == "[":
                if value[-1] != "]":
                    raise SipSyntaxError(f"bad IPv6 reference in {what}")
            elif not is_token(value):
                raise SipSyntaxError(f"bad value for parameter {name!r} in {what}")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
        if idx < 0:
            return params
        start = idx + 1


def format_params(params: dict[str, str | None]) -> str:
    """Serialise generic parameters back to ``;name=value`` form."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())
