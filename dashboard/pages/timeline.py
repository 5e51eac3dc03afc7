"""/timeline: the runs of a time range as bars over time (components.run_timeline), live, its view
in the URL."""

from __future__ import annotations

import panel as pn

from dashboard.components import live
from dashboard.components.run_timeline import RunTimeline, TimelineQuery
from dashboard.components.timers import every
from dashboard.pages.layout import page_template
from dashboard.pages.url_state import keep_in_url, page_args, report_url_problems, url_args
from dashboard.store import Store

#: How often running bars grow, and the range slides, with nothing published.
REDRAW_SECONDS = 5


@page_args(TimelineQuery)
def page(store: Store):
    asked = TimelineQuery()
    problems = asked.from_url(url_args())
    view = {name: value for name, value in asked.param.values().items() if name != "name"}
    timeline, _ = live.follow(store, lambda: RunTimeline(store=store, **view), min_interval=1.0)
    every(REDRAW_SECONDS, timeline.refresh)
    template = page_template(store, "Timeline", "Timeline", pn.Column(
        "## Timeline", timeline, keep_in_url(timeline), sizing_mode="stretch_width"))
    report_url_problems(problems)
    return template


if __name__.startswith("bokeh"):  # plain `panel serve` of this module: the process's own store
    from dashboard.services import process_store

    page(process_store()).servable()
