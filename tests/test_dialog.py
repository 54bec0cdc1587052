"""Dialogs (RFC 3261 section 12) between two in-memory user agents, no sockets.

Alice (192.0.2.10) calls Bob (198.51.100.20) through two record-routing
proxies: p1 next to Alice, p2 next to Bob. Bob's side is the UAS dialog,
Alice's the UAC dialog; messages are literal bytes run through parse_message.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sip.dialog import (
    Dialog,
    DialogEstablished,
    DialogId,
    DialogSet,
    DialogState,
    DialogStateError,
    DialogTerminated,
    LocalDialogError,
    Outcome,
    RemoteDialogError,
    Role,
    TargetRefreshed,
)
from sip.headers import NameAddr, Via
from sip.message import Request, Response, make_response, parse_message
from sip.uri import SipUri, parse_uri

CALL_ID = "f81d4fae-7dec@192.0.2.10"
ALICE_TAG = "a73kszlfl"
BOB_TAG = "314159"
ALICE_CONTACT = "<sip:alice@192.0.2.10:5060>"
BOB_CONTACT = "<sip:bob@198.51.100.20:5070;transport=udp>"
P1 = "<sip:p1.example.com;lr>"
P2 = "<sip:p2.example.net;lr>"
# As they arrive at Bob: each proxy puts itself on top, so the one nearest Bob is first.
RECORD_ROUTES = (P2, P1)


def invite_bytes(
    *,
    method: str = "INVITE",
    uri: str = "sip:bob@example.net",
    cseq: int = 101,
    from_tag: str | None = ALICE_TAG,
    to_tag: str | None = None,
    contact: str | None = ALICE_CONTACT,
    record_routes: Sequence[str] = RECORD_ROUTES,
    transport: str = "UDP",
    extra: Sequence[str] = (),
) -> bytes:
    from_params = f";tag={from_tag}" if from_tag else ""
    to_params = f";tag={to_tag}" if to_tag else ""
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/{transport} p2.example.net;branch=z9hG4bK-p2-{cseq}",
        f"Via: SIP/2.0/{transport} 192.0.2.10:5060;branch=z9hG4bK-a-{cseq}",
        "Max-Forwards: 68",
        *(f"Record-Route: {rr}" for rr in record_routes),
        f"From: Alice <sip:alice@example.com>{from_params}",
        f"To: Bob <sip:bob@example.net>{to_params}",
        f"Call-ID: {CALL_ID}",
        f"CSeq: {cseq} {method}",
        *([f"Contact: {contact}"] if contact else []),
        *extra,
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def response_bytes(
    status: int,
    reason: str,
    *,
    method: str = "INVITE",
    cseq: int = 101,
    to_tag: str | None = BOB_TAG,
    contact: str | None = BOB_CONTACT,
    record_routes: Sequence[str] = RECORD_ROUTES,
) -> bytes:
    to_params = f";tag={to_tag}" if to_tag else ""
    lines = [
        f"SIP/2.0 {status} {reason}",
        f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-a-{cseq}",
        *(f"Record-Route: {rr}" for rr in record_routes),
        f"From: Alice <sip:alice@example.com>;tag={ALICE_TAG}",
        f"To: Bob <sip:bob@example.net>{to_params}",
        f"Call-ID: {CALL_ID}",
        f"CSeq: {cseq} {method}",
        *([f"Contact: {contact}"] if contact else []),
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def request(data: bytes) -> Request:
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def response(data: bytes) -> Response:
    message = parse_message(data)
    assert isinstance(message, Response)
    return message


def reparse(message: Request) -> Request:
    """What the peer sees: our request serialised and parsed again."""
    return request(message.serialize())


def via(branch: str, host: str = "192.0.2.10") -> Via:
    return Via("UDP", host, 5060, {"branch": f"z9hG4bK{branch}"})


def bob_dialog(**invite_kwargs: object) -> tuple[Dialog, Request]:
    """Bob's UAS dialog after answering the INVITE with 200."""
    invite = request(invite_bytes(**invite_kwargs))  # type: ignore[arg-type]
    ok = make_response(invite, 200, to_tag=BOB_TAG)
    ok.headers.add("contact", BOB_CONTACT)
    contact = NameAddr.parse(BOB_CONTACT)
    return Dialog.from_uas(invite, ok, contact, rng=random.Random(7)), invite


