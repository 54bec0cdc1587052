"""Contact-centre reports, aggregated by the database: by queue, by agent (and team), by hour.

Each report is one or two ``GROUP BY`` queries over ``calls`` (and, for
agents, ``call_events``), so the database sums millions of CDRs and Python
only sees one row per group. The SQL is written once; a ``Dialect`` supplies
the few expressions SQLite and PostgreSQL spell differently: seconds between
two timestamps, the UTC hour of a timestamp, and parameter placeholders.

The figures are defined in docs/storage.md; the short version is on
``CallFigures``. Sums of seconds are rounded to the microsecond, the
resolution timestamps are stored at, so both back ends give equal results.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from ._model import Disposition, EventType, format_time

__all__ = [
    "DEFAULT_SERVICE_LEVEL_S",
    "INTERVALS",
    "POSTGRES",
    "SQLITE",
    "AgentReport",
    "AgentReports",
    "CallFigures",
    "Dialect",
    "HourReport",
    "QueueReport",
    "TeamReport",
    "WrapUpCodeCount",
    "report_by_agent",
    "report_by_hour",
    "report_by_queue",
    "report_by_wrap_up_code",
]

INTERVALS = (15, 30, 60)
"""The report intervals in minutes (``report_by_hour``'s ``minutes``)."""

DEFAULT_SERVICE_LEVEL_S = 20.0
"""The service-level threshold for a queue the mapping does not name (the 80/20 rule's 20)."""

Fetch = Callable[[str, Sequence[object]], Awaitable[list[Sequence[Any]]]]
ServiceLevel = Mapping[str, float] | float


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one back end spells what the report SQL needs."""

    name: str

    def placeholder(self, index: int) -> str:
        return "?" if self.name == "sqlite" else f"${index}"

    def time(self, value: datetime) -> object:
        # SQLite stores fixed-width UTC text (see format_time); asyncpg takes datetimes.
        return format_time(value) if self.name == "sqlite" else value

    def seconds(self, start: str, end: str) -> str:
        """Seconds from ``start`` to ``end``, exact to the microsecond."""
        if self.name == "sqlite":
            # julianday() is a double of days and keeps only ~50 µs: split
            # whole seconds (strftime '%s') from the stored microsecond digits.
            return (
                f"(strftime('%s', {end}) - strftime('%s', {start}) "
                f"+ (substr({end}, 21, 6) - substr({start}, 21, 6)) / 1000000.0)"
            )
        return f"extract(epoch FROM ({end} - {start}))::float8"

    def interval(self, column: str, minutes: int) -> str:
        """The UTC interval of ``minutes`` (15, 30, 60) holding ``column``: ``YYYY-MM-DDTHH:MM``."""
        if minutes not in INTERVALS:
            raise ValueError(f"an interval is one of {INTERVALS} minutes, not {minutes}")
        if self.name == "sqlite":
            minute = f"(CAST(substr({column}, 15, 2) AS INTEGER) / {minutes}) * {minutes}"
            return f"substr({column}, 1, 14) || printf('%02d', {minute})"
        utc = f"({column} AT TIME ZONE 'UTC')"
        start = (
            f"date_trunc('hour', {utc}) "
            f"+ floor(extract(minute FROM {utc}) / {minutes}) * {minutes} * interval '1 minute'"
        )
        return f"""to_char({start}, 'YYYY-MM-DD"T"HH24:MI')"""


SQLITE = Dialect("sqlite")
POSTGRES = Dialect("postgres")


@dataclass(frozen=True, slots=True)
class CallFigures:
    """Counts and sums for a set of calls; the rates are derived from them.

    ``offered`` counts the calls, ``answered`` those an agent answered
    (``answered_at`` set, whatever the disposition afterwards), and the other
    counts their disposition. ``wait_s`` sums queue-to-answer seconds over
    answered calls, ``talk_s`` answer-to-end seconds over answered calls that
    have ended (``talked``). Abandoned calls are also counted by how long the
    caller waited (queue entry to hang-up) in the bands ``ABANDON_BANDS``
    ends; ``surveyed`` counts calls with a post-call survey score, ``survey_sum``
    adds the scores and ``satisfied`` counts scores of 4 or 5 (CSAT is its
    share). ``wrap_up_s`` sums the agents' wrap-up after the calls talked, so
    handle time (``aht_s``) is talk plus wrap-up, as contact centres count it.
    Figures add up (``+``), so rollups are exact.
    """

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    timed_out: int = 0
    callback: int = 0
    transferred: int = 0
    failed: int = 0
    answered_within: int = 0
    wait_s: float = 0.0
    talk_s: float = 0.0
    talked: int = 0
    abandoned_0_10s: int = 0
    abandoned_10_30s: int = 0
    abandoned_30_60s: int = 0
    abandoned_60_120s: int = 0
    abandoned_over_120s: int = 0
    surveyed: int = 0
    survey_sum: int = 0
    satisfied: int = 0
    wrap_up_s: float = 0.0

    def __add__(self, other: CallFigures) -> CallFigures:
        return CallFigures(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def asa_s(self) -> float | None:
        """Average speed of answer: mean seconds from queue entry to answer."""
        return self.wait_s / self.answered if self.answered else None

    @property
    def att_s(self) -> float | None:
        """Average talk time: mean seconds from answer to hang-up."""
        return self.talk_s / self.talked if self.talked else None

    @property
    def acw_s(self) -> float | None:
        """Average after-call work: mean seconds of the agent's wrap-up after a call."""
        return self.wrap_up_s / self.talked if self.talked else None

    @property
    def aht_s(self) -> float | None:
        """Average handle time: talk plus wrap-up, per call talked."""
        return (self.talk_s + self.wrap_up_s) / self.talked if self.talked else None

    @property
    def service_level(self) -> float | None:
        """Share of answered calls answered within the threshold."""
        return self.answered_within / self.answered if self.answered else None

    @property
    def service_level_with_abandons(self) -> float | None:
        """Answered within the threshold over answered plus abandoned calls."""
        handled = self.answered + self.abandoned
        return self.answered_within / handled if handled else None

    @property
    def csat(self) -> float | None:
        """Customer satisfaction: the share of survey answers that were 4 or 5 (of 5)."""
        return self.satisfied / self.surveyed if self.surveyed else None

    @property
    def survey_avg(self) -> float | None:
        return self.survey_sum / self.surveyed if self.surveyed else None

    def to_json(self) -> dict[str, Any]:
        def rounded(value: float | None, digits: int) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "offered": self.offered,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "timed_out": self.timed_out,
            "callback": self.callback,
            "transferred": self.transferred,
            "failed": self.failed,
            "answered_within_sl": self.answered_within,
            "asa_s": rounded(self.asa_s, 3),
            "aht_s": rounded(self.aht_s, 3),
            "att_s": rounded(self.att_s, 3),
            "acw_s": rounded(self.acw_s, 3),
            "service_level": rounded(self.service_level, 4),
            "service_level_with_abandons": rounded(self.service_level_with_abandons, 4),
            "abandoned_0_10s": self.abandoned_0_10s,
            "abandoned_10_30s": self.abandoned_10_30s,
            "abandoned_30_60s": self.abandoned_30_60s,
            "abandoned_60_120s": self.abandoned_60_120s,
            "abandoned_over_120s": self.abandoned_over_120s,
            "surveyed": self.surveyed,
            "survey_avg": rounded(self.survey_avg, 3),
            "csat": rounded(self.csat, 4),
        }


