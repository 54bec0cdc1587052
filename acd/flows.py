"""The IVR flows a configuration uses, loaded and checked as one with it.

``acd check-config`` and ``acd serve`` both go through :func:`load_flows_for`,
so a flow that would fail at call time fails at start instead: every file
in ``ivr_dir`` must load, no flow may hold a loop that waits for no input,
every queue a flow names must exist, and every route's ``ivr:`` must name a
loaded flow. Unreachable nodes are warnings: worth a look, not a refusal.
"""

from __future__ import annotations

from collections.abc import Mapping

import ivr

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