def alice_dialog(**response_kwargs: object) -> tuple[Dialog, Request]:
    """Alice's UAC dialog after receiving the 200."""
    invite = request(invite_bytes())
    ok = response(response_bytes(200, "OK", **response_kwargs))  # type: ignore[arg-type]
    return Dialog.from_uac(invite, ok, rng=random.Random(11)), invite


def state(dialog: Dialog) -> DialogState:
    """The dialog's state, read afresh (mypy would keep a narrowed type across calls)."""
    return dialog.state


def route_values(message: Request) -> list[str]:
    return message.header_list("route")


# -- creation (12.1) --------------------------------------------------------------------


def test_uas_dialog_from_invite_and_200() -> None:
    dialog, _ = bob_dialog()
    assert dialog.id == DialogId(CALL_ID, BOB_TAG, ALICE_TAG)
    assert dialog.role is Role.UAS
    assert state(dialog) is DialogState.CONFIRMED
    # 12.1.1: the UAS keeps Record-Route in order, nearest proxy first.
    assert dialog.route_set == [P2, P1]
    assert dialog.remote_target == parse_uri("sip:alice@192.0.2.10:5060")
    assert str(dialog.local_target) == BOB_CONTACT
    assert str(dialog.local_uri) == '"Bob" <sip:bob@example.net>'
    assert str(dialog.remote_uri) == '"Alice" <sip:alice@example.com>'
    assert dialog.remote_seq == 101
    assert dialog.local_seq is None
    assert not dialog.secure
    assert not dialog.pending_invite_in and not dialog.pending_invite_out


def test_uac_dialog_from_invite_and_200() -> None:
    dialog, _ = alice_dialog()
    assert dialog.id == DialogId(CALL_ID, ALICE_TAG, BOB_TAG)
    assert dialog.role is Role.UAC
    assert state(dialog) is DialogState.CONFIRMED
    # 12.1.2: the UAC reverses Record-Route, so its first hop (p1) comes first.
    assert dialog.route_set == [P1, P2]
    assert dialog.remote_target == parse_uri("sip:bob@198.51.100.20:5070;transport=udp")
    assert str(dialog.local_target) == ALICE_CONTACT
    assert str(dialog.local_uri) == '"Alice" <sip:alice@example.com>'
    assert str(dialog.remote_uri) == '"Bob" <sip:bob@example.net>'
    assert dialog.local_seq == 101
    assert dialog.remote_seq is None


def test_route_set_order_with_several_record_route_lines_and_commas() -> None:
    routes = ("<sip:p3.example.org;lr>", f"{P2}, {P1}")
    bob, _ = bob_dialog(record_routes=routes)
    assert bob.route_set == ["<sip:p3.example.org;lr>", P2, P1]
    alice, _ = alice_dialog(record_routes=routes)
    assert alice.route_set == [P1, P2, "<sip:p3.example.org;lr>"]


def test_no_record_route_means_empty_route_set() -> None:
    alice, _ = alice_dialog(record_routes=())
    assert alice.route_set == []
    bye = alice.create_request("BYE", via=via("bye"))
    assert str(bye.uri) == "sip:bob@198.51.100.20:5070;transport=udp"
    assert "route" not in bye.headers


def test_secure_needs_sips_and_tls() -> None:
    tls, _ = bob_dialog(uri="sips:bob@example.net", transport="TLS")
    assert tls.secure
    tcp, _ = bob_dialog(uri="sips:bob@example.net", transport="TCP")
    assert not tcp.secure


def test_rfc2543_peer_without_from_tag() -> None:
    bob, _ = bob_dialog(from_tag=None)
    assert bob.id.remote_tag == ""
    dialogs = DialogSet()
    dialogs.add(bob)
    bye = request(invite_bytes(method="BYE", cseq=102, from_tag=None, to_tag=BOB_TAG))
    assert dialogs.check_request(bye).dialog is bob
    assert "tag" not in bob.create_request("INFO", via=via("i")).to.params


