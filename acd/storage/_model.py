"""What the engine stores: call detail records, queue events, recordings, agent sessions.

The records are frozen, slotted dataclasses built on the hot path, so they do
no more work than checking that their timestamps carry a time zone: a naive
datetime would be stored as an ambiguous local time, which no report can undo.
Every timestamp read back from storage is in UTC.

``to_json`` / ``from_json`` give each record a tagged, JSON-safe form; the
journal stores records that way, and the back ends reuse it for JSON columns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeAlias

__all__ = [
    "AgentSession",
    "CallEvent",
    "CallRecord",
    "CallbackRecord",
    "CallbackState",
    "Disposition",
    "EventType",
    "HangupSide",
    "Record",
    "RecordingRecord",
    "callback_from_json",
    "dump_json",
    "format_time",
    "from_json",
    "parse_time",
    "to_json",
]


class Disposition(StrEnum):
    """How a call ended, from the contact centre's point of view."""

    ANSWERED = "answered"
    ABANDONED = "abandoned"
    TIMEOUT = "timeout"
    CALLBACK = "callback"
    TRANSFERRED = "transferred"
    FAILED = "failed"


class HangupSide(StrEnum):
    """Who ended the call: the caller, the agent, or the engine itself."""

    CALLER = "caller"
    AGENT = "agent"
    SYSTEM = "system"


class EventType(StrEnum):
    """The queue_log vocabulary (Asterisk's names, so existing report tools read it)."""

    ENTERQUEUE = "ENTERQUEUE"
    RINGNOANSWER = "RINGNOANSWER"
    RINGCANCELED = "RINGCANCELED"
    CONNECT = "CONNECT"
    COMPLETECALLER = "COMPLETECALLER"
    COMPLETEAGENT = "COMPLETEAGENT"
    ABANDON = "ABANDON"
    EXITWITHTIMEOUT = "EXITWITHTIMEOUT"
    EXITWITHKEY = "EXITWITHKEY"
    EXITEMPTY = "EXITEMPTY"
    CALLBACK = "CALLBACK"
    TRANSFER = "TRANSFER"
    PAUSE = "PAUSE"
    UNPAUSE = "UNPAUSE"
    LOGIN = "LOGIN"
    LOGOFF = "LOGOFF"
    WRAPUPCODE = "WRAPUPCODE"  # not Asterisk's: the agent's disposition of a call, {"code"}
    MONITOR = "MONITOR"  # not Asterisk's: a supervisor joined or changed mode, {supervisor, mode}
    MONITOREND = "MONITOREND"  # not Asterisk's: the supervisor left, {supervisor, seconds}
    CONSULT = "CONSULT"  # not Asterisk's: the agent holds the caller and rings {extension}
    CONFERENCE = "CONFERENCE"  # not Asterisk's: the consulted {extension} joined the call
    CONSULTEND = "CONSULTEND"  # not Asterisk's: how the consultation ended, {outcome}
    REQUEUE = "REQUEUE"  # not Asterisk's: the agent's phone left at once, the caller went back
    RECORDPAUSE = "RECORDPAUSE"  # not Asterisk's: the recording paused, {agent, by}
    RECORDRESUME = "RECORDRESUME"  # not Asterisk's: the recording resumed, {agent, by, paused_s}
    HOLD = "HOLD"  # not Asterisk's queue_log (its CEL's): the agent's phone held the caller
    UNHOLD = "UNHOLD"  # not Asterisk's queue_log: the caller back from hold, {agent, held_s}


