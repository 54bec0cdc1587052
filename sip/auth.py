"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760).

Server side: the registrar and the B2BUA challenge requests with
:class:`DigestAuthenticator`, whose nonces come from a stateless
:class:`NonceManager`. Client side: :func:`build_authorization` answers a
trunk's challenge. Sans-I/O: the current time is always passed in as ``now``.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import math
import re
import secrets
import string
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TypeAlias

__all__ = [
    "AuthHeaderError",
    "AuthResult",
    "Challenge",
    "Credentials",
    "DigestAuthenticator",
    "Ha1Lookup",
    "NonceManager",
    "NonceStatus",
    "build_authorization",
    "ha1",
    "parse_challenge",
    "parse_credentials",
]

# RFC 8760 §2.4: the strongest algorithm is offered first.
_PREFERENCE = ("SHA-256", "SHA-256-sess", "MD5", "MD5-sess")
_ALGORITHMS = {name.upper(): name for name in _PREFERENCE}
_HASHLIB_NAMES = {"MD5": "md5", "SHA-256": "sha256"}

_LWS = re.compile(r"[ \t\r\n]*")
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")
# qdtext or quoted-pair; a raw or escaped CR/LF/control is not allowed (RFC 3261 §25.1).
_QUOTED = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f]|\\[^\x00-\x08\x0a-\x1f])*)"')
# Unquoted values are looser than RFC 3261 tokens because old phones send
# e.g. uri=sip:1000@pbx unquoted; anything visible but a delimiter is taken.
_BARE = re.compile(r"[!#-+\--\[\]-~]+")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


class AuthHeaderError(ValueError):
    """A Digest header value that cannot be parsed or used; the message says why."""


def _algorithm(name: str) -> str:
    return _ALGORITHMS.get(name.upper(), name)


def _hash_name(algorithm: str) -> str:
    canonical = _ALGORITHMS.get(algorithm.upper())
    if canonical is None:
        raise AuthHeaderError(f"unsupported digest algorithm {algorithm[:40]!r}")
    return _HASHLIB_NAMES[canonical.removesuffix("-sess")]


def _h(hash_name: str, text: str) -> str:
    # surrogatepass: header text decoded with surrogateescape must still hash, not raise.
    return hashlib.new(hash_name, text.encode("utf-8", "surrogatepass")).hexdigest()


def _quote(value: str) -> str:
    if any(ch in "\r\n\0" for ch in value):
        # Echoing a peer's CR/LF into our own header would let it inject headers.
        raise AuthHeaderError("CR, LF or NUL cannot be sent in a quoted-string")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _skip_lws(value: str, i: int) -> int:
    lws = _LWS.match(value, i)
    return lws.end() if lws else i


def _scan_params(value: str) -> dict[str, str]:
    """Split ``Digest name=value, ...`` into lower-cased names and unquoted values."""
    i = _skip_lws(value, 0)
    scheme = _TOKEN.match(value, i)
    if scheme is None:
        raise AuthHeaderError(f"missing auth scheme at offset {i}")
    if scheme[0].lower() != "digest":
        raise AuthHeaderError(f"unsupported auth scheme {scheme[0][:40]!r}")
    i = scheme.end()
    if i < len(value) and value[i] not in " \t\r\n":
        raise AuthHeaderError(f"unexpected {value[i]!r} after auth scheme at offset {i}")
    params: dict[str, str] = {}
    while True:
        i = _skip_lws(value, i)
        if i >= len(value):
            break
        if value[i] == ",":  # empty list elements are allowed, as in RFC 7230 §7
            i += 1
            continue
        name = _TOKEN.match(value, i)
        if name is None:
            raise AuthHeaderError(f"expected a parameter name at offset {i}, got {value[i]!r}")
        i = _skip_lws(value, name.end())
        if not value.startswith("=", i):
            raise AuthHeaderError(f"expected '=' after {name[0][:40]!r} at offset {i}")
        i = _skip_lws(value, i + 1)
        if value.startswith('"', i):
            quoted = _QUOTED.match(value, i)
            if quoted is None:
                raise AuthHeaderError(f"unterminated or invalid quoted-string at offset {i}")
            param, i = _ESCAPE.sub(r"\1", quoted[1]), quoted.end()
        else:
            bare = _BARE.match(value, i)
            if bare is None:
                raise AuthHeaderError(f"missing value for {name[0][:40]!r} at offset {i}")
            param, i = bare[0], bare.end()
        key = name[0].lower()
        if key in params:
            raise AuthHeaderError(f"parameter {key[:40]!r} repeated at offset {name.start()}")
        params[key] = param
        i = _skip_lws(value, i)
        if i < len(value) and value[i] != ",":
            raise AuthHeaderError(f"expected ',' at offset {i}, got {value[i]!r}")
    if not params:
        raise AuthHeaderError("Digest without parameters")
    return params


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed WWW-Authenticate / Proxy-Authenticate Digest challenge."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False

    def serialize(self) -> str:
        """The header value, e.g. ``Digest realm="pbx", nonce="...", algorithm=SHA-256``."""
        parts = [f"realm={_quote(self.realm)}", f"nonce={_quote(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        if self.stale:
            parts.append("stale=true")
        return "Digest " + ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Credentials:
    """A parsed Authorization / Proxy-Authorization Digest response.

    Fields the client left out are ``None``: whether they were required is
    decided by :meth:`DigestAuthenticator.verify`, which can then say why.
    An absent algorithm means MD5 (RFC 7616 §3.3).
    """

    username: str | None = None
    realm: str | None = None
    nonce: str | None = None
    uri: str | None = None
    response: str | None = None
    algorithm: str = "MD5"
    cnonce: str | None = None
    nc: str | None = None
    qop: str | None = None
    opaque: str | None = None

    def serialize(self) -> str:
        """The header value, quoting exactly the parameters RFC 7616 §3.4 quotes."""
        parts = []
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                text = value if field.name in ("algorithm", "qop", "nc") else _quote(value)
                parts.append(f"{field.name}={text}")
        return "Digest " + ", ".join(parts)


def parse_challenge(value: str) -> Challenge:
    """Parse a WWW-Authenticate value; raises :class:`AuthHeaderError` if malformed."""
    params = _scan_params(value)
    for required in ("realm", "nonce"):
        if required not in params:
            raise AuthHeaderError(f"challenge has no {required}")
    qop = tuple(q.strip().lower() for q in params["qop"].split(",")) if "qop" in params else ()
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=_algorithm(params.get("algorithm", "MD5")),
        qop=tuple(q for q in qop if q),
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
    )