@dataclass(frozen=True, slots=True)
class QueueReport:
    """One queue's figures; ``threshold_s`` is the service level it was measured against."""

    queue: str
    threshold_s: float
    figures: CallFigures


@dataclass(frozen=True, slots=True)
class AgentReport:
    """One agent's calls (CDRs naming the agent) and the times they let a call ring out."""

    agent: str
    team: str | None
    figures: CallFigures
    ring_no_answer: int = 0


@dataclass(frozen=True, slots=True)
class TeamReport:
    """The sum of its agents' figures; agents the team map does not name are not in any team."""

    team: str
    agents: tuple[str, ...]
    figures: CallFigures
    ring_no_answer: int = 0


@dataclass(frozen=True, slots=True)
class AgentReports:
    """``report_by_agent``'s answer: one row per agent, and the rollup per team."""

    agents: list[AgentReport] = field(default_factory=list)
    teams: list[TeamReport] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class HourReport:
    """One UTC hour: every call that arrived (``arrivals``) and the queued ones' figures."""

    hour: datetime
    arrivals: int
    figures: CallFigures


@dataclass(frozen=True, slots=True)
class WrapUpCodeCount:
    """Answered calls of one queue, by one agent, given one wrap-up code (None: none given)."""

    queue: str
    agent: str
    code: str | None
    calls: int


