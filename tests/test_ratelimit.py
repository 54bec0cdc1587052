"""FailureLimiter and RequestLimiter against a fake clock: every call gets an explicit ``now``."""

from __future__ import annotations

import logging

import pytest

from sip.ratelimit import FailureLimiter, RequestLimiter

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


# -- RequestLimiter (per-source flood throttling) --------------------------------------


def send(limiter: RequestLimiter, count: int, now: float, key: str = HOST) -> int:
    """Offer ``count`` requests at ``now``; how many were admitted."""
    return sum(limiter.admit(key, now) for _ in range(count))


def test_requests_up_to_the_threshold_pass_and_the_next_is_dropped() -> None:
    limiter = RequestLimiter(threshold=30, window=2.0, block_time=60.0)
    assert send(limiter, 30, 0.0) == 30
    assert not limiter.is_blocked(HOST, 0.0)
    assert not limiter.admit(HOST, 0.5)
    assert limiter.is_blocked(HOST, 0.5)
    assert (limiter.dropped, limiter.blocks, limiter.blocked(0.5)) == (1, 1, 1)
    assert limiter.admit("198.51.100.1", 0.5), "other sources are not affected"


def test_the_window_starts_afresh() -> None:
    limiter = RequestLimiter(threshold=30, window=2.0)
    for second in range(0, 20, 2):
        # 30 in every 2 s window, for 20 s: never over.
        assert send(limiter, 15, float(second)) == 15
        assert send(limiter, 15, second + 1.9) == 15
    assert limiter.dropped == 0


def test_a_block_ends_block_time_after_the_flood_stops() -> None:
    limiter = RequestLimiter(threshold=10, window=2.0, block_time=60.0)
    send(limiter, 11, 0.0)
    assert limiter.is_blocked(HOST, 59.9)
    assert not limiter.admit(HOST, 59.9), "a trickle while blocked is dropped..."
    assert limiter.admit(HOST, 60.0), "...but does not extend the block"
    assert not limiter.is_blocked(HOST, 60.0)
    assert limiter.blocked(60.0) == 0


def test_continued_flooding_keeps_the_source_blocked() -> None:
    limiter = RequestLimiter(threshold=10, window=2.0, block_time=60.0)
    send(limiter, 11, 0.0)
    for second in range(2, 300, 2):
        assert send(limiter, 50, float(second)) == 0
    # The last window over the threshold began at 298 s: blocked until 358 s.
    assert limiter.is_blocked(HOST, 357.9)
    assert not limiter.is_blocked(HOST, 358.1)
    assert limiter.blocks == 1
    assert limiter.dropped == 1 + 149 * 50


def test_one_log_line_when_blocked_and_one_when_released(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = RequestLimiter(threshold=10, window=2.0, block_time=5.0)
    with caplog.at_level(logging.INFO, logger="sip.ratelimit"):
        send(limiter, 1000, 0.0)
        limiter.prune(4.0)
        limiter.prune(5.0)
        limiter.prune(6.0)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0][0] == "WARNING" and HOST in lines[0][1]
    assert lines[1][0] == "INFO" and HOST in lines[1][1] and "990 requests dropped" in lines[1][1]
    assert limiter.blocked(6.0) == 0
    assert limiter.admit(HOST, 6.0)


def test_exempt_sources_are_never_blocked_and_asked_once_per_threshold() -> None:
    asked: list[str] = []

    def exempt(host: str) -> bool:
        asked.append(host)
        return host == "10.0.0.1"

    limiter = RequestLimiter(threshold=100, window=2.0, exempt=exempt)
    assert send(limiter, 1000, 0.0, key="10.0.0.1") == 1000
    assert send(limiter, 100, 0.0, key="10.0.0.2") == 100
    assert asked == ["10.0.0.1"] * 9, "the predicate is not asked per request"
    assert not limiter.admit("10.0.0.2", 0.0)
    assert asked[-1] == "10.0.0.2"
    assert limiter.blocked(0.0) == 1


def test_memory_bound_forgets_least_recently_heard_sources() -> None:
    limiter = RequestLimiter(threshold=5, window=2.0, max_sources=100)
    send(limiter, 6, 0.0, key="flooder")
    for i in range(1000):
        # The flooder keeps sending, so it stays the most recent and blocked.
        assert not limiter.admit("flooder", i / 1000)
        limiter.admit(f"10.0.{i // 256}.{i % 256}", i / 1000)
        assert len(limiter) <= 100
    assert limiter.is_blocked("flooder", 1.0)
    assert len(limiter) == 100


def test_forgetting_a_blocked_source_releases_it(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RequestLimiter(threshold=5, window=2.0, max_sources=10)
    send(limiter, 6, 0.0, key="quiet")
    with caplog.at_level(logging.INFO, logger="sip.ratelimit"):
        for i in range(10):
            limiter.admit(f"10.0.0.{i}", 0.1)
    assert limiter.blocked(0.1) == 0
    assert any("released quiet" in r.getMessage() for r in caplog.records)


def test_prune_forgets_quiet_sources_but_keeps_blocked_ones() -> None:
    limiter = RequestLimiter(threshold=5, window=2.0, block_time=60.0)
    send(limiter, 6, 0.0, key="blocked")
    send(limiter, 1, 0.5, key="quiet")
    send(limiter, 1, 10.0, key="recent")
    limiter.prune(10.5)
    assert limiter.is_blocked("blocked", 10.5)
    assert len(limiter) == 3, "a blocked source at the front holds pruning back"
    limiter.prune(61.0)
    assert not limiter.is_blocked("blocked", 61.0)
    assert len(limiter) == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"threshold": 0}, {"window": 0.0}, {"block_time": 0.0}, {"max_sources": 0}],
)
def test_request_limiter_rejects_nonsense_limits(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RequestLimiter(**kwargs)  # type: ignore[arg-type]
