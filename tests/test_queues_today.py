"""Today's queue figures (acd/queues/_today.py) on a fake wall clock."""

from __future__ import annotations

from datetime import datetime

from acd.queues._today import Today


class WallClock:
    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now


def test_the_day_counts_departures_by_outcome_and_service_level() -> None:
    clock = WallClock(datetime(2026, 12, 7, 9, 0))
    today = Today(clock)
    assert today.queue("sales").public()["service_level"] == 1.0  # nothing missed yet
    for _ in range(4):
        today.joined("sales")
    today.left("sales", "answered", True)
    today.left("sales", "answered", False)
    today.left("sales", "abandoned", True)
    today.left("sales", "timeout", None)
    figures = today.queue("sales").public()
    assert figures == {
        "offered": 4,
        "answered": 2,
        "answered_in_sl": 1,
        "abandoned": 1,
        "abandoned_in_sl": 1,
        "other": 1,
        "service_level": 0.5,
    }
    assert today.queue("support").public()["offered"] == 0


def test_local_midnight_starts_a_new_day_once() -> None:
    clock = WallClock(datetime(2026, 12, 7, 23, 59, 30))
    today = Today(clock)
    today.joined("sales")
    assert not today.rolled()
    clock.now = datetime(2026, 12, 8, 0, 0, 1).timestamp()
    assert today.rolled()
    assert not today.rolled()  # once per day
    assert today.queue("sales").public()["offered"] == 0
    assert today.date == datetime(2026, 12, 8).date()
