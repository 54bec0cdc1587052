"""Reports on a small fixed dataset, with figures worked out by hand in the comments.

Every test runs against SQLite and PostgreSQL (the ``storage`` fixture of
test_storage.py) and compares with the same literal numbers, so the two back
ends are held to identical results. The window is [09:00, 12:00) UTC on
1 May 2024; sales has a 20 s service-level threshold, support 30 s.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from acd.storage import (
    CallEvent,
    CallFigures,
    CallRecord,
    Disposition,
    EventType,
    HangupSide,
    Storage,
)

from .pg import pg_cluster  # noqa: F401 - the session fixture, used by name
from .test_storage import PARIS, cluster, storage  # noqa: F401 - fixtures, used by name

SINCE = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
UNTIL = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
THRESHOLDS = {"sales": 20.0, "support": 30.0}


def at(clock: str) -> datetime:
    """``"09:00:04.75"`` on the report day, in UTC."""
    return datetime.fromisoformat(f"2024-05-01T{clock}+00:00")


def call(
    n: int,
    queue: str | None,
    agent: str | None,
    disposition: Disposition,
    arrived: str,
    queued: str | None = None,
    answered: str | None = None,
    ended: str | None = None,
    survey: int | None = None,
    wrap_up: float | None = None,
) -> CallRecord:
    return CallRecord(
        call_id=f"c{n}",
        sip_call_id=f"{n}@trunk",
        queue=queue,
        agent=agent,
        disposition=disposition,
        hangup_side=HangupSide.CALLER,
        arrived_at=at(arrived),
        queued_at=at(queued) if queued else None,
        answered_at=at(answered) if answered else None,
        ended_at=at(ended) if ended else None,
        survey_score=survey,
        wrap_up_s=wrap_up,
    )


A, AB, TO, CB, TR, F = (
    Disposition.ANSWERED,
    Disposition.ABANDONED,
    Disposition.TIMEOUT,
    Disposition.CALLBACK,
    Disposition.TRANSFERRED,
    Disposition.FAILED,
)
CALLS = [
    # sales: waits 10.5 s (borrowing across a second), 29.5 s, and exactly 20 s.
    # Surveys: call 1 scored 5, call 2 scored 3 (CSAT counts 4 and 5: one of two).
    call(1, "sales", "a1", A, "09:00:00", "09:00:04.75", "09:00:15.25", "09:02:15.25", 5),
    call(2, "sales", "a2", A, "09:10:00", "09:10:00.5", "09:10:30", "09:11:30", 3),
    # The caller gave up after 38 s in the queue: the 30-60 s band.
    call(3, "sales", None, AB, "09:20:00", "09:20:02", None, "09:20:40"),
    call(4, "sales", "a1", TR, "10:05:00", "10:05:00.5", "10:05:20.5", "10:06:20.5"),
    # support: waits 25 s and 10 s; call 9 is still talking (no ended_at).
    # Wrap-up counts in handle time: 30 s after call 5, none after call 9 (still talking).
    call(5, "support", "a2", A, "10:30:00", "10:30:00", "10:30:25", "10:35:25", wrap_up=30),
    call(6, "support", None, TO, "10:40:00", "10:40:00", None, "10:45:00"),
    call(7, "support", None, CB, "10:50:00", "10:50:00", None, "10:52:00"),
    call(9, "support", "a3", A, "11:59:59", "12:00:01", "12:00:11", wrap_up=100),
    # Never queued (it failed in the IVR): hourly arrivals only.
    call(8, None, None, F, "09:30:00", None, None, "09:31:00"),
    # Outside [09:00, 12:00): the window is half-open.
    call(10, "sales", "a1", A, "12:00:00", "12:00:00", "12:00:05", "12:01:00"),
    call(11, "sales", "a1", A, "08:59:59.999999", "09:00:00", "09:00:05", "09:01:00"),
]


def ring(agent: str, clock: str, event: EventType = EventType.RINGNOANSWER) -> CallEvent:
    return CallEvent(call_id="c2", at=at(clock), event=event, agent=agent, queue="sales")


EVENTS = [
    ring("a1", "09:10:05"),
    ring("a3", "10:30:05"),
    ring("a4", "09:20:05"),  # an agent who answered nothing
    ring("a1", "12:30:00"),  # outside the window
    ring("a1", "09:10:20", EventType.CONNECT),  # not a missed ring
]


@pytest.fixture
async def loaded(storage: Storage) -> Storage:  # noqa: F811 - the fixture by name
    await storage.write_batch(calls=CALLS, events=EVENTS)
    return storage


SALES = CallFigures(
    offered=4,
    answered=3,  # 1, 2 and 4: the transferred call 4 was answered first
    abandoned=1,
    transferred=1,
    answered_within=2,  # 10.5 s and 20 s (the threshold itself counts); not 29.5 s
    wait_s=60.0,  # 10.5 + 29.5 + 20
    talk_s=240.0,  # 120 + 60 + 60
    talked=3,
    abandoned_30_60s=1,
    surveyed=2,
    survey_sum=8,
    satisfied=1,
)
SUPPORT = CallFigures(
    offered=4,
    answered=2,
    timed_out=1,
    callback=1,
    answered_within=2,  # 25 s and 10 s, both within 30 s
    wait_s=35.0,
    talk_s=300.0,  # call 9 has not ended and is left out of AHT
    talked=1,
    wrap_up_s=30.0,
)


async def test_report_by_queue(loaded: Storage) -> None:
    rows = await loaded.report_by_queue(SINCE, UNTIL, THRESHOLDS)
    assert [(r.queue, r.threshold_s, r.figures) for r in rows] == [
        ("sales", 20.0, SALES),
        ("support", 30.0, SUPPORT),
    ]
    sales, support = (r.figures for r in rows)
    assert (sales.asa_s, sales.aht_s) == (20.0, 80.0)
    assert sales.service_level == pytest.approx(2 / 3)
    assert sales.service_level_with_abandons == 0.5  # 2 / (3 answered + 1 abandoned)
    assert (support.asa_s, support.aht_s, support.service_level) == (17.5, 330.0, 1.0)
    assert (support.att_s, support.acw_s, sales.acw_s) == (300.0, 30.0, 0.0)
    assert support.service_level_with_abandons == 1.0


async def test_report_by_queue_with_one_threshold(loaded: Storage) -> None:
    rows = await loaded.report_by_queue(SINCE, UNTIL, 20.0)
    # support's 25 s answer is now outside the service level.
    assert [r.figures.answered_within for r in rows] == [2, 1]
    # A queue the mapping does not name gets the default 20 s.
    rows = await loaded.report_by_queue(SINCE, UNTIL, {"sales": 5.0})
    assert [(r.threshold_s, r.figures.answered_within) for r in rows] == [(5.0, 0), (20.0, 1)]


async def test_report_window_is_half_open_and_zone_free(loaded: Storage) -> None:
    # The same instants written in Paris time give the same report.
    rows = await loaded.report_by_queue(
        SINCE.astimezone(PARIS), UNTIL.astimezone(PARIS), THRESHOLDS
    )
    assert [r.figures for r in rows] == [SALES, SUPPORT]
    assert await loaded.report_by_queue(UNTIL, UNTIL + timedelta(seconds=1)) != []
    assert await loaded.report_by_queue(SINCE, SINCE) == []


async def test_report_by_agent_with_teams(loaded: Storage) -> None:
    report = await loaded.report_by_agent(
        SINCE, UNTIL, {"a1": "blue", "a2": "blue", "a3": "red"}, service_level=THRESHOLDS
    )
    a1 = CallFigures(
        offered=2, answered=2, transferred=1, answered_within=2, wait_s=30.5, talk_s=180.0,
        talked=2, surveyed=1, survey_sum=5, satisfied=1,
    )  # fmt: skip
    a2 = CallFigures(
        offered=2, answered=2, answered_within=1, wait_s=54.5, talk_s=360.0, talked=2,
        surveyed=1, survey_sum=3, wrap_up_s=30.0,
    )  # fmt: skip
    a3 = CallFigures(offered=1, answered=1, answered_within=1, wait_s=10.0)
    assert [(r.agent, r.team, r.figures, r.ring_no_answer) for r in report.agents] == [
        ("a1", "blue", a1, 1),
        ("a2", "blue", a2, 0),
        ("a3", "red", a3, 1),
        ("a4", None, CallFigures(), 1),
    ]
    assert (a1.asa_s, a1.aht_s, a2.asa_s, a2.aht_s) == (15.25, 90.0, 27.25, 195.0)
    assert a3.aht_s is None  # still talking
    # Teams are sums, so a team's ASA weighs its agents by their calls: 85 s / 4.
    assert [(t.team, t.agents, t.figures, t.ring_no_answer) for t in report.teams] == [
        ("blue", ("a1", "a2"), a1 + a2, 1),
        ("red", ("a3",), a3, 1),
    ]
    assert report.teams[0].figures.asa_s == 21.25
    assert report.teams[0].figures.aht_s == 142.5  # (180 + 360 talk + 30 wrap-up) / 4
    untagged = await loaded.report_by_agent(SINCE, UNTIL)
    assert untagged.teams == []
    assert [r.figures for r in untagged.agents][:2] != [a1, a2]  # 20 s for every queue
    assert untagged.agents[1].figures.answered_within == 0


async def test_report_by_hour(loaded: Storage) -> None:
    rows = await loaded.report_by_hour(SINCE, UNTIL, service_level=THRESHOLDS)
    assert [r.hour for r in rows] == [at("09:00:00"), at("10:00:00"), at("11:00:00")]
    assert [r.arrivals for r in rows] == [4, 4, 1]  # 09:00 includes the never-queued call 8
    nine, ten, eleven = (r.figures for r in rows)
    assert nine == CallFigures(
        offered=3, answered=2, abandoned=1, answered_within=1, wait_s=40.0, talk_s=180.0,
        talked=2, abandoned_30_60s=1, surveyed=2, survey_sum=8, satisfied=1,
    )  # fmt: skip
    assert ten == CallFigures(
        offered=4,
        answered=2,
        timed_out=1,
        callback=1,
        transferred=1,
        answered_within=2,
        wait_s=45.0,
        talk_s=360.0,
        talked=2,
        wrap_up_s=30.0,
    )
    assert eleven == CallFigures(offered=1, answered=1, answered_within=1, wait_s=10.0)
    # Hour figures add up to the queues' figures.
    assert nine + ten + eleven == SALES + SUPPORT


async def test_report_by_hour_for_one_queue_keeps_empty_hours(loaded: Storage) -> None:
    rows = await loaded.report_by_hour(SINCE + timedelta(minutes=30), UNTIL, "sales")
    assert [(r.hour.hour, r.arrivals, r.figures.offered) for r in rows] == [
        (9, 0, 0),  # 09:30 onwards: call 8 never queued, so not a sales arrival
        (10, 1, 1),
        (11, 0, 0),
    ]
    assert rows[2].figures == CallFigures()


async def test_reports_refuse_naive_times(loaded: Storage) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await loaded.report_by_queue(datetime(2024, 5, 1), UNTIL)


async def test_report_by_interval_of_15_and_30_minutes(loaded: Storage) -> None:
    rows = await loaded.report_by_hour(SINCE, SINCE + timedelta(hours=1), minutes=15)
    assert [r.hour for r in rows] == [
        at(t) for t in ("09:00:00", "09:15:00", "09:30:00", "09:45:00")
    ]
    # 09:00 call 1; 09:10 call 2; 09:20 call 3; 09:30 call 8 (never queued).
    assert [(r.arrivals, r.figures.offered) for r in rows] == [(2, 2), (1, 1), (1, 0), (0, 0)]
    half = await loaded.report_by_hour(SINCE + timedelta(minutes=40), UNTIL, "sales", minutes=30)
    assert half[0].hour == at("09:30:00")  # the interval holding since
    assert sum(r.figures.offered for r in half) == 1  # call 4 at 10:05
    with pytest.raises(ValueError, match="interval"):
        await loaded.report_by_hour(SINCE, UNTIL, minutes=20)


def test_figures_json_has_the_rates() -> None:
    data = SALES.to_json()
    assert data["csat"] == 0.5 and data["survey_avg"] == 4.0
    assert data["abandoned_30_60s"] == 1
    assert data["asa_s"] == 20.0
    assert data["service_level"] == 0.6667
    assert data["service_level_with_abandons"] == 0.5
    empty = CallFigures().to_json()
    assert empty["asa_s"] is None
    assert empty["service_level"] is None
