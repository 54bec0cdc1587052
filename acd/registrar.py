"""Registrar and location service (RFC 3261 section 10.3), sans-I/O.

The registrar turns an authenticated REGISTER into binding changes and the
200 (or 400/423/500) to send back; the location service answers "where do I
send a request for user 1001?". Time comes in as ``now``; the asyncio side
expires bindings and sends OPTIONS keep-alive pings from the values asked for
here.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from sip import NameAddr, Request, Response, SipSyntaxError, SipUri, make_response
from sip.events import Address
from sip.headers import parse_uint

__all__ = [
    "Binding",
    "BindingAdded",
    "BindingRemoved",
    "LocationService",
    "RegistrarPolicy",
    "RegistrationResult",
]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Binding:
    """One registered contact of an account.

    ``destination`` is where requests for this contact are sent: the Contact's
    own address when it is reachable, else the address the REGISTER came from
    (a phone behind NAT, or any stream transport, whose connection we reuse).
    """

    user: str
    contact: NameAddr
    destination: Address
    source: Address
    expires_at: float
    call_id: str
    cseq: int
    registered_at: float
    user_agent: str = ""
    missed_pings: int = 0
    next_ping_at: float = 0.0

    @property
    def uri(self) -> SipUri:
        """The contact URI (always a SIP URI: other schemes are refused at REGISTER)."""
        assert isinstance(self.contact.uri, SipUri)
        return self.contact.uri

    def expires_in(self, now: float) -> int:
        """Seconds left, rounded down, never negative."""
        return max(0, round(self.expires_at - now))


@dataclass(frozen=True, slots=True)
class BindingAdded:
    """A contact was registered (new, not a refresh)."""

    user: str
    contact: str


@dataclass(frozen=True, slots=True)
class BindingRemoved:
    """A contact went away; ``reason`` is unregistered, expired, replaced or unreachable."""

    user: str
    contact: str
    reason: str


@dataclass(frozen=True, slots=True)
class RegistrarPolicy:
    """Limits applied to REGISTER requests."""

    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 600
    max_contacts: int = 10
    keepalive_interval: float = 30.0
    keepalive_failures: int = 2


@dataclass(slots=True)
class RegistrationResult:
    """The response to send and what changed."""

    response: Response
    events: list[BindingAdded | BindingRemoved] = field(default_factory=list)


def _respond(request: Request, status: int, reason: str | None = None) -> Response:
    return make_response(request, status, reason, to_tag=secrets.token_hex(8))


def _is_unreachable(host: str) -> bool:
    """Hosts we cannot reach from outside the phone's own network."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return True  # a name we may not resolve, such as the ".invalid" of WebRTC phones
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified


def contact_destination(uri: SipUri, source: Address) -> Address:
    """Where to send requests for a contact registered from ``source``.

    Stream transports reuse the registering connection (the RFC 5626 flow idea);
    for WebSocket (RFC 7118) that connection is the only way: a browser's
    contact host is a made-up ``.invalid`` name and no one can connect to it.
    Over UDP a contact on the source host is used as given; a private, loopback
    or unresolvable contact elsewhere means the phone is behind NAT, so requests
    go to the source address the REGISTER came from; a public contact on another
    host (a third-party registration) is used as given.
    """
    if source.reliable:
        return source
    if uri.host != source.host and _is_unreachable(uri.host):
        return source
    return Address(source.transport, uri.host, uri.port or 5060)


def _phase(user: str, contact: str) -> float:
    """Where in its keep-alive interval a binding's pings fall: 0.5 to 1.0 of it, by contact.

    Phones registered in the same second (an office after a power cut, a
    test harness) would otherwise all be pinged in the same second for as
    long as they stay, hundreds of OPTIONS in one burst. A checksum rather
    than a random draw, so the schedule is the same every run.
    """
    return 0.5 + (zlib.crc32(f"{user}\0{contact}".encode()) % 1000) / 2000


