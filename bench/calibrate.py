"""How fast this machine is at the two things the engine's figures hang on.

Figures from different days are comparable only with the machine's speed
beside them: these VMs change host, and a day whose system calls cost three
times as much moves every media figure while the parser barely moves. So
the load benchmarks print this line first: SIP INVITE parses per second
(the interpreter) and the CPU time of one loopback UDP datagram sent and
received (the kernel, which carries every RTP packet twice).

Run alone: ``.venv/bin/python bench/calibrate.py``.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sip_parser import INVITE, rate
from sip.message import parse_message

__all__ = ["machine_line", "udp_round_us"]

_PAYLOAD = bytes(172)  # an RTP packet of 20 ms of G.711
_BATCH = 64


def udp_round_us(packets: int = 40_000) -> float:
    """CPU microseconds of one loopback datagram: its ``sendto`` and its ``recv``."""
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        receiver.bind(("127.0.0.1", 0))
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        address = receiver.getsockname()
        send, receive = sender.sendto, receiver.recv
        start = time.process_time()
        for _ in range(packets // _BATCH):
            for _ in range(_BATCH):
                send(_PAYLOAD, address)
            for _ in range(_BATCH):
                receive(2048)
        return (time.process_time() - start) / (packets // _BATCH * _BATCH) * 1e6
    finally:
        sender.close()
        receiver.close()


def machine_line() -> str:
    """One line: INVITE parses per second and the loopback datagram's cost."""
    parses = rate(lambda: parse_message(INVITE), seconds=0.5, runs=3)
    udp = min(udp_round_us() for _ in range(3))
    return (
        f"machine: {parses:,.0f} SIP INVITE parses/s, "
        f"{udp:.1f} µs CPU per loopback UDP datagram sent and received"
    )


if __name__ == "__main__":
    print(machine_line())
