"""Simulated agents: one pyVoIP phone per agent, answering after a delay with a tone.

pyVoIP runs on threads (a receive loop, a re-register timer, one thread per
call and two per RTP stream), so this module is threaded too and keeps to
one rule: every blocking wait is on the shared ``stopping`` event or has a
deadline, so SIGINT or SIGTERM ends the simulator promptly.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from pydantic import SecretStr
from pyVoIP.VoIP import CallState, InvalidStateError, PhoneStatus, VoIPCall, VoIPPhone

from acd.config import Config

from ._pyvoip import AgentSipClient

__all__ = [
    "AgentPhone",
    "AgentSimulator",
    "SimulatedAgent",
    "SimulationError",
    "choose_agents",
    "pyvoip_threads",
]

RATE = 8000
FRAME = 160  # pyVoIP sends 20 ms packets of 160 samples
LEAD = 0.1  # seconds of tone kept queued ahead of pyVoIP's RTP sender
MAX_TONE_HZ = 3400  # the top of the telephone band
MAX_TONE_STEP = 100
TONE_LEVEL = 64  # amplitude in pyVoIP's unsigned 8-bit samples: -9 dBFS RMS
SIP_TIMEOUT = 5  # seconds pyVoIP waits for each SIP answer (its default is 30)
RTP_PORTS = (10000, 19999)  # below the engine's default 20000-29999
# pyVoIP's threads: "SIP Recieve", "SIP Register CSeq: n", "RTP Receiver",
# "RTP Transmitter" and "Phone Call: <Call-ID>".
_PYVOIP_THREADS = ("SIP ", "RTP ", "Phone Call")

Report = Callable[[str], None]


class SimulationError(Exception):
    """The simulator cannot start: bad choice of agents, or an agent cannot register."""


@dataclass(frozen=True, slots=True)
class SimulatedAgent:
    """An agent account to register, and the tone it answers calls with."""

    username: str
    name: str
    password: SecretStr = field(repr=False)
    tone_hz: int


def choose_agents(
    config: Config,
    usernames: Sequence[str] | None = None,
    count: int | None = None,
    base_tone: int = 600,
) -> list[SimulatedAgent]:
    """The agents to simulate: those named, else the first ``count``, else all.

    Tones are fixed by each agent's place in the configuration, not in the
    selection, so agent 1002 always answers with the same tone: ``base_tone``
    for the first agent, then up to 100 Hz more for each, spread to fit
    below 3.4 kHz however many agents there are.
    """
    configured = list(config.agents)
    if not configured:
        raise SimulationError("the configuration has no agents to simulate")
    if not 200 <= base_tone < MAX_TONE_HZ:
        raise SimulationError(f"--tone {base_tone}: give a frequency from 200 to 3399 Hz")
    if usernames is not None and count is not None:
        raise SimulationError("give --agents or --count, not both")
    place = {agent.username: i for i, agent in enumerate(configured)}
    if usernames is not None:
        unknown = [name for name in usernames if name not in place]
        if unknown:
            raise SimulationError(
                f"no agent {', '.join(unknown)} in the configuration (agents: {', '.join(place)})"
            )
        if len(set(usernames)) != len(usernames):
            raise SimulationError("--agents names an agent twice")
        chosen = [configured[place[name]] for name in usernames]
    elif count is not None:
        if not 1 <= count <= len(configured):
            raise SimulationError(
                f"--count {count}: the configuration has {len(configured)} agents"
            )
        chosen = configured[:count]
    else:
        chosen = configured
    step = min(MAX_TONE_STEP, (MAX_TONE_HZ - base_tone) / max(len(configured) - 1, 1))
    return [
        SimulatedAgent(
            agent.username,
            agent.name,
            agent.password,
            round(base_tone + step * place[agent.username]),
        )
        for agent in chosen
    ]


def _tone_second(frequency: int) -> bytes:
    """One second of the tone as pyVoIP's unsigned 8-bit samples; whole Hz loop seamlessly."""
    t = np.arange(RATE) / RATE
    samples = 128 + np.round(TONE_LEVEL * np.sin(2 * math.pi * frequency * t))
    return bytes(samples.astype(np.uint8))


