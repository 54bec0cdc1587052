"""Each node of a flow as a task: made from its config by :func:`make_task`, run once per visit.

This is the jambonz shape: a verb is a small object with ``run(session)``,
built by one factory from typed configuration. A task returns the id of the
node to visit next, or None when the flow ends (the task then says how in
``context.outcome``).

A task is killed by cancelling the coroutine that runs it (the interpreter's
task); tasks start no tasks and arm no timers of their own, so a cancel or a
:class:`CallerHungUp` from the session leaves nothing behind. Timeouts for key
presses are the session's (``get_digit(timeout)``); the only timer here is the
HTTP dip's ``asyncio.timeout``, a context manager that goes with the await.
Between a key press and the next prompt there is no await but the next
``play``: the caller hears the answer to a key as soon as the media can say it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import aiohttp

from ._calendar import in_schedule
from ._schema import (
    CollectNode,
    ConditionNode,
    Flow,
    GotoNode,
    HangupNode,
    HttpNode,
    LanguageNode,
    MenuNode,
    Node,
    PlayNode,
    PromptEntry,
    QueueNode,
    SetNode,
    SurveyNode,
    TransferNode,
    When,
    template_fields,
)
from ._session import CallSession, PlayItem

__all__ = ["FlowContext", "NodeTask", "Outcome", "make_task", "render"]

log = logging.getLogger("ivr")

Outcome = Literal["hangup", "transferred", "queued", "failed", "caller_hung_up", "max_steps"]


@dataclass
class FlowContext:
    """What the tasks of one run share: the flow, the clock, the HTTP client, type-ahead."""

    flow: Flow
    now: Callable[[], datetime]
    http: aiohttp.ClientSession | None = None
    # A key that cut a barge-in play node short, answered by the next menu or collect.
    type_ahead: str | None = None
    outcome: Outcome | None = None
    digits: list[str] = field(default_factory=list)

    def take_type_ahead(self) -> str | None:
        digit, self.type_ahead = self.type_ahead, None
        return digit

    def record_digit(self, session: CallSession, digit: str) -> None:
        self.digits.append(digit)
        session.record_digit(digit)


def render(template: str, session: CallSession, *, url: bool = False) -> str:
    """Fill ``{name}`` fields from the call (caller, did, call_id, language) and its variables.

    An unset variable is empty text. With ``url`` every value is
    percent-quoted, so a caller's digits cannot change the path or query.
    """
    values = dict(session.variables)
    values.update(
        caller=session.caller, did=session.did, call_id=session.call_id, language=session.language
    )
    filled = {name: values.get(name, "") for name in template_fields(template)}
    if url:
        filled = {name: quote(value, safe="") for name, value in filled.items()}
    return template.format_map(filled)


def render_prompts(entries: Sequence[PromptEntry], session: CallSession) -> list[PlayItem]:
    items = (entry.render(lambda text: render(text, session)) for entry in entries)
    return [item for item in items if item is not None]


async def _say(session: CallSession, entries: Sequence[PromptEntry]) -> None:
    """Play prompts that cannot be interrupted, and drop keys pressed during them."""
    if entries:
        await session.play(render_prompts(entries, session))
        session.flush_digits()


class NodeTask(ABC):
    """One visit to one node; ``run`` returns the next node's id or None to end the flow."""

    def __init__(self, node: Any, context: FlowContext) -> None:
        self.node = node
        self.context = context

    @abstractmethod
    async def run(self, session: CallSession) -> str | None: ...

    async def _prompt_for_key(
        self, session: CallSession, prompt: Sequence[PromptEntry], barge_in: bool
    ) -> str | None:
        """A key answering ``prompt``: typed ahead, interrupting it, or pressed after it.

        Only the first digit; the caller's wait for it is ``self.node.timeout``.
        """
        digit = self.context.take_type_ahead()
        if digit is not None:
            return digit
        digit = await session.play(render_prompts(prompt, session), barge_in=barge_in)
        if digit is None:
            if not barge_in:
                session.flush_digits()
            digit = await session.get_digit(self.node.timeout)
        if digit is not None:
            self.context.record_digit(session, digit)
        return digit

    async def _give_up(self, session: CallSession, target: str | None) -> str | None:
        if target is None:
            self.context.outcome = "failed"
            await session.hangup()
        return target


class PlayTask(NodeTask):
    node: PlayNode

    async def run(self, session: CallSession) -> str | None:
        items = render_prompts(self.node.prompts, session)
        digit = await session.play(items, barge_in=self.node.barge_in)
        if not self.node.barge_in:
            session.flush_digits()
        elif digit is not None:
            self.context.record_digit(session, digit)
            self.context.type_ahead = digit
        return self.node.next


class MenuTask(NodeTask):
    node: MenuNode

    async def run(self, session: CallSession) -> str | None:
        node = self.node
        for _ in range(node.retries + 1):
            digit = await self._prompt_for_key(session, node.prompt, node.barge_in)
            if digit is None:
                await _say(session, node.no_input)
            elif digit in node.options:
                return node.options[digit]
            else:
                await _say(session, node.invalid)
        return await self._give_up(session, node.on_failure)


class CollectTask(NodeTask):
    node: CollectNode

    async def run(self, session: CallSession) -> str | None:
        node = self.node
        for _ in range(node.retries + 1):
            digits = await self._collect(session)
            if digits is None:
                await _say(session, node.no_input)
            elif len(digits) < node.min_digits or (
                node.pattern is not None and node.pattern.fullmatch(digits) is None
            ):
                await _say(session, node.invalid)
            else:
                session.variables[node.variable] = digits
                return node.next
        return await self._give_up(session, node.on_failure)

    async def _collect(self, session: CallSession) -> str | None:
        """The digits entered (without the terminator); None if no key at all."""
        node = self.node
        first = await self._prompt_for_key(session, node.prompt, node.barge_in)
        if first is None:
            return None
        if first == node.terminator:
            return ""
        digits = first
        while len(digits) < node.max_digits:
            digit = await session.get_digit(node.inter_digit_timeout)
            if digit is None:
                break
            self.context.record_digit(session, digit)
            if digit == node.terminator:
                break
            digits += digit
        return digits


