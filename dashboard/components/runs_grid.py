"""The runs grid: the live runs of a time range with its filters, status chips and pager.

What the user looks at is the component's own parameters (search text, statuses, time range,
group, sort, page, page size). DuckDB answers them with one page and the totals; the hub says
when runs change, and the grid queries again only when a changed run is shown or could be.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import replace

import panel as pn
import param

from dashboard import clock, queries
from dashboard.changes import Change
from dashboard.components import MAX_NUMBER
from dashboard.components.badges import STYLESHEET
from dashboard.components.resources import resource
from dashboard.components.runs_table import SORT_COLUMNS, grid_rows, runs_table, same_rows
from dashboard.components.view_state import NAMES, UrlState, UrlText, word_for
from dashboard.estimates import running_estimates
from dashboard.failures import KEY_CHARS, failure_runs
from dashboard.formatting import utcnow
from dashboard.shared_answers import shared_per_version
from dashboard.spool import parse_timestamp
from dashboard.statuses import COLORS, STATUSES, SYMBOLS
from dashboard.store import Store

PAGE_SIZES = (25, 50, 100)
#: A window's ends as the URL and the parameters keep them: ISO 8601 UTC to the second.
WINDOW_TIME = r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)?$"


def window_text(moment: dt.datetime) -> str:
    """A naive-UTC time as a window's end is written (`2026-12-02T10:00:00Z`)."""
    return moment.replace(microsecond=0).isoformat() + "Z"


def _window_time(text: str) -> str:
    """A window end from the URL: any ISO 8601 time (no zone: UTC), written as window_text."""
    return window_text(parse_timestamp(text, "window")) if text.strip() else ""


_WINDOW_URL = UrlText(parse=_window_time, format=str,
                      hint="use an ISO 8601 time in UTC such as 2026-12-02T10:00:00Z (the strip of runs sets it)")


class RunsQuery(UrlState):
    """Which runs the grid shows: its view state, every parameter also in the page's URL."""

    #: The parameters that choose which runs are shown (the rest order and page them).
    filter_params = ("search", "status", "late", "since", "start", "end", "group", "failure")
    url_params = (*filter_params, "sort", "descending", "page", "page_size")
    url_texts = {"status": NAMES, "descending": word_for("desc", "asc"), "late": word_for("yes", "no"),
                 "start": _WINDOW_URL, "end": _WINDOW_URL,
                 "failure": UrlText(parse=str, format=str, hint=(
                     f"use a failure signature's key ({KEY_CHARS} hexadecimal digits, from the runs page's "
                     "Failure signatures)"))}

    search = param.String(default="", doc="Part of a task name, any case.")
    status = param.ListSelector(default=[], objects=list(STATUSES), doc="Only runs in these statuses.")
    late = param.Boolean(default=False, doc="Only runs under way that run late (dashboard.estimates).")
    since = param.Selector(default="24h", objects=list(queries.TIME_RANGES), doc="Runs triggered this recently.")
    start = param.String(default="", regex=WINDOW_TIME, doc=(
        "Only runs triggered at or after this time (ISO 8601 UTC, as window_text writes it); empty for no bound. "
        "A click on the strip of runs over time sets it and `end`."))
    end = param.String(default="", regex=WINDOW_TIME, doc="Only runs triggered before this time; empty for no bound.")
    group = param.String(default="", doc="Only this group; empty for all.")
    failure = param.String(default="", regex=f"^([0-9a-f]{{{KEY_CHARS}}})?$", doc=(
        "Only the failed and terminated runs of this failure signature (its key: dashboard.failures); "
        "empty for all."))
    sort = param.Selector(default="trigger_time", objects=list(queries.SORTABLE), doc="The column runs are sorted by.")
    descending = param.Boolean(default=True, doc="Largest (newest) first.")
    page = param.Integer(default=1, bounds=(1, MAX_NUMBER), doc="The page shown, from 1 (past the last: the last).")
    page_size = param.Selector(default=50, objects=list(PAGE_SIZES), doc="Runs a page.")

    def run_filter(self) -> queries.RunFilter:
        """The runs shown (RunsGrid narrows them to the failure's runs too)."""
        return self.base_filter()

    def base_filter(self) -> queries.RunFilter:
        """The runs of the search, statuses, time range, window and group: all but the failure."""
        return queries.RunFilter(statuses=tuple(self.status), task_text=self.search.strip(),
                                 since=queries.parse_duration(self.since), group=self.group or None,
                                 start=parse_timestamp(self.start, "start") if self.start else None,
                                 end=parse_timestamp(self.end, "end") if self.end else None)

    @property
    def filtered(self) -> bool:
        """Whether anything but the time range narrows the runs."""
        return bool(self.search.strip() or self.status or self.late or self.group or self.failure or self.start
                    or self.end)

    def window_label(self) -> str:
        """The window of trigger times as its chip says it, in the page's zone ('10:00–11:00', dated
        unless today there), or ''."""
        if not (self.start or self.end):
            return ""
        shown = clock.current()
        start, end = (shown.at(parse_timestamp(text)) if text else None for text in (self.start, self.end))
        today = shown.at(utcnow()).date()
        said_start = "…" if start is None else start.strftime("%H:%M" if start.date() == today else "%Y-%m-%d %H:%M")
        # The end's date only when it is another day's (a window to midnight ends that day).
        same_day = start is not None and end is not None and (end - dt.timedelta(microseconds=1)).date() == start.date()
        said_end = "…" if end is None else end.strftime(
            "%H:%M" if same_day or (start is None and end.date() == today) else "%Y-%m-%d %H:%M")
        return f"{said_start}–{said_end}"


