"""Feature codes an agent dials from a registered softphone to change their own state.

``*21`` logs in, ``*22`` logs out, ``*23`` pauses (``*23`` followed by a
digit picks the configured pause reason by position: ``*232`` is the
second; plain ``*23`` is the first), ``*24`` unpauses, ``*25`` followed by
a digit gives the agent's last call the queue's wrap-up code of that
position (``*251`` the first) and plain ``*25`` ends wrap-up. ``*26``
followed by an agent's user name (``*261001``) joins a supervisor's phone to
that agent's call, listening; the phone's keys 4, 5 and 6 then switch to
listen, whisper and barge, and hanging up leaves. It needs an account whose
user may monitor that agent (``calls:monitor`` and reach); anyone else, or a
request for an agent not on a call, hears ``agent_login_failed``. The call arrives
authenticated (``call.user`` is the account that dialled), so nobody can
change another agent's state this way. Each code is answered, confirmed by
a prompt, and hung up; a code that cannot be carried out (not an agent, not
logged in) hears ``agent_login_failed``.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import ivr
from media import MonitorMode

from ..calls import MonitorRefused
from ._model import AcdError

if TYPE_CHECKING:
    from ..calls import Call
    from ._service import AcdService

__all__ = ["FEATURE_CODES", "feature_for", "run_feature"]

log = logging.getLogger(__name__)

FEATURE_CODES: Final = {
    "*21": "login",
    "*22": "logout",
    "*23": "pause",
    "*24": "unpause",
    "*25": "wrap-up",
}
_CONFIRM: Final = {
    "login": "agent_logged_in",
    "logout": "agent_logged_out",
    "pause": "agent_paused",
    "unpause": "agent_unpaused",
}
_FAILED: Final = "agent_login_failed"


def feature_for(number: str) -> tuple[str, str | None] | None:
    """The feature a dialled number asks for, with its argument (``*232`` -> pause, "2")."""
    if number in FEATURE_CODES:
        return FEATURE_CODES[number], None
    if number.startswith("*23") and number[3:].isdigit() and len(number) <= 5:
        return "pause", number[3:]
    if number.startswith("*25") and number[3:].isdigit() and len(number) <= 5:
        return "wrap-up", number[3:]
    if number.startswith("*26") and number[3:].isalnum() and len(number) <= 35:
        return "monitor", number[3:]
    return None


async def run_feature(service: AcdService, call: Call) -> bool:
    """Carry out the feature code ``call`` dialled; False when it dialled no feature code."""
    feature = feature_for(call.did)
    if feature is None or call.user is None:
        return False
    name, argument = feature
    call.route = call.did
    if name == "monitor" and argument is not None:
        await _monitor(service, call, call.user, argument)
        return True
    prompt = _FAILED
    try:
        prompt = _apply(service, call.user, name, argument)
    except AcdError as exc:
        log.info("agent %s dialled %s: %s", call.user, call.did, exc)
    if not await call.caller_leg.answer():
        return True
    call.answered_at = datetime.now(UTC)
    with contextlib.suppress(ivr.CallerHungUp):
        await call.play([ivr.Prompt(prompt)])
    call.disposition = "answered"
    call.hangup_side = call.hangup_side or "system"
    call.caller_leg.hangup()
    return True


def _apply(service: AcdService, agent: str, name: str, argument: str | None) -> str:
    """Change the agent's state; the confirmation prompt to play."""
    if not service.is_agent(agent):
        raise AcdError(f"{agent} is not an agent")
    if name == "login":
        service.login(agent)
    elif name == "logout":
        service.logout(agent)
    elif name == "pause":
        reasons = service.pause_reasons
        index = int(argument) - 1 if argument else 0
        if not 0 <= index < len(reasons):
            raise AcdError(f"no pause reason number {argument}")
        service.pause(agent, reasons[index])
    elif name == "wrap-up":
        if argument is None:
            service.wrap_up(agent, end=True)
        else:
            codes = service.last_wrap_up_codes(agent)
            index = int(argument) - 1
            if not 0 <= index < len(codes):
                raise AcdError(f"no wrap-up code number {argument}")
            service.wrap_up(agent, code=codes[index])
            return "wrap_up_code_saved"
        return "agent_unpaused"
    else:
        service.unpause(agent)
    return _CONFIRM[name]


async def _monitor(service: AcdService, call: Call, supervisor: str, agent: str) -> None:
    """A supervisor's phone dialled *26<agent>: join that agent's call until either ends."""
    script = service.control.script
    allowed = service.may_monitor is not None and await service.may_monitor(supervisor, agent)
    target = None
    if allowed and script is not None:
        target = next(
            (
                c
                for c in service.control.calls.values()
                if c.agent == agent and c.id in script.bridged
            ),
            None,
        )
    if not await call.caller_leg.answer():
        return
    call.answered_at = datetime.now(UTC)
    call.disposition = "answered"
    supervision = None
    if target is not None and script is not None:
        try:
            supervision = script.join_supervisor(
                target, supervisor, call.caller_leg, MonitorMode.LISTEN
            )
        except MonitorRefused as exc:
            log.info("%s dialled %s: %s", supervisor, call.did, exc)
    if supervision is None:
        if not allowed:
            log.info("%s dialled %s: may not monitor agent %s", supervisor, call.did, agent)
        with contextlib.suppress(ivr.CallerHungUp):
            await call.play([ivr.Prompt(_FAILED)])
        call.hangup_side = call.hangup_side or "system"
        call.caller_leg.hangup()
        return
    await call.caller_leg.ended  # the supervisor hangs up, or the agent's call ends
    call.hangup_side = call.hangup_side or ("caller" if supervision.state == "ended" else "system")
