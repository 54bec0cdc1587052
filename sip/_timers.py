"""Timers and the state-machine core shared by client and server transactions.

Every transaction is a table-driven state machine (the h11 ``_state.py`` shape):
``(state, trigger) -> (new state, actions)``. Triggers are message inputs
(:class:`Input`) or timers firing (:class:`Timer`). State changes go through
:meth:`Transaction._set_state` only, which also disarms the timers that have no
meaning in the new state, so a stale timer can never fire into the wrong state.

Timers live in one :class:`TimerHeap` per transaction layer with lazy deletion:
disarming only forgets the heap entry's token, and stale entries are dropped
when they reach the top (or in bulk when they pile up).
"""

from __future__ import annotations

import enum
import heapq
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, NamedTuple, Protocol, TypeVar

from .events import Address, Event
from .message import Request, Response

logger = logging.getLogger("sip.transaction")


class State(enum.Enum):
    """Transaction states of RFC 3261 figures 5-8 and RFC 6026 (Accepted)."""

    # Members are singletons compared by identity, so hashing by identity is
    # consistent; Enum's own __hash__ is Python code, and every table lookup
    # and timer check hashes two of these.
    __hash__ = object.__hash__

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Input(enum.Enum):
    """What can happen to a transaction besides a timer firing."""

    __hash__ = object.__hash__  # as for State

    RECV_REQUEST = "request retransmission"
    RECV_ACK = "ACK"
    RECV_1XX = "1xx received"
    RECV_2XX = "2xx received"
    RECV_ERROR = "300-699 received"
    SEND_1XX = "TU sends 1xx"
    SEND_2XX = "TU sends 2xx"
    SEND_ERROR = "TU sends 300-699"
    TRANSPORT_ERROR = "transport error"


class Timer(enum.Enum):
    """RFC 3261 table 4 timers, RFC 6026 L and M, and three of this stack's own."""

    __hash__ = object.__hash__  # as for State

    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741 - the RFC's name
    J = "J"
    K = "K"
    L = "L"
    M = "M"
    # 2xx retransmission by the UAS core (RFC 3261 13.3.1.4), run by the layer here.
    RETRANSMIT_2XX = "2xx"
    # RFC 3261 9.1: give up on an INVITE 64*T1 after CANCELling it.
    CANCEL_GUARD = "cancel"
    # A non-INVITE request the TU never answered: the client gave up at Timer F.
    TU_GUARD = "tu"


Trigger = Input | Timer


class TransactionError(Exception):
    """Base of the errors this layer raises on misuse by the TU."""


class IllegalTransition(TransactionError):
    """A trigger the transaction's table has no entry for in its current state.

    Remote inputs are all in the tables, so this means the local TU did
    something out of order (a second final response, say) or a table bug.
    """

    def __init__(self, machine: str, key: str, state: State, trigger: Trigger) -> None:
        super().__init__(f"{machine} {key}: no transition from {state.value} on {trigger.value}")
        self.machine = machine
        self.key = key
        self.state = state
        self.trigger = trigger


@dataclass(frozen=True, slots=True)
class Durations:
    """Timer values from T1, T2 and T4 (RFC 3261 table 4)."""

    t1: float
    t2: float
    t4: float

    @property
    def timeout(self) -> float:
        """64*T1: Timers B, F, H, J (unreliable), L, M."""
        return 64 * self.t1

    def wait_d(self, reliable: bool) -> float:
        """Timer D: 32 s, or 64*T1 when T1 is raised.

        It must outlast the server's retransmissions of its final response,
        which go on until its Timer H at 64*T1.
        """
        return 0.0 if reliable else max(32.0, self.timeout)

    def wait_t4(self, reliable: bool) -> float:
        """Timers I and K."""
        return 0.0 if reliable else self.t4

    def wait_j(self, reliable: bool) -> float:
        """Timer J."""
        return 0.0 if reliable else self.timeout


class Effects(Protocol):
    """What a transaction may do to the world: the layer implements this."""

    durations: Durations

    def send(self, data: bytes, destination: Address, *, retransmission: bool = False) -> None:
        """Queue bytes for output."""

    def emit(self, event: Event) -> None:
        """Report an event to the TU."""

    def arm(self, transaction: Transaction, timer: Timer, delay: float, now: float) -> None:
        """Start (or restart) ``timer`` to fire ``delay`` seconds after ``now``."""