class RunsGrid(RunsQuery, pn.viewable.Viewer):
    """The live runs grid with its filters, status chips and pager (the body of /task-runs, and a
    notebook's `store.runs_grid()`). Its view state is its own parameters (RunsQuery's); widgets
    follow them both ways, and one watcher turns a change of them into one query."""

    store = param.ClassSelector(class_=Store, doc="What the runs are read from.")

    def __init__(self, **params):
        super().__init__(**params)
        sort_field = next(field for field, column in SORT_COLUMNS.items() if column == self.sort)
        self.grid = runs_table(self.store.links.page("run_detail", ""), sort_field, self.descending)
        self._rows = self.grid.value  # empty until the first refresh
        # Widgets made from the parameters follow them both ways.
        self.search_input = pn.widgets.TextInput.from_param(
            self.param.search, label="Task name", placeholder="Search task name…", width=240)
        self.chips = pn.widgets.CheckButtonGroup(
            label="Status", options=self._chip_options(dict.fromkeys(STATUSES, 0)), value=list(self.status),
            color="light", stylesheets=[_chip_style()], margin=(5, 10))  # options carry counts: linked below
        self.chips.link(self, value="status", bidirectional=True)
        self.since_buttons = pn.widgets.RadioButtonGroup.from_param(
            self.param.since, label="Time range", color="light", variant="outline", margin=(5, 10))
        # As tall as the task name box beside it (Fast leaves a select 6 px shorter).
        self.group_select = pn.widgets.Select(label="Group", options=self._group_options(), width=170,
                                              stylesheets=[resource("select.css")])
        self.group_select.value = self.group if self.group in self.group_select.options.values() else ""
        self.group_select.param.watch(lambda e: self.param.update(group=e.new), "value")
        self.late_chip = pn.widgets.Toggle.from_param(
            self.param.late, label="LATE 0", color="light", stylesheets=[_LATE_CHIP], margin=(5, 10))
        self.window_chip = pn.widgets.Button(
            label="", color="primary", variant="outline", margin=(5, 10), visible=False, css_classes=["td-window-chip"],
            description="Only runs triggered in this window (a bar of the strip above): click to widen again")
        self.clear = pn.widgets.Button(label="Clear filters", color="primary", variant="outline", margin=(5, 10))
        self.summary = pn.pane.HTML("", margin=(0, 10), stylesheets=[STYLESHEET])
        self.failure_note = pn.pane.HTML("", margin=(0, 10), sizing_mode="stretch_width")
        self.all_failures = pn.widgets.Button(label="✕ Every run", color="primary", variant="outline",
                                              margin=(0, 10), description="Stop showing only this failure's runs")
        self.failure_row = pn.Row(self.failure_note, self.all_failures, visible=False, sizing_mode="stretch_width")
        self._failure_signature: str | None = None
        self.empty = pn.pane.HTML("", visible=False, margin=(10, 10), sizing_mode="stretch_width")
        pager_look = {"color": "primary", "variant": "outline"}
        self.first = pn.widgets.Button(label="«", width=42, description="First page", **pager_look)
        self.previous = pn.widgets.Button(label="‹ Previous", width=100, **pager_look)
        self.next = pn.widgets.Button(label="Next ›", width=100, **pager_look)
        self.last = pn.widgets.Button(label="»", width=42, description="Last page", **pager_look)
        self.page_label = pn.pane.HTML("", margin=(12, 10))
        self.page_size_select = pn.widgets.Select.from_param(self.param.page_size, label="", width=80,
                                                             margin=(5, 5))
        self._wire()
        self._layout = self._compose()
        self.refresh()

    # ---- layout ----------------------------------------------------------------------

    def __panel__(self) -> pn.Column:
        return self._layout

    def _compose(self) -> pn.Column:
        time_range = pn.Column(pn.pane.HTML("Time range", margin=(5, 10, 0, 10)), self.since_buttons, margin=0)
        filters = pn.FlexBox(self.search_input, time_range, self.group_select, self.clear, flex_wrap="wrap",
                             align_items="flex-end", sizing_mode="stretch_width")  # Clear filters wraps when narrow
        pager = pn.FlexBox(pn.Row(self.first, self.previous, self.page_label, self.next, self.last,
                                  styles={"flex-wrap": "wrap"}),
                           pn.Row(pn.pane.HTML("Rows per page", margin=(12, 0)), self.page_size_select),
                           justify_content="space-between", flex_wrap="wrap", sizing_mode="stretch_width")
        chips = pn.FlexBox(self.chips, self.late_chip, self.window_chip, flex_wrap="wrap", align_items="center",
                           sizing_mode="stretch_width")  # LATE goes under the statuses when narrow
        return pn.Column(filters, chips, self.failure_row, self.summary, self.empty, self.grid, pager,
                         sizing_mode="stretch_width")

    # ---- user actions ----------------------------------------------------------------

    def _wire(self) -> None:
        self.search_input.param.watch(self._search_typed, "value_input")
        self.grid.param.watch(self._sorted, "sorters")
        self.clear.on_click(lambda _: self.param.update(search="", status=[], late=False, group="", failure="",
                                                        start="", end="", page=1))
        self.window_chip.on_click(lambda _: self.param.update(start="", end=""))
        self.all_failures.on_click(lambda _: self.param.update(failure=""))
        self.first.on_click(lambda _: self.param.update(page=1))
        self.previous.on_click(lambda _: self.param.update(page=max(1, self.page - 1)))
        self.next.on_click(lambda _: self.param.update(page=self.page + 1))
        self.last.on_click(lambda _: self.param.update(page=10**9))  # the query clamps to the last
        self.param.watch(self._view_changed, list(RunsQuery.param))

    def _search_typed(self, event) -> None:
        """Search as the user types, once they pause (debounced on the server)."""
        typed = event.new
        if pn.state.curdoc is None or pn.state.curdoc.session_context is None:
            self.param.update(search=typed)
            return

        def settle() -> None:
            if self.search_input.value_input == typed and self.search != typed:
                self.param.update(search=typed)

        pn.state.curdoc.add_timeout_callback(settle, 300)

    def _sorted(self, event) -> None:
        if not event.new:
            return
        sorter = event.new[0]
        column = SORT_COLUMNS.get(sorter["field"])
        if column is not None and (column, sorter["dir"] == "desc") != (self.sort, self.descending):
            self.param.update(sort=column, descending=sorter["dir"] == "desc", page=1)

    def _view_changed(self, *events) -> None:
        """The one watcher: a change of the view state becomes one query."""
        changed = {event.name: event for event in events}
        if "page" not in changed:
            if "page_size" in changed:  # keep the first visible run on screen
                first = (self.page - 1) * changed["page_size"].old
                if first // self.page_size + 1 != self.page:
                    self.page = first // self.page_size + 1  # which comes back here
                    return
            elif changed.keys() & set(self.filter_params) and self.page != 1:
                self.page = 1  # a new filter starts on page 1 (which comes back here)
                return
        # Widgets not made from a parameter follow it here (a URL or Clear filters can change it too).
        if self.search_input.value_input != self.search:
            self.search_input.value_input = self.search
        group = self.group if self.group in self.group_select.options.values() else ""
        if self.group_select.value != group:
            self.group_select.value = group
        sort_field = next(field for field, column in SORT_COLUMNS.items() if column == self.sort)
        sorters = [{"field": sort_field, "dir": "desc" if self.descending else "asc"}]
        if self.grid.sorters != sorters:
            self.grid.sorters = sorters
        self.refresh()

    # ---- the failure signature --------------------------------------------------------

    def run_filter(self) -> queries.RunFilter:
        """The runs shown: the base filter's, and only the failure's and the late ones if asked."""
        base = self.base_filter()
        if self.late:
            base = replace(base, run_ids=_late_run_ids(self.store, base, queries.utcnow().replace(microsecond=0)))
        if not self.failure:
            self._failure_signature = None
            return base
        # Every status and a minute more than the range (the grid's own filter cuts them to it), to
        # the next minute: sessions and refreshes within a minute share one answer.
        now = queries.utcnow().replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        wider = replace(base, statuses=(), start=None, end=None,  # (the strip counts them over the whole range)
                        since=base.since + dt.timedelta(minutes=1) if base.since else None)
        self._failure_signature, run_ids = _failure_runs(self.store, wider, self.failure,
                                                         self.store.config.log_emphasis, now)
        return replace(base, run_ids=run_ids if base.run_ids is None else run_ids & base.run_ids)

    def _show_failure(self) -> None:
        self.failure_row.visible = bool(self.failure)
        if self.failure:
            said = (f"<code>{html.escape(self._failure_signature)}</code>" if self._failure_signature is not None
                    else "a signature with no failure in this range")
            note = f'<span class="td-failure-note">Only the runs that failed with {said}</span>'
            if note != self.failure_note.object:
                self.failure_note.object = note

    # ---- live updates ----------------------------------------------------------------

    def changed(self, change: Change) -> None:
        """Hub delivery: query again only if a changed run is shown or could now be."""
        if change.tasks:
            self.group_select.options = self._group_options()
        elif change.many_runs:
            pass
        elif not change.runs:
            return
        else:
            shown = set(self._rows["run_id"])
            run_filter = replace(self.run_filter(), statuses=())  # a status change may bring a run in
            if shown.isdisjoint(change.runs) and not any(
                    run_filter.may_admit(run) for run in change.runs.values()):
                return
        self.refresh()

    def refresh(self) -> None:
        """Query the page and the counts per status, and send only what differs."""
        # To the next whole second, so sessions refreshing together share one answer and a run that
        # started a moment ago never shows a negative duration.
        now = queries.utcnow().replace(microsecond=0) + dt.timedelta(seconds=1)
        view, rows = _page_and_rows(self.store, self.run_filter(), self.page, self.page_size, self.sort,
                                    self.descending, now, clock.current())
        if view.page != self.page:  # past the end (a filter shrank the set): show the last page
            self.page = view.page  # which refreshes again
            return
        if not same_rows(self._rows, rows):
            self.grid.value = rows
        self._rows = rows
        options = self._chip_options(view.status_counts)
        if options != self.chips.options:
            self.chips.options = options
        self._show_totals(view)
        self._show_failure()
        label = self.window_label()
        self.window_chip.visible = bool(label)
        if label and self.window_chip.label != f"{label} ×":
            self.window_chip.label = f"{label} ×"
        self.late_chip.label = f"LATE {_late_count(self.store, self.base_filter(), now):,}"

    def _show_totals(self, view: queries.RunsPage) -> None:
        last = view.first_row + len(view.runs) - 1
        summary = (f"Showing <b>{view.first_row:,}–{last:,}</b> of <b>{view.total:,}</b> runs"
                   if view.total else "No matching runs" if self.filtered else "No runs")
        summary += f" triggered in the last {html.escape(self.since)}"
        if self.start or self.end:
            summary += f", between {html.escape(self.window_label())}"
        summary += f" · {html.escape(clock.current().caption)}"
        if summary != self.summary.object:
            self.summary.object = summary
        self.page_label.object = f"Page <b>{view.page:,}</b> of {view.pages:,}"
        self.first.disabled = self.previous.disabled = view.page <= 1
        self.next.disabled = self.last.disabled = view.page >= view.pages
        self.clear.visible = self.filtered
        self.grid.visible = bool(view.total)
        self.empty.visible = not view.total
        if not view.total:
            self.empty.object = self._empty_message()

    def _empty_message(self) -> str:
        since = html.escape(self.since)
        if self.filtered:
            title = f"No runs match these filters in the last {since}."
            hint = "Change the search, status or group, choose a longer time range, or use <b>Clear filters</b>."
        elif (health := self.store.health).failure and not self.store.counts()["runs"]:
            # a lake-mode server started while its catalog cannot be attached, say: why it is empty
            title = "No runs to show: the index cannot be read now."
            hint = (f"Reading the {html.escape(health.source)} failed: {html.escape(health.failure)}. "
                    "This page fills in by itself once it can be read.")
        elif self.store.counts()["runs"]:
            title = f"No runs in the last {since}."
            hint = "Choose a longer time range above: older runs are kept."
        else:
            title = f"No runs in the last {since}."
            hint = ("Start the demo with <code>taskdash serve --demo</code>, or point <code>spool:</code> in "
                    "<code>panel_serve.yaml</code> at your scheduler's spool folder.")
        return (f'<div style="padding:28px;border:1px dashed #cbd5e1;border-radius:8px;text-align:center;'
                f'color:#334155;background:#f8fafc"><div style="font-size:17px;font-weight:600">{title}</div>'
                f'<div style="margin-top:6px">{hint}</div></div>')

    # ---- widget options --------------------------------------------------------------

    @staticmethod
    def _chip_options(counts: dict[str, int]) -> dict[str, str]:
        return {f"{status} {counts[status]:,}": status for status in STATUSES}

    def _group_options(self) -> dict[str, str]:
        return {"All groups": ""} | {group: group for group in queries.groups(self.store)}


