"""Call detail records: what a finished ``Call`` becomes in storage.

Every call is noted as in flight when it arrives (so a SIGKILL leaves it
recoverable as failed) and written once, complete, when its script ends,
together with its queue_log-style events. Writes go through the
``RecordWriter``, which batches them off the hot path and journals what the
database cannot take.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..storage import (
    CallEvent,
    CallRecord,
    Disposition,
    EventType,
    HangupSide,
    RecordingRecord,
    RecordWriter,
)

if TYPE_CHECKING:
    from ._call import Call

__all__ = ["CallRecords"]

log = logging.getLogger(__name__)


class CallRecords:
    """Turns calls into CDRs and events for the ``RecordWriter``."""

    def __init__(self, writer: RecordWriter) -> None:
        self.writer = writer
        self.written = 0

    def call_started(self, call: Call) -> None:
        self.writer.call_started(
            call.id,
            call.caller_leg.call_id,
            call.arrived_at,
            caller_number=call.caller or None,
            did=call.did or None,
        )

    def recording(self, record: RecordingRecord) -> None:
        self.writer.submit_recording(record)

    def call_ended(self, call: Call) -> None:
        try:
            record = self.record_of(call)
        except Exception:
            log.exception("call %s: cannot build its record", call.id)
            return
        for at, name, data in call.events:
            try:
                event_type = EventType(name)
            except ValueError:
                log.error("call %s: unknown event %s not recorded", call.id, name)
                continue
            self.writer.submit_event(
                CallEvent(
                    call_id=call.id,
                    at=at,
                    event=event_type,
                    queue=data.pop("queue", call.queue),
                    agent=data.pop("agent", None),
                    data=data,
                )
            )
        self.writer.submit_call(record)
        self.written += 1

    def wrap_up_code(self, call: Call, agent: str, code: str) -> None:
        """The agent gave ``call`` its disposition: on its CDR, and a WRAPUPCODE event.

        Usually after the call ended (in wrap-up), so the CDR is written again;
        before that, the event waits with the call's others and the CDR takes
        the code when it is written at the end.
        """
        call.wrap_up_code = code
        at = datetime.now(UTC)
        if call.ended_at is None:
            call.events.append((at, EventType.WRAPUPCODE.value, {"agent": agent, "code": code}))
            return
        event = CallEvent(
            call_id=call.id,
            at=at,
            event=EventType.WRAPUPCODE,
            queue=call.queue,
            agent=agent,
            data={"code": code},
        )
        self.writer.submit_event(event)
        self.writer.submit_call(self.record_of(call))

    def wrap_up_time(self, call: Call, seconds: float) -> None:
        """The agent's wrap-up after ``call`` lasted ``seconds``: on its CDR.

        Wrap-up follows the call, so the CDR is usually written already and
        is written again; a wrap-up that ended first (the agent ended it
        during a survey) waits for the CDR at the end.
        """
        call.wrap_up_s = round(seconds, 3)
        if call.ended_at is not None:
            self.writer.submit_call(self.record_of(call))

    def rewrite(
        self,
        record: CallRecord,
        *,
        agent: str | None = None,
        code: str | None = None,
        wrap_up_s: float | None = None,
    ) -> CallRecord:
        """An ended call's CDR written again with its wrap-up ``code`` (and a WRAPUPCODE
        event from ``agent``) or its wrap-up time; the new record."""
        changes: dict[str, object] = {}
        if code is not None:
            changes["wrap_up_code"] = code
            self.writer.submit_event(
                CallEvent(
                    call_id=record.call_id,
                    at=datetime.now(UTC),
                    event=EventType.WRAPUPCODE,
                    queue=record.queue,
                    agent=agent,
                    data={"code": code},
                )
            )
        if wrap_up_s is not None:
            changes["wrap_up_s"] = round(wrap_up_s, 3)
        updated = dataclasses.replace(record, **changes)  # type: ignore[arg-type]
        self.writer.submit_call(updated)
        return updated

    @staticmethod
    def record_of(call: Call) -> CallRecord:
        return CallRecord(
            call_id=call.id,
            sip_call_id=call.caller_leg.call_id,
            arrived_at=call.arrived_at,
            disposition=Disposition(call.disposition or "failed"),
            hangup_side=HangupSide(call.hangup_side or "system"),
            caller_number=call.caller or None,
            caller_name=call.caller_name,
            did=call.did or None,
            trunk=call.trunk,
            route=call.route,
            ivr_path=list(call.ivr_path),
            digits="".join(call.digits),
            variables=dict(call.variables),
            queue=call.queue,
            agent=call.agent,
            ring_attempts=call.ring_attempts,
            queued_at=call.queued_at,
            # For a queued call "answered" means by an agent (ASA and service
            # level are measured to it), not the IVR picking up.
            answered_at=call.agent_answered_at if call.queue else call.answered_at,
            ended_at=call.ended_at,
            sip_cause=call.sip_cause,
            survey_score=call.survey_score,
            recording_id=call.recording_id,
            wrap_up_code=call.wrap_up_code,
            wrap_up_s=call.wrap_up_s,
        )
