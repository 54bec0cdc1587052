"""One UDP socket of an RTP leg as the leg uses it: a handler for what arrives, and sendto.

Two implementations of one small interface (:class:`UdpIo`):

* :class:`PortIo`, with the C fast path built (media/_native.py): the socket
  is read by a :class:`media._fastrtp.Port` on the loop's reader callback
  (``loop.add_reader``). When the handler is a :class:`media._fastrtp.Relay`,
  the common packet from the latched peer is relayed (or, for a relay that
  sends nothing, counted) without a Python object being made; anything else
  reaches the handler's full path as ``(data, (host, port))``.
* :class:`TransportIo`, the pure-Python path: an asyncio datagram transport
  whose protocol calls the handler, as before the C path existed.

A port counts the packets its fast path took and when the last one came;
the leg folds them into ``packets_received`` and its media clock when those
are read (``fast_packets``, ``last_arrival``; always 0 for a transport).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeAlias

from ._native import fastrtp

if TYPE_CHECKING:
    from ._fastrtp import Port, Relay

__all__ = ["Address", "Handler", "PortIo", "TransportIo", "UdpIo", "open_io"]

logger = logging.getLogger(__name__)

Address = tuple[str, int]
"""A ``(host, port)`` pair; IPv6 flow and scope fields are trimmed off."""

Handler: TypeAlias = "Callable[[bytes, Address], None] | Relay"
"""What takes a socket's datagrams: a function, or (C path) a relay's fast path."""


def discard(data: bytes, addr: Address) -> None:
    """The handler of a socket not (or no longer) in use."""


class UdpIo(Protocol):
    """One bound UDP socket: where its datagrams go, and sending on it."""

    handler: Handler

    @property
    def fileno(self) -> int:
        """The socket's descriptor (a C relay sends on it directly)."""

    @property
    def fast_packets(self) -> int:
        """Packets a C relay's fast path took, not seen by the handler."""

    @property
    def last_arrival(self) -> float:
        """When (the monotonic clock the loop runs on) the fast path last took a packet."""

    def sendto(self, data: bytes, address: Address) -> None:
        """Send one datagram; a full buffer or an ICMP error drops it, as UDP may."""

    def close(self) -> None:
        """Stop reading and close the socket."""


class _Protocol(asyncio.BaseProtocol):
    """A datagram protocol whose ``datagram_received`` is an attribute the owner sets."""

    datagram_received: Callable[[bytes, Address], None]

    def __init__(self) -> None:
        self.datagram_received = discard

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while the peer has not opened its port yet:
        # expected at call set-up, and no reason to stop the stream.
        logger.debug("RTP socket error: %s", exc)


class TransportIo:
    """The pure-Python path: an asyncio datagram transport calls the handler."""

    fast_packets = 0
    last_arrival = 0.0

    def __init__(self, transport: asyncio.DatagramTransport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    @property
    def handler(self) -> Handler:
        return self._protocol.datagram_received

    @handler.setter
    def handler(self, handler: Handler) -> None:
        if not callable(handler):
            raise TypeError(f"a transport's handler must be callable, not {handler!r}")
        self._protocol.datagram_received = handler

    @property
    def fileno(self) -> int:
        sock = self._transport.get_extra_info("socket")
        return int(sock.fileno()) if sock is not None else -1

    def sendto(self, data: bytes, address: Address) -> None:
        self._transport.sendto(data, address)

    def close(self) -> None:
        self._protocol.datagram_received = discard
        self._transport.close()


class PortIo:
    """The C path: a :class:`media._fastrtp.Port` reads the socket on the loop's callback."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        assert fastrtp is not None
        self._loop = loop
        self._sock = sock
        self._port: Port = fastrtp.Port(sock.fileno())
        self._port.handler = discard
        loop.add_reader(sock.fileno(), self._port.readable)

    @property
    def handler(self) -> Handler:
        handler = self._port.handler
        return discard if handler is None else handler

    @handler.setter
    def handler(self, handler: Handler) -> None:
        self._port.handler = handler

    @property
    def fileno(self) -> int:
        return self._port.fd

    @property
    def fast_packets(self) -> int:
        return self._port.fast_packets

    @property
    def last_arrival(self) -> float:
        return self._port.last_arrival

    def sendto(self, data: bytes, address: Address) -> None:
        try:
            self._sock.sendto(data, address)
        except (BlockingIOError, InterruptedError):
            pass  # the socket's buffer is full: a lost datagram
        except OSError as exc:
            logger.debug("RTP socket error: %s", exc)

    def idle(self) -> None:
        """Parked (:class:`~media.portpool.PortPool`), and again when a new leg takes
        it: what is queued and what arrives is dropped in C, the counters start again."""
        self._port.handler = None
        self._port.readable()  # with no handler: read and dropped
        self._port.reset()

    def close(self) -> None:
        if self._sock.fileno() == -1:
            return
        self._port.handler = None
        if not self._loop.is_closed():  # a parked socket may outlive its loop
            self._loop.remove_reader(self._port.fd)
        self._sock.close()

    def __del__(self) -> None:
        # Never let the socket's own finaliser close a descriptor the loop
        # still polls (libuv aborts the process on that): unregister first.
        with contextlib.suppress(Exception):
            self.close()


async def open_io(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> UdpIo:
    """The socket (bound, non-blocking) wrapped for a leg: a port, or a transport."""
    if fastrtp is not None:
        return PortIo(loop, sock)
    transport, protocol = await loop.create_datagram_endpoint(_Protocol, sock=sock)
    return TransportIo(transport, protocol)
