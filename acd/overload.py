"""Overload control: which new calls the engine admits when it is, or is about to be, full.

Past its ceiling a node that accepts every call serves none of them well:
callers wait in silence while SIP retransmits and the event loop falls
behind. The :class:`OverloadGuard` decides, per new INVITE and before
anything is done for it, to admit it or to refuse it with 503 and a
Retry-After, from four limits (Asterisk's ``maxload`` and FreeSWITCH's
``max-sessions``/``sessions-per-second``, Kamailio's ``ratelimit``, in one
place):

* ``calls``: ``calls.max_calls`` calls are in progress;
* ``rate``: more new calls than ``max_calls_per_second`` (a token bucket of
  ``burst`` tokens that refills at that rate);
* ``lag`` and ``cpu``: the event loop runs late, or the process uses more
  than ``max_cpu`` of a core, smoothed over about a second. Then a growing
  share of new calls is shed, the "loss" algorithm of RFC 7339: the share
  admitted shrinks multiplicatively for every sample over the limit and
  grows back by a fixed step for every sample comfortably under it (below
  ``recover_below`` of the limit), so that the node neither flaps between
  all and nothing nor stays shut once the load has passed.

Sans-I/O like ``sip/``: time and measurements come in as arguments (the
engine samples the loop lag and its CPU share every half second, see
``metrics/loop.py``), decisions go out; no clock, timer or socket here.
:meth:`OverloadGuard.admit` is on the path of every INVITE and costs a few
float operations; the work is in :meth:`OverloadGuard.sample`, twice a
second.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sip.overload import LossFeedback

if TYPE_CHECKING:
    from .config import CallsConfig

__all__ = ["REASONS", "OverloadGuard", "OverloadPolicy", "Reason", "Refusal"]

log = logging.getLogger(__name__)

Reason = Literal["calls", "rate", "lag", "cpu"]
REASONS: tuple[Reason, ...] = ("calls", "rate", "lag", "cpu")
"""Why a new call can be refused, in the order the guard checks them."""


@dataclass(frozen=True, slots=True)
class OverloadPolicy:
    """The limits and the shape of the shedding control (seconds and shares of a core).

    ``None`` turns a limit off. ``burst`` defaults to one second's worth of
    calls at ``calls_per_second``.
    """

    max_calls: int = 5000
    calls_per_second: float | None = None
    burst: int | None = None
    max_loop_lag: float | None = 0.25
    max_cpu: float | None = 0.9
    retry_after: int = 5
    smoothing: float = 0.5
    """Time constant of the exponential averages of lag and CPU."""
    decrease: float = 0.8
    """Each sample over the limit admits at most this share of what was admitted..."""
    max_decrease: float = 0.5
    """...and at least this share, however far over the limit the sample is."""
    recover_below: float = 0.9
    """Below this share of the limit the admitted share grows back..."""
    recovery_step: float = 0.05
    """...by this much a sample: from shedding everything to nothing in 10 s at 2 samples/s."""
    feedback_validity: float = 2.0
    """How long an RFC 7339 reduction we send holds (``oc-validity``), seconds."""

    def __post_init__(self) -> None:
        if self.burst is not None and self.calls_per_second is None:
            raise ValueError("burst needs calls_per_second")
        if not 0 < self.max_decrease <= self.decrease < 1:
            raise ValueError("need 0 < max_decrease <= decrease < 1")
        if not 0 < self.recover_below <= 1 or not 0 < self.recovery_step <= 1:
            raise ValueError("recover_below and recovery_step must be in (0, 1]")

    @classmethod
    def from_config(cls, calls: CallsConfig) -> OverloadPolicy:
        """The policy the ``calls`` section of the configuration asks for."""
        return cls(
            max_calls=calls.max_calls,
            calls_per_second=calls.max_calls_per_second,
            burst=calls.burst,
            max_loop_lag=calls.max_loop_lag,
            max_cpu=calls.max_cpu,
            retry_after=calls.retry_after,
        )

    @property
    def bucket_size(self) -> float:
        """Tokens the rate limit's bucket holds (calls admitted back to back)."""
        if self.calls_per_second is None:
            return math.inf
        if self.burst is not None:
            return float(self.burst)
        return max(1.0, self.calls_per_second)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Refuse the new call with 503 and ``Retry-After: retry_after`` (seconds)."""

    reason: Reason
    retry_after: int


class OverloadGuard:
    """Admits or refuses each new call; fed load samples, it sheds a share of them.

    ``admit(now, active_calls)`` for every new INVITE (only those: requests
    in a dialog, CANCEL, ACK, BYE, REGISTER and OPTIONS never reach it);
    ``sample(now, lag, cpu)`` every half second or so. ``refused`` counts the
    refusals by reason for metrics; ``shed_ratio`` is the share of new calls
    the lag and CPU control turns away now; ``feedback(now)`` is what to tell
    an upstream proxy that supports RFC 7339 overload control.
    """

    def __init__(self, policy: OverloadPolicy | None = None) -> None:
        self.policy = policy if policy is not None else OverloadPolicy()
        self.refused: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.lag = 0.0
        """The smoothed event-loop lag, seconds."""
        self.cpu = 0.0
        """The smoothed CPU share of the process (1.0 is one core)."""
        self.admitted_share = 1.0
        self.cause: Reason = "cpu"
        """Which signal the shedding answers (the one furthest over its limit)."""
        self.changed_at = 0.0
        """When ``admitted_share`` last changed: the RFC 7339 sequence of our feedback."""
        self._tokens = self.policy.bucket_size
        self._refilled_at: float | None = None
        self._debt = 0.0
        self._sampled_at: float | None = None
        self._stop_until: float | None = None

    @property
    def shedding(self) -> bool:
        """True while the lag or CPU control turns some new calls away."""
        return self.admitted_share < 1.0

    @property
    def shed_ratio(self) -> float:
        """The share of new calls (0 to 1) the lag and CPU control refuses now."""
        return 1.0 - self.admitted_share

    # -- per INVITE ----------------------------------------------------------------------

    def admit(self, now: float, active_calls: int) -> Refusal | None:
        """None to admit a new call arriving at ``now``, or why and for how long to refuse it.

        A call shed for lag or CPU takes no token from the rate limit, so the
        two never count one call twice.
        """
        policy = self.policy
        if active_calls >= policy.max_calls:
            return self._refuse("calls", policy.retry_after)
        if self.admitted_share < 1.0:
            # Error diffusion rather than a random draw: exactly the share, evenly spread,
            # and the same sequence every run.
            self._debt += 1.0 - self.admitted_share
            if self._debt >= 1.0:
                self._debt -= 1.0
                return self._refuse(self.cause, policy.retry_after)
        rate = policy.calls_per_second
        if rate is not None:
            tokens = self._tokens
            if self._refilled_at is not None:
                tokens = min(policy.bucket_size, tokens + (now - self._refilled_at) * rate)
            self._refilled_at = now
            if tokens < 1.0:
                self._tokens = tokens
                # When the bucket next holds a whole token: the earliest a call would pass.
                return self._refuse("rate", max(1, math.ceil((1.0 - tokens) / rate)))
            self._tokens = tokens - 1.0
        return None

    def _refuse(self, reason: Reason, retry_after: int) -> Refusal:
        self.refused[reason] += 1
        return Refusal(reason, retry_after)

    # -- twice a second ------------------------------------------------------------------

    def sample(self, now: float, lag: float, cpu: float) -> None:
        """The loop ran a timer ``lag`` seconds late; the process used ``cpu`` of a core since
        the previous sample. Updates the smoothed signals and the admitted share."""
        policy = self.policy
        previous = self._sampled_at
        self._sampled_at = now
        elapsed = policy.smoothing if previous is None else max(0.0, now - previous)
        weight = 1.0 - math.exp(-elapsed / policy.smoothing)
        self.lag += weight * (lag - self.lag)
        self.cpu += weight * (cpu - self.cpu)
        lag_pressure = self.lag / policy.max_loop_lag if policy.max_loop_lag else 0.0
        cpu_pressure = self.cpu / policy.max_cpu if policy.max_cpu else 0.0
        pressure = max(lag_pressure, cpu_pressure)
        share = self.admitted_share
        if pressure > 1.0:
            factor = min(policy.decrease, max(policy.max_decrease, 1.0 / pressure))
            share *= factor
            self.cause = "lag" if lag_pressure >= cpu_pressure else "cpu"
        elif pressure < policy.recover_below and share < 1.0:
            share = min(1.0, share + policy.recovery_step)
        if share != self.admitted_share:
            self._set_share(now, share, pressure)

    def _set_share(self, now: float, share: float, pressure: float) -> None:
        was_shedding = self.shedding
        self.admitted_share = share
        self.changed_at = now
        if not was_shedding:
            self._stop_until = None
            log.warning(
                "overload: shedding new calls (%s: lag %.3f s, CPU %.0f%%)",
                self.cause,
                self.lag,
                100 * self.cpu,
            )
        elif share >= 1.0:
            self._debt = 0.0
            # Upstream proxies may still apply a reduction we sent for its validity:
            # tell them it is over until the last one has lapsed.
            self._stop_until = now + self.policy.feedback_validity
            log.warning(
                "overload: admitting every new call again (load %.0f%% of the limits)",
                100 * pressure,
            )

    # -- RFC 7339 ------------------------------------------------------------------------

    def feedback(self, now: float) -> LossFeedback | None:
        """What to tell an upstream that supports RFC 7339 loss-based overload control.

        While shedding: the share to cut, valid ``feedback_validity``; for as
        long after as a reduction we sent may still hold: 0 with validity 0,
        which ends overload control at the client; otherwise None (nothing to
        add to the response). ``seq`` is ``changed_at``, on the caller's clock
        until it adds an offset to make it wall time.
        """
        if self.admitted_share < 1.0:
            return LossFeedback(
                reduction=round(100 * (1.0 - self.admitted_share)),
                validity_ms=round(1000 * self.policy.feedback_validity),
                seq=self.changed_at,
            )
        if self._stop_until is not None and now < self._stop_until:
            return LossFeedback(reduction=0, validity_ms=0, seq=self.changed_at)
        return None
