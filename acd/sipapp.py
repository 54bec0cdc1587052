"""The engine's SIP application: registrar, OPTIONS, keep-alives, and method routing.

It consumes the endpoint's transaction events. REGISTER is authenticated and
applied to the location service; OPTIONS to the engine is answered with its
capabilities; registered contacts are pinged with OPTIONS so a dead phone is
noticed before a caller waits on it. Calls (INVITE) arrive with the call
control work; until then they are answered 480 after authentication.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import formatdate

from sip import Headers, Request, Response, SipUri, make_response
from sip.endpoint import SipEndpoint
from sip.events import (
    AckReceived,
    Address,
    CancelReceived,
    ConnectionClosed,
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)

from .authn import Authenticator
from .calls import SHUTDOWN_RETRY_AFTER, CallControl
from .config import Trunk
from .registrar import Binding, BindingAdded, BindingRemoved, LocationService

__all__ = ["ALLOW", "SipApplication"]

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, UPDATE, REGISTER"
ACCEPT = "application/sdp, application/dtmf-relay, application/dtmf"
SUPPORTED = "timer"  # what sip.endpoint.EndpointPolicy.supported accepts in a Require
_KNOWN_UNSUPPORTED = frozenset({"SUBSCRIBE", "PUBLISH", "MESSAGE", "PRACK"})

RegistrationListener = Callable[[BindingAdded | BindingRemoved], None]


@dataclass(slots=True)
class _Ping:
    binding: Binding


class SipApplication:
    """Routes transaction events to the registrar and the (future) call control."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        authenticator: Authenticator,
        location: LocationService,
        domain: str,
        *,
        calls: CallControl | None = None,
        trunks: Callable[[str], Trunk | None] = lambda _host: None,
    ) -> None:
        self.endpoint = endpoint
        self.calls = calls
        self.trunk_for = trunks
        self.auth = authenticator
        self.location = location
        self.domain = domain
        self.listeners: list[RegistrationListener] = []
        self._pings: dict[str, _Ping] = {}
        self._housekeeping: asyncio.TimerHandle | None = None
        self.registrations_ok = 0

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Begin the once-a-second housekeeping (expiry, keep-alives, pruning)."""
        self._schedule()

    def stop(self) -> None:
        """Stop housekeeping."""
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            self._housekeeping = None

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self._housekeeping = loop.call_later(1.0, self._tick)

    def _tick(self) -> None:
        now = self.endpoint.now()
        try:
            self._emit(self.location.expire(now))
            for binding in self.location.pings_due(now):
                self._ping(binding)
            self.auth.prune(now)
            if self.endpoint.limiter is not None:
                self.endpoint.limiter.prune(now)
        except Exception:
            log.exception("housekeeping failed")
        self._schedule()

    def drop_user(self, user: str, reason: str) -> None:
        """Forget ``user``'s registrations now, telling the listeners (account removed)."""
        self._emit(self.location.remove_user(user, reason))

    def _emit(self, events: Sequence[BindingAdded | BindingRemoved]) -> None:
        for event in events:
            # One line per change (a refresh is none): an operator asking "is 1001's
            # phone registered?" finds the answer in the log.
            if isinstance(event, BindingAdded):
                log.info("%s registered %s", event.user, event.contact)
            else:
                log.info("%s unregistered %s: %s", event.user, event.contact, event.reason)
            for listener in self.listeners:
                listener(event)

    def trusts_source(self, host: str) -> bool:
        """Never throttle ``host``: a trunk's address, or where a registered phone is.

        The request limiter asks this only when a source goes over its
        threshold, so a carrier or an office NAT full of phones keeps its
        traffic however busy it is.
        """
        try:
            if self.trunk_for(host) is not None:
                return True
        except ValueError:  # not an IP address: no trunk can match it
            pass
        return self.location.has_host(host)

    # -- events ----------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        """Endpoint callback."""
        calls = self.calls
        if isinstance(event, RequestReceived):
            self._request(event)
        elif isinstance(event, ResponseReceived):
            ping = self._pings.pop(event.transaction, None)
            if ping is not None:
                self.location.ping_answered(ping.binding)
            elif calls is not None:
                calls.response(event.response, event.transaction)
        elif isinstance(event, TransactionTimedOut | TransportFailed):
            ping = self._pings.pop(event.transaction, None)
            if ping is not None:
                self._emit(self.location.ping_failed(ping.binding))
            elif calls is not None:
                calls.transaction_failed(event.transaction, event.method)
        elif isinstance(event, AckReceived):
            if calls is not None:
                calls.ack(event.request)
        elif isinstance(event, CancelReceived):
            if calls is not None:
                calls.cancel(event.transaction)
        elif isinstance(event, TransactionTerminated) and calls is not None:
            calls.transaction_terminated(event.transaction)
        elif isinstance(event, ConnectionClosed):
            # A browser's WebSocket: nothing registered over it can be reached again,
            # and its calls lost their far end.
            self._emit(self.location.remove_destination(event.peer, "unreachable"))
            if calls is not None:
                calls.connection_closed(event.peer)

    def _request(self, event: RequestReceived) -> None:
        request = event.request
        method = request.method
        if method == "REGISTER":
            self._register(event)
        elif request.to.tag is not None and self.calls is not None:
            self.calls.in_dialog(event)
        elif method == "OPTIONS":
            if self.calls is not None and self.calls.stopping:
                # Draining or stopping: a proxy's probe (Kamailio dispatcher)
                # takes this node out of rotation; phones still get an answer.
                response = make_response(request, 503)
                response.headers.add("Retry-After", str(SHUTDOWN_RETRY_AFTER))
                self._reply(event, self._capabilities(response))
            else:
                self._reply(event, self._capabilities(make_response(request, 200)))
        elif method == "INVITE":
            self._invite(event)
        elif method in ("BYE", "INFO", "UPDATE", "REFER", "NOTIFY"):
            self._reply(event, make_response(request, 481))
        elif method in _KNOWN_UNSUPPORTED:
            response = make_response(request, 405)
            response.headers.add("Allow", ALLOW)
            self._reply(event, response)
        else:
            response = make_response(request, 501)
            response.headers.add("Allow", ALLOW)
            self._reply(event, response)

    def _invite(self, event: RequestReceived) -> None:
        """A new call: from a trunk (by source address) or an authenticated account."""
        request = event.request
        trunk = self.trunk_for(event.source.host)
        user: str | None = None
        if trunk is None:
            decision = self.auth.authenticate(request, event.source, self.endpoint.now())
            if decision.response is not None:
                self._reply(event, decision.response)
                return
            user = decision.user
        if self.calls is None:
            self._reply(event, make_response(request, 480, to_tag=secrets.token_hex(8)))
            return
        self.calls.new_call(event, user=user, trunk=trunk)

    def _reply(self, event: RequestReceived, response: Response) -> None:
        self.endpoint.send_response(event.transaction, response)

    @staticmethod
    def _capabilities(response: Response) -> Response:
        response.headers.add("Allow", ALLOW)
        response.headers.add("Accept", ACCEPT)
        response.headers.add("Supported", SUPPORTED)
        return response

    # -- REGISTER --------------------------------------------------------------------

    def _register(self, event: RequestReceived) -> None:
        request = event.request
        now = self.endpoint.now()
        decision = self.auth.authenticate(request, event.source, now)
        if decision.response is not None:
            self._reply(event, decision.response)
            return
        assert decision.user is not None
        to_uri = request.to.uri
        if not isinstance(to_uri, SipUri) or to_uri.user_unescaped != decision.user:
            # RFC 3261 10.3 step 6: the credentials must be allowed to change this AOR.
            self._reply(event, make_response(request, 403, to_tag=secrets.token_hex(8)))
            return
        result = self.location.register(request, decision.user, event.source, now)
        if result.response.status == 200:
            self.registrations_ok += 1
            result.response.headers.add("Date", formatdate(usegmt=True))
        self._reply(event, result.response)
        self._emit(result.events)

    # -- keep-alive pings ------------------------------------------------------------

    def _ping(self, binding: Binding) -> None:
        destination = binding.destination
        via = self.endpoint.via_for(destination)
        ours = self.endpoint.contact_uri(destination.transport, toward=destination.host)
        headers = Headers()
        headers.add("Via", str(via))
        headers.add("Max-Forwards", "70")
        headers.add("To", f"<{binding.uri}>")
        headers.add("From", f"<sip:ping@{self.domain}>;tag={secrets.token_hex(8)}")
        headers.add("Call-ID", secrets.token_hex(16))
        headers.add("CSeq", "1 OPTIONS")
        headers.add("Contact", f"<{ours}>")
        headers.add("User-Agent", self.endpoint.policy.server_name)
        request = Request("OPTIONS", binding.uri, headers)
        key = self.endpoint.send_request(request, destination)
        self._pings[key] = _Ping(binding)

    def ping_destination(self, user: str) -> list[Address]:
        """Where a request for ``user`` would go (for tests and the API)."""
        return [b.destination for b in self.location.lookup(user)]
