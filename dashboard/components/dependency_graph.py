"""The dependency graph drawn with HoloViews (Bokeh): status-coloured tasks, left to right.

Node positions come from `dashboard.graph.layered_layout` and are kept while only statuses
change: live updates go through a `Pipe` into a DynamicMap, so colours change in place and
the user's zoom stays. Recenter draws the plot anew, which fits the whole graph again.
"""

from __future__ import annotations

import re
import weakref
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import holoviews as hv
import networkx as nx
import numpy as np
import pandas as pd
import panel as pn

from dashboard.formatting import human_duration, plain
from dashboard.graph import (Hold, TaskGraph, blocked_tasks, cascade_edges, critical_path, layered_layout,
                             neighbourhood, root_causes, status_color, waiting_text)
from dashboard.graph_groups import GROUP_MARK, GROUPS_ABOVE, Overview, group_path, overview, top_group
from dashboard.components.graph_marks import MARK_MAX, fit_marks

# Register HoloViews' Bokeh backend whatever page a process serves first: under plain
# `panel serve`, a /tasks opened after another page drew before any pn.extension had seen
# holoviews, and failed with "No entry for 'Overlay' registered".
hv.extension("bokeh", logo=False)

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
            "last_trigger": _clock(row["last_trigger"]) if row is not None else "—",
            "last_started": _clock(row["last_started"]) if row is not None else "—",
            "last_finished": _clock(row["last_finished"]) if row is not None else "—",
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


def _clock(value) -> str:
    value = plain(value)
    return "—" if value is None else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


HOVER = [("Task", "@name"), ("Group", "@group"), ("Status", "@status"), ("", "@role"),
         ("Last trigger", "@last_trigger"), ("Started", "@last_started"), ("Finished", "@last_finished"),
         ("Median duration", "@median"), ("Upstream", "@upstream"), ("Downstream", "@downstream")]


def edge_frames(nodes: pd.DataFrame, edges: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each edge as a line between node centres, and an arrowhead (a triangle mark, sized in
    pixels) at its middle, turned downstream: it never hides behind or misses a node."""
    at = nodes.set_index("task")[["x", "y"]]
    start = at.reindex(edges["source"]).to_numpy(float).reshape(-1, 2)
    end = at.reindex(edges["target"]).to_numpy(float).reshape(-1, 2)
    style = {"color": edges["color"].to_numpy(), "width": edges["width"].to_numpy(),
             "edge_alpha": edges["edge_alpha"].to_numpy()}
    lines = pd.DataFrame({"x0": start[:, 0], "y0": start[:, 1], "x1": end[:, 0], "y1": end[:, 1], **style})
    middle = (start + end) / 2
    # Turned by the angle in data units (close to the screen's: a column and a row are of like
    # size in pixels); Bokeh's triangle points up at angle 0.
    angle = np.arctan2(end[:, 1] - start[:, 1], end[:, 0] - start[:, 0]) - np.pi / 2
    heads = pd.DataFrame({"x": middle[:, 0], "y": middle[:, 1], "angle": angle, **style})
    return lines, heads


def draw(data: tuple[pd.DataFrame, pd.DataFrame]) -> hv.Overlay:
    """Group tiles, edges, arrowheads, the nodes, and their labels (level of detail)."""
    nodes, edges = data
    lines, heads = edge_frames(nodes, edges)
    tiled = nodes if nodes["tile"].nunique() > 1 else nodes.iloc[:0]  # one group shown: nothing to tell apart
    tiles = hv.Rectangles((tiled["x"] - 0.48, tiled["y"] - 0.48, tiled["x"] + 0.48, tiled["y"] + 0.48, tiled["tile"]),
                          vdims=["tile"]).opts(color="tile", line_alpha=0, tools=[])
    segments = hv.Segments(lines, ["x0", "y0", "x1", "y1"], ["color", "width", "edge_alpha"]).opts(
        line_width="width", color="color", alpha="edge_alpha")
    arrows = hv.Points(heads, ["x", "y"], ["angle", "color", "width", "edge_alpha"], group="Arrows").opts(
        marker="triangle", angle="angle", color="color", alpha="edge_alpha", line_alpha=0, size=7)
    points = hv.Points(nodes, ["x", "y"], [c for c in nodes.columns if c not in ("x", "y")]).opts(
        color="fill", marker="marker", line_color="outline", line_width="outline_width", alpha="alpha",
        size=MARK_MAX, tools=["hover", "tap"], hover_tooltips=HOVER, nonselection_alpha=0.35)
    label_style = {"text_font_size": "8.5pt", "text_color": "#1f2937", "text_baseline": "top"}
    # As booleans: the column of an empty frame is of objects, which pandas takes as column names.
    shown_always = nodes["always"].astype(bool)
    always = hv.Labels(nodes[shown_always], ["x", "y"], "label", group="Always").opts(**label_style)
    detail = hv.Labels(nodes[~shown_always], ["x", "y"], "label", group="Detail").opts(**label_style)
    xs, ys = nodes["x"], nodes["y"]
    limits = ({"xlim": (xs.min() - 0.6, xs.max() + 0.6), "ylim": (ys.min() - 0.95, ys.max() + 0.6)}
              if len(nodes) else {})
    return (tiles * segments * arrows * points * always * detail).opts(
        hv.opts.Overlay(responsive=True, height=620, xaxis=None, yaxis=None, show_frame=False, toolbar="above",
                        active_tools=["wheel_zoom", "pan"], hooks=[fit_marks], **limits,
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
        # HoloViews keeps an element's options in its process-wide Store until the element is
        # collected; a bound method there kept this session's whole page alive for ever (0.7 MB
        # per closed /tasks session, issue 23). The hook reaches this plot weakly.
        return overlay.opts(hv.opts.Points(hooks=[partial(_listen_to_clicks, weakref.ref(self))]))

    def _listen_to_clicks(self, plot, element) -> None:
        """A click (Bokeh's tap tool) selects a node in the browser; tell the page which."""
        if element.group != "Points":
            return  # the arrowheads
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


def _listen_to_clicks(graph_plot: weakref.ref, plot, element) -> None:
    """A plot hook calling GraphPlot._listen_to_clicks while its page lives."""
    owner = graph_plot()
    if owner is not None:
        owner._listen_to_clicks(plot, element)


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