def test_no_dialog_from_100_or_from_180_without_tag_or_from_error() -> None:
    invite = request(invite_bytes())
    with pytest.raises(LocalDialogError):
        Dialog.from_uac(invite, response(response_bytes(100, "Trying", to_tag=None)))
    with pytest.raises(LocalDialogError):
        Dialog.from_uac(invite, response(response_bytes(180, "Ringing", to_tag=None)))
    with pytest.raises(LocalDialogError):
        Dialog.from_uac(invite, response(response_bytes(486, "Busy Here")))
    with pytest.raises(LocalDialogError):
        Dialog.from_uac(invite, response(response_bytes(200, "OK", cseq=5)))


def test_uas_rejects_invite_without_contact() -> None:
    invite = request(invite_bytes(contact=None))
    ok = make_response(invite, 200, to_tag=BOB_TAG)
    with pytest.raises(RemoteDialogError) as info:
        Dialog.from_uas(invite, ok, NameAddr.parse(BOB_CONTACT))
    assert info.value.status == 400


def test_uas_rejects_non_sip_contact() -> None:
    invite = request(invite_bytes(contact="<tel:+15551234567>"))
    ok = make_response(invite, 200, to_tag=BOB_TAG)
    with pytest.raises(RemoteDialogError):
        Dialog.from_uas(invite, ok, NameAddr.parse(BOB_CONTACT))


@pytest.mark.parametrize("contact", [f"{ALICE_CONTACT}, <sip:alice@192.0.2.11>", "*"])
def test_uas_rejects_several_or_wildcard_contacts(contact: str) -> None:
    invite = request(invite_bytes(contact=contact))
    ok = make_response(invite, 200, to_tag=BOB_TAG)
    with pytest.raises(RemoteDialogError):
        Dialog.from_uas(invite, ok, NameAddr.parse(BOB_CONTACT))


def test_uac_dialog_is_secure_after_sips_over_tls() -> None:
    invite = request(invite_bytes(uri="sips:bob@example.net", transport="TLS"))
    assert Dialog.from_uac(invite, response(response_bytes(200, "OK"))).secure


def test_uac_rejects_200_without_contact() -> None:
    invite = request(invite_bytes())
    with pytest.raises(RemoteDialogError):
        Dialog.from_uac(invite, response(response_bytes(200, "OK", contact=None)))


def test_uas_response_needs_to_tag() -> None:
    invite = request(invite_bytes())
    with pytest.raises(LocalDialogError):
        Dialog.from_uas(invite, make_response(invite, 200), NameAddr.parse(BOB_CONTACT))


def test_local_contact_may_be_a_bare_uri() -> None:
    invite = request(invite_bytes())
    uri = parse_uri("sip:bob@198.51.100.20:5070")
    assert isinstance(uri, SipUri)
    dialog = Dialog.from_uas(invite, make_response(invite, 200, to_tag=BOB_TAG), uri)
    assert str(dialog.local_target) == "<sip:bob@198.51.100.20:5070>"


# -- early dialogs ----------------------------------------------------------------------


def test_early_uac_dialog_confirmed_by_200_recomputes_route_set() -> None:
    invite = request(invite_bytes())
    ringing = response(response_bytes(180, "Ringing", record_routes=(P1,), contact=None))
    dialog = Dialog.from_uac(invite, ringing)
    assert state(dialog) is DialogState.EARLY
    assert dialog.route_set == [P1]
    # No Contact in the 180: the early dialog targets the Request-URI meanwhile.
    assert dialog.remote_target == parse_uri("sip:bob@example.net")
    assert dialog.pending_invite_out

    events = dialog.receive_response(response(response_bytes(200, "OK")))
    assert events == [DialogEstablished(dialog.id)]
    assert state(dialog) is DialogState.CONFIRMED
    # 13.2.2.4: the route set is recomputed from the 2xx.
    assert dialog.route_set == [P1, P2]
    assert dialog.remote_target == parse_uri("sip:bob@198.51.100.20:5070;transport=udp")
    assert not dialog.pending_invite_out


