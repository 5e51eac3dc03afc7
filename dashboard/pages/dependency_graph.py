"""The dependency graph drawn with HoloViews (Bokeh): status-coloured tasks, left to right.

Node positions come from `dashboard.graph.layered_layout` and are kept while only statuses
change: live updates go through a `Pipe` into a DynamicMap, so colours change in place and
the user's zoom stays. Recenter draws the plot anew, which fits the whole graph again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import holoviews as hv
import networkx as nx
import numpy as np
import pandas as pd
import panel as pn

from dashboard.formatting import human_duration, plain
from dashboard.graph import (Hold, TaskGraph, blocked_tasks, cascade_edges, critical_path, layered_layout,
                             neighbourhood, root_causes, status_color, waiting_text)

LABELS_UP_TO = 250  # more nodes than this: names only on hover
GROUP_PALETTE = ("#0ea5e9", "#a855f7", "#f97316", "#14b8a6", "#e11d48", "#84cc16", "#6366f1", "#eab308",
                 "#64748b", "#ec4899")
EDGE = {"plain": ("#94a3b8", 1.2), "critical": ("#7c3aed", 4.0), "cascade": ("#dc2626", 2.6)}


@dataclass
class GraphState:
    """What the drawing says about the shown tasks, besides where they are."""

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
    return GraphState(status, blocked_tasks(task_graph.graph, status), causes, path if total > 0 else [], total)


def graph_frames(task_graph: TaskGraph, shown: set[str], positions: dict[str, tuple[float, float]],
                 stats: pd.DataFrame, state: GraphState, selected: str | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nodes and edges of the shown tasks as the DataFrames `draw` draws."""
    graph = task_graph.graph
    by_task = stats.set_index("task").to_dict("index") if len(stats) else {}
    group_color = group_colors(graph)
    related = ({selected} | nx.ancestors(graph, selected) | nx.descendants(graph, selected)
               if selected in graph else None)
    rows = []
    for task in sorted(shown):
        x, y = positions[task]
        row = by_task.get(task)
        status = state.status.get(task)
        role = ""
        if task in state.causes:
            role = f"ROOT CAUSE · blocks {state.causes[task]}"
        elif task in state.blocked:
            role = waiting_text(state.blocked[task])
        defined = graph.nodes[task].get("defined", True)
        group = graph.nodes[task].get("group")
        rows.append({
            "x": x, "y": y, "task": task, "name": task, "group": group or ("not defined" if not defined else "—"),
            "status": status or "no runs", "fill": status_color(status),
            "outline": "#7f1d1d" if task in state.causes else "#f59e0b" if task in state.blocked
            else group_color.get(str(group), "#94a3b8"),
            "outline_width": 5.0 if task in state.causes or task in state.blocked else 2.5,
            "alpha": 1.0 if related is None or task in related else 0.2,
            "label": task + (f"\n{role}" if role else ""),
            "role": role or "—",
            "last_trigger": _clock(row["last_trigger"]) if row is not None else "—",
            "last_started": _clock(row["last_started"]) if row is not None else "—",
            "last_finished": _clock(row["last_finished"]) if row is not None else "—",
            "median": human_duration(plain(row["median_seconds"])) or "—" if row is not None else "—",
            "upstream": graph.in_degree(task), "downstream": graph.out_degree(task),
        })
    nodes = pd.DataFrame(rows, columns=["x", "y", "task", "name", "group", "status", "fill", "outline", "outline_width",
                                        "alpha", "label", "role", "last_trigger", "last_started",
                                        "last_finished", "median", "upstream", "downstream"])
    critical = set(zip(state.critical, state.critical[1:]))
    cascade = set(cascade_edges(graph, state.status))
    edges = []
    for a, b in graph.edges:
        if a in shown and b in shown:
            kind = "critical" if (a, b) in critical else "cascade" if (a, b) in cascade else "plain"
            color, width = EDGE[kind]
            edges.append({"source": a, "target": b, "color": color, "width": width,
                          "edge_alpha": 1.0 if related is None or (a in related and b in related) else 0.15})
    return nodes, pd.DataFrame(edges, columns=["source", "target", "color", "width", "edge_alpha"])


def group_colors(graph: nx.DiGraph) -> dict[str, str]:
    """An outline colour per group (tasks outside any group have none here)."""
    groups = sorted({str(g) for n in graph if (g := graph.nodes[n].get("group"))})
    return {g: GROUP_PALETTE[i % len(GROUP_PALETTE)] for i, g in enumerate(groups)}


def _clock(value) -> str:
    value = plain(value)
    return "—" if value is None else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


HOVER = [("Task", "@name"), ("Group", "@group"), ("Status", "@status"), ("", "@role"),
         ("Last trigger", "@last_trigger"), ("Started", "@last_started"), ("Finished", "@last_finished"),
         ("Median duration", "@median"), ("Upstream", "@upstream"), ("Downstream", "@downstream")]


ARROW_BACK, ARROW_LENGTH, ARROW_HALF_WIDTH = 0.13, 0.09, 0.05  # in layout units (one column = 1)