class Context(NamedTuple):
    """What one step of a state machine sees: the trigger's message, the clock, the layer."""

    message: Request | Response | None
    source: Address | None
    now: float
    io: Effects


_A = TypeVar("_A")


class Transaction:
    """What every transaction has: a key, a state, a destination and armed timers.

    Subclasses hold a transition table and run its actions in ``step``.
    """

    __slots__ = ("armed", "destination", "interval", "key", "method", "state")

    MACHINE: ClassVar[str] = "transaction"
    # Timers that keep running in each state; entering a state disarms the rest.
    TIMERS: ClassVar[Mapping[State, frozenset[Timer]]] = {}

    def __init__(self, key: str, method: str, state: State, destination: Address) -> None:
        self.key = key
        self.method = method
        self.state = state
        self.destination = destination
        self.armed: dict[Timer, int] = {}
        # Current retransmission interval of Timer A, E, G or the 2xx timer.
        self.interval = 0.0

    @property
    def reliable(self) -> bool:
        """True when the transport needs no retransmissions from us."""
        return self.destination.reliable

    def step(self, trigger: Trigger, ctx: Context) -> None:
        """Apply ``trigger``: change state and run the table's actions."""
        raise NotImplementedError

    def _transition(
        self, table: Mapping[tuple[State, Trigger], tuple[State, _A]], trigger: Trigger
    ) -> _A:
        entry = table.get((self.state, trigger))
        if entry is None:
            raise IllegalTransition(self.MACHINE, self.key, self.state, trigger)
        self._set_state(entry[0])
        return entry[1]

    def _set_state(self, new: State) -> None:
        if new is self.state:
            return
        logger.debug("%s %s: %s -> %s", self.MACHINE, self.key, self.state.value, new.value)
        self.state = new
        keep = self.TIMERS.get(new, frozenset())
        for timer in [t for t in self.armed if t not in keep]:
            del self.armed[timer]

    def arm(self, ctx: Context, timer: Timer, delay: float) -> None:
        """Start (or restart) ``timer``.

        Zero-length timers (D, I, J, K on reliable transports) go through the
        heap too, due at once: the next ``handle_timer`` fires them, which
        keeps termination events out of calls that return none.
        """
        ctx.io.arm(self, timer, delay, ctx.now)

    def disarm(self, timer: Timer) -> None:
        """Stop ``timer`` (its heap entry goes stale)."""
        self.armed.pop(timer, None)


class TimerHeap:
    """Deadlines of every armed timer, earliest first, with lazy deletion.

    An entry is live while ``transaction.armed[timer]`` still holds its token;
    re-arming or disarming a timer simply makes the old entry stale.
    """

    __slots__ = ("_compact_at", "_heap", "_token")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Transaction, Timer]] = []
        self._token = 0
        self._compact_at = 4096

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, transaction: Transaction, timer: Timer, deadline: float) -> None:
        """Arm ``timer`` of ``transaction`` at ``deadline`` (replacing an earlier arming)."""
        self._token += 1
        transaction.armed[timer] = self._token
        heapq.heappush(self._heap, (deadline, self._token, transaction, timer))
        # Stale entries stay until popped; when a burst of quick transactions
        # leaves many stale 32 s timers behind, rebuild rather than carry them.
        # Checking only each time the heap doubles keeps the scan amortised O(1).
        if len(self._heap) > self._compact_at:
            self._compact()

    def _compact(self) -> None:
        live = [e for e in self._heap if e[2].armed.get(e[3]) == e[1]]
        if len(live) * 2 < len(self._heap):
            heapq.heapify(live)
            self._heap = live
        self._compact_at = max(4096, 2 * len(self._heap))

    def next_deadline(self) -> float | None:
        """The earliest live deadline, dropping stale entries on the way."""
        heap = self._heap
        while heap:
            deadline, token, transaction, timer = heap[0]
            if transaction.armed.get(timer) == token:
                return deadline
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float) -> tuple[Transaction, Timer] | None:
        """Remove and return the earliest live timer due at ``now``, or None."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, token, transaction, timer = heapq.heappop(heap)
            if transaction.armed.get(timer) == token:
                del transaction.armed[timer]
                return transaction, timer
        return None
