"""Thin asyncio transports for SIP: UDP, TCP, TLS (RFC 3261 section 18), WS and WSS (RFC 7118).

They move bytes and nothing else: every datagram, or every message framed out
of a stream or a WebSocket, goes to ``MessageSink.message_received`` with the
peer's ``Address``; the sink (the endpoint) parses and decides. Connections
are kept by peer address so responses and in-dialog requests go back over the
connection a phone opened, which is the only way through its NAT, and for a
browser the only way at all: nobody can open a WebSocket to a browser.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Protocol, cast

from .events import Address
from .framing import FramingError, KeepAlive, StreamFramer
from .websocket import (
    CloseCode,
    ConnectionFailed,
    HandshakeCompleted,
    HandshakeRefused,
    MessageReceived,
    WebSocketServer,
    WsState,
    is_keepalive,
)

__all__ = [
    "WEBSOCKET_TRANSPORTS",
    "MessageSink",
    "StreamListener",
    "TransportSet",
    "UdpListener",
    "WebSocketListener",
    "WebSocketPolicy",
]

WEBSOCKET_TRANSPORTS = ("WS", "WSS")

log = logging.getLogger(__name__)

# RFC 5626 4.4.1: a double-CRLF ping is answered with a single CRLF pong.
_PONG = b"\r\n"


class MessageSink(Protocol):
    """What the transports deliver to."""

    def message_received(self, data: bytes, source: Address) -> None:
        """One datagram or one framed stream message arrived."""

    def transport_error(self, destination: Address) -> None:
        """Sending to ``destination`` failed (connection refused, reset, unreachable)."""

    def connection_closed(self, peer: Address) -> None:
        """A WebSocket a peer opened is gone: nothing reaches ``peer`` any more."""


def _peer(transport_name: str, addr: tuple[object, ...]) -> Address:
    host = str(addr[0])
    if "%" in host:  # scope id of a link-local IPv6 address
        host = host.split("%", 1)[0]
    return Address(transport_name, host, int(addr[1]))  # type: ignore[call-overload]


class UdpListener(asyncio.DatagramProtocol):
    """One bound UDP socket."""

    def __init__(self, sink: MessageSink, max_message_size: int) -> None:
        self.sink = sink
        self.max_message_size = max_message_size
        self.transport: asyncio.DatagramTransport | None = None
        self.local: Address | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's own datagram transports do not all subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.local = _peer("UDP", transport.get_extra_info("sockname"))

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if len(data) > self.max_message_size:
            log.warning("dropping %d-byte datagram from %s: over the size cap", len(data), addr)
            return
        try:
            self.sink.message_received(data, _peer("UDP", addr))
        except Exception:
            # The sink must not raise; if it does, keep the socket alive.
            log.exception("error handling a datagram from %s", addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable surfaces here without the address on most platforms.
        log.debug("UDP error: %s", exc)

    def send(self, data: bytes, destination: Address) -> None:
        """Send one datagram (silently dropped if the socket is closed)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, (destination.host, destination.port))


