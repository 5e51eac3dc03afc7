"""The dependency graph's plot: frames of nodes and edges drawn with HoloViews as Bokeh models.

A first drawing is built off the event loop: `render` makes the Bokeh models of a new plot on a
worker thread, for a document of its own, and `GraphPlot.show` puts them on the session's page
(HoloViews took 0.7–1.9 s to build them for a large graph, during which the server answered
nothing). Every later drawing goes through a `Pipe` into the plot's DynamicMap, in place: new
colours keep the user's zoom, and a new layout (a group opened, a filter) is fitted to the view.
A new plot for each layout took 0.23 s for a group of 28 tasks, the pipe 0.09 s, and the browser
redraws the plot it has instead of building another.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
from bokeh.document import Document

from dashboard.components.graph_marks import MARK_MAX, MARK_SHARE, fit_marks, renderer_of

# Register HoloViews' Bokeh backend whatever page a process serves first: under plain
# `panel serve`, a /tasks opened after another page drew before any pn.extension had seen
# holoviews, and failed with "No entry for 'Overlay' registered".
hv.extension("bokeh", logo=False)

#: HoloViews keeps options in one process-wide store: one plot is built at a time off the loop.
_RENDERING = threading.Lock()

Frames = tuple[pd.DataFrame, pd.DataFrame]

#: Half a group tile's side, in grid cells (one task a cell).
TILE_HALF = 0.48


HOVER = [("Task", "@name"), ("Group", "@group"), ("Status", "@status"), ("", "@role"),
         ("Last trigger", "@last_trigger"), ("Started", "@last_started"), ("Finished", "@last_finished"),
         ("Median duration", "@median"), ("Upstream", "@upstream"), ("Downstream", "@downstream")]


#: How near (in grid cells) a straight edge may pass another node's centre: a mark's radius is at
#: most half its share of a cell, and a little room beside it.
GRAZE = MARK_SHARE / 2 + 0.05


def edge_frames(nodes: pd.DataFrame, edges: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each edge as line pieces, and an arrowhead (a triangle mark, sized in pixels) halfway along
    its longest piece, turned downstream: it never hides behind or misses a node.

    An edge is a straight line between node centres unless that line would pass over a node it
    does not join (it spans columns, or leaves its column steeply past a neighbour). Then it goes
    around: out of its source to halfway to the next column, along the line between its source's
    row and the one above, and into its target from halfway before its column. Nodes sit on whole
    columns and rows (graph.layered_layout), so those lines cross none."""
    at = nodes.set_index("task")[["x", "y"]]
    start = at.reindex(edges["source"]).to_numpy(float).reshape(-1, 2)
    end = at.reindex(edges["target"]).to_numpy(float).reshape(-1, 2)
    detour = _grazing(start, end, nodes[["x", "y"]].to_numpy(float)) & (end[:, 0] > start[:, 0])
    lane = start[:, 1] + np.where(end[:, 0] - start[:, 0] >= 2, 0.5, 0.0)  # next column: straight down or up
    # Each edge as five pieces between six points; pieces of no length are dropped.
    points = np.stack([start, end, end, end, end, end], axis=1)
    points[detour, 1] = np.column_stack([start[detour, 0] + 0.5, start[detour, 1]])
    points[detour, 2] = np.column_stack([start[detour, 0] + 0.5, lane[detour]])
    points[detour, 3] = np.column_stack([end[detour, 0] - 0.5, lane[detour]])
    points[detour, 4] = np.column_stack([end[detour, 0] - 0.5, end[detour, 1]])
    pieces = np.concatenate([points[:, :-1], points[:, 1:]], axis=2)  # (edge, piece, x0 y0 x1 y1)
    length = np.nan_to_num(np.hypot(pieces[:, :, 2] - pieces[:, :, 0], pieces[:, :, 3] - pieces[:, :, 1]))
    edge, _piece = np.nonzero(length > 0)
    style = {"color": edges["color"].to_numpy(), "width": edges["width"].to_numpy(),
             "edge_alpha": edges["edge_alpha"].to_numpy()}
    flat = pieces[length > 0]
    lines = pd.DataFrame({"x0": flat[:, 0], "y0": flat[:, 1], "x1": flat[:, 2], "y1": flat[:, 3],
                          **{name: values[edge] for name, values in style.items()}})
    longest = pieces[np.arange(len(pieces)), np.argmax(length, axis=1)] if len(pieces) else np.empty((0, 4))
    middle = (longest[:, :2] + longest[:, 2:]) / 2
    # Turned by the angle in data units (close to the screen's: a column and a row are of like
    # size in pixels); Bokeh's triangle points up at angle 0. In degrees: HoloViews takes a
    # Points element's angle in degrees (given radians, every arrowhead pointed up).
    angle = np.degrees(np.arctan2(longest[:, 3] - longest[:, 1], longest[:, 2] - longest[:, 0]) - np.pi / 2)
    heads = pd.DataFrame({"x": middle[:, 0], "y": middle[:, 1], "angle": angle, **style})
    return lines, heads


