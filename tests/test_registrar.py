"""Location service and REGISTER processing, with explicit times (no sockets)."""

from __future__ import annotations

from acd.registrar import (
    BindingAdded,
    BindingRemoved,
    LocationService,
    RegistrarPolicy,
    contact_destination,
)
from sip import Request, SipUri, parse_message
from sip.events import Address

SOURCE = Address("UDP", "127.0.0.1", 40000)


def register(
    contacts: str | list[str] | None,
    *,
    expires: int | None = None,
    call_id: str = "reg-1",
    cseq: int = 1,
    user: str = "1001",
) -> Request:
    lines = [
        "REGISTER sip:acd.local SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-reg;rport",
        f"From: <sip:{user}@acd.local>;tag=abc",
        f"To: <sip:{user}@acd.local>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        "Max-Forwards: 70",
        "User-Agent: test-phone/1.0",
    ]
    if isinstance(contacts, str):
        lines.append(f"Contact: {contacts}")
    elif contacts:
        lines.extend(f"Contact: {c}" for c in contacts)
    if expires is not None:
        lines.append(f"Expires: {expires}")
    data = ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def test_register_adds_binding_and_lists_it_in_200() -> None:
    loc = LocationService()
    result = loc.register(register("<sip:1001@127.0.0.1:40000>", expires=300), "1001", SOURCE, 0)
    assert result.response.status == 200
    assert result.events == [BindingAdded("1001", "sip:1001@127.0.0.1:40000")]
    assert result.response.headers.get_all("contact") == ["<sip:1001@127.0.0.1:40000>;expires=300"]
    assert result.response.to.tag
    (binding,) = loc.lookup("1001")
    assert binding.destination == Address("UDP", "127.0.0.1", 40000)


def test_several_contacts_per_account_and_contact_expires_param_wins() -> None:
    loc = LocationService()
    req = register(
        ["<sip:1001@127.0.0.1:40000>;expires=120", "<sip:1001@127.0.0.1:40002>"], expires=600
    )
    result = loc.register(req, "1001", SOURCE, 0)
    assert result.response.status == 200
    by_uri = {str(b.uri): b.expires_in(0) for b in loc.lookup("1001")}
    assert by_uri == {"sip:1001@127.0.0.1:40000": 120, "sip:1001@127.0.0.1:40002": 600}


def test_expires_is_capped_and_default_applies() -> None:
    loc = LocationService(RegistrarPolicy(max_expires=3600, default_expires=600))
    loc.register(register("<sip:1001@127.0.0.1:40000>", expires=99999), "1001", SOURCE, 0)
    assert loc.lookup("1001")[0].expires_in(0) == 3600
    loc.register(register("<sip:1002@127.0.0.1:40001>", user="1002"), "1002", SOURCE, 0)
    assert loc.lookup("1002")[0].expires_in(0) == 600


def test_too_brief_interval_gets_423_with_min_expires() -> None:
    loc = LocationService(RegistrarPolicy(min_expires=60))
    result = loc.register(register("<sip:1001@127.0.0.1:40000>", expires=30), "1001", SOURCE, 0)
    assert result.response.status == 423
    assert result.response.headers.get("min-expires") == "60"
    assert not loc.is_registered("1001")


def test_unregister_with_expires_zero_and_wildcard() -> None:
    loc = LocationService()
    loc.register(
        register(["<sip:1001@127.0.0.1:40000>", "<sip:1001@127.0.0.1:40002>"], expires=300),
        "1001",
        SOURCE,
        0,
    )
    result = loc.register(
        register("<sip:1001@127.0.0.1:40000>;expires=0", cseq=2), "1001", SOURCE, 1
    )
    assert result.events == [BindingRemoved("1001", "sip:1001@127.0.0.1:40000", "unregistered")]
    assert [str(b.uri) for b in loc.lookup("1001")] == ["sip:1001@127.0.0.1:40002"]
    result = loc.register(register("*", expires=0, cseq=3), "1001", SOURCE, 2)
    assert result.response.status == 200
    assert not loc.is_registered("1001")