def test_early_uac_dialog_ended_by_final_error() -> None:
    invite = request(invite_bytes())
    dialog = Dialog.from_uac(invite, response(response_bytes(183, "Session Progress")))
    # 12.3: a non-2xx final ends every early dialog of the request, whatever its tag.
    busy = response(response_bytes(486, "Busy Here", to_tag="other-fork"))
    assert dialog.receive_response(busy) == [DialogTerminated(dialog.id, "486 Busy Here")]
    assert state(dialog) is DialogState.TERMINATED


def test_forked_2xx_with_other_tag_does_not_confirm() -> None:
    invite = request(invite_bytes())
    dialog = Dialog.from_uac(invite, response(response_bytes(180, "Ringing")))
    dialogs = DialogSet()
    dialogs.add(dialog)
    other = response(response_bytes(200, "OK", to_tag="fork2"))
    assert dialogs.find(other) is None
    with pytest.raises(LocalDialogError):
        dialog.confirm(other)
    second = Dialog.from_uac(invite, other)
    dialogs.add(second)
    assert {d.id.remote_tag for d in dialogs.by_call_id(CALL_ID)} == {BOB_TAG, "fork2"}


def test_early_uas_dialog_confirmed_when_200_is_sent() -> None:
    invite = request(invite_bytes())
    ringing = make_response(invite, 180, to_tag=BOB_TAG)
    dialog = Dialog.from_uas(invite, ringing, NameAddr.parse(BOB_CONTACT))
    assert state(dialog) is DialogState.EARLY
    assert dialog.pending_invite_in
    with pytest.raises(LocalDialogError):
        dialog.create_request("BYE", via=via("b", "198.51.100.20"))  # RFC 3261 15

    ok = make_response(invite, 200, to_tag=BOB_TAG)
    assert dialog.response_sent(invite, ok) == [DialogEstablished(dialog.id)]
    assert state(dialog) is DialogState.CONFIRMED
    assert not dialog.pending_invite_in
    assert dialog.route_set == [P2, P1]


def test_early_uas_dialog_answers_overlapping_reinvite_with_500() -> None:
    invite = request(invite_bytes())
    dialog = Dialog.from_uas(
        invite, make_response(invite, 180, to_tag=BOB_TAG), NameAddr.parse(BOB_CONTACT)
    )
    reinvite = request(invite_bytes(cseq=102, to_tag=BOB_TAG))
    check = dialog.receive_request(reinvite)
    assert (check.outcome, check.status) == (Outcome.REJECT, 500)
    assert check.retry_after is not None


def test_confirm_twice_is_an_illegal_transition() -> None:
    dialog, _ = alice_dialog()
    with pytest.raises(DialogStateError):
        dialog.confirm(response(response_bytes(200, "OK")))


def test_terminate_is_idempotent_and_final() -> None:
    dialog, _ = alice_dialog()
    assert dialog.terminate("BYE") == DialogTerminated(dialog.id, "BYE")
    assert dialog.terminate("BYE") is None
    assert state(dialog) is DialogState.TERMINATED
    with pytest.raises(LocalDialogError):
        dialog.create_request("INFO", via=via("x"))
    with pytest.raises(DialogStateError):
        dialog.confirm(response(response_bytes(200, "OK")))


# -- matching requests and responses (12.2.2) -------------------------------------------


def call() -> tuple[Dialog, DialogSet, Dialog, DialogSet, Request]:
    """Alice and Bob in a confirmed call, each with their own dialog set."""
    invite = request(invite_bytes())
    ok = make_response(invite, 200, to_tag=BOB_TAG)
    ok.headers.add("contact", BOB_CONTACT)
    bob = Dialog.from_uas(invite, ok, NameAddr.parse(BOB_CONTACT), rng=random.Random(3))
    alice = Dialog.from_uac(invite, response(ok.serialize()), rng=random.Random(5))
    alice_set, bob_set = DialogSet(), DialogSet()
    alice_set.add(alice)
    bob_set.add(bob)
    return alice, alice_set, bob, bob_set, invite