class _StreamConnection(asyncio.Protocol):
    def __init__(self, owner: StreamListener) -> None:
        self.owner = owner
        self.framer = StreamFramer(owner.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.peer: Address | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.peer = _peer(self.owner.name, transport.get_extra_info("peername"))
        self.owner.connections[(self.peer.host, self.peer.port)] = self

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None and self.transport is not None
        try:
            items = self.framer.feed(data)
        except FramingError as exc:
            log.info("closing %s: %s", self.peer, exc)
            self.transport.close()
            return
        for item in items:
            if isinstance(item, KeepAlive):
                self.transport.write(_PONG)
                continue
            try:
                self.owner.sink.message_received(item, self.peer)
            except Exception:
                log.exception("error handling a message from %s", self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            key = (self.peer.host, self.peer.port)
            if self.owner.connections.get(key) is self:
                del self.owner.connections[key]

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class StreamListener:
    """A TCP or TLS listening socket plus the connections to and from it."""

    def __init__(
        self,
        sink: MessageSink,
        max_message_size: int,
        name: str = "TCP",
        ssl_context: ssl.SSLContext | None = None,
        client_ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.sink = sink
        self.max_message_size = max_message_size
        self.name = name
        self.ssl_context = ssl_context
        self.client_ssl_context = client_ssl_context
        self.connections: dict[tuple[str, int], _StreamConnection] = {}
        self.server: asyncio.AbstractServer | None = None
        self.local: Address | None = None
        self._pending: dict[tuple[str, int], list[bytes]] = {}

    async def listen(self, host: str, port: int) -> None:
        """Bind and start accepting connections."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: _StreamConnection(self),
            host,
            port,
            ssl=self.ssl_context,
            reuse_address=True,
        )
        self.local = _peer(self.name, self.server.sockets[0].getsockname())

    def send(self, data: bytes, destination: Address) -> None:
        """Send over the open connection to ``destination``, opening one if needed."""
        key = (destination.host, destination.port)
        conn = self.connections.get(key)
        if conn is not None:
            conn.send(data)
            return
        queued = self._pending.get(key)
        if queued is not None:
            queued.append(data)
            return
        self._pending[key] = [data]
        asyncio.get_running_loop().create_task(self._connect(destination))

    async def _connect(self, destination: Address) -> None:
        key = (destination.host, destination.port)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: _StreamConnection(self),
                    destination.host,
                    destination.port,
                    ssl=self.client_ssl_context if self.name == "TLS" else None,
                ),
                timeout=10.0,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            log.info("cannot connect to %s: %s", destination, exc)
            self._pending.pop(key, None)
            self.sink.transport_error(destination)
            return
        conn = self.connections.get(key)
        for data in self._pending.pop(key, []):
            if conn is not None:
                conn.send(data)

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections.values()):
            if conn.transport is not None:
                conn.transport.close()
        if self.server is not None:
            await self.server.wait_closed()


@dataclass(frozen=True, slots=True)
class WebSocketPolicy:
    """How a SIP WebSocket listener treats its connections (times in seconds)."""

    path: str | None = None
    """The one request path accepted; any when None."""
    origins: tuple[str, ...] = ()
    """``Origin`` values a browser may connect from; any when empty."""
    ping_interval: float = 30.0
    """A ping this often; a connection silent since the last one is dropped. 0: none."""
    handshake_timeout: float = 10.0
    """A connection that has not completed its opening handshake by then is dropped."""
    close_timeout: float = 2.0
    """How long our close frame waits for the peer's before TCP is closed anyway."""


class _WebSocketConnection(asyncio.Protocol):
    """One accepted WebSocket: the sans-I/O ``WebSocketServer`` on an asyncio transport."""

    def __init__(self, owner: WebSocketListener) -> None:
        self.owner = owner
        policy = owner.policy
        self.ws = WebSocketServer(owner.max_message_size, path=policy.path, origins=policy.origins)
        self.transport: asyncio.Transport | None = None
        self.peer: Address | None = None
        self.open = False
        """The handshake completed: the connection is in ``owner.connections``."""
        self.silent = False
        """A ping went out and nothing has come back since."""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.peer = _peer(self.owner.name, transport.get_extra_info("peername"))
        self.owner.accepted.add(self)
        self._arm(self.owner.policy.handshake_timeout)

    def data_received(self, data: bytes) -> None:
        self.silent = False
        for event in self.ws.receive_data(data):
            if isinstance(event, MessageReceived):
                self._message(event.data)
            elif isinstance(event, HandshakeCompleted):
                self._opened()
            elif isinstance(event, HandshakeRefused):
                log.info(
                    "refused a WebSocket from %s: %d %s", self.peer, event.status, event.reason
                )
            elif isinstance(event, ConnectionFailed):
                log.info(
                    "closing the WebSocket from %s: %d %s", self.peer, event.code, event.reason
                )
        self._write()

    def _opened(self) -> None:
        assert self.peer is not None
        self._arm(None)
        self.open = True
        self.owner.connections[(self.peer.host, self.peer.port)] = self

    def _message(self, data: bytes) -> None:
        keepalive = is_keepalive(data)
        if keepalive is not None:
            if keepalive:
                self.ws.send_message(_PONG)
            return
        assert self.peer is not None
        try:
            self.owner.sink.message_received(data, self.peer)
        except Exception:
            log.exception("error handling a message from %s", self.peer)

    def _write(self) -> None:
        transport = self.transport
        data = self.ws.data_to_send()
        if transport is None or transport.is_closing():
            return
        if data:
            transport.write(data)
        if self.ws.state is WsState.CLOSED:
            transport.close()
        elif self.ws.state is WsState.CLOSING and self._timer is None:
            self._arm(self.owner.policy.close_timeout)

    def _arm(self, delay: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if delay is not None:
            self._timer = asyncio.get_running_loop().call_later(delay, self.abort)

    def abort(self) -> None:
        """Drop the TCP connection at once (a handshake or close that never ended, a dead peer)."""
        self._timer = None
        if self.transport is not None:
            self.transport.abort()

    def send(self, data: bytes) -> bool:
        """Send one SIP message; False when the WebSocket is closing or closed."""
        if not self.ws.send_message(data):
            return False
        self._write()
        return True

    def keep_alive(self) -> None:
        """Ping, or drop the connection if nothing came back since the last ping."""
        if not self.open:
            return
        if self.silent:
            log.info("dropping the WebSocket from %s: no answer to a ping", self.peer)
            self.abort()
            return
        if self.ws.ping():
            self.silent = True
            self._write()

    def close(self, code: int, reason: str) -> None:
        """Send a close frame and close TCP once it is written (shutting down)."""
        self.ws.close(code, reason)
        self._write()
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._arm(None)
        owner = self.owner
        owner.accepted.discard(self)
        if not self.open or self.peer is None:
            return
        self.open = False
        key = (self.peer.host, self.peer.port)
        if owner.connections.get(key) is self:
            del owner.connections[key]
        if owner.closing:
            return  # shutting down: nothing above listens any more
        try:
            owner.sink.connection_closed(self.peer)
        except Exception:
            log.exception("error handling the close of the WebSocket from %s", self.peer)


class WebSocketListener:
    """A SIP WebSocket (WS, or WSS with ``ssl_context``) listening socket and its connections.

    Only browsers' connections to us exist: a request for a WebSocket peer
    without an open connection cannot be sent (``send`` returns False).
    One timer per listener pings every open connection (``policy.ping_interval``).
    """

    def __init__(
        self,
        sink: MessageSink,
        max_message_size: int,
        name: str = "WS",
        ssl_context: ssl.SSLContext | None = None,
        policy: WebSocketPolicy | None = None,
    ) -> None:
        self.sink = sink
        self.max_message_size = max_message_size
        self.name = name
        self.ssl_context = ssl_context
        self.policy = policy if policy is not None else WebSocketPolicy()
        self.connections: dict[tuple[str, int], _WebSocketConnection] = {}
        """Open WebSockets by peer address."""
        self.accepted: set[_WebSocketConnection] = set()
        """Every TCP connection, handshake done or not."""
        self.server: asyncio.AbstractServer | None = None
        self.local: Address | None = None
        self.closing = False
        self._ticker: asyncio.TimerHandle | None = None

    async def listen(self, host: str, port: int) -> None:
        """Bind and start accepting connections."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: _WebSocketConnection(self),
            host,
            port,
            ssl=self.ssl_context,
            reuse_address=True,
        )
        self.local = _peer(self.name, self.server.sockets[0].getsockname())
        if self.policy.ping_interval > 0:
            self._ticker = loop.call_later(self.policy.ping_interval, self._tick)

    def _tick(self) -> None:
        for conn in list(self.connections.values()):
            conn.keep_alive()
        self._ticker = asyncio.get_running_loop().call_later(self.policy.ping_interval, self._tick)

    def send(self, data: bytes, destination: Address) -> bool:
        """Send over the WebSocket ``destination`` opened; False when there is none."""
        conn = self.connections.get((destination.host, destination.port))
        return conn is not None and conn.send(data)

    async def close(self) -> None:
        """Stop listening; close every connection with 1001 (going away)."""
        self.closing = True
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self.server is not None:
            self.server.close()
        for conn in list(self.accepted):
            conn.close(CloseCode.GOING_AWAY, "shutting down")
        if self.server is not None:
            await self.server.wait_closed()


UDP_BUFFER = 4 << 20
"""Bytes of kernel buffer asked for a SIP UDP socket each way (the kernel may cap it)."""


def _grow_buffers(sock: socket.socket) -> None:
    """Give a SIP UDP socket room for a burst (Linux's default is about 200 KB).

    One UDP socket takes every phone's and trunk's messages; while the loop
    is busy for a few tens of milliseconds (a garbage collection, a burst of
    call set-ups) at a thousand messages a second, the default queue
    overflows and the kernel drops requests that then cost a retransmission
    (500 ms and more) or a lost keep-alive. Best effort: the kernel caps the
    size at net.core.rmem_max and wmem_max.
    """
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_BUFFER)
        except OSError as exc:
            log.debug("cannot size a SIP UDP socket's buffer: %s", exc)


class TransportSet:
    """Every listener of the endpoint, chosen by the destination's transport."""

    def __init__(self, sink: MessageSink, max_message_size: int) -> None:
        self.sink = sink
        self.max_message_size = max_message_size
        self.udp: list[UdpListener] = []
        self.streams: dict[str, list[StreamListener]] = {"TCP": [], "TLS": []}
        self.websockets: dict[str, list[WebSocketListener]] = {"WS": [], "WSS": []}

    async def listen_udp(self, host: str, port: int) -> Address:
        """Bind a UDP socket; returns the bound address (port 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            _grow_buffers(sock)
            sock.bind((host, port))
        except BaseException:
            sock.close()
            raise
        _, protocol = await loop.create_datagram_endpoint(
            lambda: UdpListener(self.sink, self.max_message_size), sock=sock
        )
        assert protocol.local is not None
        self.udp.append(protocol)
        return protocol.local

    async def listen_stream(
        self,
        host: str,
        port: int,
        name: str = "TCP",
        ssl_context: ssl.SSLContext | None = None,
    ) -> Address:
        """Listen for TCP (or TLS with ``ssl_context``); returns the bound address."""
        client_ctx = None
        if name == "TLS":
            client_ctx = ssl.create_default_context()
        listener = StreamListener(self.sink, self.max_message_size, name, ssl_context, client_ctx)
        await listener.listen(host, port)
        self.streams[name].append(listener)
        assert listener.local is not None
        return listener.local

    async def listen_websocket(
        self,
        host: str,
        port: int,
        name: str = "WS",
        ssl_context: ssl.SSLContext | None = None,
        policy: WebSocketPolicy | None = None,
    ) -> Address:
        """Listen for SIP over WebSocket (WSS with ``ssl_context``); returns the bound address."""
        listener = WebSocketListener(self.sink, self.max_message_size, name, ssl_context, policy)
        await listener.listen(host, port)
        self.websockets[name].append(listener)
        assert listener.local is not None
        return listener.local

    def _udp_for(self, destination: Address) -> UdpListener | None:
        v6 = ":" in destination.host
        for listener in self.udp:
            if listener.local is not None and (":" in listener.local.host) == v6:
                return listener
        return None

    def send(self, data: bytes, destination: Address) -> None:
        """Send ``data`` by the destination's transport."""
        if destination.transport == "UDP":
            udp = self._udp_for(destination)
            if udp is None:
                self.sink.transport_error(destination)
                return
            udp.send(data, destination)
            return
        websockets = self.websockets.get(destination.transport)
        if websockets is not None:
            if not any(ws.send(data, destination) for ws in websockets):
                self.sink.transport_error(destination)
            return
        listeners = self.streams.get(destination.transport) or []
        v6 = ":" in destination.host
        for listener in listeners:
            key = (destination.host, destination.port)
            if key in listener.connections:
                listener.send(data, destination)
                return
        for listener in listeners:
            if listener.local is not None and (":" in listener.local.host) == v6:
                listener.send(data, destination)
                return
        self.sink.transport_error(destination)

    def local_address(self, transport: str, v6: bool = False) -> Address | None:
        """Our bound address for ``transport`` (to put in Via and Contact)."""
        candidates: list[Address | None]
        if transport == "UDP":
            candidates = [u.local for u in self.udp]
        elif transport in self.websockets:
            candidates = [w.local for w in self.websockets[transport]]
        else:
            candidates = [s.local for s in self.streams.get(transport, [])]
        for local in candidates:
            if local is not None and (":" in local.host) == v6:
                return local
        return next((c for c in candidates if c is not None), None)

    async def close(self) -> None:
        """Close every socket."""
        for udp in self.udp:
            if udp.transport is not None:
                udp.transport.close()
        for listeners in self.streams.values():
            for listener in listeners:
                await listener.close()
        for websockets in self.websockets.values():
            for websocket in websockets:
                await websocket.close()
