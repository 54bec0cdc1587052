"""sip._entropy: random tags, branches and Call-IDs, read from the OS in blocks."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from sip import new_branch, new_tag, token_hex
from sip._entropy import random_bytes, token_urlsafe


def test_tokens_have_the_shapes_secrets_gives() -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]{11}", new_tag())  # 8 bytes, base64url, no padding
    assert re.fullmatch(r"z9hG4bK[A-Za-z0-9_-]{16}", new_branch())
    assert re.fullmatch(r"[0-9a-f]{32}", token_hex(16))
    assert len(token_urlsafe(3)) == 4 and len(random_bytes(5000)) == 5000


def test_no_bytes_are_handed_out_twice_across_blocks_and_threads() -> None:
    with ThreadPoolExecutor(4) as pool:
        tags = list(pool.map(lambda _: new_tag(), range(20_000)))  # 160 KB: 40 blocks
    assert len(set(tags)) == len(tags)