class LocationService:
    """Bindings per account, with REGISTER processing and keep-alive bookkeeping."""

    def __init__(self, policy: RegistrarPolicy | None = None) -> None:
        self.policy = policy if policy is not None else RegistrarPolicy()
        self._bindings: dict[str, list[Binding]] = {}
        # Hosts of every binding's source and destination, rebuilt on demand
        # after any change (None): asked when a source floods, not per request.
        self._hosts: frozenset[str] | None = None

    # -- queries ---------------------------------------------------------------------

    def lookup(self, user: str) -> list[Binding]:
        """Live bindings of ``user``, most recently registered first."""
        return sorted(self._bindings.get(user, ()), key=lambda b: -b.registered_at)

    def is_registered(self, user: str) -> bool:
        """True when ``user`` has at least one binding."""
        return bool(self._bindings.get(user))

    def has_host(self, host: str) -> bool:
        """True when some binding was registered from, or is reached at, IP ``host``."""
        if self._hosts is None:
            self._hosts = frozenset(h for b in self for h in (b.source.host, b.destination.host))
        return host in self._hosts

    def __iter__(self) -> Iterator[Binding]:
        for bindings in self._bindings.values():
            yield from bindings

    def __len__(self) -> int:
        return sum(len(b) for b in self._bindings.values())

    # -- REGISTER --------------------------------------------------------------------

    def register(
        self, request: Request, user: str, source: Address, now: float
    ) -> RegistrationResult:
        """Apply an authenticated REGISTER for account ``user`` (RFC 3261 10.3 steps 6-8)."""
        self._hosts = None
        try:
            return self._register(request, user, source, now)
        except SipSyntaxError as exc:
            log.info("bad REGISTER from %s: %s", source, exc)
            return RegistrationResult(_respond(request, 400, "Bad Contact"))

    def _register(
        self, request: Request, user: str, source: Address, now: float
    ) -> RegistrationResult:
        policy = self.policy
        expires_header = request.headers.get("expires")
        default = policy.default_expires
        if expires_header is not None:
            default = parse_uint(expires_header, "Expires", 2**32 - 1)
        contacts = request.contacts
        call_id = request.call_id
        cseq = request.cseq.seq
        events: list[BindingAdded | BindingRemoved] = []
        current = self._bindings.setdefault(user, [])

        if contacts is None:  # Contact: *
            if default != 0 or len(request.headers.get_list("contact")) != 1:
                return RegistrationResult(_respond(request, 400, "Invalid Wildcard"))
            for b in current:
                if b.call_id == call_id and b.cseq >= cseq:
                    return RegistrationResult(_respond(request, 500, "Out Of Order"))
            for b in current:
                events.append(BindingRemoved(user, str(b.uri), "unregistered"))
            current.clear()
            return RegistrationResult(self._ok(request, user, now), events)

        changes: list[tuple[NameAddr, int]] = []
        for contact in contacts:
            if not isinstance(contact.uri, SipUri):
                return RegistrationResult(_respond(request, 416))
            expires = default
            param = contact.params.get("expires")
            if param is not None:
                expires = parse_uint(param, "expires parameter", 2**32 - 1)
            if 0 < expires < policy.min_expires:
                response = _respond(request, 423)
                response.headers.add("Min-Expires", str(policy.min_expires))
                return RegistrationResult(response)
            changes.append((contact, min(expires, policy.max_expires)))

        for contact, _ in changes:
            existing = self._find(current, contact)
            if existing is not None and existing.call_id == call_id and existing.cseq >= cseq:
                return RegistrationResult(_respond(request, 500, "Out Of Order"))

        user_agent = request.headers.get("user-agent") or ""
        for contact, expires in changes:
            existing = self._find(current, contact)
            if expires == 0:
                if existing is not None:
                    current.remove(existing)
                    events.append(BindingRemoved(user, str(existing.uri), "unregistered"))
                continue
            uri = contact.uri
            assert isinstance(uri, SipUri)
            if existing is not None:
                existing.contact = contact
                existing.expires_at = now + expires
                existing.call_id = call_id
                existing.cseq = cseq
                existing.source = source
                existing.destination = contact_destination(uri, source)
                existing.user_agent = user_agent
                existing.missed_pings = 0
                continue
            current.append(
                Binding(
                    user=user,
                    contact=contact,
                    destination=contact_destination(uri, source),
                    source=source,
                    expires_at=now + expires,
                    call_id=call_id,
                    cseq=cseq,
                    registered_at=now,
                    user_agent=user_agent,
                    next_ping_at=now + policy.keepalive_interval * _phase(user, str(uri)),
                )
            )
            events.append(BindingAdded(user, str(uri)))
        while len(current) > policy.max_contacts:
            oldest = min(current, key=lambda b: b.registered_at)
            current.remove(oldest)
            events.append(BindingRemoved(user, str(oldest.uri), "replaced"))
        if not current:
            del self._bindings[user]
        return RegistrationResult(self._ok(request, user, now), events)

    @staticmethod
    def _find(bindings: list[Binding], contact: NameAddr) -> Binding | None:
        for b in bindings:
            if b.contact.uri == contact.uri:
                return b
        return None

    def _ok(self, request: Request, user: str, now: float) -> Response:
        response = _respond(request, 200)
        for b in self.lookup(user):
            response.headers.add("Contact", f"<{b.uri}>;expires={b.expires_in(now)}")
        return response

    # -- housekeeping ----------------------------------------------------------------

    def expire(self, now: float) -> list[BindingRemoved]:
        """Drop bindings whose time is up."""
        removed: list[BindingRemoved] = []
        for user in list(self._bindings):
            bindings = self._bindings[user]
            for b in [b for b in bindings if b.expires_at <= now]:
                self._hosts = None
                bindings.remove(b)
                removed.append(BindingRemoved(user, str(b.uri), "expired"))
            if not bindings:
                del self._bindings[user]
        return removed

    def remove_user(self, user: str, reason: str) -> list[BindingRemoved]:
        """Drop every binding of ``user`` (an account removed or disabled)."""
        bindings = self._bindings.pop(user, [])
        if bindings:
            self._hosts = None
        return [BindingRemoved(user, str(b.uri), reason) for b in bindings]

    def remove_destination(self, destination: Address, reason: str) -> list[BindingRemoved]:
        """Drop every binding reached at ``destination`` (its WebSocket closed)."""
        removed: list[BindingRemoved] = []
        for user in list(self._bindings):
            bindings = self._bindings[user]
            for b in [b for b in bindings if b.destination == destination]:
                self._hosts = None
                bindings.remove(b)
                removed.append(BindingRemoved(user, str(b.uri), reason))
            if not bindings:
                del self._bindings[user]
        return removed

    def next_expiry(self) -> float | None:
        """The earliest binding expiry, for the caller's timer."""
        return min((b.expires_at for b in self), default=None)

    def pings_due(self, now: float) -> list[Binding]:
        """Bindings that should get an OPTIONS keep-alive now (and schedule the next)."""
        interval = self.policy.keepalive_interval
        if interval <= 0:
            return []
        due = [b for b in self if b.next_ping_at <= now]
        for b in due:
            b.next_ping_at = now + interval
        return due

    def ping_answered(self, binding: Binding) -> None:
        """Any response to the ping proves the phone is alive."""
        binding.missed_pings = 0

    def ping_failed(self, binding: Binding) -> list[BindingRemoved]:
        """A ping timed out or could not be sent; drop the binding after too many."""
        binding.missed_pings += 1
        if binding.missed_pings < self.policy.keepalive_failures:
            return []
        bindings = self._bindings.get(binding.user, [])
        if binding in bindings:
            self._hosts = None
            bindings.remove(binding)
            if not bindings:
                del self._bindings[binding.user]
            return [BindingRemoved(binding.user, str(binding.uri), "unreachable")]
        return []
