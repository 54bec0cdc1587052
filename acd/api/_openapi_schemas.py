"""The schemas of the OpenAPI description: the bodies the handlers parse and answer.

Success bodies are closed objects (``additionalProperties`` false), each
written from the handler or the record's ``to_json`` it mirrors, so a field
a handler adds and this module does not name fails the schemathesis test.
The runtime configuration's entries are the pydantic models' own JSON Schema.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from ..config import Agent, Queue, Route
from ..identity import Permission, Role
from ..storage import CallFigures, Disposition, EventType, HangupSide

__all__ = [
    "BODY_METHODS",
    "BOOL",
    "CONFIG_KEYS",
    "INT",
    "NUM",
    "OBJECT",
    "SECTION_TITLES",
    "STR",
    "STRINGS",
    "TEXT",
    "TIME",
    "Schema",
    "array",
    "body",
    "components",
    "nullable",
    "obj",
    "ok",
    "path_parameter",
    "query",
    "ref",
    "refusal",
]

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
"""Methods whose handlers may read a body (so a body too large is a 413)."""

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
TEXT: Schema = {"type": "string", "minLength": 1}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}
STRINGS: Schema = {"type": "array", "items": STR}
OBJECT: Schema = {"type": "object"}
_AGENT_STATES = ["logged_out", "available", "ringing", "on_call", "wrap_up", "paused"]
_CONFIG_MODELS: Mapping[str, type[BaseModel]] = {"agents": Agent, "queues": Queue, "routes": Route}
CONFIG_KEYS = {"agents": "username", "queues": "name", "routes": "match"}
SECTION_TITLES = {"agents": "Agent", "queues": "Queue", "routes": "Route"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def obj(properties: Mapping[str, Schema], required: Iterable[str] | None = None) -> Schema:
    """A closed object; every property is required unless ``required`` says otherwise."""
    return {
        "type": "object",
        "properties": dict(properties),
        "required": sorted(properties if required is None else required),
        "additionalProperties": False,
    }


def refusal(description: str, *, headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A response with the API's error body."""
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": ref("Error")}},
    }
    if headers:
        response["headers"] = dict(headers)
    return response


