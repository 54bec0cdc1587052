"""What happens to a call leg, as small frozen facts (drachtio-srf's dialog events).

A leg reports these to its owner through ``SipLeg.on_event``; the call script
also awaits ``leg.answered`` (no value) and ``leg.ended`` (a ``LegEnd``: the
same facts as ``LegEnded`` without the leg, so that a finished leg is not in a
reference cycle with its own future and is freed at hang-up, not by the
garbage collector).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from media import DtmfReceived

if TYPE_CHECKING:
    from sip import SipUri

    from ._legs import SipLeg

__all__ = [
    "EndReason",
    "LegAnswered",
    "LegEnd",
    "LegEnded",
    "LegEvent",
    "LegHeld",
    "LegModified",
    "LegReferred",
    "LegRinging",
    "LegUnheld",
]

EndReason = Literal[
    "bye",  # the far end sent BYE
    "hangup",  # we hung up (BYE sent, or INVITE rejected by us)
    "cancelled",  # the caller cancelled before answer
    "rejected",  # the callee answered the INVITE with a failure
    "no-answer",  # nobody answered within the ring timeout
    "timeout",  # a transaction timed out: the far end is gone
    "media-timeout",  # RTP stopped
    "connection-lost",  # the far end's WebSocket closed (a browser tab gone)
    "session-expired",  # RFC 4028 refresh never came
    "error",  # our own failure
]


@dataclass(frozen=True, slots=True)
class LegRinging:
    """The callee is alerting (180/183)."""

    leg: SipLeg
    status: int


@dataclass(frozen=True, slots=True)
class LegAnswered:
    """The leg is connected: 2xx sent and ACKed (inbound) or 2xx received (outbound)."""

    leg: SipLeg


@dataclass(frozen=True, slots=True)
class LegHeld:
    """The far end put the call on hold (re-INVITE sendonly / inactive / c=0.0.0.0)."""

    leg: SipLeg


@dataclass(frozen=True, slots=True)
class LegUnheld:
    """The far end took the call off hold."""

    leg: SipLeg


@dataclass(frozen=True, slots=True)
class LegModified:
    """The far end changed the session (new address, codec or direction) by re-INVITE/UPDATE."""

    leg: SipLeg


@dataclass(frozen=True, slots=True)
class LegReferred:
    """The far end asked us to transfer the call (REFER, RFC 3515), already answered 202.

    The owner carries the transfer out and reports how it went with
    ``leg.notify_refer(status)``; the referrer usually hangs up after that.
    """

    leg: SipLeg
    target: SipUri


@dataclass(frozen=True, slots=True)
class LegEnd:
    """How a leg ended: what ``SipLeg.ended`` resolves to. ``status`` as in ``LegEnded``."""

    reason: EndReason
    status: int | None = None
    by_remote: bool = True


@dataclass(frozen=True, slots=True)
class LegEnded:
    """The leg is over. ``status`` is the SIP status that ended it, when one did."""

    leg: SipLeg
    reason: EndReason
    status: int | None = None
    by_remote: bool = True


LegEvent = (
    LegRinging
    | LegAnswered
    | LegHeld
    | LegUnheld
    | LegModified
    | LegReferred
    | LegEnded
    | DtmfReceived
)
