"""The operations of the OpenAPI description, handler by handler.

Each operation says what its handler really parses (the query parameters
with ``Params``' types and limits, the body's fields) and really answers:
every status, with the success body's schema and the shared error body.
Security and the access middleware's refusals (401, 403, 503, 413) are
added from ``ROUTE_RULES`` by ``_openapi``.
"""

from __future__ import annotations

from typing import Any

from ..identity import Permission, Role
from ..storage import CallbackState, Disposition
from ._calls import MAX_PAGE
from ._openapi_schemas import (
    BOOL,
    CONFIG_KEYS,
    INT,
    NUM,
    SECTION_TITLES,
    STR,
    STRINGS,
    TEXT,
    TIME,
    array,
    body,
    nullable,
    obj,
    ok,
    path_parameter,
    query,
    ref,
    refusal,
)

__all__ = ["operations"]

Operation = dict[str, Any]

BAD_PARAMETER = refusal(
    "A query parameter is unknown, repeated, empty or out of range "
    "(error: bad_parameter; parameter names it)."
)
BAD_BODY = refusal(
    "The body is not JSON or not an object of the fields asked (bad_request), "
    "or a field is wrong (bad_field; field names it)."
)
NOT_FOUND = refusal("No such thing, or out of the caller's reach (error: not_found).")
NOT_ON_CALL = refusal("The agent is not on a call (error: not_on_call).")
_ETAG = {"ETag": {"schema": STR, "description": 'The configuration revision, as "12".'}}
_RETRY_AFTER = {"Retry-After": {"schema": INT, "description": "Seconds to wait."}}
_WINDOW = [
    query("since", TIME, "Start of the half-open range [since, until), with a time zone."),
    query("until", TIME, "End of the range; by default now, or since plus one day."),
]
_FORMAT = query("format", {"type": "string", "enum": ["json", "csv"]}, "csv: an attachment")
_SERVICE_LEVEL = query(
    "service_level",
    {"type": "number", "minimum": 0, "maximum": 86400},
    "Seconds: overrides every queue's configured service-level threshold.",
)
_AGENT = path_parameter("username", "The agent's SIP user name.")


_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


def _open_and_auth() -> dict[tuple[str, str], Operation]:
    sign_in_refusals = {
        "400": BAD_BODY,
        "401": refusal("Wrong user name or password (error: bad_credentials)."),
        "429": refusal(
            "Too many failed sign-ins for this name or address (error: throttled).",
            headers=_RETRY_AFTER,
        ),
        "503": refusal("The user store did not answer (error: storage_unavailable)."),
    }
    health = obj(
        {"status": {"type": "string", "enum": ["ok", "draining"]}, "sip": STRINGS},
    )
    return {
        ("GET", "/healthz"): {
            "summary": "Liveness: ok, or draining while the engine stops",
            "responses": {
                "200": ok(health, "Serving."),
                "503": {
                    "description": "Draining: take the node out of rotation.",
                    "headers": _RETRY_AFTER,
                    "content": {"application/json": {"schema": health}},
                },
            },
        },
        ("GET", "/metrics"): {
            "summary": "Every metric, in Prometheus' text format",
            "responses": {
                "200": {
                    "description": "The exposition (text/plain; version=0.0.4).",
                    "content": {"text/plain": {"schema": STR}},
                }
            },
        },
        ("GET", "/api/v1/openapi.json"): {
            "summary": "This description",
            "responses": {
                "200": ok(
                    {"type": "object", "required": ["openapi", "info", "paths"]},
                    "The OpenAPI 3.1 document.",
                ),
                "400": BAD_PARAMETER,
            },
        },
        ("POST", "/api/v1/auth/login"): {
            "summary": "Sign in a browser: an HttpOnly session cookie and the CSRF token",
            "requestBody": body("Credentials"),
            "responses": {
                "200": ok(
                    "Session",
                    "Signed in; send csrf_token back in X-CSRF-Token with every change.",
                    headers={"Set-Cookie": {"schema": STR, "description": "acd_session=…"}},
                ),
                **sign_in_refusals,
            },
        },
        ("POST", "/api/v1/auth/token"): {
            "summary": "Sign in a script: a bearer token",
            "requestBody": body("Credentials"),
            "responses": {"200": ok("Token", "Signed in."), **sign_in_refusals},
        },
        ("POST", "/api/v1/auth/logout"): {
            "summary": "End this session (an API key is revoked with DELETE /api-keys/{id})",
            "responses": {"200": ok(obj({"signed_out": {"const": True}}), "Signed out.")},
        },
        ("GET", "/api/v1/auth/me"): {
            "summary": "Who the caller is: role, permissions and reach",
            "responses": {"200": ok(obj({"user": ref("Me")}))},
        },
    }


