"""What address to put on the wire when we are bound to a wildcard (0.0.0.0, ::).

A socket bound to every interface has no one address of its own, and
``0.0.0.0`` in a Via, a Contact or an SDP ``c=`` line tells the peer nothing
(in SDP it even means "hold"). The address a peer can reach us at is the
one our packets to it leave from: the source address of the kernel's route
towards it. :class:`FacingAddresses` asks the kernel for that route (a UDP
socket ``connect``, which sends nothing) and remembers the answer per peer,
so a phone on the LAN sees our LAN address and a trunk on another interface
its own.

Behind NAT the route's source is a private address the peer cannot reach:
that is what ``sip.advertised_address`` is for, and it wins over this.
"""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["FacingAddresses", "is_wildcard"]

# No route is looked up for a name (that would be a DNS query on the event
# loop): the default route's source stands for it, found by a connect to a
# documentation address (RFC 5737, RFC 3849) that sends nothing.
_DEFAULT_ROUTE = {socket.AF_INET: "192.0.2.1", socket.AF_INET6: "2001:db8::1"}
_LOOPBACK = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}


def is_wildcard(host: str) -> bool:
    """True for an address that means "every interface" when bound."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


class FacingAddresses:
    """The local address facing each peer, from the kernel's routes, remembered.

    ``toward(peer_host)`` never blocks on the network. At most ``limit``
    peers are remembered; past that the memory starts again, so a scan from
    many addresses cannot grow it. A route that changes while an address is
    remembered (an interface renumbered) is seen after the next restart of
    the memory: ``forget()`` clears it.
    """

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._known: dict[str, str] = {}

    def toward(self, peer_host: str, *, v6: bool | None = None) -> str:
        """Our address on the route to ``peer_host`` (an IP literal, or a name).

        For a name, the default route's source of the family ``v6`` picks
        (IPv4 when None). With no route at all, the loopback address.
        """
        known = self._known.get(peer_host)
        if known is not None:
            return known
        try:
            peer = ipaddress.ip_address(peer_host.strip("[]"))
        except ValueError:
            family = socket.AF_INET6 if v6 else socket.AF_INET
            target = _DEFAULT_ROUTE[family]
        else:
            family = socket.AF_INET6 if peer.version == 6 else socket.AF_INET
            target = str(peer)
        local = _route_source(family, target)
        if len(self._known) >= self._limit:
            self._known.clear()
        self._known[peer_host] = local
        return local

    def forget(self) -> None:
        """Look every route up again from now on."""
        self._known.clear()


def _route_source(family: socket.AddressFamily, target: str) -> str:
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((target, 9))  # UDP connect: a route lookup, nothing is sent
            host = str(probe.getsockname()[0])
    except OSError:
        return _LOOPBACK[family]
    return host.partition("%")[0]  # no IPv6 scope on the wire
