"""Character classes and small lexical helpers from the RFC 3261 section 25 ABNF.

Everything here works on ``str`` (messages are decoded as UTF-8 with
``surrogateescape`` so bytes round-trip exactly) and raises ``SipSyntaxError``
on input that breaks the grammar. The hot paths use precompiled regular
expressions, which check a whole element in C instead of a Python loop per
character; the character sets stay for callers that test single characters.
"""

from __future__ import annotations

import ipaddress
import re
import string
from typing import Final


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
UNRESERVED = _ALNUM | frozenset("-_.!~*'()")
USER_CHARS = UNRESERVED | frozenset("%&=+$,;?/")
PASSWORD_CHARS = UNRESERVED | frozenset("%&=+$,")
PARAM_CHARS = UNRESERVED | frozenset("%[]/:&+$")
HEADER_CHARS = UNRESERVED | frozenset("%[]/?:+$")
HOST_CHARS = _ALNUM | frozenset("-.")
DIGITS = frozenset(string.digits)
HEX = frozenset(string.hexdigits)
WSP = " \t"

# Regular-expression fragments. [0-9] rather than \d: \d also matches Unicode
# digits such as '²', which int() rejects. Every repetition is possessive
# ('*+', '++') over a class that cannot also match what follows it, so no
# expression backtracks: matching stays linear even on hostile input.
TOKEN: Final = r"[A-Za-z0-9\-.!%*_+`'~]++"
# quoted-string: qdtext is anything but '"', '\' and CTLs (HT allowed as LWS);
# quoted-pair escapes any ASCII octet but CR and LF.
_QDTEXT = r'[^"\\\x00-\x08\x0a-\x1f\x7f]*+'
QUOTED: Final = rf'"{_QDTEXT}(?:\\[\x00-\x09\x0b\x0c\x0e-\x7f]{_QDTEXT})*+"'
IPV6_REF: Final = r"\[[0-9A-Fa-f:.]++\]"
HOSTNAME: Final = r"[A-Za-z0-9\-.]++"

# Any number of header parameters (';' name ['=' value]) with LWS around ';' and
# '=', for embedding in whole-header expressions. BARE_IPV6_PARAMS also takes
# values with ':' (checked afterwards by params_from_valid).
HEADER_PARAMS: Final = (
    rf"(?:[ \t]*+;[ \t]*+{TOKEN}(?:[ \t]*+=[ \t]*+(?:{TOKEN}|{QUOTED}|{IPV6_REF}))?)*+[ \t]*+"
)
BARE_IPV6_PARAMS: Final = (
    rf"(?:[ \t]*+;[ \t]*+{TOKEN}"
    rf"(?:[ \t]*+=[ \t]*+(?:[A-Za-z0-9\-.!%*_+`'~:]++|{QUOTED}|{IPV6_REF}))?)*+[ \t]*+"
)

_TOKEN_RE = re.compile(TOKEN)
_QUOTED_RE = re.compile(QUOTED)
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.S)
_NEEDS_QUOTED_PAIR_RE = re.compile(r'[\\"\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')
# One generic-param: ';' name ['=' value] with LWS allowed around ';' and '='.
# A value is a token, a quoted string, an IPv6 reference, or (checked afterwards,
# for the names that allow it) a bare IPv6 address.
_PARAM_RE = re.compile(
    rf"[ \t]*+;[ \t]*+({TOKEN})"
    rf"(?:[ \t]*+=[ \t]*+({QUOTED}|{IPV6_REF}|[A-Za-z0-9\-.!%*_+`'~:]++))?[ \t]*+"
)


def is_token(value: str) -> bool:
    """True when ``value`` is a non-empty RFC 3261 token."""
    return _TOKEN_RE.fullmatch(value) is not None


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
    if _QUOTED_RE.fullmatch(value) is None:
        if len(value) < 2 or value[0] != '"' or value[-1] != '"':
            raise SipSyntaxError("expected a quoted string")
        raise SipSyntaxError("bad character or escape in quoted string")
    inner = value[1:-1]
    if "\\" not in inner:
        return inner
    return _QUOTED_PAIR_RE.sub(r"\1", inner)


