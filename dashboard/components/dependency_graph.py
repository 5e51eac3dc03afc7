"""The dependency graph with its filters: status-coloured tasks, left to right, what holds them up,
and a card for the selected task that leads to its runs (the top of /tasks, and a notebook's
`store.dependency_graph()`).

What the user looks at is the component's own parameters (group, name filter, time range,
selected task, its neighbourhood, opened groups). One watcher turns a change of them into one
piece of work: read and lay out (graph_view) off the event loop, with the first drawing's plot
(graph_plot), then draw it on the page. Until the first drawing arrives the page says what it lays out.
"""

from __future__ import annotations

import html
import re
from collections import Counter

import panel as pn
import param

from dashboard import queries
from dashboard.changes import Change
from dashboard.components.badges import STYLESHEET, status_badge
from dashboard.components.graph_legend import GraphLegend
from dashboard.components.graph_plot import GraphPlot, Rendered, render
from dashboard.components.offload import off_the_loop
from dashboard.components.resources import resource
from dashboard.components.view_state import UrlState
from dashboard.formatting import human_duration, plain
from dashboard.graph import waiting_text
from dashboard.graph_groups import GROUP_MARK, is_group_node, top_group
from dashboard.graph_view import (ShownGraph, group_levels, read_stats, read_task_graph, short_label, shown_graph,
                                  tile_color)
from dashboard.store import Store

#: Parameters that change which tasks are shown or where: a new layout (else new colours only).
LAYOUT_PARAMS = ("group", "search", "hops", "expanded")


def markdown_text(text: str) -> str:
    """Text that Markdown shows as it is: each ASCII punctuation mark escaped, line breaks as spaces."""
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", " ".join(text.splitlines()))


def definitions_note(task_graph) -> str:
    """What the graph is drawn from when definitions are missing (Markdown), or ''."""
    graph, seen, total = task_graph.graph, task_graph.undefined_with_runs, task_graph.undefined_total
    how = ("A task's group and upstreams come from its definition, a `{\"kind\": \"task\", …, "
           "\"depends_on\": […]}` line in the spool.")
    if not graph:
        return "**No tasks yet.** The graph draws the tasks the spool defines, or else the tasks seen in runs. " + how
    if not any(defined for _, defined in graph.nodes(data="defined")):
        cut = f" The {len(seen):,} most recently run are drawn." if len(seen) < total else ""
        return (f"**No task definitions**: the {_count(total, 'task')} seen in runs "
                f"{'is' if total == 1 else 'are'} drawn without dependencies.{cut} {how}")
    missing = [task for task in seen if task not in graph]
    if not missing:
        return ""
    undrawn = total - (len(seen) - len(missing))  # undefined upstreams with runs are drawn
    names = ", ".join(markdown_text(task) for task in missing[:5]) + (" …" if undrawn > 5 else "")
    return (f"{_count(undrawn, 'task')} with runs but no definition {'is' if undrawn == 1 else 'are'} not "
            f"drawn: {names}. {how}")


def _count(number: int, what: str) -> str:
    """'1 direct upstream', '3 direct upstreams'."""
    return f"{number:,} {what}{'' if number == 1 else 's'}"


class TasksQuery(UrlState):
    """Which tasks /tasks shows: its view state, every parameter also in the page's URL."""

    url_params = ("group", "search", "since", "task", "hops")

    group = param.String(default="", doc="Only this group and the groups inside it; empty for all.")
    search = param.String(default="", doc="Only tasks whose name contains this, any case.")
    since = param.Selector(default="24h", objects=list(queries.TIME_RANGES), doc="Run statistics over this range.")
    task = param.String(default="", doc="The selected task.")
    hops = param.Integer(default=0, bounds=(0, 10), doc="Show only the selected task's neighbourhood (0: all).")


