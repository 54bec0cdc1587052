"""Agent control and live queues over HTTP: what a supervisor panel or an agent's desktop uses.

``add_agent_routes(app, service)`` adds, under ``/api/v1``:

- ``GET /agents``: every agent with state, pause reason, calls and counters;
- ``GET /agents/{username}``: one agent;
- ``POST /agents/{username}/login``, ``/logout``, ``/pause`` (JSON body
  ``{"reason": "lunch"}``, one of the configured pause reasons; the first
  when the body is empty), ``/unpause``: change the state, answer the agent
  as it is afterwards;
- ``POST /agents/{username}/monitor`` (``{"extension": "9001", "mode":
  "listen"}``): ring that extension's phones and join the first to answer to
  the agent's call as a listener, a coach (``whisper``) or a third party
  (``barge``); a later POST changes the mode; ``GET`` shows the supervision;
  ``DELETE`` ends it;
- ``POST /agents/{username}/consult`` (``{"extension": "1002"}``): hold the
  caller and ring a colleague; ``/consult/transfer`` hands the caller over,
  ``/consult/conference`` makes it a call of three, ``/consult/cancel``
  brings the caller back; ``GET`` shows it;
- ``GET /agents/{username}/recording``: whether the agent's call is being
  recorded (``recording``, ``paused``, ``off``);
- ``POST /agents/{username}/recording/pause`` and ``/recording/resume``: the
  recording of the agent's call stops (silence in the file) and starts again;
- ``GET /queues``: each queue's live figures and the calls waiting in it.

Errors follow the rest of the API: a JSON body ``{"error", "message"}``; 404
for an unknown agent, 400 for a bad body or pause reason, 409 for a change
the agent's state does not allow (pausing while logged out).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from media import MonitorMode

from ..calls import Bridged, MonitorRefused, Supervision
from ..queues import AcdError, AgentView
from ._params import error, json_body
from ._principal import principal_of

if TYPE_CHECKING:
    from ..queues import AcdService

__all__ = ["AgentsApi", "add_agent_routes", "agent_json"]

_ACTIONS = ("login", "logout", "pause", "unpause")
_CONSULT_STEPS = ("transfer", "conference", "cancel")


def agent_json(
    view: AgentView,
    now: float,
    name: str | None = None,
    *,
    team: str | None = None,
    state_since: float | None = None,
) -> dict[str, Any]:
    """An agent as the API shows it; times on the loop's clock become ages in seconds."""
    return {
        "username": view.username,
        "name": name,
        "team": team,
        "state": view.state,
        # how long the agent has been in this state (None: since before the engine started)
        "state_s": round(now - state_since, 3) if state_since is not None else None,
        "reason": view.reason,
        "logged_in": view.logged_in,
        "paused": view.paused,
        "reachable": view.reachable,
        "active_calls": view.active,
        "offered_calls": view.offered,
        "calls": list(view.calls),
        "ringing": list(view.ringing),
        "answered_today": view.answered_today,
        "talk_time_s": round(view.talk_time, 3),
        "idle_s": round(now - view.idle_since, 3) if view.idle_since is not None else None,
        "misses": view.misses,
        "wrap_up_left_s": (
            round(max(0.0, view.wrap_up_until - now), 3) if view.wrap_up_until is not None else None
        ),
        "wrap_up_code_due": view.code_due,
    }


