"""/tasks: the defined tasks with their groups and dependencies."""

from __future__ import annotations

import panel as pn

from dashboard import queries
from dashboard.app import services
from dashboard.hub import Change
from dashboard.pages.layout import page_template


def page():
    svc = services()

    def frame():
        tasks = queries.tasks(svc.index)
        tasks["depends_on"] = [", ".join(deps) if deps is not None else "" for deps in tasks["depends_on"]]
        return tasks.rename(columns={"task": "Task", "grp": "Group", "depends_on": "Depends on",
                                     "description": "Description"})

    grid = pn.widgets.Tabulator(frame(), show_index=False, disabled=True, sizing_mode="stretch_width",
                                theme="simple", groupby=["Group"])

    def refresh(change: Change) -> None:
        if change.tasks:
            grid.value = frame()

    svc.hub.subscribe(refresh, min_interval=svc.config.push_min_interval_seconds)
    return page_template(svc, "Tasks & Groups", "Tasks & Groups",
                         pn.Column("## Tasks & Groups", grid, sizing_mode="stretch_width"))


if __name__.startswith("bokeh"):
    page().servable()
