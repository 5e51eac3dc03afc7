"""/task-runs: the live runs grid (components.runs_grid) in the page's frame, its view in the URL,
its failures grouped by signature (components.failure_groups) and the fleet log search over the
grid's filters (components.fleet_search)."""

from __future__ import annotations

import panel as pn

from dashboard.components import failure_groups, live, run_strip
from dashboard.components.fleet_search import LIVE_SECONDS, FleetSearch, SearchQuery
from dashboard.components.runs_grid import RunsGrid, RunsQuery
from dashboard.components.timers import every
from dashboard.pages.layout import page_template
from dashboard.pages.url_state import keep_in_url, page_args, report_url_problems, url_args
from dashboard.store import Store

#: How often the page looks again with nothing published: runs leave the time range as it slides.
SLIDE_SECONDS = 60


@page_args(RunsQuery, *SearchQuery.url_arg_names())
def page(store: Store):
    asked, asked_search = RunsQuery(), SearchQuery()
    problems = asked.from_url(url_args()) + asked_search.from_url(url_args())
    view = {name: value for name, value in asked.param.values().items() if name != "name"}
    grid, _ = live.follow(store, lambda: RunsGrid(store=store, **view), min_interval=store.push_min_interval)
    every(SLIDE_SECONDS, grid.refresh)
    strip, _ = live.follow(store, lambda: run_strip.RunStrip(query=grid, store=store),
                           min_interval=run_strip.LIVE_SECONDS)
    every(SLIDE_SECONDS, strip.refresh)
    search, _ = live.follow(store, lambda: FleetSearch(store, grid.run_filter, **{
        name: getattr(asked_search, name) for name in asked_search.url_params}), min_interval=LIVE_SECONDS)
    grid.param.watch(lambda *_: search.search(), list(grid.filter_params))
    failures, _ = live.follow(store, lambda: failure_groups.FailureGroups(query=grid, store=store),
                               min_interval=failure_groups.LIVE_SECONDS)
    template = page_template(store, "Task Runs", "Task Runs", pn.Column(
        "## Task Runs", strip, grid, keep_in_url(grid, search), failures, "### Search the runs' logs", search,
        sizing_mode="stretch_width"))
    report_url_problems(problems)
    return template


if __name__.startswith("bokeh"):  # plain `panel serve` of this module: the process's own store
    from dashboard.services import process_store

    page(process_store()).servable()