def _pages() -> dict[tuple[str, str], Operation]:
    html = {"text/html": {"schema": STR}}
    return {
        ("GET", "/"): {
            "summary": "A browser is sent to the agent desktop",
            "responses": {"302": {"description": "Location: /agent/."}},
        },
        ("GET", "/agent/"): {
            "summary": "The agent desktop (its sign-in form, then the phone, screen pop, wrap-up)",
            "responses": {
                "200": {"description": "The page.", "content": html},
                "503": {"description": "The pages are not built: run scripts/build-web."},
            },
        },
        ("GET", "/wallboard/"): {
            "summary": "The supervisors' wallboard (its sign-in form, then queues, agents, calls)",
            "responses": {
                "200": {"description": "The page.", "content": html},
                "503": {"description": "The pages are not built: run scripts/build-web."},
            },
        },
        ("GET", "/admin/"): {
            "summary": "The administrators' pages (agents, queues, routes, users, API keys, audit)",
            "responses": {
                "200": {"description": "The page.", "content": html},
                "503": {"description": "The pages are not built: run scripts/build-web."},
            },
        },
        ("GET", "/reports/"): {
            "summary": "The reports (a period's figures, charts, CSV, the calls with recordings)",
            "responses": {
                "200": {"description": "The page.", "content": html},
                "503": {"description": "The pages are not built: run scripts/build-web."},
            },
        },
        ("GET", "/assets/{name}"): {
            "summary": "A script, style sheet or source map of the browser pages",
            "parameters": [
                {
                    "name": "name",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,63}$"},
                    "description": "agent.js, wallboard.js, admin.js, acd.css, agent.js.map",
                }
            ],
            "responses": {
                "200": {
                    "description": "The file.",
                    "content": {"text/javascript": {"schema": STR}},
                },
                "404": {"description": "No such asset."},
            },
        },
        ("GET", "/api/v1/phone"): {
            "summary": "Where and as whom the signed-in user's browser phone registers",
            "description": (
                "A fresh phone credential each time: a digest user name and password "
                "good only over the SIP WebSocket, until the session's lifetime ends "
                "(the account's own password never reaches the browser)."
            ),
            "responses": {
                "200": ok(
                    obj(
                        {
                            "username": STR,
                            "display_name": nullable(STR),
                            "agent": BOOL,
                            "uri": STR,
                            "domain": STR,
                            "realm": STR,
                            "websocket_url": STR,
                            "authorization_user": STR,
                            "password": STR,
                            "register_expires": INT,
                            "pause_reasons": STRINGS,
                            "crm_url": nullable(STR),
                        }
                    )
                ),
                "403": refusal("An API key: a phone needs a signed-in user (error: forbidden)."),
                "404": refusal(
                    "The user has no SIP account (no_phone), or the engine no SIP "
                    "WebSocket for this page (no_websocket)."
                ),
            },
        },
    }


