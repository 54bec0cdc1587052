"""The WebSocket listener of sip/transport.py on loopback, with a recording sink.

Its timers (handshake, closing handshake, pings) are set short here; every
wait is an event or a receive with a timeout.
"""

from __future__ import annotations

import asyncio

import aiohttp

from sip.events import Address
from sip.transport import TransportSet, WebSocketPolicy

TIMEOUT = 5.0


class Sink:
    """Records what the transports deliver; ``changed`` is set on each delivery."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, Address]] = []
        self.errors: list[Address] = []
        self.closed: list[Address] = []
        self.changed = asyncio.Event()

    def message_received(self, data: bytes, source: Address) -> None:
        self.messages.append((data, source))
        self.changed.set()

    def transport_error(self, destination: Address) -> None:
        self.errors.append(destination)
        self.changed.set()

    def connection_closed(self, peer: Address) -> None:
        self.closed.append(peer)
        self.changed.set()

    async def until(self, predicate: object) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not predicate():  # type: ignore[operator]
                self.changed.clear()
                await self.changed.wait()


async def listening(policy: WebSocketPolicy, size: int = 4096) -> tuple[TransportSet, Sink, int]:
    sink = Sink()
    transports = TransportSet(sink, size)
    local = await transports.listen_websocket("127.0.0.1", 0, "WS", None, policy)
    assert transports.local_address("WS") == local
    return transports, sink, local.port


async def test_messages_go_both_ways_and_a_close_is_reported() -> None:
    transports, sink, port = await listening(WebSocketPolicy(ping_interval=0))
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"http://127.0.0.1:{port}/", protocols=("sip",)) as ws,
        ):
            await ws.send_str("OPTIONS sip:x SIP/2.0\r\n\r\n")
            await ws.send_bytes(b"OPTIONS sip:y SIP/2.0\r\n\r\n")
            await sink.until(lambda: len(sink.messages) == 2)
            peer = sink.messages[0][1]
            assert peer == Address("WS", "127.0.0.1", ws.get_extra_info("sockname")[1])
            transports.send(b"SIP/2.0 200 OK\r\n\r\n", peer)
            answer = await ws.receive(timeout=TIMEOUT)
            assert answer.type is aiohttp.WSMsgType.TEXT and answer.data == "SIP/2.0 200 OK\r\n\r\n"
        await sink.until(lambda: sink.closed == [peer])
        # Nobody can connect to a browser: with its WebSocket gone, sending fails.
        transports.send(b"OPTIONS sip:z SIP/2.0\r\n\r\n", peer)
        assert sink.errors == [peer]
    finally:
        await transports.close()


async def test_a_handshake_that_never_ends_is_dropped() -> None:
    transports, sink, port = await listening(WebSocketPolicy(handshake_timeout=0.2))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        async with asyncio.timeout(TIMEOUT):
            assert await reader.read() == b""  # the engine hung up
        writer.close()
        assert sink.closed == []  # it never was a WebSocket
    finally:
        await transports.close()


async def test_our_close_gives_up_on_a_peer_that_never_answers_it() -> None:
    transports, sink, port = await listening(WebSocketPolicy(close_timeout=0.2), size=1024)
    try:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(
                f"http://127.0.0.1:{port}/", protocols=("sip",), autoclose=False
            )
            await ws.send_str("x" * 2000)
            close = await ws.receive(timeout=TIMEOUT)
            assert close.type is aiohttp.WSMsgType.CLOSE and close.data == 1009
            # autoclose is off, so no answering close: the listener drops TCP itself.
            await sink.until(lambda: len(sink.closed) == 1)
            await ws.close()
    finally:
        await transports.close()


async def test_shutdown_closes_with_going_away_and_reports_nothing() -> None:
    transports, sink, port = await listening(WebSocketPolicy(ping_interval=0))
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://127.0.0.1:{port}/", protocols=("sip",)) as ws,
    ):
        await ws.send_str("\r\n\r\n")  # a keep-alive: answered here, never delivered
        pong = await ws.receive(timeout=TIMEOUT)
        assert pong.data == "\r\n"
        await transports.close()
        close = await ws.receive(timeout=TIMEOUT)
        assert close.type is aiohttp.WSMsgType.CLOSE and close.data == 1001
    assert sink.messages == [] and sink.closed == []
