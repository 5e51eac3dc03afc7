"""The graph's marks in screen units at every zoom, and its labels' level of detail.

A HoloViews hook on the graph's overlay: node and arrowhead sizes follow a grid cell's size
in pixels (so they never overlap, and never grow past 22 px), labels sit a fixed number of
pixels below their node, and ordinary labels show only once a column is wide enough to hold
them. The browser applies the rule on every zoom (FIT_MARKS_JS); Python applies the same
rule when it redraws, so an update from the server keeps the sizes.
"""

from __future__ import annotations

from bokeh.core.property.descriptors import UnsetValueError
from bokeh.models import CustomJS

from dashboard.components.resources import resource

#: Node marks in screen pixels: this share of a grid cell, between these bounds; labels
#: below them from this many pixels per column and row (the same in `FIT_MARKS_JS`).
MARK_SHARE, MARK_MIN, MARK_MAX = 0.6, 3.0, 22.0
DETAIL_LABELS_FROM = (130.0, 34.0)
LABEL_GAP = 13  # pixels from a node's centre to the top of its label

FIT_MARKS_JS = resource("fit_marks.js", MARK_MIN=MARK_MIN, MARK_MAX=MARK_MAX, MARK_SHARE=MARK_SHARE,
                        COLUMN_PX=DETAIL_LABELS_FROM[0], ROW_PX=DETAIL_LABELS_FROM[1])


def mark_size(column_px: float, row_px: float) -> float:
    """A node's diameter in pixels for grid cells of this size (as FIT_MARKS_JS computes it)."""
    return max(MARK_MIN, min(MARK_MAX, MARK_SHARE * min(column_px, row_px)))


def renderer_of(plot, element_type: str, group: str | None = None):
    for subplot in plot.subplots.values():
        element = subplot.current_frame
        if type(element).__name__ == element_type and (group is None or element.group == group):
            return subplot.handles["glyph_renderer"]
    raise LookupError(element_type)


def fit_marks(plot, _element) -> None:
    """Marks in screen units at every zoom: node and arrowhead sizes follow the grid cell's
    size in pixels, labels sit a fixed number of pixels below their node, and the labels of
    ordinary tasks show only once a column is wide enough to hold them (level of detail)."""
    figure = plot.state
    nodes, arrows = renderer_of(plot, "Points", "Points"), renderer_of(plot, "Points", "Arrows")
    always, detail = renderer_of(plot, "Labels", "Always"), renderer_of(plot, "Labels", "Detail")
    for labels in (always, detail):
        labels.glyph.y_offset = LABEL_GAP
    try:
        width, height = figure.inner_width, figure.inner_height
    except UnsetValueError:  # not drawn by a browser yet
        width = height = None
    x_range, y_range = plot.handles["x_range"], plot.handles["y_range"]
    if width and height and x_range.end != x_range.start and y_range.end != y_range.start:
        # Python's copy of the same rule, so an update drawn by the server keeps the sizes.
        column, row = width / abs(x_range.end - x_range.start), height / abs(y_range.end - y_range.start)
        for renderer, share in ((nodes, 1.0), (arrows, 0.5)):
            for glyph in (renderer.glyph, renderer.selection_glyph, renderer.nonselection_glyph,
                          renderer.hover_glyph, renderer.muted_glyph):
                if glyph is not None:
                    glyph.size = mark_size(column, row) * share
        detail.visible = column >= DETAIL_LABELS_FROM[0] and row >= DETAIL_LABELS_FROM[1]
    if not getattr(figure, "_taskdash_fitting", False):
        callback = CustomJS(args={"fig": figure, "xr": x_range, "yr": y_range, "nodes": nodes, "arrows": arrows,
                                  "detail": detail}, code=FIT_MARKS_JS)
        for model, attributes in ((x_range, ("start", "end")), (y_range, ("start", "end")),
                                  (figure, ("inner_width", "inner_height"))):
            for attribute in attributes:
                model.js_on_change(attribute, callback)
        figure._taskdash_fitting = True