def _agents() -> dict[tuple[str, str], Operation]:
    found: dict[tuple[str, str], Operation] = {
        ("GET", "/api/v1/agents"): {
            "summary": "Every agent in reach, with state, calls and counters",
            "responses": {"200": ok(obj({"agents": array(ref("Agent"))}))},
        },
        ("GET", "/api/v1/agents/{username}"): {
            "summary": "One agent",
            "parameters": [_AGENT],
            "responses": {"200": ok("Agent"), "404": NOT_FOUND},
        },
        ("POST", "/api/v1/agents/{username}/wrap-up"): {
            "summary": "Give the last call's wrap-up code, extend wrap-up, or end it",
            "parameters": [_AGENT],
            "requestBody": body(
                {
                    **obj(
                        {
                            "code": {"type": "string", "description": "One of the queue's codes"},
                            "extend": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
                            "end": BOOL,
                        },
                        required=(),
                    ),
                    "minProperties": 1,
                }
            ),
            "responses": {
                "200": ok("Agent", "The agent afterwards."),
                "400": BAD_BODY,
                "404": NOT_FOUND,
                "409": refusal("Not in wrap-up, or an unknown code (error: conflict)."),
            },
        },
        ("GET", "/api/v1/agents/{username}/monitor"): {
            "summary": "Who monitors the agent's call, in which mode",
            "parameters": [_AGENT],
            "responses": {
                "200": ok("Supervision"),
                "404": NOT_FOUND,
                "409": NOT_ON_CALL,
            },
        },
        ("POST", "/api/v1/agents/{username}/monitor"): {
            "summary": "Listen to, coach (whisper) or barge into the agent's call from a phone",
            "description": (
                "Rings the extension's registered phones; the first to answer joins the call "
                "in the mode. Posting again (same supervisor) changes the mode; the phone's "
                "keys 4, 5 and 6 do the same."
            ),
            "parameters": [_AGENT],
            "requestBody": body(
                obj(
                    {
                        "extension": {"type": "string", "minLength": 1},
                        "mode": {"enum": ["listen", "whisper", "barge"]},
                    },
                    required=(),
                )
            ),
            "responses": {
                "200": ok("Supervision", "The mode changed."),
                "202": ok("Supervision", "The supervisor's phone is ringing."),
                "400": BAD_BODY,
                "404": NOT_FOUND,
                "409": refusal(
                    "The agent is not on a call (not_on_call), or it is monitored by someone "
                    "else, or the extension has no registered phone (conflict)."
                ),
            },
        },
        ("DELETE", "/api/v1/agents/{username}/monitor"): {
            "summary": "Hang up the supervisor's phone on the agent's call",
            "parameters": [_AGENT],
            "responses": {
                "200": ok("Supervision", "As it ended."),
                "404": NOT_FOUND,
                "409": NOT_ON_CALL,
            },
        },
        ("GET", "/api/v1/agents/{username}/consult"): {
            "summary": "The agent's consultation: the colleague rung and its state",
            "parameters": [_AGENT],
            "responses": {"200": ok("Consultation"), "404": NOT_FOUND, "409": NOT_ON_CALL},
        },
        ("POST", "/api/v1/agents/{username}/consult"): {
            "summary": "Hold the caller and ring a colleague to talk to (attended transfer)",
            "parameters": [_AGENT],
            "requestBody": body(obj({"extension": {"type": "string", "minLength": 1}})),
            "responses": {
                "202": ok("Consultation", "The colleague's phones are ringing."),
                "400": BAD_BODY,
                "404": NOT_FOUND,
                "409": refusal(
                    "The agent is not on a call (not_on_call), or is in a consultation or on "
                    "hold already, or the extension has no registered phone (conflict)."
                ),
            },
        },
        **{
            ("POST", f"/api/v1/agents/{{username}}/consult/{step}"): {
                "summary": summary,
                "parameters": [_AGENT],
                "responses": {
                    "200": ok("Consultation", "The consultation afterwards."),
                    "404": NOT_FOUND,
                    "409": refusal(
                        "The agent is not on a call (not_on_call), or the colleague has not "
                        "answered yet, or a supervisor holds the third place (conflict)."
                    ),
                },
            }
            for step, summary in (
                ("transfer", "Hand the caller to the consulted colleague; the agent's leg ends"),
                ("conference", "Join the colleague to the caller and agent: a call of three"),
                ("cancel", "Hang up the colleague's phone; the caller comes back to the agent"),
            )
        },
        ("GET", "/api/v1/agents/{username}/recording"): {
            "summary": "Whether the agent's call is being recorded now",
            "parameters": [_AGENT],
            "responses": {
                "200": ok(
                    obj({"call_id": STR, "recording": {"enum": ["recording", "paused", "off"]}})
                ),
                "404": NOT_FOUND,
                "409": NOT_ON_CALL,
            },
        },
        **{
            ("POST", f"/api/v1/agents/{{username}}/recording/{action}"): {
                "summary": summary,
                "parameters": [_AGENT],
                "responses": {
                    "200": ok(
                        obj(
                            {
                                "call_id": STR,
                                "recording": {"enum": ["recording", "paused"]},
                            }
                        ),
                        "The recording afterwards (asking twice changes nothing).",
                    ),
                    "404": NOT_FOUND,
                    "409": refusal(
                        "The agent is not on a call (not_on_call), or the call is not "
                        "recorded (not_recorded)."
                    ),
                },
            }
            for action, summary in (
                ("pause", "Pause the recording of the agent's call (silence in the file)"),
                ("resume", "Resume the recording of the agent's call"),
            )
        },
        ("GET", "/api/v1/queues"): {
            "summary": "Each queue's live figures and the calls waiting in it",
            "responses": {"200": ok(obj({"queues": array(ref("LiveQueue"))}))},
        },
    }
    for action, summary in (
        ("login", "Log the agent in"),
        ("logout", "Log the agent out"),
        ("pause", "Pause the agent, with a configured reason (the first when none is given)"),
        ("unpause", "End the agent's pause"),
    ):
        operation: Operation = {
            "summary": summary,
            "parameters": [_AGENT],
            "responses": {
                "200": ok("Agent", "The agent afterwards."),
                "404": NOT_FOUND,
                "409": refusal("The agent's state does not allow it (error: conflict)."),
            },
        }
        if action == "pause":
            operation["requestBody"] = body(obj({"reason": STR}, required=()), required=False)
            operation["responses"]["400"] = refusal(
                'The body is not {"reason": …} (bad_request), or the reason is not '
                "configured (bad_reason; reasons lists them)."
            )
        found[("POST", f"/api/v1/agents/{{username}}/{action}")] = operation
    return found


