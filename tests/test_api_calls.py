"""The storage HTTP API through aiohttp's test server on 127.0.0.1, on both back ends.

Calls: filters, keyset pagination that stays stable while calls arrive,
400 for every kind of bad parameter, 404 for unknown ids. Recordings: the
whole file, a first-bytes range, a suffix range, an unsatisfiable range, and
one 404 for every way a recording can be missing. Reports: the JSON shape
and its parameter checks (the figures themselves are test_reports.py's).
"""

from __future__ import annotations

import csv
import io
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from acd.api import add_storage_routes
from acd.api._principal import PRINCIPAL
from acd.identity import ROLE_PERMISSIONS, Principal, Role, reach_of
from acd.recordings import RecordingStore
from acd.storage import Disposition, RecordingRecord, Storage

from .pg import pg_cluster  # noqa: F401 - the session fixture, used by name
from .test_storage import T0, cluster, make_call, make_events, storage  # noqa: F401

DAY = (T0 + timedelta(days=1)).isoformat()
SINCE = T0.isoformat()


def principal(role: Role, username: str = "lead", team: str | None = None) -> Principal:
    """Who the requests act as, as the access middleware would set it (tested on a
    running engine in test_access.py); team "blue" holds only agent 1000."""
    return Principal(
        username=username,
        role=role,
        team=team,
        permissions=ROLE_PERMISSIONS[role],
        agents=reach_of(role, username, team, {"1000": "blue", "1001": "red", "1002": "red"}),
        via="test",
    )


@dataclass
class Api:
    client: TestClient[Any, Any]
    storage: Storage
    recordings: RecordingStore
    acting: list[Principal] = field(default_factory=lambda: [principal(Role.SUPERVISOR)])

    def act_as(self, who: Principal) -> None:
        """The following requests act as ``who``."""
        self.acting[0] = who

    async def get(self, path: str, **params: object) -> tuple[int, Any]:
        response = await self.client.get(path, params={k: str(v) for k, v in params.items()})
        return response.status, await response.json()

    async def calls(self, **params: object) -> list[str]:
        status, body = await self.get("/api/v1/calls", **params)
        assert status == 200, body
        return [c["call_id"] for c in body["calls"]]


@pytest.fixture
async def api(
    storage: Storage,  # noqa: F811 - the fixture by name
    tmp_path: Path,
) -> AsyncIterator[Api]:
    acting = [principal(Role.SUPERVISOR)]

    @web.middleware
    async def act_as(request: web.Request, handler: Any) -> web.StreamResponse:
        request[PRINCIPAL] = acting[0]
        return await handler(request)

    app = web.Application(middlewares=[act_as])
    recordings = RecordingStore(tmp_path / "recordings")
    add_storage_routes(
        app, storage, recordings, service_level={"sales": 20.0}, team_of={"1000": "blue"}
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Api(client, storage, recordings, acting)


# ---- calls -----------------------------------------------------------------


async def test_list_calls_filters(api: Api) -> None:
    calls = [make_call(n) for n in range(12)]
    calls[3] = make_call(3, disposition=Disposition.ABANDONED, agent=None, answered_at=None)
    await api.storage.write_batch(calls=calls)
    window = {"since": SINCE, "until": DAY}
    assert await api.calls(**window) == [c.call_id for c in calls]
    assert await api.calls(**window, queue="sales") == [
        c.call_id for c in calls if c.queue == "sales"
    ]
    assert await api.calls(**window, agent="1001") == [
        c.call_id for c in calls if c.agent == "1001"
    ]
    assert await api.calls(**window, disposition="abandoned") == ["call-00003"]
    assert await api.calls(**window, caller=calls[5].caller_number) == ["call-00005"]
    # The same instants in another zone, and Z for UTC.
    assert await api.calls(since="2024-05-01T11:00:02+02:00", until="2024-05-01T09:00:04Z") == [
        "call-00002",
        "call-00003",
    ]
    status, body = await api.get("/api/v1/calls", **window, limit=1)
    assert status == 200
    first = body["calls"][0]
    assert first["arrived_at"] == "2024-05-01T09:00:00.000000+00:00"
    assert first["recording_url"] is None
    assert body["since"] == SINCE


async def test_pages_are_stable_while_calls_arrive(api: Api) -> None:
    # Four calls per second: ties on arrived_at are ordered by call_id.
    calls = [make_call(n, arrived_at=T0 + timedelta(seconds=n // 4)) for n in range(25)]
    await api.storage.write_batch(calls=calls)
    seen: list[str] = []
    pages = 0
    after = None
    while True:
        params: dict[str, object] = {"since": SINCE, "until": DAY, "limit": 7}
        if after is not None:
            params["after"] = after
        status, body = await api.get("/api/v1/calls", **params)
        assert status == 200
        seen += [c["call_id"] for c in body["calls"]]
        pages += 1
        if pages == 1:
            # Mid-way, one call arrives "in the past" (a late CDR) and one later.
            late = make_call(90, arrived_at=T0)
            later = make_call(91, arrived_at=T0 + timedelta(minutes=5))
            await api.storage.write_batch(calls=[late, later])
        after = body["next"]
        if after is None:
            break
    assert pages == 4  # 7 + 7 + 7 + 5: the last page says next: null
    # No call twice, none shifted out; the late one sorts before the cursor.
    assert seen == [c.call_id for c in calls] + ["call-00091"]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "2024-05-01T09:00:00"}, "since"),  # no time zone
        ({"since": DAY, "until": SINCE}, "since"),
        ({"since": SINCE, "until": SINCE}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"disposition": "hung-up"}, "disposition"),
        ({"after": "not-a-cursor"}, "after"),
        ({"queu": "sales"}, "queu"),
        ({"queue": ""}, "queue"),
    ],
)
async def test_bad_parameters_are_400(api: Api, params: dict[str, str], parameter: str) -> None:
    status, body = await api.get("/api/v1/calls", **params)
    assert status == 400
    assert body["error"] == "bad_parameter"
    assert body["parameter"] == parameter
    assert body["message"].startswith(f"{parameter}: ")


