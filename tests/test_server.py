"""The engine over real sockets: front-door checks, OPTIONS, TCP framing, IPv6, metrics.

Every test talks to an ``acd serve`` subprocess on 127.0.0.1 / ::1 and waits
on answers with socket timeouts (bounded), never on fixed sleeps. To prove
that a request got no answer, a normal request is sent right after it: on
one socket the engine answers in order, so the first answer must be the
normal one's.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
from pathlib import Path

import pytest

from acd.config import Config
from sip import Response, parse_message

from .conftest import RunningEngine, start_engine, write_config

TIMEOUT = 5.0


def request(
    method: str = "OPTIONS",
    *,
    uri: str = "sip:acd.local",
    port: int = 40000,
    transport: str = "UDP",
    host: str = "127.0.0.1",
    extra: str = "",
    call_id: str | None = None,
    max_forwards: int = 70,
    user_agent: str = "pytest",
) -> tuple[bytes, str]:
    call_id = call_id or secrets.token_hex(8)
    via_host = f"[{host}]" if ":" in host else host
    text = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {via_host}:{port};branch=z9hG4bK{secrets.token_hex(6)};rport\r\n"
        f"Max-Forwards: {max_forwards}\r\n"
        f"From: <sip:tester@acd.local>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:acd.local>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"User-Agent: {user_agent}\r\n"
        f"{extra}"
        f"Content-Length: 0\r\n\r\n"
    )
    return text.encode(), call_id


class UdpPeer:
    def __init__(self, engine: RunningEngine, family: int = socket.AF_INET) -> None:
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.host = "127.0.0.1" if family == socket.AF_INET else "::1"
        self.sock.bind((self.host, 0))
        self.sock.settimeout(TIMEOUT)
        self.port = self.sock.getsockname()[1]
        self.target = (self.host, engine.sip_port)

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def ask(self, method: str = "OPTIONS", **kw: object) -> Response:
        data, call_id = request(method, port=self.port, host=self.host, **kw)  # type: ignore[arg-type]
        self.send(data)
        return self.recv_final(call_id)

    def recv_final(self, call_id: str) -> Response:
        while True:
            raw, _ = self.sock.recvfrom(65535)
            msg = parse_message(raw)
            assert isinstance(msg, Response)
            if msg.call_id == call_id and msg.status >= 200:
                return msg

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def peer(engine: RunningEngine) -> UdpPeer:
    p = UdpPeer(engine)
    yield p  # type: ignore[misc]
    p.close()


def test_healthz_and_metrics(engine: RunningEngine, peer: UdpPeer) -> None:
    assert engine.http_json("/healthz")["status"] == "ok"
    peer.ask("OPTIONS")
    text = engine.http_text("/metrics")
    assert re.search(r'sip_requests_total\{direction="in",method="OPTIONS"\} [1-9]', text)
    assert 'sip_responses_total{code_class="2xx",direction="out",method="OPTIONS"}' in text
    for name in ("sip_transactions_active", "sip_registrations_active", "process_cpu_seconds"):
        assert name in text


def test_options_to_engine_lists_capabilities(peer: UdpPeer) -> None:
    response = peer.ask("OPTIONS")
    assert response.status == 200
    allow = {m.strip() for m in response.header_list("allow")}
    assert {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER"} <= allow
    assert "application/sdp" in (response.headers.get("accept") or "")
    # Only what the engine does: session timers, not Path or Replaces (not yet).
    assert response.headers.get("supported") == "timer"
    # RFC 3581: received/rport filled in on the Via we get back.
    assert response.top_via.params.get("rport") == str(peer.port)


@pytest.mark.parametrize("tag", ["replaces", "path", "100rel"])
def test_a_required_extension_the_engine_lacks_gets_420(peer: UdpPeer, tag: str) -> None:
    response = peer.ask("OPTIONS", extra=f"Require: {tag}\r\n")
    assert response.status == 420
    assert response.headers.get("unsupported") == tag


def test_a_required_session_timer_is_accepted(peer: UdpPeer) -> None:
    assert peer.ask("OPTIONS", extra="Require: timer\r\n").status == 200


def test_options_answer_does_not_reveal_which_users_exist(peer: UdpPeer) -> None:
    known = peer.ask("OPTIONS", uri="sip:1001@acd.local")
    unknown = peer.ask("OPTIONS", uri="sip:1999@acd.local")
    assert known.status == unknown.status == 200
    assert known.headers.get("allow") == unknown.headers.get("allow")


def test_malformed_request_gets_400_and_engine_goes_on(peer: UdpPeer) -> None:
    data, call_id = request("OPTIONS", port=peer.port)
    broken = data.replace(b"OPTIONS sip:acd.local SIP/2.0", b"OPTIONS  sip:acd.local SIP/2.0")
    peer.send(broken)
    assert peer.recv_final(call_id).status == 400
    assert peer.ask("OPTIONS").status == 200


def test_garbage_and_malformed_responses_are_dropped(peer: UdpPeer) -> None:
    peer.send(b"\x00\xff garbage \r\n\r\n")
    peer.send(b"SIP/2.0 2000 Way Too Big\r\nVia: SIP/2.0/UDP x;branch=z9hG4bKx\r\n\r\n")
    peer.send(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKstray\r\n\r\n")
    assert peer.ask("OPTIONS").status == 200


def test_wrong_version_gets_505(peer: UdpPeer) -> None:
    data, call_id = request("OPTIONS", port=peer.port)
    peer.send(data.replace(b"sip:acd.local SIP/2.0", b"sip:acd.local SIP/7.0"))
    assert peer.recv_final(call_id).status == 505


def test_scanner_user_agents_are_dropped_silently(peer: UdpPeer) -> None:
    for agent in ("friendly-scanner", "sipvicious 0.3", "sipcli/v1.8"):
        data, _ = request("OPTIONS", port=peer.port, user_agent=agent)
        peer.send(data)
    response = peer.ask("OPTIONS")
    assert response.status == 200  # the first (and only) answer is the normal request's


def test_max_forwards_zero_gets_483(peer: UdpPeer) -> None:
    assert peer.ask("OPTIONS", max_forwards=0).status == 483


def test_unknown_uri_scheme_gets_416(peer: UdpPeer) -> None:
    assert peer.ask("OPTIONS", uri="nobodyknowsthisscheme:opaque").status == 416


def test_unsupported_require_gets_420(peer: UdpPeer) -> None:
    response = peer.ask("OPTIONS", extra="Require: nobodyknowsthis\r\n")
    assert response.status == 420
    assert response.headers.get("unsupported") == "nobodyknowsthis"


def test_unknown_and_unsupported_methods(peer: UdpPeer) -> None:
    assert peer.ask("FROBNICATE").status == 501
    response = peer.ask("SUBSCRIBE")
    assert response.status == 405
    assert "INVITE" in (response.headers.get("allow") or "")
    assert peer.ask("BYE").status == 481


def test_oversized_datagram_is_dropped(tmp_path: Path, engine_factory: object) -> None:
    config = write_config(tmp_path / "small.yaml", sip="max_message_size: 2048")
    engine = engine_factory(config)  # type: ignore[operator]
    peer = UdpPeer(engine)
    try:
        data, _ = request("OPTIONS", port=peer.port, extra=f"Subject: {'x' * 3000}\r\n")
        peer.send(data)
        assert peer.ask("OPTIONS").status == 200
    finally:
        peer.close()


def tcp_connect(engine: RunningEngine) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", engine.sip_port), timeout=TIMEOUT)
    return sock


def read_responses(sock: socket.socket, count: int) -> list[Response]:
    buffer = b""
    out: list[Response] = []
    while len(out) < count:
        chunk = sock.recv(65535)
        assert chunk, "connection closed"
        buffer += chunk
        while b"\r\n\r\n" in buffer:
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
            if len(rest) < length:
                break
            msg = parse_message(head + b"\r\n\r\n" + rest[:length], stream=True)
            assert isinstance(msg, Response)
            if msg.status >= 200:
                out.append(msg)
            buffer = rest[length:]
    return out


def test_tcp_fragmented_and_pipelined(engine: RunningEngine) -> None:
    sock = tcp_connect(engine)
    try:
        port = sock.getsockname()[1]
        one, id1 = request("OPTIONS", transport="TCP", port=port)
        two, id2 = request("OPTIONS", transport="TCP", port=port)
        # Fragmented: byte by byte for the first 40 bytes, then the rest with
        # the whole second message pipelined behind it.
        for i in range(40):
            sock.sendall(one[i : i + 1])
        sock.sendall(one[40:] + two)
        responses = read_responses(sock, 2)
        assert [r.call_id for r in responses] == [id1, id2]
        assert all(r.status == 200 for r in responses)
    finally:
        sock.close()


def test_tcp_crlf_keepalive_gets_pong(engine: RunningEngine) -> None:
    sock = tcp_connect(engine)
    try:
        sock.sendall(b"\r\n\r\n")
        assert sock.recv(16) == b"\r\n"
        port = sock.getsockname()[1]
        data, call_id = request("OPTIONS", transport="TCP", port=port)
        sock.sendall(data)
        assert read_responses(sock, 1)[0].call_id == call_id
    finally:
        sock.close()


def test_ipv6_udp(tmp_path: Path, engine_factory: object) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    config = write_config(tmp_path / "v6.yaml", sip='listen: ["127.0.0.1", "::1"]')
    engine = engine_factory(config)  # type: ignore[operator]
    peer = UdpPeer(engine, socket.AF_INET6)
    try:
        response = peer.ask("OPTIONS", uri="sip:[::1]")
        assert response.status == 200
        assert response.top_via.host == "::1"
    finally:
        peer.close()


@pytest.mark.parametrize(
    ("limits", "raised", "warned"),
    [
        ((1024, 1_048_576), 1_048_576, False),  # Debian's default soft limit: raised
        ((1024, 4096), 4096, True),  # the hard limit is too low for the RTP range
        ((50_000, 50_000), 50_000, False),  # already enough: left alone
    ],
)
def test_the_open_files_limit_is_raised_for_the_rtp_range(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    limits: tuple[int, int],
    raised: int,
    warned: bool,
) -> None:
    import resource

    from acd import server

    current = list(limits)
    monkeypatch.setattr(resource, "getrlimit", lambda _which: tuple(current))
    monkeypatch.setattr(
        resource, "setrlimit", lambda _which, value: current.__setitem__(0, value[0])
    )
    config = Config.model_validate({"media": {"rtp_ports": [20000, 29999]}})
    with caplog.at_level(logging.WARNING, logger="acd.server"):
        server._raise_file_limit(config)
    assert current[0] == raised
    assert ("open files limited" in caplog.text) == warned


async def test_the_sip_udp_socket_has_room_for_a_burst() -> None:
    """The SIP socket's kernel buffers are asked for 4 MiB (capped by net.core.*mem_max):
    the default 200 KB overflows in a few tens of milliseconds at the busy hour."""
    from pathlib import Path as _Path

    from sip.endpoint import EndpointPolicy, SipEndpoint
    from sip.transport import UDP_BUFFER

    endpoint = SipEndpoint(EndpointPolicy(), lambda _event: None)
    await endpoint.listen("UDP", "127.0.0.1", 0)
    try:
        sock = endpoint.transports.udp[0].transport.get_extra_info("socket")
        for option, limit in (
            (socket.SO_RCVBUF, "/proc/sys/net/core/rmem_max"),
            (socket.SO_SNDBUF, "/proc/sys/net/core/wmem_max"),
        ):
            cap = int(_Path(limit).read_text())
            # Linux doubles what it grants (bookkeeping) and caps the request at the limit.
            assert sock.getsockopt(socket.SOL_SOCKET, option) >= 2 * min(UDP_BUFFER, cap)
    finally:
        await endpoint.close()


def test_a_second_engine_on_the_same_data_directory_refuses_to_start(
    tmp_path: Path, engine: RunningEngine, peer: UdpPeer
) -> None:
    """It says which process holds the directory, exits 1 before binding anything or
    touching the data, and the first engine goes on; once the first stops, the
    directory is free again."""
    journal_before = sorted(p.name for p in (tmp_path / "data").rglob("*"))
    with pytest.raises(AssertionError, match="engine exited early") as failed:
        start_engine(tmp_path / "acd.yaml", tmp_path)
    message = str(failed.value)
    assert f"is in use by another engine (pid {engine.process.pid} on " in message, message
    assert "SIP listening" not in message, message
    assert sorted(p.name for p in (tmp_path / "data").rglob("*")) == journal_before
    assert peer.ask().status == 200  # the first engine did not notice
    assert engine.stop() == 0
    second = start_engine(tmp_path / "acd.yaml", tmp_path)
    assert second.stop() == 0, second.log()


@pytest.mark.parametrize("how", ["flag", "config"])
def test_json_logs_are_one_object_a_line(tmp_path: Path, how: str) -> None:
    """``--log-format json`` (or ``logging.format: json``): every line the engine writes
    is a JSON object with time, level, logger and message."""
    extra = "logging: {format: json}" if how == "config" else ""
    config = write_config(tmp_path / "acd.yaml", extra=extra)
    args = ("--log-format", "json") if how == "flag" else ()
    engine = start_engine(config, tmp_path, *args)
    peer = UdpPeer(engine)
    try:
        assert peer.ask().status == 200
    finally:
        peer.close()
        assert engine.stop() == 0, engine.log()
    lines = engine.log().splitlines()
    assert lines
    entries = [json.loads(line) for line in lines]
    assert all(set(entry) >= {"time", "level", "logger", "message"} for entry in entries)
    assert any(entry["message"] == "engine started" for entry in entries), entries
    assert all(entry["time"].endswith("+00:00") for entry in entries)


@pytest.mark.parametrize("on", [True, False])
def test_sip_trace_logs_every_message_with_digest_responses_redacted(
    tmp_path: Path, on: bool
) -> None:
    """``logging.sip_trace``: each message received and sent, whole, at INFO level too;
    a digest response never. Off (the default), no message is written."""
    extra = "logging: {level: INFO, sip_trace: true}" if on else ""
    engine = start_engine(write_config(tmp_path / "acd.yaml", extra=extra), tmp_path)
    peer = UdpPeer(engine)
    secret = "5f2a9c0d8e7b6a5f4e3d2c1b0a998877"
    credentials = (
        'Authorization: Digest username="1001", realm="acd.local", nonce="n1", '
        f'uri="sip:acd.local", response="{secret}", algorithm=MD5, cnonce="c0ffee", nc=00000001\r\n'
    )
    try:
        assert peer.ask("OPTIONS", extra=credentials, call_id="trace-probe").status == 200
    finally:
        peer.close()
        assert engine.stop() == 0, engine.log()
    text = engine.log()
    assert secret not in text and "c0ffee" not in text
    if not on:
        assert "sip.trace" not in text
        return
    received = re.search(
        r"DEBUG sip\.trace: received from udp:127\.0\.0\.1:\d+ \(\d+ bytes\)", text
    )
    sent = re.search(r"DEBUG sip\.trace: sent to udp:127\.0\.0\.1:\d+ \(\d+ bytes\)", text)
    assert received and sent, text
    assert "Call-ID: trace-probe" in text[received.end() :]
    assert 'response="[redacted]"' in text and 'cnonce="[redacted]"' in text
    assert "SIP/2.0 200 OK" in text[sent.end() :]
