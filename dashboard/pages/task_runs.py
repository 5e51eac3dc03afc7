"""/task-runs: the newest runs in a grid that follows the index live."""

from __future__ import annotations

import pandas as pd
import panel as pn

from dashboard import queries
from dashboard.app import Services, services
from dashboard.formatting import duration_seconds, human_duration
from dashboard.hub import Change
from dashboard.pages.layout import page_template

PAGE_SIZE = 100
COLUMNS = {"task": "Task", "grp": "Group", "status": "Status", "agent": "Agent",
           "trigger_time": "Trigger Time", "started": "Started", "finished": "Finished",
           "duration": "Duration", "logs": "Logs"}


def runs_frame(svc: Services) -> pd.DataFrame:
    """The newest page of runs, shaped for the grid."""
    runs = queries.runs_page(svc.index, limit=PAGE_SIZE)
    runs["duration"] = [human_duration(duration_seconds(s, f)) for s, f in zip(runs["started"], runs["finished"])]
    runs["logs"] = runs["run_id"]
    runs["task"] = [f"{task} [ADHOC]" if adhoc else task for task, adhoc in zip(runs["task"], runs["adhoc"])]
    return runs[list(COLUMNS)].rename(columns=COLUMNS)


def page():
    svc = services()
    detail_prefix = svc.url("run_detail", "")  # the link appends the run id
    grid = pn.widgets.Tabulator(
        runs_frame(svc), show_index=False, disabled=True, sizing_mode="stretch_width",
        formatters={"Logs": {"type": "link", "label": "view logs", "urlPrefix": detail_prefix}},
        titles={}, header_align="left", height=700, theme="simple",
        configuration={"columnDefaults": {"headerSort": False}},
    )
    summary = pn.pane.Str("", margin=(0, 10))

    def refresh(change: Change | None = None) -> None:
        grid.value = runs_frame(svc)
        counts = svc.index.counts()
        summary.object = (f"{counts['runs']:,} runs · {counts['log_lines']:,} log lines · "
                          f"{counts['ingest_errors']:,} ingest errors")

    refresh()
    svc.hub.subscribe(refresh, min_interval=svc.config.push_min_interval_seconds)
    # Durations of running runs tick even when nothing is ingested.
    pn.state.add_periodic_callback(refresh, period=int(svc.config.tick_seconds * 1000))
    return page_template(svc, "Task Runs", "Task Runs", pn.Column("## Task Runs", summary, grid,
                                                                  sizing_mode="stretch_width"))


if __name__.startswith("bokeh"):
    page().servable()
