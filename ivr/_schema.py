"""The IVR flow file schema: one frozen pydantic model per node type.

A flow file (``config/ivr/<name>.yaml``) names a ``start`` node and a mapping
of ``nodes``, each with a ``type``. Every model forbids unknown keys, so a
misspelt key is an error rather than a silently ignored setting. Text that
is filled in per call (``{caller}``, ``{did}``, ``{account}``) is a
template, checked here for well-formed ``{name}`` fields; references between
nodes are checked by :func:`check_flow` once each node is valid.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    ValidationInfo,
    model_validator,
)

from ._calendar import (
    HolidayCalendar,
    TimeWindow,
    parse_days,
    parse_holidays,
    parse_time_window,
    parse_zone,
)
from ._session import Digits, Number, PlayItem, Prompt, Silence, Text, Wav

__all__ = [
    "Flow",
    "Node",
    "PromptEntry",
    "check_flow",
]

Loc = tuple[str | int, ...]


class _Model(BaseModel):
    # coerce_numbers_to_str: YAML reads `1: sales` or `number: 42` as ints.
    model_config = ConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)


def _pattern(regex: str, description: str) -> AfterValidator:
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not valid here: use {description}")
        return value

    return AfterValidator(check)


NodeId = Annotated[str, _pattern(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}", "letters, digits, _ -")]
Name = Annotated[str, _pattern(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", "letters, digits, _ . -")]
VarName = Annotated[str, _pattern(r"[A-Za-z_][A-Za-z0-9_]{0,63}", "a variable name")]
PromptName = Annotated[
    str, _pattern(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*", "a prompt name: letters, digits, _ - /")
]
Dtmf = Annotated[str, _pattern(r"[0-9*#A-D]", "one key: 0-9, *, # or A-D")]
Seconds = Annotated[float, Field(gt=0, le=600)]
Retries = Annotated[int, Field(ge=0, le=10)]
Language = Annotated[str, _pattern(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*", "a tag such as en-GB")]

_FORMATTER = string.Formatter()


def template_fields(text: str) -> list[str]:
    """The ``{name}`` fields of a template; ValueError if it is malformed."""
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:
        raise ValueError(f"bad template {text!r}: {exc} (write {{{{ for a literal brace)") from None
    names = []
    for _, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field_name) or spec or conversion:
            raise ValueError(
                f"bad template field {{{field_name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}} in {text!r}: use {{variable}}"
            )
        names.append(field_name)
    return names


def _check_template(text: str) -> str:
    template_fields(text)
    return text


Template = Annotated[str, AfterValidator(_check_template)]


def _check_url(text: str) -> str:
    # Fields are URL-quoted when rendered, so only the fixed part is checked.
    if not re.match(r"https?://[^/{}\s]+", text):
        raise ValueError(f"{text!r}: the URL must start with http:// or https:// and a host")
    return text


def _check_regex(value: object) -> re.Pattern[str]:
    if isinstance(value, re.Pattern):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a regular expression as text")
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"bad regular expression {value!r}: {exc}") from None


Regex = Annotated[re.Pattern[str], PlainValidator(_check_regex)]


def _check_transfer_target(text: str) -> str:
    if "{" in text or re.fullmatch(r"\+?[0-9A-Za-z*#]{1,64}", text):
        return text
    if re.fullmatch(r"sips?:[^\s@]+(@[^\s]+)?", text):
        return text
    raise ValueError(f"{text!r} is neither an extension nor a sip: URI")


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    value = value.expanduser()
    if base is not None and not value.is_absolute():
        value = Path(base) / value
    if not value.is_file():
        raise ValueError(f"file not found: {value}")
    return value


# --------------------------------------------------------------------------
# What the caller hears


_PROMPT_KINDS = ("prompt", "text", "number", "digits", "silence", "wav")


class PromptEntry(_Model):
    """One thing to play. In a file: a bare prompt name, or a mapping with one kind.

    ``{text: "..."}`` (with an optional ``voice``) is synthesised;
    ``{number: "{position}"}`` is spoken as a quantity, ``{digits: "{account}"}``
    digit by digit; ``{silence: 500}`` pauses (ms); ``{wav: file}`` plays a file
    (relative to the flow file).
    """

    prompt: PromptName | None = None
    text: Template | None = None
    voice: Annotated[str, Field(min_length=1)] | None = None
    number: Template | None = None
    digits: Template | None = None
    silence: Annotated[int, Field(ge=1, le=60_000)] | None = None
    wav: Annotated[Path, AfterValidator(_resolve_path)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, data: Any) -> Any:
        return {"prompt": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_kind(self) -> PromptEntry:
        kinds = [kind for kind in _PROMPT_KINDS if getattr(self, kind) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) or "none"
            raise ValueError(f"give exactly one of {', '.join(_PROMPT_KINDS)} (found {found})")
        if self.voice is not None and self.text is None:
            raise ValueError("voice goes only with text")
        return self

    def render(self, fill: Any) -> PlayItem | None:
        """The item to play, with templates filled by ``fill(template) -> str``.

        None when a number template does not render to an integer (the
        variable was never set, say): the caller hears the rest of the prompt.
        """
        if self.prompt is not None:
            return Prompt(self.prompt)
        if self.text is not None:
            return Text(fill(self.text), self.voice)
        if self.number is not None:
            try:
                return Number(int(fill(self.number).strip()))
            except ValueError:
                return None
        if self.digits is not None:
            digits = fill(self.digits)
            return Digits(digits) if digits else None
        if self.silence is not None:
            return Silence(self.silence)
        assert self.wav is not None
        return Wav(self.wav)


def _one_or_many(value: object) -> object:
    """Let an operator write `prompt: welcome` for a one-prompt list."""
    return [value] if isinstance(value, str | dict) else value


def _non_empty(values: tuple[Any, ...]) -> tuple[Any, ...]:
    # Not Field(min_length=1): pydantic reports that too when an item is
    # invalid, which would add a false "no items" line to a real error.
    if not values:
        raise ValueError("give at least one")
    return values


Prompts = Annotated[tuple[PromptEntry, ...], BeforeValidator(_one_or_many)]
SomePrompts = Annotated[Prompts, AfterValidator(_non_empty)]


# --------------------------------------------------------------------------
# Nodes


class _Node(_Model):
    """Common to all nodes: how they link to others."""

    # True for nodes that wait for the caller (or the ACD), which is what
    # makes a cycle through them harmless; see ivr._analysis.
    waits: ClassVar[bool] = False

    description: str | None = None

    def targets(self) -> Iterator[tuple[Loc, str]]:
        """Each node this one can lead to, with the key path that names it."""
        for key in ("next", "on_failure", "fallback", "default"):
            target = getattr(self, key, None)
            if isinstance(target, str):
                yield (key,), target


class PlayNode(_Node):
    """Play prompts, then go on; with barge_in a key press cuts them short.

    A digit that interrupts is kept for the next menu or collect (type-ahead);
    without barge_in, keys pressed during the prompts are dropped.
    """

    type: Literal["play"]
    prompts: SomePrompts
    barge_in: bool = False
    next: NodeId


class MenuNode(_Node):
    """Offer choices: one key leads to one node.

    The menu is tried ``1 + retries`` times; after a wrong key the caller
    hears ``invalid``, after ``timeout`` seconds of silence ``no_input``,
    then the menu again. When all tries fail the flow goes to ``on_failure``
    (none: the flow hangs up).
    """

    waits: ClassVar[bool] = True

    type: Literal["menu"]
    prompt: SomePrompts
    options: dict[Dtmf, NodeId] = Field(min_length=1)
    timeout: Seconds = 5
    retries: Retries = 2
    invalid: Prompts = ()
    no_input: Prompts = ()
    on_failure: NodeId | None = None
    barge_in: bool = True

    def targets(self) -> Iterator[tuple[Loc, str]]:
        for digit, target in self.options.items():
            yield ("options", digit), target
        yield from super().targets()


class CollectNode(_Node):
    """Collect digits into ``variable``.

    Collection ends at the ``terminator`` (default #; null for none), at
    ``max_digits``, or after ``inter_digit_timeout`` seconds without a key
    (``timeout`` for the first key). The digits must number at least
    ``min_digits`` and, with a ``pattern``, match it whole; otherwise the
    caller hears ``invalid`` and tries again, ``retries`` more times.
    """

    waits: ClassVar[bool] = True

    type: Literal["collect"]
    prompt: SomePrompts
    variable: VarName
    min_digits: Annotated[int, Field(ge=1, le=64)] = 1
    max_digits: Annotated[int, Field(ge=1, le=64)] = 20
    terminator: Dtmf | None = "#"
    timeout: Seconds = 5
    inter_digit_timeout: Seconds = 3
    pattern: Regex | None = None
    retries: Retries = 2
    invalid: Prompts = ()
    no_input: Prompts = ()
    barge_in: bool = True
    next: NodeId
    on_failure: NodeId | None = None

    @model_validator(mode="after")
    def _digits_in_order(self) -> CollectNode:
        if self.min_digits > self.max_digits:
            raise ValueError(
                f"min_digits ({self.min_digits}) is more than max_digits ({self.max_digits})"
            )
        return self


class VariableTest(_Model):
    """Tests on one variable, all of which must hold; an unset variable is empty text."""

    equals: str | None = None
    not_equals: str | None = None
    one_of: tuple[str, ...] | None = None
    matches: Regex | None = None
    empty: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_value(cls, data: Any) -> Any:
        return {"equals": data} if isinstance(data, str | int | float) else data

    def holds(self, value: str) -> bool:
        return (
            (self.equals is None or value == self.equals)
            and (self.not_equals is None or value != self.not_equals)
            and (self.one_of is None or value in self.one_of)
            and (self.matches is None or self.matches.fullmatch(value) is not None)
            and (self.empty is None or (value == "") == self.empty)
        )


class When(_Model):
    """What a case requires; every key given must hold (an empty ``when`` always holds).

    ``days`` and ``time`` are in the node's (else the flow's) time zone; a
    time window ending at or before its start runs past midnight and belongs
    to the day it starts on. ``holiday`` / ``not_holiday`` name a calendar in
    the flow's ``holidays``.
    """

    days: Annotated[frozenset[int], PlainValidator(parse_days)] | None = None
    time: Annotated[
        tuple[Annotated[TimeWindow, PlainValidator(parse_time_window)], ...],
        BeforeValidator(_one_or_many),
    ] = ()
    holiday: Name | None = None
    not_holiday: Name | None = None
    variables: dict[VarName, VariableTest] = Field(default_factory=dict)


class Case(_Model):
    """One branch of a condition: go to ``next`` when ``when`` holds."""

    when: When
    next: NodeId


Zone = Annotated[ZoneInfo, PlainValidator(parse_zone)]


class ConditionNode(_Node):
    """Go to the ``next`` of the first case that holds, else to ``default``."""

    type: Literal["condition"]
    cases: Annotated[tuple[Case, ...], AfterValidator(_non_empty)]
    default: NodeId
    timezone: Zone | None = None

    def targets(self) -> Iterator[tuple[Loc, str]]:
        for index, case in enumerate(self.cases):
            yield ("cases", index, "next"), case.next
        yield from super().targets()


class HttpNode(_Node):
    """A data dip: request ``url``, copy JSON fields of the answer into variables.

    Template fields in the URL are URL-quoted. ``result`` maps a variable to
    a dotted path in the JSON answer (``customer.name``, ``items.0.id``). Any
    failure (unreachable, ``timeout`` seconds, a status other than 2xx, a body
    that is not JSON) goes to ``fallback`` and sets no variable.
    """

    type: Literal["http"]
    method: Literal["GET", "POST"] = "GET"
    url: Annotated[Template, AfterValidator(_check_url)]
    headers: dict[Annotated[str, Field(min_length=1)], Template] = Field(default_factory=dict)
    body: dict[str, Template] | None = None
    timeout: Annotated[float, Field(gt=0, le=30)] = 3
    result: dict[VarName, Annotated[str, Field(min_length=1)]] = Field(default_factory=dict)
    next: NodeId
    fallback: NodeId

    @model_validator(mode="after")
    def _body_needs_post(self) -> HttpNode:
        if self.body is not None and self.method != "POST":
            raise ValueError("a body is sent only with method: POST")
        return self


class SetNode(_Node):
    """Set variables from templates, e.g. ``{greeting: "Hello {name}"}``."""

    type: Literal["set"]
    variables: dict[VarName, Template] = Field(min_length=1)
    next: NodeId


class LanguageNode(_Node):
    """Switch the language of prompts and speech for the rest of the call."""

    type: Literal["language"]
    language: Language
    next: NodeId


class QueueNode(_Node):
    """Put the call in a queue with a priority and required skills (minimum levels).

    First the caller hears ``announcement`` (default: the flow's
    ``announcements.queue_busy``; ``[]`` for none). When the call is done
    with the queue the flow goes to ``next``, or ends.
    """

    waits: ClassVar[bool] = True

    type: Literal["queue"]
    queue: Name
    priority: Annotated[int, Field(ge=0, le=100)] = 0
    skills: dict[Name, Annotated[int, Field(ge=1, le=10)]] = Field(default_factory=dict)
    announcement: Prompts | None = None
    next: NodeId | None = None


class TransferNode(_Node):
    """Transfer the call to an extension or a SIP URI (a template); the flow ends."""

    type: Literal["transfer"]
    target: Annotated[Template, AfterValidator(_check_transfer_target)]


class HangupNode(_Node):
    """Play ``prompt`` (if any, without barge-in) and hang up; the flow ends."""

    type: Literal["hangup"]
    prompt: Prompts = ()
    cause: Annotated[int, Field(ge=1, le=127)] | None = None


class SurveyNode(_Node):
    """Ask for a rating and store a key of 1 to 5 as the call's survey score.

    The score is also set as variable ``survey_score``. Without a valid key
    after all tries the flow goes on to ``next`` with no score.
    """

    waits: ClassVar[bool] = True

    type: Literal["survey"]
    prompt: SomePrompts
    timeout: Seconds = 5
    retries: Retries = 1
    invalid: Prompts = ()
    no_input: Prompts = ()
    next: NodeId


class GotoNode(_Node):
    """Jump to another node (a shared sub-menu, the top of a loop)."""

    type: Literal["goto"]
    next: NodeId


Node = Annotated[
    PlayNode
    | MenuNode
    | CollectNode
    | ConditionNode
    | HttpNode
    | SetNode
    | LanguageNode
    | QueueNode
    | TransferNode
    | HangupNode
    | SurveyNode
    | GotoNode,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------
# The flow


class Announcements(_Model):
    """Fixed announcements; ``[]`` turns one off for this flow."""

    recording: Prompts = (PromptEntry(prompt="recording_notice"),)
    queue_busy: Prompts = (PromptEntry(prompt="all_agents_busy"),)


class Flow(_Model):
    """One IVR flow file, loaded by :func:`ivr.load_flows`.

    ``name`` (default: the file name without ``.yaml``) is what a route's
    ``ivr:`` names. ``post_call_survey`` names the flow call control runs
    when an answered call ends and the caller is still there.
    """

    name: Name | None = None
    description: str | None = None
    start: NodeId
    timezone: Zone = Field(default_factory=lambda: parse_zone("UTC"))
    announcements: Announcements = Field(default_factory=Announcements)
    holidays: dict[Name, Annotated[HolidayCalendar, PlainValidator(parse_holidays)]] = Field(
        default_factory=dict
    )
    max_steps: Annotated[int, Field(ge=1, le=10_000)] = 200
    post_call_survey: Name | None = None
    nodes: dict[NodeId, Node] = Field(min_length=1)
    # Set by the loader: key path -> "file:line: key", for findings made after loading.
    _where: Callable[[Loc], str] | None = PrivateAttr(default=None)

    def where(self, loc: Loc) -> str:
        """``file:line: key`` for a key path of this flow (just the key if not from a file)."""
        if self._where is not None:
            return self._where(loc)
        return ".".join(str(part) for part in loc)


def check_flow(flow: Flow, flow_names: frozenset[str] | None = None) -> list[tuple[Loc, str]]:
    """References the schema alone cannot check: targets, calendars, other flows."""
    problems: list[tuple[Loc, str]] = []
    known = ", ".join(sorted(flow.nodes))
    if flow.start not in flow.nodes:
        problems.append((("start",), f"no node {flow.start!r} (nodes: {known})"))
    for node_id, node in flow.nodes.items():
        for loc, target in node.targets():
            if target not in flow.nodes:
                problems.append((("nodes", node_id, *loc), f"no node {target!r} (nodes: {known})"))
        if isinstance(node, ConditionNode):
            for index, case in enumerate(node.cases):
                for key in ("holiday", "not_holiday"):
                    calendar = getattr(case.when, key)
                    if calendar is not None and calendar not in flow.holidays:
                        defined = ", ".join(sorted(flow.holidays)) or "none defined"
                        problems.append(
                            (
                                ("nodes", node_id, "cases", index, "when", key),
                                f"no holiday calendar {calendar!r} (holidays: {defined})",
                            )
                        )
    if (
        flow_names is not None
        and flow.post_call_survey is not None
        and flow.post_call_survey not in flow_names
    ):
        defined = ", ".join(sorted(flow_names))
        problems.append(
            (("post_call_survey",), f"no flow {flow.post_call_survey!r} (flows: {defined})")
        )
    return problems
