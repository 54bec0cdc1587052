"""Account authentication: same answer for unknown users and wrong passwords, rate limits."""

from __future__ import annotations

import re

from acd.authn import Authenticator
from sip import Request, parse_message
from sip.auth import build_authorization, parse_challenge
from sip.events import Address
from sip.ratelimit import FailureLimiter

SOURCE = Address("UDP", "127.0.0.1", 40000)
REALM = "acd.local"


def request(user: str, authorization: str | None = None, method: str = "REGISTER") -> Request:
    lines = [
        f"{method} sip:acd.local SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-auth;rport",
        f"From: <sip:{user}@acd.local>;tag=abc",
        f"To: <sip:{user}@acd.local>",
        "Call-ID: auth-1",
        f"CSeq: 1 {method}",
        "Max-Forwards: 70",
    ]
    if authorization:
        name = "Authorization" if method == "REGISTER" else "Proxy-Authorization"
        lines.append(f"{name}: {authorization}")
    msg = parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())
    assert isinstance(msg, Request)
    return msg


def answer(auth: Authenticator, user: str, password: str, now: float = 0.0) -> Request:
    first = auth.authenticate(request(user), SOURCE, now)
    assert first.response is not None and first.response.status == 401
    md5 = parse_challenge(first.response.headers.get("www-authenticate") or "")
    value = build_authorization(md5, "REGISTER", "sip:acd.local", user, password, "cn0nce")
    return request(user, value)


def shape(response_bytes: bytes) -> bytes:
    """The response with every random value (tags, nonces, branch-independent) blanked."""
    text = re.sub(rb"tag=[0-9a-f]+", b"tag=X", response_bytes)
    return re.sub(rb'nonce="[^"]+"', b'nonce="X"', text)


def make(limiter: FailureLimiter | None = None) -> Authenticator:
    return Authenticator(REALM, {"1001": "correct horse battery"}, limiter=limiter)


def test_good_password_authenticates() -> None:
    auth = make()
    decision = auth.authenticate(answer(auth, "1001", "correct horse battery"), SOURCE, 1.0)
    assert decision.user == "1001" and decision.response is None


def offered(auth: Authenticator) -> list[str]:
    response = auth.authenticate(request("1001"), SOURCE, 0.0).response
    assert response is not None
    return [parse_challenge(v).algorithm for v in response.headers.get_all("www-authenticate")]


def test_md5_only_by_default_and_sha256_when_configured() -> None:
    assert offered(make()) == ["MD5"]
    sha = Authenticator(REALM, {"1001": "pw"}, algorithms=("SHA-256", "MD5"))
    assert offered(sha) == ["SHA-256", "MD5"]


def test_unknown_user_and_wrong_password_look_the_same() -> None:
    auth = make()
    wrong = auth.authenticate(answer(auth, "1001", "wrong password"), SOURCE, 1.0).response
    unknown = auth.authenticate(answer(auth, "1999", "wrong password"), SOURCE, 1.0).response
    assert wrong is not None and unknown is not None
    # Same code, reason and header layout; only random values differ (and the
    # user in From/To, which the caller chose).
    assert shape(wrong.serialize()) == shape(unknown.serialize()).replace(b"1999", b"1001")


def test_invite_is_challenged_with_407() -> None:
    auth = make()
    response = auth.authenticate(request("1001", method="INVITE"), SOURCE, 0.0).response
    assert response is not None and response.status == 407
    assert len(response.headers.get_all("proxy-authenticate")) == 1


def test_repeated_failures_lock_the_source_out_with_403() -> None:
    auth = make(FailureLimiter(max_failures=10, window=60, cooldown=300))
    for i in range(10):
        decision = auth.authenticate(answer(auth, "1001", f"guess {i}"), SOURCE, float(i))
        assert decision.response is not None and decision.response.status == 401
    locked = auth.authenticate(answer_locked(auth), SOURCE, 11.0)
    assert locked.response is not None and locked.response.status == 403
    # Even the right password is refused during the cool-down...
    right = request("1001", 'Digest username="1001"')
    assert auth.authenticate(right, SOURCE, 12.0).response.status == 403  # type: ignore[union-attr]
    # ...another source is not affected, and the lock lifts after the cool-down.
    other = Address("UDP", "127.0.0.2", 40000)
    assert auth.authenticate(request("1001"), other, 12.0).response.status == 401  # type: ignore[union-attr]
    ok = answer(auth, "1001", "correct horse battery", now=400.0)
    assert auth.authenticate(ok, SOURCE, 400.0).user == "1001"


