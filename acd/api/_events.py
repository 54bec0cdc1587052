"""Live events over HTTP: a WebSocket and a Server-Sent Events stream, resumable.

``GET /api/v1/events/ws`` (one JSON object per text message) and
``GET /api/v1/events`` (``text/event-stream``) carry the engine's events
(``acd.events``) as they happen: calls arriving and ending, queue joins and
leaves, rings and their outcome, agents' state changes, and ``AgentOffered``,
the screen pop, when an agent's phones start ringing.

Every event has a sequence number, counted from 1 since the engine
started, and the stream's ``epoch`` (an id of this start). A client that
reconnects passes the last number it saw (``since=`` or SSE's
``Last-Event-ID``) and gets everything after it from a replay buffer of
the last ``BUFFER`` events; if the engine restarted or the gap is older than
the buffer, the first message is ``{"type": "gap"}`` and the client should
fetch state afresh (``/api/v1/agents``, ``/api/v1/queues``).

Each viewer sees what their role reaches: an event about an agent goes to
those who reach that agent; one about a call with no agent (an arrival, a
queue join) only to those who reach every agent. Filters narrow further:
``queue=``, ``agent=``, ``team=``, ``types=`` (comma-separated event types).

A client that reads too slowly is disconnected, not buffered without end:
its queue of ``CLIENT_QUEUE`` pending events overflows, it gets a final
``{"type": "overflow"}`` message when possible, and resumes from its last
sequence number.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping

from aiohttp import WSMsgType, web

from ..events import EngineEvent, EventBus, event_body
from ..identity import Principal
from ._params import Params
from ._principal import principal_of

__all__ = ["BUFFER", "CLIENT_QUEUE", "EventStream"]

log = logging.getLogger(__name__)

BUFFER = 10_000
"""Events kept for clients that reconnect."""
CLIENT_QUEUE = 1_000
"""Events waiting for one client before it is disconnected as too slow."""
KEEPALIVE_S = 15.0
"""An SSE comment (or a WebSocket ping) this often, so proxies keep the line open."""

_ALL_TYPES = frozenset(t.__name__ for t in EngineEvent.__args__)


class _Item:
    """One numbered event: its type, agent and queue for filtering, and its JSON.

    The JSON is made when a client first needs it, not when the event
    happens: with nobody watching, numbering an event costs a few attribute
    reads on the call path, not an encoding.
    """

    __slots__ = ("_text", "agent", "at", "epoch", "event", "queue", "seq", "type")

    def __init__(self, seq: int, epoch: str, at: float, event: EngineEvent) -> None:
        self.seq = seq
        self.epoch = epoch
        self.at = at
        self.event = event
        self.type = type(event).__name__
        agent = getattr(event, "agent", None)
        queue = getattr(event, "queue", None)
        self.agent: str | None = agent if isinstance(agent, str) else None
        self.queue: str | None = queue if isinstance(queue, str) else None
        self._text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            head = {"seq": self.seq, "epoch": self.epoch, "type": self.type, "at": self.at}
            self._text = json.dumps({**head, **event_body(self.event)})
        return self._text


@dataclasses.dataclass(slots=True)
class _Filter:
    principal: Principal
    queue: str | None
    agents: frozenset[str] | None  # agent= or team=, narrowed to the reach
    types: frozenset[str]

    def wants(self, item: _Item) -> bool:
        if item.type not in self.types:
            return False
        if self.queue is not None and item.queue != self.queue:
            return False
        if item.agent is None:
            return self.principal.agents is None and self.agents is None
        if not self.principal.reaches(item.agent):
            return False
        return self.agents is None or item.agent in self.agents


class _Client:
    def __init__(self, wanted: _Filter) -> None:
        self.filter = wanted
        self.queue: asyncio.Queue[_Item | None] = asyncio.Queue(CLIENT_QUEUE)
        self.overflowed = False

    def offer(self, item: _Item) -> None:
        if self.overflowed or not self.filter.wants(item):
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True
            # Room for the end marker: drop the oldest pending event.
            self.queue.get_nowait()
            self.queue.put_nowait(None)


class EventStream:
    """Numbers the bus's events, keeps the last ``BUFFER`` and fans them out."""

    def __init__(
        self,
        bus: EventBus,
        team_of: Callable[[], Mapping[str, str | None]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.epoch = secrets.token_hex(6)
        self.team_of = team_of
        self.clock = clock
        self.seq = 0
        self.buffer: deque[_Item] = deque(maxlen=BUFFER)
        self.clients: set[_Client] = set()
        self.unsubscribe = bus.subscribe(self._on_event)

    def _on_event(self, event: EngineEvent) -> None:
        self.seq += 1
        item = _Item(self.seq, self.epoch, self.clock(), event)
        self.buffer.append(item)
        for client in self.clients:
            client.offer(item)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/events", self.sse),
            web.get("/api/v1/events/ws", self.websocket),
        ]

    # ---- requests ------------------------------------------------------------

    def _filter(self, request: web.Request, params: Params) -> _Filter:
        principal = principal_of(request)
        agents: frozenset[str] | None = None
        agent = params.text("agent")
        team = params.text("team")
        if agent is not None:
            agents = frozenset({agent})
        if team is not None:
            members = frozenset(a for a, t in self.team_of().items() if t == team)
            agents = members if agents is None else agents & members
        types = _ALL_TYPES
        wanted = params.text("types")
        if wanted is not None:
            asked = frozenset(t.strip() for t in wanted.split(",") if t.strip())
            unknown = sorted(asked - _ALL_TYPES)
            if unknown:
                params.bad(
                    "types", f"unknown {', '.join(unknown)}; known: {', '.join(sorted(_ALL_TYPES))}"
                )
            types = asked
        return _Filter(principal, params.text("queue"), agents, types)

    def _since(self, request: web.Request, params: Params) -> tuple[int | None, str | None]:
        """The number to resume after (None: live only) and the epoch it belongs to."""
        text = params.text("since") or request.headers.get("Last-Event-ID")
        epoch = params.text("epoch")
        if text is None:
            return None, epoch
        seq_text, _, tail = text.partition("@")  # SSE ids are "seq@epoch"
        try:
            seq = int(seq_text)
        except ValueError:
            params.bad("since", "not a sequence number")
        if seq < 0:
            params.bad("since", "must be 0 or more")
        return seq, tail or epoch

    def _join(
        self, wanted: _Filter, since: int | None, epoch: str | None
    ) -> tuple[_Client, list[tuple[str, int | None]]]:
        """Register a client; the messages to send first (hello, a gap notice or the
        replay), each with its sequence number when it is an event."""
        client = _Client(wanted)
        first: list[tuple[str, int | None]] = []
        if since is not None:
            oldest = self.buffer[0].seq if self.buffer else self.seq + 1
            if (
                (epoch is not None and epoch != self.epoch)
                or since > self.seq
                or since < oldest - 1
            ):
                first.append(
                    (json.dumps({"type": "gap", "epoch": self.epoch, "seq": self.seq}), None)
                )
                since = None
            else:
                first += [(i.text, i.seq) for i in self.buffer if i.seq > since and wanted.wants(i)]
        first.insert(0, (json.dumps({"type": "hello", "epoch": self.epoch, "seq": self.seq}), None))
        self.clients.add(client)
        return client, first

    async def sse(self, request: web.Request) -> web.StreamResponse:
        params = Params(request, ("since", "epoch", "queue", "agent", "team", "types"))
        wanted = self._filter(request, params)
        since, epoch = self._since(request, params)
        client, first = self._join(wanted, since, epoch)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        try:
            await response.prepare(request)
            for text, seq in first:
                await response.write(_sse(text, None if seq is None else f"{seq}@{self.epoch}"))
            while True:
                try:
                    item = await asyncio.wait_for(client.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if item is None:
                    await response.write(_sse(json.dumps({"type": "overflow"})))
                    break
                await response.write(_sse(item.text, f"{item.seq}@{self.epoch}"))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.clients.discard(client)
        return response

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        params = Params(request, ("since", "epoch", "queue", "agent", "team", "types"))
        wanted = self._filter(request, params)
        since, epoch = self._since(request, params)
        ws = web.WebSocketResponse(heartbeat=KEEPALIVE_S, max_msg_size=4096)
        await ws.prepare(request)
        client, first = self._join(wanted, since, epoch)
        reader = asyncio.get_running_loop().create_task(_drain(ws))
        try:
            for text, _ in first:
                await ws.send_str(text)
            while not ws.closed:
                getter = asyncio.ensure_future(client.queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break  # the client closed
                item = getter.result()
                if item is None:
                    await ws.send_str(json.dumps({"type": "overflow"}))
                    break
                await ws.send_str(item.text)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.clients.discard(client)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            await ws.close()
        return ws

    async def close(self) -> None:
        """Unsubscribe and end every stream (the engine is stopping)."""
        self.unsubscribe()
        for client in list(self.clients):
            with contextlib.suppress(asyncio.QueueFull):
                client.queue.put_nowait(None)


def _sse(data: str, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}data: {data}\n\n".encode()


async def _drain(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the client sends, until it closes."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
