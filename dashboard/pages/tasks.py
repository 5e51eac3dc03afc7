"""/tasks: the tasks by group with their run statistics, and the live dependency graph.

The group filter and name search narrow both the table and the graph. Clicking a task in
the graph selects it: its upstream and downstream stay lit, and a card links to its runs.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from urllib.parse import urlencode

import pandas as pd
import panel as pn
import param

from dashboard import queries
from dashboard.changes import Change
from dashboard.components import live
from dashboard.components.badges import STYLESHEET, status_badge
from dashboard.components.dependency_graph import (GraphPlot, analyse, focus, graph_frames, short_label, tile_color,
                                                   view_of)
from dashboard.components.resources import resource
from dashboard.components.runs_table import STATUS_FORMATTER, TASK_FORMATTER, TASK_NAME_STYLE
from dashboard.components.view_state import UrlState
from dashboard.formatting import clock, human_duration, plain
from dashboard.graph import dependency_graph, waiting_text
from dashboard.graph_groups import GROUP_MARK, GROUPS_ABOVE, group_path, is_group_node, top_group
from dashboard.pages.layout import page_template
from dashboard.pages.url_state import keep_in_url, page_args, report_url_problems, url_args
from dashboard.store import Store

#: Tabulator puts a group's header ("group: <name>", made by Panel) in as HTML: draw it as text.
GROUP_HEADER_AS_TEXT = pn.io.JSCode(resource("group_header.js").strip())


def markdown_text(text: str) -> str:
    """Text that Markdown shows as it is: each ASCII punctuation mark escaped, line breaks as spaces."""
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", " ".join(text.splitlines()))


def _count(number: int, what: str) -> str:
    """'1 direct upstream', '3 direct upstreams'."""
    return f"{number:,} {what}{'' if number == 1 else 's'}"


class TasksQuery(UrlState):
    """What the page shows; kept in the URL."""

    url_params = ("group", "search", "since", "task", "hops")

    group = param.String(default="")
    search = param.String(default="")
    since = param.Selector(default="24h", objects=list(queries.TIME_RANGES))
    task = param.String(default="", doc="The selected task.")
    hops = param.Integer(default=0, bounds=(0, 10), doc="Show only the selected task's neighbourhood (0: all).")


class TasksView:
    """The body of /tasks for one session."""

    def __init__(self, store: Store, query: TasksQuery):
        self.store = store
        self.query = query
        self.search = pn.widgets.TextInput(label="Task name", value=query.search, placeholder="Search task name, Enter",
                                           width=220)
        self.group = pn.widgets.Select(label="Group", options={"All groups": ""}, value="", width=170)
        self.since = pn.widgets.RadioButtonGroup(options=list(queries.TIME_RANGES), value=query.since, color="light",
                                                 margin=(5, 10))
        self.hops = pn.widgets.IntSlider(label="Neighbourhood of the selected task (hops, 0 = all)", start=0, end=6,
                                         value=query.hops, width=300)
        self.recenter_button = pn.widgets.Button(label="Recenter", color="primary", variant="outline",
                                                 margin=(22, 10), description="Fit the whole graph in view")
        self.collapse_button = pn.widgets.Button(label="Collapse groups", color="primary", variant="outline",
                                                 margin=(22, 10), visible=False,
                                                 description="Show every group as one node again")
        self.expanded: set[str] = set()  # groups opened by a click on them
        self.problems = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width")
        self.summary = pn.pane.HTML("", stylesheets=[STYLESHEET], sizing_mode="stretch_width", margin=(0, 10))
        self.card = pn.pane.HTML("", stylesheets=[STYLESHEET], width=300)
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(), show_index=False, disabled=True, selectable=False, sizing_mode="stretch_width",
            theme="simple", formatters={"task": TASK_FORMATTER, "last status": STATUS_FORMATTER},
            stylesheets=[STYLESHEET, TASK_NAME_STYLE],
            groupby=["group"], configuration={"groupHeader": GROUP_HEADER_AS_TEXT}, layout="fit_columns",
            widths={"task": "28%", "group": "13%", "last run": "14%"},  # dbt's names and folder groups are long
            pagination="remote", page_size=100)  # grows with its rows; the browser gets one page
        self.load()
        self.plot = GraphPlot(self._frames(), on_select=self._clicked)
        self._wire()
        self._show_text()

    def panel(self) -> pn.Column:
        controls = pn.Row(self.search, pn.Column(pn.pane.HTML("Time range", margin=(5, 10, 0, 10)), self.since,
                                                 margin=0),
                          self.group, self.hops, self.recenter_button, self.collapse_button,
                          sizing_mode="stretch_width")
        graph = pn.Row(self.plot.pane, self.card, sizing_mode="stretch_width")
        return pn.Column(controls, self.problems, self.summary, graph,
                         pn.pane.HTML("<h3 style='margin:8px 0 0 0'>Tasks by group</h3>"), self.table,
                         sizing_mode="stretch_width")

    # ---- data --------------------------------------------------------------------------

    def load(self) -> None:
        """Read definitions and run statistics; lay out what is shown."""
        tasks = queries.tasks(self.store)
        self.task_graph = dependency_graph(zip(tasks["task"], tasks["grp"], tasks["depends_on"]))
        levels = {level for g in tasks["grp"] if plain(g) for level in group_path(str(g))}  # "marts" for marts/*
        self.group.options = {"All groups": ""} | {g: g for g in sorted(levels)}
        self.group.value = self.query.group if self.query.group in self.group.options.values() else ""
        self.read_stats()
        self.shown = focus(self.task_graph, self.query.task or None, self.query.hops, self.query.group,
                           self.query.search)
        self.view, self.positions = view_of(self.task_graph, self.shown, self.expanded)
        self.collapse_button.visible = self.view.collapsed or bool(self.expanded and len(self.shown) > GROUPS_ABOVE)

    def read_stats(self) -> None:
        self.stats = queries.task_stats(self.store, queries.parse_duration(self.query.since))
        self.state = analyse(self.task_graph, self.stats)

    def _frames(self):
        selected = self.query.task if self.query.task in self.shown else None
        return graph_frames(self.view, self.positions, self.stats, self.state, selected)

    # ---- actions -----------------------------------------------------------------------

    def _wire(self) -> None:
        query = self.query
        # On Enter or leaving the box: each change lays the graph out and draws it anew.
        self.search.param.watch(lambda e: query.param.update(search=e.new), "value")
        self.group.param.watch(lambda e: query.param.update(group=e.new), "value")
        self.since.param.watch(lambda e: query.param.update(since=e.new), "value")
        self.hops.param.watch(lambda e: query.param.update(hops=e.new), "value")
        self.recenter_button.on_click(lambda _: self.plot.recenter())
        self.collapse_button.on_click(lambda _: self._expand(None))
        query.param.watch(self._query_changed, ["group", "search", "since", "task", "hops"])

    def _clicked(self, node: str | None) -> None:
        """A click on a group opens it; on a task, selects it."""
        if node is not None and is_group_node(node):
            self._expand(node[len(GROUP_MARK):])
        else:
            self.query.param.update(task=node or "")

    def _expand(self, group: str | None) -> None:
        """Open one more group (None: close them all), keeping the others as they are."""
        self.expanded = set() if group is None else self.expanded | {group}
        self.load()
        self.plot.recenter(self._frames())
        self._show_text()

    def _query_changed(self, *events) -> None:
        names = {e.name for e in events}
        if names & {"group", "search", "hops"} or ("task" in names and self.query.hops):
            self.load()
            self.plot.recenter(self._frames())
        elif "since" in names:
            self.read_stats()
            self.plot.update(self._frames())
        else:
            self.plot.update(self._frames())
        self._show_text()

    def changed(self, change: Change) -> None:
        """Hub delivery: new definitions lay the graph out again; run changes recolour it."""
        if change.tasks:
            self.load()
            self.plot.recenter(self._frames())
        elif change.many_runs or any(run.task in self.task_graph.graph for run in change.runs.values()):
            self.read_stats()
            self.plot.update(self._frames())
        else:
            return
        self._show_text()

    # ---- text --------------------------------------------------------------------------

    def _show_text(self) -> None:
        graph, state = self.task_graph.graph, self.state
        self.problems.object = ("**The task definitions have problems** (the rest is drawn):\n\n" +
                                "\n".join(f"- {markdown_text(p)}" for p in self.task_graph.problems))
        self.problems.visible = bool(self.task_graph.problems)
        parts = [f"<b>{len(self.shown):,}</b> of {graph.number_of_nodes():,} tasks shown"]
        tops = Counter(top_group(graph.nodes[n].get("group")) for n in self.shown)
        parts.append("<details class='td-legend' style='display:inline-block;vertical-align:top'>"
                     f"<summary>{len(tops):,} top-level group{'s' if len(tops) != 1 else ''}</summary>" + " ".join(
            f"<span style='white-space:nowrap'><span style='display:inline-block;width:11px;height:11px;"
            f"background:{tile_color(top)};border:1px solid #cbd5e1;vertical-align:-1px'></span> "
            f"{html.escape(top or 'no group')} ({count:,})</span>" for top, count in sorted(tops.items())) + "</details>")
        if self.view.collapsed:
            parts.append(f"{len(self.view.members):,} groups shown collapsed (■): click one to open it")
        def name(task: str) -> str:  # short in the line, whole on hover
            return f"<span title='{html.escape(task)}'>{html.escape(short_label(task))}</span>"

        if state.critical:
            shown = [name(t) for t in state.critical] if len(state.critical) <= 8 else (
                [name(t) for t in state.critical[:3]] + [f"… {len(state.critical) - 6} more …"]
                + [name(t) for t in state.critical[-3:]])
            parts.append(f"critical path <b>{human_duration(state.critical_seconds)}</b>: "
                         f"<span style='color:#7c3aed'>{' → '.join(shown)}</span>")
        causes = sorted(state.causes.items(), key=lambda item: (-item[1], item[0]))
        for cause, count in causes[:3]:
            parts.append(f"<span style='color:#b91c1c'>root cause <b>{name(cause)}</b> blocks {count}</span>")
        if len(causes) > 3:
            parts.append(f"<span style='color:#b91c1c'>{len(causes) - 3} more root causes</span>")
        self.summary.object = " · ".join(parts)
        self.card.object = self._card()
        self.table.value = self._table()

    def _card(self) -> str:
        task = self.query.task
        if task not in self.task_graph.graph:
            return ("<div style='color:#64748b;font:13px system-ui;padding:8px'>Click a task to see its upstream "
                    "and downstream, and to open its runs. Wheel to zoom, drag to pan.</div>")
        graph = self.task_graph.graph
        status = self.state.status.get(task)
        runs_url = self.store.links.page("task_runs") + "?" + urlencode({"search": task, "since": self.query.since})
        latest = self._stats_of(task)
        blocked_by = plain(latest.get("last_blocked")) if latest else None
        role = ""
        if task in self.state.causes:
            role = "<p style='color:#b91c1c'><b>Root cause</b> of the failures downstream</p>"
        elif blocked_by:
            role = f"<p style='color:#b91c1c'><b>Blocked</b>: {html.escape(blocked_by)}</p>"
        elif task in self.state.blocked:
            role = f"<p style='color:#b45309'>{html.escape('W' + waiting_text(self.state.blocked[task])[1:])}</p>"
        return (f"<div style='font:14px system-ui;padding:12px;border:1px solid #e2e8f0;border-radius:10px'>"
                f"<div style='font-weight:700;font-size:16px;overflow-wrap:anywhere'>{html.escape(task)}</div>"
                f"<p>{status_badge(status) if status else 'no runs in range'}</p>{role}"
                f"<p>{_count(graph.in_degree(task), 'direct upstream')} · "
                f"{_count(graph.out_degree(task), 'direct downstream')}"
                f"{f' · {self.state.causes[task]:,} blocked' if task in self.state.causes else ''}</p>"
                f"<p><a class='td-task-runs' href='{html.escape(runs_url)}'>View runs of {html.escape(task)} →</a></p>"
                "</div>")

    def _stats_of(self, task: str) -> dict | None:
        """The task's row of the stats (its latest run), or None when it has no runs in range."""
        rows = self.stats[self.stats["task"] == task]
        return None if rows.empty else rows.iloc[0].to_dict()

    def _table(self) -> pd.DataFrame:
        graph = self.task_graph.graph
        stats = self.stats.set_index("task").to_dict("index") if len(self.stats) else {}
        rows = []
        for task in sorted(self.shown, key=lambda t: (str(graph.nodes[t].get("group")), t)):
            row = stats.get(task)
            rows.append({
                "task": task, "group": graph.nodes[task].get("group") or "—",
                "upstream": graph.in_degree(task), "downstream": graph.out_degree(task),
                "last status": row["last_status"] if row is not None else "",
                "last run": clock(row["last_trigger"]) if row is not None else "",
                "runs": int(row["runs"]) if row is not None else 0,
                "success rate": f"{row['success_rate']:.0%}" if row is not None and plain(row["success_rate"]) is not None
                else "",
                "median duration": human_duration(plain(row["median_seconds"])) if row is not None else "",
            })
        return pd.DataFrame(rows, columns=["task", "group", "upstream", "downstream", "last status", "last run",
                                           "runs", "success rate", "median duration"])


@page_args(TasksQuery)
def page(store: Store):
    query = TasksQuery()
    problems = query.from_url(url_args())
    view, _ = live.follow(store, lambda: TasksView(store, query), min_interval=max(1.0, store.push_min_interval))
    template = page_template(store, "Tasks & Groups", "Tasks & Groups", pn.Column(
        "## Tasks & Groups", view.panel(), keep_in_url(query), sizing_mode="stretch_width"))
    report_url_problems(problems)
    return template


if __name__.startswith("bokeh"):  # plain `panel serve` of this module: the process's own store
    from dashboard.services import process_store

    page(process_store()).servable()