def parse_credentials(value: str) -> Credentials:
    """Parse an Authorization value; raises :class:`AuthHeaderError` if malformed."""
    p = _scan_params(value)
    return Credentials(
        username=p.get("username"),
        realm=p.get("realm"),
        nonce=p.get("nonce"),
        uri=p.get("uri"),
        response=p.get("response"),
        algorithm=_algorithm(p.get("algorithm", "MD5")),
        cnonce=p.get("cnonce"),
        nc=p.get("nc"),
        qop=p.get("qop"),
        opaque=p.get("opaque"),
    )


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """Hex H(username:realm:password), what a user store keeps instead of the password.

    The ``-sess`` variants share the HA1 of their base hash; the session part
    is mixed in per nonce when the response is computed.
    """
    return _h(_hash_name(_algorithm(algorithm)), f"{username}:{realm}:{password}")


def _response(
    algorithm: str,
    ha1_hex: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    nc: str | None,
    cnonce: str | None,
    body: bytes = b"",
) -> str:
    name = _hash_name(algorithm)
    if algorithm.upper().endswith("-SESS"):
        ha1_hex = _h(name, f"{ha1_hex}:{nonce}:{cnonce}")
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + hashlib.new(name, body).hexdigest()
    ha2 = _h(name, a2)
    if qop is None:  # RFC 2069 / RFC 2617 without qop
        return _h(name, f"{ha1_hex}:{nonce}:{ha2}")
    return _h(name, f"{ha1_hex}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def build_authorization(
    challenge: Challenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
) -> str:
    """Answer ``challenge`` for a request; returns the Authorization header value.

    Prefers qop=auth, uses auth-int (hashing ``body``) only if that is all the
    server offers, and falls back to RFC 2617 no-qop if the server sends none.
    """
    if not 1 <= nc <= 0xFFFFFFFF:
        raise ValueError(f"nonce count {nc} out of range")
    offered = challenge.qop
    qop: str | None = None
    if offered:
        qop = "auth" if "auth" in offered else "auth-int" if "auth-int" in offered else None
        if qop is None:
            raise AuthHeaderError(f"no supported qop in {','.join(offered)[:60]!r}")
    nc_hex = f"{nc:08x}" if qop else None
    algorithm = _algorithm(challenge.algorithm)
    key = ha1(username, challenge.realm, password, algorithm)
    response = _response(algorithm, key, challenge.nonce, method, uri, qop, nc_hex, cnonce, body)
    sends_cnonce = qop is not None or algorithm.endswith("-sess")
    return Credentials(
        username=username,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=algorithm,
        cnonce=cnonce if sends_cnonce else None,
        nc=nc_hex,
        qop=qop,
        opaque=challenge.opaque,
    ).serialize()


class NonceStatus(enum.Enum):
    """What :class:`NonceManager` makes of a nonce a client sent back."""

    VALID = "valid"
    STALE = "stale"  # ours, but expired: challenge again with stale=true
    INVALID = "invalid"  # not ours, or tampered with, or a replayed nonce count


