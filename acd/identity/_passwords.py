"""Password hashing with scrypt (RFC 7914), from the standard library.

A stored hash names its parameters (``scrypt$ln=17,r=8,p=1$salt$hash``), so
the cost can rise later and old hashes still verify; ``needs_rehash`` tells
when one was made with weaker settings. The defaults are OWASP's for scrypt
(N=2^17, r=8, p=1: 128 MiB and a few hundred milliseconds per check), which
is why hashing runs in a worker thread (hashlib releases the GIL) and why
sign-in is throttled before a hash is ever computed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "PasswordHasher",
    "PasswordTooWeak",
    "check_password_strength",
]

MIN_PASSWORD_LENGTH = 10
"""Shorter passwords are refused when set (NIST SP 800-63B asks for 8 at least)."""

_FORMAT = re.compile(r"^scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")
_KEY_LENGTH = 32


class PasswordTooWeak(ValueError):
    """A new password that would be too easy to guess; the message says why."""


def check_password_strength(password: str, username: str) -> None:
    """Refuse passwords that are short, the user name, or one repeated character."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordTooWeak(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if password.casefold() == username.casefold() or len(set(password)) < 3:
        raise PasswordTooWeak("the password is too easy to guess")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class PasswordHasher:
    """scrypt with cost ``2**log_n``; ``log_n`` is lowered only by tests."""

    log_n: int = 17
    r: int = 8
    p: int = 1

    def _derive(self, password: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
        n = 1 << log_n
        return hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=n,
            r=r,
            p=p,
            maxmem=256 * n * r + (1 << 20),
            dklen=_KEY_LENGTH,
        )

    def hash(self, password: str) -> str:
        """A new salted hash of ``password`` to store."""
        salt = secrets.token_bytes(16)
        key = self._derive(password, salt, self.log_n, self.r, self.p)
        return f"scrypt$ln={self.log_n},r={self.r},p={self.p}${_b64(salt)}${_b64(key)}"

    def verify(self, password: str, stored: str | None) -> bool:
        """Whether ``password`` matches ``stored``; a missing or unreadable hash never does.

        A missing hash costs as much time as a real one, so the time a
        sign-in takes does not tell whether the user exists.
        """
        found = _FORMAT.match(stored or "")
        if found is None:
            self._derive(password, b"\0" * 16, self.log_n, self.r, self.p)
            return False
        log_n, r, p = (int(found.group(i)) for i in (1, 2, 3))
        if not (10 <= log_n <= 22 and 1 <= r <= 32 and 1 <= p <= 16):
            return False
        salt = base64.b64decode(found.group(4))
        key = self._derive(password, salt, log_n, r, p)
        return hmac.compare_digest(key, base64.b64decode(found.group(5)))

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` was made with other parameters than these."""
        return not stored.startswith(f"scrypt$ln={self.log_n},r={self.r},p={self.p}$")
