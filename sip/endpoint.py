"""The asyncio adapter around the transaction layer, with the front-door checks.

Bytes from the transports are parsed here, once the request limiter has
let them in (a source that floods is dropped before it costs a parse); what
cannot be parsed is answered with a 400 when it can be routed and dropped
otherwise (RFC 4475 3.1.2); scanners are dropped without an answer; the RFC
3261 8.2 checks every UAS makes (Max-Forwards, URI scheme, Require) are
answered before the application sees the request. One ``loop.call_at``
timer drives every transaction timer, re-armed from
``TransactionLayer.next_timer()`` (the aioquic pattern).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ._grammar import SipSyntaxError
from .events import Address, ConnectionClosed, Event, RequestReceived
from .facing import FacingAddresses, is_wildcard
from .headers import Via
from .message import MessageError, Request, Response, make_response, parse_message
from .message import salvage_response as _salvage
from .ratelimit import RequestLimiter
from .transaction import TransactionLayer, new_branch, new_tag
from .transport import WEBSOCKET_TRANSPORTS, TransportSet, WebSocketPolicy
from .uri import SipUri

__all__ = ["EndpointPolicy", "MessageObserver", "SipEndpoint"]

log = logging.getLogger(__name__)

_TIMER_GRID = 100
"""Transaction timers fire on a grid of 1/100 s (see ``SipEndpoint._rearm``)."""


class MessageObserver(Protocol):
    """Sees every message in and out; metrics subscribe here (sip/ never imports them)."""

    def incoming(self, message: Request | Response) -> None:
        """A message parsed and accepted by the front door."""

    def outgoing(self, data: bytes) -> None:
        """Bytes handed to a transport: every message we send, retransmissions included."""


@dataclass(frozen=True, slots=True)
class EndpointPolicy:
    """Front-door limits and identity of the endpoint."""

    max_message_size: int = 65535
    blocked_user_agents: tuple[str, ...] = ("friendly-scanner", "sipvicious", "sipcli")
    server_name: str = "acd"
    # Option tags (RFC 3261 8.2.2.3) a Require may name: only what is implemented.
    # Session timers are; Path (RFC 3327) and Replaces (RFC 3891) are not yet.
    supported: tuple[str, ...] = ("timer",)
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    advertised_host: str | None = None


trace_log = logging.getLogger("sip.trace")
# A digest response (and its client nonce) would let anyone holding the log
# guess the password offline: never written out.
_SECRETS = re.compile(rb'(\b(?:response|cnonce)\s*=\s*)("[^"]*"|[^,\s]+)', re.IGNORECASE)


def _trace(direction: str, data: bytes, peer: Address) -> None:
    text = _SECRETS.sub(rb'\1"[redacted]"', data).decode("utf-8", "replace")
    trace_log.debug("%s %s (%d bytes)\n%s", direction, peer, len(data), text.rstrip())


class SipEndpoint:
    """Transports + transaction layer + front door, on one asyncio loop.

    ``on_event`` receives every transaction event that passed the front door
    (new requests, responses, ACKs for 2xx, CANCELs, time-outs). ``limiter``
    counts requests per source host, over every transport, before parsing.
    """

    def __init__(
        self,
        policy: EndpointPolicy,
        on_event: Callable[[Event], None],
        observer: MessageObserver | None = None,
        limiter: RequestLimiter | None = None,
    ) -> None:
        self.policy = policy
        self.on_event = on_event
        self.observer = observer
        self.limiter = limiter
        self.transactions = TransactionLayer(t1=policy.t1, t2=policy.t2, t4=policy.t4)
        self.transports = TransportSet(self, policy.max_message_size)
        self.facing = FacingAddresses()
        """Our address on the route to each peer, for wildcard binds."""
        self.trace = False
        """Write every message received (past the limiter) and sent to the ``sip.trace``
        logger at DEBUG, digest responses redacted."""
        self._blocked = tuple(ua.lower() for ua in policy.blocked_user_agents)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.dropped_scanners = 0
        self.malformed = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def listen(
        self,
        transport: str,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        websocket: WebSocketPolicy | None = None,
    ) -> Address:
        """Start a listener; ``transport`` is UDP, TCP, TLS, WS or WSS (``websocket`` for
        the last two: path, origins, pings)."""
        self._loop = asyncio.get_running_loop()
        if transport == "UDP":
            return await self.transports.listen_udp(host, port)
        if transport in WEBSOCKET_TRANSPORTS:
            return await self.transports.listen_websocket(
                host, port, transport, ssl_context, websocket
            )
        return await self.transports.listen_stream(host, port, transport, ssl_context)

    async def close(self) -> None:
        """Stop timers and close every socket."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.transports.close()

    def now(self) -> float:
        """The clock every transaction timer is on."""
        loop = self._loop or asyncio.get_running_loop()
        return loop.time()

    # -- sending -----------------------------------------------------------------------

    def send_response(self, transaction: str, response: Response) -> None:
        """Answer a server transaction."""
        if "server" not in response.headers:
            response.headers.add("Server", self.policy.server_name)
        if response.status != 100 and response.to.tag is None:
            # RFC 3261 8.2.6.2: the UAS core tags every response but 100 Trying.
            response.headers.set("To", f"{response.headers.get('to')};tag={new_tag()}")
            response.invalidate()
        self.transactions.send_response(transaction, response, self.now())
        self._flush()

    def send_request(self, request: Request, destination: Address) -> str:
        """Start a client transaction; returns its key."""
        key = self.transactions.send_request(request, destination, self.now())
        self._flush()
        return key

    def send_stateless(self, message: Request | Response, destination: Address) -> None:
        """Send outside any transaction (ACK for 2xx, answers to unparsable requests)."""
        self.transactions.send_stateless(message, destination)
        self._flush()

    def cancel(self, transaction: str) -> str | None:
        """CANCEL a pending INVITE client transaction."""
        key = self.transactions.cancel(transaction, self.now())
        self._flush()
        return key

    def via_for(self, destination: Address) -> Via:
        """A fresh top Via for a request we send to ``destination`` (with rport, RFC 3581)."""
        local = self.transports.local_address(destination.transport, ":" in destination.host)
        host = self.advertised_host(local, destination.host)
        port = local.port if local else None
        return Via(destination.transport, host, port, {"branch": new_branch(), "rport": None})

    def contact_uri(
        self, transport: str = "UDP", user: str | None = None, *, toward: str | None = None
    ) -> SipUri:
        """Our Contact URI on ``transport``, as the peer at host ``toward`` can reach it."""
        v6 = toward is not None and ":" in toward
        local = self.transports.local_address(transport, v6)
        host = self.advertised_host(local, toward)
        params: dict[str, str | None] = {}
        if transport in WEBSOCKET_TRANSPORTS:
            # RFC 7118 5.2.2 defines only "ws", for WSS as well.
            params["transport"] = "ws"
        elif transport != "UDP":
            params["transport"] = transport.lower()
        return SipUri(host=host, user=user, port=local.port if local else None, params=params)

    def advertised_host(self, local: Address | None, toward: str | None) -> str:
        """The host to put on the wire: ``advertised_host``, else the bound one, and for a
        wildcard bind the address on the route to the peer ``toward`` (sip/facing.py)."""
        if self.policy.advertised_host:
            return self.policy.advertised_host
        if local is None:
            return "127.0.0.1"
        if not is_wildcard(local.host):
            return local.host
        return self.facing.toward(toward or "", v6=":" in local.host)

    # -- receiving (MessageSink) --------------------------------------------------------

    def message_received(self, data: bytes, source: Address) -> None:
        """Entry point for every datagram or framed stream message."""
        if not data.strip(b"\r\n \t"):
            return  # keep-alive
        limiter = self.limiter
        # Responses are not counted (pike counts requests only): they answer
        # our own requests, and throttling them would break our transactions.
        if (
            limiter is not None
            and not data.startswith(b"SIP/2.0 ")
            and not limiter.admit(source.host, self.now())
        ):
            return
        if self.trace:
            _trace("received from", data, source)
        try:
            message = parse_message(data, stream=source.stream)
        except MessageError as exc:
            self._malformed(exc, source)
            return
        if isinstance(message, Request) and self._is_scanner(message):
            self.dropped_scanners += 1
            return
        if self.observer is not None:
            self.observer.incoming(message)
        try:
            events = self.transactions.receive(message, source, self.now())
        except SipSyntaxError as exc:
            log.info("dropping message from %s: %s", source, exc)
            return
        self._flush()
        for event in events:
            if isinstance(event, RequestReceived) and not self._front_door(event):
                continue
            self._dispatch(event)
        self._flush()

    def transport_error(self, destination: Address) -> None:
        """A send failed: fail the client transactions heading there."""
        for event in self.transactions.transport_error(destination, self.now()):
            self._dispatch(event)
        self._flush()

    def connection_closed(self, peer: Address) -> None:
        """A WebSocket closed: fail what was heading there, then tell the application."""
        for event in self.transactions.transport_error(peer, self.now()):
            self._dispatch(event)
        self._dispatch(ConnectionClosed(peer))
        self._flush()

    # -- internals ---------------------------------------------------------------------

    def _malformed(self, exc: MessageError, source: Address) -> None:
        self.malformed += 1
        failure = exc.failure
        log.info("malformed message from %s: %s", source, exc)
        if not failure.is_request or failure.method == "ACK":
            return  # malformed responses and ACKs are dropped (RFC 4475 3.1.2)
        reason = "Version Not Supported" if exc.status == 505 else "Bad Request"
        response = _salvage(failure, exc.status, reason)
        if response is None:
            return
        response.headers.add("Server", self.policy.server_name)
        try:
            via = response.top_via
        except SipSyntaxError:
            return
        destination = source
        if not source.reliable and "rport" not in via.params:
            destination = Address(source.transport, source.host, via.port or 5060)
        self.send_stateless(response, destination)

    def _is_scanner(self, request: Request) -> bool:
        agent = (request.headers.get("user-agent") or "").lower()
        return bool(agent) and any(b in agent for b in self._blocked)

    def _front_door(self, event: RequestReceived) -> bool:
        """RFC 3261 8.2 checks; returns False when the request was answered here."""
        request = event.request
        if request.method == "ACK":
            return True
        status = 0
        reason: str | None = None
        extra: tuple[str, str] | None = None
        try:
            max_forwards = request.max_forwards
        except SipSyntaxError:
            max_forwards = None
        if max_forwards == 0:
            status = 483
        elif not isinstance(request.uri, SipUri):
            status = 416
        elif request.method != "CANCEL":
            unsupported = [
                r for r in request.header_list("require") if r.lower() not in self.policy.supported
            ]
            if unsupported:
                status, extra = 420, ("Unsupported", ", ".join(unsupported))
        if not status:
            return True
        response = make_response(request, status, reason)
        if extra is not None:
            response.headers.add(*extra)
        self.send_response(event.transaction, response)
        return False

    def _dispatch(self, event: Event) -> None:
        try:
            self.on_event(event)
        except Exception:
            # An application bug must cost one request, not the endpoint; the
            # peer gets a 500 so it does not retransmit into the same bug.
            log.exception("error handling %s", type(event).__name__)
            if isinstance(event, RequestReceived) and event.request.method != "ACK":
                try:
                    self.send_response(event.transaction, make_response(event.request, 500))
                except Exception:
                    log.exception("could not send 500")

    def _flush(self) -> None:
        observer = self.observer
        for data, destination in self.transactions.messages_to_send():
            if observer is not None:
                observer.outgoing(data)
            if self.trace:
                _trace("sent to", data, destination)
            self.transports.send(data, destination)
        self._rearm()

    def _rearm(self) -> None:
        deadline = self.transactions.next_timer()
        if deadline is not None:
            # Due times are rounded up to a 10 ms grid: the timers of the many
            # transactions in flight then share wake-ups, and the loop timer is
            # re-armed once per grid step rather than for every new earliest
            # deadline. RFC 3261's timers are hundreds of milliseconds or more.
            deadline = math.ceil(deadline * _TIMER_GRID) / _TIMER_GRID
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            loop = self._loop or asyncio.get_running_loop()
            self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        for event in self.transactions.handle_timer(self.now()):
            self._dispatch(event)
        self._flush()
