"""/task-runs/<run_id>: one run's details card, its lifecycle timeline and its logs, live.

`?stream=stderr&line=1234` opens the log on that line's page with the line marked.
"""

from __future__ import annotations

import html

import pandas as pd
import panel as pn

from dashboard import queries
from dashboard.changes import Change
from dashboard.components import live
from dashboard.components.badges import STYLESHEET, adhoc_badge, status_badge
from dashboard.components.resources import resource
from dashboard.components.log_viewer import LogPosition, LogViewer
from dashboard.components.timers import every
from dashboard.formatting import clock, duration_seconds, human_duration, plain
from dashboard.pages.layout import page_template
from dashboard.pages.url_state import keep_in_url, page_args, report_url_problems, url_args
from dashboard.spool import SpoolError, validate_run_id
from dashboard.statuses import COLORS, LIFECYCLE, TERMINAL, is_terminal
from dashboard.store import Store

_CARD_STYLE = STYLESHEET + resource("run_card.css")

_ICONS = {
    "done": '<path d="M5 12l5 5L20 7"/>',
    "bad": '<path d="M6 6l12 12M18 6L6 18"/>',
    "now": '<circle cx="12" cy="12" r="4" fill="currentColor"/>',
    "future": '<circle cx="12" cy="12" r="3"/>',
}


def _icon(kind: str) -> str:
    return (f'<svg viewBox="0 0 24 24" width="16" height="16" fill="none" stroke="currentColor" stroke-width="3" '
            f'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">{_ICONS[kind]}</svg>')


def _when(value) -> str:
    return "—" if plain(value) is None else clock(value) + " UTC"


def requested_run_id() -> str:
    """The run id from the path (/task-runs/<run_id>) or, under plain `panel serve`, ?run_id=."""
    run_id = pn.state.route_params.get("run_id") if pn.state.curdoc else None
    return run_id or url_args().get("run_id", "")


def details_html(run: dict) -> str:
    """The task details card: every value escaped."""
    title = html.escape(run["task"]) + (adhoc_badge() if run["adhoc"] else "")
    exit_code = plain(run["exit_code"])
    rows = [
        ("Status", status_badge(run["status"])),
        ("Group", html.escape(plain(run["grp"]) or "—")),
        ("Agent", html.escape(plain(run["agent"]) or "—")),
        ("Exit code", "—" if exit_code is None else str(int(exit_code))),
        ("Duration", human_duration(duration_seconds(run["started"], run["finished"])) or "—"),
        ("Trigger time", _when(run["trigger_time"])),
        ("Started", _when(run["started"])),
        ("Finished", _when(run["finished"])),
    ]
    if plain(run.get("blocked")):
        rows.append(("Blocked", f'<span class="td-blocked">BLOCKED: {html.escape(run["blocked"])}</span>'
                                " (it can no longer start)"))
    if plain(run["message"]):
        rows.append(("Message", html.escape(run["message"])))
    rows.append(("Run id", html.escape(run["run_id"])))
    cells = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return f'<dl class="td-card"><div class="td-title">{title}</div>{cells}</dl>'


def timeline_html(run: dict, transitions: pd.DataFrame) -> str:
    """One step per status the run went through, in time order, then the steps still ahead."""
    seen: dict[str, tuple[pd.Timestamp, str | None]] = {}
    for status, ts, message in zip(transitions["status"], transitions["ts"], transitions["message"]):
        seen.setdefault(status, (ts, plain(message)))
    steps, previous = [], None
    current = run["status"]
    blocked = plain(run.get("blocked"))
    for status, (ts, message) in seen.items():
        if status == current and is_terminal(status):
            kind = "done" if status == "SUCCESS" else "bad"
        elif status == current and not blocked:
            kind = "now"
        else:
            kind = "done"
        gap = "" if previous is None else f" · +{human_duration((ts - previous).total_seconds())}"
        note = f'<div class="td-step-note">{html.escape(message)}</div>' if message else ""
        steps.append((kind, status, f'<div class="td-step-time">{_when(ts)}<span class="td-step-gap">{gap}</span>'
                                    f"</div>{note}"))
        previous = ts
    if blocked and not is_terminal(current):
        steps.append(("bad", "BLOCKED", f'<div class="td-step-note">{html.escape(blocked)}: '
                                        "this run can no longer start</div>"))
    elif not is_terminal(current):
        ahead = [s for s in LIFECYCLE if s not in seen and LIFECYCLE.index(s) > LIFECYCLE.index(current)]
        steps += [("future", status, "") for status in ahead]
        steps.append(("future", " | ".join(TERMINAL), ""))
    items = "".join(
        f'<li class="td-{kind}{" td-future" if kind == "future" else ""}" data-status="{html.escape(status)}">'
        f'<span class="td-icon">{_icon(kind)}</span><div><div class="td-step-name" '
        f'style="color:{COLORS.get(status, "inherit") if kind != "future" else "inherit"}">{html.escape(status)}'
        f"</div>{detail}</div></li>" for kind, status, detail in steps)
    return f'<ol class="td-timeline" aria-label="Lifecycle timeline">{items}</ol>'