async def test_a_repeated_parameter_is_400(api: Api) -> None:
    response = await api.client.get("/api/v1/calls?queue=a&queue=b")
    assert response.status == 400
    assert "more than once" in (await response.json())["message"]


async def test_one_call_with_its_events(api: Api) -> None:
    call = make_call(4, recording_id="rec-4")
    await api.storage.write_batch(calls=[call], events=make_events(call))
    status, body = await api.get("/api/v1/calls/call-00004")
    assert status == 200
    assert body["call_id"] == "call-00004"
    assert body["recording_url"] == "/api/v1/recordings/rec-4"
    assert [e["event"] for e in body["events"]] == [
        "ENTERQUEUE",
        "RINGNOANSWER",
        "RINGNOANSWER",
        "CONNECT",
        "COMPLETECALLER",
        "TRANSFER",
    ]
    assert body["events"][0]["at"] == "2024-05-01T09:00:04.000000+00:00"
    status, body = await api.get("/api/v1/calls/call-99999")
    assert (status, body["error"]) == (404, "not_found")


async def test_a_database_that_is_down_is_503(api: Api) -> None:
    await api.storage.close()
    status, body = await api.get("/api/v1/calls")
    assert (status, body["error"]) == (503, "storage_unavailable")


# ---- recordings ------------------------------------------------------------