def _calls_and_reports() -> dict[tuple[str, str], Operation]:
    def report(summary: str, schema: str, *extra: dict[str, Any]) -> Operation:
        return {
            "summary": summary,
            "parameters": [*_WINDOW, *extra, _FORMAT],
            "responses": {"200": ok(schema, csv=True), "400": BAD_PARAMETER},
        }

    disposition = {"type": "string", "enum": [d.value for d in Disposition]}
    queue = query("queue", TEXT, "Only this queue.")
    return {
        ("GET", "/api/v1/calls"): {
            "summary": "Call detail records of a range, oldest first, a page at a time",
            "description": "Pass `next` back as `after`, with the same filters, for the next page.",
            "parameters": [
                *_WINDOW,
                queue,
                query("agent", TEXT, "Only calls this agent answered."),
                query("disposition", disposition, "Only calls that ended so."),
                query("caller", TEXT, "Only calls from this number."),
                query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 100},
                    "Calls per page.",
                ),
                query("after", TEXT, "The `next` cursor of the previous page."),
                {**_FORMAT, "description": "csv: every call of the range, as an attachment."},
            ],
            "responses": {"200": ok("CallPage", csv=True), "400": BAD_PARAMETER},
        },
        ("GET", "/api/v1/calls/{call_id}"): {
            "summary": "One call detail record with its queue events in order",
            "parameters": [path_parameter("call_id", "The engine's call id.")],
            "responses": {"200": ok("CallDetail"), "400": BAD_PARAMETER, "404": NOT_FOUND},
        },
        ("GET", "/api/v1/recordings/{recording_id}"): {
            "summary": "A call's recording as a stereo WAV (caller left, agent right)",
            "description": "Range requests are answered 206; If-None-Match, If-Range and "
            "If-Match are honoured.",
            "parameters": [path_parameter("recording_id", "The recording id of the call record.")],
            "responses": {
                "200": {
                    "description": "The WAV file.",
                    "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
                },
                "206": {
                    "description": "The range asked for.",
                    "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
                },
                "304": {"description": "Not modified (If-None-Match, If-Modified-Since)."},
                "400": BAD_PARAMETER,
                "404": NOT_FOUND,
                "412": {"description": "If-Match or If-Unmodified-Since did not hold."},
                "416": {"description": "The range cannot be satisfied."},
            },
        },
        ("GET", "/api/v1/reports/queues"): report(
            "Per queue: offered, answered, abandoned, ASA, AHT, service levels",
            "QueueReport",
            _SERVICE_LEVEL,
        ),
        ("GET", "/api/v1/reports/agents"): report(
            "Per agent in reach, and per team",
            "AgentReport",
            _SERVICE_LEVEL,
            query("team", TEXT, "Only this team."),
        ),
        ("GET", "/api/v1/reports/hourly"): report(
            "Volume and figures per hour (or 15 or 30 minutes)",
            "HourlyReport",
            _SERVICE_LEVEL,
            queue,
            query(
                "interval",
                {"type": "integer", "enum": [15, 30, 60], "default": 60},
                "Minutes per row.",
            ),
        ),
        ("GET", "/api/v1/reports/wrap-up-codes"): report(
            "Answered calls per queue and wrap-up code, and per agent",
            "WrapUpCodeReport",
            queue,
        ),
    }


