"""Today's figures of each queue, as a wallboard shows them, and the start of a new day.

The engine counts, per queue, the calls that entered it today and how they
left (answered, within the service level or not, abandoned, and the rest),
from the same moments that publish ``QueueJoined`` and ``QueueLeft``: a page
that counts those events from a snapshot of these figures stays equal to
them. "Today" is the engine host's local calendar day; the first event or
read after local midnight starts a new day, and tells the caller so (the
service then zeroes the agents' answered-today and talk time, which
least-busy and fewest-talk-time rank by).

The figures are the engine's since it started or since midnight, whichever
is later: a restart begins them again (the reports, from the call records,
hold the whole day).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dt_time

__all__ = ["QueueDay", "Today"]


@dataclass(slots=True)
class QueueDay:
    """One queue's calls today."""

    offered: int = 0
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0
    abandoned_in_sl: int = 0
    other: int = 0  # timed out, turned into a callback, transferred or failed

    def public(self) -> dict[str, object]:
        """As the API shows it; ``service_level``: answered in time over answered (1: none)."""
        return {
            "offered": self.offered,
            "answered": self.answered,
            "answered_in_sl": self.answered_in_sl,
            "abandoned": self.abandoned,
            "abandoned_in_sl": self.abandoned_in_sl,
            "other": self.other,
            "service_level": (
                1.0 if self.answered == 0 else round(self.answered_in_sl / self.answered, 4)
            ),
        }


class Today:
    """The day's counts per queue; :meth:`rolled` says when a new local day began."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._queues: dict[str, QueueDay] = {}
        self._begin(clock())

    def _begin(self, now: float) -> None:
        self._date = datetime.fromtimestamp(now).date()
        # Asked twice a queued call: a comparison, not a date conversion.
        self._ends = datetime.combine(self._date + timedelta(days=1), dt_time()).timestamp()

    @property
    def date(self) -> date:
        return self._date

    def rolled(self) -> bool:
        """Start a new day if local midnight passed since the last call; True when it did."""
        now = self._clock()
        if now < self._ends:
            return False
        self._begin(now)
        self._queues.clear()
        return True

    def queue(self, name: str) -> QueueDay:
        found = self._queues.get(name)
        if found is None:
            found = self._queues[name] = QueueDay()
        return found

    def joined(self, queue: str) -> None:
        self.queue(queue).offered += 1

    def left(self, queue: str, outcome: str, within_service_level: bool | None) -> None:
        day = self.queue(queue)
        if outcome == "answered":
            day.answered += 1
            day.answered_in_sl += bool(within_service_level)
        elif outcome == "abandoned":
            day.abandoned += 1
            day.abandoned_in_sl += bool(within_service_level)
        else:
            day.other += 1
