"""SIP and SIPS URIs (RFC 3261 section 19.1), with a fallback for other schemes."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from urllib.parse import unquote as _pct_decode

from ._grammar import (
    DIGITS,
    HEADER_CHARS,
    HOST_CHARS,
    PARAM_CHARS,
    PASSWORD_CHARS,
    USER_CHARS,
    SipSyntaxError,
    check_escapes,
)

__all__ = ["AbsoluteUri", "SipUri", "Uri", "format_host", "parse_uri"]

_FORBIDDEN = frozenset(' \t\r\n<>"')


@dataclass(slots=True, eq=False)
class SipUri:
    """A ``sip:`` or ``sips:`` URI.

    ``params`` keeps URI parameters with lower-cased names in their original
    order (a value of None is a flag such as ``;lr``); ``headers`` keeps the
    ``?name=value`` part still escaped.
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
        return None if self.user is None else _pct_decode(self.user, errors="surrogateescape")

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
            a, b = self.params.get(name), other.params.get(name)
            if (a or "").lower() != (b or "").lower():
                return False
        return True

    def __hash__(self) -> int:
        return hash((self.scheme, self.user_unescaped, self.host.lower(), self.port))


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """A URI of a scheme we do not interpret (``tel:``, ``http:``, ...), kept verbatim."""

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
        if text[-1] != "]":
            raise SipSyntaxError(f"bad IPv6 reference in {what}")
        try:
            ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            raise SipSyntaxError(f"bad IPv6 address in {what}") from None
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
    port: int | None = None
    if port_text is not None:
        if not port_text or not all(c in DIGITS for c in port_text) or len(port_text) > 5:
            raise SipSyntaxError(f"bad port in {what}")
        port = int(port_text)
        if port > 65535:
            raise SipSyntaxError(f"port out of range in {what}")
    return parse_host(host, what), port


def parse_uri(text: str, what: str = "URI") -> Uri:
    """Parse a URI; ``sip``/``sips`` into ``SipUri``, anything else into ``AbsoluteUri``."""
    for c in text:
        if c in _FORBIDDEN:
            raise SipSyntaxError(f"invalid character {c!r} in {what}")
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme or not rest:
        raise SipSyntaxError(f"{what} has no scheme")
    if not (scheme[0].isascii() and scheme[0].isalpha()) or not all(
        c.isascii() and (c.isalnum() or c in "+-.") for c in scheme
    ):
        raise SipSyntaxError(f"bad scheme in {what}")
    lowered = scheme.lower()
    if lowered not in ("sip", "sips"):
        return AbsoluteUri(lowered, rest)

    headers: str | None = None
    at = rest.find("@")
    user: str | None = None
    password: str | None = None
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        if not user:
            raise SipSyntaxError(f"empty user in {what}")
        check_escapes(user, USER_CHARS, f"user part of {what}")
        if colon:
            check_escapes(pw, PASSWORD_CHARS, f"password of {what}")
            password = pw
    qmark = rest.find("?")
    if qmark >= 0:
        rest, headers = rest[:qmark], rest[qmark + 1 :]
        check_escapes(headers.replace("=", "").replace("&", ""), HEADER_CHARS, f"headers of {what}")
    hostport, _, param_text = rest.partition(";")
    host, port = split_hostport(hostport, what)
    params: dict[str, str | None] = {}
    if param_text:
        for chunk in param_text.split(";"):
            name, eq, value = chunk.partition("=")
            if not name:
                raise SipSyntaxError(f"empty parameter name in {what}")
            check_escapes(name, PARAM_CHARS, f"parameter name in {what}")
            if eq:
                check_escapes(value, PARAM_CHARS, f"parameter {name!r} of {what}")
                params[name.lower()] = value
            else:
                params[name.lower()] = None
    return SipUri(
        host=host,
        user=user,
        password=password,
        port=port,
        scheme=lowered,
        params=params,
        headers=headers,
    )