def _require_aware(owner: object, **stamps: datetime | None) -> None:
    for name, value in stamps.items():
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"{type(owner).__name__}.{name} must be timezone-aware: {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    """One call detail record (CDR): who called, where the call went, how it ended.

    ``call_id`` is the engine's own UUID; ``sip_call_id`` the caller leg's
    Call-ID. Timestamps are None for stages the call never reached. A record
    may be written more than once (say, on arrival and again at the end):
    storage keeps the latest, except that a record with ``ended_at`` is never
    replaced by one without it, so a stale replay cannot reopen a finished CDR.
    """

    call_id: str
    sip_call_id: str
    arrived_at: datetime
    disposition: Disposition
    hangup_side: HangupSide
    caller_number: str | None = None
    caller_name: str | None = None
    did: str | None = None
    trunk: str | None = None
    route: str | None = None
    ivr_path: list[str] = field(default_factory=list)
    digits: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    queue: str | None = None
    agent: str | None = None
    ring_attempts: int = 0
    queued_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    sip_cause: int | None = None
    survey_score: int | None = None
    recording_id: str | None = None
    wrap_up_code: str | None = None  # the agent's disposition, given in wrap-up
    wrap_up_s: float | None = None  # the agent's wrap-up after the call, in seconds

    def __post_init__(self) -> None:
        _require_aware(
            self,
            arrived_at=self.arrived_at,
            queued_at=self.queued_at,
            answered_at=self.answered_at,
            ended_at=self.ended_at,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent:
    """One line of the queue_log-style event stream.

    ``call_id`` is None for agent events that belong to no call (LOGIN,
    PAUSE...). An event is identified by (call_id, at, event, seq): ``seq``
    tells apart events of one kind at one instant, and orders events that
    share a timestamp. ``RecordWriter.submit_event`` numbers it for you.
    """

    call_id: str | None
    at: datetime
    event: EventType
    queue: str | None = None
    agent: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    seq: int = 0

    def __post_init__(self) -> None:
        _require_aware(self, at=self.at)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingRecord:
    """A finished recording file: where it is, how long, and a checksum to prove it intact."""

    id: str
    call_id: str
    path: str
    duration_s: float
    size_bytes: int
    sha256: str
    channels: int
    created_at: datetime

    def __post_init__(self) -> None:
        _require_aware(self, created_at=self.created_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSession:
    """A stretch of time an agent spent in one state (logged in, paused with a reason...).

    Identified by (agent, started_at): write it when the state starts and
    again with ``ended_at`` when it ends.
    """

    agent: str
    state: str
    started_at: datetime
    reason: str | None = None
    ended_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware(self, started_at=self.started_at, ended_at=self.ended_at)


class CallbackState(StrEnum):
    """Where a caller's callback request stands."""

    WAITING = "waiting"  # in the queue (or between attempts) until an agent takes it
    DONE = "done"  # an agent took it and the caller answered
    FAILED = "failed"  # every attempt went unanswered
    CANCELLED = "cancelled"  # a supervisor took it back
    EXPIRED = "expired"  # still waiting when its queue's callback_expiry ran out


@dataclass(frozen=True, slots=True, kw_only=True)
class CallbackRecord:
    """A caller's request to be called back, kept until it is served or given up.

    Stored so that it outlives the engine that took it: the next run puts a
    waiting request back in its queue at its place. ``invite`` is the
    caller's INVITE as received (what the callback dials and rings agents
    with); ``call`` the parts of the call an agent would see and the record
    keeps (the IVR path, digits, variables...). ``due_at`` is when the next
    attempt may be offered to an agent (None: at once).
    """

    call_id: str
    queue: str
    state: CallbackState
    requested_at: datetime
    requested_by: str  # "key" (the caller pressed the queue's callback_key) or "max-wait"
    updated_at: datetime
    queued_at: datetime  # when the caller first joined the queue: the request keeps that place
    priority: int = 0
    skills: dict[str, int] = field(default_factory=dict)
    attempts: int = 0  # dialled so far
    due_at: datetime | None = None
    agent: str | None = None  # the agent of the last attempt
    invite: str = ""  # base64 of the INVITE's bytes
    source: str = ""  # "TRANSPORT host port" the INVITE came from
    call: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_aware(
            self,
            requested_at=self.requested_at,
            updated_at=self.updated_at,
            queued_at=self.queued_at,
            due_at=self.due_at,
        )


Record: TypeAlias = CallRecord | CallEvent | RecordingRecord | AgentSession | CallbackRecord