class _Query:
    """Collects parameters and hands out the dialect's placeholders for them."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.params: list[object] = []

    def param(self, value: object, cast: str = "") -> str:
        self.params.append(value)
        placeholder = self.dialect.placeholder(len(self.params))
        # PostgreSQL infers an untyped parameter in CASE ... THEN as text.
        return f"{placeholder}::{cast}" if cast and self.dialect is POSTGRES else placeholder

    def window(self, column: str, since: datetime, until: datetime) -> str:
        start = self.param(self.dialect.time(since))
        end = self.param(self.dialect.time(until))
        return f"{column} >= {start} AND {column} < {end}"

    def threshold(self, service_level: ServiceLevel) -> str:
        if not isinstance(service_level, Mapping):
            return self.param(float(service_level), "float8")
        if not service_level:
            return self.param(DEFAULT_SERVICE_LEVEL_S, "float8")
        cases = " ".join(
            f"WHEN {self.param(queue)} THEN {self.param(float(seconds), 'float8')}"
            for queue, seconds in sorted(service_level.items())
        )
        return f"CASE queue {cases} ELSE {self.param(DEFAULT_SERVICE_LEVEL_S, 'float8')} END"


def _figures_sql(query: _Query, service_level: ServiceLevel) -> str:
    """The select list that ``_figures`` reads back, in its order."""
    wait = query.dialect.seconds("coalesce(queued_at, arrived_at)", "answered_at")
    talk = query.dialect.seconds("answered_at", "ended_at")
    threshold = query.threshold(service_level)

    def count(condition: str) -> str:
        return f"sum(CASE WHEN {condition} THEN 1 ELSE 0 END)"

    def disposition(value: Disposition) -> str:
        return count(f"disposition = '{value.value}'")

    answered = "answered_at IS NOT NULL"
    talked = f"{answered} AND ended_at IS NOT NULL"
    gave_up = query.dialect.seconds("coalesce(queued_at, arrived_at)", "ended_at")
    abandoned = f"disposition = '{Disposition.ABANDONED.value}' AND ended_at IS NOT NULL"
    bands = [
        count(f"{abandoned} AND {gave_up} < 10"),
        count(f"{abandoned} AND {gave_up} >= 10 AND {gave_up} < 30"),
        count(f"{abandoned} AND {gave_up} >= 30 AND {gave_up} < 60"),
        count(f"{abandoned} AND {gave_up} >= 60 AND {gave_up} < 120"),
        count(f"{abandoned} AND {gave_up} >= 120"),
    ]
    return ", ".join(
        [
            "count(*)",
            "count(answered_at)",
            disposition(Disposition.ABANDONED),
            disposition(Disposition.TIMEOUT),
            disposition(Disposition.CALLBACK),
            disposition(Disposition.TRANSFERRED),
            disposition(Disposition.FAILED),
            count(f"{answered} AND {wait} <= {threshold}"),
            f"sum(CASE WHEN {answered} THEN {wait} ELSE 0 END)",
            f"sum(CASE WHEN {talked} THEN {talk} ELSE 0 END)",
            count(talked),
            *bands,
            "count(survey_score)",
            "sum(coalesce(survey_score, 0))",
            count("survey_score >= 4"),
            f"sum(CASE WHEN {talked} THEN coalesce(wrap_up_s, 0) ELSE 0 END)",
        ]
    )


def _figures(row: Sequence[Any]) -> CallFigures:
    def count(index: int) -> int:
        return int(row[index] or 0)

    return CallFigures(
        offered=count(0),
        answered=count(1),
        abandoned=count(2),
        timed_out=count(3),
        callback=count(4),
        transferred=count(5),
        failed=count(6),
        answered_within=count(7),
        wait_s=round(float(row[8] or 0), 6),
        talk_s=round(float(row[9] or 0), 6),
        talked=count(10),
        abandoned_0_10s=count(11),
        abandoned_10_30s=count(12),
        abandoned_30_60s=count(13),
        abandoned_60_120s=count(14),
        abandoned_over_120s=count(15),
        surveyed=count(16),
        survey_sum=count(17),
        satisfied=count(18),
        wrap_up_s=round(float(row[19] or 0), 6),
    )


def _threshold_of(service_level: ServiceLevel, queue: str) -> float:
    if isinstance(service_level, Mapping):
        return float(service_level.get(queue, DEFAULT_SERVICE_LEVEL_S))
    return float(service_level)


async def report_by_queue(
    fetch: Fetch,
    dialect: Dialect,
    since: datetime,
    until: datetime,
    service_level: ServiceLevel = DEFAULT_SERVICE_LEVEL_S,
) -> list[QueueReport]:
    """Figures per queue for calls that arrived in [since, until) and entered a queue."""
    query = _Query(dialect)
    figures = _figures_sql(query, service_level)
    window = query.window("arrived_at", since, until)
    sql = (
        f"SELECT queue, {figures} FROM calls WHERE {window} AND queue IS NOT NULL "
        "GROUP BY queue ORDER BY queue"
    )
    return [
        QueueReport(str(row[0]), _threshold_of(service_level, str(row[0])), _figures(row[1:]))
        for row in await fetch(sql, query.params)
    ]


async def report_by_agent(
    fetch: Fetch,
    dialect: Dialect,
    since: datetime,
    until: datetime,
    team_of: Mapping[str, str] | None = None,
    service_level: ServiceLevel = DEFAULT_SERVICE_LEVEL_S,
) -> AgentReports:
    """Figures per agent (calls whose CDR names the agent) and the rollup per team.

    ``ring_no_answer`` counts the agent's RINGNOANSWER events in the window.
    Team figures are sums of agent figures (exact: figures are sums).
    """
    query = _Query(dialect)
    figures = _figures_sql(query, service_level)
    window = query.window("arrived_at", since, until)
    calls_sql = (
        f"SELECT agent, {figures} FROM calls WHERE {window} AND agent IS NOT NULL "
        "GROUP BY agent ORDER BY agent"
    )
    by_agent = {str(row[0]): _figures(row[1:]) for row in await fetch(calls_sql, query.params)}
    events = _Query(dialect)
    # Placeholders are taken in the order they appear: SQLite's ? are positional.
    in_window = events.window("at", since, until)
    kind = events.param(EventType.RINGNOANSWER.value)
    rings_sql = (
        f"SELECT agent, count(*) FROM call_events WHERE {in_window} "
        f"AND event = {kind} AND agent IS NOT NULL GROUP BY agent"
    )
    rings = {str(row[0]): int(row[1]) for row in await fetch(rings_sql, events.params)}
    teams = team_of or {}
    agents = [
        AgentReport(
            agent, teams.get(agent), by_agent.get(agent, CallFigures()), rings.get(agent, 0)
        )
        for agent in sorted(by_agent.keys() | rings.keys())
    ]
    rollup: dict[str, list[AgentReport]] = {}
    for row in agents:
        if row.team is not None:
            rollup.setdefault(row.team, []).append(row)
    team_rows = [
        TeamReport(
            team,
            tuple(r.agent for r in members),
            sum((r.figures for r in members), CallFigures()),
            sum(r.ring_no_answer for r in members),
        )
        for team, members in sorted(rollup.items())
    ]
    return AgentReports(agents, team_rows)


async def report_by_hour(
    fetch: Fetch,
    dialect: Dialect,
    since: datetime,
    until: datetime,
    queue: str | None = None,
    service_level: ServiceLevel = DEFAULT_SERVICE_LEVEL_S,
    minutes: int = 60,
) -> list[HourReport]:
    """One row per UTC interval of ``minutes`` (15, 30 or 60) from the one holding
    ``since`` to the one before ``until``.

    Intervals without calls are included with zeros, so a chart has no gaps.
    ``arrivals`` counts every call (or, with ``queue``, that queue's calls);
    the figures count calls that entered a queue (or that queue).
    """
    hour = dialect.interval("arrived_at", minutes)
    query = _Query(dialect)
    figures = _figures_sql(query, service_level)
    window = query.window("arrived_at", since, until)
    only = f"queue = {query.param(queue)}" if queue is not None else "queue IS NOT NULL"
    figures_sql = (
        f"SELECT {hour}, {figures} FROM calls WHERE {window} AND {only} GROUP BY 1 ORDER BY 1"
    )
    by_hour = {str(row[0]): _figures(row[1:]) for row in await fetch(figures_sql, query.params)}
    if queue is None:
        volume = _Query(dialect)
        volume_sql = (
            f"SELECT {hour}, count(*) FROM calls "
            f"WHERE {volume.window('arrived_at', since, until)} GROUP BY 1"
        )
        arrivals = {str(row[0]): int(row[1]) for row in await fetch(volume_sql, volume.params)}
    else:
        arrivals = {key: value.offered for key, value in by_hour.items()}
    rows = []
    for start in _intervals(since, until, minutes):
        key = start.strftime("%Y-%m-%dT%H:%M")
        rows.append(HourReport(start, arrivals.get(key, 0), by_hour.get(key, CallFigures())))
    return rows


def _intervals(since: datetime, until: datetime, minutes: int) -> list[datetime]:
    start = since.astimezone(UTC)
    first = start.replace(minute=start.minute - start.minute % minutes, second=0, microsecond=0)
    end = until.astimezone(UTC)
    step = first
    starts = []
    while step < end:
        starts.append(step)
        step = datetime.fromtimestamp(step.timestamp() + 60 * minutes, UTC)
    return starts


async def report_by_wrap_up_code(
    fetch: Fetch,
    dialect: Dialect,
    since: datetime,
    until: datetime,
    queue: str | None = None,
) -> list[WrapUpCodeCount]:
    """Answered queue calls that arrived in [since, until) by queue, agent and wrap-up code."""
    query = _Query(dialect)
    window = query.window("arrived_at", since, until)
    answered = query.param(Disposition.ANSWERED.value)
    only = f" AND queue = {query.param(queue)}" if queue is not None else ""
    sql = (
        f"SELECT queue, agent, wrap_up_code, count(*) FROM calls WHERE {window} "
        f"AND disposition = {answered} AND queue IS NOT NULL AND agent IS NOT NULL{only} "
        "GROUP BY queue, agent, wrap_up_code ORDER BY queue, agent, wrap_up_code"
    )
    return [
        WrapUpCodeCount(str(q), str(a), None if c is None else str(c), int(n))
        for q, a, c, n in await fetch(sql, query.params)
    ]
