"""/compare?a=RUN&b=RUN: two runs side by side and the diff of a log stream (components.run_compare),
live, its view in the URL (`&stream=stderr&ignore_masked=yes&difference=2`)."""

from __future__ import annotations

import html

import panel as pn

from dashboard.components import live
from dashboard.components.run_compare import ComparePosition, RunCompare
from dashboard.components.timers import every
from dashboard.pages.layout import page_template
from dashboard.pages.url_state import keep_in_url, page_args, report_url_problems, url_args
from dashboard.store import Store

#: A comparison diffs again at most this often while a run writes (a diff of 2 x 100,000 lines is ~1 s).
LIVE_SECONDS = 1.0


@page_args(ComparePosition)
def page(store: Store):
    asked = ComparePosition()
    problems = asked.from_url(url_args())
    view = {name: getattr(asked, name) for name in asked.url_params}
    compare, _ = live.follow(store, lambda: RunCompare(store=store, **view),
                             min_interval=max(LIVE_SECONDS, store.push_min_interval))
    every(5, compare.tick)
    back = html.escape(store.links.page("task_runs"))
    title = f"Compare {compare.a} with {compare.b}" if compare.a and compare.b else "Compare two runs"
    template = page_template(store, title, "", pn.Column(
        pn.pane.HTML(f'<a href="{back}" style="font:14px system-ui,sans-serif">← Task Runs</a>'),
        pn.pane.HTML(f"<h2 style='margin:4px 0'>{html.escape(title)}</h2>"),
        compare, keep_in_url(compare), sizing_mode="stretch_width"))
    report_url_problems(problems)
    return template


if __name__.startswith("bokeh"):  # plain `panel serve` of this module: the process's own store
    from dashboard.services import process_store

    page(process_store()).servable()
