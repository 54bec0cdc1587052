"""Ringing one agent: an INVITE to each of the agent's registered phones at once.

The first phone to answer wins and the others are CANCELled (RFC 3261 9.1;
a 200 that crosses the CANCEL is ACKed and BYEd by the leg). The outcome is
what the ACD core's ``ring_result`` takes:

* ``answered``: a phone answered; :attr:`AgentRing.leg` is its leg;
* ``rejected``: every phone failed and at least one declined (486, 600, 603);
* ``failed``: every phone failed otherwise (404, 408, 480, 503, no contact);
* ``no-answer``: the ring timeout passed; every phone is CANCELled;
* ``cancelled``: :meth:`AgentRing.stop` was called (the caller hung up,
  another agent answered a ring-all, the agent logged out).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final, Literal

from sip import NameAddr, SipUri

from ..calls import LegRinging, OutboundLeg

if TYPE_CHECKING:
    from ..calls import CallControl
    from ..registrar import Binding

__all__ = ["DECLINED", "AgentRing", "RingOutcome"]

log = logging.getLogger(__name__)

RingOutcome = Literal["answered", "rejected", "no-answer", "failed", "cancelled"]

DECLINED: Final = frozenset({486, 600, 603})
"""Final responses that mean the person at the phone said no (Busy Here, Decline)."""


class AgentRing:
    """One agent's phones ringing for one call; :meth:`run` returns the outcome."""

    def __init__(
        self,
        control: CallControl,
        agent: str,
        bindings: list[Binding],
        *,
        from_addr: NameAddr,
        domain: str,
        timeout: float,
    ) -> None:
        self.control = control
        self.agent = agent
        self.timeout = timeout
        self.legs: list[OutboundLeg] = [
            control.dial(
                binding.uri,
                binding.destination,
                from_addr=from_addr,
                to_addr=NameAddr(uri=SipUri(user=agent, host=domain)),
            )
            for binding in bindings
        ]
        self.leg: OutboundLeg | None = None
        self.outcome: RingOutcome | None = None
        self.alerting = False  # some phone sent 180/183
        self.unreachable = False  # stopped because the agent's last registration went away
        self.started = asyncio.get_running_loop().time()
        self._stopped = asyncio.get_running_loop().create_future()
        for leg in self.legs:
            leg.on_event = self._leg_event

    def _leg_event(self, event: object) -> None:
        if isinstance(event, LegRinging):
            self.alerting = True

    @property
    def seconds(self) -> float:
        """How long the phones have rung so far."""
        return asyncio.get_running_loop().time() - self.started

    def stop(self) -> None:
        """Stop ringing every phone now; :meth:`run` returns "cancelled" (unless already over)."""
        if not self._stopped.done():
            self._stopped.set_result(None)
        for leg in self.legs:
            leg.cancel()

    async def run(self) -> RingOutcome:
        """Ring until a phone answers, all fail, the timeout passes or :meth:`stop`."""
        self.outcome = await self._ring()
        return self.outcome

    async def _ring(self) -> RingOutcome:
        if not self.legs:
            return "failed"
        await asyncio.gather(*(leg.start() for leg in self.legs), return_exceptions=True)
        loop = asyncio.get_running_loop()
        deadline = self.started + self.timeout
        while True:
            if self._stopped.done():
                self._cancel_all()
                return "cancelled"
            answered = next((leg for leg in self.legs if leg.is_answered), None)
            if answered is not None:
                self.leg = answered
                self._cancel_all(but=answered)
                return "answered"
            if all(leg.is_ended for leg in self.legs):
                declined = any(leg.sip_status in DECLINED for leg in self.legs)
                return "rejected" if declined else "failed"
            remaining = deadline - loop.time()
            if remaining <= 0:
                self._cancel_all()
                return "no-answer"
            waits: set[asyncio.Future[object]] = {self._stopped}
            for leg in self.legs:
                if not leg.is_ended:
                    waits.add(leg.answered)  # type: ignore[arg-type]
                    waits.add(leg.ended)  # type: ignore[arg-type]
            await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)

    def _cancel_all(self, but: OutboundLeg | None = None) -> None:
        for leg in self.legs:
            if leg is not but:
                leg.cancel()