def edge_segments(nodes: pd.DataFrame, edges: pd.DataFrame) -> tuple[hv.Segments, hv.Segments]:
    """Each edge as a line, and two short strokes at its downstream end, for all edges at once.

    (Nodes, edges and arrows are drawn as plain points and segments: Bokeh's graph renderer
    and HoloViews' per-edge arrow paths each took seconds at 1,000 tasks.)
    """
    at = nodes.set_index("task")[["x", "y"]]
    start = at.reindex(edges["source"]).to_numpy(float).reshape(-1, 2)
    end = at.reindex(edges["target"]).to_numpy(float).reshape(-1, 2)
    along = end - start
    along /= np.maximum(np.hypot(along[:, 0], along[:, 1]), 1e-9)[:, None]
    across = np.column_stack([-along[:, 1], along[:, 0]])
    tip = end - along * ARROW_BACK
    base = tip - along * ARROW_LENGTH
    style = {"color": edges["color"].to_numpy(), "width": edges["width"].to_numpy(),
             "edge_alpha": edges["edge_alpha"].to_numpy()}
    lines = pd.DataFrame({"x0": start[:, 0], "y0": start[:, 1], "x1": tip[:, 0], "y1": tip[:, 1], **style})
    heads = pd.concat([pd.DataFrame({"x0": tip[:, 0], "y0": tip[:, 1], "x1": wing[:, 0], "y1": wing[:, 1], **style})
                       for wing in (base + across * ARROW_HALF_WIDTH, base - across * ARROW_HALF_WIDTH)])
    look = {"color": "color", "alpha": "edge_alpha"}
    return (hv.Segments(lines, ["x0", "y0", "x1", "y1"], ["color", "width", "edge_alpha"]).opts(
                line_width="width", **look),
            hv.Segments(heads, ["x0", "y0", "x1", "y1"], ["color", "width", "edge_alpha"]).opts(
                line_width=1.6, **look))


def node_size(count: int) -> float:
    """Node diameter in pixels: 22 up to 100 tasks, smaller as more share the view."""
    return max(7.0, min(22.0, 22.0 * (100 / max(count, 1)) ** 0.5))


def draw(data: tuple[pd.DataFrame, pd.DataFrame]) -> hv.Overlay:
    """Edges, arrowheads, the tasks, and their labels (while few enough to read)."""
    nodes, edges = data
    lines, heads = edge_segments(nodes, edges)
    points = hv.Points(nodes, ["x", "y"], [c for c in nodes.columns if c not in ("x", "y")]).opts(
        color="fill", line_color="outline", line_width="outline_width", alpha="alpha", size=node_size(len(nodes)),
        tools=["hover", "tap"], hover_tooltips=HOVER, nonselection_alpha=0.35)
    labels = hv.Labels(nodes if len(nodes) <= LABELS_UP_TO else nodes.iloc[:0], ["x", "y"], "label").opts(
        text_font_size="8.5pt", yoffset=-0.28, text_color="#1f2937", text_baseline="top")
    return (lines * heads * points * labels).opts(
        hv.opts.Overlay(responsive=True, height=620, xaxis=None, yaxis=None, show_frame=False, toolbar="above",
                        active_tools=["wheel_zoom", "pan"], padding=(0.2, 0.08),
                        default_tools=["pan", "wheel_zoom", "box_zoom", "reset", "save"]))


class GraphPlot:
    """The plot pane for one session: fed new frames through a pipe; recentered by redrawing."""

    def __init__(self, frames: tuple[pd.DataFrame, pd.DataFrame], on_select: Callable[[str | None], None]):
        self.frames = frames
        self.pipe = hv.streams.Pipe(data=frames)
        self.on_select = on_select
        self.pane = pn.pane.HoloViews(self._plot(), sizing_mode="stretch_width", height=640, linked_axes=False)

    def _plot(self) -> hv.DynamicMap:
        return hv.DynamicMap(self._draw, streams=[self.pipe])

    def _draw(self, data) -> hv.Overlay:
        overlay = draw(data)
        return overlay.opts(hv.opts.Points(hooks=[self._listen_to_clicks]))

    def _listen_to_clicks(self, plot, _element) -> None:
        """A click (Bokeh's tap tool) selects a node in the browser; tell the page which."""
        selected = plot.handles["glyph_renderer"].data_source.selected
        if not getattr(selected, "_taskdash_listening", False):
            selected.on_change("indices", lambda _attr, _old, new: self._selected(new))
            selected._taskdash_listening = True

    def _selected(self, index: list[int]) -> None:
        nodes = self.frames[0]
        self.on_select(nodes["task"].iloc[index[0]] if index and index[0] < len(nodes) else None)

    def update(self, frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
        """New colours, roles or highlights; positions and the user's zoom stay."""
        self.frames = frames
        self.pipe.send(frames)

    def recenter(self, frames: tuple[pd.DataFrame, pd.DataFrame] | None = None) -> None:
        """Draw anew (with new frames, if given), fitting the whole graph in the view."""
        if frames is not None:
            self.frames = frames
            self.pipe.update(data=frames)  # no event: the new plot starts from it
        self.pane.object = self._plot()


def focus(task_graph: TaskGraph, task: str | None, hops: int, group: str, text: str) -> set[str]:
    """The tasks to show: one group, names containing `text`, and a task's neighbourhood."""
    graph = task_graph.graph
    shown = set(graph)
    if task in graph and hops > 0:
        shown &= neighbourhood(graph, task, hops)
    if group:
        shown = {n for n in shown if graph.nodes[n].get("group") == group}
    if text:
        shown = {n for n in shown if text.lower() in n.lower()}
    return shown


def layout_for(task_graph: TaskGraph, shown: set[str]) -> dict[str, tuple[float, float]]:
    """Positions for the shown tasks (laid out among themselves when they are a part)."""
    if shown == set(task_graph.graph):
        return layered_layout(task_graph)
    part = TaskGraph(task_graph.graph.subgraph(shown).copy(), [],
                     [e for e in task_graph.cycle_edges if e[0] in shown and e[1] in shown])
    return layered_layout(part)
