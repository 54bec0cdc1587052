"""Prompt streams one core sustains on the shared 20 ms media clock.

Run: ``.venv/bin/python bench/media_player.py`` (from the repository root);
``--streams 500 1000`` and ``--seconds 5`` change the defaults. For each
count S, S sinks loop a committed prompt (music on hold is the same work):
every tick each builds a real RTP packet with :class:`media.SenderState`
and sends it with ``sendto`` on one shared UDP socket to a socket on
127.0.0.1 that never reads (the kernel drops what overflows it). The loop
is uvloop, as ``acd serve`` runs.

Printed per S: tick lateness (how long after its deadline the clock's
timer ran: mean, p99 from 50 us buckets, max), the time the tick's work took
(mean), CPU of the whole process as a percentage of one core, and frames
sent against S x 50 a second. The target is S >= 2,000 at mean lateness
under 1 ms, with every frame sent.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media import PCMU, Codec, MediaClock, Player, PromptLibrary, SenderState

PROMPTS = Path(__file__).resolve().parent.parent / "config" / "prompts"


class UdpSink:
    """An RTP sender as a call leg has one: a SenderState and a shared socket."""

    codec: Codec = PCMU

    def __init__(self, sock: socket.socket, address: tuple[str, int]) -> None:
        self._sendto = sock.sendto
        self._address = address
        self._sender = SenderState(8000)
        self._build = self._sender.build
        self.sent = 0

    def send_audio(self, payload: bytes, samples: int, *, marker: bool = False) -> None:
        self._sendto(self._build(payload, 0, samples, marker=marker), self._address)
        self.sent += 1

    def skip_audio(self, samples: int) -> None:
        self._sender.skip(samples)


async def run(streams: int, seconds: float, library: PromptLibrary) -> str:
    """Play ``streams`` looping prompts for ``seconds``; one line of figures."""
    discard = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    discard.bind(("127.0.0.1", 0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    clock = MediaClock()
    player = Player(clock, library)
    player.preload([PCMU])
    sinks = [UdpSink(sock, discard.getsockname()) for _ in range(streams)]
    for sink in sinks:
        player.play(sink, ["main_menu"], loop=True)
    loop = asyncio.get_running_loop()

    async def wait(delay: float) -> None:
        done = loop.create_future()
        loop.call_later(delay, done.set_result, None)
        await done

    await wait(0.5)  # warm-up: first ticks, caches, socket buffers
    clock.stats.reset()
    sent_before = sum(sink.sent for sink in sinks)
    wall, cpu = time.monotonic(), time.process_time()
    await wait(seconds)
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    stats = clock.stats
    sent = sum(sink.sent for sink in sinks) - sent_before
    expected = round(streams * wall / clock.period)
    player.close()
    sock.close()
    discard.close()
    return (
        f"{streams:>7,} {stats.mean * 1e3:>9.3f} {stats.percentile(0.99) * 1e3:>8.2f}"
        f" {stats.max * 1e3:>8.2f} {stats.busy / max(stats.count, 1) * 1e3:>9.2f}"
        f" {100 * cpu / wall:>6.1f} {sent:>11,} {expected:>11,} {stats.skipped:>7}"
    )


async def main_async(counts: list[int], seconds: float) -> None:
    library = PromptLibrary.from_directory(PROMPTS)
    print("streams  mean(ms)  p99(ms)  max(ms)  tick(ms)   CPU%        sent    expected skipped")
    for streams in counts:
        print(await run(streams, seconds, library), flush=True)


def main() -> None:
    """Parse the arguments and run each stream count in turn on uvloop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[500, 1000, 2000, 3000])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    uvloop.run(main_async(args.streams, args.seconds))


if __name__ == "__main__":
    main()
