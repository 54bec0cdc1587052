"""Per-source limits: floods of requests, and sources that keep failing authentication.

Sans-I/O like the rest of ``sip/``: the caller passes the current time as
``now`` and decides what a blocked source gets (typically nothing at all, so
a flooder or a scanner learns nothing and costs no parsing or hashing).
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["FailureLimiter", "RequestLimiter"]

log = logging.getLogger(__name__)

_NEVER = float("-inf")


@dataclass(slots=True)
class _Source:
    failures: deque[float] = field(default_factory=deque)
    blocked_until: float = float("-inf")


class FailureLimiter:
    """Counts authentication failures per source and blocks noisy sources.

    A source (usually a host string) is blocked once it has ``max_failures``
    failures inside a sliding ``window`` of seconds, and stays blocked for
    ``cooldown`` seconds from the failure that tripped it. At most
    ``max_tracked`` sources are remembered; beyond that the least recently
    failing ones are forgotten, so a flood from many addresses cannot
    exhaust memory.
    """

    def __init__(
        self,
        max_failures: int = 10,
        window: float = 60.0,
        cooldown: float = 300.0,
        max_tracked: int = 100_000,
    ) -> None:
        if max_failures < 1 or max_tracked < 1 or not window > 0 or not cooldown >= 0:
            raise ValueError("limits must be positive (cooldown may be zero)")
        self.max_failures = max_failures
        self.window = window
        self.cooldown = cooldown
        self.max_tracked = max_tracked
        self._sources: OrderedDict[str, _Source] = OrderedDict()

    def record_failure(self, key: str, now: float) -> None:
        """Count one failed attempt from ``key`` at time ``now``."""
        source = self._sources.get(key)
        if source is None:
            source = self._sources[key] = _Source(deque(maxlen=self.max_failures))
        elif source.blocked_until > now:
            # Failures while blocked are not counted, so the block ends exactly
            # cooldown seconds after the failure that tripped it.
            return
        else:
            self._sources.move_to_end(key)
        source.failures.append(now)
        self._forget_before(source, now - self.window)
        if len(source.failures) >= self.max_failures:
            source.blocked_until = now + self.cooldown
            source.failures.clear()
        while len(self._sources) > self.max_tracked:
            self._sources.popitem(last=False)

    def record_success(self, key: str) -> None:
        """Forget ``key``'s failures after it authenticated; a running block stays."""
        source = self._sources.get(key)
        if source is None:
            return
        source.failures.clear()
        if source.blocked_until == float("-inf"):
            del self._sources[key]

    def is_blocked(self, key: str, now: float) -> bool:
        """Whether requests from ``key`` should be refused at time ``now``."""
        source = self._sources.get(key)
        return source is not None and source.blocked_until > now

    def prune(self, now: float) -> None:
        """Forget sources that are neither blocked nor have failures in the window."""
        horizon = now - self.window
        for key in list(self._sources):
            source = self._sources[key]
            self._forget_before(source, horizon)
            if not source.failures and source.blocked_until <= now:
                del self._sources[key]

    def __len__(self) -> int:
        return len(self._sources)

    @staticmethod
    def _forget_before(source: _Source, horizon: float) -> None:
        # Timestamps arrive in order, so the expired ones are all at the left.
        while source.failures and source.failures[0] <= horizon:
            source.failures.popleft()


@dataclass(slots=True)
class _Window:
    start: float
    last: float
    requests: int = 1
    blocked_until: float = _NEVER
    blocked_at: float = 0.0
    dropped: int = 0


