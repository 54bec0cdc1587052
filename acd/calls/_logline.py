"""The two INFO lines every call gets in the log: when it arrives and when it ends.

An operator reading the log (or a log shipper indexing it) wants to find a
call by its Call-ID and see what became of it, without the personal data a
log should not keep: calling numbers are masked to their last four digits
(``logging.show_numbers`` shows them), short numbers (extensions) stay.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._call import Call

__all__ = ["log_arrived", "log_ended", "mask_number"]

log = logging.getLogger("acd.calls")

_KEPT = 4


def mask_number(number: str, *, show: bool = False) -> str:
    """``+441632960123`` -> ``*********0123``; four characters or fewer stay as they are."""
    if show or len(number) <= _KEPT:
        return number
    return "*" * (len(number) - _KEPT) + number[-_KEPT:]


def _seconds(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    return f"{(end - start).total_seconds():.1f}s"


def log_arrived(call: Call, *, show_numbers: bool) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    log.info(
        "call %s arrived: sip %s, from %s to %s, %s",
        call.id,
        call.caller_leg.call_id,
        mask_number(call.caller, show=show_numbers) or "anonymous",
        call.did or "-",
        f"trunk {call.trunk}" if call.trunk else f"user {call.user}",
    )


def log_ended(call: Call) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    log.info(
        "call %s ended: %s, route %s, queue %s, agent %s, wait %s, talk %s, total %s, "
        "hung up by %s (%s)",
        call.id,
        call.disposition,
        call.route or "-",
        call.queue or "-",
        call.agent or "-",
        _seconds(call.queued_at, call.agent_answered_at or (call.ended_at if call.queue else None)),
        _seconds(call.agent_answered_at, call.ended_at),
        _seconds(call.arrived_at, call.ended_at),
        call.hangup_side or "system",
        call.sip_cause if call.sip_cause is not None else "-",
    )
