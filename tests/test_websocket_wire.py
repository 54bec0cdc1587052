"""SIP over WebSocket against a running engine, with aiohttp's WebSocket client as the browser.

The client plays what JsSIP or SIP.js would: the ``sip`` subprotocol, a
``.invalid`` Via and Contact host, digest registration. A raw UDP socket
from 127.0.0.1 (the configuration's trunk) plays the caller. Every wait is
a receive with a timeout or a poll with a deadline, on loopback only.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from sip import Request, Response, parse_message
from sip.auth import build_authorization, parse_challenge

from .conftest import ROOT, RunningEngine, agent_password, free_port
from .test_acd_sipp import events_of, ring_events, wait_records

TIMEOUT = 5.0
EngineFactory = Callable[[Path], RunningEngine]


def ws_config(
    tmp_path: Path,
    ws_port: int,
    *,
    sip: str = "",
    extra: str = "",
    trunk: bool = True,
    routes: dict[str, str] | None = None,
    queue: str = "",
    wrap_up: int = 0,
    agents: tuple[str, ...] = ("1001", "1002", "1003"),
    teams: dict[str, str] | None = None,
) -> Path:
    """Agents 1001-1003 (or ``agents``, in ``teams``: user -> team), queue q on 200
    (and ``routes``: number -> YAML target), loopback as the trunk (unless
    ``trunk`` is False); ``queue``: more of q's settings."""
    low = 30000 + (free_port() % 1000) * 20
    lines = [
        "sip:",
        "  domain: acd.local",
        "  transports: [udp, tcp, ws]",
        f"  websocket: {{port: {ws_port}, path: /ws, ping_interval: 0}}",
        *(f"  {line}" for line in sip.splitlines()),
        "registrar: {keepalive_interval: 0}",
        "agents:",
        *(
            f'  - {{username: "{u}", password: "{agent_password(u)}", skills: {{}}'
            + (f", team: {(teams or {})[u]}}}" if u in (teams or {}) else "}")
            for u in agents
        ),
        *(["trunks:", "  - {name: carrier, addresses: [127.0.0.1]}"] if trunk else []),
        "routes:",
        *(
            f'  - {{match: "{number}", {target}}}'
            for number, target in {"200": "queue: q", **(routes or {})}.items()
        ),
        "queues:",
        f"  q: {{strategy: round-robin, ring_timeout: 10, wrap_up: {wrap_up}, retry_delay: 0,"
        f" reject_delay: 0, announce_every: 0{', ' + queue if queue else ''}}}",
        f"prompts: {{dir: {ROOT / 'config' / 'prompts'}}}",
        f"media: {{rtp_ports: [{low}, {low + 39}]}}",
        extra,
    ]
    path = tmp_path / "acd.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Browser:
    """A browser phone on a WebSocket: JsSIP's shapes of REGISTER and answers."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, user: str) -> None:
        self.ws = ws
        self.user = user
        self.host = f"{secrets.token_hex(6)}.invalid"
        self.contact = f"sip:{secrets.token_hex(4)}@{self.host};transport=ws"
        self.call_id = secrets.token_hex(10)
        self.cseq = 0

    def register_request(self, expires: int, authorization: str | None = None) -> str:
        self.cseq += 1
        auth = f"Authorization: {authorization}\r\n" if authorization else ""
        return (
            "REGISTER sip:acd.local SIP/2.0\r\n"
            f"Via: SIP/2.0/WS {self.host};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
            "Max-Forwards: 69\r\n"
            f"To: <sip:{self.user}@acd.local>\r\n"
            f"From: <sip:{self.user}@acd.local>;tag={secrets.token_hex(4)}\r\n"
            f"Call-ID: {self.call_id}\r\n"
            f"CSeq: {self.cseq} REGISTER\r\n"
            f"Contact: <{self.contact}>;+sip.ice;expires={expires}\r\n"
            f"Expires: {expires}\r\n{auth}"
            "Allow: INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY\r\n"
            "Supported: path,gruu,outbound\r\n"
            "User-Agent: JsSIP 3.10.1\r\n"
            "Content-Length: 0\r\n\r\n"
        )

    async def send(self, text: str) -> None:
        await self.ws.send_str(text)

    async def recv(self, timeout: float = TIMEOUT) -> Request | Response:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type is aiohttp.WSMsgType.TEXT, f"expected a SIP message, got {msg}"
        return parse_message(msg.data.encode())

    async def final(self) -> Response:
        while True:
            msg = await self.recv()
            if isinstance(msg, Response) and msg.status >= 200:
                return msg

    async def register(self, expires: int = 600, password: str | None = None) -> Response:
        await self.send(self.register_request(expires))
        challenge = await self.final()
        if challenge.status != 401:
            return challenge
        chosen = parse_challenge(challenge.headers.get_all("www-authenticate")[0])
        authorization = build_authorization(
            chosen,
            "REGISTER",
            "sip:acd.local",
            self.user,
            password or agent_password(self.user),
            secrets.token_hex(8),
        )
        await self.send(self.register_request(expires, authorization))
        return await self.final()

    async def answer(self, request: Request, status: int, tag: str) -> None:
        """Answer ``request`` as a UAS would, copying what the response needs."""
        h = request.headers
        to = h.get("to") or ""
        lines = [f"SIP/2.0 {status} {'Ringing' if status == 180 else 'Busy Here'}"]
        lines += [f"Via: {v}" for v in h.get_all("via")]
        lines += [
            f"From: {h.get('from')}",
            f"To: {to};tag={tag}" if ";tag=" not in to else f"To: {to}",
            f"Call-ID: {h.get('call-id')}",
            f"CSeq: {h.get('cseq')}",
            f"Contact: <{self.contact}>",
            "Content-Length: 0",
        ]
        await self.send("\r\n".join(lines) + "\r\n\r\n")


def connect(session: aiohttp.ClientSession, port: int, **kw: object) -> object:
    kw.setdefault("protocols", ("sip",))
    return session.ws_connect(f"http://127.0.0.1:{port}/ws", **kw)  # type: ignore[arg-type]


async def eventually(predicate: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Poll ``predicate`` (in a thread: it may ask the engine's HTTP API) until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(predicate):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Caller:
    """A carrier's caller on UDP from 127.0.0.1: INVITE, ACK of the 200, BYE."""

    def __init__(self, engine: RunningEngine) -> None:
        self.engine = engine
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(TIMEOUT)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.call_id = secrets.token_hex(10)
        self.tag = secrets.token_hex(4)
        self.to = ""

    def _send(self, method: str, cseq: int, body: str = "") -> None:
        content = "Content-Type: application/sdp\r\n" if body else ""
        message = (
            f"{method} sip:200@127.0.0.1:{self.engine.sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
            f"From: <sip:0123456789@127.0.0.1>;tag={self.tag}\r\n"
            f"To: {self.to or '<sip:200@127.0.0.1>'}\r\n"
            f"Call-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: <sip:0123456789@127.0.0.1:{self.port}>\r\nMax-Forwards: 70\r\n"
            f"{content}Content-Length: {len(body)}\r\n\r\n{body}"
        )
        self.sock.sendto(message.encode(), ("127.0.0.1", self.engine.sip_port))

    def _final(self, method: str) -> Response:
        while True:
            msg = parse_message(self.sock.recvfrom(65535)[0])
            if isinstance(msg, Response) and msg.status >= 200 and msg.cseq.method == method:
                return msg

    def call(self) -> Response:
        """INVITE 200 and ACK its 200: the caller waits in the queue."""
        rtp_port = self.rtp.getsockname()[1]
        sdp = (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
        )
        self._send("INVITE", 1, sdp)
        answer = self._final("INVITE")
        assert answer.status == 200, answer
        self.to = answer.headers.get("to") or ""
        self._send("ACK", 1)
        return answer

    def hang_up(self) -> Response:
        self._send("BYE", 2)
        return self._final("BYE")

    def close(self) -> None:
        self.sock.close()
        self.rtp.close()


