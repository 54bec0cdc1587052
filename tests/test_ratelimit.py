"""FailureLimiter against a fake clock: every call gets an explicit ``now``."""

from __future__ import annotations

import pytest

from sip.ratelimit import FailureLimiter

HOST = "192.0.2.10"


def fail(limiter: FailureLimiter, times: list[float], key: str = HOST) -> None:
    for now in times:
        limiter.record_failure(key, now)


def test_nine_failures_do_not_block() -> None:
    limiter = FailureLimiter()
    fail(limiter, [float(t) for t in range(9)])
    assert not limiter.is_blocked(HOST, 9.0)


def test_tenth_failure_blocks_until_cooldown_expires() -> None:
    limiter = FailureLimiter(max_failures=10, window=60.0, cooldown=300.0)
    fail(limiter, [float(t) for t in range(10)])
    assert limiter.is_blocked(HOST, 9.0)
    assert limiter.is_blocked(HOST, 308.9)
    assert not limiter.is_blocked(HOST, 309.0)
    assert not limiter.is_blocked("198.51.100.1", 9.0)


def test_failures_while_blocked_do_not_extend_the_block() -> None:
    limiter = FailureLimiter(max_failures=3, window=60.0, cooldown=100.0)
    fail(limiter, [0.0, 1.0, 2.0])
    fail(limiter, [50.0, 51.0, 52.0, 53.0])
    assert not limiter.is_blocked(HOST, 102.0)


def test_counting_starts_afresh_after_cooldown() -> None:
    limiter = FailureLimiter(max_failures=3, window=60.0, cooldown=100.0)
    fail(limiter, [0.0, 1.0, 2.0, 110.0, 111.0])
    assert not limiter.is_blocked(HOST, 111.0)
    fail(limiter, [112.0])
    assert limiter.is_blocked(HOST, 112.0)


def test_window_slides() -> None:
    limiter = FailureLimiter(max_failures=10, window=60.0)
    fail(limiter, [float(t) for t in range(9)])  # 0..8
    fail(limiter, [60.5])  # the failure at 0 has left the window
    assert not limiter.is_blocked(HOST, 60.5)
    fail(limiter, [60.9])  # nine in the window (1..8, 60.5) plus this one
    assert limiter.is_blocked(HOST, 60.9)


def test_success_clears_the_counter_but_not_a_block() -> None:
    limiter = FailureLimiter(max_failures=3, cooldown=100.0)
    fail(limiter, [0.0, 1.0])
    limiter.record_success(HOST)
    fail(limiter, [2.0, 3.0])
    assert not limiter.is_blocked(HOST, 3.0)
    fail(limiter, [4.0])
    limiter.record_success(HOST)
    assert limiter.is_blocked(HOST, 5.0)
    limiter.record_success("unknown")


def test_memory_bound_evicts_least_recently_failing() -> None:
    limiter = FailureLimiter(max_failures=2, max_tracked=100)
    for i in range(1000):
        limiter.record_failure(f"10.0.{i // 256}.{i % 256}", float(i))
        assert len(limiter) <= 100
    limiter.record_failure("10.0.3.231", 1000.0)  # i = 999, the most recent
    assert limiter.is_blocked("10.0.3.231", 1000.0)
    limiter.record_failure("10.0.0.0", 1001.0)  # long evicted: counts from one
    assert not limiter.is_blocked("10.0.0.0", 1001.0)
    assert len(limiter) == 100


def test_prune_forgets_quiet_sources_and_keeps_blocked_ones() -> None:
    limiter = FailureLimiter(max_failures=2, window=60.0, cooldown=300.0)
    fail(limiter, [0.0], key="quiet")
    fail(limiter, [0.0, 1.0], key="noisy")
    fail(limiter, [50.0], key="recent")
    limiter.prune(70.0)
    assert len(limiter) == 2
    assert limiter.is_blocked("noisy", 70.0)
    limiter.prune(400.0)
    assert len(limiter) == 0


@pytest.mark.parametrize(
    "kwargs", [{"max_failures": 0}, {"window": 0.0}, {"cooldown": -1.0}, {"max_tracked": 0}]
)
def test_rejects_nonsense_limits(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FailureLimiter(**kwargs)  # type: ignore[arg-type]