async def store_recording(api: Api, recording_id: str = "rec-1") -> tuple[RecordingRecord, bytes]:
    path = api.recordings.path_for("call-00001", T0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(bytes(range(256)) * 8)
    data = path.read_bytes()
    record = RecordingRecord(
        id=recording_id,
        call_id="call-00001",
        path=api.recordings.relative(path),
        duration_s=len(data) / 32000,
        size_bytes=len(data),
        sha256="0" * 64,
        channels=2,
        created_at=T0,
    )
    await api.storage.write_batch(recordings=[record])
    return record, data


async def test_recording_download_whole_and_ranges(api: Api) -> None:
    _, data = await store_recording(api)
    size = len(data)
    url = "/api/v1/recordings/rec-1"

    whole = await api.client.get(url)
    assert whole.status == 200
    assert whole.headers["Content-Type"] == "audio/wav"
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert "no-store" in whole.headers["Cache-Control"]
    assert await whole.read() == data

    head = await api.client.get(url, headers={"Range": "bytes=0-11"})
    assert head.status == 206
    assert head.headers["Content-Range"] == f"bytes 0-11/{size}"
    assert await head.read() == data[:12] and data[:4] == b"RIFF"

    tail = await api.client.get(url, headers={"Range": "bytes=-100"})
    assert tail.status == 206
    assert tail.headers["Content-Range"] == f"bytes {size - 100}-{size - 1}/{size}"
    assert await tail.read() == data[-100:]

    middle = await api.client.get(url, headers={"Range": f"bytes=44-{size + 50}"})
    assert middle.status == 206  # an end past the file is cut to the file
    assert await middle.read() == data[44:]

    beyond = await api.client.get(url, headers={"Range": f"bytes={size}-"})
    assert beyond.status == 416
    assert beyond.headers["Content-Range"] == f"bytes */{size}"


async def test_every_missing_recording_is_the_same_404(api: Api, tmp_path: Path) -> None:
    record, _ = await store_recording(api)
    outside = tmp_path / "elsewhere.wav"
    outside.write_bytes(b"RIFF secret")
    stray = replace(record, id="rec-out", path=str(outside))
    await api.storage.write_batch(recordings=[stray])
    (api.recordings.root / record.path).unlink()
    bodies = []
    for recording_id in ("rec-unknown", "rec-1", "rec-out"):
        response = await api.client.get(f"/api/v1/recordings/{recording_id}")
        assert response.status == 404
        bodies.append(await response.read())
    assert bodies[0] == bodies[1] == bodies[2]
    assert b"elsewhere" not in bodies[2] and b"recordings" not in bodies[2]


# ---- reports ---------------------------------------------------------------


async def test_report_endpoints(api: Api) -> None:
    calls = [make_call(n) for n in range(6)]  # waits of 7 s, talk of 48 s
    await api.storage.write_batch(calls=calls, events=make_events(calls[0]))
    window = {"since": SINCE, "until": (T0 + timedelta(hours=2)).isoformat()}

    status, body = await api.get("/api/v1/reports/queues", **window)
    assert status == 200
    assert [(q["queue"], q["service_level_s"], q["offered"]) for q in body["queues"]] == [
        ("sales", 20.0, 3),
        ("support", 20.0, 3),
    ]
    assert body["total"]["answered"] == 6
    assert body["total"]["asa_s"] == 7.0
    assert body["total"]["aht_s"] == 48.0
    assert body["total"]["service_level"] == 1.0
    status, body = await api.get("/api/v1/reports/queues", **window, service_level=5)
    assert body["total"]["service_level"] == 0.0

    status, body = await api.get("/api/v1/reports/agents", **window)
    assert status == 200
    assert [(a["agent"], a["team"], a["answered"]) for a in body["agents"]] == [
        ("1000", "blue", 2),
        ("1001", None, 2),
        ("1002", None, 2),
    ]
    assert body["agents"][0]["ring_no_answer"] == 2  # call 0 rang its agent 1000 out twice
    assert [(t["team"], t["agents"]) for t in body["teams"]] == [("blue", ["1000"])]
    status, body = await api.get("/api/v1/reports/agents", **window, team="blue")
    assert [a["agent"] for a in body["agents"]] == ["1000"]

    status, body = await api.get("/api/v1/reports/hourly", **window, queue="sales")
    assert status == 200
    assert [(h["hour"], h["arrivals"]) for h in body["hours"]] == [
        ("2024-05-01T09:00:00+00:00", 3),
        ("2024-05-01T10:00:00+00:00", 0),
    ]
    status, body = await api.get("/api/v1/reports/hourly", **window, queue="sales", interval="30")
    assert status == 200
    assert [h["hour"][11:16] for h in body["hours"]] == ["09:00", "09:30", "10:00", "10:30"]
    assert sum(h["arrivals"] for h in body["hours"]) == 3


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/api/v1/reports/hourly", {"since": "2024-01-01T00:00Z", "until": DAY}, "until"),
        ("/api/v1/reports/queues", {"service_level": "-1"}, "service_level"),
        ("/api/v1/reports/queues", {"service_level": "fast"}, "service_level"),
        ("/api/v1/reports/agents", {"queue": "sales"}, "queue"),
        ("/api/v1/reports/hourly", {"interval": "20"}, "interval"),
    ],
)
async def test_report_parameters_are_checked(
    api: Api, path: str, params: dict[str, str], parameter: str
) -> None:
    status, body = await api.get(path, **params)
    assert (status, body["parameter"]) == (400, parameter)


