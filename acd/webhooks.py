"""Webhooks: engine events POSTed to subscribers, signed, in order, from a durable outbox.

Each event a subscription wants is appended to an outbox journal in the data
directory (``webhooks/outbox.jsonl``, group-committed with fsync off the
event loop) under a number that keeps counting across restarts. One worker
per subscription delivers the entries in order, one POST at a time, and
retries a failed one with growing back-off (0.5 s doubling up to the
subscription's ``retry_max``) until the receiver takes it with a 2xx; only
then does it move on. The number of the last delivered entry is saved per
subscription (``webhooks/cursors.json``, written aside and renamed), so a
restart or a receiver outage loses nothing and repeats at most the one
entry whose answer was lost: receivers deduplicate on ``Webhook-Id``.

Every POST carries ``Webhook-Id`` (the entry's number), ``Webhook-Timestamp``
(Unix seconds) and ``Webhook-Signature: v1=<hex>``, the HMAC-SHA256 with the
subscription's secret of ``"<id>.<timestamp>.<body>"``; a receiver checks it
and refuses timestamps more than a few minutes old. The last 1,000 attempts
are kept for ``GET /api/v1/webhooks/deliveries``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from .events import EngineEvent, event_body
from .storage import Journal

__all__ = ["Subscription", "WebhookOutbox", "sign"]

log = logging.getLogger(__name__)

COMPACT_AFTER = 10_000
"""Delivered entries the outbox keeps before it rewrites itself without them."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """Where to POST which events (empty ``events``: every type), and the signing key."""

    name: str
    url: str
    events: frozenset[str]
    secret: str
    retry_max: float = 60.0
    timeout: float = 10.0

    def wants(self, kind: str) -> bool:
        return not self.events or kind in self.events


def sign(secret: str, entry_id: int, timestamp: int, body: bytes) -> str:
    """The ``Webhook-Signature`` value for one delivery."""
    message = f"{entry_id}.{timestamp}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class WebhookOutbox:
    """The outbox journal, the cursors and one delivery worker per subscription."""

    def __init__(
        self,
        directory: Path,
        subscriptions: Sequence[Subscription],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.subscriptions = list(subscriptions)
        self.clock = clock
        self.journal = Journal(directory / "outbox.jsonl")
        self.cursors_path = directory / "cursors.json"
        self.cursors: dict[str, int] = {}
        self.next_id = 1
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=1000)
        self.delivered = 0
        self.failed_attempts = 0
        self._wake: dict[str, asyncio.Event] = {}
        self._offsets: dict[str, int] = {}
        self._lock = asyncio.Lock()  # reading vs. compacting the journal
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    # ---- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        if not self.subscriptions:
            return
        await self.journal.open()
        offset, last = 0, 0
        while True:
            entries, offset = await self.journal.read(offset, 1000)
            if not entries:
                break
            last = int(entries[-1].get("id", last))
        self.next_id = last + 1
        with contextlib.suppress(FileNotFoundError, ValueError):
            saved = json.loads(self.cursors_path.read_text())
            self.cursors = {k: int(v) for k, v in saved.items() if isinstance(v, int)}
        self._session = aiohttp.ClientSession()
        loop = asyncio.get_running_loop()
        for sub in self.subscriptions:
            # A new subscription starts with what happens from now on.
            self.cursors.setdefault(sub.name, last)
            self._wake[sub.name] = asyncio.Event()
            self._offsets[sub.name] = 0
            self._tasks.append(loop.create_task(self._worker(sub), name=f"webhook {sub.name}"))
        await asyncio.to_thread(self._save_cursors, dict(self.cursors))
        pending = sum(max(0, last - c) for c in self.cursors.values())
        log.info(
            "webhooks: %d subscriptions, %d entries waiting for delivery",
            len(self.subscriptions),
            pending,
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.journal.close()

    # ---- the outbox ----------------------------------------------------------

    def on_event(self, event: EngineEvent) -> None:
        """The bus subscriber: append what some subscription wants; never waits."""
        kind = type(event).__name__
        if not self._tasks or not any(s.wants(kind) for s in self.subscriptions):
            return
        entry = {"id": self.next_id, "type": kind, "at": self.clock(), "data": event_body(event)}
        self.next_id += 1
        self.journal.append_soon(entry)
        for sub in self.subscriptions:
            if sub.wants(kind):
                self._wake[sub.name].set()

    def _save_cursors(self, cursors: dict[str, int]) -> None:
        aside = self.cursors_path.with_name("cursors.json.new")
        with open(aside, "w") as out:
            json.dump(cursors, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(aside, self.cursors_path)

    async def _next_batch(self, sub: Subscription) -> list[dict[str, Any]]:
        async with self._lock:
            entries, offset = await self.journal.read(self._offsets[sub.name], 100)
            self._offsets[sub.name] = offset
        cursor = self.cursors[sub.name]
        return [e for e in entries if int(e.get("id", 0)) > cursor and sub.wants(str(e["type"]))]

    async def _worker(self, sub: Subscription) -> None:
        wake = self._wake[sub.name]
        while True:
            wake.clear()
            batch = await self._next_batch(sub)
            if not batch:
                await self.journal.settle()  # what was appended is readable now
                batch = await self._next_batch(sub)
            if not batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 5.0)
                await self._compact()
                continue
            for entry in batch:
                await self._deliver(sub, entry)
                self.cursors[sub.name] = int(entry["id"])
                await asyncio.to_thread(self._save_cursors, dict(self.cursors))

    async def _deliver(self, sub: Subscription, entry: dict[str, Any]) -> None:
        """POST one entry until the receiver takes it."""
        body = json.dumps(entry, separators=(",", ":")).encode()
        delay = 0.5
        attempt = 0
        while True:
            attempt += 1
            stamp = int(self.clock())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "acd-engine webhooks",
                "Webhook-Id": str(entry["id"]),
                "Webhook-Timestamp": str(stamp),
                "Webhook-Signature": sign(sub.secret, int(entry["id"]), stamp, body),
            }
            started = time.monotonic()
            status: int | None = None
            problem: str | None = None
            assert self._session is not None
            try:
                async with self._session.post(
                    sub.url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(sub.timeout)
                ) as response:
                    status = response.status
                    await response.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            ok = status is not None and 200 <= status < 300
            self.deliveries.append(
                {
                    "subscription": sub.name,
                    "id": entry["id"],
                    "type": entry["type"],
                    "attempt": attempt,
                    "status": status,
                    "error": problem,
                    "at": self.clock(),
                    "seconds": round(time.monotonic() - started, 3),
                }
            )
            if ok:
                self.delivered += 1
                return
            self.failed_attempts += 1
            if attempt == 1 or attempt % 20 == 0:
                log.warning(
                    "webhook %s: delivery of #%s failed (%s); retrying",
                    sub.name,
                    entry["id"],
                    problem or f"HTTP {status}",
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, sub.retry_max)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/webhooks", self._list),
            web.get("/api/v1/webhooks/deliveries", self._deliveries),
        ]

    async def _list(self, request: web.Request) -> web.Response:
        last = self.next_id - 1
        rows = [
            {
                "name": sub.name,
                "url": sub.url,
                "events": sorted(sub.events),
                "delivered_through": self.cursors.get(sub.name, last),
                "pending": max(0, last - self.cursors.get(sub.name, last)),
            }
            for sub in self.subscriptions
        ]
        return web.json_response({"webhooks": rows, "last_id": last})

    async def _deliveries(self, request: web.Request) -> web.Response:
        """The last attempts, newest first (``?subscription=`` for one)."""
        name = request.query.get("subscription")
        rows = [d for d in reversed(self.deliveries) if name is None or d["subscription"] == name]
        return web.json_response({"deliveries": rows})

    async def _compact(self) -> None:
        """Rewrite the outbox without the entries every subscription has had."""
        if self.journal.entries < COMPACT_AFTER:
            return
        done = min(self.cursors.values(), default=0)
        async with self._lock:
            await self.journal.settle()
            kept: list[dict[str, Any]] = []
            offset = 0
            while True:
                entries, offset = await self.journal.read(offset, 1000)
                if not entries:
                    break
                kept += [e for e in entries if int(e.get("id", 0)) > done]
            await self.journal.rewrite(kept)
            for name in self._offsets:
                self._offsets[name] = 0
        log.info("webhooks: outbox compacted to %d entries", len(kept))
