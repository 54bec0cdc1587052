"""Webhooks on a running engine: a receiver that is down while events happen and the
engine restarts in between gets every event once, in order, signed; a 500 is retried."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from acd.config import load_config

from .conftest import RunningEngine, free_port, start_engine
from .test_acd_sipp import acd_config

SECRET = "webhook-secret-0123456789"


class Receiver:
    """An HTTP receiver on 127.0.0.1 in its own thread; answers 500 to the first POST."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.refused = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.refused == 0:
            self.refused += 1
            return web.Response(status=500)
        self.received.append((dict(request.headers), body))
        return web.Response(status=204)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10), "the receiver did not start"

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def failed_once(engine: RunningEngine) -> bool:
    rows = engine.http_json("/api/v1/webhooks/deliveries")["deliveries"]
    assert isinstance(rows, list)
    return any(row["error"] for row in rows)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_every_event_arrives_once_in_order_signed_across_an_outage_and_a_restart(
    tmp_path: Path,
) -> None:
    port = free_port()
    extra = (
        "webhooks:\n"
        f'  - {{name: crm, url: "http://127.0.0.1:{port}/hook", events: [AgentStateChanged], '
        f'secret: "{SECRET}", retry_max: 1}}'
    )
    config = acd_config(tmp_path, extra=extra)
    assert load_config(config).webhooks[0].name == "crm"
    receiver = Receiver(port)
    engines: list[RunningEngine] = []
    try:
        engine = start_engine(config, tmp_path)
        engines.append(engine)
        for action in ("login", "pause", "unpause"):
            engine.post(f"/api/v1/agents/1001/{action}")
        wait_until(lambda: failed_once(engine), "a failed delivery to the receiver that is down")
        assert engine.stop(signal.SIGTERM) == 0, engine.log()
        engine = start_engine(config, tmp_path)  # the same data directory
        engines.append(engine)
        engine.post("/api/v1/agents/1001/login")
        engine.post("/api/v1/agents/1001/logout")
        receiver.start()
        wait_until(lambda: len(receiver.received) >= 5, "five deliveries", timeout=60)
        listing = engine.http_json("/api/v1/webhooks")
        assert listing["webhooks"][0]["pending"] == 0, listing  # type: ignore[index]
    finally:
        for running in engines:
            running.stop()
        receiver.stop()
    assert receiver.refused == 1  # the 500 was retried, not skipped
    entries = []
    for headers, body in receiver.received:
        stamp = headers["Webhook-Timestamp"]
        expected = hmac.new(
            SECRET.encode(), f"{headers['Webhook-Id']}.{stamp}.".encode() + body, hashlib.sha256
        ).hexdigest()
        assert headers["Webhook-Signature"] == f"v1={expected}"
        assert abs(int(stamp) - time.time()) < 300
        entry: dict[str, Any] = json.loads(body)
        assert str(entry["id"]) == headers["Webhook-Id"]
        entries.append(entry)
    assert [e["id"] for e in entries] == [1, 2, 3, 4, 5]  # once each, in order
    assert {e["type"] for e in entries} == {"AgentStateChanged"}
    states = [(e["data"]["old"], e["data"]["new"]) for e in entries]
    assert states == [
        ("logged_out", "available"),
        ("available", "paused"),
        ("paused", "available"),
        ("logged_out", "available"),
        ("available", "logged_out"),
    ]
    assert SECRET not in engines[0].log() + engines[1].log()


def test_the_configuration_knows_every_event_type() -> None:
    from acd.config._schema import _EVENT_TYPES
    from acd.events import EngineEvent

    assert set(_EVENT_TYPES) == {t.__name__ for t in EngineEvent.__args__}
