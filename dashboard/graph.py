"""The task dependency graph: its layout, and what it says about a cycle of runs.

Pure logic over networkx (no Panel, no DuckDB), so the page and the tests share it:

- `dependency_graph` builds the DAG from task definitions and names what is wrong with
  them (unknown upstreams, cycles) instead of failing;
- `layered_layout` places upstream left of downstream, one column per layer;
- `blocked_tasks`, `root_causes` and `critical_path` find what holds a cycle up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import networkx as nx

from .statuses import COLORS, NOT_STARTED, UNDER_WAY, UNSUCCESSFUL

NO_RUNS_COLOR = "#e5e7eb"
#: Cycles named above the graph; more are counted (1,500 listed made a wall of text).
LISTED_CYCLES = 10
#: An upstream in one of these holds its downstream waiting ("waiting on" names it).
HOLDING = UNDER_WAY + UNSUCCESSFUL
#: An upstream in one of these is itself only waiting or queued: look past it to what holds it.
PASSING = NOT_STARTED


@dataclass
class TaskGraph:
    """The dependency DAG and the problems found in the definitions."""

    graph: nx.DiGraph
    problems: list[str] = field(default_factory=list)
    #: edges left out of the drawing's layering because they close a cycle
    cycle_edges: list[tuple[str, str]] = field(default_factory=list)
    #: the tasks with runs but no definition, the most recently run first (not all of them if many),
    #: and how many there are; drawn without dependencies when no task is defined, else only named
    undefined_with_runs: list[str] = field(default_factory=list)
    undefined_total: int = 0


def dependency_graph(tasks: Iterable[tuple[str, str | None, Iterable[str]]],
                     seen: Iterable[tuple[str, str | None]] = (), seen_total: int | None = None) -> TaskGraph:
    """A graph with an edge upstream → downstream for (task, group, depends_on) rows; `seen`: the
    (task, group) of tasks with runs but no definition (of `seen_total`), drawn as nodes without
    dependencies when no task is defined (a spool written by a tool that defines none).

    An unknown upstream is reported and drawn as a node of its own (group None unless its runs
    have one); a cycle is reported and its closing edges kept aside so the rest still has a layering.
    """
    graph, problems = nx.DiGraph(), []
    rows = list(tasks)
    for task, group, _ in rows:
        graph.add_node(task, group=group, defined=True)
    for task, _, depends_on in rows:
        for upstream in (() if depends_on is None else depends_on):
            if upstream not in graph:
                graph.add_node(upstream, group=None, defined=False)
                problems.append(f"{task!r} depends on {upstream!r}, which is not defined")
            graph.add_edge(upstream, task)
    seen = list(seen)
    for task, group in seen:
        if task in graph:  # an undefined upstream: its runs tell its group
            graph.nodes[task]["group"] = graph.nodes[task]["group"] or group
        elif not rows:
            graph.add_node(task, group=group, defined=False)
    cycle_edges, cycles = closing_edges(graph)
    problems += [f"cycle: {cycle_text(cycle)}" for cycle in cycles]
    if len(cycle_edges) > len(cycles):
        problems.append(f"… and {len(cycle_edges) - len(cycles):,} more cycles")
    return TaskGraph(graph, problems, cycle_edges, [task for task, _ in seen],
                     len(seen) if seen_total is None else seen_total)


def closing_edges(graph: nx.DiGraph) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """The edges that close a cycle (the back edges of one depth-first search: without them
    the graph is a DAG), and the cycles the first `LISTED_CYCLES` of them close, upstream first.

    Linear in tasks and edges. It replaced a `find_cycle` per cycle on a copy of the graph,
    which took 30 s for 1,500 tasks that each depend on themselves, on the server's event loop.
    """
    on_path: dict[str, int] = {}  # node -> its place on the current path from the search's root
    path: list[str] = []
    done: set[str] = set()
    edges, cycles = [], []
    for root in graph:
        if root in done:
            continue
        path.append(root)
        on_path[root] = 0
        stack = [iter(graph.successors(root))]
        while stack:
            node = path[-1]
            for downstream in stack[-1]:
                if downstream in on_path:  # back to a task on the path: a cycle
                    edges.append((node, downstream))
                    if len(cycles) < LISTED_CYCLES:
                        cycles.append(path[on_path[downstream]:])
                elif downstream not in done:
                    on_path[downstream] = len(path)
                    path.append(downstream)
                    stack.append(iter(graph.successors(downstream)))
                    break
            else:
                stack.pop()
                done.add(path.pop())
                del on_path[node]
    return edges, cycles


def cycle_text(cycle: list[str], names: int = 8) -> str:
    """'A → B → C → A'; a long cycle by its first and last names around how many are left out."""
    if len(cycle) > names:
        cycle = cycle[:names // 2] + [f"… {len(cycle) - names:,} more …"] + cycle[-(names - names // 2):]
    return " → ".join(cycle + [cycle[0]])


def _without(graph: nx.DiGraph, edges: list[tuple[str, str]]) -> nx.DiGraph:
    view = graph.copy()
    view.remove_edges_from(edges)
    return view


def layers(task_graph: TaskGraph) -> dict[str, int]:
    """Each task's column: 0 for tasks with no upstream, else one more than its furthest upstream."""
    dag = _without(task_graph.graph, task_graph.cycle_edges)
    layer: dict[str, int] = {}
    for node in nx.topological_sort(dag):
        layer[node] = max((layer[up] + 1 for up in dag.predecessors(node)), default=0)
    return layer