def _grazing(start: np.ndarray, end: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Which straight edges (start -> end) pass within GRAZE of the centre of a node they do not join."""
    low, high = np.minimum(start, end) - GRAZE, np.maximum(start, end) + GRAZE
    # Only the pairs of an edge and a node inside the edge's box, widened by GRAZE, can graze.
    edge, node = np.nonzero(((centres[None, :, :] >= low[:, None, :]) & (centres[None, :, :] <= high[:, None, :]))
                            .all(axis=2))
    a, b, centre = start[edge], end[edge], centres[node]
    direction = b - a
    length2 = (direction ** 2).sum(axis=1)
    along = np.clip(np.divide(((centre - a) * direction).sum(axis=1), length2, out=np.zeros(len(edge)),
                              where=length2 > 0), 0, 1)
    distance = np.hypot(*(a + along[:, None] * direction - centre).T)
    joined = (centre == a).all(axis=1) | (centre == b).all(axis=1)
    grazing = np.zeros(len(start), dtype=bool)
    grazing[edge[(distance < GRAZE) & ~joined]] = True
    return grazing


def _label_places(nodes: pd.DataFrame) -> pd.DataFrame:
    """Where each node's label goes: centred under it, except in the first and last columns,
    where it starts (ends) at the node's tile edge and runs inwards. A label is wider than the
    margin beside the outer columns once the graph is zoomed out, and was cut at the frame."""
    xs = nodes["x"]
    first, last = (xs == xs.min()) & (xs != xs.max()), (xs == xs.max()) & (xs != xs.min())
    align = np.where(first, "left", np.where(last, "right", "center"))
    x = xs + np.where(first, -TILE_HALF, np.where(last, TILE_HALF, 0.0))
    return pd.DataFrame({"x": x, "y": nodes["y"], "label": nodes["label"], "align": align}, index=nodes.index)


def draw(data: tuple[pd.DataFrame, pd.DataFrame]) -> hv.Overlay:
    """Group tiles, edges, arrowheads, the nodes, and their labels (level of detail)."""
    nodes, edges = data
    lines, heads = edge_frames(nodes, edges)
    tiled = nodes if nodes["tile"].nunique() > 1 else nodes.iloc[:0]  # one group shown: nothing to tell apart
    tiles = hv.Rectangles((tiled["x"] - TILE_HALF, tiled["y"] - TILE_HALF, tiled["x"] + TILE_HALF,
                           tiled["y"] + TILE_HALF, tiled["tile"]),
                          vdims=["tile"]).opts(color="tile", line_alpha=0, tools=[])
    segments = hv.Segments(lines, ["x0", "y0", "x1", "y1"], ["color", "width", "edge_alpha"]).opts(
        line_width="width", color="color", alpha="edge_alpha")
    arrows = hv.Points(heads, ["x", "y"], ["angle", "color", "width", "edge_alpha"], group="Arrows").opts(
        marker="triangle", angle="angle", color="color", alpha="edge_alpha", line_alpha=0, size=7)
    points = hv.Points(nodes, ["x", "y"], [c for c in nodes.columns if c not in ("x", "y")]).opts(
        color="fill", marker="marker", line_color="outline", line_width="outline_width", alpha="alpha",
        size=MARK_MAX, tools=["hover", "tap"], hover_tooltips=HOVER, nonselection_alpha=0.35)
    label_style = {"text_font_size": "8.5pt", "text_color": "#1f2937", "text_baseline": "top",
                   "text_align": "align"}
    labels = _label_places(nodes)
    # As booleans: the column of an empty frame is of objects, which pandas takes as column names.
    shown_always = nodes["always"].astype(bool)
    always = hv.Labels(labels[shown_always], ["x", "y"], ["label", "align"], group="Always").opts(**label_style)
    detail = hv.Labels(labels[~shown_always], ["x", "y"], ["label", "align"], group="Detail").opts(**label_style)
    limits = dict(zip(("xlim", "ylim"), fitted(nodes))) if len(nodes) else {}
    return (tiles * segments * arrows * points * always * detail).opts(
        hv.opts.Overlay(responsive=True, height=620, xaxis=None, yaxis=None, show_frame=False, toolbar="above",
                        active_tools=["wheel_zoom", "pan"], hooks=[fit_marks], **limits,
                        default_tools=["pan", "wheel_zoom", "box_zoom", "reset", "save"]))


def fitted(nodes: pd.DataFrame) -> tuple[tuple[float, float], tuple[float, float]]:
    """The x and y ranges that show every node, with room for the labels below the last row."""
    xs, ys = nodes["x"], nodes["y"]
    return (xs.min() - 0.6, xs.max() + 0.6), (ys.min() - 0.95, ys.max() + 0.6)


@dataclass
class Rendered:
    """A plot built off the loop, not yet on any page: its HoloViews plot and the pipe feeding it."""

    plot: object  # holoviews' plot; `.state` is the Bokeh figure
    pipe: hv.streams.Pipe
    frames: Frames


def render(frames: Frames) -> Rendered:
    """Build a new plot's Bokeh models, away from any session (safe on a worker thread)."""
    pipe = hv.streams.Pipe(data=frames)
    with _RENDERING:
        # Canvas, not HoloViews' default WebGL: a few thousand marks and their labels paint at
        # once on a canvas, where WebGL first makes a context (without a GPU, as in many remote
        # desktops, it copies its pixels back on every paint: 0.2 s of a first paint measured).
        plot = hv.renderer("bokeh").instance(mode="server", webgl=False).get_plot(
            hv.DynamicMap(draw, streams=[pipe]), doc=Document())
    return Rendered(plot, pipe, frames)


class GraphPlot:
    """The plot on one session's page: shown once rendered, recoloured in place, clicks reported."""

    def __init__(self, on_select: Callable[[str | None], None]):
        self.on_select = on_select
        self.rendered: Rendered | None = None
        self._fitting = False  # clearing the tap selection of a layout being replaced
        self.pane = pn.pane.Bokeh(None, sizing_mode="stretch_width", height=640)

    def show(self, rendered: Rendered) -> None:
        """Put a rendered plot on the page (on the session's loop), replacing the one shown."""
        doc = pn.state.curdoc
        if self.rendered is not None:
            self.rendered.plot.cleanup()
        rendered.plot.document = doc if doc is not None and doc.session_context else None
        selected = renderer_of(rendered.plot, "Points", "Points").data_source.selected
        selected.on_change("indices", self._clicked)  # the tap tool's choice, from the browser
        self.rendered = rendered
        self.pane.object = rendered.plot.state

    def _clicked(self, _attr, _old, index: list[int]) -> None:
        if self._fitting:
            return
        nodes = self.rendered.frames[0] if self.rendered is not None else None
        if nodes is not None and index and index[0] < len(nodes):
            self.on_select(nodes["task"].iloc[index[0]])
        else:
            self.on_select(None)

    def update(self, frames: Frames, fit: bool = False) -> None:
        """New colours, roles or highlights, in place: the user's zoom stays, unless `fit` (a new
        layout, or recentering): then the view shows every node, and so does Reset."""
        if self.rendered is None:
            return
        self.rendered.frames = frames
        if fit:
            # The browser's tap selection counts nodes of the old layout: cleared, not a click.
            selected = renderer_of(self.rendered.plot, "Points", "Points").data_source.selected
            self._fitting = True
            try:
                selected.indices = []
            finally:
                self._fitting = False
        self.rendered.pipe.send(frames)
        if fit and len(frames[0]):
            figure = self.rendered.plot.state
            for axis, (start, end) in zip((figure.x_range, figure.y_range), fitted(frames[0])):
                axis.update(start=start, end=end, reset_start=start, reset_end=end)
        if self.rendered.plot.document is None:  # in a notebook: Panel sends Bokeh's own changes when asked
            pn.io.push_notebook(self.pane)