def opening_stream(store: Store, run: dict) -> str:
    """The stream a run's page opens on: for a failed run, the one holding its error lines
    (stdout first, where both do), so a failure written to stderr is what the user sees first."""
    if run["status"] != "FAILED":
        return "stdout"
    pattern = store.config.log_emphasis.error_pattern
    for stream in ("stdout", "stderr"):
        if queries.next_line_matching(store, run["run_id"], stream, pattern, 0) is not None:
            return stream
    return "stdout"


def not_found(store: Store, run_id: str, reason: str):
    back = html.escape(store.links.page("task_runs"))
    message = pn.pane.HTML(
        f'<div style="padding:32px;border:1px dashed #cbd5e1;border-radius:10px;background:#f8fafc;'
        f'font:15px system-ui,sans-serif"><h2 style="margin-top:0">Run not found</h2>'
        f"<p>{html.escape(reason)}</p><p><a href='{back}'>← Back to Task Runs</a></p></div>",
        sizing_mode="stretch_width")
    return page_template(store, "Run not found", "", message)


class RunDetailView:
    """The body of the page for one run in one session."""

    def __init__(self, store: Store, run: dict, position: LogPosition):
        self.store = store
        self.run_id = run["run_id"]
        self.run = run
        self.details = pn.pane.HTML(details_html(run), stylesheets=[_CARD_STYLE], width=420)
        self.timeline = pn.pane.HTML(timeline_html(run, queries.transitions(store, self.run_id)),
                                     stylesheets=[_CARD_STYLE], sizing_mode="stretch_width")
        self.logs = LogViewer(store, self.run_id, running=not (is_terminal(run["status"]) or run["blocked"]),
                              position=position)
        self.logs.reload_button.on_click(lambda _: self.refresh_run())

    def panel(self) -> pn.Column:
        top = pn.Row(pn.Column(pn.pane.HTML("<h3 style='margin:0'>Task details</h3>"), self.details),
                     pn.Column(pn.pane.HTML("<h3 style='margin:0'>Lifecycle</h3>"), self.timeline,
                               sizing_mode="stretch_width"),
                     sizing_mode="stretch_width")
        return pn.Column(top, pn.pane.HTML("<h3 style='margin:8px 0 0 0'>Logs</h3>"), self.logs.panel(),
                         sizing_mode="stretch_width")

    def refresh_run(self) -> None:
        run = queries.run(self.store, self.run_id)
        if run is None:
            return
        self.run = run
        self.details.object = details_html(run)
        self.timeline.object = timeline_html(run, queries.transitions(self.store, self.run_id))

    def changed(self, change: Change) -> None:
        if change.run_changed(self.run_id):
            self.refresh_run()
        self.logs.changed(change)

    def tick(self) -> None:
        """While the run goes on, its duration counts up."""
        if plain(self.run["started"]) is not None and plain(self.run["finished"]) is None:
            self.details.object = details_html(self.run)


@page_args(LogPosition, "run_id")
def page(store: Store):
    run_id = requested_run_id()
    try:
        validate_run_id(run_id)
    except SpoolError as exc:
        return not_found(store, run_id, str(exc))
    run = queries.run(store, run_id)
    if run is None:
        return not_found(store, run_id, f"The index has no run {run_id!r}. It may not have been ingested yet, "
                                      "or the id is mistyped.")
    position = LogPosition()
    args = url_args()
    problems = position.from_url(args)
    if "stream" not in args:
        position.stream = opening_stream(store, run)
    view, _ = live.follow(store, lambda: RunDetailView(store, run, position),
                          min_interval=store.push_min_interval)
    every(1, view.tick)
    back = html.escape(store.links.page("task_runs"))
    header = pn.pane.HTML(f'<a href="{back}" style="font:14px system-ui,sans-serif">← Task Runs</a>')
    template = page_template(store, f"Run {run_id}", "", pn.Column(
        header, view.panel(), keep_in_url(position, position.to_url), sizing_mode="stretch_width"))
    report_url_problems(problems)
    return template


if __name__.startswith("bokeh"):  # plain `panel serve` of this module: the process's own store
    from dashboard.services import process_store

    page(process_store()).servable()
