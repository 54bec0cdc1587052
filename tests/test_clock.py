"""The media clock: a drift-free 20 ms schedule, its catch-up bound, its subscribers.

The schedule is pure and tested with numbers; the asyncio adapter runs on a
fake loop whose time the test moves, so late and early timers are exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from media.clock import LatenessStats, MediaClock, TickBatch, TickSchedule

P = 0.020


# --------------------------------------------------------------------------
# The pure schedule


def test_deadlines_are_start_plus_n_periods() -> None:
    schedule = TickSchedule(100.0)
    assert schedule.deadline(0) == 100.0
    assert schedule.deadline(50_000) == pytest.approx(100.0 + 1000.0)


def test_nothing_is_due_before_the_first_deadline() -> None:
    schedule = TickSchedule(10.0)
    assert schedule.due(9.999) == TickBatch(0, 0, 0)
    assert schedule.next_tick == 0


def test_one_tick_at_a_time_on_an_exact_schedule() -> None:
    schedule = TickSchedule(10.0)
    for n in range(1000):
        assert schedule.due(schedule.deadline(n)) == TickBatch(n, 1, 0)
        assert schedule.next_deadline == schedule.deadline(n + 1)


def test_lateness_is_not_carried_into_the_next_deadline() -> None:
    schedule = TickSchedule(0.0)
    assert schedule.due(0.015) == TickBatch(0, 1, 0)  # 15 ms late
    # The next deadline is still 20 ms, not 15 + 20 ms.
    assert schedule.next_deadline == pytest.approx(P)


def test_no_drift_after_a_simulated_day() -> None:
    schedule = TickSchedule(5.0)
    ticks = 86_400 * 50
    schedule.next_tick = ticks
    assert schedule.next_deadline == pytest.approx(5.0 + 86_400, abs=1e-6)


def test_a_late_wake_up_runs_the_missed_ticks_in_a_burst() -> None:
    schedule = TickSchedule(0.0, max_burst=3)
    schedule.due(0.0)
    # 41 ms after tick 0: ticks 1 and 2 are due.
    assert schedule.due(0.041) == TickBatch(1, 2, 0)
    assert schedule.next_tick == 3


def test_beyond_the_burst_bound_the_oldest_ticks_are_skipped() -> None:
    schedule = TickSchedule(0.0, max_burst=3)
    schedule.due(0.0)
    # 200 ms late: ticks 1-10 are due, 7 are skipped, the newest 3 run.
    assert schedule.due(0.2001) == TickBatch(8, 3, 7)
    assert schedule.next_deadline == pytest.approx(0.220)


def test_an_early_wake_up_runs_nothing() -> None:
    schedule = TickSchedule(0.0)
    schedule.due(0.0)
    assert schedule.due(0.0195) == TickBatch(1, 0, 0)
    assert schedule.due(0.020) == TickBatch(1, 1, 0)


def test_schedule_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        TickSchedule(0.0, period=0)
    with pytest.raises(ValueError):
        TickSchedule(0.0, max_burst=0)


def test_lateness_statistics() -> None:
    stats = LatenessStats()
    for lateness in [0.0001] * 98 + [0.004, 0.030]:
        stats.record(lateness)
    assert stats.count == 100
    assert stats.mean == pytest.approx((0.0098 + 0.034) / 100)
    assert stats.max == pytest.approx(0.030)
    assert stats.percentile(0.5) == pytest.approx(0.0001 + 0.00005, abs=0.00006)
    assert 0.004 <= stats.percentile(0.99) <= 0.00405
    assert stats.percentile(1.0) >= 0.030
    stats.reset()
    assert stats.count == 0 and stats.mean == 0.0 and stats.percentile(0.99) == 0.0


# --------------------------------------------------------------------------
# The asyncio adapter on a fake loop


@dataclass
class FakeTimer:
    when: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeLoop:
    """call_at and a time the test moves; ``run_until`` fires timers in order."""

    now: float = 1000.0
    timers: list[FakeTimer] = field(default_factory=list)

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(when, callback)
        self.timers.append(timer)
        return timer

    def pending(self) -> list[FakeTimer]:
        return [timer for timer in self.timers if not timer.cancelled]

    def run_until(self, until: float, *, lateness: float = 0.0) -> None:
        """Fire every timer due by ``until``, each ``lateness`` after its deadline."""
        while True:
            due = [t for t in self.pending() if t.when + lateness <= until]
            if not due:
                break
            timer = min(due, key=lambda t: t.when)
            self.timers.remove(timer)
            self.now = max(self.now, timer.when + lateness)
            timer.callback()
        self.now = until


def make_clock(**kwargs: object) -> tuple[MediaClock, FakeLoop]:
    loop = FakeLoop()
    clock = MediaClock(loop, time=loop.time, **kwargs)  # type: ignore[arg-type]
    return clock, loop


def test_the_timer_runs_only_while_someone_listens() -> None:
    clock, loop = make_clock()
    assert not clock.running and loop.pending() == []
    unsubscribe = clock.subscribe(lambda tick, skipped: None)
    assert clock.running and len(loop.pending()) == 1
    unsubscribe()
    assert not clock.running and loop.pending() == []
    unsubscribe()  # twice is harmless


def test_one_timer_for_many_subscribers_fifty_ticks_a_second() -> None:
    clock, loop = make_clock()
    calls: list[list[int]] = [[] for _ in range(100)]
    for seen in calls:
        clock.subscribe(lambda tick, skipped, seen=seen: seen.append(tick))
    assert len(loop.pending()) == 1
    loop.run_until(loop.now + 1.0)
    assert all(seen == list(range(50)) for seen in calls)
    assert len(loop.pending()) == 1


def test_late_timers_do_not_drift() -> None:
    clock, loop = make_clock()
    start = loop.now
    ticks: list[int] = []
    clock.subscribe(lambda tick, skipped: ticks.append(tick))
    # Every timer fires 7 ms after it was armed for (1 ms before the
    # deadline, see arm_early): still 50 ticks a second, all 6 ms late.
    loop.run_until(start + 10.0 + 0.0071, lateness=0.007)
    assert ticks == list(range(500))
    assert clock.stats.mean == pytest.approx(0.006, abs=1e-6)
    assert clock.stats.skipped == 0


def fire_at(loop: FakeLoop, now: float) -> FakeTimer:
    """Fire the one pending timer at ``now``, whenever it was armed for."""
    (timer,) = loop.pending()
    loop.timers.remove(timer)
    loop.now = now
    timer.callback()
    return timer


def test_the_timer_is_armed_early_and_re_armed_for_the_deadline() -> None:
    clock, loop = make_clock()
    deadline = loop.now + P
    ticks: list[int] = []
    clock.subscribe(lambda tick, skipped: ticks.append(tick))
    (timer,) = loop.pending()
    assert timer.when == pytest.approx(deadline - 0.001)
    # Woken 0.4 ms early (uvloop rounds to whole milliseconds): wait again.
    fire_at(loop, deadline - 0.0004)
    assert ticks == []
    (rearmed,) = loop.pending()
    assert rearmed.when == deadline
    # Within the 0.2 ms tolerance the tick runs, and counts 0.1 ms of error.
    fire_at(loop, deadline - 0.0001)
    assert ticks == [0]
    assert clock.stats.mean == pytest.approx(0.0001)
    (following,) = loop.pending()
    assert following.when == pytest.approx(deadline + P - 0.001)


def test_clock_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        MediaClock(FakeLoop(), tolerance=0.002, arm_early=0.001)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        MediaClock(FakeLoop(), arm_early=0.05)  # type: ignore[arg-type]


def test_a_stall_bursts_then_skips_and_tells_subscribers() -> None:
    clock, loop = make_clock(max_burst=3)
    first_deadline = loop.now + P
    seen: list[tuple[int, int]] = []
    clock.subscribe(lambda tick, skipped: seen.append((tick, skipped)))
    loop.run_until(loop.now + 0.0201)  # tick 0
    # The loop is blocked for 150 ms: ticks 1-7 are due at once.
    (timer,) = loop.pending()
    loop.timers.remove(timer)
    loop.now += 0.150
    timer.callback()
    assert seen == [(0, 0), (5, 4), (6, 0), (7, 0)]
    assert clock.stats.skipped == 4
    # Back on the original grid afterwards.
    (timer,) = loop.pending()
    assert timer.when == pytest.approx(first_deadline + 8 * P)


def test_subscribers_added_and_removed_during_a_tick() -> None:
    clock, loop = make_clock()
    log: list[str] = []
    unsubscribers: dict[str, Callable[[], None]] = {}

    def first(tick: int, skipped: int) -> None:
        log.append(f"first{tick}")
        if tick == 0:
            unsubscribers["second"]()  # removed before its turn in this tick
            unsubscribers["late"] = clock.subscribe(
                lambda t, s: log.append(f"late{t}")  # joins from the next tick
            )
        if tick == 1:
            unsubscribers["first"]()  # removes itself

    unsubscribers["first"] = clock.subscribe(first)
    unsubscribers["second"] = clock.subscribe(lambda t, s: log.append(f"second{t}"))
    loop.run_until(loop.now + 0.0601)
    assert log == ["first0", "first1", "late1", "late2"]
    unsubscribers["late"]()
    assert not clock.running


def test_a_clock_that_stops_inside_a_tick_does_not_re_arm() -> None:
    clock, loop = make_clock()
    holder: dict[str, Callable[[], None]] = {}
    holder["u"] = clock.subscribe(lambda t, s: holder["u"]())
    loop.run_until(loop.now + 0.1)
    assert loop.pending() == [] and not clock.running


async def test_on_a_real_loop_fifty_ticks_a_second() -> None:
    clock = MediaClock()
    ticks: list[int] = []
    enough = asyncio.get_running_loop().create_future()

    def on_tick(tick: int, skipped: int) -> None:
        ticks.append(tick)
        if tick == 24 and not enough.done():
            enough.set_result(clock.now())

    started = clock.now()
    unsubscribe = clock.subscribe(on_tick)
    finished = await asyncio.wait_for(enough, timeout=5)
    unsubscribe()
    # 25 ticks, the first one period in: 0.5 s, give or take a busy CI host.
    assert 0.45 <= finished - started <= 1.0
    assert ticks[:25] == list(range(25))