def local_address_for(server: tuple[str, int]) -> str:
    """The address this host sends from to reach ``server`` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(server)
        except OSError as exc:
            raise SimulationError(f"cannot reach {server[0]}:{server[1]}: {exc}") from exc
        return str(probe.getsockname()[0])


def pyvoip_threads() -> list[threading.Thread]:
    """pyVoIP's threads still alive in this process."""
    return [t for t in threading.enumerate() if t.name.startswith(_PYVOIP_THREADS)]


class AgentPhone:
    """One agent's pyVoIP softphone: registers, answers after a delay, plays its tone.

    Calls run on pyVoIP's per-call thread (:meth:`_on_call`). ``report`` gets
    one line per call, for the person watching.
    """

    def __init__(
        self,
        agent: SimulatedAgent,
        server: tuple[str, int],
        my_ip: str,
        *,
        answer_after: float,
        stopping: threading.Event,
        report: Report,
    ) -> None:
        self.agent = agent
        self.answer_after = answer_after
        self.calls_answered = 0
        self._stopping = stopping
        self._report = report
        self._tone = _tone_second(agent.tone_hz)
        self._lock = threading.Lock()
        self._cancelled: set[str] = set()
        self.phone = VoIPPhone(
            server[0],
            server[1],
            agent.username,
            agent.password.get_secret_value(),
            myIP=my_ip,
            callCallback=self._on_call,
            sipPort=0,
            rtpPortLow=RTP_PORTS[0],
            rtpPortHigh=RTP_PORTS[1],
        )
        # The same arguments VoIPPhone gave its own client, on the fixed one.
        self.phone.sip = self.sip = AgentSipClient(
            server[0],
            server[1],
            agent.username,
            agent.password.get_secret_value(),
            phone=self.phone,
            myIP=my_ip,
            myPort=0,
            callCallback=self.phone.callback,
            fatalCallback=self.phone.fatal,
            on_cancel=self._on_cancel,
        )
        self.sip.register_timeout = SIP_TIMEOUT

    @property
    def label(self) -> str:
        agent = self.agent
        return (
            agent.username if agent.name == agent.username else f"{agent.username} ({agent.name})"
        )

    def start(self, timeout: float) -> None:
        """Register; :class:`SimulationError` if not registered within ``timeout``."""
        self.phone.start()
        deadline = time.monotonic() + timeout
        while (status := self.phone.get_status()) != PhoneStatus.REGISTERED:
            if status in (PhoneStatus.FAILED, PhoneStatus.INACTIVE):
                raise SimulationError(
                    f"agent {self.agent.username} could not register (wrong password,"
                    " or no engine on that address?)"
                )
            if time.monotonic() >= deadline or self._stopping.wait(0.05):
                raise SimulationError(
                    f"agent {self.agent.username} was not registered after {timeout:.0f} s"
                )

    def stop(self) -> None:
        """Hang up, unregister and close (pyVoIP's stop: blocking, on the network)."""
        self.phone.stop()

    # -- pyVoIP's threads ----------------------------------------------------------------

    def _on_cancel(self, call_id: str) -> None:
        with self._lock:
            self._cancelled.add(call_id)

    def _was_cancelled(self, call_id: str) -> bool:
        with self._lock:
            return call_id in self._cancelled

    def _on_call(self, call: VoIPCall) -> None:
        call_id = call.call_id
        caller = _describe_caller(call)
        try:
            rang_at = self.sip.ringing_since(call_id) or time.monotonic()
            wait = max(0.0, rang_at + self.answer_after - time.monotonic())
            if self._stopping.wait(wait) or self._was_cancelled(call_id):
                if self._was_cancelled(call_id):
                    self._report(f"{self.label} missed a call from {caller}: the caller gave up")
                    self.phone.calls.pop(call_id, None)
                return
            try:
                call.answer()
            except InvalidStateError:
                return  # no longer ringing
            except OSError as exc:  # its RTP port was taken after all
                self._report(f"{self.label} could not answer {caller}: {exc}")
                _refuse(call)
                return
            self.calls_answered += 1
            answered_at = time.monotonic()
            self._play_tone(call)
            seconds = time.monotonic() - answered_at
            ended = "simulator stopping" if self._stopping.is_set() else "far end hung up"
            self._report(
                f"{self.label} answered {caller} with {self.agent.tone_hz} Hz:"
                f" {seconds:.1f} s, {ended}"
            )
        finally:
            with self._lock:
                self._cancelled.discard(call_id)
            self.sip.forget_call(call_id)

    def _play_tone(self, call: VoIPCall) -> None:
        """Keep pyVoIP's send buffer ``LEAD`` seconds ahead until the call ends."""
        started = time.monotonic()
        sent = 0
        while call.state == CallState.ANSWERED and not self._stopping.is_set():
            due = int((time.monotonic() - started + LEAD) * RATE)
            while sent < due:
                offset = sent % RATE
                call.write_audio(self._tone[offset : offset + FRAME])
                sent += FRAME
            self._stopping.wait(FRAME / RATE)


