"""The live event stream on a running engine: a real call followed over a WebSocket from
arrival to wrap-up (with the screen pop), resuming after a disconnect without a gap,
Server-Sent Events with Last-Event-ID, and each viewer seeing only what they reach."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .conftest import RunningEngine, agent_password
from .test_acd_sipp import Sipp, acd_config, login_all, scenario_copy, sipp_factory  # noqa: F401

EngineFactory = Callable[[Path], RunningEngine]


class Follower:
    """A WebSocket client of /api/v1/events/ws, as a wallboard would be."""

    def __init__(self, engine: RunningEngine, token: str, query: str = "") -> None:
        self.url = f"ws://127.0.0.1:{engine.http_port}/api/v1/events/ws{query}"
        self.token = token
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> Follower:
        self.session = aiohttp.ClientSession()
        headers = {"Authorization": f"Bearer {self.token}"}
        self.ws = await self.session.ws_connect(self.url, headers=headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.ws is not None and self.session is not None
        await self.ws.close()
        await self.session.close()

    async def next(self, timeout: float = 30.0) -> dict[str, Any]:
        assert self.ws is not None
        message = await self.ws.receive(timeout=timeout)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        body: dict[str, Any] = json.loads(message.data)
        return body

    async def until(
        self, done: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> list[dict[str, Any]]:
        """Every message up to and including the first for which ``done`` is true."""
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while True:
                seen.append(await self.next(timeout))
                if done(seen[-1]):
                    return seen


def test_a_call_followed_from_arrival_to_wrap_up_with_the_screen_pop(
    tmp_path: Path,
    engine_factory: EngineFactory,
    sipp_factory: Callable[[RunningEngine], Sipp],  # noqa: F811
) -> None:
    engine = engine_factory(acd_config(tmp_path, queues={"q": "{skills: {}, wrap_up: 1}"}))
    sipp = sipp_factory(engine)
    sipp.agent("1001", scenario_copy(tmp_path, "agent_uas.xml", t1000=200, t3000=500))

    async def follow() -> list[dict[str, Any]]:
        async with Follower(engine, engine.token) as board:
            hello = await board.next()
            assert hello["type"] == "hello" and hello["seq"] >= 0
            await asyncio.to_thread(login_all, engine, ["1001"])
            callers = sipp.callers("200", 1)
            seen = await board.until(
                lambda e: e.get("type") == "AgentStateChanged" and e["old"] == "wrap_up"
            )
            assert await asyncio.to_thread(callers.wait, 60) == 0, callers.describe()
            return seen

    seen = asyncio.run(follow())
    kinds = [e["type"] for e in seen]
    for kind in (
        "CallArrived",
        "QueueJoined",
        "AgentOffered",
        "RingAttempt",
        "QueueLeft",
        "CallEnded",
    ):
        assert kind in kinds, kinds
    assert kinds.index("CallArrived") < kinds.index("AgentOffered") < kinds.index("CallEnded")
    seqs = [e["seq"] for e in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    pop = next(e for e in seen if e["type"] == "AgentOffered")
    assert pop["agent"] == "1001" and pop["queue"] == "q" and pop["did"] == "200"
    assert pop["caller"] and pop["caller"].endswith("6789")
    states = [(e["old"], e["new"]) for e in seen if e["type"] == "AgentStateChanged"]
    assert ("on_call", "wrap_up") in states and states[-1] == ("wrap_up", "available"), states
    ended = next(e for e in seen if e["type"] == "CallEnded")
    assert ended["disposition"] == "answered" and ended["agent"] == "1001"


def test_a_client_that_reconnects_resumes_without_a_gap(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    engine = engine_factory(acd_config(tmp_path))

    async def run() -> None:
        async with Follower(engine, engine.token) as board:
            hello = await board.next()
            epoch = hello["epoch"]
            await asyncio.to_thread(engine.post, "/api/v1/agents/1001/login")
            (last,) = [e for e in await board.until(lambda e: e.get("type") == "AgentStateChanged")]
        # Away: three changes happen while nobody listens.
        for action in ("pause", "unpause", "logout"):
            await asyncio.to_thread(engine.post, f"/api/v1/agents/1001/{action}")
        query = f"?since={last['seq']}&epoch={epoch}"
        async with Follower(engine, engine.token, query) as board:
            assert (await board.next())["type"] == "hello"
            missed = [await board.next() for _ in range(3)]
        assert [e["seq"] for e in missed] == [last["seq"] + 1, last["seq"] + 2, last["seq"] + 3]
        assert [e["new"] for e in missed] == ["paused", "available", "logged_out"]
        # A number from another run of the engine is a gap: refetch state.
        async with Follower(engine, engine.token, f"?since=1&epoch={'0' * 12}") as board:
            assert (await board.next())["type"] == "hello"
            assert (await board.next())["type"] == "gap"

    asyncio.run(run())


def test_each_viewer_sees_only_what_they_reach(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    engine = engine_factory(acd_config(tmp_path))
    agent = engine.sign_in("1001", agent_password("1001"))

    async def run() -> list[dict[str, Any]]:
        async with Follower(engine, agent) as own:
            await own.next()  # hello
            for user in ("1002", "1001"):
                await asyncio.to_thread(engine.post, f"/api/v1/agents/{user}/login")
            return [await own.next()]

    (first,) = asyncio.run(run())
    assert first["type"] == "AgentStateChanged" and first["agent"] == "1001"  # not 1002's


def test_server_sent_events_resume_from_last_event_id(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    engine = engine_factory(acd_config(tmp_path))
    for action in ("login", "pause"):
        engine.post(f"/api/v1/agents/1002/{action}")

    async def run() -> list[tuple[str, dict[str, Any]]]:
        headers = {"Authorization": f"Bearer {engine.token}", "Last-Event-ID": "0"}
        url = f"http://127.0.0.1:{engine.http_port}/api/v1/events?types=AgentStateChanged"
        got: list[tuple[str, dict[str, Any]]] = []
        async with (
            aiohttp.ClientSession() as session,
            session.get(url, headers=headers) as response,
        ):
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            event_id = ""
            async with asyncio.timeout(20):
                async for raw in response.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("id: "):
                        event_id = line[4:]
                    elif line.startswith("data: "):
                        got.append((event_id, json.loads(line[6:])))
                        event_id = ""
                        if len(got) == 3:
                            break
        return got

    got = asyncio.run(run())
    (_, hello), *changes = got
    assert hello["type"] == "hello"
    assert [body["new"] for _, body in changes] == ["available", "paused"]
    assert all(event_id == f"{body['seq']}@{hello['epoch']}" for event_id, body in changes)


@pytest.mark.parametrize("query", ["?types=Nonsense", "?since=x", "?colour=red"])
def test_bad_stream_parameters_are_a_400(
    tmp_path: Path, engine_factory: EngineFactory, query: str
) -> None:
    engine = engine_factory(acd_config(tmp_path))
    status, body = engine.request("GET", f"/api/v1/events{query}")
    assert status == 400 and isinstance(body, dict) and body["error"] == "bad_parameter"
    assert engine.request("GET", "/api/v1/events", token=None)[0] == 401
