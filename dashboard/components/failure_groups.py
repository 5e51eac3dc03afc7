"""Failure signatures on the runs page: the grid's failed and terminated runs grouped by what they
last said went wrong (dashboard.failures), over the grid's filters (issue 20, item 2).

A collapsible section, one compact row a signature, the largest first, a page of GROUPS_SHOWN at a
time: the signature (as text), how many runs, first and last seen, the tasks and agents affected,
NEW when the period just before the range had none, and a link that opens the grid filtered to
that signature's runs (the grid's `failure` parameter, so the link can be shared). Its view state
is its own parameters and the grid's query it is handed; it groups again when that query
changes and, live, when a failure arrives (at most every LIVE_SECONDS: grouping reads the
failures' logs).
"""

from __future__ import annotations

import datetime as dt
import html

import pandas as pd
import panel as pn
import param

from dashboard import clock as clocks
from dashboard import queries
from dashboard.changes import Change
from dashboard.components.offload import off_the_loop
from dashboard.components.resources import resource
from dashboard.components.runs_grid import RunsQuery
from dashboard.failures import failure_signatures
from dashboard.formatting import clock
from dashboard.shared_answers import shared_per_version
from dashboard.statuses import UNSUCCESSFUL
from dashboard.store import Store

#: Grouping again, live, at most this often.
LIVE_SECONDS = 5.0
#: Signatures a page of the section lists.
GROUPS_SHOWN = 10
#: Tasks and agents named in a row before "+N more".
NAMES_SHOWN = 2
EMPTY = "No failures in this range"