class SurveyTask(NodeTask):
    node: SurveyNode

    async def run(self, session: CallSession) -> str | None:
        node = self.node
        for _ in range(node.retries + 1):
            digit = await self._prompt_for_key(session, node.prompt, barge_in=True)
            if digit is None:
                await _say(session, node.no_input)
            elif digit in ("1", "2", "3", "4", "5"):
                session.set_survey_score(int(digit))
                session.variables["survey_score"] = digit
                return node.next
            else:
                await _say(session, node.invalid)
        return node.next


class ConditionTask(NodeTask):
    node: ConditionNode

    async def run(self, session: CallSession) -> str | None:
        node = self.node
        now = self.context.now()
        if now.tzinfo is None:  # a naive clock is taken to be UTC
            now = now.replace(tzinfo=UTC)
        local = now.astimezone(node.timezone or self.context.flow.timezone)
        for case in node.cases:
            if self._holds(case.when, local, session):
                return case.next
        return node.default

    def _holds(self, when: When, local: datetime, session: CallSession) -> bool:
        holidays = self.context.flow.holidays
        if when.holiday is not None and local.date() not in holidays[when.holiday]:
            return False
        if when.not_holiday is not None and local.date() in holidays[when.not_holiday]:
            return False
        if (when.days is not None or when.time) and not in_schedule(local, when.days, when.time):
            return False
        return all(
            test.holds(session.variables.get(name, "")) for name, test in when.variables.items()
        )


class HttpTask(NodeTask):
    node: HttpNode

    async def run(self, session: CallSession) -> str | None:
        node = self.node
        url = render(node.url, session, url=True)
        try:
            async with asyncio.timeout(node.timeout):
                if self.context.http is not None:
                    data = await self._fetch(self.context.http, url, session)
                else:
                    async with aiohttp.ClientSession() as client:
                        data = await self._fetch(client, url, session)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # ValueError: a body that is not JSON, or a URL aiohttp cannot use.
            log.warning(
                "call %s: %s %s failed (%r); going to %s",
                session.call_id,
                node.method,
                url,
                exc,
                node.fallback,
            )
            return node.fallback
        for variable, path in node.result.items():
            value = _json_path(data, path)
            if value is not None:
                session.variables[variable] = value
        return node.next

    async def _fetch(self, client: aiohttp.ClientSession, url: str, session: CallSession) -> Any:
        node = self.node
        headers = {name: render(value, session) for name, value in node.headers.items()}
        body = None
        if node.body is not None:
            body = {key: render(value, session) for key, value in node.body.items()}
        async with client.request(node.method, url, headers=headers, json=body) as response:
            response.raise_for_status()
            return await response.json(content_type=None)


def _json_path(data: Any, path: str) -> str | None:
    """The text of the value at dotted ``path`` (list items by index); None if absent."""
    for part in path.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    if data is None:
        return None
    if isinstance(data, bool):
        return "true" if data else "false"
    if isinstance(data, str | int | float):
        return str(data)
    return json.dumps(data, separators=(",", ":"))


class SetTask(NodeTask):
    node: SetNode

    async def run(self, session: CallSession) -> str | None:
        # Rendered first, then set, so `{a: "{b}", b: "{a}"}` swaps rather than smears.
        values = {name: render(value, session) for name, value in self.node.variables.items()}
        session.variables.update(values)
        return self.node.next


class LanguageTask(NodeTask):
    node: LanguageNode

    async def run(self, session: CallSession) -> str | None:
        session.language = self.node.language
        return self.node.next


class QueueTask(NodeTask):
    node: QueueNode

    async def run(self, session: CallSession) -> str | None:
        node = self.node
        announcement = node.announcement
        if announcement is None:
            announcement = self.context.flow.announcements.queue_busy
        await _say(session, announcement)
        await session.enqueue(node.queue, node.priority, dict(node.skills))
        self.context.outcome = "queued"
        return node.next


class TransferTask(NodeTask):
    node: TransferNode

    async def run(self, session: CallSession) -> str | None:
        await session.transfer(render(self.node.target, session))
        self.context.outcome = "transferred"
        return None


class HangupTask(NodeTask):
    node: HangupNode

    async def run(self, session: CallSession) -> str | None:
        await _say(session, self.node.prompt)
        await session.hangup(self.node.cause)
        self.context.outcome = "hangup"
        return None


class GotoTask(NodeTask):
    node: GotoNode

    async def run(self, session: CallSession) -> str | None:
        return self.node.next


_TASKS: dict[type[Any], type[NodeTask]] = {
    PlayNode: PlayTask,
    MenuNode: MenuTask,
    CollectNode: CollectTask,
    ConditionNode: ConditionTask,
    HttpNode: HttpTask,
    SetNode: SetTask,
    LanguageNode: LanguageTask,
    QueueNode: QueueTask,
    TransferNode: TransferTask,
    HangupNode: HangupTask,
    SurveyNode: SurveyTask,
    GotoNode: GotoTask,
}


def make_task(node: Node, context: FlowContext) -> NodeTask:
    """The task for one visit to ``node``: the one factory from node config to action."""
    return _TASKS[type(node)](node, context)
