"""What a third party on a bridge costs: CPU per 20 ms of a monitored or conferenced call.

Run: ``.venv/bin/python bench/media_mixer.py [--rounds 20000]`` from the repository root.

One process, uvloop, three :class:`~media.RtpLeg`\\ s on loopback (caller PCMU, agent
PCMA, third party PCMU) bridged as the engine bridges a call, and recorded. A round
is 20 ms of the call: each party's packet is handed to its leg's receive path (the
socket read is left out; every send is a real ``sendto``), then the mixes' clock
ticks once. Figures per round and per participant, for:

* ``bridge``: caller and agent only, on the bridge's Python relay (the C relay a
  plain call takes is cheaper still: bench/media_relay.py);
* ``listen``, ``whisper``, ``barge``: a supervisor in that mode (media/_mix.py:
  the parties who hear one other get a relayed packet, those who hear two a mix);

and from those the CPU a core spends per supervised call and how many one core
would carry. Nothing is asserted: the figures are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.calibrate import machine_line
from media import PCMA, PCMU, Bridge, Codec, MonitorMode, PortPool, Recorder, RtpLeg, SenderState

HOST = "127.0.0.1"


class Clock:
    """The mixes' tick, driven by the benchmark."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[int, int], None]] = []
        self.ticks = 0

    def subscribe(self, callback: Callable[[int, int], None]) -> Callable[[], None]:
        self.callbacks.append(callback)
        return lambda: self.callbacks.remove(callback)

    def tick(self) -> None:
        self.ticks += 1
        for callback in list(self.callbacks):
            callback(self.ticks, 0)


class Party:
    """A phone: a socket that swallows what it is sent, a leg, a stream of its own voice."""

    def __init__(self, leg: RtpLeg, sink: socket.socket, codec: Codec, frequency: float) -> None:
        self.leg, self.sink, self.codec = leg, sink, codec
        self.stream = SenderState(8000)
        t = np.arange(160) / 8000
        self.payload = codec.encode((6000 * np.sin(2 * np.pi * frequency * t)).astype(np.int16))
        self.address = sink.getsockname()

    @classmethod
    async def open(cls, pool: PortPool, codec: Codec, frequency: float) -> Party:
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind((HOST, 0))
        sink.setblocking(False)
        leg = await RtpLeg.open(pool, HOST)
        leg.configure(sink.getsockname(), codec, codec.payload_type)
        return cls(leg, sink, codec, frequency)

    def speak(self) -> None:
        data = self.stream.build(self.payload, self.codec.payload_type, 160)
        self.leg.receive_datagram(data, self.address)

    def drain(self) -> None:
        while True:
            try:
                self.sink.recv(2048)
            except BlockingIOError:
                return


async def measure(mode: MonitorMode | None, rounds: int, directory: Path) -> float:
    """CPU seconds per round of a call in ``mode`` (None: no third party)."""
    pool = PortPool(44000, 44999)
    caller = await Party.open(pool, PCMU, 440)
    agent = await Party.open(pool, PCMA, 1000)
    supervisor = await Party.open(pool, PCMU, 1800)
    recorder = Recorder(directory / f"{mode or 'bridge'}.wav")
    bridge = Bridge(caller.leg, agent.leg, recorder)
    clock = Clock()
    if mode is not None:
        bridge.monitor(supervisor.leg, mode, clock)
    parties = (caller, agent, supervisor) if mode is not None else (caller, agent)
    for party in parties:  # latch, and the relays rebuilt for it, before measuring
        party.speak()
    started = time.process_time()
    for n in range(rounds):
        for party in parties:
            party.speak()
        clock.tick()
        if n % 50 == 0:
            for party in parties:
                party.drain()
            await asyncio.sleep(0)  # the recorder's ticks
    spent = time.process_time() - started
    bridge.stop()
    await recorder.close()
    for party in (caller, agent, supervisor):
        party.leg.close()
        party.sink.close()
    return spent / rounds


async def main(rounds: int) -> None:
    print(machine_line())
    print(f"{rounds} rounds of 20 ms each; every party's packet on its leg's receive path")
    with tempfile.TemporaryDirectory() as tmp:
        base = await measure(None, rounds, Path(tmp))
        print(f"bridge (caller + agent, Python relay): {base * 1e6:.1f} µs per round")
        for mode in MonitorMode:
            cost = await measure(mode, rounds, Path(tmp))
            extra = cost - base
            per_core = 0.02 / cost
            print(
                f"{mode.value:8s}: {cost * 1e6:.1f} µs per round ({cost * 1e6 / 3:.1f} per"
                f" participant), {extra * 1e6:+.1f} µs over the bridge;"
                f" {cost / 0.02:.2%} of a core per call, about {per_core:,.0f} such calls per core"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=20000)
    args = parser.parse_args()
    import uvloop

    uvloop.run(main(args.rounds))
