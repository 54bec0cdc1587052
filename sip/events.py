"""Events the SIP core reports to the layer above, and the address type it speaks.

Each event is a fact that happened, as a small frozen dataclass. The
transaction layer emits them from ``receive()`` and ``handle_timer()``; the
dialog layer consumes them and emits dialog events of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from .message import Request, Response

__all__ = [
    "AckReceived",
    "Address",
    "CancelReceived",
    "ConnectionClosed",
    "Event",
    "RequestReceived",
    "ResponseReceived",
    "TransactionTerminated",
    "TransactionTimedOut",
    "TransportFailed",
]


@dataclass(frozen=True, slots=True)
class Address:
    """Where a message came from or goes to.

    ``transport`` is upper-case ``UDP``, ``TCP``, ``TLS``, ``WS`` or ``WSS``. For
    connection transports ``(transport, host, port)`` names the connection a
    response must return on.
    """

    transport: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport.lower()}:{host}:{self.port}"

    @property
    def reliable(self) -> bool:
        """True for stream transports, which need no retransmissions (RFC 3261 17)."""
        return self.transport != "UDP"

    @property
    def stream(self) -> bool:
        """True for TCP and TLS, whose messages are cut from a byte stream by Content-Length.

        WebSocket is reliable but frames each message itself (RFC 7118 5.1), so
        its messages are parsed as datagrams are (RFC 3261 18.3).
        """
        return self.transport in ("TCP", "TLS")


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request (not a retransmission) reached a server transaction.

    ``transaction`` is the key to pass to ``send_response``. For ACK to a 2xx
    there is no transaction: see ``AckReceived``.
    """

    request: Request
    transaction: str
    source: Address


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK for a 2xx arrived; it belongs to the dialog, not to any transaction."""

    request: Request
    source: Address


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """A CANCEL matched a pending INVITE server transaction.

    The transaction layer has already answered the CANCEL with 200; the TU
    should answer the INVITE (``transaction``) with 487 unless it has a final
    response already.
    """

    request: Request
    transaction: str
    source: Address


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for a client transaction (or a 2xx retransmission, RFC 6026).

    ``transaction`` is the key ``send_request`` returned.
    """

    response: Response
    transaction: str
    source: Address


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """Timer B or F fired (client) or Timer H fired (server, no ACK for our final response)."""

    transaction: str
    method: str


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """A message could not be sent for a transaction (RFC 3261 17.1.4, 17.2.4)."""

    transaction: str
    method: str


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    """A transaction reached Terminated and was forgotten."""

    transaction: str
    method: str


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """A connection a peer opened to us is gone (a WebSocket closed, or its TCP dropped).

    Nothing can be sent to ``peer`` any more: we cannot open a connection to
    a browser, so what was registered over it is unreachable. The client
    transactions heading there have failed already (``TransportFailed``).
    """

    peer: Address


Event = (
    RequestReceived
    | AckReceived
    | CancelReceived
    | ResponseReceived
    | TransactionTimedOut
    | TransportFailed
    | TransactionTerminated
    | ConnectionClosed
)