def test_wildcard_needs_expires_zero() -> None:
    loc = LocationService()
    assert loc.register(register("*", expires=300), "1001", SOURCE, 0).response.status == 400
    assert loc.register(register("*"), "1001", SOURCE, 0).response.status == 400


def test_query_without_contact_lists_bindings() -> None:
    loc = LocationService()
    loc.register(register("<sip:1001@127.0.0.1:40000>", expires=300), "1001", SOURCE, 0)
    result = loc.register(register(None, cseq=2), "1001", SOURCE, 100)
    assert result.response.status == 200
    assert result.response.headers.get_all("contact") == ["<sip:1001@127.0.0.1:40000>;expires=200"]


def test_out_of_order_cseq_for_same_call_id_is_refused() -> None:
    loc = LocationService()
    loc.register(register("<sip:1001@127.0.0.1:40000>", cseq=5), "1001", SOURCE, 0)
    result = loc.register(register("<sip:1001@127.0.0.1:40000>", cseq=4), "1001", SOURCE, 1)
    assert result.response.status == 500
    # A rebooted phone uses a new Call-ID and may start low again.
    result = loc.register(
        register("<sip:1001@127.0.0.1:40000>", cseq=1, call_id="reg-2"), "1001", SOURCE, 1
    )
    assert result.response.status == 200


def test_refresh_updates_expiry_without_new_event() -> None:
    loc = LocationService()
    loc.register(register("<sip:1001@127.0.0.1:40000>", expires=100), "1001", SOURCE, 0)
    result = loc.register(
        register("<sip:1001@127.0.0.1:40000>", expires=100, cseq=2), "1001", SOURCE, 50
    )
    assert result.events == []
    assert loc.lookup("1001")[0].expires_in(50) == 100


def test_stale_bindings_expire() -> None:
    loc = LocationService()
    loc.register(register("<sip:1001@127.0.0.1:40000>", expires=100), "1001", SOURCE, 0)
    assert loc.next_expiry() == 100
    assert loc.expire(99.9) == []
    assert loc.expire(100) == [BindingRemoved("1001", "sip:1001@127.0.0.1:40000", "expired")]
    assert len(loc) == 0


def test_max_contacts_evicts_the_oldest() -> None:
    loc = LocationService(RegistrarPolicy(max_contacts=2))
    for i in range(3):
        loc.register(
            register(f"<sip:1001@127.0.0.1:{40000 + i}>", call_id=f"c{i}"), "1001", SOURCE, i
        )
    assert sorted(str(b.uri) for b in loc.lookup("1001")) == [
        "sip:1001@127.0.0.1:40001",
        "sip:1001@127.0.0.1:40002",
    ]


def test_non_sip_contact_is_refused() -> None:
    loc = LocationService()
    result = loc.register(register("<tel:+15551234>"), "1001", SOURCE, 0)
    assert result.response.status == 416


def test_nat_private_contact_uses_source_address() -> None:
    public_source = Address("UDP", "203.0.113.7", 31000)
    uri = SipUri(host="192.168.1.20", user="1001", port=5060)
    assert contact_destination(uri, public_source) == public_source
    # A contact on the source host is used as given.
    uri = SipUri(host="203.0.113.7", user="1001", port=5062)
    assert contact_destination(uri, public_source) == Address("UDP", "203.0.113.7", 5062)
    # Names we may not resolve (WebRTC's .invalid) also go to the source.
    uri = SipUri(host="abcdef.invalid", user="1001")
    assert contact_destination(uri, public_source) == public_source


def test_stream_transport_reuses_the_connection() -> None:
    source = Address("TCP", "127.0.0.1", 50123)
    uri = SipUri(host="127.0.0.1", user="1001", port=5060, params={"transport": "tcp"})
    assert contact_destination(uri, source) == source


