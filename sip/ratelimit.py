"""Blocking of sources that keep failing authentication (password guessing).

Sans-I/O like the rest of ``sip/``: the caller passes the current time as
``now`` and decides what a blocked source gets (typically nothing at all, so
a scanner learns nothing and costs no hashing).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

__all__ = ["FailureLimiter"]


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
