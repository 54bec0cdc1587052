"""RFC 7339 overload control, the server's side: Via parameters that ask a client to send less.

A client (usually the proxy in front of us) that supports overload control
puts a bare ``oc`` parameter, and the algorithms it knows in ``oc-algo``,
in the top Via of its requests. A server that wants less traffic answers
in the same Via of its responses, which the client strips as it forwards
them, so the feedback travels one hop: ``oc`` the share to cut in percent
for the "loss" algorithm, ``oc-algo`` the
algorithm chosen, ``oc-validity`` how long the value holds in milliseconds
(0 ends overload control) and ``oc-seq`` a number that grows with every
new value, so that the client can drop reordered ones.

The feedback is written into the request's top Via: every response built
from the request (:func:`~sip.message.make_response` copies Via lines)
then carries it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._grammar import SipSyntaxError, quote, unquote
from .headers import Via
from .message import Request

__all__ = ["LossFeedback", "offers_loss"]

LOSS = "loss"


def offers_loss(via: Via) -> bool:
    """True when the client that sent ``via`` asks for loss-based overload control.

    ``oc-algo`` lists the client's algorithms; a client that leaves it out
    is taken to offer "loss", which every implementation must have.
    """
    if "oc" not in via.params:
        return False
    offered = via.params.get("oc-algo")
    if offered is None:
        return True
    try:
        names = unquote(offered) if offered.startswith('"') else offered
    except SipSyntaxError:
        return False
    return LOSS in (name.strip().lower() for name in names.split(","))


@dataclass(frozen=True, slots=True)
class LossFeedback:
    """A server's loss-algorithm feedback: cut ``reduction`` % for ``validity_ms`` ms.

    ``seq`` is a time in seconds (wall time, so that it still grows across a
    restart); it is written with three decimals, as RFC 7339's ``oc-seq``
    grammar (digits, a dot, digits) and its examples have it.
    """

    reduction: int
    validity_ms: int
    seq: float

    def __post_init__(self) -> None:
        if not 0 <= self.reduction <= 100:
            raise ValueError(f"oc reduction {self.reduction} is not a percentage")
        if self.validity_ms < 0 or self.seq < 0:
            raise ValueError("oc-validity and oc-seq cannot be negative")

    def apply(self, via: Via) -> None:
        """Set ``oc``, ``oc-algo``, ``oc-validity`` and ``oc-seq`` on ``via`` (in place)."""
        params = via.params
        params["oc"] = str(self.reduction)
        params["oc-algo"] = quote(LOSS)
        params["oc-validity"] = str(self.validity_ms)
        params["oc-seq"] = f"{self.seq:.3f}"

    def answer(self, request: Request) -> bool:
        """Write the feedback into ``request``'s top Via if its client offers loss.

        Returns whether it did; responses made from ``request`` afterwards
        carry it.
        """
        via = request.top_via
        if not offers_loss(via):
            return False
        self.apply(via)
        request.replace_top_via(via)
        return True
