"""Who is calling: digest authentication of accounts, with failure limits.

Both an unknown user and a wrong password get the same answer: a 401 (or 407)
carrying fresh challenges of the same shape, so nobody can tell a valid
extension from an invalid one by the responses.

Failures are counted per (source address, user name): a phone with a wrong
password is refused (403) for a cool-down without locking out the other
phones behind the same office NAT. A source that fails for many names, a
guesser walking through extensions, is counted on its own with a higher
threshold and then refused whatever name it tries.

A browser phone does not hold the account's password: a signed-in user's
page asks the HTTP API for a phone credential (``issue_phone_credential``),
a random password under its own digest user name ``<account>~<id>``, good
only over SIP WebSocket, until it expires or the account goes. The rest of
the engine sees the account itself.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sip import Request, Response, SipUri, make_response, parse_uri
from sip.auth import AuthHeaderError, DigestAuthenticator, NonceManager, ha1, parse_credentials
from sip.events import Address
from sip.ratelimit import FailureLimiter

__all__ = ["AuthDecision", "Authenticator", "PhoneCredential"]

log = logging.getLogger(__name__)

_PHONE_SEPARATOR = "~"
_PHONE_TRANSPORTS = frozenset({"WS", "WSS"})
_PHONES_PER_ACCOUNT = 8


@dataclass(frozen=True, slots=True)
class AuthDecision:
    """Either ``user`` (authenticated) or ``response`` (a challenge or refusal to send)."""

    user: str | None
    response: Response | None


@dataclass(frozen=True, slots=True)
class PhoneCredential:
    """A browser phone's digest credential for ``account``, valid until ``expires_at``."""

    account: str
    authorization_user: str
    password: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class _Phone:
    account: str
    ha1: dict[str, str]  # by algorithm
    expires_at: float