def test_keepalive_pings_and_failures_drop_dead_phones() -> None:
    loc = LocationService(RegistrarPolicy(keepalive_interval=30, keepalive_failures=2))
    loc.register(register("<sip:1001@127.0.0.1:40000>", expires=3600), "1001", SOURCE, 0)
    assert loc.pings_due(14.9) == []
    (binding,) = loc.pings_due(30)  # the first ping comes 15 to 30 s after registering
    assert loc.pings_due(59.9) == []  # the next one 30 s after that
    assert loc.pings_due(60) == [binding]
    assert loc.ping_failed(binding) == []
    loc.ping_answered(binding)
    assert loc.ping_failed(binding) == []
    assert loc.ping_failed(binding) == [
        BindingRemoved("1001", "sip:1001@127.0.0.1:40000", "unreachable")
    ]
    assert not loc.is_registered("1001")


def test_phones_registered_together_are_not_pinged_together() -> None:
    """An office of 100 phones registering in the same second: their keep-alives
    spread over half the interval instead of 100 OPTIONS in one burst, every 30 s."""
    loc = LocationService(RegistrarPolicy(keepalive_interval=30))
    for n in range(100):
        user = str(2000 + n)
        loc.register(register(f"<sip:{user}@127.0.0.1:{41000 + n}>", expires=3600, user=user),
                     user, SOURCE, 0)  # fmt: skip
    per_second = [len(loc.pings_due(float(second))) for second in range(1, 31)]
    assert sum(per_second) == 100
    assert max(per_second) <= 15
    assert per_second[:14] == [0] * 14


def test_has_host_follows_bindings_as_they_come_and_go() -> None:
    # What the request limiter exempts: where phones register from and are reached.
    loc = LocationService(RegistrarPolicy(keepalive_interval=30, keepalive_failures=1))
    nat = Address("UDP", "203.0.113.7", 31000)
    assert not loc.has_host("203.0.113.7")
    # 100.64/10 is not private to ipaddress, so the contact itself is the destination.
    loc.register(register("<sip:1001@100.64.0.9:5060>", expires=60), "1001", nat, 0)
    assert loc.has_host("203.0.113.7") and loc.has_host("100.64.0.9")
    assert not loc.has_host("192.0.2.1")
    loc.register(register("<sip:1002@192.0.2.1>", user="1002", call_id="r2"), "1002", SOURCE, 0)
    assert loc.has_host("127.0.0.1")
    (binding,) = loc.pings_due(30)[:1]
    assert loc.ping_failed(binding) and not loc.has_host(binding.source.host)
    loc.expire(3600)
    assert not loc.has_host("203.0.113.7") and not loc.has_host("127.0.0.1")


def test_a_browsers_contact_is_reached_over_its_websocket() -> None:
    ws = Address("WS", "192.0.2.7", 51234)
    uri = SipUri(host="df7jal23ls0d.invalid", user="abc", params={"transport": "ws"})
    assert contact_destination(uri, ws) == ws
    assert contact_destination(uri, Address("WSS", "192.0.2.7", 51235)).transport == "WSS"


def test_bindings_reached_over_a_closed_websocket_go_and_others_stay() -> None:
    loc = LocationService()
    ws = Address("WS", "127.0.0.1", 51234)
    other = Address("WS", "127.0.0.1", 51235)
    browser = "<sip:abc@df7jal23ls0d.invalid;transport=ws>"
    loc.register(register(browser, expires=300), "1001", ws, 0)
    loc.register(register("<sip:xyz@k2.invalid;transport=ws>", user="1002"), "1002", other, 0)
    loc.register(register("<sip:1001@127.0.0.1:40000>", call_id="desk"), "1001", SOURCE, 0)
    assert loc.has_host("127.0.0.1")
    removed = loc.remove_destination(ws, "unreachable")
    assert removed == [
        BindingRemoved("1001", "sip:abc@df7jal23ls0d.invalid;transport=ws", "unreachable")
    ]
    assert [str(b.uri) for b in loc.lookup("1001")] == ["sip:1001@127.0.0.1:40000"]
    assert loc.is_registered("1002")
    assert loc.remove_destination(other, "unreachable")[0].user == "1002"
    assert not loc.is_registered("1002")
    assert loc.remove_destination(other, "unreachable") == []
