"""/task-runs/<run_id>: one run's card (details and lifecycle timeline) and its logs, live.

`?stream=stderr&line=1234` opens the log on that line's page with the line marked.
"""

from __future__ import annotations

import html

import panel as pn
import param
from panel.reactive import ReactiveHTML

from dashboard import clock
from dashboard.components import live
from dashboard.components.log_viewer import LogPosition, LogViewer, opening_stream
from dashboard.components.run_card import RunCard
from dashboard.components.timers import every
from dashboard.pages.layout import page_template
from dashboard.pages.url_state import keep_in_url, page_args, report_url_problems, url_args
from dashboard.spool import SpoolError, validate_run_id
from dashboard.store import Store

#: How often a card of relative times ("5 min ago") is read again.
RELATIVE_SECONDS = 30


def requested_run_id() -> str:
    """The run id from the path (/task-runs/<run_id>) or, under plain `panel serve`, ?run_id=."""
    run_id = pn.state.route_params.get("run_id") if pn.state.curdoc else None
    return run_id or url_args().get("run_id", "")


class Reload(ReactiveHTML):
    """Reloads the page in the browser once `due`, even when it became due before the browser had
    the page (then it arrives already due, and only its first render sees it)."""

    due = param.Boolean(default=False)

    _template = '<span id="anchor"></span>'
    _scripts = {"render": "if (data.due) { window.location.reload() }",
                "due": "if (data.due) { window.location.reload() }"}


def not_found(store: Store, reason: str, *more):
    back = html.escape(store.links.page("task_runs"))
    message = pn.pane.HTML(
        f'<div style="padding:32px;border:1px dashed #cbd5e1;border-radius:10px;background:#f8fafc;'
        f'font:15px system-ui,sans-serif"><h2 style="margin-top:0">Run not found</h2>'
        f"<p>{html.escape(reason)}</p><p><a href='{back}'>← Back to Task Runs</a></p></div>",
        sizing_mode="stretch_width")
    return page_template(store, "Run not found", "", pn.Column(message, *more, sizing_mode="stretch_width"))


def opened_once_ingested(store: Store, card: RunCard, delivery: live.Delivery) -> Reload:
    """A page asked for a run not ingested yet (a link from a notification, a server still catching
    up) opens it as soon as it is: the page reloads when the run arrives."""
    reload = Reload(width=0, height=0, margin=0)

    def look() -> None:
        if not reload.due:
            card.refresh()
            if card.run is not None:
                reload.due = True
                delivery.close()

    delivery.deliver_to(lambda change: look() if card.run_id in change.runs or change.many_runs else None)
    # Once more when the browser has the page: a change sent between its first request and its
    # connection never reaches it (a run ingested just then would leave it waiting for good).
    pn.state.onload(look)
    return reload


@page_args(LogPosition, "run_id")
def page(store: Store):
    run_id = requested_run_id()
    try:
        validate_run_id(run_id)
    except SpoolError as exc:
        return not_found(store, str(exc))
    # One delivery for the card and the log, subscribed before their first query.
    delivery = live.subscribe(store, min_interval=store.log_push_min_interval)
    card = RunCard(store=store, run_id=run_id)
    if card.run is None:
        return not_found(store, f"The index has no run {run_id!r}. It may not have been ingested yet (this "
                                "page opens it as soon as it is), or the id is mistyped.",
                         opened_once_ingested(store, card, delivery))
    args, asked = url_args(), LogPosition()
    problems = asked.from_url(args)
    if "stream" not in args:
        asked.stream = opening_stream(store, card.run)
    logs = LogViewer(store=store, run_id=run_id, follow=card.running,
                     **{name: getattr(asked, name) for name in asked.url_params})
    delivery.deliver_to(lambda change: (card.changed(change), logs.changed(change)))
    logs.reload_button.on_click(lambda _: card.refresh())
    every(1, card.tick)
    if clock.current().relative:  # "5 min ago" grows older with nothing published
        every(RELATIVE_SECONDS, card.refresh)
    back = html.escape(store.links.page("task_runs"))
    template = page_template(store, f"Run {run_id}", "", pn.Column(
        pn.pane.HTML(f'<a href="{back}" style="font:14px system-ui,sans-serif">← Task Runs</a>'), card,
        pn.pane.HTML("<h3 style='margin:8px 0 0 0'>Logs</h3>"), logs, keep_in_url(logs),
        sizing_mode="stretch_width"))
    report_url_problems(problems)
    return template


if __name__.startswith("bokeh"):  # plain `panel serve` of this module: the process's own store
    from dashboard.services import process_store

    page(process_store()).servable()