def _live_and_events() -> dict[tuple[str, str], Operation]:
    stream_parameters = [
        query("since", TEXT, "Resume after this sequence number (SSE ids are seq@epoch)."),
        query("epoch", TEXT, "The stream epoch the number belongs to."),
        query("queue", TEXT, "Only events of this queue."),
        query("agent", TEXT, "Only events about this agent."),
        query("team", TEXT, "Only events about agents of this team."),
        query("types", TEXT, "Comma-separated event types (AgentStateChanged,CallArrived…)."),
    ]
    return {
        ("GET", "/api/v1/registrations"): {
            "summary": "Registered contacts of the agents in reach",
            "parameters": [query("user", STR, "Only this SIP user.")],
            "responses": {"200": ok(obj({"registrations": array(ref("Registration"))}))},
        },
        ("GET", "/api/v1/live/calls"): {
            "summary": "Calls in progress that the caller reaches",
            "responses": {"200": ok(obj({"calls": array(ref("LiveCall"))}))},
        },
        ("GET", "/api/v1/live/resources"): {
            "summary": "What calls hold (tasks, dialogs, RTP ports, live objects): a leak check",
            "responses": {
                "200": ok(
                    {
                        "type": "object",
                        "required": ["tasks", "sip_transactions"],
                        "additionalProperties": INT,
                    }
                )
            },
        },
        ("GET", "/api/v1/events"): {
            "summary": "Live events as Server-Sent Events, resumable (Last-Event-ID)",
            "description": 'The stream does not end: first {"type": "hello"}, then events.',
            "parameters": stream_parameters,
            "responses": {
                "200": {
                    "description": "The stream.",
                    "content": {"text/event-stream": {"schema": STR}},
                },
                "400": BAD_PARAMETER,
            },
        },
        ("GET", "/api/v1/events/ws"): {
            "summary": "Live events over a WebSocket, one JSON object per message",
            "parameters": stream_parameters,
            "responses": {
                "101": {"description": "Switched to the WebSocket protocol."},
                "400": {
                    "description": "A bad parameter (JSON), or not a WebSocket upgrade (text).",
                    "content": {"application/json": {"schema": ref("Error")}, **_TEXT_CONTENT},
                },
            },
        },
        ("GET", "/api/v1/webhooks"): {
            "summary": "Webhook subscriptions and how far each has been delivered",
            "responses": {
                "200": ok(
                    obj(
                        {
                            "webhooks": array(
                                obj(
                                    {
                                        "name": STR,
                                        "url": STR,
                                        "events": STRINGS,
                                        "delivered_through": INT,
                                        "pending": INT,
                                    }
                                )
                            ),
                            "last_id": INT,
                        }
                    )
                )
            },
        },
        ("GET", "/api/v1/webhooks/deliveries"): {
            "summary": "The last delivery attempts, newest first",
            "parameters": [query("subscription", STR, "Only this subscription's.")],
            "responses": {
                "200": ok(
                    obj(
                        {
                            "deliveries": array(
                                obj(
                                    {
                                        "subscription": STR,
                                        "id": INT,
                                        "type": STR,
                                        "attempt": INT,
                                        "status": nullable(INT),
                                        "error": nullable(STR),
                                        "at": NUM,
                                        "seconds": NUM,
                                    }
                                )
                            )
                        }
                    )
                )
            },
        },
    }


_TEXT_CONTENT = {"text/plain": {"schema": STR}}