# ---- reach: what an agent and a team lead may see ------------------------------------


async def test_agents_and_team_leads_see_only_their_calls(api: Api) -> None:
    calls = [make_call(n) for n in range(9)]  # agents 1000, 1001, 1002 in turn
    calls[8] = make_call(8, agent=None, answered_at=None, disposition=Disposition.ABANDONED)
    await api.storage.write_batch(calls=calls)
    window = {"since": SINCE, "until": DAY}
    everyone = [c.call_id for c in calls]
    assert await api.calls(**window) == everyone  # the supervisor

    api.act_as(principal(Role.AGENT, "1001"))
    mine = [c.call_id for c in calls if c.agent == "1001"]
    assert await api.calls(**window) == mine
    assert await api.calls(**window, agent="1002") == []  # asking for another is no way round
    assert (await api.get("/api/v1/calls/call-00001"))[0] == 200
    other, unknown = await api.get("/api/v1/calls/call-00002"), await api.get("/api/v1/calls/x")
    assert other == unknown and other[0] == 404  # another's call looks like no call

    api.act_as(principal(Role.TEAM_LEAD, "lead", "red"))
    assert await api.calls(**window) == [c.call_id for c in calls if c.agent in ("1001", "1002")]
    assert (await api.get("/api/v1/calls/call-00008"))[0] == 404  # abandoned: no agent, no team

    api.act_as(principal(Role.TEAM_LEAD, "lead", "blue"))
    status, body = await api.get("/api/v1/reports/agents", **window)
    assert status == 200
    assert [row["agent"] for row in body["agents"]] == ["1000"]
    assert [row["team"] for row in body["teams"]] == ["blue"]


async def test_a_team_lead_hears_only_the_team_s_recordings(api: Api) -> None:
    await api.storage.write_batch(calls=[make_call(1)])  # agent 1001, team red
    await store_recording(api)
    api.act_as(principal(Role.TEAM_LEAD, "lead", "red"))
    assert (await api.client.get("/api/v1/recordings/rec-1")).status == 200
    api.act_as(principal(Role.TEAM_LEAD, "lead", "blue"))
    refused = await api.client.get("/api/v1/recordings/rec-1")
    unknown = await api.client.get("/api/v1/recordings/rec-unknown")
    assert refused.status == unknown.status == 404
    assert await refused.read() == await unknown.read()


# ---- CSV downloads ---------------------------------------------------------------------


async def test_calls_download_as_csv_every_page_and_no_formula(api: Api) -> None:
    calls = [make_call(n) for n in range(1203)]  # more than one storage page
    calls[7] = make_call(7, caller_name='=HYPERLINK("http://evil")')
    await api.storage.write_batch(calls=calls)
    response = await api.client.get(
        "/api/v1/calls", params={"since": SINCE, "until": DAY, "format": "csv"}
    )
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [r["call_id"] for r in rows] == [c.call_id for c in calls]
    assert rows[7]["caller_name"].startswith("'=")  # a spreadsheet shows it, never runs it
    assert rows[3]["ring_attempts"] == "0" and rows[3]["queue"] == calls[3].queue

    api.act_as(principal(Role.AGENT, "1001"))
    mine = await api.client.get(
        "/api/v1/calls", params={"since": SINCE, "until": DAY, "format": "csv"}
    )
    agent_rows = list(csv.DictReader(io.StringIO(await mine.text())))
    assert {r["agent"] for r in agent_rows} == {"1001"}  # the reach holds in CSV too


async def test_reports_download_as_csv(api: Api) -> None:
    calls = [make_call(n) for n in range(6)]
    await api.storage.write_batch(calls=calls)
    window = {"since": SINCE, "until": (T0 + timedelta(hours=2)).isoformat(), "format": "csv"}
    for path, key in (("queues", "queue"), ("agents", "agent"), ("hourly", "hour")):
        response = await api.client.get(f"/api/v1/reports/{path}", params=window)
        assert response.status == 200, await response.text()
        rows = list(csv.DictReader(io.StringIO(await response.text())))
        assert rows and all(row[key] for row in rows), (path, rows)
        assert "offered" in rows[0] and "service_level" in rows[0]
    status, body = await api.get("/api/v1/reports/queues", since=SINCE, format="xml")
    assert status == 400 and body["parameter"] == "format"
