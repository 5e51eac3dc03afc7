"""The timeline: the runs of a time range as bars over time, one row per task (or agent), live.

Each run is a bar from its start to its finish (to now while it runs) in its status's colour,
after a thin pale bar for the time it waited between its trigger and its start. Bars are one
HoloViews element fed through a Pipe: a change sends new rows to the same Bokeh glyphs, so the
user's zoom and pan stay. Colours come from a status colour map in the browser (a colour a row
cost HoloViews 0.15 ms each to check). A click on a bar opens its run; hovering tells its times.
"""

from __future__ import annotations

import html

import holoviews as hv
import pandas as pd
import panel as pn
import param
from bokeh.models import DataRange1d, OpenURL, TapTool
from bokeh.transform import factor_cmap

from dashboard import clock, queries
from dashboard.changes import Change
from dashboard.components.view_state import UrlState
from dashboard.formatting import utcnow
from dashboard.statuses import COLORS, STATUSES
from dashboard.store import Store

#: At most this many runs are drawn: the newest of the range.
MAX_RUNS = 5_000
ROW_PX = 22
MIN_HEIGHT = 180
#: Each bar's data beside its ends: what the hover tells (times are formatted in the browser).
_VDIMS = ["run_id", "task", "agent", "status", "trigger", "seconds", "part"]
_TOOLTIPS = [("Run", "@run_id"), ("Task", "@task"), ("Status", "@status"), ("Agent", "@agent"),
             ("Triggered", "@trigger{%Y-%m-%d %H:%M:%S}"), ("From", "@x0{%H:%M:%S}"), ("To", "@x1{%H:%M:%S}"),
             ("Seconds", "@seconds{0,0.0}")]
_FORMATTERS = {"@trigger": "datetime", "@x0": "datetime", "@x1": "datetime"}


class TimelineQuery(UrlState):
    """Which runs the timeline draws and how: its view state, all of it in the page's URL."""

    url_params = ("since", "group", "by", "status")

    since = param.Selector(default="6h", objects=list(queries.TIME_RANGES), doc="Runs triggered this recently.")
    group = param.String(default="", doc="Only this group; empty for all.")
    by = param.Selector(default="task", objects=["task", "agent"], doc="One row of bars per task, or per agent.")
    status = param.Selector(default="", objects={"All statuses": "", **{s: s for s in STATUSES}},
                            doc="Only runs in this status; empty for all.")

    def run_filter(self) -> queries.RunFilter:
        return queries.RunFilter(statuses=(self.status,) if self.status else (),
                                 since=queries.parse_duration(self.since), group=self.group or None)


def timeline_rows(runs: pd.DataFrame, by: str, now) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The bars of `runs` (queries.timeline_runs): the waits (trigger to start), the runs (start to
    finish, or now), and the row labels from top to bottom."""
    rows = runs[by].fillna("(no agent)" if by == "agent" else "")
    labels = sorted(rows.unique(), key=str.lower)
    place = {label: float(len(labels) - 1 - n) for n, label in enumerate(labels)}  # the first on top
    y = rows.map(place)
    now = pd.Timestamp(now)
    start, end = runs["started"], runs["finished"].fillna(now)
    # A run waits from its trigger to its start; one that never started, to its end or until now.
    waited = start.fillna(runs["finished"]).fillna(now)
    common = {"run_id": runs["run_id"], "task": runs["task"], "agent": runs["agent"].fillna(""),
              "status": runs["status"], "trigger": runs["trigger_time"]}
    waits = pd.DataFrame({"x0": runs["trigger_time"], "y0": y, "x1": waited, "y1": y, **common,
                          "seconds": (waited - runs["trigger_time"]).dt.total_seconds(), "part": "wait"})
    started = start.notna().to_numpy()
    bars = pd.DataFrame({"x0": start, "y0": y, "x1": end, "y1": y, **common,
                         "seconds": (end - start).dt.total_seconds(), "part": "run"})[started]
    return waits.reset_index(drop=True), bars.reset_index(drop=True), labels


def _colour_by_status(plot, _element) -> None:
    """Each bar in its status's colour, mapped in the browser from its status (HoloViews' own
    colour mapping sent a copy of the status column and spent 90 of 250 ms an update on it)."""
    glyph = plot.handles["glyph"]  # hooks run on each update; a colour map each plot (a model has one document)
    if getattr(glyph.line_color, "field", None) != "status":
        glyph.line_color = factor_cmap("status", palette=[COLORS[status] for status in STATUSES],
                                       factors=list(STATUSES))


def _columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The bars as HoloViews is handed them: text columns categorical. HoloViews reads each column
    value by value (to decode bytes, to find ranges), which for Arrow-backed text costs a new Python
    object a value each time; NumPy text it turns into lists afterwards and so sends twice."""
    return frame.astype({name: "category" for name, column in frame.items() if pd.api.types.is_string_dtype(column)})