class AgentsApi:
    """The agent and queue endpoints over one running ``AcdService``."""

    def __init__(self, service: AcdService) -> None:
        self.service = service

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/agents", self.list_agents),
            web.get("/api/v1/agents/{username}", self.get_agent),
            *(
                web.post(f"/api/v1/agents/{{username}}/{action}", self.change)
                for action in _ACTIONS
            ),
            web.post("/api/v1/agents/{username}/wrap-up", self.wrap_up),
            web.get("/api/v1/agents/{username}/monitor", self.get_monitor),
            web.post("/api/v1/agents/{username}/monitor", self.monitor),
            web.delete("/api/v1/agents/{username}/monitor", self.end_monitor),
            web.get("/api/v1/agents/{username}/consult", self.get_consult),
            web.post("/api/v1/agents/{username}/consult", self.consult),
            *(
                web.post(f"/api/v1/agents/{{username}}/consult/{step}", self.consult_step)
                for step in _CONSULT_STEPS
            ),
            web.get("/api/v1/agents/{username}/recording", self.get_recording),
            web.post("/api/v1/agents/{username}/recording/pause", self.recording),
            web.post("/api/v1/agents/{username}/recording/resume", self.recording),
            web.get("/api/v1/queues", self.list_queues),
        ]

    def _json(self, view: AgentView) -> dict[str, Any]:
        agent = self.service.config.agent(view.username)  # the live configuration's
        return agent_json(
            view,
            self.service.loop.time(),
            agent.name if agent else None,
            team=agent.team if agent else None,
            state_since=self.service.state_since(view.username),
        )

    def _view(self, username: str) -> AgentView:
        if not self.service.is_agent(username):
            error(web.HTTPNotFound, "not_found", f"no agent {username!r}")
        return self.service.agent(username)

    async def list_agents(self, request: web.Request) -> web.Response:
        principal = principal_of(request)
        views = [v for v in self.service.agents() if principal.reaches(v.username)]
        return web.json_response({"agents": [self._json(v) for v in views]})

    async def get_agent(self, request: web.Request) -> web.Response:
        return web.json_response(self._json(self._view(request.match_info["username"])))

    async def change(self, request: web.Request) -> web.Response:
        username = request.match_info["username"]
        action = request.path.rsplit("/", 1)[1]
        self._view(username)
        service = self.service
        try:
            if action == "login":
                service.login(username)
            elif action == "logout":
                service.logout(username)
            elif action == "unpause":
                service.unpause(username)
            else:
                service.pause(username, await self._reason(request))
        except AcdError as exc:
            error(web.HTTPConflict, "conflict", str(exc))
        return web.json_response(self._json(service.agent(username)))

    async def wrap_up(self, request: web.Request) -> web.Response:
        """``{"code": "sale"}`` for the last call, ``{"extend": 30}``, ``{"end": true}``."""
        username = request.match_info["username"]
        self._view(username)
        body = await json_body(request)
        if not isinstance(body, dict) or not body or set(body) - {"code", "extend", "end"}:
            error(
                web.HTTPBadRequest,
                "bad_request",
                'the body must name "code", "extend" (seconds) or "end" (true)',
            )
        code, extend, end = body.get("code"), body.get("extend"), body.get("end", False)
        if code is not None and not isinstance(code, str):
            error(web.HTTPBadRequest, "bad_field", "code: must be a string", field="code")
        if extend is not None and (
            isinstance(extend, bool)
            or not isinstance(extend, int | float)
            or not 0 < extend <= 3600
        ):
            error(
                web.HTTPBadRequest,
                "bad_field",
                "extend: seconds, above 0, at most 3600",
                field="extend",
            )
        if not isinstance(end, bool):
            error(web.HTTPBadRequest, "bad_field", "end: must be true or false", field="end")
        try:
            self.service.wrap_up(
                username, code=code, end=end, extend=None if extend is None else float(extend)
            )
        except AcdError as exc:
            error(web.HTTPConflict, "conflict", str(exc))
        return web.json_response(self._json(self.service.agent(username)))

    def _bridged(self, username: str) -> tuple[Any, Bridged]:
        """The agent's bridged call and its state; 409 when the agent is not on one."""
        self._view(username)
        script = self.service.control.script
        bridged = script.bridged_for_agent(username) if script is not None else None
        if bridged is None:
            error(web.HTTPConflict, "not_on_call", f"agent {username!r} is not on a call")
        return bridged.call, bridged

    def _supervision(self, username: str) -> tuple[Any, Supervision | None]:
        call, bridged = self._bridged(username)
        return call, bridged.supervision

    async def get_consult(self, request: web.Request) -> web.Response:
        _call, bridged = self._bridged(request.match_info["username"])
        if bridged.consultation is None:
            error(web.HTTPNotFound, "not_found", "the agent is not in a consultation")
        return web.json_response(bridged.consultation.public())

    async def consult(self, request: web.Request) -> web.Response:
        """Hold the agent's caller and ring a colleague's phones (202, ringing)."""
        username = request.match_info["username"]
        body = await json_body(request)
        if not isinstance(body, dict) or set(body) != {"extension"}:
            error(web.HTTPBadRequest, "bad_request", 'the body must be {"extension": "..."}')
        extension = body["extension"]
        if not isinstance(extension, str) or not extension:
            error(web.HTTPBadRequest, "bad_field", "extension: a user name", field="extension")
        call, _bridged = self._bridged(username)
        script = self.service.control.script
        assert script is not None
        try:
            consultation = script.consult(call, extension)
        except MonitorRefused as exc:
            error(web.HTTPConflict, "conflict", str(exc))
        return web.json_response(consultation.public(), status=202)

    async def consult_step(self, request: web.Request) -> web.Response:
        """Transfer the caller to the colleague, make it a conference of three, or cancel."""
        username = request.match_info["username"]
        step = request.path.rsplit("/", 1)[1]
        _call, bridged = self._bridged(username)
        consultation = bridged.consultation
        if consultation is None:
            error(web.HTTPNotFound, "not_found", "the agent is not in a consultation")
        try:
            if step == "cancel":
                consultation.cancel()
            elif step == "conference":
                consultation.conference(self.service.control.media.clock)
            else:
                if bridged.on_complete is None:
                    raise ValueError("this call cannot be handed on")
                bridged.on_complete(consultation.complete(), consultation.extension)
        except ValueError as exc:
            error(web.HTTPConflict, "conflict", str(exc))
        return web.json_response(consultation.public())

    async def get_recording(self, request: web.Request) -> web.Response:
        call, bridged = self._bridged(request.match_info["username"])
        return web.json_response({"call_id": call.id, "recording": bridged.recording})

    async def recording(self, request: web.Request) -> web.Response:
        """Pause or resume the recording of the agent's call (card numbers: PCI DSS)."""
        username = request.match_info["username"]
        action = request.path.rsplit("/", 1)[1]
        call, bridged = self._bridged(username)
        if bridged.recording == "off":
            error(web.HTTPConflict, "not_recorded", "the agent's call is not being recorded")
        by = principal_of(request).username
        if action == "pause":
            bridged.pause_recording(by)
        else:
            bridged.resume_recording(by)
        return web.json_response({"call_id": call.id, "recording": bridged.recording})

    async def get_monitor(self, request: web.Request) -> web.Response:
        _call, supervision = self._supervision(request.match_info["username"])
        if supervision is None:
            error(web.HTTPNotFound, "not_found", "nobody monitors this agent's call")
        return web.json_response(supervision.public())

    async def monitor(self, request: web.Request) -> web.Response:
        """Start monitoring the agent's call (202, ringing), or change the mode (200)."""
        username = request.match_info["username"]
        body = await json_body(request)
        if not isinstance(body, dict) or set(body) - {"extension", "mode"}:
            error(
                web.HTTPBadRequest,
                "bad_request",
                'the body must be {"extension": "...", "mode": "listen|whisper|barge"}',
            )
        modes = [m.value for m in MonitorMode]
        mode = body.get("mode", MonitorMode.LISTEN.value)
        if mode not in modes:
            error(web.HTTPBadRequest, "bad_field", f"mode: one of {modes}", field="mode")
        extension = body.get("extension")
        if extension is not None and (not isinstance(extension, str) or not extension):
            error(web.HTTPBadRequest, "bad_field", "extension: a user name", field="extension")
        call, supervision = self._supervision(username)
        principal = principal_of(request)
        if supervision is not None:
            if supervision.supervisor != principal.username or extension not in (
                None,
                supervision.extension,
            ):
                error(
                    web.HTTPConflict,
                    "conflict",
                    f"the call is monitored by {supervision.supervisor} already",
                )
            supervision.set_mode(MonitorMode(mode))
            return web.json_response(supervision.public())
        if extension is None:
            error(web.HTTPBadRequest, "bad_field", "extension: required", field="extension")
        script = self.service.control.script
        assert script is not None
        try:
            started = script.monitor(call, principal.username, extension, MonitorMode(mode))
        except MonitorRefused as exc:
            error(web.HTTPConflict, "conflict", str(exc))
        return web.json_response(started.public(), status=202)

    async def end_monitor(self, request: web.Request) -> web.Response:
        _call, supervision = self._supervision(request.match_info["username"])
        if supervision is None:
            error(web.HTTPNotFound, "not_found", "nobody monitors this agent's call")
        supervision.end()
        return web.json_response(supervision.public())

    async def _reason(self, request: web.Request) -> str:
        """The pause reason from the body: one of the configured ones (400 otherwise)."""
        reasons = self.service.pause_reasons
        if not (await request.read()).strip():
            return reasons[0]
        body = await json_body(request)
        if not isinstance(body, dict) or set(body) - {"reason"}:
            error(web.HTTPBadRequest, "bad_request", 'the body must be {"reason": "..."}')
        reason = body.get("reason", reasons[0])
        if reason not in reasons:
            error(
                web.HTTPBadRequest,
                "bad_reason",
                f"unknown pause reason {reason!r}",
                reasons=list(reasons),
            )
        return str(reason)

    async def list_queues(self, request: web.Request) -> web.Response:
        core = self.service.core
        now = self.service.loop.time()
        rows = []
        for name, queue in self.service.config.queues.items():
            stats = core.queue_stats(name)
            rows.append(
                {
                    "name": name,
                    "strategy": queue.strategy,
                    "wrap_up_codes": list(queue.wrap_up_codes),
                    "wrap_up_code_required": queue.wrap_up_code_required,
                    "service_level_s": queue.service_level,
                    "waiting": stats.waiting,
                    "oldest_wait_s": round(stats.oldest_wait, 3),
                    "logged_in": stats.logged_in,
                    "available": stats.available,
                    "on_call": stats.on_call,
                    "paused": stats.paused,
                    "ringing": stats.ringing,
                    "wrap_up": stats.wrap_up,
                    "calls": [
                        {
                            "call_id": w.call_id,
                            "position": w.position,
                            "priority": w.priority,
                            "waited_s": round(now - w.joined_at, 3),
                            "ringing": list(w.ringing),
                            "callback": w.callback,
                        }
                        for w in core.waiting(name)
                    ],
                    "today": self.service.queue_today(name),
                }
            )
        return web.json_response({"queues": rows})


def add_agent_routes(app: web.Application, service: AcdService) -> None:
    """Add the agent and queue endpoints to ``app`` (before it starts)."""
    app.router.add_routes(AgentsApi(service).routes())
