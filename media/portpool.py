"""The pool of RTP/RTCP port pairs media sessions draw from.

RTP takes an even port and RTCP the odd port above it (RFC 3550 11), so the
pool hands out even ports whose successor is also in the configured range.
Ports come back in the order they were freed, after every other free port:
a port just released may still receive the old call's late packets (or a
NAT may still map to it), so the longer it rests the better.

Only bookkeeping lives here: the adapter binds the sockets. If a bind fails
because another program holds the port, the adapter releases it (it goes to
the back of the queue) and allocates again.

Parking: making and binding two sockets, and registering them with the
event loop, costs more per call than anything else in opening a leg, so a
closed leg may :meth:`~PortPool.park` its bound sockets instead of closing
them (they drop whatever still arrives), and a new leg on the same address
:meth:`~PortPool.unpark` them once they have rested ``rest`` seconds, oldest
first. A parked pair is neither in use nor free: it is closed (and its port
freed) after ``max_age`` seconds unused, when more than ``max_parked`` are
parked, or when :meth:`allocate` finds no free port.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

__all__ = ["Parked", "PortPool", "PortPoolExhausted"]


class Parked(Protocol):
    """What a closed leg leaves bound on its port pair: closed when the pool lets it go."""

    def close(self) -> None: ...


class PortPoolExhausted(Exception):
    """Every port pair in the range is in use: the call cannot have media."""


class PortPool:
    """Even RTP ports in ``[low, high]``, each with RTCP on port + 1, reused oldest-freed first.

    ``allocate()`` returns the RTP port and raises :class:`PortPoolExhausted`
    when none is free; ``release(port)`` returns it and raises ``ValueError``
    for a port the pool did not hand out, so a double release shows up at once.
    """

    def __init__(
        self,
        low: int,
        high: int,
        *,
        rest: float = 4.0,
        max_age: float = 30.0,
        max_parked: int = 1024,
    ) -> None:
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"port range {low}-{high} is not within 1-65535 with low <= high")
        first = low + (low & 1)
        ports = range(first, high, 2)
        if not ports:
            raise ValueError(f"port range {low}-{high} holds no even RTP port with RTCP above it")
        self.low = low
        self.high = high
        self._free: deque[int] = deque(ports)
        self._in_use: set[int] = set()
        self._capacity = len(ports)
        self.rest = rest
        self.max_age = max_age
        self.max_parked = max_parked
        # address -> (parked at, port, resource), oldest first
        self._parked: dict[str, deque[tuple[float, int, Parked]]] = {}
        self._parked_count = 0

    def allocate(self) -> int:
        """An even RTP port not in use (RTCP is the port above); the pair is now taken."""
        if not self._free and self._parked_count:
            self._evict_oldest()
        if not self._free:
            raise PortPoolExhausted(
                f"all {self._capacity} RTP port pairs in {self.low}-{self.high} are in use"
            )
        port = self._free.popleft()
        self._in_use.add(port)
        return port

    def park(self, port: int, address: str, resource: Parked, now: float) -> None:
        """Keep an allocated port's bound ``resource`` on ``address`` for a later leg."""
        if port not in self._in_use:
            raise ValueError(f"RTP port {port} is not allocated from this pool")
        self._in_use.remove(port)
        self._parked.setdefault(address, deque()).append((now, port, resource))
        self._parked_count += 1
        self.expire(now)
        while self._parked_count > self.max_parked:
            self._evict_oldest()

    def unpark(self, address: str, now: float) -> tuple[int, Parked] | None:
        """The port and resource parked longest on ``address``, if it rested ``rest``
        seconds (it is in use again), or None."""
        self.expire(now)
        parked = self._parked.get(address)
        if not parked or now - parked[0][0] < self.rest:
            return None
        _at, port, resource = parked.popleft()
        self._parked_count -= 1
        self._in_use.add(port)
        return port, resource

    def expire(self, now: float) -> None:
        """Close what has been parked longer than ``max_age`` seconds."""
        for parked in self._parked.values():
            while parked and now - parked[0][0] > self.max_age:
                self._let_go(parked.popleft())

    def close_parked(self) -> None:
        """Close every parked resource (the engine is stopping)."""
        for parked in self._parked.values():
            while parked:
                self._let_go(parked.popleft())

    @property
    def parked(self) -> int:
        """Port pairs parked now."""
        return self._parked_count

    def _evict_oldest(self) -> None:
        oldest = min((q for q in self._parked.values() if q), key=lambda q: q[0][0])
        self._let_go(oldest.popleft())

    def _let_go(self, entry: tuple[float, int, Parked]) -> None:
        _at, port, resource = entry
        self._parked_count -= 1
        self._free.append(port)
        resource.close()

    def release(self, port: int) -> None:
        """Give back a port from :meth:`allocate`; it is reused after every other free port."""
        try:
            self._in_use.remove(port)
        except KeyError:
            raise ValueError(f"RTP port {port} is not allocated from this pool") from None
        self._free.append(port)

    def __contains__(self, port: object) -> bool:
        """Whether ``port`` is allocated now (a parked port is not)."""
        return port in self._in_use

    @property
    def capacity(self) -> int:
        """Port pairs in the range."""
        return self._capacity

    @property
    def in_use(self) -> int:
        """Port pairs allocated now."""
        return len(self._in_use)

    @property
    def available(self) -> int:
        """Port pairs free now."""
        return len(self._free)
