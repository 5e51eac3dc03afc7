"""What the dependency graph shows, computed from the store without Panel: the tasks in view
(a group, a name filter, a task's neighbourhood), laid out and analysed (statuses, blocked
tasks, root causes, the critical path), and the frames of nodes and edges the plot draws.

A `ShownGraph` is one such answer, immutable: components compute it off the event loop
(its layout and analysis take about a second for 1,500 tasks) and draw it on the session.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass, replace

import networkx as nx
import pandas as pd

from dashboard import queries
from dashboard.formatting import clock, human_duration, plain
from dashboard.graph import (Hold, TaskGraph, blocked_tasks, cascade_edges, critical_path, dependency_graph,
                             layered_layout, neighbourhood, root_causes, status_color, waiting_text)
from dashboard.graph_groups import GROUP_MARK, GROUPS_ABOVE, Overview, group_path, overview, top_group
from dashboard.shared_answers import shared_per_version

EDGE = {"plain": ("#94a3b8", 1.2), "critical": ("#7c3aed", 4.0), "cascade": ("#dc2626", 2.6)}


@dataclass
class GraphState:
    """What the drawing says about the shown tasks, besides where they are."""

    graph: nx.DiGraph  # every task, not only the shown ones
    status: dict[str, str]
    blocked: dict[str, list[Hold]]
    causes: dict[str, int]
    critical: list[str]
    critical_seconds: float


def analyse(task_graph: TaskGraph, stats: pd.DataFrame) -> GraphState:
    """Statuses, blocked tasks, root causes and the critical path of a graph, from task stats."""
    status = {task: s for task, s in zip(stats["task"], stats["last_status"]) if task in task_graph.graph}
    seconds = {task: plain(s) or 0.0 for task, s in zip(stats["task"], stats["median_seconds"])}
    path, total = critical_path(task_graph.graph, seconds, ignore=task_graph.cycle_edges)
    causes = {task: count for task, count in root_causes(task_graph.graph, status).items() if count}
    return GraphState(task_graph.graph, status, blocked_tasks(task_graph.graph, status), causes,
                      path if total > 0 else [], total)


#: Status order for a group's colour: the most pressing status among its tasks.
PRESSING = ("FAILED", "TERMINATED", "RUNNING", "STARTED", "ACTIVE", "TRIGGER", "IDLE", "SUCCESS")
#: Pale tiles behind the tasks, one colour per top-level group (by a hash of its name, so a
#: group keeps its colour when another is added). Pale tints, not marks: never a status colour.
TILE_PALETTE = ("#e0f2fe", "#fae8ff", "#f1f5f9", "#e7f5ec", "#ede9fe", "#fdf2f8", "#e6f7f5", "#f5f5f4",
                "#eef2ff", "#f4f7e6", "#f0f4f8", "#f7efe9")
NEUTRAL_OUTLINE = "#334155"
LABEL_CHARS = 24
NODE_COLUMNS = ["x", "y", "task", "name", "group", "status", "fill", "marker", "outline", "outline_width", "alpha",
                "tile", "label", "always", "role", "last_trigger", "last_started", "last_finished", "median",
                "upstream", "downstream"]


def tile_color(group: str | None) -> str:
    """A top-level group's pale tile colour, the same in every view and session."""
    top = top_group(group)
    return TILE_PALETTE[zlib.crc32(top.encode()) % len(TILE_PALETTE)] if top else "#ffffff"


