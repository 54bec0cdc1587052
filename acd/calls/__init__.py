"""Call control: the B2BUA that joins SIP dialogs, media and the IVR/ACD.

``CallControl`` is the transaction user for INVITE and in-dialog requests;
each inbound INVITE becomes a ``Call`` whose script (``CallScript``) routes
it: reject, IVR flow, queue, or an extension rung and bridged.
"""

from ._bridged import MONITOR_KEYS, Bridged, Consultation, Supervision
from ._call import Call
from ._control import SHUTDOWN_RETRY_AFTER, CallControl
from ._events import (
    EndReason,
    LegAnswered,
    LegEnd,
    LegEnded,
    LegEvent,
    LegHeld,
    LegModified,
    LegReferred,
    LegRinging,
    LegUnheld,
)
from ._legs import InboundLeg, OutboundLeg, SipLeg
from ._media import MediaEngine
from ._records import CallRecords
from ._script import CallScript, MonitorRefused

__all__ = [
    "MONITOR_KEYS",
    "SHUTDOWN_RETRY_AFTER",
    "Bridged",
    "Call",
    "CallControl",
    "CallRecords",
    "CallScript",
    "Consultation",
    "EndReason",
    "InboundLeg",
    "LegAnswered",
    "LegEnd",
    "LegEnded",
    "LegEvent",
    "LegHeld",
    "LegModified",
    "LegReferred",
    "LegRinging",
    "LegUnheld",
    "MediaEngine",
    "MonitorRefused",
    "OutboundLeg",
    "SipLeg",
    "Supervision",
]