def answer_locked(auth: Authenticator) -> Request:
    return request(
        "1001",
        'Digest username="1001", realm="acd.local", nonce="x", uri="sip:acd.local", response="00"',
    )


def test_digest_uri_must_match_request_uri() -> None:
    auth = make()
    first = auth.authenticate(request("1001"), SOURCE, 0.0).response
    assert first is not None
    md5 = next(parse_challenge(c) for c in first.headers.get_all("www-authenticate") if "MD5" in c)
    value = build_authorization(
        md5, "REGISTER", "sip:elsewhere", "1001", "correct horse battery", "c"
    )
    decision = auth.authenticate(request("1001", value), SOURCE, 1.0)
    assert decision.user is None


def test_expired_nonce_gets_stale_challenge_not_a_failure() -> None:
    auth = make()
    req = answer(auth, "1001", "correct horse battery", now=0.0)
    decision = auth.authenticate(req, SOURCE, 1000.0)
    assert decision.response is not None and decision.response.status == 401
    assert "stale=true" in (decision.response.headers.get("www-authenticate") or "")
    assert auth.failures == 0


def test_malformed_credentials_are_a_failure_not_a_crash() -> None:
    auth = make()
    decision = auth.authenticate(request("1001", 'Digest username="unterminated'), SOURCE, 0.0)
    assert decision.response is not None and decision.response.status == 401
    assert auth.failures == 1


def test_a_guesser_does_not_lock_out_another_user_behind_the_same_address() -> None:
    """One phone with a wrong password, or a guesser, behind an office NAT: only that
    (address, user) pair waits; a colleague's phone on the same address registers."""
    auth = Authenticator(
        REALM,
        {"1001": "correct horse battery", "1002": "staple battery horse"},
        limiter=FailureLimiter(max_failures=10, window=60, cooldown=300),
        source_limiter=FailureLimiter(max_failures=30, window=60, cooldown=300),
    )
    for i in range(10):
        auth.authenticate(answer(auth, "1001", f"guess {i}", now=float(i)), SOURCE, float(i))
    blocked = auth.authenticate(answer_locked(auth), SOURCE, 13.0).response
    assert blocked is not None and blocked.status == 403  # 1001 from this address waits
    unasked = auth.authenticate(request("1001"), SOURCE, 13.0).response
    assert unasked is not None and unasked.status == 403  # not even challenged again
    colleague = answer(auth, "1002", "staple battery horse", now=14.0)
    assert auth.authenticate(colleague, SOURCE, 14.0).user == "1002"


def test_a_source_guessing_many_users_is_blocked_for_all_of_them() -> None:
    auth = Authenticator(
        REALM,
        {"1001": "correct horse battery"},
        limiter=FailureLimiter(max_failures=10, window=60, cooldown=300),
        source_limiter=FailureLimiter(max_failures=30, window=60, cooldown=300),
    )
    ok = answer(auth, "1001", "correct horse battery", now=0.0)  # challenged before the block
    for i in range(30):  # three tries for each of ten names: no pair reaches 10
        user = f"20{i % 10:02d}"
        auth.authenticate(answer(auth, user, "guess", now=float(i)), SOURCE, float(i))
    refused = auth.authenticate(request("1001"), SOURCE, 31.0).response
    assert refused is not None and refused.status == 403  # even without credentials
    assert auth.authenticate(ok, SOURCE, 32.0).response.status == 403  # type: ignore[union-attr]
    other = Address("UDP", "127.0.0.2", 40000)
    assert auth.authenticate(ok, other, 33.0).user == "1001"  # another address is not affected