def wrap_rows(tasks: int) -> int:
    """How many tasks a column holds before a layer wraps into another column: the grid of
    a large graph stays about as wide as it is tall (280 sources made one solid bar)."""
    return max(8, math.ceil(math.sqrt(tasks / 1.5)))


def layered_layout(task_graph: TaskGraph, sweeps: int = 4, max_rows: int | None = None) \
        -> dict[str, tuple[float, float]]:
    """Grid positions, one task a cell, so no two tasks overlap: x = column, upstream left of
    downstream; y = row. Within a layer groups stay together and tasks move towards the mean
    position of their neighbours (a few sweeps, to reduce crossings); a layer taller than
    `max_rows` wraps into several columns. Columns and rows are whole numbers."""
    layer = layers(task_graph)
    graph = task_graph.graph
    columns: dict[int, list[str]] = {}
    for node in sorted(layer, key=lambda n: (str(graph.nodes[n].get("group")), n)):
        columns.setdefault(layer[node], []).append(node)
    position = {node: float(i) for column in columns.values() for i, node in enumerate(column)}
    for sweep in range(sweeps):
        forward = sweep % 2 == 0
        for x in sorted(columns, reverse=not forward):
            def key(node):
                neighbours = graph.predecessors(node) if forward else graph.successors(node)
                placed = [position[n] for n in neighbours if layer.get(n, x) != x]
                mean = sum(placed) / len(placed) if placed else position[node]
                return (str(graph.nodes[node].get("group")), mean)
            columns[x].sort(key=key)
            for i, node in enumerate(columns[x]):
                position[node] = float(i)
    rows = max_rows or wrap_rows(len(layer))
    placed, x = {}, 0
    tallest = min(rows, max((len(column) for column in columns.values()), default=1))
    for number in sorted(columns):
        column = columns[number]
        for start in range(0, len(column), rows):
            chunk = column[start:start + rows]
            for i, node in enumerate(chunk):
                # Whole rows: the lines halfway between rows stay free for edges (graph_plot).
                placed[node] = (float(x), -float(i + (tallest - len(chunk)) // 2))
            x += 1
    return placed


class Hold(NamedTuple):
    """What holds a waiting task: an upstream running, failed or terminated, and the direct
    upstream it holds the task through when that is a chain of waiting tasks (else None)."""

    upstream: str
    via: str | None = None


def blocked_tasks(graph: nx.DiGraph, status: Mapping[str, str]) -> dict[str, list[Hold]]:
    """Tasks waiting (latest run ACTIVE) with what holds them: the nearest upstreams that are
    running, failed or terminated, looking through upstreams that are themselves only waiting
    or queued to the one at the head of their chain."""
    blocked = {}
    for node in graph:
        if status.get(node) != "ACTIVE":
            continue
        holds, seen = {}, {node}
        frontier = [(up, None) for up in sorted(graph.predecessors(node))]
        while frontier:  # breadth first: the nearest holder on each chain, each named once
            following = []
            for up, via in frontier:
                if up in seen:
                    continue
                seen.add(up)
                if status.get(up) in HOLDING:
                    holds.setdefault(up, Hold(up, via))
                elif status.get(up) in PASSING:
                    following += [(further, via or up) for further in sorted(graph.predecessors(up))]
            frontier = following
        if holds:
            blocked[node] = sorted(holds.values())
    return blocked


def waiting_text(holds: Iterable[Hold]) -> str:
    """'waiting on X, via Y; Z' for the holds of a waiting task."""
    return "waiting on " + "; ".join(h.upstream + (f", via {h.via}" if h.via else "") for h in holds)


def root_causes(graph: nx.DiGraph, status: Mapping[str, str]) -> dict[str, int]:
    """Failed tasks with no failed ancestor, each with how many of its descendants are not
    done (they cannot run until it succeeds)."""
    failed = {node for node in graph if status.get(node) in UNSUCCESSFUL}
    # A failed ancestor other than itself: another failed task of its cycle (strongly connected
    # component), or a failed task in a component upstream. One pass over the components in
    # topological order; an ancestors search per failed task was quadratic (0.5 s for 1,500
    # failed self-looping tasks).
    components = nx.condensation(graph)
    failed_in = {c: sum(1 for node in components.nodes[c]["members"] if node in failed) for c in components}
    failed_upstream: dict[int, bool] = {}
    for c in nx.topological_sort(components):
        failed_upstream[c] = any(failed_in[up] or failed_upstream[up] for up in components.predecessors(c))
    of = components.graph["mapping"]
    return {node: sum(1 for d in nx.descendants(graph, node) if status.get(d) != "SUCCESS")
            for node in failed if failed_in[of[node]] == 1 and not failed_upstream[of[node]]}


def cascade_edges(graph: nx.DiGraph, status: Mapping[str, str]) -> list[tuple[str, str]]:
    """Edges along which a failure holds tasks up: from a failed or held task to a task not done."""
    held = set()
    for cause in root_causes(graph, status):
        held |= {cause} | {d for d in nx.descendants(graph, cause) if status.get(d) != "SUCCESS"}
    return [(a, b) for a, b in graph.edges if a in held and b in held]


def critical_path(graph: nx.DiGraph, seconds: Mapping[str, float], ignore: Iterable[tuple[str, str]] = ()) \
        -> tuple[list[str], float]:
    """The chain of tasks with the largest sum of median durations, and that sum."""
    dag = _without(graph, list(ignore))
    best: dict[str, tuple[float, str | None]] = {}
    for node in nx.topological_sort(dag):
        own = float(seconds.get(node) or 0.0)
        upstream = max(((best[up][0], up) for up in dag.predecessors(node)), default=(0.0, None))
        best[node] = (upstream[0] + own, upstream[1])
    if not best:
        return [], 0.0
    end = max(best, key=lambda node: (best[node][0], node))
    path, node = [], end
    while node is not None:
        path.append(node)
        node = best[node][1]
    return path[::-1], best[end][0]


def neighbourhood(graph: nx.DiGraph, task: str, hops: int) -> set[str]:
    """The task and every task within `hops` dependency steps of it, either way."""
    return set(nx.ego_graph(graph.to_undirected(as_view=True), task, radius=hops))


def status_color(status: str | None) -> str:
    """A node's fill: its latest run's status colour, light grey without runs."""
    return COLORS.get(status or "", NO_RUNS_COLOR)
