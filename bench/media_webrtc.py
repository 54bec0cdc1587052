"""CPU per relayed packet: a plain bridged call against one whose agent leg is WebRTC (SRTP).

Run: ``.venv/bin/python bench/media_webrtc.py [--packets 200000]`` from the repository root.

One caller leg is bridged to one agent leg. Two sink sockets play the two
phones: each sends a batch of packets to its leg, untimed; then the legs'
reader callbacks (what the event loop calls when a socket is readable) are
called until both sockets are drained, timed. So a figure is the engine's
per-packet work, ``recvfrom`` and ``sendto`` included, for:

* ``plain, C relay``: both legs plain RTP, the C fast path (media/_fastrtp);
* ``plain, Python relay``: the same on the pure-Python relay closures;
* ``WebRTC <aes128-gcm|aes128-cm-sha1-80>``: the agent leg a
  :class:`~media.webrtc.WebRtcLeg` (SRTP keys installed as a DTLS handshake
  would), so the caller's packets are protected on the way out and the
  agent's unprotected on the way in, both directions on the Python path.

Figures: packets per CPU-second (``time.process_time``), and what that makes
in calls per core at 100 packets/s per call (50 each way, 20 ms ptime).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.calibrate import machine_line

HOST = "127.0.0.1"


def _sink() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setblocking(False)
    return sock


def _drain(sock: socket.socket) -> None:
    try:
        while True:
            sock.recv(2048)
    except BlockingIOError:
        pass


async def _measure(mode: str, packets: int) -> float:
    import media.bridge
    import media.leg
    from media import PCMU, Bridge, PortPool, RtpLeg
    from media._native import fastrtp as native
    from media.dtls import DtlsCertificate, SrtpKeys
    from media.rtp import RtpPacket
    from media.srtp import SrtpSession
    from media.webrtc import WebRtcLeg

    if native is None:
        raise SystemExit("media._fastrtp is not built: this bench reads sockets through it")
    if mode == "plain, Python relay":
        # The relay closures in Python; the socket is still read by the C port.
        for module in (media.leg, media.bridge):
            module.fastrtp = None  # type: ignore[attr-defined]
    pool = PortPool(46000, 46999)
    caller_sink, agent_sink = _sink(), _sink()
    caller_at, agent_at = caller_sink.getsockname(), agent_sink.getsockname()
    caller = await RtpLeg.open(pool, HOST)
    browser: SrtpSession | None = None
    agent: RtpLeg
    if mode.startswith("WebRTC"):
        profile = "SRTP_AEAD_AES_128_GCM" if "gcm" in mode else "SRTP_AES128_CM_SHA1_80"
        size = 28 if "gcm" in mode else 30
        ours, theirs = os.urandom(size), os.urandom(size)
        webrtc = await WebRtcLeg.open_webrtc(pool, HOST, DtlsCertificate.generate())
        # What a finished ICE check and DTLS handshake leave behind.
        webrtc.webrtc.ice.selected = agent_at
        webrtc.webrtc.srtp = SrtpSession(SrtpKeys(profile, ours, theirs))
        browser = SrtpSession(SrtpKeys(profile, theirs, ours))
        agent = webrtc
    else:
        agent = await RtpLeg.open(pool, HOST)
    caller.configure(caller_at, PCMU, 0)
    agent.configure(agent_at, PCMU, 0)
    bridge = Bridge(caller, agent)

    def reader(leg: RtpLeg) -> object:
        io = leg.webrtc._socket if isinstance(leg, WebRtcLeg) else leg._rtp
        io._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)  # type: ignore[attr-defined]
        return io._port.readable  # type: ignore[attr-defined]

    read_caller, read_agent = reader(caller), reader(agent)
    caller_port, agent_port = caller.local_address, agent.local_address
    payload = b"\xff" * 160
    batch = 200
    elapsed = 0.0
    relayed = 0
    seq = 0
    for round_ in range(packets // (2 * batch) + 10):
        for i in range(batch):
            caller_sink.sendto(
                RtpPacket(
                    0, (seq + i) & 0xFFFF, 160 * (seq + i) & 0xFFFFFFFF, 0x1111, payload=payload
                ).serialize(),
                caller_port,
            )
            back = RtpPacket(
                0, (seq + i) & 0xFFFF, 160 * (seq + i) & 0xFFFFFFFF, 0x2222, payload=payload
            ).serialize()
            agent_sink.sendto(back if browser is None else browser.protect(back), agent_port)
        seq += batch
        before = caller.packets_sent + agent.packets_sent
        start = time.process_time()
        for _ in range(batch // 64 + 2):  # each call reads up to 64 datagrams (port.c BATCH)
            read_caller()  # type: ignore[operator]
            read_agent()  # type: ignore[operator]
        spent = time.process_time() - start
        if round_ >= 10:  # warm-up: latching, relay rebuilds, caches
            elapsed += spent
            relayed += caller.packets_sent + agent.packets_sent - before
        _drain(caller_sink)
        _drain(agent_sink)
    bridge.stop()
    caller.close()
    agent.close()
    caller_sink.close()
    agent_sink.close()
    for module in (media.leg, media.bridge):
        module.fastrtp = native  # type: ignore[attr-defined]
    return relayed / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    args = parser.parse_args()
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    print(machine_line())
    modes = (
        "plain, C relay",
        "plain, Python relay",
        "WebRTC aes128-gcm",
        "WebRTC aes128-cm-sha1-80",
    )
    for mode in modes:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            pps = runner.run(_measure(mode, args.packets))
        print(
            f"{mode:26s} {pps:>10,.0f} packets per CPU-second "
            f"({1e6 / pps:5.1f} µs each), {pps / 100:>7,.0f} calls per core"
        )


if __name__ == "__main__":
    main()