class Authenticator:
    """Digest verification against the configured accounts.

    Passwords are turned into HA1 hashes once at start and never kept or logged
    in clear after that.
    """

    def __init__(
        self,
        realm: str,
        accounts: dict[str, str],
        *,
        algorithms: tuple[str, ...] = ("MD5",),
        nonce_lifetime: float = 300.0,
        limiter: FailureLimiter | None = None,
        source_limiter: FailureLimiter | None = None,
    ) -> None:
        self.realm = realm
        # An empty limiter is falsy (it has __len__), so test for None explicitly.
        self.limiter = limiter if limiter is not None else FailureLimiter()
        """Failures per (source host, user name)."""
        self.source_limiter = (
            source_limiter if source_limiter is not None else FailureLimiter(max_failures=100)
        )
        """Failures per source host, over every user name."""
        self.nonces = NonceManager(secrets.token_bytes(32), nonce_lifetime)
        self.digest = DigestAuthenticator(realm, self.nonces, algorithms)
        self._ha1: dict[tuple[str, str], str] = {}
        self._phones: dict[str, _Phone] = {}
        """Browser phone credentials by digest user name, oldest first."""
        self.set_accounts(accounts)
        self.failures = 0

    def set_accounts(self, accounts: dict[str, str]) -> None:
        """Take new accounts (user to password): the next challenge answered is checked by them."""
        self._ha1 = {
            (user, algorithm): ha1(user, self.realm, password, algorithm)
            for user, password in accounts.items()
            for algorithm in ("MD5", "SHA-256")
        }
        self._phones = {
            name: phone
            for name, phone in self._phones.items()
            if (phone.account, "MD5") in self._ha1
        }

    def issue_phone_credential(
        self, account: str, now: float, lifetime: float
    ) -> PhoneCredential | None:
        """A fresh credential for a browser phone of ``account``; None for no such account.

        An account keeps its newest few; an older one stops working.
        """
        if (account, "MD5") not in self._ha1:
            return None
        name = f"{account}{_PHONE_SEPARATOR}{secrets.token_hex(6)}"
        password = secrets.token_urlsafe(24)
        expires_at = now + lifetime
        self._phones[name] = _Phone(
            account,
            {a: ha1(name, self.realm, password, a) for a in ("MD5", "SHA-256")},
            expires_at,
        )
        mine = [n for n, phone in self._phones.items() if phone.account == account]
        for old in mine[:-_PHONES_PER_ACCOUNT]:
            del self._phones[old]
        return PhoneCredential(account, name, password, expires_at)

    def revoke_phone_credentials(self, account: str) -> None:
        """End every browser phone credential of ``account`` (its user signed out)."""
        self._phones = {n: p for n, p in self._phones.items() if p.account != account}

    def _phone(self, username: str, source: Address, now: float) -> _Phone | None:
        """The live phone credential named ``username``, presented over a WebSocket."""
        phone = self._phones.get(username)
        if phone is None or phone.expires_at <= now or source.transport not in _PHONE_TRANSPORTS:
            return None
        return phone

    def _lookup(self, username: str, realm: str, algorithm: str) -> str | None:
        if realm != self.realm:
            return None
        return self._ha1.get((username, algorithm))

    def authenticate(self, request: Request, source: Address, now: float) -> AuthDecision:
        """Check the request's credentials; REGISTER uses 401, other methods 407."""
        proxy = request.method != "REGISTER"
        status = 407 if proxy else 401
        if self.source_limiter.is_blocked(source.host, now):
            return AuthDecision(None, make_response(request, 403))
        header = request.headers.get("proxy-authorization" if proxy else "authorization")
        if header is None and proxy:
            # Phones answer a 407 with Proxy-Authorization, but some send Authorization.
            header = request.headers.get("authorization")
        if header is None:
            # A phone in its cool-down is refused before it is challenged, or it
            # would answer every fresh challenge with the same wrong password.
            user = request.from_.uri.user if isinstance(request.from_.uri, SipUri) else None
            if user and self.limiter.is_blocked(self._pair(source, user), now):
                return AuthDecision(None, make_response(request, 403))
            return AuthDecision(None, self._challenge(request, status, now, stale=False))
        try:
            credentials = parse_credentials(header)
        except AuthHeaderError as exc:
            return self._failed(request, status, source, None, now, f"malformed credentials: {exc}")
        pair = self._pair(source, credentials.username) if credentials.username else None
        if pair is not None and self.limiter.is_blocked(pair, now):
            return AuthDecision(None, make_response(request, 403))
        if not self._uri_matches(credentials.uri, request):
            return self._failed(request, status, source, pair, now, "digest uri does not match")
        name = credentials.username or ""
        phone = self._phone(name, source, now) if _PHONE_SEPARATOR in name else None
        lookup = self._lookup if phone is None else _phone_lookup(phone, self.realm)
        result = self.digest.verify(request.method, credentials, lookup, now)
        if result.ok:
            if pair is not None:
                self.limiter.record_success(pair)
            return AuthDecision(result.username if phone is None else phone.account, None)
        if result.stale:
            return AuthDecision(None, self._challenge(request, status, now, stale=True))
        return self._failed(request, status, source, pair, now, result.reason)

    @staticmethod
    def _pair(source: Address, username: str) -> str:
        return f"{source.host}\0{username}"

    def _failed(
        self,
        request: Request,
        status: int,
        source: Address,
        pair: str | None,
        now: float,
        reason: str,
    ) -> AuthDecision:
        self.failures += 1
        if pair is not None:
            self.limiter.record_failure(pair, now)
        self.source_limiter.record_failure(source.host, now)
        log.info("authentication failed from %s for %s: %s", source, request.method, reason)
        return AuthDecision(None, self._challenge(request, status, now, stale=False))

    def _challenge(self, request: Request, status: int, now: float, *, stale: bool) -> Response:
        response = make_response(request, status, to_tag=secrets.token_hex(8))
        name = "Proxy-Authenticate" if status == 407 else "WWW-Authenticate"
        for value in self.digest.challenges(now, stale=stale):
            response.headers.add(name, value)
        return response

    @staticmethod
    def _uri_matches(digest_uri: str | None, request: Request) -> bool:
        if not digest_uri:
            return False
        if digest_uri == str(request.uri):
            return True
        # Phones differ in escaping and parameter order; compare as SIP URIs.
        try:
            parsed = parse_uri(digest_uri)
        except ValueError:
            return False
        return isinstance(parsed, SipUri) and parsed == request.uri

    def prune(self, now: float) -> None:
        """Forget old failure counters, nonce counts and expired phone credentials."""
        self._phones = {n: p for n, p in self._phones.items() if p.expires_at > now}
        self.limiter.prune(now)
        self.source_limiter.prune(now)
        self.nonces.prune(now)


def _phone_lookup(phone: _Phone, realm: str) -> Callable[[str, str, str], str | None]:
    def lookup(_username: str, given_realm: str, algorithm: str) -> str | None:
        return phone.ha1.get(algorithm) if given_realm == realm else None

    return lookup