@shared_per_version
def _page_and_rows(index, run_filter, page, page_size, sort, descending, now, times: clock.Clock):
    """One page of runs and the grid's rows for it, their times as `times` shows them (shared by
    the sessions showing that view with that clock)."""
    view = queries.runs_view(index, run_filter, page, page_size, sort, descending, now)
    with clock.fixed(times):
        return view, grid_rows(view.runs)


_failure_runs = shared_per_version(failure_runs)


@shared_per_version
def _late_run_ids(index, base_filter: queries.RunFilter, now) -> frozenset[str]:
    """The filter's runs under way that run late at `now` (shared by sessions asking within the second)."""
    estimates = running_estimates(index, now, queries.runs_under_way(index, base_filter, now))
    return frozenset(estimates.loc[estimates["late"].astype(bool), "run_id"])


def _late_count(index, base_filter: queries.RunFilter, now) -> int:
    """How many of the filter's runs run late (the LATE chip's count)."""
    return len(_late_run_ids(index, base_filter, now))


# The LATE chip looks like a status chip: the late tag's amber edge, filled when chosen.
_LATE_CHIP = """
.bk-btn { border: 1px solid #e5e7eb !important; border-left: 4px solid #d97706 !important; font-weight: 600;
          font-size: 12px; }
.bk-btn.bk-active { background: #d97706 !important; color: white !important; border-color: #d97706 !important; }
"""


def _chip_style() -> str:
    """Each status chip in its colour: a coloured edge, filled when chosen. A window too narrow
    for all of them on one line (a half screen, a phone) puts the rest on the next, none cut."""
    rules = []
    for i, status in enumerate(STATUSES, start=1):
        color = COLORS[status]
        rules.append(f".bk-btn-group > .bk-btn:nth-child({i}) {{ border-left: 4px solid {color}; }}")
        rules.append(f".bk-btn-group > .bk-btn:nth-child({i})::before {{ content: '{SYMBOLS[status]}'; "
                     "margin-right: 4px; }")
        rules.append(f".bk-btn-group > .bk-btn:nth-child({i}).bk-active {{ background: {color}; color: white; "
                     f"border-color: {color}; }}")
    return "\n".join(rules + [".bk-btn { font-size: 12px; font-weight: 600; padding: 4px 10px; }",
                               ".bk-btn-group { flex-wrap: wrap; row-gap: 4px; }",
                               ".bk-btn-group > .bk-btn { flex: 0 0 auto; }"])
