"""/tasks: the live dependency graph with its filters (components.dependency_graph) over the tasks
by group (components.tasks_table), in the page's frame, their view in the URL.

The graph and the table share the group, name filter, time range, selected task and its
neighbourhood: selecting a task in either selects it in both. The graph is laid out and drawn
off the event loop; until it arrives the page says what it lays out.
"""

from __future__ import annotations

import panel as pn

from dashboard.components import live
from dashboard.components.dependency_graph import DependencyGraph, TasksQuery
from dashboard.components.tasks_table import TasksTable
from dashboard.pages.layout import page_template
from dashboard.pages.url_state import keep_in_url, page_args, report_url_problems, url_args
from dashboard.store import Store


def graph_and_table(store: Store, **view) -> tuple[DependencyGraph, TasksTable, pn.Column]:
    """The graph over the table, linked, each following the store live."""
    interval = max(1.0, store.push_min_interval)  # a large graph's analysis is not for every change
    graph, _ = live.follow(store, lambda: DependencyGraph(store=store, **view), min_interval=interval)
    table, _ = live.follow(store, lambda: TasksTable(store=store, **view), min_interval=interval)
    table.link_to(graph)
    body = pn.Column(graph, pn.pane.HTML("<h3 style='margin:8px 0 0 0'>Tasks by group</h3>"), table,
                     sizing_mode="stretch_width")
    return graph, table, body


@page_args(TasksQuery)
def page(store: Store):
    asked = TasksQuery()
    problems = asked.from_url(url_args())
    graph, _, body = graph_and_table(store, **{k: v for k, v in asked.param.values().items() if k != "name"})
    template = page_template(store, "Tasks & Groups", "Tasks & Groups", pn.Column(
        "## Tasks & Groups", body, keep_in_url(graph), sizing_mode="stretch_width"))
    report_url_problems(problems)
    return template


if __name__.startswith("bokeh"):  # plain `panel serve` of this module: the process's own store
    from dashboard.services import process_store

    page(process_store()).servable()
