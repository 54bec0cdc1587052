"""SIP and SIPS URIs (RFC 3261 section 19.1), with a fallback for other schemes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote as _pct_decode

from ._grammar import (
    DIGITS,
    HEADER_CHARS,
    HOST_CHARS,
    HOSTNAME,
    IPV6_REF,
    PARAM_CHARS,
    PASSWORD_CHARS,
    USER_CHARS,
    SipSyntaxError,
    check_escapes,
    is_ipv6,
)

__all__ = ["AbsoluteUri", "SipUri", "Uri", "format_host", "parse_uri"]


_ESC = r"%[0-9A-Fa-f]{2}"


def _run(chars: str) -> str:
    # One or more of ``chars`` or %HH escapes: a first element, then possessive
    # runs of plain characters between escapes. '%' is never in ``chars``, so
    # there is one way to match and nothing to backtrack into.
    return rf"(?:[{chars}]|{_ESC})[{chars}]*+(?:{_ESC}[{chars}]*+)*+"


def _opt_run(chars: str) -> str:
    # Zero or more of ``chars`` or %HH escapes.
    return rf"[{chars}]*+(?:{_ESC}[{chars}]*+)*+"


_USER = r"A-Za-z0-9\-_.!~*'()&=+$,;?/"
_PASSWORD = r"A-Za-z0-9\-_.!~*'()&=+$,"
_PARAM = r"A-Za-z0-9\-_.!~*'()\[\]/:&+$"
_HNV = r"A-Za-z0-9\-_.!~*'()\[\]/?:+$"

# The SIP-URI grammar of RFC 3261 section 25 as one expression with seven
# groups (scheme, user, password, host, port, ';params', headers), so a URI is
# checked in C. User parts may contain ';' and '?' (RFC 4475 semiuri), so the
# userinfo is only recognised before an '@'. Other modules embed it between
# '<' and '>' to check a whole name-addr in one match.
SIP_URI_PATTERN = (
    rf"([Ss][Ii][Pp][Ss]?):"
    rf"(?:({_run(_USER)})(?::({_opt_run(_PASSWORD)}))?@)?"
    rf"({HOSTNAME}|{IPV6_REF})"
    r"(?::([0-9]{1,5}+))?"
    rf"((?:;{_run(_PARAM)}(?:={_run(_PARAM)})?)*+)"
    rf"(?:\?({_run(_HNV)}={_opt_run(_HNV)}(?:&{_run(_HNV)}={_opt_run(_HNV)})*+))?"
)
# A SIP URI in addr-spec form (a header value without <>): no ';', '?' or ','
# anywhere, since they would be read as header parameters or list separators
# (RFC 3261 20.10). Five groups: scheme, user, password, host, port.
ADDR_SPEC_PATTERN = (
    r"([Ss][Ii][Pp][Ss]?):"
    rf"(?:({_run(_USER.replace(',;?', ''))})"
    rf"(?::({_opt_run(_PASSWORD.replace(',', ''))}))?@)?"
    rf"({HOSTNAME}|{IPV6_REF})"
    r"(?::([0-9]{1,5}+))?"
)
_SIP_URI_RE = re.compile(SIP_URI_PATTERN)
# absoluteURI: a scheme and then visible ASCII that cannot end an address in a
# header (no space, quotes or angle brackets).
_ABSOLUTE_URI_RE = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*+):([!#-;=?-~]++)")


@dataclass(slots=True, eq=False)
class SipUri:
    """A ``sip:`` or ``sips:`` URI.

    ``params`` keeps URI parameters with lower-cased names in their original
    order (a value of None is a flag such as ``;lr``), values still %-escaped as
    received; :meth:`param` looks one up with escapes resolved. ``headers`` keeps
    the ``?name=value`` part still escaped; :attr:`header_fields` decodes it.
    """

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str | None = None

    @property
    def transport(self) -> str:
        """The ``transport`` parameter, lower-cased ('udp' when absent, 'tls' for sips)."""
        value = self.params.get("transport")
        if value:
            return value.lower()
        return "tls" if self.scheme == "sips" else "udp"

    @property
    def user_unescaped(self) -> str | None:
        """The user part with %HH escapes resolved (``sip:%61lice@h`` is user ``alice``)."""
        if self.user is None or "%" not in self.user:
            return self.user
        return _pct_decode(self.user, errors="surrogateescape")

    def has_param(self, name: str) -> bool:
        """True when the parameter is present (flag or valued), escapes resolved."""
        return self._find_param(name.lower())[0]

    def param(self, name: str) -> str | None:
        """The value of parameter ``name`` with %HH escapes resolved (RFC 3261 19.1.2).

        Matches escaped names too (``;%6C%72`` is ``lr``); None for a flag or an
        absent parameter.
        """
        value = self._find_param(name.lower())[1]
        if value is None or "%" not in value:
            return value
        return _pct_decode(value, errors="surrogateescape")

    def _find_param(self, key: str) -> tuple[bool, str | None]:
        if key in self.params:
            return True, self.params[key]
        for raw, value in self.params.items():
            if "%" in raw and _pct_decode(raw, errors="surrogateescape").lower() == key:
                return True, value
        return False, None

    @property
    def header_fields(self) -> list[tuple[str, str]]:
        """The ``?name=value&...`` headers, unescaped, in order (RFC 3261 19.1.1)."""
        if not self.headers:
            return []
        out: list[tuple[str, str]] = []
        for item in self.headers.split("&"):
            name, _, value = item.partition("=")
            out.append(
                (
                    _pct_decode(name, errors="surrogateescape"),
                    _pct_decode(value, errors="surrogateescape"),
                )
            )
        return out

    def with_params(self, **params: str | None) -> SipUri:
        """A copy with parameters replaced or added."""
        merged = dict(self.params)
        merged.update(params)
        return replace(self, params=merged)

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(format_host(self.host))
        if self.port is not None:
            out.append(f":{self.port}")
        for k, v in self.params.items():
            out.append(f";{k}" if v is None else f";{k}={v}")
        if self.headers is not None:
            out.append("?" + self.headers)
        return "".join(out)

    def __eq__(self, other: object) -> bool:
        # RFC 3261 19.1.4, simplified: scheme, user, password case-sensitive after
        # unescaping; host case-insensitive; ports and the well-known params must match.
        if not isinstance(other, SipUri):
            return NotImplemented
        if (
            self.scheme != other.scheme
            or self.user_unescaped != other.user_unescaped
            or self.password != other.password
            or self.host.lower() != other.host.lower()
            or self.port != other.port
        ):
            return False
        for name in ("transport", "user", "ttl", "method", "maddr"):
            a, b = self.param(name), other.param(name)
            if (a or "").lower() != (b or "").lower():
                return False
        return True

    def __hash__(self) -> int:
        return hash((self.scheme, self.user_unescaped, self.host.lower(), self.port))


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """A URI of a scheme we do not interpret (``tel:``, ``http:``, ...), kept verbatim.

    ``scheme`` is lower-cased (schemes are case-insensitive).
    """

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | AbsoluteUri


def format_host(host: str) -> str:
    """Wrap IPv6 literals in brackets, leave names and IPv4 as they are."""
    return f"[{host}]" if ":" in host else host


def parse_host(text: str, what: str) -> str:
    """Validate a host (name, IPv4 or bracketed IPv6) and return it without brackets."""
    if not text:
        raise SipSyntaxError(f"empty host in {what}")
    if text[0] == "[":
        if text[-1] != "]" or not is_ipv6(text[1:-1]) or "%" in text:
            raise SipSyntaxError(f"bad IPv6 reference in {what}")
        return text[1:-1]
    for c in text:
        if c not in HOST_CHARS:
            raise SipSyntaxError(f"invalid character {c!r} in host of {what}")
    return text


def split_hostport(text: str, what: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` (IPv6 in brackets) into host and optional port."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipSyntaxError(f"bad IPv6 reference in {what}")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SipSyntaxError(f"garbage after IPv6 reference in {what}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_ = text.partition(":")
        port_text = port_text_ if colon else None
    return parse_host(host, what), parse_port(port_text, what)


def parse_port(text: str | None, what: str) -> int | None:
    """Parse an optional port number (1-5 digits, at most 65535)."""
    if text is None:
        return None
    if not text or len(text) > 5 or not all(c in DIGITS for c in text):
        raise SipSyntaxError(f"bad port in {what}")
    port = int(text)
    if port > 65535:
        raise SipSyntaxError(f"port out of range in {what}")
    return port


def parse_uri(text: str, what: str = "URI") -> Uri:
    """Parse a URI; ``sip``/``sips`` into ``SipUri``, anything else into ``AbsoluteUri``."""
    m = _SIP_URI_RE.fullmatch(text)
    if m is not None:
        return sip_uri_from_groups(m.groups(), what)
    scheme = text.partition(":")[0].lower()
    if scheme == "sip" or scheme == "sips":
        _diagnose(text, what)
    m = _ABSOLUTE_URI_RE.fullmatch(text)
    if m is None:
        raise SipSyntaxError(f"malformed {what}")
    return AbsoluteUri(scheme, m.group(2))


def sip_uri_from_groups(groups: tuple[str | Any, ...], what: str) -> SipUri:
    """Build a ``SipUri`` from the seven groups of a :data:`SIP_URI_PATTERN` match.

    ``groups`` are (scheme, user, password, host, port, ';params', headers);
    a match of :data:`ADDR_SPEC_PATTERN` passes None for the last two.
    """
    scheme, user, password, host, port_text, param_text, headers = groups
    params: dict[str, str | None] = {}
    if param_text:
        for chunk in param_text[1:].split(";"):
            name, eq, value = chunk.partition("=")
            params[name.lower()] = value if eq else None
    if host[0] == "[":
        host = parse_host(host, what)
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise SipSyntaxError(f"port out of range in {what}")
    if scheme != "sip":
        scheme = scheme.lower()
    return SipUri(host, user, password, port, scheme, params, headers)


def _diagnose(text: str, what: str) -> None:
    """Say what is wrong with a sip/sips URI the expression rejected (always raises)."""
    rest = text.partition(":")[2]
    if not rest:
        raise SipSyntaxError(f"{what} has nothing after the scheme")
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, password = userinfo.partition(":")
        if not user:
            raise SipSyntaxError(f"empty user in {what}")
        check_escapes(user, USER_CHARS, f"user part of {what}")
        if colon:
            check_escapes(password, PASSWORD_CHARS, f"password of {what}")
    rest, qmark, headers = rest.partition("?")
    if qmark:
        for item in headers.split("&"):
            name, eq, value = item.partition("=")
            if not name or not eq:
                raise SipSyntaxError(f"bad header in {what}")
            check_escapes(name + value, HEADER_CHARS, f"headers of {what}")
    hostport, _, param_text = rest.partition(";")
    split_hostport(hostport, what)
    if param_text:
        for chunk in param_text.split(";"):
            name, eq, value = chunk.partition("=")
            if not name or (eq and not value):
                raise SipSyntaxError(f"empty parameter name or value in {what}")
            check_escapes(name + value, PARAM_CHARS, f"parameters of {what}")
    raise SipSyntaxError(f"malformed {what}")