def _callbacks() -> dict[tuple[str, str], Operation]:
    callback = obj(
        {
            "call_id": STR,
            "queue": STR,
            "state": {"type": "string", "enum": [s.value for s in CallbackState]},
            "number": nullable(STR),
            "name": nullable(STR),
            "did": nullable(STR),
            "requested_at": TIME,
            "requested_by": {"type": "string", "description": "key or max-wait"},
            "queued_at": TIME,
            "updated_at": TIME,
            "priority": INT,
            "attempts": INT,
            "next_attempt_at": nullable(TIME),
            "agent": nullable(STR),
        }
    )
    return {
        ("GET", "/api/v1/callbacks"): {
            "summary": "Callback requests, oldest first",
            "parameters": [
                query(
                    "state",
                    {"type": "string", "enum": [s.value for s in CallbackState]},
                    "Only requests in this state; every state when absent.",
                ),
                query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    "Requests at most.",
                ),
            ],
            "responses": {
                "200": ok(obj({"callbacks": array(callback)})),
                "400": BAD_PARAMETER,
            },
        },
        ("DELETE", "/api/v1/callbacks/{call_id}"): {
            "summary": "Cancel a waiting callback request",
            "parameters": [path_parameter("call_id", "The call that asked for the callback.")],
            "responses": {
                "204": {"description": "Cancelled."},
                "404": NOT_FOUND,
                "409": refusal("No longer waiting, or being dialled now (error: conflict)."),
            },
        },
    }


def _users() -> dict[tuple[str, str], Operation]:
    role = {"type": "string", "enum": [r.value for r in Role]}
    team = nullable({"type": "string", "pattern": _NAME})
    password = {"type": "string", "minLength": 10}
    user = path_parameter("username", "The user name.")
    last_admin = refusal("This is the last enabled admin (error: last_admin).")
    return {
        ("GET", "/api/v1/users"): {
            "summary": "Database users and configured agents",
            "responses": {"200": ok(obj({"users": array(ref("User"))})), "400": BAD_PARAMETER},
        },
        ("POST", "/api/v1/users"): {
            "summary": "Create a user",
            "requestBody": body(
                obj(
                    {
                        "username": {"type": "string", "pattern": _NAME},
                        "role": role,
                        "team": team,
                        "password": password,
                    },
                    required=("username", "role"),
                )
            ),
            "responses": {
                "201": ok("User", "Created."),
                "400": BAD_BODY,
                "409": refusal("The user exists (error: conflict)."),
            },
        },
        ("GET", "/api/v1/users/{username}"): {
            "summary": "One user",
            "parameters": [user],
            "responses": {"200": ok("User"), "404": NOT_FOUND},
        },
        ("PATCH", "/api/v1/users/{username}"): {
            "summary": "Change a user's role, team, password or disabled flag",
            "description": "A new password, a role change or disabling ends their sessions.",
            "parameters": [user],
            "requestBody": body(
                obj(
                    {"role": role, "team": team, "password": password, "disabled": BOOL},
                    required=(),
                )
            ),
            "responses": {
                "200": ok("User", "The user afterwards."),
                "400": BAD_BODY,
                "404": NOT_FOUND,
                "409": last_admin,
            },
        },
        ("DELETE", "/api/v1/users/{username}"): {
            "summary": "Delete a user: ends their sessions and revokes their API keys",
            "parameters": [user],
            "responses": {
                "200": ok(obj({"deleted": STR})),
                "404": NOT_FOUND,
                "409": last_admin,
            },
        },
        ("GET", "/api/v1/api-keys"): {
            "summary": "API keys, with when each was last used",
            "responses": {
                "200": ok(obj({"api_keys": array(ref("ApiKey"))})),
                "400": BAD_PARAMETER,
            },
        },
        ("POST", "/api/v1/api-keys"): {
            "summary": "Create an API key; the key is in this answer only",
            "requestBody": body(
                obj(
                    {
                        "name": {"type": "string", "minLength": 1, "maxLength": 100},
                        "username": {"type": "string", "description": "Whose; the caller's"},
                        "scopes": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "string", "enum": [p.value for p in Permission]},
                        },
                        "expires_in": nullable(
                            {"type": "number", "minimum": 60, "maximum": 5 * 365 * 86400}
                        ),
                    },
                    required=("name", "scopes"),
                )
            ),
            "responses": {"201": ok("NewApiKey", "Created."), "400": BAD_BODY},
        },
        ("DELETE", "/api/v1/api-keys/{key_id}"): {
            "summary": "Revoke an API key at once",
            "parameters": [path_parameter("key_id", "The key's id.")],
            "responses": {"200": ok(obj({"revoked": STR})), "404": NOT_FOUND},
        },
        ("GET", "/api/v1/audit"): {
            "summary": "The audit log, newest first",
            "parameters": [
                *_WINDOW,
                query("actor", TEXT, "Only this user's."),
                query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 5000, "default": 500},
                    "Entries at most.",
                ),
            ],
            "responses": {
                "200": ok(obj({"entries": array(ref("AuditEntry"))})),
                "400": BAD_PARAMETER,
            },
        },
    }


