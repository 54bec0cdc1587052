"""Every RFC 4475 torture message sent to a running engine gets the answer the RFC asks for.

tests/test_rfc4475.py checks the parser on each file; this walk checks the
whole engine over UDP: invalid requests get 400 (505 for the unknown
version), bad responses are dropped, the application-layer cases of section
3.3 get their codes (416, 420, 483, ...), valid requests get a normal answer
(a digest challenge where the engine authenticates), and the engine stays up.

The torture messages name hosts such as 192.0.2.x in their Vias; so that
every answer stays on loopback, each message gets one extra top Via pointing
at the test socket, as if a proxy on 127.0.0.1 had forwarded it. The rest of
each message is sent byte for byte.
"""

from __future__ import annotations

import re
import secrets
import socket

import pytest

from .conftest import RFC4475_DIR, RunningEngine, start_engine, write_config

TORTURE = RFC4475_DIR

# file -> the status the engine answers with, or None for "no answer".
EXPECTED: dict[str, int | None] = {
    # 3.1.1 valid messages: a normal answer (INVITE and REGISTER are challenged).
    # wsinv carries a To tag: a re-INVITE for a dialog we do not have (12.2.2).
    "wsinv": 481,
    "intmeth": 501,
    "esc01": 407,
    "escnull": 401,
    "esc02": 501,
    "lwsdisp": 200,
    "longreq": 407,
    "dblreq": 401,  # the REGISTER is answered; the INVITE after Content-Length is ignored
    "semiuri": 200,
    "transports": 200,
    "mpart01": 405,  # MESSAGE is understood but not offered
    "unreason": None,  # responses matching no transaction are dropped
    "noreason": None,
    # 3.1.2 invalid messages: 400 for requests, dropped for responses.
    "badinv01": 400,
    "clerr": 400,
    "ncl": 400,
    "scalar02": 400,
    "scalarlg": None,
    "quotbal": 400,
    "ltgtruri": 400,
    "lwsruri": 400,
    "lwsstart": 400,
    "trws": 400,
    "escruri": 400,
    "baddate": 407,  # tolerated: the RFC allows processing it (3.1.2.12)
    "regbadct": 400,
    "badaspec": 400,
    "baddn": 400,
    "badvers": 505,
    "mismatch01": 400,
    "mismatch02": 400,
    "bigcode": None,
    # 3.2 transaction layer.
    "badbranch": 200,
    # 3.3 application layer.
    "insuf": 400,
    "unkscm": 416,
    "novelsc": 416,
    "unksm2": 401,
    "bext01": 420,
    "invut": 407,  # authentication comes before content checks (RFC 3261 8.2)
    "regaut01": 401,
    "multi01": 400,
    "mcl01": 400,
    "bcast": None,
    "zeromf": 483,
    "cparam01": 401,
    "cparam02": 401,
    "regescrt": 401,
    "sdp01": 407,
    # 3.4 RFC 2543 compatibility.
    "inv2543": 407,
}


def status_and_branch(raw: bytes) -> tuple[int, str]:
    """Status and top Via branch of an answer.

    Answers to broken requests echo their broken From, To or CSeq (that is all
    there is to copy), so they are read by their status line and top Via only.
    """
    assert raw.startswith(b"SIP/2.0 "), raw[:40]
    match = re.search(rb"\r\nVia: [^\r]*?;branch=([^;\r]+)", raw)
    assert match is not None, raw
    return int(raw[8:11]), match.group(1).decode()


def with_local_via(data: bytes, port: int, branch: str) -> bytes:
    """Insert a top Via for 127.0.0.1:port right after the start line."""
    end = data.index(b"\n") + 1
    via = f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n".encode()
    return data[:end] + via + data[end:]


def test_every_file_is_in_the_table() -> None:
    files = {p.stem for p in TORTURE.glob("*.dat")}
    assert files, f"no torture files under {TORTURE}"
    assert files == set(EXPECTED)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> RunningEngine:
    """One engine for the whole walk (it must survive all of it)."""
    tmp = tmp_path_factory.mktemp("rfc4475")
    running = start_engine(write_config(tmp / "acd.yaml"), tmp)
    yield running  # type: ignore[misc]
    assert running.stop() == 0, running.log()


@pytest.fixture
def udp(engine: RunningEngine) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    yield sock  # type: ignore[misc]
    sock.close()


def ping(sock: socket.socket, engine: RunningEngine) -> str:
    """Send an OPTIONS and return its branch; the engine answers in order."""
    port = sock.getsockname()[1]
    branch = f"z9hG4bKping{secrets.token_hex(6)}"
    data = (
        f"OPTIONS sip:acd.local SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\r\n"
        f"From: <sip:t@acd.local>;tag=1\r\nTo: <sip:acd.local>\r\n"
        f"Call-ID: {secrets.token_hex(8)}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()
    sock.sendto(data, ("127.0.0.1", engine.sip_port))
    return branch


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_engine_answers_torture_message(
    name: str, engine: RunningEngine, udp: socket.socket
) -> None:
    port = udp.getsockname()[1]
    branch = f"z9hG4bKtorture{secrets.token_hex(6)}"
    data = with_local_via((TORTURE / f"{name}.dat").read_bytes(), port, branch)
    udp.sendto(data, ("127.0.0.1", engine.sip_port))
    marker = ping(udp, engine)
    answers: list[tuple[int, str]] = []
    while True:
        raw, _ = udp.recvfrom(65535)
        status, top_branch = status_and_branch(raw)
        if top_branch == marker:
            if status >= 200:
                break
            continue
        if status >= 200:
            answers.append((status, top_branch))
    expected = EXPECTED[name]
    if expected is None:
        assert answers == []
    else:
        assert answers == [(expected, branch)], name
