"""Run a flow against one call: visit nodes from ``start`` until one ends the flow.

Call control starts :func:`run_flow` as the call's IVR task. To end it early
(the caller hung up, an operator pulled the call) it cancels that task, or the
session raises :class:`CallerHungUp` from its next method; either way no task
or timer of the flow is left behind, because node tasks run inline in this
coroutine (see ``ivr._tasks``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp

from ._schema import Flow
from ._session import CallerHungUp, CallSession
from ._tasks import FlowContext, Outcome, make_task, render_prompts

__all__ = ["FlowResult", "run_flow"]

log = logging.getLogger("ivr")


@dataclass(frozen=True, slots=True)
class FlowResult:
    """How a run ended, and the path it took.

    ``outcome``:

    * ``hangup``: a hangup node ended the call;
    * ``transferred``: a transfer node handed the call on;
    * ``queued``: a queue node's ``enqueue`` returned and the flow had nowhere
      further to go;
    * ``failed``: a menu or collect ran out of tries with no ``on_failure``
      (the interpreter hung up);
    * ``caller_hung_up``: the session raised CallerHungUp;
    * ``max_steps``: the flow visited ``max_steps`` nodes, so the interpreter
      hung up rather than loop for ever.

    ``path`` holds every node visited and ``digits`` every key the flow
    consumed, in order; the same went to ``record_node``/``record_digit``.
    """

    outcome: Outcome
    last_node: str | None
    path: tuple[str, ...]
    digits: tuple[str, ...]


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def run_flow(
    flow: Flow,
    session: CallSession,
    *,
    http: aiohttp.ClientSession | None = None,
    now: Callable[[], datetime] = _utc_now,
) -> FlowResult:
    """Run ``flow`` for ``session`` until a node ends it; see :class:`FlowResult`.

    When ``session.recording`` is true the flow's recording notice is played
    first. ``http`` is the shared client for data dips (None: each dip opens
    and closes its own). ``now`` is the clock for condition nodes; an aware
    datetime, or naive UTC.
    """
    context = FlowContext(flow=flow, now=now, http=http)
    path: list[str] = []
    node_id: str | None = flow.start
    try:
        if session.recording and flow.announcements.recording:
            await session.play(render_prompts(flow.announcements.recording, session))
            session.flush_digits()
        while node_id is not None:
            if len(path) >= flow.max_steps:
                log.warning(
                    "call %s: flow %s visited %d nodes without ending; hanging up at %s",
                    session.call_id,
                    flow.name,
                    len(path),
                    node_id,
                )
                context.outcome = "max_steps"
                await session.hangup()
                break
            path.append(node_id)
            session.record_node(node_id)
            node_id = await make_task(flow.nodes[node_id], context).run(session)
    except CallerHungUp:
        context.outcome = "caller_hung_up"
    outcome: Outcome = context.outcome or "failed"
    return FlowResult(
        outcome=outcome,
        last_node=path[-1] if path else None,
        path=tuple(path),
        digits=tuple(context.digits),
    )
