"""The frame every page shares: title, navigation between the pages, and the connection indicator."""

from __future__ import annotations

import html

import panel as pn

from dashboard.app import Services
from dashboard.pages.connection import connection_indicator


def navigation(services: Services, current: str) -> pn.pane.HTML:
    links = [("Task Runs", services.url("task_runs")), ("Tasks & Groups", services.url("tasks"))]
    items = " ".join(
        f'<a href="{html.escape(url)}" style="color:white;margin-right:1.2em;'
        f'{"font-weight:bold;text-decoration:underline" if name == current else "text-decoration:none"}">'
        f"{html.escape(name)}</a>" for name, url in links)
    return pn.pane.HTML(items, margin=(12, 10))


def page_template(services: Services, title: str, current: str, *main) -> pn.template.FastListTemplate:
    """A FastListTemplate with the navigation in its header and `main` as its body."""
    pn.extension("tabulator", reconnect=True, notifications=True)
    template = pn.template.FastListTemplate(
        title="Task Runs Dashboard",
        header=[pn.Row(navigation(services, current), pn.HSpacer(),
                       connection_indicator(services.ingestor, services.hub),
                       sizing_mode="stretch_width", align="center")],
        main=list(main),
        theme_toggle=False,
        accent="#2563eb",
        main_layout=None,
    )
    if services.index.rebuilt_reason:  # notifications show HTML: the reason (paths, DuckDB's words) is escaped
        notice = f"The index was rebuilt when the server started: {services.index.rebuilt_reason}"
        pn.state.onload(lambda: pn.state.notifications.warning(html.escape(notice), duration=15_000))
    return template
