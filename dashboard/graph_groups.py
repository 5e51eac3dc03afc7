"""A large graph seen as groups: one node per collapsed group, expanded on demand.

Group names form a hierarchy when they contain `/` or `.`: "marts/finance/core" is inside
"marts/finance", inside "marts". A collapsed group stands for every shown task under it;
expanding it shows its subgroups (collapsed) and its own tasks. Edges between groups stand
for the task edges between their members. Pure logic over networkx, like `graph`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import networkx as nx

from .graph import TaskGraph

#: Shown tasks above which the graph opens on its groups.
GROUPS_ABOVE = 150
#: A group node's id: this mark and the group's path (no task name starts with it in practice).
GROUP_MARK = "⊞ "
_SPLIT = re.compile(r"[/.]")
#: A URI's scheme and authority ("airflow://prod.example.com:8080", an OpenLineage namespace): one level.
_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/]*")


def group_path(group: str | None) -> list[str]:
    """'marts/finance/core' -> ['marts', 'marts/finance', 'marts/finance/core'] (None: []). A URI's
    scheme and authority are one level: 'airflow://prod.example.com/etl' -> ['airflow://prod.example.com',
    'airflow://prod.example.com/etl']."""
    if not group:
        return []
    authority = _AUTHORITY.match(group)
    start = authority.end() if authority else 0
    levels, previous = [], 0
    for end in [m.start() for m in _SPLIT.finditer(group, start)] + [len(group)]:
        if end > previous:
            levels.append(group[:end])
        previous = end + 1
    return levels or [group]


def top_group(group: str | None) -> str:
    """The top level of a group's hierarchy ('' for no group)."""
    path = group_path(group)
    return path[0] if path else ""


def is_group_node(node: str) -> bool:
    return node.startswith(GROUP_MARK)


@dataclass
class Overview:
    """The graph as shown: tasks and collapsed groups, laid out as one graph."""

    task_graph: TaskGraph  # of shown nodes (tasks, and groups as GROUP_MARK + path)
    members: dict[str, list[str]] = field(default_factory=dict)  # group node -> its shown tasks
    node_of: dict[str, str] = field(default_factory=dict)  # shown task -> the node that shows it

    @property
    def collapsed(self) -> bool:
        return bool(self.members)


def overview(task_graph: TaskGraph, shown: set[str], expanded: set[str] | None) -> Overview:
    """The shown tasks, each inside its outermost group that is not expanded (None: all tasks)."""
    graph = task_graph.graph
    if expanded is None:
        if shown == set(graph):
            part = task_graph
        else:
            part = TaskGraph(graph.subgraph(shown).copy(), [],
                             [e for e in task_graph.cycle_edges if e[0] in shown and e[1] in shown])
        return Overview(part, {}, {task: task for task in shown})
    node_of, members = {}, {}
    for task in shown:
        level = next((g for g in group_path(graph.nodes[task].get("group")) if g not in expanded), None)
        node_of[task] = task if level is None else GROUP_MARK + level
        if level is not None:
            members.setdefault(node_of[task], []).append(task)
    # Order nodes by their first member in a topological order of the tasks: an edge against
    # it closes a cycle between groups and stays out of the layering.
    dag = graph.subgraph(shown).copy()
    dag.remove_edges_from(task_graph.cycle_edges)
    rank = {}
    for i, task in enumerate(nx.topological_sort(dag)):
        rank.setdefault(node_of[task], i)
    view = nx.DiGraph()
    for node in sorted(set(node_of.values())):
        first = members[node][0] if node in members else node
        view.add_node(node, group=graph.nodes[first].get("group") if node not in members else node[len(GROUP_MARK):],
                      defined=graph.nodes[node].get("defined", True) if node not in members else True)
    for a, b in dag.edges:
        if node_of[a] != node_of[b]:
            view.add_edge(node_of[a], node_of[b])
    for a, b in task_graph.cycle_edges:
        if a in node_of and b in node_of and node_of[a] != node_of[b]:
            view.add_edge(node_of[a], node_of[b])
    cycle_edges = [(a, b) for a, b in view.edges if rank[a] >= rank[b]]
    for node in members:
        members[node].sort()
    return Overview(TaskGraph(view, [], cycle_edges), members, node_of)