# -- tests ------------------------------------------------------------------------------


@pytest.fixture
def engine_factory(engine_factory: EngineFactory) -> Iterator[EngineFactory]:
    """conftest's, and an exception anywhere in an engine fails the test that caused it."""
    started: list[RunningEngine] = []

    def factory(config: Path) -> RunningEngine:
        started.append(engine_factory(config))
        return started[-1]

    yield factory
    for engine in started:
        assert "Traceback" not in engine.log(), engine.log()[-6000:]


async def test_a_browser_registers_is_rung_over_its_websocket_and_goes_when_it_closes(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    ws_port = free_port()
    engine = engine_factory(ws_config(tmp_path, ws_port))
    async with aiohttp.ClientSession() as session, connect(session, ws_port) as ws:  # type: ignore[attr-defined]
        assert ws.protocol == "sip"
        browser = Browser(ws, "1001")
        await browser.send(browser.register_request(600))
        challenge = await browser.final()
        assert challenge.status == 401  # digest over WebSocket as everywhere
        await browser.send(browser.register_request(600))  # still no credentials
        assert (await browser.final()).status == 401
        ok = await browser.register()
        assert ok.status == 200
        assert ok.headers.get("contact") == f"<{browser.contact}>;expires=600"
        # The 200's top Via is the browser's, with received for its .invalid host.
        assert ok.top_via.host == browser.host and ok.top_via.params["received"] == "127.0.0.1"
        (row,) = engine.registrations("1001")
        local_port = ws.get_extra_info("sockname")[1]
        assert row["destination"] == f"ws:127.0.0.1:{local_port}"
        assert row["contact"] == browser.contact

        engine.post("/api/v1/agents/1001/login")
        caller = Caller(engine)
        try:
            await asyncio.to_thread(caller.call)
            invite = await browser.recv()
            assert isinstance(invite, Request) and invite.method == "INVITE"
            assert str(invite.uri) == browser.contact
            assert invite.top_via.transport == "WS"
            assert invite.top_via.port == ws_port
            (contact,) = invite.contacts or []
            assert str(contact.uri).endswith(";transport=ws")
            await browser.answer(invite, 180, "b1")
            await eventually(
                lambda: engine.http_json("/api/v1/agents/1001")["state"] == "ringing",
                "agent 1001 ringing",
            )
            # The browser goes away mid-ring: its registration and the ring both end.
            await ws.close()
            await eventually(lambda: engine.registrations("1001") == [], "registration removed")
            await eventually(
                lambda: engine.http_json("/api/v1/agents/1001")["state"] != "ringing",
                "the ring to 1001 ended",
            )
            assert "1001 unregistered " + browser.contact + ": unreachable" in engine.log()
            assert (await asyncio.to_thread(caller.hang_up)).status == 200
        finally:
            caller.close()
    (record,) = await asyncio.to_thread(wait_records, engine, 1)
    events = await asyncio.to_thread(events_of, engine, record["call_id"])
    # The ring ended as an agent leg that failed does, not as a ring timeout.
    (ring,) = ring_events(events)
    assert ring == ("RINGNOANSWER", "1001", "failed"), ring


async def test_a_handshake_without_the_sip_subprotocol_is_refused(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    ws_port = free_port()
    engine_factory(ws_config(tmp_path, ws_port))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with connect(session, ws_port, protocols=()):  # type: ignore[attr-defined]
                pass
        assert refused.value.status == 400
        with pytest.raises(aiohttp.WSServerHandshakeError) as elsewhere:
            async with session.ws_connect(f"http://127.0.0.1:{ws_port}/", protocols=("sip",)):
                pass
        assert elsewhere.value.status == 404  # sip.websocket.path is /ws
        async with session.get(f"http://127.0.0.1:{ws_port}/ws") as plain:
            assert plain.status == 426
            assert plain.headers["Upgrade"] == "websocket"


async def test_an_oversize_message_closes_the_websocket_with_1009(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    ws_port = free_port()
    engine = engine_factory(ws_config(tmp_path, ws_port, sip="max_message_size: 2048"))
    async with aiohttp.ClientSession() as session, connect(session, ws_port) as ws:  # type: ignore[attr-defined]
        browser = Browser(ws, "1001")
        big = browser.register_request(600).replace(
            "Content-Length: 0", "X-Pad: " + "a" * 4000 + "\r\nContent-Length: 0"
        )
        await browser.send(big)
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        assert msg.data == 1009
    assert engine.registrations("1001") == []


async def test_a_browser_without_the_password_cannot_register_and_is_locked_out(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    ws_port = free_port()
    config = ws_config(tmp_path, ws_port, extra="security: {auth_failures_per_minute: 3}")
    engine = engine_factory(config)
    async with aiohttp.ClientSession() as session, connect(session, ws_port) as ws:  # type: ignore[attr-defined]
        browser = Browser(ws, "1001")
        for _ in range(3):
            assert (await browser.register(password="guessed")).status == 401
        assert (await browser.register(password="guessed")).status == 403
        # Locked out: the right password does not help during the cool-down.
        assert (await browser.register()).status == 403
    assert engine.registrations("1001") == []


async def test_front_door_rules_hold_over_websocket(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    ws_port = free_port()
    # No trunk: a trunk's address is never throttled, and the client is on 127.0.0.1.
    limit = "security: {request_limit: {requests: 5, window: 30}}"
    config = ws_config(tmp_path, ws_port, extra=limit, trunk=False)
    engine_factory(config)
    async with aiohttp.ClientSession() as session, connect(session, ws_port) as ws:  # type: ignore[attr-defined]
        browser = Browser(ws, "1001")

        def options(user_agent: str, length: bool = True) -> str:
            return (
                f"OPTIONS sip:acd.local SIP/2.0\r\n"
                f"Via: SIP/2.0/WS {browser.host};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
                f"From: <sip:1001@acd.local>;tag=a\r\nTo: <sip:acd.local>\r\n"
                f"Call-ID: {secrets.token_hex(6)}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                f"User-Agent: {user_agent}\r\n"
                + ("Content-Length: 0\r\n" if length else "")
                # The message is framed by WebSocket: Content-Length may be left out.
                + "\r\n"
            )

        await browser.send("\r\n\r\n")  # SIP.js's keep-alive: a CRLF comes back
        pong = await ws.receive(timeout=TIMEOUT)
        assert pong.type is aiohttp.WSMsgType.TEXT and pong.data == "\r\n"
        await browser.send(options("friendly-scanner"))  # dropped unanswered
        await browser.send(options("JsSIP 3.10.1", length=False))
        answer = await browser.recv()
        assert isinstance(answer, Response) and answer.status == 200
        assert answer.cseq.method == "OPTIONS"
        for _ in range(8):
            await browser.send(options("JsSIP 3.10.1"))
        answered = 0
        with pytest.raises(TimeoutError):
            while True:
                msg = await browser.recv(timeout=1.0)
                answered += isinstance(msg, Response)
        # Five requests per window, the scanner's counted: the flood goes unanswered.
        assert answered == 3


async def test_a_websocket_that_stops_answering_pings_is_dropped(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    ws_port = free_port()
    config = ws_config(tmp_path, ws_port)
    config.write_text(config.read_text().replace("ping_interval: 0", "ping_interval: 0.3"))
    engine = engine_factory(config)
    async with (
        aiohttp.ClientSession() as session,
        connect(session, ws_port) as alive,  # type: ignore[attr-defined]
    ):
        assert (await Browser(alive, "1002").register()).status == 200
        # aiohttp answers pings while something reads: this browser stays.
        reading = asyncio.create_task(alive.receive())
        async with connect(session, ws_port, autoping=False) as ws:  # type: ignore[attr-defined]
            browser = Browser(ws, "1001")
            assert (await browser.register()).status == 200
            ping = await ws.receive(timeout=TIMEOUT)
            assert ping.type is aiohttp.WSMsgType.PING
            # Not answered: by the next ping the engine drops the connection.
            closed = await ws.receive(timeout=TIMEOUT)
            assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await eventually(lambda: engine.registrations("1001") == [], "registration dropped")
        assert [r["user"] for r in engine.registrations()] == ["1002"]
        assert not reading.done()
        reading.cancel()


async def test_stopping_the_engine_closes_websockets_with_1001(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    ws_port = free_port()
    engine = engine_factory(ws_config(tmp_path, ws_port))
    async with aiohttp.ClientSession() as session, connect(session, ws_port) as ws:  # type: ignore[attr-defined]
        assert (await Browser(ws, "1001").register()).status == 200
        assert await asyncio.to_thread(engine.stop) == 0
        msg = await ws.receive(timeout=TIMEOUT)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1001


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, as a browser checks it (subjectAltName)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


async def test_wss_uses_the_tls_certificate_and_vias_say_wss(
    tmp_path: Path, engine_factory: EngineFactory, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    wss_port = free_port()
    config = ws_config(
        tmp_path,
        free_port(),
        sip=f"tls: {{port: {free_port()}, certificate: {cert}, private_key: {key}}}",
    )
    config.write_text(
        config.read_text()
        .replace("transports: [udp, tcp, ws]", "transports: [udp, wss]")
        .replace("ping_interval: 0", f"secure_port: {wss_port}, ping_interval: 0")
    )
    engine = engine_factory(config)
    context = ssl.create_default_context(cafile=str(cert))
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            f"https://127.0.0.1:{wss_port}/ws", protocols=("sip",), ssl=context
        ) as ws,
    ):
        browser = Browser(ws, "1001")
        ok = await browser.register()
        assert ok.status == 200
        (row,) = engine.registrations("1001")
        assert str(row["destination"]).startswith("wss:127.0.0.1:")
        engine.post("/api/v1/agents/1001/login")
        caller = Caller(engine)
        try:
            await asyncio.to_thread(caller.call)
            invite = await browser.recv()
            assert isinstance(invite, Request) and invite.method == "INVITE"
            assert invite.top_via.transport == "WSS" and invite.top_via.port == wss_port
            (contact,) = invite.contacts or []
            # RFC 7118 5.2.2: "ws" is the URI transport for WSS too.
            assert str(contact.uri).endswith(";transport=ws")
            await browser.answer(invite, 486, "b2")
            assert (await asyncio.to_thread(caller.hang_up)).status == 200
        finally:
            caller.close()


async def test_content_length_over_websocket_follows_the_datagram_rules(
    tmp_path: Path, engine_factory: EngineFactory
) -> None:
    """RFC 7118 5.1 frames each message, so RFC 3261 18.3's message-oriented rules apply:
    no Content-Length means the rest of the message, octets past it are discarded, and
    one larger than what came is a 400 (the connection stays, unlike a stream's)."""
    ws_port = free_port()
    engine_factory(ws_config(tmp_path, ws_port))
    async with aiohttp.ClientSession() as session, connect(session, ws_port) as ws:  # type: ignore[attr-defined]
        browser = Browser(ws, "1001")

        def options(length: str, body: str) -> str:
            return (
                "OPTIONS sip:acd.local SIP/2.0\r\n"
                f"Via: SIP/2.0/WS {browser.host};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
                "From: <sip:1001@acd.local>;tag=a\r\nTo: <sip:acd.local>\r\n"
                f"Call-ID: {secrets.token_hex(6)}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                f"{length}\r\n{body}"
            )

        await browser.send(options("", "hello"))
        assert (await browser.final()).status == 200
        await browser.send(options("Content-Length: 2\r\n", "hello"))
        assert (await browser.final()).status == 200
        await browser.send(options("Content-Length: 50\r\n", "hello"))
        assert (await browser.final()).status == 400
        await browser.send(options("Content-Length: 0\r\n", ""))
        assert (await browser.final()).status == 200
