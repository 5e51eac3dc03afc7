"""The tasks by group: each shown task's upstream and downstream counts, last status and run,
runs, success rate and median duration over the time range (the bottom of /tasks).

Its view state is its own parameters: the same group, name filter, time range, selected task
and neighbourhood as the graph's (a page links the two, `link_to`), and the page of the table.
Clicking a row selects its task. One watcher turns a change into one query, answered off the
event loop (components.offload).
"""

from __future__ import annotations

import pandas as pd
import panel as pn
import param

from dashboard.changes import Change
from dashboard.components import MAX_NUMBER
from dashboard.components.badges import STYLESHEET
from dashboard.components.offload import off_the_loop
from dashboard.components.resources import resource
from dashboard.components.runs_table import STATUS_FORMATTER, TASK_FORMATTER, TASK_NAME_STYLE
from dashboard.formatting import clock, human_duration, plain
from dashboard.graph_view import focus, read_stats, read_task_graph
from dashboard import queries
from dashboard.store import Store

#: Tabulator puts a group's header ("group: <name>", made by Panel) in as HTML: draw it as text.
GROUP_HEADER_AS_TEXT = pn.io.JSCode(resource("group_header.js").strip())
COLUMNS = ["task", "group", "upstream", "downstream", "last status", "last run", "runs", "success rate",
           "median duration"]
#: The parameters a table shares with the graph it is shown with.
SHARED = ("group", "search", "since", "task", "hops")
PAGE_SIZE = 100


class TasksTable(pn.viewable.Viewer):
    """The shown tasks by group with their run statistics."""

    store = param.ClassSelector(class_=Store, doc="What the tasks and runs are read from.")
    group = param.String(default="", doc="Only this group and the groups inside it; empty for all.")
    search = param.String(default="", doc="Only tasks whose name contains this, any case.")
    since = param.Selector(default="24h", objects=list(queries.TIME_RANGES), doc="Run statistics over this range.")
    task = param.String(default="", doc="The selected task (its row is marked).")
    hops = param.Integer(default=0, bounds=(0, 10), doc="Only the selected task's neighbourhood (0: all).")
    page = param.Integer(default=1, bounds=(1, MAX_NUMBER), doc="The page of the table shown, from 1.")

    def __init__(self, **params):
        super().__init__(**params)
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=COLUMNS), show_index=False, disabled=True, selectable=1,
            sizing_mode="stretch_width", theme="simple",
            formatters={"task": TASK_FORMATTER, "last status": STATUS_FORMATTER},
            stylesheets=[STYLESHEET, TASK_NAME_STYLE],
            groupby=["group"], configuration={"groupHeader": GROUP_HEADER_AS_TEXT}, layout="fit_columns",
            # Each figure's column fits its title (with the task at 28% they were cut: "downstr…",
            # "success…"); the task's name, long in dbt, takes the rest and is cut in its middle.
            widths={"group": "11%", "upstream": 105, "downstream": 125, "last status": 120, "last run": 170,
                    "runs": 75, "success rate": 130, "median duration": 150},
            pagination="remote", page_size=PAGE_SIZE)  # grows with its rows; the browser gets one page
        self.table.link(self, page="page", bidirectional=True)
        self.table.param.watch(self._row_selected, "selection")
        self.param.watch(self._view_changed, [*SHARED])
        self._tasks: set[str] = set()  # the tasks shown
        self._graph: set[str] = set()  # every task of the graph they were chosen from
        self._work = 0  # the latest query asked for; older answers are not shown
        self._replacing_rows = False  # the table's selection changes with them, not by the user
        self.refresh()

    def __panel__(self) -> pn.widgets.Tabulator:
        return self.table

    def link_to(self, other: param.Parameterized) -> None:
        """Follow `other`'s group, filter, range, selection and neighbourhood, and it ours."""
        for source, target in ((other, self), (self, other)):
            source.param.watch(lambda e, target=target: target.param.update({e.name: e.new}), [*SHARED])

    def _row_selected(self, event) -> None:
        if self._replacing_rows:
            return
        rows = self.table.value
        task = str(rows["task"].iloc[event.new[0]]) if event.new and event.new[0] < len(rows) else ""
        if task != self.task and (task or self.task in self._tasks):
            self.task = task

    def _view_changed(self, *events) -> None:
        """The one watcher: a change of the view state becomes one query (a selection, none)."""
        if {event.name for event in events} == {"task"} and not self.hops:
            self._mark_selected()
            return
        self.refresh()

    def changed(self, change: Change) -> None:
        """Hub delivery: query again when definitions, a shown task's runs, or the runs of a task not
        in the graph (one seen in runs without a definition) changed."""
        if change.tasks or change.many_runs or any(run.task in self._tasks or run.task not in self._graph
                                                   for run in change.runs.values()):
            self.refresh()

    def refresh(self) -> None:
        """Query and make the rows off the event loop (1,500 tasks: about 0.2 s), then show them."""
        self._work += 1
        work, store, since = self._work, self.store, self.since
        view = dict(task=self.task or None, hops=self.hops, group=self.group, text=self.search)

        def compute() -> tuple[set[str], set[str], pd.DataFrame]:
            task_graph = read_task_graph(store)
            shown = focus(task_graph, **view)
            return shown, set(task_graph.graph), rows(task_graph.graph, shown, read_stats(store, since))

        def show(result: tuple[set[str], set[str], pd.DataFrame]) -> None:
            if work == self._work:  # else a newer query is on its way
                self._tasks, self._graph, table = result
                # Panel clears a remotely paged table's selection with its rows: a live update
                # deselected the task in the table and, linked, in the graph. It is marked again.
                self._replacing_rows = True
                try:
                    self.table.value = table
                finally:
                    self._replacing_rows = False
                self._mark_selected()

        # Below the graph: its rows (100 grouped rows take Tabulator about 0.2 s to lay out) come
        # after the page's first paint, which they would otherwise hold up.
        off_the_loop(compute, show, after_first_paint=True)

    def _mark_selected(self) -> None:
        tasks = self.table.value["task"]
        selection = [int(i) for i in (tasks == self.task).to_numpy().nonzero()[0]] if self.task else []
        if selection != self.table.selection:
            self.table.selection = selection
        if selection and self.page != selection[0] // PAGE_SIZE + 1:
            self.page = selection[0] // PAGE_SIZE + 1


def rows(graph, shown: set[str], stats: pd.DataFrame) -> pd.DataFrame:
    """The table's rows: the shown tasks by group, then name, with their statistics."""
    by_task = stats.set_index("task").to_dict("index") if len(stats) else {}
    out = []
    for task in sorted(shown, key=lambda t: (str(graph.nodes[t].get("group")), t)):
        row = by_task.get(task)
        out.append({
            "task": task, "group": graph.nodes[task].get("group") or "—",
            "upstream": graph.in_degree(task), "downstream": graph.out_degree(task),
            "last status": row["last_status"] if row is not None else "",
            "last run": clock(row["last_trigger"]) if row is not None else "",
            "runs": int(row["runs"]) if row is not None else 0,
            "success rate": f"{row['success_rate']:.0%}" if row is not None and plain(row["success_rate"]) is not None
            else "",
            "median duration": human_duration(plain(row["median_seconds"])) if row is not None else "",
        })
    return pd.DataFrame(out, columns=COLUMNS)