@pytest.mark.parametrize("method", ["BYE", "INFO", "OPTIONS", "REFER"])
def test_requests_from_caller_match_callee_dialog(method: str) -> None:
    alice, alice_set, bob, bob_set, _ = call()
    sent = alice.create_request(method, via=via(method))
    check = bob_set.check_request(reparse(sent))
    assert check.accepted and check.dialog is bob
    assert bob.remote_seq == 102
    # The answer goes back to Alice, who finds her dialog by From tag (hers) and To tag.
    answer = make_response(reparse(sent), 200)
    assert alice_set.find(response(answer.serialize())) is alice


@pytest.mark.parametrize("method", ["BYE", "INFO", "OPTIONS", "REFER"])
def test_requests_from_callee_match_caller_dialog(method: str) -> None:
    alice, alice_set, bob, bob_set, _ = call()
    sent = bob.create_request(method, via=via(method, "198.51.100.20"))
    # Bob's From tag is his own tag; Alice sees her tag in To.
    assert sent.from_.tag == BOB_TAG and sent.to.tag == ALICE_TAG
    check = alice_set.check_request(reparse(sent))
    assert check.accepted and check.dialog is alice
    assert alice.remote_seq == sent.cseq.seq
    answer = make_response(reparse(sent), 200)
    assert bob_set.find(response(answer.serialize())) is bob


def test_one_set_holds_both_ends_of_a_call_to_ourselves() -> None:
    alice, _, bob, _, _ = call()
    dialogs = DialogSet()
    dialogs.add(alice)
    dialogs.add(bob)
    assert dialogs.check_request(reparse(alice.create_request("INFO", via=via("1")))).dialog is bob
    sent = bob.create_request("INFO", via=via("2", "198.51.100.20"))
    assert dialogs.check_request(reparse(sent)).dialog is alice


def test_unknown_dialog_gets_481_and_unknown_ack_is_dropped() -> None:
    _, _, _, bob_set, _ = call()
    stray = request(invite_bytes(method="BYE", cseq=200, to_tag="nobody"))
    check = bob_set.check_request(stray)
    assert (check.outcome, check.status, check.dialog) == (Outcome.REJECT, 481, None)
    ack = request(invite_bytes(method="ACK", cseq=101, to_tag="nobody"))
    assert bob_set.check_request(ack).outcome is Outcome.DROP


def test_request_without_to_tag_is_out_of_dialog() -> None:
    _, _, _, bob_set, _ = call()
    check = bob_set.check_request(request(invite_bytes(cseq=1)))
    assert check.outcome is Outcome.OUT_OF_DIALOG


def test_terminated_dialog_answers_481_and_drops_ack() -> None:
    _, _, bob, bob_set, _ = call()
    bob.terminate("BYE")
    bye = request(invite_bytes(method="BYE", cseq=102, to_tag=BOB_TAG))
    assert bob_set.check_request(bye).status == 481
    ack = request(invite_bytes(method="ACK", cseq=101, to_tag=BOB_TAG))
    assert bob_set.check_request(ack).outcome is Outcome.DROP


@pytest.mark.parametrize("seq", [100, 101])
def test_lower_or_repeated_cseq_gets_500(seq: int) -> None:
    _, _, bob, bob_set, _ = call()
    info = request(invite_bytes(method="INFO", cseq=seq, to_tag=BOB_TAG))
    check = bob_set.check_request(info)
    assert (check.outcome, check.status) == (Outcome.REJECT, 500)
    assert bob.remote_seq == 101


def test_ack_and_cancel_skip_the_cseq_check() -> None:
    _, _, bob, bob_set, _ = call()
    ack = request(invite_bytes(method="ACK", cseq=101, to_tag=BOB_TAG))
    assert bob_set.check_request(ack).accepted
    cancel = request(invite_bytes(method="CANCEL", cseq=101, to_tag=BOB_TAG))
    assert bob_set.check_request(cancel).accepted
    assert bob.remote_seq == 101


def test_dialog_set_add_remove() -> None:
    alice, alice_set, _, _, _ = call()
    alice_set.add(alice)  # the same object again is fine
    twin, _ = alice_dialog()
    with pytest.raises(LocalDialogError):
        alice_set.add(twin)
    assert alice.id in alice_set and len(alice_set) == 1
    assert list(alice_set) == [alice]
    assert alice_set.remove(alice.id) is alice
    assert alice_set.remove(alice.id) is None
    assert alice_set.get(alice.id) is None