def quote(value: str) -> str:
    """Make a quoted-string of ``value``.

    Quotes, backslashes and control characters become quoted-pairs; CR and LF,
    which no quoted-pair can carry, become spaces so a display name can never
    start a new header line.
    """
    if "\r" in value or "\n" in value:
        value = value.replace("\r", " ").replace("\n", " ")
    return '"' + _NEEDS_QUOTED_PAIR_RE.sub(r"\\\g<0>", value) + '"'


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
    """Split a header value on commas that are outside quoted strings and angle brackets.

    Empty elements are dropped; :func:`split_list` is the strict form.
    """
    if "," not in text:
        stripped = text.strip(WSP)
        return [stripped] if stripped else []
    parts: list[str] = []
    start = 0
    while True:
        idx = find_unquoted(text, ",", start)
        if idx < 0:
            part = text[start:].strip(WSP)
            if part:
                parts.append(part)
            return parts
        part = text[start:idx].strip(WSP)
        if part:
            parts.append(part)
        start = idx + 1


def split_list(text: str, what: str) -> list[str]:
    """Split a comma-separated list whose grammar has no empty elements (Via, Contact, Route)."""
    if "," not in text:
        stripped = text.strip(WSP)
        if not stripped:
            raise SipSyntaxError(f"empty {what}")
        return [stripped]
    parts: list[str] = []
    start = 0
    while True:
        idx = find_unquoted(text, ",", start)
        part = (text[start:] if idx < 0 else text[start:idx]).strip(WSP)
        if not part:
            raise SipSyntaxError(f"empty element in {what} list")
        parts.append(part)
        if idx < 0:
            return parts
        start = idx + 1


def parse_params(
    text: str, what: str, bare_ipv6: frozenset[str] = frozenset()
) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` generic parameters.

    ``text`` may start with the first ';' (and LWS before it) or just after it.
    Names are kept lower-cased (parameter names are case-insensitive); values may
    be tokens, quoted strings (kept with their quotes) or bracketed IPv6
    references. Names in ``bare_ipv6`` also take an unbracketed IPv6 address
    (the Via ``received`` parameter, RFC 5118 section 4.5).
    """
    params: dict[str, str | None] = {}
    if not text:
        return params
    if text.lstrip(WSP)[:1] != ";":
        text = ";" + text
    pos = 0
    end = len(text)
    match = _PARAM_RE.match
    while pos < end:
        m = match(text, pos)
        if m is None:
            raise SipSyntaxError(f"bad parameter in {what}")
        name, value = m.group(1, 2)
        if (
            value is not None
            and ":" in value
            and value[0] not in '"['
            and (name.lower() not in bare_ipv6 or not is_ipv6(value))
        ):
            raise SipSyntaxError(f"bad value for parameter {name!r} in {what}")
        params[name.lower()] = value
        pos = m.end()
    return params


def params_from_valid(
    text: str, what: str, bare_ipv6: frozenset[str] = frozenset()
) -> dict[str, str | None]:
    """:func:`parse_params` for text a whole-header expression already validated.

    Without quoted values the text splits on ';' and '=' with no further checks.
    """
    if '"' in text or (bare_ipv6 and ":" in text):
        return parse_params(text, what, bare_ipv6)
    params: dict[str, str | None] = {}
    chunks = text.split(";")
    if " " in text or "\t" in text:
        for chunk in chunks[1:]:
            name, eq, value = chunk.partition("=")
            params[name.strip(WSP).lower()] = value.strip(WSP) if eq else None
    else:
        for chunk in chunks[1:]:
            name, eq, value = chunk.partition("=")
            params[name.lower()] = value if eq else None
    return params


def is_ipv6(text: str) -> bool:
    """True when ``text`` is an IPv6 address (no brackets)."""
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def format_params(params: dict[str, str | None]) -> str:
    """Serialise generic parameters back to ``;name=value`` form."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())
