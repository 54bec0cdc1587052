"""``acd simulate-agents``: softphones that register as agents and answer calls with a tone.

A newcomer with no softphone (or no colleagues) starts the engine, starts
this, and calls the IVR or an agent's extension from any softphone or SIPp:
each simulated agent answers after ``--answer-after`` seconds and sends a
tone of its own frequency until the far end hangs up, so the recording shows
who answered (the agent's tone on the right channel), and the simulator
prints a line per call.

The phones are pyVoIP 1.6 ``VoIPPhone``\\ s registering over UDP with each
agent's password from the configuration (never printed). pyVoIP's quirks
against this engine are handled in :mod:`acd.simulate._pyvoip`, notably its
silence to the engine's OPTIONS keep-alives, which would drop every binding
after ``keepalive_failures`` pings. The simulator answers the pings rather
than re-registering faster than they fail: re-registering would only hide
the silence and double the REGISTER traffic, while answering them keeps the
engine's dead-phone detection honest (a simulator killed with SIGKILL is
dropped by the next failed ping, as a real phone would be).

SIGINT or SIGTERM hangs up any call, unregisters every agent and ends every
pyVoIP thread within :data:`STOP_TIMEOUT`; exit status 0 when all of that
happened, 1 when an agent could not register or a thread was left.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import TextIO

from acd.config import Config

from ._agents import (
    AgentPhone,
    AgentSimulator,
    SimulatedAgent,
    SimulationError,
    choose_agents,
    pyvoip_threads,
)

__all__ = [
    "REGISTER_TIMEOUT",
    "STOP_TIMEOUT",
    "AgentPhone",
    "AgentSimulator",
    "SimulatedAgent",
    "SimulationError",
    "choose_agents",
    "engine_address",
    "pyvoip_threads",
    "run_simulator",
]

REGISTER_TIMEOUT = 20.0
"""Seconds for every agent to register: pyVoIP tries three times, 5 s each at most."""
STOP_TIMEOUT = 15.0
"""Seconds to hang up, unregister (one challenged exchange each) and end every thread."""

_ANY = {"0.0.0.0", "::"}


def engine_address(config: Config, server: str | None = None) -> tuple[str, int]:
    """Where the engine takes SIP over UDP: ``server`` (``host[:port]``) or the configuration's."""
    if "udp" not in config.sip.transports:
        raise SimulationError("the engine does not listen on UDP, the only transport pyVoIP has")
    if server:
        host, colon, port = server.partition(":")
        if not host:
            raise SimulationError(f"--server {server}: give HOST or HOST:PORT")
        if not colon:
            return host, config.sip.port
        if not (port.isdigit() and 0 < int(port) < 65536):
            raise SimulationError(f"--server {server}: the port must be 1 to 65535")
        return host, int(port)
    listen = str(config.sip.listen[0])
    if ":" in listen and listen not in _ANY:
        raise SimulationError("the engine listens on IPv6 only; pyVoIP 1.6 speaks IPv4")
    return ("127.0.0.1" if listen in _ANY else listen), config.sip.port


class _Printer:
    """Whole lines to a stream from any thread, flushed at once (the output may be a pipe)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            print(line, file=self._stream, flush=True)


def run_simulator(
    config: Config,
    *,
    usernames: Sequence[str] | None = None,
    count: int | None = None,
    answer_after: float = 1.0,
    tone: int = 600,
    server: str | None = None,
    out: TextIO | None = None,
) -> int:
    """Register the agents, answer calls until SIGINT or SIGTERM, then stop cleanly.

    Must run on the main thread (it installs the signal handlers). Returns
    the exit status; raises :class:`SimulationError` for a bad choice of
    agents or address, before anything starts.
    """
    if answer_after < 0:
        raise SimulationError("--answer-after must be 0 or more seconds")
    agents = choose_agents(config, usernames, count, tone)
    address = engine_address(config, server)
    report = _Printer(out or sys.stdout)
    simulator = AgentSimulator(agents, address, answer_after=answer_after, report=report)

    interrupted = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        interrupted.set()
        simulator.stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            simulator.start(REGISTER_TIMEOUT)
        except SimulationError as exc:
            if interrupted.is_set():
                return 0  # told to stop while registering: nothing went wrong
            print(f"acd simulate-agents: {exc}", file=sys.stderr, flush=True)
            return 1
        for phone in simulator.phones:
            report(
                f"{phone.label} registered from {phone.sip.myIP}:{phone.sip.myPort}:"
                f" answers after {answer_after:g} s with {phone.agent.tone_hz} Hz"
            )
        report(f"{len(simulator.phones)} agents ready at {address[0]}:{address[1]}; Ctrl-C stops")
        # A timed wait, so the signal handler runs promptly on every platform.
        while not simulator.stopping.wait(0.5):
            pass
        left = simulator.stop(STOP_TIMEOUT)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    answered = sum(phone.calls_answered for phone in simulator.phones)
    if left:
        names = ", ".join(sorted(t.name for t in left))
        print(
            f"acd simulate-agents: pyVoIP threads still running after {STOP_TIMEOUT:g} s: {names}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    report(f"stopped: {len(simulator.phones)} agents unregistered, {answered} calls answered")
    return 0