class DependencyGraph(TasksQuery, pn.viewable.Viewer):
    """The dependency graph, its filters and the selected task's card. Its view state is its own
    parameters; widgets follow them, and one watcher turns a change into one drawing."""

    store = param.ClassSelector(class_=Store, doc="What the tasks and runs are read from.")
    expanded = param.List(default=[], item_type=str, doc="Groups opened by a click (a large graph opens on its groups).")

    def __init__(self, **params):
        super().__init__(**params)
        self.search_input = pn.widgets.TextInput.from_param(  # applied on Enter or leaving the box
            self.param.search, label="Task name", placeholder="Search task name, Enter", width=220)
        # As tall as the task name box beside it (Fast leaves a select 6 px shorter).
        self.group_select = pn.widgets.Select(label="Group", options={"All groups": ""}, value="", width=170,
                                              stylesheets=[resource("select.css")])
        self.group_select.param.watch(lambda e: self.param.update(group=e.new), "value")
        self.since_buttons = pn.widgets.RadioButtonGroup.from_param(self.param.since, label="", color="light",
                                                                    margin=(5, 10))
        self.hops_slider = pn.widgets.IntSlider.from_param(
            self.param.hops, label="Neighbourhood of the selected task (hops, 0 = all)", start=0, end=6, width=300)
        self.recenter_button = pn.widgets.Button(label="Recenter", color="primary", variant="outline",
                                                 margin=(22, 10), description="Fit the whole graph in view")
        self.collapse_button = pn.widgets.Button(label="Collapse groups", color="primary", variant="outline",
                                                 margin=(22, 10), visible=False,
                                                 description="Show every group as one node again")
        self.problems = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width")
        self.definitions_note = pn.pane.Alert("", alert_type="info", visible=False, sizing_mode="stretch_width",
                                              css_classes=["td-definitions-note"])
        self.progress_text = pn.pane.HTML("", margin=(4, 0), styles={"color": "#475569", "font-size": "15px"})
        self.progress = pn.Row(pn.indicators.LoadingSpinner(value=True, size=22, margin=(4, 10)), self.progress_text,
                               css_classes=["td-graph-progress"], sizing_mode="stretch_width")
        self.summary = pn.pane.HTML("", stylesheets=[STYLESHEET], sizing_mode="stretch_width", margin=(0, 10))
        self.legend = GraphLegend(margin=(0, 10), sizing_mode="stretch_width")
        self.legend.param.watch(self._legend_picked, "picked")
        self.card = pn.pane.HTML("", stylesheets=[STYLESHEET], width=300)
        self.plot = GraphPlot(on_select=self._clicked)
        self.shown: ShownGraph | None = None  # what is drawn now
        self._work = 0  # the latest piece of work asked for; older ones are not shown
        self._pending = {"layout": True, "tasks": False, "stats": True, "fit": True}
        self.recenter_button.on_click(lambda _: self._redraw(fit=True))
        self.collapse_button.on_click(lambda _: self.param.update(expanded=[]))
        self.param.watch(self._view_changed, [*TasksQuery.param, "expanded"])
        self._layout = self._compose()
        self._redraw()

    def __panel__(self) -> pn.Column:
        return self._layout

    def _compose(self) -> pn.Column:
        time_range = pn.Column(pn.pane.HTML("Time range", margin=(5, 10, 0, 10)), self.since_buttons, margin=0)
        controls = pn.FlexBox(self.search_input, time_range, self.group_select, self.hops_slider, self.recenter_button,
                              self.collapse_button, flex_wrap="wrap", align_items="flex-end",
                              sizing_mode="stretch_width")  # on more lines when narrow
        # The task's card beside the graph, or under it in a window too narrow for both (a phone).
        graph = pn.FlexBox(pn.Column(self.plot.pane, styles={"flex": "1 1 320px"}), self.card, flex_wrap="wrap",
                           sizing_mode="stretch_width")
        return pn.Column(controls, self.problems, self.definitions_note, self.progress, self.summary, self.legend,
                         graph, sizing_mode="stretch_width")

    # ---- state into one drawing ---------------------------------------------------------

    def _view_changed(self, *events) -> None:
        """The one watcher: a change of the view state becomes one piece of work."""
        names = {event.name for event in events}
        group = self.group if self.group in self.group_select.options.values() else ""
        if self.group_select.value != group:  # not made from the parameter: its options are the groups
            self.group_select.value = group
        self._redraw(layout=bool(names & set(LAYOUT_PARAMS)) or ("task" in names and self.hops > 0),
                     stats="since" in names, fit="expanded" in names)

    def changed(self, change: Change) -> None:
        """Hub delivery: new definitions lay the graph out again; run changes recolour it, and
        lay it out again if they bring a task not drawn yet (one with runs but no definition)."""
        if change.tasks:
            self._redraw(layout=True)
        elif self.shown is not None:
            graph = self.shown.task_graph.graph
            unknown = change.many_runs or any(run.task not in graph for run in change.runs.values())
            if unknown or any(run.task in graph for run in change.runs.values()):
                self._redraw(stats=True, tasks=unknown)

    def _redraw(self, layout: bool = False, stats: bool = False, fit: bool = False, tasks: bool = False) -> None:
        """Read and lay out what the parameters ask for, off the event loop; then draw it, fitted to
        the view if `fit` or laid out anew. `tasks`: lay out again if the tasks to draw changed. What
        a piece of work superseded by a newer one had to do, the newer one does too."""
        pending = self._pending
        pending["layout"] |= layout or self.shown is None
        pending["tasks"] |= tasks
        pending["stats"] |= stats or pending["layout"]
        pending["fit"] |= fit or pending["layout"]
        self._work += 1
        work, asked, previous = self._work, dict(pending), self.shown
        store, view = self.store, dict(task=self.task, hops=self.hops, group=self.group, search=self.search,
                                       expanded=set(self.expanded))
        since, selected, first = self.since, self.task, self.plot.rendered is None
        if asked["layout"]:
            tasks = queries.task_count(store)
            self.progress_text.object = f"Laying out {tasks:,} task{'' if tasks == 1 else 's'}…"
            self.progress.visible = True
        elif asked["fit"]:
            self.progress_text.object = "Drawing the graph…"
            self.progress.visible = True

        def compute() -> tuple[ShownGraph, Rendered | None, tuple, bool]:
            task_graph = read_task_graph(store) if asked["layout"] or asked["tasks"] else None
            layout = asked["layout"] or (task_graph is not None
                                         and set(task_graph.graph) != set(previous.task_graph.graph))
            if layout:
                shown = shown_graph(task_graph, read_stats(store, since), **view)
            elif asked["stats"]:
                shown = previous.with_stats(read_stats(store, since))
            else:
                shown = previous
            frames = shown.frames(selected)
            # Only the first drawing builds a plot (HoloViews' models, 0.2-1.9 s); later ones are
            # sent through its pipe, a new layout too (0.1-0.2 s), and fitted to the view.
            return shown, render(frames) if first else None, frames, asked["fit"] or layout

        def show(result: tuple[ShownGraph, Rendered | None, tuple, bool]) -> None:
            if work != self._work:
                return  # a newer piece of work is on its way
            self._pending = dict.fromkeys(self._pending, False)
            shown, rendered, frames, fit = result
            self.shown = shown
            if rendered is not None:
                self.plot.show(rendered)
            else:
                self.plot.update(frames, fit=fit)
            self.progress.visible = False
            self._show_text()

        def failed(exc: BaseException) -> None:
            if work == self._work:
                self.progress_text.object = "The graph could not be drawn; the server's log says why."
                self.progress.objects = [self.progress_text]

        off_the_loop(compute, show, failed)

    def _legend_picked(self, event) -> None:
        """A group clicked in the legend: show only it (the legend is ready for the next click)."""
        if event.new:
            self.group = event.new
            self.legend.picked = ""

    def _clicked(self, node: str | None) -> None:
        """A click on a group opens it; on a task, selects it."""
        if node is not None and is_group_node(node):
            group = node[len(GROUP_MARK):]
            if group not in self.expanded:
                self.expanded = [*self.expanded, group]
        else:
            self.task = node or ""

    # ---- text -------------------------------------------------------------------------

    def _show_text(self) -> None:
        shown = self.shown
        task_graph, state = shown.task_graph, shown.state
        graph = task_graph.graph
        options = {"All groups": ""} | {g: g for g in group_levels(task_graph)}
        if options != self.group_select.options:
            self.group_select.options = options
            self.group_select.value = self.group if self.group in options.values() else ""
        self.collapse_button.visible = shown.collapsible
        self.problems.object = ("**The task definitions have problems** (the rest is drawn):\n\n" +
                                "\n".join(f"- {markdown_text(p)}" for p in task_graph.problems))
        self.problems.visible = bool(task_graph.problems)
        self.definitions_note.object = definitions_note(task_graph)
        self.definitions_note.visible = bool(self.definitions_note.object)
        parts = [f"<b>{len(shown.shown):,}</b> of {graph.number_of_nodes():,} tasks shown"]
        tops = Counter(top_group(graph.nodes[n].get("group")) for n in shown.shown)
        self.legend.entries = tuple((top, tile_color(top), count) for top, count in sorted(tops.items()))
        if shown.view.collapsed:
            parts.append(f"{len(shown.view.members):,} groups shown collapsed (■): click one to open it")

        def name(task: str) -> str:  # short in the line, whole on hover
            return f"<span title='{html.escape(task)}'>{html.escape(short_label(task))}</span>"

        if state.critical:
            path = [name(t) for t in state.critical] if len(state.critical) <= 8 else (
                [name(t) for t in state.critical[:3]] + [f"… {len(state.critical) - 6} more …"]
                + [name(t) for t in state.critical[-3:]])
            parts.append(f"critical path <b>{human_duration(state.critical_seconds)}</b>: "
                         f"<span style='color:#7c3aed'>{' → '.join(path)}</span>")
        causes = sorted(state.causes.items(), key=lambda item: (-item[1], item[0]))
        for cause, count in causes[:3]:
            parts.append(f"<span style='color:#b91c1c'>root cause <b>{name(cause)}</b> blocks {count}</span>")
        if len(causes) > 3:
            parts.append(f"<span style='color:#b91c1c'>{len(causes) - 3} more root causes</span>")
        self.summary.object = " · ".join(parts)
        self.card.object = self._card()

    def _card(self) -> str:
        task, shown = self.task, self.shown
        graph, state = shown.task_graph.graph, shown.state
        if task not in graph:
            return ("<div style='color:#64748b;font:13px system-ui;padding:8px'>Click a task to see its upstream "
                    "and downstream, and to open its runs. Wheel to zoom, drag to pan.</div>")
        status = state.status.get(task)
        runs_url = self.store.links.page("task_runs", search=task, since=self.since)
        rows = shown.stats[shown.stats["task"] == task]
        blocked_by = None if rows.empty else plain(rows.iloc[0]["last_blocked"])
        role = ""
        if task in state.causes:
            role = "<p style='color:#b91c1c'><b>Root cause</b> of the failures downstream</p>"
        elif blocked_by:
            role = f"<p style='color:#b91c1c'><b>Blocked</b>: {html.escape(blocked_by)}</p>"
        elif task in state.blocked:
            role = f"<p style='color:#b45309'>{html.escape('W' + waiting_text(state.blocked[task])[1:])}</p>"
        return (f"<div style='font:14px system-ui;padding:12px;border:1px solid #e2e8f0;border-radius:10px'>"
                f"<div style='font-weight:700;font-size:16px;overflow-wrap:anywhere'>{html.escape(task)}</div>"
                f"<p>{status_badge(status) if status else 'no runs in range'}</p>{role}"
                f"<p>{_count(graph.in_degree(task), 'direct upstream')} · "
                f"{_count(graph.out_degree(task), 'direct downstream')}"
                f"{f' · {state.causes[task]:,} blocked' if task in state.causes else ''}</p>"
                f"<p><a class='td-task-runs' href='{html.escape(runs_url)}'>View runs of {html.escape(task)} →</a></p>"
                "</div>")