# -- re-INVITE: glare, overlap, target refresh (12.2, 14) -------------------------------


def test_reinvite_glare_gets_491_and_retry_delays_follow_call_id_ownership() -> None:
    alice, alice_set, bob, bob_set, _ = call()
    ours = bob.create_request("INVITE", via=via("r1", "198.51.100.20"))
    assert bob.pending_invite_out
    theirs = alice.create_request("INVITE", via=via("r2"))
    check = bob_set.check_request(reparse(theirs))
    assert (check.outcome, check.status) == (Outcome.REJECT, 491)
    check = alice_set.check_request(reparse(ours))
    assert (check.outcome, check.status) == (Outcome.REJECT, 491)

    # Each side gets 491 back, which ends its re-INVITE transaction.
    assert alice.receive_response(make_response(reparse(theirs), 491, to_tag=BOB_TAG)) == []
    assert not alice.pending_invite_out
    rng = random.Random(1)
    for _ in range(200):
        # 14.1: Alice owns the Call-ID (she is the UAC): 2.1-4 s; Bob: 0-2 s; 10 ms steps.
        delay = alice.glare_retry_delay(rng)
        assert 2.1 <= delay <= 4.0 and delay * 100 == pytest.approx(round(delay * 100))
        assert 0.0 <= bob.glare_retry_delay(rng) <= 2.0


def test_overlapping_incoming_reinvites_get_500_with_retry_after() -> None:
    alice, _, bob, bob_set, _ = call()
    first = reparse(alice.create_request("INVITE", via=via("r1")))
    assert bob_set.check_request(first).accepted
    assert bob.pending_invite_in
    with pytest.raises(LocalDialogError):
        bob.create_request("INVITE", via=via("r", "198.51.100.20"))  # 14.1

    # A second re-INVITE while the first awaits its answer (Alice's dialog
    # would refuse to build one, so it comes from the wire).
    second = request(invite_bytes(cseq=103, to_tag=BOB_TAG))
    check = bob_set.check_request(second)
    assert (check.outcome, check.status) == (Outcome.REJECT, 500)
    assert check.retry_after is not None and 0 <= check.retry_after <= 10

    assert bob.response_sent(first, make_response(first, 200)) == []
    assert not bob.pending_invite_in
    third = request(invite_bytes(cseq=104, to_tag=BOB_TAG))
    assert bob_set.check_request(third).accepted


def test_reinvite_refreshes_remote_target_at_the_uas() -> None:
    _, _, bob, bob_set, _ = call()
    moved = "<sip:alice@203.0.113.5:5062>"
    reinvite = request(invite_bytes(cseq=102, to_tag=BOB_TAG, contact=moved))
    assert bob_set.check_request(reinvite).accepted
    # A rejected re-INVITE leaves the target alone.
    assert bob.response_sent(reinvite, make_response(reinvite, 488)) == []
    assert bob.remote_target == parse_uri("sip:alice@192.0.2.10:5060")

    again = request(invite_bytes(cseq=103, to_tag=BOB_TAG, contact=moved))
    assert bob_set.check_request(again).accepted
    assert bob.response_sent(again, make_response(again, 200)) == [TargetRefreshed(bob.id)]
    assert bob.remote_target == parse_uri("sip:alice@203.0.113.5:5062")
    assert str(bob.create_request("BYE", via=via("b", "198.51.100.20")).uri) == (
        "sip:alice@203.0.113.5:5062"
    )


def test_update_refreshes_target_but_info_does_not() -> None:
    _, _, bob, _, _ = call()
    moved = "<sip:alice@203.0.113.5>"
    info = request(invite_bytes(method="INFO", cseq=102, to_tag=BOB_TAG, contact=moved))
    assert bob.refresh_target(info) is None
    update = request(invite_bytes(method="UPDATE", cseq=103, to_tag=BOB_TAG, contact=moved))
    assert bob.refresh_target(update) == TargetRefreshed(bob.id)
    assert bob.refresh_target(update) is None  # unchanged now