def _config() -> dict[tuple[str, str], Operation]:
    c = "/api/v1/config"
    if_match = {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "schema": STR,
        "description": 'The revision the change is made against, as its ETag ("12"), or *.',
    }
    bad = refusal(
        "The body is not a JSON object (bad_request), a field is wrong (bad_field: field and "
        "problems name each), or If-Match is not an ETag (bad_header)."
    )
    stale = refusal("If-Match names a revision that is no longer current (revision_changed).")
    moved = "Another change was written meanwhile (revision_changed), or the name is taken."
    unavailable = refusal("The database has not answered since start (storage_unavailable).")
    changes = {"400": bad, "409": refusal(moved), "412": stale, "503": unavailable}
    found: dict[tuple[str, str], Operation] = {
        ("GET", c): {
            "summary": "The whole runtime configuration and its revision",
            "responses": {
                "200": ok(
                    obj(
                        {
                            "revision": nullable(INT),
                            "agents": array(ref("ConfigAgent")),
                            "queues": array(ref("ConfigQueue")),
                            "routes": array(ref("ConfigRoute")),
                            "pause_reasons": STRINGS,
                        }
                    ),
                    headers=_ETAG,
                )
            },
        },
        ("GET", f"{c}/pause-reasons"): {
            "summary": "The pause reasons",
            "responses": {
                "200": ok(obj({"pause_reasons": STRINGS, "revision": nullable(INT)}), headers=_ETAG)
            },
        },
        ("PUT", f"{c}/pause-reasons"): {
            "summary": "Replace the pause reasons",
            "parameters": [if_match],
            "requestBody": body(obj({"pause_reasons": STRINGS})),
            "responses": {
                "200": ok(
                    obj({"pause_reasons": STRINGS, "revision": nullable(INT)}), headers=_ETAG
                ),
                **changes,
            },
        },
    }
    for section, title in SECTION_TITLES.items():
        shown = f"Config{title}"
        name = path_parameter("name", f"The {title.lower()}'s {CONFIG_KEYS[section]}.")
        found[("GET", f"{c}/{section}")] = {
            "summary": f"Every {title.lower()}, in order",
            "responses": {
                "200": ok(
                    obj({section: array(ref(shown)), "revision": nullable(INT)}), headers=_ETAG
                )
            },
        }
        found[("POST", f"{c}/{section}")] = {
            "summary": f"Add a {title.lower()}",
            "parameters": [if_match],
            "requestBody": body(f"New{title}"),
            "responses": {"201": ok(shown, "Added.", headers=_ETAG), **changes},
        }
        found[("GET", f"{c}/{section}/{{name}}")] = {
            "summary": f"One {title.lower()}",
            "parameters": [name],
            "responses": {"200": ok(shown, headers=_ETAG), "404": NOT_FOUND},
        }
        found[("PUT", f"{c}/{section}/{{name}}")] = {
            "summary": f"Create or replace a {title.lower()}",
            "parameters": [name, if_match],
            "requestBody": body(f"Put{title}"),
            "responses": {
                "200": ok(shown, "Replaced.", headers=_ETAG),
                "201": ok(shown, "Created.", headers=_ETAG),
                **changes,
            },
        }
        found[("PATCH", f"{c}/{section}/{{name}}")] = {
            "summary": f"Change some fields of a {title.lower()} (JSON merge patch)",
            "parameters": [name, if_match],
            "requestBody": body(f"{title}Patch"),
            "responses": {"200": ok(shown, headers=_ETAG), "404": NOT_FOUND, **changes},
        }
        found[("DELETE", f"{c}/{section}/{{name}}")] = {
            "summary": f"Remove a {title.lower()}",
            "parameters": [name, if_match],
            "responses": {
                "204": {"description": "Removed.", "headers": _ETAG},
                "404": NOT_FOUND,
                **changes,
            },
        }
    return found


def operations() -> dict[tuple[str, str], Operation]:
    """Every described operation by (method, canonical path), without security."""
    return {
        **_open_and_auth(),
        **_pages(),
        **_agents(),
        **_calls_and_reports(),
        **_live_and_events(),
        **_callbacks(),
        **_users(),
        **_config(),
    }