class FailureGroups(pn.viewable.Viewer):
    """The failed and terminated runs the grid's query admits, grouped by failure signature."""

    query = param.ClassSelector(class_=RunsQuery, doc="The grid's view state: its filters, and its link's.")
    store = param.ClassSelector(class_=Store, doc="What the runs are read from.")
    page = param.Integer(default=1, bounds=(1, None), doc="The page of signatures shown.")
    collapsed = param.Boolean(default=False, doc="Only the section's title line shows.")

    def __init__(self, **params):
        super().__init__(**params)
        self.table = pn.pane.HTML('<p class="td-failures-empty">Grouping the failures…</p>',
                                  sizing_mode="stretch_width", margin=(0, 5),
                                  stylesheets=[resource("failure_groups.css")])
        self.previous = pn.widgets.Button(label="‹ Previous", width=100, color="primary", variant="outline")
        self.more = pn.widgets.Button(label="More ›", width=100, color="primary", variant="outline")
        self.previous.on_click(lambda _: self.param.update(page=max(1, self.page - 1)))
        self.more.on_click(lambda _: self.param.update(page=self.page + 1))
        self.pager = pn.Row(self.previous, self.more, visible=False)
        self.card = pn.Card(self.table, self.pager, title="Failure signatures", collapsed=self.collapsed,
                            sizing_mode="stretch_width", margin=(10, 10), header_background="#f8fafc",
                            css_classes=["td-failures-card"], stylesheets=[resource("failure_groups.css")])
        self.card.link(self, collapsed="collapsed", bidirectional=True)
        self._groups = _empty_groups()
        self._watched: set[str] = set()  # runs whose new log lines may change their signature
        self.query.param.watch(self._filters_changed, ["search", "status", "since", "group", "failure"])
        self.param.watch(lambda _: self.show(), "page")
        self.refresh()

    def __panel__(self) -> pn.Card:
        return self.card

    def _filters_changed(self, *events) -> None:
        if all(event.name == "failure" for event in events):
            self.show()  # the same groups, another one chosen
            return
        if self.page != 1:
            self.page = 1  # which shows the groups again, below
        self.refresh()

    def changed(self, change: Change) -> None:
        """Live: group again when a failure the filters admit arrives, or new lines of a listed one."""
        run_filter = self.query.base_filter()
        if change.many_runs or any(run.status in UNSUCCESSFUL and run_filter.may_admit(run)
                                   for run in change.runs.values()) \
                or any(run_id in self._watched for run_id, _stream in change.log_lines):
            self.refresh()

    def refresh(self) -> None:
        """Group the failures again (off the session's event loop: over a big index it reads many
        failures' logs) and show the page of signatures."""
        # To the next whole second, as the grid: sessions grouping together share one answer.
        now = queries.utcnow().replace(microsecond=0) + dt.timedelta(seconds=1)
        run_filter, emphasis = self.query.base_filter(), self.store.config.log_emphasis

        def compute() -> pd.DataFrame:
            try:
                return _signatures(self.store, run_filter, emphasis, now)
            except ValueError:  # a filter the grid reports itself
                return _empty_groups()

        off_the_loop(compute, self._grouped, self._not_grouped, after_first_paint=True)

    def _not_grouped(self, exc: BaseException) -> None:
        self.table.object = (f'<p class="td-failures-empty">The failures could not be grouped: '
                             f"{html.escape(str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)}</p>")

    def _grouped(self, groups: pd.DataFrame) -> None:
        self._groups = groups
        self._watched = {run_id for run_ids in groups["run_ids"] for run_id in run_ids}
        self.show()

    def show(self) -> None:
        groups, size = self._groups, GROUPS_SHOWN
        pages = queries.page_count(len(groups), size)
        if self.page > pages:
            self.page = pages  # which shows again
            return
        first = (self.page - 1) * size
        shown = groups.iloc[first:first + size]
        self.previous.disabled, self.more.disabled = self.page == 1, self.page >= pages
        self.pager.visible = pages > 1
        self.card.title = self._title(groups)
        self.table.object = self._table(shown, first, len(groups)) if len(groups) else \
            f'<p class="td-failures-empty">{EMPTY}</p>'

    def _title(self, groups: pd.DataFrame) -> str:
        if groups.empty:
            return "Failure signatures · no failures"
        new = int(groups["new"].fillna(False).astype(bool).sum())
        signatures = f"{len(groups):,} signature" + ("s" if len(groups) != 1 else "")
        return (f"Failure signatures · {signatures} · {int(groups['runs'].sum()):,} failed runs"
                + (f" · {new:,} new" if new else ""))

    def link(self, key: str) -> str:
        """The runs page with the grid's filters and only the runs of the signature `key`."""
        args = {name: value for name, value in self.query.to_url().items() if name != "page"} | {"failure": key}
        return self.store.links.page("task_runs", **args)

    def _table(self, shown: pd.DataFrame, first: int, total: int) -> str:
        rows, today = [], queries.utcnow()  # today's times without their date
        for group in shown.itertuples():
            chosen = ' class="td-chosen"' if group.key == self.query.failure else ""
            new = '<span class="td-new" title="None in the period just before this range">NEW</span> ' \
                if group.new is True else ""
            rows.append(
                f"<tr{chosen}><td class=\"td-sig\">{new}<code title=\"{html.escape(group.example)}\">"
                f"{html.escape(group.signature)}</code></td>"
                f'<td class="td-num"><a class="td-group-runs" href="{html.escape(self.link(group.key))}" '
                f'title="Show these runs in the grid">{group.runs:,} run{"s" if group.runs != 1 else ""}</a></td>'
                f'<td class="td-when">{clock(group.first_seen, today)}</td>'
                f'<td class="td-when">{clock(group.last_seen, today)}</td>'
                f"<td>{_names(group.tasks)}</td><td>{_names(group.agents)}</td></tr>")
        caption = (f"Signatures {first + 1:,}–{first + len(shown):,} of {total:,}, the most failed runs first"
                   if total > GROUPS_SHOWN else "The most failed runs first")
        caption += f", over the grid's filters · {html.escape(clocks.current().caption)}"
        return (f'<table class="td-failures"><caption>{caption}</caption><thead><tr>'
                "<th>Signature (last error line, values masked)</th><th>Runs</th><th>First seen</th>"
                f"<th>Last seen</th><th>Tasks</th><th>Agents</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _names(names: list[str]) -> str:
    shown = ", ".join(html.escape(name) for name in names[:NAMES_SHOWN])
    more = len(names) - NAMES_SHOWN
    if more > 0:
        shown += f' <span class="td-more" title="{html.escape(", ".join(names))}">+{more:,} more</span>'
    return shown


_signatures = shared_per_version(failure_signatures)


def _empty_groups() -> pd.DataFrame:
    return pd.DataFrame(columns=["signature", "key", "runs", "first_seen", "last_seen", "tasks", "agents", "new",
                                 "example", "run_ids"])