def ok(
    schema: Schema | str,
    description: str = "OK.",
    *,
    csv: bool = False,
    headers: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    content: dict[str, Any] = {
        "application/json": {"schema": ref(schema) if isinstance(schema, str) else schema}
    }
    if csv:
        content["text/csv"] = {"schema": STR}
    response: dict[str, Any] = {"description": description, "content": content}
    if headers:
        response["headers"] = dict(headers)
    return response


def query(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def path_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": TEXT,
        "description": description,
    }


def body(schema: Schema | str, *, required: bool = True) -> dict[str, Any]:
    return {
        "required": required,
        "content": {
            "application/json": {"schema": ref(schema) if isinstance(schema, str) else schema}
        },
    }


# ---- schemas --------------------------------------------------------------------


def _figures() -> Schema:
    """CallFigures.to_json: counts are integers, the derived rates null without calls."""
    return {
        name: INT if isinstance(value, int) else nullable(NUM)
        for name, value in CallFigures().to_json().items()
    }


def _config_schemas() -> dict[str, Schema]:
    """The configuration entries as bodies (requests) and as shown (responses).

    Requests take the model's own validation schema; as shown, every field is
    present (the model dumped with its defaults) and the password never is.
    """
    found: dict[str, Schema] = {}

    def schema_of(model: type[BaseModel], mode: JsonSchemaMode) -> Schema:
        schema = model.model_json_schema(
            mode=mode,
            ref_template="#/components/schemas/{model}",
        )
        for name, definition in schema.pop("$defs", {}).items():
            if found.setdefault(name, definition) != definition:
                raise RuntimeError(f"two different schemas named {name} in acd.config")
        return schema

    for section, model in _CONFIG_MODELS.items():
        key, title = CONFIG_KEYS[section], SECTION_TITLES[section]
        request = schema_of(model, "validation")
        properties = dict(request["properties"])
        if section == "queues":  # a queue's name is its key in the file, not a field
            properties = {key: TEXT, **properties}
        if section == "routes":
            properties["position"] = {
                "type": "integer",
                "minimum": 0,
                "description": "Where the route goes in the order (0 is first).",
            }
        # The model fills a missing name from the username: not required in a body.
        required = sorted({*request.get("required", ()), key} - {"name"})
        base = {k: v for k, v in request.items() if k not in ("properties", "required")}
        found[f"New{title}"] = {**base, "properties": properties, "required": required}
        # PUT: the key comes from the path; an agent's password is kept when left out.
        put_required = sorted(set(required) - {key, "password"})
        found[f"Put{title}"] = {**base, "properties": properties, "required": put_required}
        found[f"{title}Patch"] = {
            **base,
            "description": "A JSON merge patch (RFC 7396): null takes a field back to its default.",
            "properties": {name: _patchable(s) for name, s in properties.items()},
        }
        shown = schema_of(model, "serialization")
        shown_properties = dict(shown["properties"])
        shown_properties.pop("password", None)
        if section == "queues":
            shown_properties = {key: TEXT, **shown_properties}
        found[f"Config{title}"] = {
            **{k: v for k, v in shown.items() if k not in ("properties", "required")},
            "properties": shown_properties,
            "required": sorted(shown_properties),
        }
    return found


def _patchable(schema: Schema) -> Schema:
    """A field of a merge patch: its own type or null, and null inside maps (skills)."""
    loose = copy.deepcopy(schema)
    inner = loose.get("additionalProperties")
    if isinstance(inner, dict):
        loose["additionalProperties"] = nullable(inner)
    return nullable(loose)


def components() -> dict[str, Any]:
    figures = _figures()
    me = obj(
        {
            "username": STR,
            "role": {"type": "string", "enum": [r.value for r in Role]},
            "team": nullable(STR),
            "permissions": array({"type": "string", "enum": [p.value for p in Permission]}),
            "agents": nullable(STRINGS),
            "via": {"type": "string", "enum": ["session", "token", "api_key"]},
        }
    )
    waiting = obj(
        {
            "call_id": STR,
            "position": INT,
            "priority": INT,
            "waited_s": NUM,
            "ringing": STRINGS,
            "callback": BOOL,
        }
    )
    counts = ("waiting", "logged_in", "available", "on_call", "paused", "ringing", "wrap_up")
    call = {
        "call_id": STR,
        "sip_call_id": STR,
        "caller_number": nullable(STR),
        "caller_name": nullable(STR),
        "did": nullable(STR),
        "trunk": nullable(STR),
        "route": nullable(STR),
        "ivr_path": STRINGS,
        "digits": STR,
        "variables": {"type": "object", "additionalProperties": STR},
        "queue": nullable(STR),
        "agent": nullable(STR),
        "ring_attempts": INT,
        "arrived_at": TIME,
        "queued_at": nullable(TIME),
        "answered_at": nullable(TIME),
        "ended_at": nullable(TIME),
        "disposition": {"type": "string", "enum": [d.value for d in Disposition]},
        "hangup_side": {"type": "string", "enum": [h.value for h in HangupSide]},
        "sip_cause": nullable(INT),
        "survey_score": nullable(INT),
        "recording_id": nullable(STR),
        "wrap_up_code": nullable(STR),
        "wrap_up_s": nullable(NUM),
        "recording_url": nullable(STR),
    }
    event = obj(
        {
            "call_id": nullable(STR),
            "at": TIME,
            "event": {"type": "string", "enum": [e.value for e in EventType]},
            "queue": nullable(STR),
            "agent": nullable(STR),
            "data": OBJECT,
            "seq": INT,
        }
    )
    api_key = {
        "id": STR,
        "username": STR,
        "name": STR,
        "scopes": array({"type": "string", "enum": [p.value for p in Permission]}),
        "created_at": NUM,
        "expires_at": nullable(NUM),
        "revoked_at": nullable(NUM),
        "last_used_at": nullable(NUM),
    }
    span = {"since": TIME, "until": TIME}
    schemas: dict[str, Schema] = {
        "Error": {
            "type": "object",
            "description": "Every refusal of the API; some carry more fields.",
            "properties": {
                "error": {"type": "string", "description": "A code: bad_parameter, not_found…"},
                "message": {"type": "string", "description": "For a person."},
                "parameter": STR,
                "field": STR,
                "problems": array(obj({"field": STR, "message": STR})),
                "reasons": STRINGS,
                "revision": nullable(INT),
            },
            "required": ["error", "message"],
        },
        "Me": me,
        "Session": obj({"user": me, "csrf_token": STR, "expires_at": NUM}),
        "Token": obj({"user": me, "token": STR, "expires_at": NUM}),
        "Credentials": obj(
            {
                "username": {"type": "string", "minLength": 1, "maxLength": 64},
                "password": {"type": "string", "maxLength": 1024},
            }
        ),
        "Consultation": obj(
            {
                "call_id": STR,
                "agent": nullable(STR),
                "extension": STR,
                "state": {
                    "enum": [
                        "ringing",
                        "talking",
                        "conference",
                        "cancelled",
                        "failed",
                        "completed",
                        "colleague-left",
                        "ended",
                    ]
                },
            }
        ),
        "Supervision": obj(
            {
                "call_id": STR,
                "agent": nullable(STR),
                "supervisor": STR,
                "extension": STR,
                "mode": {"enum": ["listen", "whisper", "barge"]},
                "state": {"enum": ["ringing", "connected", "ended"]},
            }
        ),
        "Agent": obj(
            {
                "username": STR,
                "name": nullable(STR),
                "team": nullable(STR),
                "state": {"type": "string", "enum": _AGENT_STATES},
                "state_s": nullable(NUM),
                "reason": nullable(STR),
                "logged_in": BOOL,
                "paused": BOOL,
                "reachable": BOOL,
                "active_calls": INT,
                "offered_calls": INT,
                "calls": STRINGS,
                "ringing": STRINGS,
                "answered_today": INT,
                "talk_time_s": NUM,
                "idle_s": nullable(NUM),
                "misses": INT,
                "wrap_up_left_s": nullable(NUM),
                "wrap_up_code_due": nullable(STR),
            }
        ),
        "LiveQueue": obj(
            {
                "name": STR,
                "strategy": STR,
                "wrap_up_codes": STRINGS,
                "wrap_up_code_required": BOOL,
                "service_level_s": NUM,
                "oldest_wait_s": NUM,
                **dict.fromkeys(counts, INT),
                "calls": array(waiting),
                "today": obj(
                    {
                        **dict.fromkeys(
                            (
                                "offered",
                                "answered",
                                "answered_in_sl",
                                "abandoned",
                                "abandoned_in_sl",
                                "other",
                            ),
                            INT,
                        ),
                        "service_level": NUM,
                    }
                ),
            }
        ),
        "Call": obj(call),
        "CallEvent": event,
        "CallDetail": obj({**call, "events": array(event)}),
        "CallPage": obj(
            {**span, "calls": array(ref("Call")), "next": nullable(STR)},
        ),
        "Figures": obj(figures),
        "QueueReport": obj(
            {
                **span,
                "queues": array(obj({"queue": STR, "service_level_s": NUM, **figures})),
                "total": ref("Figures"),
            }
        ),
        "AgentReport": obj(
            {
                **span,
                "agents": array(
                    obj({"agent": STR, "team": nullable(STR), "ring_no_answer": INT, **figures})
                ),
                "teams": array(
                    obj({"team": STR, "agents": STRINGS, "ring_no_answer": INT, **figures})
                ),
            }
        ),
        "HourlyReport": obj(
            {**span, "hours": array(obj({"hour": TIME, "arrivals": INT, **figures}))}
        ),
        "WrapUpCodeReport": obj(
            {
                **span,
                "codes": array(obj({"queue": STR, "code": nullable(STR), "calls": INT})),
                "agents": array(
                    obj({"queue": STR, "agent": STR, "code": nullable(STR), "calls": INT})
                ),
            }
        ),
        "Registration": obj(
            {
                "user": STR,
                "contact": STR,
                "destination": STR,
                "source": STR,
                "expires_in": INT,
                "user_agent": STR,
            }
        ),
        "LiveCall": obj(
            {
                "id": STR,
                "caller": STR,
                "did": STR,
                "route": nullable(STR),
                "answered": BOOL,
                "ivr_path": STRINGS,
                "digits": STR,
                "queue": nullable(STR),
                "agent": nullable(STR),
                "variables": {"type": "object", "additionalProperties": STR},
            }
        ),
        "User": obj(
            {
                "username": STR,
                "role": {"type": "string", "enum": [r.value for r in Role]},
                "team": nullable(STR),
                "disabled": BOOL,
                "has_password": BOOL,
                "source": {"type": "string", "enum": ["database", "config"]},
                "agent": BOOL,
            }
        ),
        "ApiKey": obj(api_key),
        "NewApiKey": obj({"key": STR, **api_key}),
        "AuditEntry": obj(
            {
                "id": INT,
                "at": NUM,
                "actor": STR,
                "role": STR,
                "source": STR,
                "action": STR,
                "target": STR,
                "status": INT,
                "detail": OBJECT,
            }
        ),
        **_config_schemas(),
    }
    return {"schemas": schemas}
