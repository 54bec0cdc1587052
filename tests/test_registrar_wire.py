"""Registration over real sockets: digest, TLS, keep-alive pings, lock-out, shutdown.

A raw UDP (or TLS) socket plays the phone, so every byte the engine sends is
visible; waits are socket timeouts or polls with a deadline.
"""

from __future__ import annotations

import secrets
import signal
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from sip import Request, Response, parse_message
from sip.auth import build_authorization, parse_challenge

from .conftest import RunningEngine, agent_password, free_port, write_config

TIMEOUT = 5.0


class Phone:
    """A minimal SIP phone on a socket: registers with digest and answers pings."""

    def __init__(self, engine: RunningEngine, user: str, password: str | None = None) -> None:
        self.engine = engine
        self.user = user
        self.password = password or agent_password(user)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(TIMEOUT)
        self.port = self.sock.getsockname()[1]
        self.call_id = secrets.token_hex(8)
        self.cseq = 0
        self.transport = "UDP"
        self.algorithm = "MD5"

    def register_request(self, expires: int, authorization: str | None = None) -> bytes:
        self.cseq += 1
        auth = f"Authorization: {authorization}\r\n" if authorization else ""
        return (
            f"REGISTER sip:acd.local SIP/2.0\r\n"
            f"Via: SIP/2.0/{self.transport} 127.0.0.1:{self.port};"
            f"branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:{self.user}@acd.local>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{self.user}@acd.local>\r\n"
            f"Call-ID: {self.call_id}\r\n"
            f"CSeq: {self.cseq} REGISTER\r\n"
            f"Contact: <sip:{self.user}@127.0.0.1:{self.port}"
            f"{';transport=tls' if self.transport == 'TLS' else ''}>\r\n"
            f"Expires: {expires}\r\n{auth}"
            f"User-Agent: wire-phone\r\nContent-Length: 0\r\n\r\n"
        ).encode()

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, ("127.0.0.1", self.engine.sip_port))

    def recv(self) -> Request | Response:
        raw, _ = self.sock.recvfrom(65535)
        return parse_message(raw)

    def final(self) -> Response:
        while True:
            msg = self.recv()
            if isinstance(msg, Response) and msg.status >= 200:
                return msg

    def register(self, expires: int = 300) -> Response:
        self.send(self.register_request(expires))
        challenge = self.final()
        if challenge.status != 401:
            return challenge
        challenges = [parse_challenge(v) for v in challenge.headers.get_all("www-authenticate")]
        chosen = next(c for c in challenges if c.algorithm == self.algorithm)
        authorization = build_authorization(
            chosen, "REGISTER", "sip:acd.local", self.user, self.password, secrets.token_hex(8)
        )
        self.send(self.register_request(expires, authorization))
        return self.final()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_register_with_digest_then_unregister(
    algorithm: str, tmp_path: Path, engine_factory: object
) -> None:
    config = write_config(tmp_path / "a.yaml", security="digest_algorithms: [SHA-256, MD5]")
    engine: RunningEngine = engine_factory(config)  # type: ignore[operator]
    phone = Phone(engine, "1001")
    phone.algorithm = algorithm
    try:
        ok = phone.register(300)
        assert ok.status == 200
        assert ok.headers.get("contact") == f"<sip:1001@127.0.0.1:{phone.port}>;expires=300"
        (row,) = engine.registrations("1001")
        assert row["destination"] == f"udp:127.0.0.1:{phone.port}"
        assert row["user_agent"] == "wire-phone"
        assert phone.register(0).status == 200
        assert engine.registrations("1001") == []
    finally:
        phone.close()


def test_registering_someone_elses_aor_is_forbidden(engine: RunningEngine) -> None:
    phone = Phone(engine, "1002", password=agent_password("1001"))
    try:
        # Credentials of 1001 used for 1002's AOR: the digest username is 1001.
        phone.send(phone.register_request(300))
        challenge = phone.final()
        chosen = parse_challenge(challenge.headers.get_all("www-authenticate")[0])
        authorization = build_authorization(
            chosen, "REGISTER", "sip:acd.local", "1001", agent_password("1001"), "c1"
        )
        phone.send(phone.register_request(300, authorization))
        assert phone.final().status == 403
        assert engine.registrations("1002") == []
    finally:
        phone.close()


