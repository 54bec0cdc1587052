"""DTLS-SRTP between two sans-I/O sessions in memory: handshake, fingerprints, keys, loss.

Two :class:`DtlsSession` objects are wired back to back (the aioquic way):
what one sends the other receives, with datagrams dropped on demand to make
OpenSSL retransmit. The SRTP keys each side exports must be the other's
mirror, so a packet one protects the other unprotects.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from media.dtls import (
    DtlsCertificate,
    DtlsClosed,
    DtlsConnected,
    DtlsError,
    DtlsFailed,
    DtlsRole,
    DtlsSession,
    Fingerprint,
)
from media.rtp import RtpPacket
from media.srtp import SrtpError, SrtpSession

ENGINE = DtlsCertificate.generate()
BROWSER = DtlsCertificate.generate()


def _pump(a: DtlsSession, b: DtlsSession, *, drop_first: int = 0) -> int:
    """Deliver datagrams both ways until neither has any; returns how many were dropped."""
    dropped = 0
    for _ in range(50):
        moved = False
        for sender, receiver in ((a, b), (b, a)):
            for datagram in sender.datagrams_to_send():
                moved = True
                if dropped < drop_first:
                    dropped += 1
                    continue
                receiver.receive_datagram(datagram)
        if not moved:
            break
    return dropped


def _pair(
    client_fp: Fingerprint | None = None, server_fp: Fingerprint | None = None
) -> tuple[DtlsSession, DtlsSession]:
    client = DtlsSession(BROWSER, DtlsRole.CLIENT, client_fp or ENGINE.fingerprint)
    server = DtlsSession(ENGINE, DtlsRole.SERVER, server_fp or BROWSER.fingerprint)
    return client, server


def _events(session: DtlsSession) -> list[object]:
    events = []
    while (event := session.next_event()) is not None:
        events.append(event)
    return events


def test_handshake_exports_mirrored_keys() -> None:
    client, server = _pair()
    client.start()
    server.start()
    _pump(client, server)
    assert client.connected and server.connected
    [client_up] = _events(client)
    [server_up] = _events(server)
    assert isinstance(client_up, DtlsConnected) and isinstance(server_up, DtlsConnected)
    assert client_up.keys.local == server_up.keys.remote
    assert client_up.keys.remote == server_up.keys.local
    assert client_up.keys.profile == server_up.keys.profile
    assert client_up.keys.profile in ("SRTP_AEAD_AES_128_GCM", "SRTP_AES128_CM_SHA1_80")


def test_datagrams_hold_whole_records_within_the_mtu() -> None:
    client, server = _pair()
    client.start()
    hello = client.datagrams_to_send()
    assert len(hello) == 1 and hello[0][0] == 22  # one ClientHello, a handshake record
    server.receive_datagram(hello[0])
    flight = server.datagrams_to_send()
    assert flight and all(len(d) <= 1200 for d in flight)
    for datagram in flight:
        offset = 0
        while offset < len(datagram):
            assert 20 <= datagram[offset] <= 63
            offset += 13 + int.from_bytes(datagram[offset + 11 : offset + 13], "big")
        assert offset == len(datagram)


@pytest.mark.parametrize("profile", ["SRTP_AEAD_AES_128_GCM", "SRTP_AES128_CM_SHA1_80"])
def test_srtp_both_ways(profile: str) -> None:
    client = DtlsSession(BROWSER, DtlsRole.CLIENT, ENGINE.fingerprint, profiles=(profile,))
    server = DtlsSession(ENGINE, DtlsRole.SERVER, BROWSER.fingerprint)
    client.start()
    _pump(client, server)
    keys_c, keys_s = client.keys, server.keys
    assert keys_c is not None and keys_s is not None
    assert keys_c.profile == keys_s.profile == profile
    a, b = SrtpSession(keys_c), SrtpSession(keys_s)
    for sequence in range(3):
        plain = RtpPacket(0, sequence, 160 * sequence, 0x1234, payload=b"\xff" * 160).serialize()
        secret = a.protect(plain)
        assert secret != plain and secret[:12] == plain[:12]
        assert b.unprotect(secret) == plain
        back = b.protect(plain)
        assert a.unprotect(back) == plain
    report = bytes.fromhex("81c90007") + (0x1234).to_bytes(4, "big") + bytes(24)
    assert b.unprotect_rtcp(a.protect_rtcp(report)) == report
    with pytest.raises(SrtpError):
        b.unprotect(secret)  # a replay
    tampered = bytearray(a.protect(RtpPacket(0, 9, 0, 0x1234, payload=b"x" * 160).serialize()))
    tampered[20] ^= 1
    with pytest.raises(SrtpError):
        b.unprotect(bytes(tampered))


def test_the_fingerprint_may_come_after_the_handshake() -> None:
    """A browser answering our offer starts DTLS before its SDP answer reaches us."""
    client = DtlsSession(BROWSER, DtlsRole.CLIENT, ENGINE.fingerprint)
    server = DtlsSession(ENGINE, DtlsRole.SERVER)
    client.start()
    _pump(client, server)
    assert client.connected and server.state == "verifying"
    assert _events(server) == []
    server.set_remote_fingerprint(BROWSER.fingerprint)
    assert server.connected
    assert isinstance(server.next_event(), DtlsConnected)


def test_a_wrong_fingerprint_fails() -> None:
    client, server = _pair(server_fp=ENGINE.fingerprint)  # the server expects the wrong peer
    client.start()
    _pump(client, server)
    assert server.state == "failed" and server.keys is None
    [event] = _events(server)
    assert isinstance(event, DtlsFailed) and "fingerprint" in event.reason


def test_lost_flights_are_retransmitted_on_the_timer() -> None:
    client, server = _pair()
    client.start()
    assert client.datagrams_to_send()  # the first ClientHello is lost
    deadline = client.get_timer(100.0)
    assert deadline is not None and 100.0 < deadline <= 102.0
    # OpenSSL's timer runs on the wall clock: poll until it has expired.
    until = time.monotonic() + 3
    resent: list[bytes] = []
    while not resent and time.monotonic() < until:
        time.sleep(0.05)
        client.handle_timer()
        resent = client.datagrams_to_send()
    assert resent and resent[0][0] == 22
    for datagram in resent:
        server.receive_datagram(datagram)
    _pump(client, server)
    assert client.connected and server.connected


def test_close_notify_is_reported() -> None:
    client, server = _pair()
    client.start()
    _pump(client, server)
    _events(client), _events(server)
    client.close()
    _pump(client, server)
    assert isinstance(server.next_event(), DtlsClosed)
    assert server.state == "closed"


def test_fingerprint_parsing_and_matching() -> None:
    parsed = Fingerprint.parse(f"SHA-256 {ENGINE.fingerprint.value.lower()}")
    assert parsed == ENGINE.fingerprint
    assert parsed.matches(ENGINE.certificate) and not parsed.matches(BROWSER.certificate)
    assert not Fingerprint("md5", "AB").matches(ENGINE.certificate)
    with pytest.raises(DtlsError):
        Fingerprint.parse("sha-256")
    assert str(ENGINE.fingerprint).startswith("sha-256 ")
    assert len(ENGINE.fingerprint.value) == 32 * 3 - 1


def test_certificate_from_pem_files(tmp_path: Path) -> None:
    cert = tmp_path / "dtls.crt"
    key = tmp_path / "dtls.key"
    cert.write_bytes(ENGINE.certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        ENGINE.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    loaded = DtlsCertificate.load(cert, key)
    assert loaded.fingerprint == ENGINE.fingerprint
    other = tmp_path / "other.key"
    other.write_bytes(
        BROWSER.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(DtlsError, match="not the key"):
        DtlsCertificate.load(cert, other)
