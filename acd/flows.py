"""The IVR flows a configuration uses, loaded and checked as one with it.

``acd check-config`` and ``acd serve`` both go through :func:`load_flows_for`,
so a flow that would fail at call time fails at start instead: every file
in ``ivr_dir`` must load, no flow may hold a loop that waits for no input,
every queue a flow names must exist, every route's ``ivr:`` must name a
loaded flow, and every prompt a flow plays must be in the prompt library
(``prompts.dir``, as ``acd prompts build`` writes it). Unreachable nodes are
warnings: worth a look, not a refusal; so is a configuration with no prompt
library built at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from pydantic import BaseModel

import ivr
from media import PROMPT_MANIFEST, PromptLibrary

from .config import Config, ConfigError

__all__ = ["FlowCheck", "flow_problems", "load_flows_for"]


class FlowCheck:
    """The flows of a configuration and the warnings found while checking them."""

    def __init__(self, flows: dict[str, ivr.Flow], warnings: list[str]) -> None:
        self.flows = flows
        self.warnings = warnings


def load_flows_for(config: Config) -> FlowCheck:
    """Load and check ``config.ivr_dir``; raises ConfigError with every problem found."""
    flows: dict[str, ivr.Flow] = {}
    if config.ivr_dir.is_dir():
        flows = ivr.load_flows(config.ivr_dir)  # FlowError is a ConfigError
    problems: list[str] = []
    warnings: list[str] = []
    for flow in flows.values():
        for issue in ivr.analyse(flow):
            (problems if issue.severity == "error" else warnings).append(str(issue))
        survey = flow.post_call_survey
        if survey is not None and survey not in flows:
            problems.append(f"{flow.where(('post_call_survey',))}: no flow named {survey!r}")
    problems += flow_problems(config, flows)
    problems += _prompt_problems(config.prompts.dir, flows, warnings)
    if problems:
        raise ConfigError(problems)
    return FlowCheck(flows, warnings)


def flow_problems(config: Config, flows: Mapping[str, ivr.Flow]) -> list[str]:
    """What in ``config`` does not fit ``flows``: a queue a flow names, a route's flow."""
    problems = list(ivr.check_queues(flows, config.queues))
    for route in config.routes:
        if route.ivr is not None and route.ivr not in flows:
            known = ", ".join(sorted(flows)) or f"none in {config.ivr_dir}"
            problems.append(
                f"route {route.match!r}: unknown IVR flow {route.ivr!r} (flows: {known})"
            )
    return problems


def _prompt_problems(
    directory: Path, flows: Mapping[str, ivr.Flow], warnings: list[str]
) -> list[str]:
    """A prompt a flow plays that the library does not hold (it would fail the call)."""
    used = [(flow, loc, name) for flow in flows.values() for loc, name in _prompts_of(flow, ())]
    if not used:
        return []
    if not (directory / PROMPT_MANIFEST).is_file():
        warnings.append(
            f"{directory}: no prompt library built (no {PROMPT_MANIFEST}): the flows' "
            "prompts will not play; run `acd prompts build`"
        )
        return []
    try:
        library = PromptLibrary.from_directory(directory)
    except ValueError as exc:
        return [str(exc)]
    return [
        f"{flow.where(loc)}: no prompt named {name!r} in {directory} "
        f"({len(library)} prompts; add its text under prompts.texts and run `acd prompts build`)"
        for flow, loc, name in used
        if name not in library
    ]


def _prompts_of(
    value: object, loc: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every prompt name in a flow (or part of one), with its key path."""
    if isinstance(value, ivr.PromptEntry):
        if value.prompt is not None:
            yield loc, value.prompt
        return
    if isinstance(value, BaseModel):
        for field in type(value).model_fields:
            yield from _prompts_of(getattr(value, field), (*loc, field))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _prompts_of(item, (*loc, str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _prompts_of(item, (*loc, index))
