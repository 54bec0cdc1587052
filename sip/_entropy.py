"""Random bytes for tags, branches and Call-IDs, read from the OS a block at a time.

Every call needs several (a To tag, a From tag, a branch per request, a
Call-ID for each leg the engine dials), and ``secrets`` makes one system
call for each. These come from the same source (``os.urandom``), read 4 KiB
at a time and handed out once each; a child process after ``fork`` starts
a block of its own.
"""

from __future__ import annotations

import base64
import os
import threading

__all__ = ["random_bytes", "token_hex", "token_urlsafe"]

_BLOCK = 4096
_lock = threading.Lock()
_block = b""
_at = 0


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the operating system's CSPRNG, never handed out twice."""
    global _block, _at
    if n > _BLOCK:
        return os.urandom(n)
    with _lock:
        if _at + n > len(_block):
            _block = os.urandom(_BLOCK)
            _at = 0
        start = _at
        _at += n
        return _block[start:_at]


def token_urlsafe(n: int) -> str:
    """As ``secrets.token_urlsafe(n)``: ``n`` random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(random_bytes(n)).rstrip(b"=").decode("ascii")


def token_hex(n: int) -> str:
    """As ``secrets.token_hex(n)``."""
    return random_bytes(n).hex()


def _forget() -> None:
    global _block, _at
    _block, _at = b"", 0


os.register_at_fork(after_in_child=_forget)