def _describe_caller(call: VoIPCall) -> str:
    try:
        sender = call.request.headers["From"]
        number = sender.get("number") or sender.get("address") or "anonymous"
        # pyVoIP leaves quotes on a quoted display name followed by a space.
        display = str(sender.get("caller") or "").strip().strip('"').strip()
    except (KeyError, AttributeError):
        return "an unknown caller"
    return f'{number} ("{display}")' if display and display != number else str(number)


def _refuse(call: VoIPCall) -> None:
    with contextlib.suppress(InvalidStateError, OSError, KeyError):
        call.deny()


class AgentSimulator:
    """Several :class:`AgentPhone`\\ s started and stopped together."""

    def __init__(
        self,
        agents: Iterable[SimulatedAgent],
        server: tuple[str, int],
        *,
        answer_after: float,
        report: Report,
        my_ip: str | None = None,
    ) -> None:
        self.stopping = threading.Event()
        ip = my_ip or local_address_for(server)
        self.phones = [
            AgentPhone(
                agent,
                server,
                ip,
                answer_after=answer_after,
                stopping=self.stopping,
                report=report,
            )
            for agent in agents
        ]

    def start(self, timeout: float) -> None:
        """Register every phone at once; on any failure stop them all and raise."""
        errors: list[BaseException] = []

        def start(phone: AgentPhone) -> None:
            try:
                phone.start(timeout)
            except BaseException as exc:  # reported on the caller's thread
                errors.append(exc)

        _run_all([(f"start {p.agent.username}", partial(start, p)) for p in self.phones], None)
        if errors:
            self.stop(timeout)
            first = errors[0]
            if isinstance(first, SimulationError):
                raise first
            raise SimulationError(f"an agent could not start: {first}") from first

    def stop(self, timeout: float) -> list[threading.Thread]:
        """Stop every phone within ``timeout`` seconds; the pyVoIP threads still left."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        _run_all([(f"stop {p.agent.username}", p.stop) for p in self.phones], deadline)
        while (left := pyvoip_threads()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return left


def _run_all(jobs: list[tuple[str, Callable[[], None]]], deadline: float | None) -> None:
    """Run blocking jobs on threads at once and join them, up to ``deadline``.

    A job still running at the deadline is left behind as a daemon thread: it
    is stuck in pyVoIP's network wait, and the caller reports what is left.
    """
    threads = [threading.Thread(target=job, name=name, daemon=True) for name, job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