_TIMESTAMP = struct.Struct(">d")
_RANDOM_LEN = 12
_MAC_LEN = 16
_NONCE_CHARS = frozenset(string.ascii_letters + string.digits + "-_")
# 8 + 12 + 16 bytes is a multiple of 3, so the base64url form has no padding.
_NONCE_LEN = (_TIMESTAMP.size + _RANDOM_LEN + _MAC_LEN) * 4 // 3


class NonceManager:
    """Issues nonces that verify without server state, and tracks nonce counts.

    A nonce is base64url(timestamp || random || HMAC(secret, timestamp ||
    random || realm)), so any process holding ``secret`` can check it and
    tell its age. Only the highest nonce count of nonces that passed full
    authentication is stored, in at most ``max_tracked`` entries: an attacker
    without a password cannot grow the table.
    """

    def __init__(self, secret: bytes, lifetime: float = 300.0, max_tracked: int = 100_000) -> None:
        if len(secret) < 16:
            raise ValueError("nonce secret must be at least 16 bytes")
        if not lifetime > 0 or max_tracked < 1:
            raise ValueError("lifetime and max_tracked must be positive")
        self._secret = secret
        self.lifetime = lifetime
        self._max_tracked = max_tracked
        self._highest_nc: OrderedDict[str, tuple[float, int]] = OrderedDict()
        # Nonces issued up to this time may have lost their count to eviction;
        # they are refused (as stale) rather than letting a replay through.
        self._forgotten_until = -math.inf

    def issue(self, now: float, realm: str = "") -> str:
        """A fresh nonce stamped with ``now`` and bound to ``realm``."""
        body = _TIMESTAMP.pack(now) + secrets.token_bytes(_RANDOM_LEN)
        return base64.urlsafe_b64encode(body + self._mac(body, realm)).decode("ascii")

    def check(self, nonce: str, now: float, realm: str = "") -> NonceStatus:
        """Whether ``nonce`` is ours, for ``realm``, and younger than the lifetime."""
        return self._status(self._issued_at(nonce, realm), now)

    def accept_nc(self, nonce: str, nc: int, now: float, realm: str = "") -> NonceStatus:
        """Record nonce count ``nc``; INVALID unless above every count seen for ``nonce``.

        Call only once the response digest has been verified, so that a forged
        request cannot burn a legitimate client's counts.
        """
        issued = self._issued_at(nonce, realm)
        status = self._status(issued, now)
        if issued is None or status is not NonceStatus.VALID:
            return status
        seen = self._highest_nc.get(nonce)
        if seen is None:
            if issued <= self._forgotten_until:
                return NonceStatus.STALE
            if nc < 1:
                return NonceStatus.INVALID
            self._make_room(now)
            self._highest_nc[nonce] = (issued, nc)
            return NonceStatus.VALID
        if nc <= seen[1]:
            return NonceStatus.INVALID
        self._highest_nc[nonce] = (issued, nc)
        return NonceStatus.VALID

    def prune(self, now: float) -> None:
        """Forget the counts of every expired nonce."""
        horizon = now - self.lifetime
        for nonce in [k for k, (issued, _) in self._highest_nc.items() if issued < horizon]:
            del self._highest_nc[nonce]

    def __len__(self) -> int:
        return len(self._highest_nc)

    def _make_room(self, now: float) -> None:
        # Entries are appended at first use, which closely follows issue time,
        # so expired ones gather at the front and are dropped in O(1) each.
        horizon = now - self.lifetime
        while self._highest_nc:
            nonce, (issued, _) = next(iter(self._highest_nc.items()))
            if issued >= horizon and len(self._highest_nc) < self._max_tracked:
                return
            del self._highest_nc[nonce]
            if issued >= horizon:
                self._forgotten_until = max(self._forgotten_until, issued)

    def _status(self, issued: float | None, now: float) -> NonceStatus:
        if issued is None:
            return NonceStatus.INVALID
        # A nonce from the future is authentic but its clock is not ours (a
        # restart with a different clock): stale lets the client retry silently.
        if not 0 <= now - issued <= self.lifetime:
            return NonceStatus.STALE
        return NonceStatus.VALID

    def _mac(self, body: bytes, realm: str) -> bytes:
        data = body + realm.encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, data, hashlib.sha256).digest()[:_MAC_LEN]

    def _issued_at(self, nonce: str, realm: str) -> float | None:
        if len(nonce) != _NONCE_LEN or not _NONCE_CHARS.issuperset(nonce):
            return None
        raw = base64.urlsafe_b64decode(nonce)
        body, mac = raw[:-_MAC_LEN], raw[-_MAC_LEN:]
        if not hmac.compare_digest(mac, self._mac(body, realm)):
            return None
        issued: float = _TIMESTAMP.unpack_from(body)[0]
        return issued


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The verdict on one request's credentials.

    ``username`` is set only when ``ok``; ``stale`` means the password was
    right but the nonce expired, so the answer's challenge carries stale=true.
    ``reason`` is for logs only: it may tell an unknown user from a wrong
    password, so it must never reach the wire.
    """

    ok: bool
    stale: bool
    username: str | None
    reason: str


# (username, realm, algorithm) -> hex HA1, or None for an unknown user. The
# algorithm passed is the base hash, "MD5" or "SHA-256": -sess variants share it.
Ha1Lookup: TypeAlias = Callable[[str, str, str], str | None]


def _fail(reason: str, stale: bool = False) -> AuthResult:
    return AuthResult(ok=False, stale=stale, username=None, reason=reason)


class DigestAuthenticator:
    """Challenges requests and verifies Digest credentials for one realm (server side)."""

    def __init__(
        self,
        realm: str,
        nonces: NonceManager,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
    ) -> None:
        # The order given is the order of preference: clients take the first
        # challenge they support (RFC 7616 3.7), and some take only the first.
        canonical = tuple(dict.fromkeys(_algorithm(a) for a in algorithms))
        unknown = set(canonical) - set(_PREFERENCE)
        if unknown or not canonical:
            raise ValueError(f"unsupported or no digest algorithms: {sorted(unknown)}")
        _quote(realm)  # refuses a realm that could not be sent in a challenge
        self.realm = realm
        self.nonces = nonces
        self.algorithms = canonical
        # Unknown users are checked against this so they cost the same hashing.
        dummy = secrets.token_hex(16)
        self._dummy_ha1 = {base: _h(name, dummy) for base, name in _HASHLIB_NAMES.items()}

    def challenges(self, now: float, stale: bool = False) -> list[str]:
        """WWW-Authenticate values, one per algorithm in preference order, sharing one nonce."""
        nonce = self.nonces.issue(now, self.realm)
        return [
            Challenge(self.realm, nonce, alg, ("auth",), stale=stale).serialize()
            for alg in self.algorithms
        ]

    def verify(
        self, method: str, credentials: Credentials, ha1_lookup: Ha1Lookup, now: float
    ) -> AuthResult:
        """Check ``credentials`` sent with a ``method`` request.

        The caller still compares ``credentials.uri`` with the Request-URI.
        """
        c = credentials
        if not c.username:
            return _fail("no username")
        if c.realm != self.realm:
            return _fail(f"realm {(c.realm or '')[:64]!r} is not ours")
        if c.nonce is None or c.uri is None or c.response is None:
            return _fail("nonce, uri or response missing")
        if c.algorithm not in self.algorithms:
            return _fail(f"algorithm {c.algorithm[:40]!r} not offered")
        base = c.algorithm.removesuffix("-sess")
        nc_value = 0
        if c.qop is None:
            # Only old MD5 phones (RFC 2069) omit qop; without it replays go unseen.
            if base != "MD5":
                return _fail("qop missing")
        elif c.qop.lower() != "auth":
            return _fail(f"qop {c.qop[:40]!r} not offered")
        elif not c.cnonce or c.nc is None or len(c.nc) != 8 or not _is_hex(c.nc):
            return _fail("qop=auth needs a cnonce and an 8-digit hex nc")
        else:
            nc_value = int(c.nc, 16)
        if c.algorithm.endswith("-sess") and not c.cnonce:
            return _fail("-sess algorithm needs a cnonce")
        status = self.nonces.check(c.nonce, now, self.realm)
        if status is NonceStatus.INVALID:
            return _fail("nonce not issued here")

        stored = ha1_lookup(c.username, self.realm, base)
        key = self._dummy_ha1[base] if stored is None else stored.lower()
        expected = _response(
            c.algorithm, key, c.nonce, method, c.uri, c.qop, c.nc, c.cnonce
        ).encode("ascii")
        given = c.response.lower().encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(expected, given) or stored is None:
            what = "unknown user" if stored is None else "wrong password for"
            return _fail(f"{what} {c.username[:64]!r}")
        if status is NonceStatus.STALE:
            return _fail("stale nonce", stale=True)
        if c.qop is not None:
            counted = self.nonces.accept_nc(c.nonce, nc_value, now, self.realm)
            if counted is NonceStatus.STALE:
                return _fail("nonce count forgotten under load", stale=True)
            if counted is not NonceStatus.VALID:
                return _fail(f"nonce count {c.nc} replayed or not increasing")
        return AuthResult(ok=True, stale=False, username=c.username, reason="authenticated")


def _is_hex(text: str) -> bool:
    return all(ch in string.hexdigits for ch in text)
