"""GET /api/v1/reports/queues, /agents and /hourly: the storage reports as JSON.

The figures are defined in docs/storage.md. Each row carries the counts and
the derived rates (ASA, AHT, the two service levels); a ``total`` row sums
the queues, which is exact because figures are sums.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from ..storage import DEFAULT_SERVICE_LEVEL_S, CallFigures, Storage
from ._csv import csv_response
from ._params import Params, from_storage
from ._principal import principal_of

__all__ = ["LONGEST_HOURLY", "LONGEST_REPORT", "ReportsApi"]

LONGEST_REPORT = timedelta(days=366)
LONGEST_HOURLY = timedelta(days=93)
"""Hourly rows are made for every hour of the range, so its span is capped."""

ServiceLevel = Mapping[str, float] | float


class ReportsApi:
    """Report endpoints; ``service_level`` and ``team_of`` come from the configuration."""

    def __init__(
        self,
        storage: Storage,
        *,
        service_level: ServiceLevel = DEFAULT_SERVICE_LEVEL_S,
        team_of: Mapping[str, str] | None = None,
    ) -> None:
        self.storage = storage
        self.service_level = service_level
        self.team_of = team_of

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/reports/queues", self.queues),
            web.get("/api/v1/reports/agents", self.agents),
            web.get("/api/v1/reports/hourly", self.hourly),
            web.get("/api/v1/reports/wrap-up-codes", self.wrap_up_codes),
        ]

    def _threshold(self, params: Params) -> ServiceLevel:
        """``service_level=`` in the query overrides the configured thresholds for every queue."""
        override = params.seconds("service_level")
        return self.service_level if override is None else override

    async def queues(self, request: web.Request) -> web.Response:
        params = Params(request, ("since", "until", "service_level", "format"))
        since, until = params.window(LONGEST_REPORT)
        rows = await from_storage(
            self.storage.report_by_queue(since, until, self._threshold(params))
        )
        total = sum((row.figures for row in rows), CallFigures())
        queues = [
            {"queue": r.queue, "service_level_s": r.threshold_s, **r.figures.to_json()}
            for r in rows
        ]
        if _csv_wanted(params):
            table = [*queues, {"queue": "total", **total.to_json()}]
            return _csv("queues", since, until, ("queue", "service_level_s"), table)
        return web.json_response(
            {
                "since": since.isoformat(),
                "until": until.isoformat(),
                "queues": queues,
                "total": total.to_json(),
            }
        )

    async def agents(self, request: web.Request) -> web.Response:
        params = Params(request, ("since", "until", "service_level", "team", "format"))
        since, until = params.window(LONGEST_REPORT)
        team = params.text("team")
        report = await from_storage(
            self.storage.report_by_agent(
                since, until, self.team_of, service_level=self._threshold(params)
            )
        )
        principal = principal_of(request)
        agents = [
            r
            for r in report.agents
            if (team is None or r.team == team) and principal.reaches(r.agent)
        ]
        teams = [
            t
            for t in report.teams
            if (team is None or t.team == team)
            and (principal.agents is None or t.team == principal.team)
        ]
        agent_rows = [
            {
                "agent": r.agent,
                "team": r.team,
                "ring_no_answer": r.ring_no_answer,
                **r.figures.to_json(),
            }
            for r in agents
        ]
        if _csv_wanted(params):
            return _csv("agents", since, until, ("agent", "team", "ring_no_answer"), agent_rows)
        body: dict[str, Any] = {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "agents": agent_rows,
            "teams": [
                {
                    "team": t.team,
                    "agents": list(t.agents),
                    "ring_no_answer": t.ring_no_answer,
                    **t.figures.to_json(),
                }
                for t in teams
            ],
        }
        return web.json_response(body)

    async def hourly(self, request: web.Request) -> web.Response:
        """Volume and figures per hour, or per ``interval=15`` or ``30`` minutes."""
        params = Params(request, ("since", "until", "service_level", "queue", "format", "interval"))
        since, until = params.window(LONGEST_HOURLY)
        minutes = int(params.choice("interval", ("60", "30", "15")) or 60)
        rows = await from_storage(
            self.storage.report_by_hour(
                since,
                until,
                params.text("queue"),
                service_level=self._threshold(params),
                minutes=minutes,
            )
        )
        hours = [
            {"hour": r.hour.isoformat(), "arrivals": r.arrivals, **r.figures.to_json()}
            for r in rows
        ]
        if _csv_wanted(params):
            return _csv("hourly", since, until, ("hour", "arrivals"), hours)
        return web.json_response(
            {"since": since.isoformat(), "until": until.isoformat(), "hours": hours}
        )

    async def wrap_up_codes(self, request: web.Request) -> web.Response:
        """Answered calls per queue and wrap-up code (``code`` null: none given), and per agent."""
        params = Params(request, ("since", "until", "queue", "format"))
        since, until = params.window(LONGEST_REPORT)
        rows = await from_storage(
            self.storage.report_by_wrap_up_code(since, until, params.text("queue"))
        )
        principal = principal_of(request)
        totals: dict[tuple[str, str | None], int] = {}
        agent_rows = []
        for row in rows:
            if principal.reaches(row.agent):
                key = (row.queue, row.code)
                totals[key] = totals.get(key, 0) + row.calls
                agent_rows.append(
                    {"queue": row.queue, "agent": row.agent, "code": row.code, "calls": row.calls}
                )
        code_rows = [
            {"queue": queue, "code": code, "calls": calls}
            for (queue, code), calls in sorted(
                totals.items(), key=lambda i: (i[0][0], i[0][1] or "")
            )
        ]
        if _csv_wanted(params):
            filename = f"report-wrap-up-codes-{since:%Y%m%dT%H%M%SZ}-{until:%Y%m%dT%H%M%SZ}.csv"
            return csv_response(filename, ("queue", "agent", "code", "calls"), agent_rows)
        return web.json_response(
            {
                "since": since.isoformat(),
                "until": until.isoformat(),
                "codes": code_rows,
                "agents": agent_rows,
            }
        )


def _csv_wanted(params: Params) -> bool:
    return params.choice("format", ("json", "csv")) == "csv"


def _csv(
    name: str, since: datetime, until: datetime, keys: tuple[str, ...], rows: list[dict[str, Any]]
) -> web.Response:
    """A report as CSV: its key columns, then the figures in CallFigures' order."""
    columns = (*keys, *CallFigures().to_json())
    filename = f"report-{name}-{since:%Y%m%dT%H%M%SZ}-{until:%Y%m%dT%H%M%SZ}.csv"
    return csv_response(filename, columns, rows)
