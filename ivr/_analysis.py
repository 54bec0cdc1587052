"""Static analysis of a loaded flow: what ``acd check-config`` reports beyond the schema.

Two findings:

* **unreachable nodes**: no path from ``start`` leads to them (a warning: the
  flow works, but someone meant something by them);
* **loops that wait for no input**: a cycle of nodes none of which waits for
  the caller or the ACD, such as ``play -> goto -> play``, or ``http`` falling
  back to itself. Such a flow spins until the step guard hangs up (an error).
  A cycle through a menu, collect, survey or queue node is fine: each turn
  waits for a key press or for the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._schema import Flow

__all__ = ["FlowIssue", "analyse"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class FlowIssue:
    """A finding about one flow; ``str()`` is ``file:line: key: severity: message``."""

    flow: str
    node: str
    severity: Severity
    message: str
    where: str

    def __str__(self) -> str:
        return f"{self.where}: {self.severity}: {self.message}"


def analyse(flow: Flow) -> list[FlowIssue]:
    """Unreachable nodes and input-less loops in ``flow``, in file order.

    ``flow`` must have passed :func:`ivr.load_flows` (every target exists).
    """
    edges = {
        node_id: [target for _, target in node.targets()] for node_id, node in flow.nodes.items()
    }
    issues: list[FlowIssue] = []
    name = flow.name or ""

    reachable = _reachable(edges, flow.start)
    for node_id in flow.nodes:
        if node_id not in reachable:
            issues.append(
                FlowIssue(
                    name,
                    node_id,
                    "warning",
                    f"unreachable: no path from start node {flow.start!r} leads here",
                    flow.where(("nodes", node_id)),
                )
            )

    # Only nodes that never wait can make a loop spin, so the search runs on
    # the graph of those nodes alone.
    busy = {node_id for node_id, node in flow.nodes.items() if not node.waits}
    busy_edges = {n: [t for t in edges[n] if t in busy] for n in busy}
    order = {node_id: index for index, node_id in enumerate(flow.nodes)}
    for component in _strongly_connected(busy_edges):
        first = min(component, key=order.__getitem__)
        if len(component) == 1 and first not in busy_edges[first]:
            continue
        cycle = _cycle_from(first, busy_edges, component)
        path = " -> ".join([*cycle, first])
        issues.append(
            FlowIssue(
                name,
                first,
                "error",
                f"loop waits for no input: {path} (add a menu or collect to the loop)",
                flow.where(("nodes", first)),
            )
        )
    issues.sort(key=lambda issue: order[issue.node])
    return issues


def _reachable(edges: dict[str, list[str]], start: str) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for target in edges.get(stack.pop(), ()):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _strongly_connected(edges: dict[str, list[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative so that a long chain of nodes cannot overflow the stack."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(edges[target])))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: set[str] = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def _cycle_from(first: str, edges: dict[str, list[str]], component: set[str]) -> list[str]:
    """One simple cycle through ``first`` inside ``component``, for the message."""
    parents: dict[str, str] = {}
    queue = [first]
    while queue:
        node = queue.pop(0)
        for target in edges[node]:
            if target == first:
                path = [node]
                while path[-1] != first:
                    path.append(parents[path[-1]])
                return path[::-1]
            if target in component and target not in parents:
                parents[target] = node
                queue.append(target)
    return [first]
