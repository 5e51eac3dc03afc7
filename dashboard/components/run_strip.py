"""The strip of runs over time above the runs grid: a compact bar chart of the grid's time range,
one bar per time bucket stacked by status (issue 21, item 1), drawn by one glyph.

It counts the runs the grid's query admits, whatever window of trigger times the grid narrows
to (the window is what the strip chooses): exact counts, one DuckDB GROUP BY per index version
and second, shared by the sessions asking (queries.strip_counts). A bucket is 5 minutes to
3 hours, so a range has 36 to 73 bars (queries.strip_bucket). Hovering a bar tells its start,
end and runs per status; clicking it narrows the grid to its window (the grid's `start` and
`end`, in the URL; the grid's chip widens again). Live: counted again when a run the query
could admit changes, at most every LIVE_SECONDS, and as the range slides (the page's timer).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace

import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool, Range1d, TapTool
from bokeh.plotting import figure

from dashboard import clock, queries
from dashboard.changes import Change
from dashboard.components.runs_grid import RunsQuery, window_text
from dashboard.shared_answers import shared_per_version
from dashboard.statuses import COLORS, STATUSES
from dashboard.store import Store

#: Counting again, live, at most this often (as the failure signatures).
LIVE_SECONDS = 5.0
HEIGHT = 110
#: Share of a bucket's width its bar fills.
BAR_SHARE = 0.85
_TOOLTIP = """<div style="font-size:12px;line-height:1.4"><b>@label</b><br>@summary</div>"""
#: The columns of the strip's source (strip_source).
SEGMENT_COLUMNS = ("start", "end", "mid", "width", "status", "count", "bottom", "top", "color", "runs", "label",
                   "summary", "window")


def strip_source(strip: pd.DataFrame) -> dict[str, list]:
    """The strip's columns for its Bokeh source, one bar segment per bucket and status with runs
    (stacked in STATUSES' order, so one glyph draws the whole strip): its bucket's start, end,
    middle and width (ms) on the wall clock of the page's zone (dashboard.clock), its status,
    count, bottom, top and colour, and its bucket's runs, hover text (plain text: Bokeh escapes a
    field's value) and window as the grid's URL says it (UTC)."""
    shown = clock.current()
    start, end = shown.wall(strip["start"]), shown.wall(strip["end"])
    width = (strip["end"] - strip["start"]).dt.total_seconds() * 1000 * BAR_SHARE
    mid = start + (strip["end"] - strip["start"]) / 2

    def label(first, last) -> str:
        first, last = shown.at(first), shown.at(last)
        one_day = first.date() == (last - dt.timedelta(microseconds=1)).date()
        return (f"{first:%Y-%m-%d %H:%M}–{last:%H:%M}" + ("" if one_day else f" ({last:%Y-%m-%d})")
                + f" {shown.name}")

    def summary(row) -> str:
        counts = [f"{status} {row[status]:,}" for status in STATUSES if row[status]]
        return f"{row['runs']:,} run{'s' * (row['runs'] != 1)}" + (": " + ", ".join(counts) if counts else "")

    segments: dict[str, list] = {name: [] for name in SEGMENT_COLUMNS}
    for i, (_, row) in enumerate(strip.iterrows()):
        bucket = {"start": start.iloc[i], "end": end.iloc[i], "mid": mid.iloc[i], "width": width.iloc[i],
                  "runs": int(row["runs"]), "label": label(row["start"], row["end"]), "summary": summary(row),
                  "window": f"{window_text(row['start'])}/{window_text(row['end'])}"}
        bottom = 0
        for status in STATUSES:
            if count := int(row[status]):
                segment = {**bucket, "status": status, "count": count, "bottom": bottom, "top": bottom + count,
                           "color": COLORS[status]}
                for name, column in segments.items():
                    column.append(segment[name])
                bottom += count
    return segments


class RunStrip(pn.viewable.Viewer):
    """The grid's runs per time bucket and status, over its time range; a click narrows the grid."""

    query = param.ClassSelector(class_=RunsQuery, doc="The grid's view state: what is counted, and what a click sets.")
    store = param.ClassSelector(class_=Store, doc="What the runs are read from.")

    def __init__(self, **params):
        super().__init__(**params)
        self.source = ColumnDataSource(strip_source(_empty()))
        self.plot = figure(height=HEIGHT, sizing_mode="stretch_width", x_axis_type="datetime", tools="",
                           toolbar_location=None, min_border_left=40, min_border_right=10, min_border_top=4,
                           y_range=Range1d(0, 1), x_range=Range1d(0, 1), outline_line_color=None)
        bars = self.plot.vbar(x="mid", width="width", bottom="bottom", top="top", color="color", source=self.source,
                              line_color=None, name="td-strip-bars", nonselection_fill_alpha=0.3)
        self.plot.add_tools(HoverTool(renderers=[bars], tooltips=_TOOLTIP, point_policy="follow_mouse"),
                            TapTool(renderers=[bars]))
        self.plot.yaxis.ticker.desired_num_ticks = 3
        self.plot.yaxis.minor_tick_line_color = None
        self.plot.xgrid.grid_line_color = None
        self.plot.ygrid.grid_line_alpha = 0.4
        self.plot.axis.major_label_text_font_size = "11px"
        self.plot.axis.axis_line_color = "#cbd5e1"
        self.source.selected.on_change("indices", self._clicked)
        self.caption = pn.pane.HTML("", margin=(0, 10), styles={"font-size": "12px", "color": "#475569"})
        self.pane = pn.pane.Bokeh(self.plot, sizing_mode="stretch_width", height=HEIGHT, margin=(0, 10))
        self.query.param.watch(lambda *_: self.refresh(), ["search", "status", "late", "since", "group", "failure"])
        self.query.param.watch(lambda *_: _on_document(self._select_window), ["start", "end"])
        self.refresh()

    def __panel__(self) -> pn.Column:
        return pn.Column(self.caption, self.pane, sizing_mode="stretch_width", margin=0,
                         css_classes=["td-run-strip"])

    def run_filter(self) -> queries.RunFilter:
        """What the strip counts: the grid's runs over its whole range (whatever window it shows)."""
        return replace(self.query.run_filter(), start=None, end=None)

    def refresh(self) -> None:
        """Count the runs per bucket again and draw them (the same bars, new heights)."""
        # To the whole second, as the grid: sessions counting together share one answer.
        now = queries.utcnow().replace(microsecond=0)
        try:
            run_filter = self.run_filter()
            bucket = queries.strip_bucket(run_filter.since)
            strip = _counts(self.store, run_filter, bucket, now)
        except ValueError:  # a filter the grid reports itself
            return
        data, top = strip_source(strip), max(1, int(strip["runs"].max())) * 1.08
        first, last = clock.current().wall(pd.Series([strip["start"].iloc[0], strip["end"].iloc[-1]]))

        def draw() -> None:
            self.source.data = data
            self.plot.x_range.update(start=first, end=last)
            self.plot.y_range.update(start=0, end=top)
            self._select_window()

        _on_document(draw)
        minutes = int(bucket.total_seconds() // 60)
        size = f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"
        self.caption.object = (f"Runs triggered per {size}, by status: {int(strip['runs'].sum()):,} in the last "
                               f"{self.query.since} · click a bar to show only its runs")

    def _select_window(self) -> None:
        """Highlight the bar of the grid's window, if it is one of the strip's."""
        window = f"{self.query.start}/{self.query.end}"
        chosen = [i for i, bucket in enumerate(self.source.data["window"]) if bucket == window]
        if self.source.selected.indices != chosen:
            self.source.selected.indices = chosen

    def _clicked(self, _attr, _old, new) -> None:
        if not new:  # a click beside the bars: the window stays (its chip widens again)
            return
        start, end = self.source.data["window"][new[0]].split("/")
        if (start, end) != (self.query.start, self.query.end):
            self.query.param.update(start=start, end=end)
        else:  # another status of the chosen bar: the whole bar stays highlighted
            self._select_window()

    def changed(self, change: Change) -> None:
        """Live: count again when a run the strip could count changes."""
        if change.many_runs or not change.runs:
            if change.many_runs:
                self.refresh()
            return
        run_filter = replace(self.run_filter(), statuses=())  # a status change moves a run between stacks
        if any(run_filter.may_admit(run) for run in change.runs.values()):
            self.refresh()


def _on_document(change: Callable[[], None]) -> None:
    """Make `change` to the plot's Bokeh models on the session's document, under its lock.

    Panel applies its own widgets' changes safely from any thread, but not a plain Bokeh model's:
    a click on the grid's chip is handled on one of Panel's worker threads (`threads:` in
    panel_serve.yaml), and the strip's selection changed there failed for want of the lock.
    Outside a server session (a notebook, a test) it happens at once.
    """
    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        change()
    else:
        doc.add_next_tick_callback(change)


_counts = shared_per_version(queries.strip_counts)


def _empty() -> pd.DataFrame:
    now = pd.Timestamp(queries.utcnow()).floor("h")
    return pd.DataFrame({"start": [now], "end": [now + pd.Timedelta(hours=1)], **dict.fromkeys(STATUSES, [0]),
                         "runs": [0]})