def test_2xx_to_our_reinvite_refreshes_target_at_the_uac() -> None:
    alice, _, _, _, _ = call()
    alice.create_request("INVITE", via=via("r1"))
    moved = "<sip:bob@198.51.100.99:5070>"
    ok = response(response_bytes(200, "OK", cseq=102, contact=moved))
    assert alice.receive_response(ok) == [TargetRefreshed(alice.id)]
    assert alice.remote_target == parse_uri("sip:bob@198.51.100.99:5070")
    assert not alice.pending_invite_out


@pytest.mark.parametrize(("status", "reason"), [(481, "Call Does Not Exist"), (408, "Timeout")])
def test_481_or_408_to_an_in_dialog_request_ends_the_dialog(status: int, reason: str) -> None:
    alice, _, _, _, _ = call()
    alice.create_request("INFO", via=via("i"))
    answer = response(response_bytes(status, reason, method="INFO", cseq=102))
    assert alice.receive_response(answer) == [DialogTerminated(alice.id, f"{status} {reason}")]
    assert state(alice) is DialogState.TERMINATED


def test_is_target_refresh() -> None:
    for method in ("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"):
        assert Dialog.is_target_refresh(method)
    for method in ("BYE", "INFO", "OPTIONS", "ACK", "PRACK", "MESSAGE"):
        assert not Dialog.is_target_refresh(method)


# -- building requests (12.2.1.1) -------------------------------------------------------


def test_loose_routing_keeps_remote_target_in_request_uri() -> None:
    alice, _, _, _, _ = call()
    bye = alice.create_request("BYE", via=via("bye"))
    assert str(bye.uri) == "sip:bob@198.51.100.20:5070;transport=udp"
    assert route_values(bye) == [P1, P2]
    assert str(bye.to) == f'"Bob" <sip:bob@example.net>;tag={BOB_TAG}'
    assert str(bye.from_) == f'"Alice" <sip:alice@example.com>;tag={ALICE_TAG}'
    assert bye.call_id == CALL_ID
    assert bye.max_forwards == 70
    assert bye.top_via.branch == "z9hG4bKbye"
    assert "contact" not in bye.headers  # BYE is no target refresh


def test_strict_routing_puts_first_route_in_request_uri() -> None:
    strict = "<sip:strict.example.org;method=INVITE>"
    alice, _ = alice_dialog(record_routes=(P2, strict))
    assert alice.route_set == [strict, P2]
    bye = alice.create_request("BYE", via=via("bye"))
    # 12.2.1.1: the strict router's URI, minus parameters a Request-URI may not carry.
    assert str(bye.uri) == "sip:strict.example.org"
    assert route_values(bye) == [P2, "<sip:bob@198.51.100.20:5070;transport=udp>"]
    again = reparse(bye)
    assert str(again.uri) == "sip:strict.example.org"
    assert route_values(again) == [P2, "<sip:bob@198.51.100.20:5070;transport=udp>"]


def test_target_refresh_requests_carry_our_contact() -> None:
    alice, _, _, _, _ = call()
    for method in ("UPDATE", "NOTIFY", "REFER", "SUBSCRIBE"):
        sent = alice.create_request(method, via=via(method))
        assert sent.headers.get("contact") == ALICE_CONTACT
    info = alice.create_request("INFO", via=via("info"))
    assert "contact" not in info.headers


def test_cseq_increments_across_requests_from_the_uac() -> None:
    alice, _, _, _, _ = call()
    seqs = [alice.create_request(m, via=via(m)).cseq.seq for m in ("INFO", "OPTIONS", "BYE")]
    assert seqs == [102, 103, 104]
    assert alice.local_seq == 104


def test_uas_starts_cseq_at_random_then_increments() -> None:
    _, _, bob, _, _ = call()
    first = bob.create_request("INFO", via=via("1", "198.51.100.20")).cseq.seq
    assert 1 <= first < 2**30
    assert bob.create_request("BYE", via=via("2", "198.51.100.20")).cseq.seq == first + 1