class RequestLimiter:
    """Throttles requests per source address before they cost parsing (Kamailio pike's model).

    Each source (a host string) has a sampling window of ``window`` seconds,
    opened by its first request; more than ``threshold`` requests in one
    window block it for ``block_time`` seconds, and :meth:`admit` says False
    for everything it sends meanwhile. A blocked source is still counted: any
    window in which it again goes over the threshold renews the block from
    that moment, so a source that keeps flooding stays blocked (as with pike)
    and one that slows down is released ``block_time`` after its last window
    over the threshold.

    ``exempt(host)`` (trunks, registered phones) is asked only when a source
    crosses the threshold, never per request; an exempt source's count starts
    again, so the question comes back once per ``threshold`` requests. At most
    ``max_sources`` sources are tracked; the least recently heard from are
    forgotten first, so a flood from many addresses cannot exhaust memory
    (a source that keeps flooding is always the most recent, so it stays).
    One WARNING is logged when a source becomes blocked and one INFO when it
    is released, never a line per request.
    """

    def __init__(
        self,
        threshold: int = 200,
        window: float = 2.0,
        block_time: float = 60.0,
        max_sources: int = 50_000,
        exempt: Callable[[str], bool] | None = None,
    ) -> None:
        if threshold < 1 or max_sources < 1 or not window > 0 or not block_time > 0:
            raise ValueError("threshold, window, block_time and max_sources must be positive")
        self.threshold = threshold
        self.window = window
        self.block_time = block_time
        self.max_sources = max_sources
        self.exempt = exempt
        # Since start, over every source: requests refused, and blocks begun.
        self.dropped = 0
        self.blocks = 0
        self._sources: OrderedDict[str, _Window] = OrderedDict()
        self._blocked: dict[str, _Window] = {}

    def admit(self, key: str, now: float) -> bool:
        """Count one request from ``key`` at ``now``; False means drop it unanswered."""
        source = self._sources.get(key)
        if source is None:
            self._sources[key] = _Window(now, now)
            if len(self._sources) > self.max_sources:
                self._forget_oldest(now)
            return True
        # This is every request's path: a dict lookup, a move and a few compares.
        self._sources.move_to_end(key)
        source.last = now
        if now - source.start >= self.window:
            source.start = now
            source.requests = 1
        else:
            source.requests += 1
        if source.blocked_until != _NEVER:
            if source.blocked_until > now:
                if source.requests > self.threshold:
                    source.blocked_until = now + self.block_time
                source.dropped += 1
                self.dropped += 1
                return False
            self._release(key, source, now)
        if source.requests <= self.threshold:
            return True
        if self.exempt is not None and self.exempt(key):
            source.requests = 0
            return True
        source.blocked_until = now + self.block_time
        source.blocked_at = now
        source.dropped = 1
        self._blocked[key] = source
        self.blocks += 1
        self.dropped += 1
        log.warning(
            "blocking requests from %s: over %d in %g s; dropped for %g s after it stops",
            key,
            self.threshold,
            self.window,
            self.block_time,
        )
        return False

    def is_blocked(self, key: str, now: float) -> bool:
        """Whether requests from ``key`` are being dropped at ``now``."""
        source = self._blocked.get(key)
        return source is not None and source.blocked_until > now

    def blocked(self, now: float) -> int:
        """How many sources are blocked at ``now``."""
        return sum(1 for source in self._blocked.values() if source.blocked_until > now)

    def prune(self, now: float) -> None:
        """Release blocks that ended and forget sources quiet for a whole window.

        Call it about once a second: it logs each release close to when the
        block ended even if the source never sends again.
        """
        for key, source in [(k, s) for k, s in self._blocked.items() if s.blocked_until <= now]:
            self._release(key, source, now)
        horizon = now - self.window
        sources = self._sources
        while sources:
            key = next(iter(sources))
            source = sources[key]
            # Least recently heard from first: stop at the first one still
            # in its window, or still blocked (it is released above, later).
            if source.last > horizon or source.blocked_until != _NEVER:
                break
            del sources[key]

    def __len__(self) -> int:
        return len(self._sources)

    def _release(self, key: str, source: _Window, now: float) -> None:
        del self._blocked[key]
        log.info(
            "released %s after %.0f s blocked: %d requests dropped",
            key,
            now - source.blocked_at,
            source.dropped,
        )
        source.blocked_until = _NEVER
        source.dropped = 0

    def _forget_oldest(self, now: float) -> None:
        key, source = self._sources.popitem(last=False)
        if source.blocked_until != _NEVER:
            self._release(key, source, now)