def dump_json(value: object) -> str:
    """Compact JSON that keeps non-ASCII text as it is.

    A value JSON cannot hold (a datetime someone put in ``CallEvent.data``)
    is stored as its ``str()``: refusing it would lose the whole record, and
    only once it is in the database or the journal.
    """
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def format_time(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with microseconds: fixed width, so text order is time order."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def parse_time(value: str | None) -> datetime | None:
    """The inverse of ``format_time``; any offset is converted to UTC."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.utcoffset() is None:
        raise ValueError(f"timestamp without a time zone: {value!r}")
    return parsed.astimezone(UTC)


def _time(value: str) -> datetime:
    parsed = parse_time(value)
    assert parsed is not None
    return parsed


def to_json(record: Record) -> dict[str, Any]:
    """A JSON-safe dict with a ``kind`` tag; ``from_json`` reverses it."""
    if isinstance(record, CallRecord):
        return {
            "kind": "call",
            "call_id": record.call_id,
            "sip_call_id": record.sip_call_id,
            "caller_number": record.caller_number,
            "caller_name": record.caller_name,
            "did": record.did,
            "trunk": record.trunk,
            "route": record.route,
            "ivr_path": list(record.ivr_path),
            "digits": record.digits,
            "variables": dict(record.variables),
            "queue": record.queue,
            "agent": record.agent,
            "ring_attempts": record.ring_attempts,
            "arrived_at": format_time(record.arrived_at),
            "queued_at": format_time(record.queued_at),
            "answered_at": format_time(record.answered_at),
            "ended_at": format_time(record.ended_at),
            "disposition": record.disposition.value,
            "hangup_side": record.hangup_side.value,
            "sip_cause": record.sip_cause,
            "survey_score": record.survey_score,
            "recording_id": record.recording_id,
            "wrap_up_code": record.wrap_up_code,
            "wrap_up_s": record.wrap_up_s,
        }
    if isinstance(record, CallEvent):
        return {
            "kind": "event",
            "call_id": record.call_id,
            "at": format_time(record.at),
            "event": record.event.value,
            "queue": record.queue,
            "agent": record.agent,
            "data": record.data,
            "seq": record.seq,
        }
    if isinstance(record, RecordingRecord):
        return {
            "kind": "recording",
            "id": record.id,
            "call_id": record.call_id,
            "path": record.path,
            "duration_s": record.duration_s,
            "size_bytes": record.size_bytes,
            "sha256": record.sha256,
            "channels": record.channels,
            "created_at": format_time(record.created_at),
        }
    if isinstance(record, CallbackRecord):
        return {
            "kind": "callback",
            "call_id": record.call_id,
            "queue": record.queue,
            "state": record.state.value,
            "requested_at": format_time(record.requested_at),
            "requested_by": record.requested_by,
            "updated_at": format_time(record.updated_at),
            "queued_at": format_time(record.queued_at),
            "priority": record.priority,
            "skills": dict(record.skills),
            "attempts": record.attempts,
            "due_at": format_time(record.due_at),
            "agent": record.agent,
            "invite": record.invite,
            "source": record.source,
            "call": dict(record.call),
        }
    return {
        "kind": "session",
        "agent": record.agent,
        "state": record.state,
        "reason": record.reason,
        "started_at": format_time(record.started_at),
        "ended_at": format_time(record.ended_at),
    }


def from_json(data: dict[str, Any]) -> Record:
    """Rebuild a record from ``to_json``'s dict; a malformed one raises ValueError."""
    kind = data.get("kind")
    try:
        if kind == "call":
            return CallRecord(
                call_id=data["call_id"],
                sip_call_id=data["sip_call_id"],
                caller_number=data["caller_number"],
                caller_name=data["caller_name"],
                did=data["did"],
                trunk=data["trunk"],
                route=data["route"],
                ivr_path=list(data["ivr_path"]),
                digits=data["digits"],
                variables=dict(data["variables"]),
                queue=data["queue"],
                agent=data["agent"],
                ring_attempts=data["ring_attempts"],
                arrived_at=_time(data["arrived_at"]),
                queued_at=parse_time(data["queued_at"]),
                answered_at=parse_time(data["answered_at"]),
                ended_at=parse_time(data["ended_at"]),
                disposition=Disposition(data["disposition"]),
                hangup_side=HangupSide(data["hangup_side"]),
                sip_cause=data["sip_cause"],
                survey_score=data["survey_score"],
                recording_id=data["recording_id"],
                wrap_up_code=data.get("wrap_up_code"),  # journals from before 0004 lack it
                wrap_up_s=data.get("wrap_up_s"),  # and from before 0006 this
            )
        if kind == "event":
            return CallEvent(
                call_id=data["call_id"],
                at=_time(data["at"]),
                event=EventType(data["event"]),
                queue=data["queue"],
                agent=data["agent"],
                data=dict(data["data"]),
                seq=data["seq"],
            )
        if kind == "recording":
            return RecordingRecord(
                id=data["id"],
                call_id=data["call_id"],
                path=data["path"],
                duration_s=data["duration_s"],
                size_bytes=data["size_bytes"],
                sha256=data["sha256"],
                channels=data["channels"],
                created_at=_time(data["created_at"]),
            )
        if kind == "session":
            return AgentSession(
                agent=data["agent"],
                state=data["state"],
                reason=data["reason"],
                started_at=_time(data["started_at"]),
                ended_at=parse_time(data["ended_at"]),
            )
        if kind == "callback":
            return callback_from_json(data)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed {kind} record: {exc!r}") from exc
    raise ValueError(f"unknown record kind {kind!r}")


def callback_from_json(data: dict[str, Any]) -> CallbackRecord:
    """A ``CallbackRecord`` from ``to_json``'s dict (also how the database stores one)."""
    return CallbackRecord(
        call_id=data["call_id"],
        queue=data["queue"],
        state=CallbackState(data["state"]),
        requested_at=_time(data["requested_at"]),
        requested_by=data["requested_by"],
        updated_at=_time(data["updated_at"]),
        queued_at=_time(data["queued_at"]),
        priority=int(data["priority"]),
        skills={str(k): int(v) for k, v in dict(data["skills"]).items()},
        attempts=int(data["attempts"]),
        due_at=parse_time(data["due_at"]),
        agent=data["agent"],
        invite=data["invite"],
        source=data["source"],
        call=dict(data["call"]),
    )