def short_label(name: str, chars: int = LABEL_CHARS) -> str:
    """A name as a label: a long dotted or slashed name by its distinguishing end, and a
    middle ellipsis beyond `chars` characters."""
    end = re.split(r"[./]", name)[-1]
    text = end if len(name) > chars and end else name
    return text if len(text) <= chars else text[:chars // 2 - 1] + "…" + text[-(chars - chars // 2):]


def graph_frames(view: Overview, positions: dict[str, tuple[float, float]], stats: pd.DataFrame,
                 state: GraphState, selected: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nodes (tasks and collapsed groups) and edges of the shown view as the frames `draw` draws."""
    graph = view.task_graph.graph
    full = state.graph
    by_task = stats.set_index("task").to_dict("index") if len(stats) else {}
    critical_tasks = set(state.critical)
    related = None
    if selected in full:
        related = {view.node_of[t] for t in {selected} | nx.ancestors(full, selected) | nx.descendants(full, selected)
                   if t in view.node_of}
    rows = []
    for node in sorted(graph):
        x, y = positions[node]
        members = view.members.get(node)
        if members is not None:
            rows.append(_group_row(node, members, x, y, state, related, graph, selected))
            continue
        row = by_task.get(node)
        status = state.status.get(node)
        role = ""
        blocked_by = plain(row.get("last_blocked")) if row is not None else None
        if node in state.causes:
            role = f"ROOT CAUSE · blocks {state.causes[node]}"
        elif blocked_by:  # its latest run can no longer start: not to be read as waiting
            role = f"⊘ BLOCKED · {blocked_by}"
        elif node in state.blocked:
            role = waiting_text(state.blocked[node])
        defined = graph.nodes[node].get("defined", True)
        group = graph.nodes[node].get("group")
        held = node in state.causes or node in state.blocked or bool(blocked_by)
        label = short_label(node)
        if node in state.causes:
            label += f"\n{role}"
        elif blocked_by:
            label += "\n⊘ BLOCKED"  # why: on hover (a label as long as the reason ran into the next)
        elif node in state.blocked:
            holds = state.blocked[node]
            label += "\nwaiting on " + short_label(holds[0].upstream, 18) + (" …" if len(holds) > 1 else "")
        rows.append({
            "x": x, "y": y, "task": node, "name": node, "group": group or ("not defined" if not defined else "—"),
            "status": status or "no runs", "fill": status_color(status), "marker": "circle",
            "outline": "#7f1d1d" if node in state.causes else "#f59e0b" if node in state.blocked else NEUTRAL_OUTLINE,
            "outline_width": 3.5 if held else 1.0,
            "alpha": 1.0 if related is None or node in related else 0.2, "tile": tile_color(group),
            "label": label, "always": node == selected or node in state.causes or node in critical_tasks,
            "role": role or "—",
            "last_trigger": clock(row["last_trigger"], missing="—") if row is not None else "—",
            "last_started": clock(row["last_started"], missing="—") if row is not None else "—",
            "last_finished": clock(row["last_finished"], missing="—") if row is not None else "—",
            "median": human_duration(plain(row["median_seconds"])) or "—" if row is not None else "—",
            "upstream": full.in_degree(node) if node in full else 0,
            "downstream": full.out_degree(node) if node in full else 0,
        })
    nodes = pd.DataFrame(rows, columns=NODE_COLUMNS)
    critical = {(view.node_of.get(a), view.node_of.get(b)) for a, b in zip(state.critical, state.critical[1:])}
    cascade = {(view.node_of.get(a), view.node_of.get(b)) for a, b in cascade_edges(full, state.status)}
    edges = []
    for a, b in graph.edges:
        kind = "critical" if (a, b) in critical else "cascade" if (a, b) in cascade else "plain"
        color, width = EDGE[kind]
        edges.append({"source": a, "target": b, "color": color, "width": width,
                      "edge_alpha": 1.0 if related is None or (a in related and b in related) else 0.15})
    return nodes, pd.DataFrame(edges, columns=["source", "target", "color", "width", "edge_alpha"])


def _group_row(node: str, members: list[str], x: float, y: float, state: GraphState, related, graph,
               selected) -> dict:
    """A collapsed group: its most pressing status, its status mix and counts, a square mark."""
    counts = Counter(state.status.get(t, "no runs") for t in members)
    pressing = next((s for s in PRESSING if counts.get(s)), None)
    mix = " · ".join(f"{counts[s]:,} {s}" for s in (*PRESSING, "no runs") if counts.get(s))
    causes = sorted(t for t in members if t in state.causes)
    path = node[len(GROUP_MARK):]
    role = (f"{len(causes)} root cause{'s' if len(causes) > 1 else ''}: " + ", ".join(causes[:3])
            + (" …" if len(causes) > 3 else "")) if causes else "—"
    return {
        "x": x, "y": y, "task": node, "name": f"{path} ({len(members):,} tasks; click to expand)", "group": path,
        "status": mix, "fill": status_color(pressing), "marker": "square",
        "outline": "#7f1d1d" if causes else NEUTRAL_OUTLINE, "outline_width": 3.5 if causes else 1.5,
        "alpha": 1.0 if related is None or node in related else 0.2, "tile": tile_color(path),
        "label": f"{GROUP_MARK}{short_label(path, 20)} ({len(members):,})", "always": True, "role": role,
        "last_trigger": "—", "last_started": "—", "last_finished": "—", "median": "—",
        "upstream": graph.in_degree(node), "downstream": graph.out_degree(node),
    }


def focus(task_graph: TaskGraph, task: str | None, hops: int, group: str, text: str) -> set[str]:
    """The tasks to show: one group (and the groups inside it), names containing `text`, and
    a task's neighbourhood."""
    graph = task_graph.graph
    shown = set(graph)
    if task in graph and hops > 0:
        shown &= neighbourhood(graph, task, hops)
    if group:
        shown = {n for n in shown if group in group_path(graph.nodes[n].get("group"))}
    if text:
        shown = {n for n in shown if text.lower() in n.lower()}
    return shown


def view_of(task_graph: TaskGraph, shown: set[str], expanded: set[str]) -> tuple[Overview, dict]:
    """What to draw and where: the shown tasks, in groups (all but `expanded` collapsed) when
    there are more than GROUPS_ABOVE of them, laid out on a grid."""
    view = overview(task_graph, shown, expanded if len(shown) > GROUPS_ABOVE else None)
    return view, layered_layout(view.task_graph)


@dataclass(frozen=True)
class ShownGraph:
    """One view of the task graph: every task, the ones shown, where, and what holds them up."""

    task_graph: TaskGraph
    stats: pd.DataFrame  # queries.task_stats over the time range
    state: GraphState
    shown: frozenset[str]
    view: Overview
    positions: dict[str, tuple[float, float]]
    expanded: frozenset[str]  # groups opened by a click

    def frames(self, selected: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The nodes and edges to draw, `selected` (if shown) lit with its up- and downstream."""
        return graph_frames(self.view, self.positions, self.stats, self.state,
                            selected if selected in self.shown else None)

    def with_stats(self, stats: pd.DataFrame) -> ShownGraph:
        """The same tasks in the same places, with new run statistics (a status changed)."""
        return replace(self, stats=stats, state=analyse(self.task_graph, stats))

    @property
    def collapsible(self) -> bool:
        """Whether groups are shown collapsed, or some were opened, so "Collapse groups" means something."""
        return self.view.collapsed or bool(self.expanded and len(self.shown) > GROUPS_ABOVE)


def read_task_graph(store) -> TaskGraph:
    """The defined tasks as a graph (with their problems: cycles, undefined upstreams), and the
    tasks seen in runs without a definition, without dependencies. Shared by
    every view that asks between two ingest steps (a page's graph and table, every tab opened
    meanwhile), so it must not be changed: views work on copies (graph_groups.overview)."""
    return _task_graph(store.index)


@shared_per_version
def _task_graph(index) -> TaskGraph:
    tasks = queries.tasks(index)
    seen, seen_total = queries.tasks_seen_in_runs(index)
    return dependency_graph(zip(tasks["task"], tasks["grp"], tasks["depends_on"]), seen, seen_total)


def read_stats(store, since: str) -> pd.DataFrame:
    """Per task, its latest run and statistics over the time range ('24h', ...). Shared by the
    views that ask in the same second between two ingest steps: not to be changed."""
    return _stats(store.index, queries.parse_duration(since), queries.utcnow().replace(microsecond=0))


_stats = shared_per_version(queries.task_stats)


def shown_graph(task_graph: TaskGraph, stats: pd.DataFrame, task: str, hops: int, group: str, search: str,
                expanded: set[str]) -> ShownGraph:
    """Focus, lay out and analyse: the graph as one view shows it."""
    shown = focus(task_graph, task or None, hops, group, search)
    view, positions = view_of(task_graph, shown, expanded)
    return ShownGraph(task_graph, stats, analyse(task_graph, stats), frozenset(shown), view, positions,
                      frozenset(expanded))


def group_levels(task_graph: TaskGraph) -> list[str]:
    """Every group and the groups above it ("marts" for marts/finance), in name order."""
    graph = task_graph.graph
    return sorted({level for n in graph if plain(graph.nodes[n].get("group"))
                   for level in group_path(str(graph.nodes[n].get("group")))})
