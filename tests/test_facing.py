"""sip/facing.py and where it is used: which address a wildcard bind puts on the wire.

The route lookups are real (a UDP connect, nothing sent) but only towards
loopback and documentation addresses; the wire test is
tests/test_acd_sipp.py::test_a_wildcard_bind_never_reaches_the_wire.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from acd.calls import MediaEngine
from sip.endpoint import EndpointPolicy, SipEndpoint
from sip.events import Address
from sip.facing import FacingAddresses, is_wildcard


@pytest.mark.parametrize(
    ("host", "wildcard"),
    [("0.0.0.0", True), ("::", True), ("127.0.0.1", False), ("::1", False), ("acd.local", False)],
)
def test_is_wildcard(host: str, wildcard: bool) -> None:
    assert is_wildcard(host) is wildcard


def test_a_loopback_peer_is_faced_from_loopback() -> None:
    facing = FacingAddresses()
    assert facing.toward("127.0.0.1") == "127.0.0.1"
    assert facing.toward("127.0.0.9") == "127.0.0.1"  # the 127/8 route's source


def test_ipv6_loopback_and_brackets() -> None:
    facing = FacingAddresses()
    assert facing.toward("::1") == "::1"
    assert facing.toward("[::1]") == "::1"


def test_a_name_is_never_resolved_and_gets_the_default_routes_source() -> None:
    facing = FacingAddresses()
    # No DNS on the loop: a name stands for "anywhere", the default route.
    assert facing.toward("no-such-host.invalid") == facing.toward("")


def test_answers_are_remembered_within_a_limit() -> None:
    facing = FacingAddresses(limit=2)
    facing.toward("127.0.0.1")
    facing.toward("127.0.0.2")
    assert len(facing._known) == 2
    facing.toward("127.0.0.3")  # full: the memory starts again
    assert list(facing._known) == ["127.0.0.3"]
    facing.forget()
    assert facing._known == {}


class _Local:
    """TransportSet.local_address with a fixed answer."""

    def __init__(self, host: str) -> None:
        self.host = host

    def local_address(self, transport: str, v6: bool = False) -> Address:
        return Address(transport, self.host, 5060)


def _endpoint(bound: str, advertised: str | None = None) -> SipEndpoint:
    endpoint = SipEndpoint(EndpointPolicy(advertised_host=advertised), lambda _event: None)
    endpoint.transports = _Local(bound)  # type: ignore[assignment]
    return endpoint


def test_via_and_contact_of_a_wildcard_bind_name_the_route_to_the_peer() -> None:
    endpoint = _endpoint("0.0.0.0")
    via = endpoint.via_for(Address("UDP", "127.0.0.1", 5070))
    assert (via.host, via.port) == ("127.0.0.1", 5060)
    contact = endpoint.contact_uri("UDP", toward="127.0.0.1")
    assert (contact.host, contact.port) == ("127.0.0.1", 5060)


def test_a_bound_address_is_used_as_it_is() -> None:
    endpoint = _endpoint("127.0.0.7")
    assert endpoint.via_for(Address("UDP", "127.0.0.1", 5070)).host == "127.0.0.7"
    assert endpoint.contact_uri("TCP", toward="127.0.0.1").host == "127.0.0.7"


def test_the_advertised_address_wins() -> None:
    endpoint = _endpoint("0.0.0.0", advertised="203.0.113.10")
    assert endpoint.via_for(Address("UDP", "127.0.0.1", 5070)).host == "203.0.113.10"
    assert endpoint.contact_uri("UDP", toward="127.0.0.1").host == "203.0.113.10"


async def test_sdp_address_follows_the_same_rules(tmp_path: Path) -> None:
    def media(address: str, advertised: str | None = None) -> MediaEngine:
        return MediaEngine(
            address, (42000, 42009), prompts_dir=None, cache_dir=tmp_path, advertised=advertised
        )

    assert media("0.0.0.0").sdp_address("127.0.0.1") == "127.0.0.1"
    assert media("::").sdp_address("::1") == "::1"
    assert media("127.0.0.7").sdp_address("127.0.0.1") == "127.0.0.7"
    assert media("0.0.0.0", "203.0.113.10").sdp_address("127.0.0.1") == "203.0.113.10"