def test_failed_auth_locks_the_source_out(tmp_path: Path, engine_factory: object) -> None:
    config = write_config(
        tmp_path / "lock.yaml", security="auth_failures_per_minute: 3\nauth_cooldown: 60"
    )
    engine: RunningEngine = engine_factory(config)  # type: ignore[operator]
    phone = Phone(engine, "1001", password="not the password")
    try:
        for _ in range(3):
            assert phone.register().status == 401
        assert phone.register().status == 403
        # The right password does not help during the cool-down.
        phone.password = agent_password("1001")
        phone.send(phone.register_request(300))
        assert phone.final().status == 403
        assert "sip_auth_failures_total 3.0" in engine.http_text("/metrics")
    finally:
        phone.close()


def test_keepalive_pings_drop_a_dead_phone(tmp_path: Path, engine_factory: object) -> None:
    config = write_config(
        tmp_path / "ka.yaml",
        registrar="keepalive_interval: 1\nkeepalive_failures: 1",
        sip="timers: {t1: 0.05, t2: 0.2, t4: 0.2}",
    )
    engine: RunningEngine = engine_factory(config)  # type: ignore[operator]
    phone = Phone(engine, "1003")
    try:
        assert phone.register(3600).status == 200
        # The engine pings the contact; a live phone answers 200 and stays registered.
        ping = phone.recv()
        assert isinstance(ping, Request) and ping.method == "OPTIONS"
        assert str(ping.uri) == f"sip:1003@127.0.0.1:{phone.port}"
        answer = (
            "SIP/2.0 200 OK\r\n"
            + "".join(f"Via: {v}\r\n" for v in ping.headers.get_all("via"))
            + f"From: {ping.headers.get('from')}\r\nTo: {ping.headers.get('to')};tag=ph\r\n"
            f"Call-ID: {ping.call_id}\r\nCSeq: {ping.headers.get('cseq')}\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        phone.send(answer.encode())
        assert engine.registrations("1003")
        # Then the phone dies: pings go unanswered and the binding is dropped.
        phone.close()
        engine.wait_for(lambda: engine.registrations("1003") == [], 15.0, "binding dropped")
    finally:
        phone.close()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def test_tls_registration(
    tmp_path: Path, engine_factory: object, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    tls_port = free_port()
    config = write_config(
        tmp_path / "tls.yaml",
        sip=f"transports: [udp, tcp, tls]\ntls: {{port: {tls_port}, certificate: {cert}, "
        f"private_key: {key}}}",
    )
    text = config.read_text().replace("  transports: [udp, tcp]\n", "", 1)
    config.write_text(text)
    engine: RunningEngine = engine_factory(config)  # type: ignore[operator]
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    raw = socket.create_connection(("127.0.0.1", tls_port), timeout=TIMEOUT)
    tls = context.wrap_socket(raw)
    phone = Phone(engine, "1004")
    phone.transport = "TLS"
    phone.port = tls.getsockname()[1]
    buffer = b""

    def exchange(data: bytes) -> Response:
        nonlocal buffer
        tls.sendall(data)
        while True:
            while b"\r\n\r\n" not in buffer:
                buffer += tls.recv(65535)
            head, _, rest = buffer.partition(b"\r\n\r\n")
            buffer = rest  # our answers to REGISTER carry no body
            msg = parse_message(head + b"\r\n\r\n", stream=True)
            assert isinstance(msg, Response)
            if msg.status >= 200:
                return msg

    try:
        challenge = exchange(phone.register_request(300))
        assert challenge.status == 401
        chosen = parse_challenge(challenge.headers.get_all("www-authenticate")[0])
        authorization = build_authorization(
            chosen, "REGISTER", "sip:acd.local", "1004", agent_password("1004"), "c"
        )
        assert exchange(phone.register_request(300, authorization)).status == 200
        (row,) = engine.registrations("1004")
        assert str(row["destination"]).startswith("tls:127.0.0.1:")
    finally:
        tls.close()
        phone.close()


def test_sigint_shuts_down_cleanly(engine: RunningEngine) -> None:
    engine.process.send_signal(signal.SIGINT)
    assert engine.process.wait(timeout=10) == 0
    assert "shutting down" in engine.log()
