"""Days, time windows, holiday calendars and time zones for ``condition`` nodes.

Each value is parsed once from the flow file's text into a small frozen type
(the ``parse_*`` functions raise ValueError with a message an operator can
act on) and then answers questions about a local date-time. Nothing here reads
the clock: the interpreter passes ``now``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DAY_NAMES",
    "HolidayCalendar",
    "TimeWindow",
    "in_schedule",
    "parse_days",
    "parse_holidays",
    "parse_time_window",
    "parse_zone",
]

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_zone(value: object) -> ZoneInfo:
    """An IANA time zone such as ``Europe/London``."""
    if isinstance(value, ZoneInfo):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected an IANA time zone name such as Europe/London")
    try:
        return ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use a name such as Europe/London)"
        ) from None


def parse_days(values: object) -> frozenset[int]:
    """Weekday numbers (Monday 0) from names and ranges: ``[mon-fri, sun]``.

    A range may wrap past Sunday: ``fri-mon`` is Friday to Monday.
    """
    if isinstance(values, frozenset):
        return values
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list | tuple) or not values:
        raise ValueError("expected a list of days such as [mon-fri, sat]")
    days: set[int] = set()
    for value in values:
        text = str(value).strip().lower()
        first, sep, last = text.partition("-")
        try:
            start = DAY_NAMES.index(first[:3]) if len(first) >= 3 else -1
            end = DAY_NAMES.index(last[:3]) if sep else start
        except ValueError:
            start = end = -1
        if start < 0 or end < 0:
            raise ValueError(f"{value!r} is not a day or day range (mon, tue, ..., sun; mon-fri)")
        days.update((start + step) % 7 for step in range((end - start) % 7 + 1))
    return frozenset(days)


_CLOCK = re.compile(r"([01]?\d|2[0-4]):([0-5]\d)")


def _clock(text: str) -> time:
    match = _CLOCK.fullmatch(text.strip())
    if match is None or (match[1] == "24" and match[2] != "00"):
        raise ValueError(f"{text.strip()!r} is not a time of day HH:MM")
    hour, minute = int(match[1]), int(match[2])
    return time.max if hour == 24 else time(hour, minute)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A daily window ``start``-``end``; an end at or before the start runs past midnight.

    ``24:00`` as an end means the end of the day.
    """

    start: time
    end: time

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    def __str__(self) -> str:
        end = "24:00" if self.end == time.max else self.end.strftime("%H:%M")
        return f"{self.start:%H:%M}-{end}"


def parse_time_window(value: object) -> TimeWindow:
    """``"08:00-18:00"``, or ``"22:00-06:00"`` for a window across midnight."""
    if isinstance(value, TimeWindow):
        return value
    if not isinstance(value, str) or value.count("-") != 1:
        raise ValueError(f"{value!r} is not a time window such as 08:00-18:00")
    start_text, end_text = value.split("-")
    start, end = _clock(start_text), _clock(end_text)
    if start == time.max:
        raise ValueError(f"{value!r}: a window cannot start at 24:00")
    if start == end:
        raise ValueError(f"{value!r} is empty; write 00:00-24:00 for the whole day")
    return TimeWindow(start, end)


def in_schedule(
    local: datetime, days: frozenset[int] | None, windows: Iterable[TimeWindow]
) -> bool:
    """Whether local time ``local`` falls in one of ``windows`` on one of ``days``.

    An overnight window belongs to the day it starts on: with ``days: [fri]``
    and ``22:00-06:00``, Saturday 02:00 is inside and Friday 02:00 is not.
    No windows means the whole day; no days means every day.
    """
    windows = tuple(windows)
    today = local.weekday()
    if not windows:
        return days is None or today in days
    yesterday = (today - 1) % 7
    now = local.time()
    for window in windows:
        if not window.overnight:
            if window.start <= now < window.end and (days is None or today in days):
                return True
            continue
        if now >= window.start and (days is None or today in days):
            return True
        if now < window.end and (days is None or yesterday in days):
            return True
    return False


@dataclass(frozen=True, slots=True)
class HolidayCalendar:
    """Holiday dates: fixed dates, and month-days that recur every year."""

    dates: frozenset[date]
    yearly: frozenset[tuple[int, int]]

    def __contains__(self, day: object) -> bool:
        if isinstance(day, datetime):
            day = day.date()
        if not isinstance(day, date):
            return False
        return day in self.dates or (day.month, day.day) in self.yearly


_DATE_RANGE = re.compile(r"(\d{4}-\d{2}-\d{2})\s*\.\.\s*(\d{4}-\d{2}-\d{2})")


def parse_holidays(values: object) -> HolidayCalendar:
    """``["2026-12-25", "01-01", "2026-08-01..2026-08-03"]``: dates, yearly days, ranges."""
    if isinstance(values, HolidayCalendar):
        return values
    if not isinstance(values, list | tuple):
        raise ValueError("expected a list of dates (YYYY-MM-DD, MM-DD every year, or a..b)")
    dates: set[date] = set()
    yearly: set[tuple[int, int]] = set()
    for value in values:
        # YAML reads an unquoted 2026-12-25 as a date already.
        if isinstance(value, date):
            dates.add(value)
            continue
        text = str(value).strip()
        try:
            if (span := _DATE_RANGE.fullmatch(text)) is not None:
                first, last = date.fromisoformat(span[1]), date.fromisoformat(span[2])
                if last < first:
                    raise ValueError
                dates.update(first + timedelta(days=n) for n in range((last - first).days + 1))
            elif re.fullmatch(r"\d{2}-\d{2}", text):
                month, day = int(text[:2]), int(text[3:])
                date(2000, month, day)  # a leap year, so 02-29 is allowed
                yearly.add((month, day))
            else:
                dates.add(date.fromisoformat(text))
        except ValueError:
            raise ValueError(
                f"{text!r} is not a holiday date (YYYY-MM-DD, MM-DD every year, "
                "or YYYY-MM-DD..YYYY-MM-DD)"
            ) from None
    return HolidayCalendar(frozenset(dates), frozenset(yearly))