def test_cseq_never_reaches_2_to_the_31() -> None:
    alice, _, _, _, _ = call()
    alice.local_seq = 2**31 - 2
    assert alice.create_request("INFO", via=via("1")).cseq.seq == 2**31 - 1
    with pytest.raises(LocalDialogError):
        alice.create_request("INFO", via=via("2"))  # 8.1.1.5


def test_ack_keeps_the_invite_cseq_number_and_credentials() -> None:
    invite = request(
        invite_bytes(extra=['Proxy-Authorization: Digest username="alice", realm="example.com"'])
    )
    alice = Dialog.from_uac(invite, response(response_bytes(200, "OK")))
    ack = alice.create_ack(invite, via("ack"))
    assert str(ack.cseq) == "101 ACK"
    assert alice.local_seq == 101
    assert ack.headers.get("proxy-authorization") == (
        'Digest username="alice", realm="example.com"'
    )
    assert route_values(ack) == [P1, P2]
    assert "contact" not in ack.headers

    reinvite = alice.create_request("INVITE", via=via("r"), body=b"v=0\r\n", content_type="x/y")
    assert reinvite.cseq.seq == 102
    assert alice.create_ack(reinvite, via("ack2")).cseq.seq == 102
    assert alice.create_request("BYE", via=via("bye")).cseq.seq == 103


def test_ack_and_cancel_are_not_built_by_create_request() -> None:
    alice, _, _, _, _ = call()
    for method in ("ACK", "CANCEL"):
        with pytest.raises(LocalDialogError):
            alice.create_request(method, via=via("x"))
    assert alice.local_seq == 101


def test_body_needs_content_type() -> None:
    alice, _, _, _, _ = call()
    with pytest.raises(LocalDialogError):
        alice.create_request("INFO", via=via("x"), body=b"Signal=5\r\n")
    assert alice.local_seq == 101


def test_serialised_requests_reparse() -> None:
    alice, _, _, _, invite = call()
    body = b"Signal=5\r\nDuration=160\r\n"
    info = alice.create_request(
        "INFO",
        via=via("info"),
        body=body,
        content_type="application/dtmf-relay",
        extra_headers=[("Info-Package", "dtmf")],
    )
    for sent in (info, alice.create_ack(invite, via("ack"))):
        again = reparse(sent)
        assert again.method == sent.method
        assert str(again.uri) == str(sent.uri)
        assert again.cseq == sent.cseq
        assert again.call_id == CALL_ID
        assert again.from_.tag == ALICE_TAG and again.to.tag == BOB_TAG
        assert route_values(again) == [P1, P2]
        assert again.serialize() == sent.serialize()
    again = reparse(info)
    assert again.body == body
    assert again.headers.get("content-type") == "application/dtmf-relay"
    assert again.headers.get("info-package") == "dtmf"


def test_requests_do_not_alias_dialog_state() -> None:
    alice, _, _, _, _ = call()
    bye = alice.create_request("BYE", via=via("bye"))
    assert isinstance(bye.uri, SipUri)
    bye.uri.params["transport"] = "tcp"
    assert alice.remote_target == parse_uri("sip:bob@198.51.100.20:5070;transport=udp")


# -- property: CSeq order (12.2.2) ------------------------------------------------------


@given(
    seqs=st.lists(st.integers(min_value=0, max_value=2**31 - 1), max_size=30),
    uac=st.booleans(),
)
def test_accepts_exactly_the_strictly_increasing_cseqs(seqs: list[int], uac: bool) -> None:
    dialog, _ = alice_dialog() if uac else bob_dialog()
    dialogs = DialogSet()
    dialogs.add(dialog)
    # The UAS starts from the INVITE's CSeq (12.1.1); the UAC from nothing (12.1.2).
    highest = None if uac else 101
    from_tag, to_tag = (BOB_TAG, ALICE_TAG) if uac else (ALICE_TAG, BOB_TAG)
    for seq in seqs:
        info = request(invite_bytes(method="INFO", cseq=seq, from_tag=from_tag, to_tag=to_tag))
        check = dialogs.check_request(info)
        expected = highest is None or seq > highest
        assert check.accepted is expected
        if expected:
            highest = seq
        assert dialog.remote_seq == highest