class RunTimeline(TimelineQuery, pn.viewable.Viewer):
    """The runs of a range over time (the body of /timeline, and a notebook's view), live. Its
    view state is its own parameters (TimelineQuery's)."""

    store = param.ClassSelector(class_=Store, doc="What the runs are read from.")

    def __init__(self, **params):
        super().__init__(**params)
        empty = timeline_rows(queries.timeline_runs(self.store, limit=0), self.by, utcnow())
        self._waits, self._bars = hv.streams.Pipe(data=_columns(empty[0])), hv.streams.Pipe(data=_columns(empty[1]))
        self._labels: list[str] = []
        self.summary = pn.pane.HTML("", margin=(0, 10))
        self.plot = pn.pane.HoloViews(self._element(), sizing_mode="stretch_width", linked_axes=False)
        self.since_buttons = pn.widgets.RadioButtonGroup.from_param(
            self.param.since, label="Time range", color="light", variant="outline", margin=(5, 10))
        self.by_buttons = pn.widgets.RadioButtonGroup.from_param(
            self.param.by, label="One row per", color="light", variant="outline", margin=(5, 10))
        self.group_select = pn.widgets.Select(label="Group", options=self._group_options(), value=self.group,
                                              width=170)
        self.group_select.param.watch(lambda e: self.param.update(group=e.new), "value")
        self.status_select = pn.widgets.Select.from_param(self.param.status, label="Status", width=150)
        self.reset = pn.widgets.Button(label="Reset zoom", color="primary", variant="outline", margin=(5, 10),
                                       description="Scroll over the bars to zoom in time, drag to move")
        self.reset.on_click(lambda _: setattr(self.plot, "object", self._element()))
        self.param.watch(lambda *_: self.refresh(), ["since", "group", "by", "status"])
        self.refresh()

    def __panel__(self) -> pn.Column:
        def labelled(text, widget):
            return pn.Column(pn.pane.HTML(text, margin=(5, 10, 0, 10)), widget, margin=0)
        return pn.Column(
            pn.FlexBox(labelled("Time range", self.since_buttons), labelled("One row per", self.by_buttons),
                       self.group_select, self.status_select, self.reset, flex_wrap="wrap", align_items="flex-end",
                       sizing_mode="stretch_width"),  # on more lines when narrow
            self.summary, self.plot, sizing_mode="stretch_width")

    # ---- drawing ------------------------------------------------------------------------

    def _element(self) -> hv.DynamicMap:
        link = self.store.links.page("run_detail", "RUN").replace("RUN", "@run_id")

        def open_run_on_click(plot, _element) -> None:  # hooks run on each update: one tap tool
            renderer = plot.handles["glyph_renderer"]
            if not any(isinstance(tool, TapTool) and renderer in tool.renderers for tool in plot.state.tools):
                plot.state.add_tools(TapTool(renderers=[renderer], callback=OpenURL(url=link, same_tab=True)))

        def drawn(pipe: hv.streams.Pipe, **style) -> hv.DynamicMap:
            return hv.DynamicMap(lambda data: hv.Segments(data, kdims=["x0", "y0", "x1", "y1"], vdims=_VDIMS).opts(
                show_legend=False, tools=["hover"], hover_tooltips=_TOOLTIPS, hover_formatters=_FORMATTERS,
                apply_ranges=False, **style), streams=[pipe])

        overlay = (drawn(self._waits, alpha=0.35, line_width=4, hooks=[_colour_by_status])
                   * drawn(self._bars, line_width=12, hooks=[open_run_on_click, _colour_by_status]))
        return overlay.opts(hv.opts.Overlay(
            responsive=True, height=MIN_HEIGHT, xlabel="", ylabel="", show_grid=True, framewise=False,
            active_tools=["xwheel_zoom", "xpan"], toolbar=None, default_tools=["xpan", "xwheel_zoom"],
            hooks=[self._label_rows]))

    def _label_rows(self, plot, _element) -> None:
        # Ranges that follow the data (new runs, another row count) until the user zooms or
        # pans, and again after a reset: Bokeh's DataRange1d does that (HoloViews sets fixed ones).
        if not isinstance(plot.state.x_range, DataRange1d):
            plot.state.x_range = DataRange1d(range_padding=0.02)
            plot.state.y_range = DataRange1d(range_padding=0.6, range_padding_units="absolute")
        plot.state.yaxis.ticker = list(range(len(self._labels)))
        plot.state.yaxis.major_label_overrides = {len(self._labels) - 1 - n: label
                                                  for n, label in enumerate(self._labels)}
        plot.state.xaxis.formatter.context = None
        plot.state.height = max(MIN_HEIGHT, ROW_PX * len(self._labels) + 80)

    # ---- data -----------------------------------------------------------------------------

    def refresh(self) -> None:
        """The one query: the newest MAX_RUNS runs of the range, drawn anew."""
        now = utcnow()
        runs = queries.timeline_runs(self.store, self.run_filter(), limit=MAX_RUNS + 1, now=now)
        more = len(runs) > MAX_RUNS
        runs = runs.iloc[:MAX_RUNS]
        waits, bars, self._labels = timeline_rows(runs, self.by, now)
        times = clock.current()
        for frame in (waits, bars):  # the axis and the hover read the page's zone
            if not frame.empty:
                frame[["x0", "x1", "trigger"]] = frame[["x0", "x1", "trigger"]].apply(times.wall)
        waits, bars = _columns(waits), _columns(bars)
        with pn.io.hold(freeze=True):  # both parts' new bars and the summary in one message, drawn once
            self._waits.send(waits)
            self._bars.send(bars)
            self._summarise(len(runs), more, times)
            self.group_select.options = self._group_options()

    def _summarise(self, shown_runs: int, more: bool, times: clock.Clock) -> None:
        shown = f"{shown_runs:,} run{'s' * (shown_runs != 1)}"
        self.summary.object = (f"{'The newest ' if more else ''}{shown} triggered in the last "
                               f"{html.escape(self.since)}, one row per {self.by} · "
                               f"{html.escape(times.absolute_caption)} · "
                               "scroll to zoom, drag to move, click a bar to open its run" if shown_runs else
                               f"No runs triggered in the last {html.escape(self.since)} match.")

    def changed(self, change: Change) -> None:
        """Hub delivery: draw again when a changed run could be in view."""
        run_filter, now = self.run_filter(), utcnow()
        if change.many_runs or change.tasks or any(run_filter.may_admit(run, now) for run in change.runs.values()):
            self.refresh()

    def _group_options(self) -> dict[str, str]:
        return {"All groups": "", **{group: group for group in queries.groups(self.store)}}
