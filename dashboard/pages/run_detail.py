"""/task-runs/<run_id>: one run's details, its status changes and its logs, followed live."""

from __future__ import annotations

import html

import panel as pn

from dashboard import queries
from dashboard.app import Services, services
from dashboard.formatting import duration_seconds, human_duration, iso_utc, plain
from dashboard.hub import Change
from dashboard.spool import SpoolError, validate_run_id
from dashboard.pages.layout import page_template

TAIL_LINES = 500


def requested_run_id() -> str:
    """The run id from the path (/task-runs/<run_id>) or, under plain `panel serve`, ?run_id=."""
    run_id = pn.state.route_params.get("run_id") if pn.state.curdoc else None
    if not run_id and pn.state.session_args.get("run_id"):
        run_id = pn.state.session_args["run_id"][0].decode("utf-8", "replace")
    return run_id or ""


def details_html(run: dict) -> str:
    rows = [("Task", run["task"] + (" (ADHOC)" if run["adhoc"] else "")), ("Group", run["grp"]),
            ("Status", run["status"]), ("Agent", run["agent"]), ("Exit code", run["exit_code"]),
            ("Duration", human_duration(duration_seconds(run["started"], run["finished"]))),
            ("Trigger time", iso_utc(run["trigger_time"])), ("Started", iso_utc(run["started"])),
            ("Finished", iso_utc(run["finished"])), ("Message", run["message"])]
    cells = "".join(f"<tr><th style='text-align:left;padding-right:2em'>{name}</th>"
                    f"<td>{html.escape('' if plain(value) is None else str(value))}</td></tr>"
                    for name, value in rows)
    return f"<table>{cells}</table>"


def log_html(svc: Services, run_id: str, stream: str, total: int) -> str:
    first = max(1, total - TAIL_LINES + 1)
    lines = queries.log_page(svc.index, run_id, stream, first, TAIL_LINES)
    body = "\n".join(f"{n:>7}  {html.escape(text)}" for n, text in zip(lines["line_no"], lines["text"]))
    return f"<pre style='white-space:pre-wrap;font-size:12px;margin:0'>{body or '(no output yet)'}</pre>"


def not_found(svc: Services, run_id: str, reason: str):
    back = html.escape(svc.url("task_runs"))
    message = pn.pane.HTML(
        f"<h2>Run not found</h2><p>{html.escape(reason)}</p><p><a href='{back}'>Back to Task Runs</a></p>")
    return page_template(svc, "Run not found", "", message)


def page():
    svc = services()
    run_id = requested_run_id()
    try:
        validate_run_id(run_id)
    except SpoolError as exc:
        return not_found(svc, run_id, str(exc))
    run = queries.run(svc.index, run_id)
    if run is None:
        return not_found(svc, run_id, f"The index has no run {run_id!r}.")
    details = pn.pane.HTML(details_html(run))
    history = pn.widgets.Tabulator(queries.transitions(svc.index, run_id), show_index=False,
                                   disabled=True, sizing_mode="stretch_width", theme="simple")
    panes = {stream: pn.pane.HTML("", sizing_mode="stretch_width", height=500,
                                     styles={"overflow": "auto"})
             for stream in ("stdout", "stderr")}
    line_counts = {stream: pn.pane.Str("") for stream in panes}
    tabs = pn.Tabs(*[(stream, pn.Column(line_counts[stream], pane, sizing_mode="stretch_width"))
                     for stream, pane in panes.items()], sizing_mode="stretch_width")

    def refresh(change: Change | None = None) -> None:
        if change is not None and run_id not in change.runs and not any(
                key[0] == run_id for key in change.log_lines):
            return
        current = queries.run(svc.index, run_id)
        details.object = details_html(current)
        history.value = queries.transitions(svc.index, run_id)
        counts = queries.log_line_counts(svc.index, run_id)
        for stream, pane in panes.items():
            pane.object = log_html(svc, run_id, stream, counts[stream])
            line_counts[stream].object = f"{counts[stream]:,} lines (the last {TAIL_LINES} shown)"

    refresh()
    svc.hub.subscribe(refresh, min_interval=svc.config.push_min_interval_seconds)
    return page_template(svc, f"Run {run_id}", "", pn.Column(
        f"## Run {run_id}", details, "### Status changes", history, "### Logs", tabs,
        sizing_mode="stretch_width"))


if __name__.startswith("bokeh"):
    page().servable()
