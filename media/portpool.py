"""The pool of RTP/RTCP port pairs media sessions draw from.

RTP takes an even port and RTCP the odd port above it (RFC 3550 11), so the
pool hands out even ports whose successor is also in the configured range.
Ports come back in the order they were freed, after every other free port:
a port just released may still receive the old call's late packets (or a
NAT may still map to it), so the longer it rests the better.

Only bookkeeping lives here: the adapter binds the sockets. If a bind fails
because another program holds the port, the adapter releases it (it goes to
the back of the queue) and allocates again.
"""

from __future__ import annotations

from collections import deque

__all__ = ["PortPool", "PortPoolExhausted"]


class PortPoolExhausted(Exception):
    """Every port pair in the range is in use: the call cannot have media."""


class PortPool:
    """Even RTP ports in ``[low, high]``, each with RTCP on port + 1, reused oldest-freed first.

    ``allocate()`` returns the RTP port and raises :class:`PortPoolExhausted`
    when none is free; ``release(port)`` returns it and raises ``ValueError``
    for a port the pool did not hand out, so a double release shows up at once.
    """

    def __init__(self, low: int, high: int) -> None:
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

    def allocate(self) -> int:
        """An even RTP port not in use (RTCP is the port above); the pair is now taken."""
        if not self._free:
            raise PortPoolExhausted(
                f"all {self._capacity} RTP port pairs in {self.low}-{self.high} are in use"
            )
        port = self._free.popleft()
        self._in_use.add(port)
        return port

    def release(self, port: int) -> None:
        """Give back a port from :meth:`allocate`; it is reused after every other free port."""
        try:
            self._in_use.remove(port)
        except KeyError:
            raise ValueError(f"RTP port {port} is not allocated from this pool") from None
        self._free.append(port)

    def __contains__(self, port: object) -> bool:
        """Whether ``port`` is allocated now."""
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
