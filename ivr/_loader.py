"""Read the flow files of a directory, reporting every problem with file, line and key.

Each ``*.yaml`` file in the directory is one flow, named after the file. Files
are read by the same machinery as the engine's own configuration
(``acd.config``), so the errors look the same: ``main.yaml:12:
nodes.menu.options.2: no node 'suport' (nodes: ...)``. All problems of all
files are reported together.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from acd.config._loader import ConfigError, load_yaml_document

from ._schema import Flow, QueueNode, check_flow

__all__ = ["FlowError", "check_queues", "load_flow", "load_flows"]


class FlowError(ConfigError):
    """Flow files cannot be used; ``str()`` is one ``file:line: key: problem`` per line."""


def load_flow(path: str | Path, flow_names: Collection[str] | None = None) -> Flow:
    """Load and check one flow file; ``flow_names`` are the flows it may refer to."""
    path = Path(path)
    names = frozenset(flow_names) if flow_names is not None else None

    def check(flow: Flow) -> list[tuple[tuple[str | int, ...], str]]:
        problems = check_flow(flow, names)
        if flow.name is not None and flow.name != path.stem:
            problems.append(
                (("name",), f"is {flow.name!r} but the file is {path.name}; they must agree")
            )
        return problems

    try:
        document = load_yaml_document(path, Flow, check=check)
    except ConfigError as exc:
        raise FlowError(exc.problems) from None
    flow = document.model
    if flow.name is None:
        # The model is frozen; the name comes from the file, so it is set once here.
        flow = flow.model_copy(update={"name": path.stem})
    flow._where = document.where
    return flow


def load_flows(directory: str | Path) -> dict[str, Flow]:
    """Every ``*.yaml`` flow in ``directory`` by name; FlowError lists all problems.

    A missing directory is an error: a route naming an IVR needs its flow.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FlowError([f"{directory}: not a directory of IVR flow files"])
    paths = sorted(directory.glob("*.yaml"))
    names = frozenset(path.stem for path in paths)
    flows: dict[str, Flow] = {}
    problems: list[str] = []
    for path in paths:
        try:
            flows[path.stem] = load_flow(path, names)
        except FlowError as exc:
            problems.extend(exc.problems)
    if problems:
        raise FlowError(problems)
    return flows


def check_queues(flows: Mapping[str, Flow], queues: Collection[str]) -> list[str]:
    """``file:line: key: problem`` for each queue node naming a queue not in ``queues``.

    For ``acd check-config``, which knows the engine's queues.
    """
    problems = []
    defined = ", ".join(sorted(queues)) or "none defined"
    for flow in flows.values():
        for node_id, node in flow.nodes.items():
            if isinstance(node, QueueNode) and node.queue not in queues:
                where = flow.where(("nodes", node_id, "queue"))
                problems.append(f"{where}: unknown queue {node.queue!r} (queues: {defined})")
    return problems
