"""The dashboard's parts in a notebook: a store on a spool, its live components, and queries
that return pandas DataFrames.

    import panel as pn
    from dashboard import open_store
    pn.extension("tabulator")
    store = open_store("data/spool")
    store.runs_grid()                 # live, like /task-runs
    store.failure_groups(since="7d")  # its failures by signature (or over a grid's: grid=...)
    store.run_detail(run_id)          # details, timeline and log viewer (store.run_card, store.log_viewer)
    store.dependency_graph()          # the Tasks & Groups page's graph and table
    store.compare(run_a, run_b)       # two runs side by side and the diff of a stream, like /compare
    store.runs(statuses=["FAILED"], since="24h")   # a DataFrame

The components are the served pages' own views (no second implementation); the store
follows the spool with its own ingestor and hub, exactly as a server process does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import panel as pn

from .config import load_config
from .components import live
from .services import Services
from .store import Links, Store


@dataclass(eq=False)
class NotebookStore(Store):
    """The process's Store (queries, live feed, links, health) with the components ready to display."""

    _subscriptions: list[live.Delivery] = field(default_factory=list)

    # ---- components (each displays in a notebook cell and updates live) --------------

    def runs_grid(self, **query) -> pn.viewable.Viewable:
        """The runs grid with its filters; `query` presets them (search, status, since, group...)."""
        from .components.runs_grid import RunsGrid

        return self._follow(lambda: RunsGrid(store=self, **query))

    def failure_groups(self, grid=None, **query) -> pn.viewable.Viewer:
        """The runs page's Failure signatures over `grid`'s filters (a runs_grid()), else over
        `query`'s (search, status, since, group)."""
        from .components.failure_groups import LIVE_SECONDS, FailureGroups
        from .components.runs_grid import RunsQuery

        view = grid if grid is not None else RunsQuery(**query)
        return self._follow(lambda: FailureGroups(store=self, query=view), min_interval=LIVE_SECONDS)

    def run_card(self, run_id: str) -> pn.viewable.Viewer:
        """One run's details card and lifecycle timeline."""
        from .components.run_card import RunCard

        card = self._follow(lambda: RunCard(store=self, run_id=run_id))
        if card.run is None:
            self._subscriptions.pop().close()
            raise KeyError(f"no run {run_id!r} in the index (see store.runs())")
        return card

    def log_viewer(self, run_id: str, stream: str = "stdout", **view) -> pn.viewable.Viewer:
        """One run's log viewer; `view` presets page, line, follow or search."""
        from .components.log_viewer import LogViewer

        return self._follow(lambda: LogViewer(store=self, run_id=run_id, stream=stream, **view),
                            min_interval=self.log_push_min_interval)

    def run_detail(self, run_id: str, stream: str = "stdout") -> pn.viewable.Viewable:
        """One run's details card, lifecycle timeline and log viewer."""
        card = self.run_card(run_id)
        return pn.Column(card, self.log_viewer(run_id, stream, follow=card.running), sizing_mode="stretch_width")

    def compare(self, a: str, b: str, stream: str = "stdout", **view) -> pn.viewable.Viewer:
        """Run `a` against run `b`, as /compare shows them; `view` presets ignore_masked, difference."""
        from .components.run_compare import RunCompare

        return self._follow(lambda: RunCompare(store=self, a=a, b=b, stream=stream, **view), min_interval=1.0)

    def dependency_graph(self, **query) -> pn.viewable.Viewable:
        """The dependency graph and the tasks table; `query` presets group, search, since, task, hops."""
        from .components.dependency_graph import DependencyGraph
        from .components.tasks_table import TasksTable

        graph = self._follow(lambda: DependencyGraph(store=self, **query), min_interval=1.0)
        table = self._follow(lambda: TasksTable(store=self, **query), min_interval=1.0)
        table.link_to(graph)
        return pn.Column(graph, table, sizing_mode="stretch_width")

    def _follow(self, build_view, min_interval: float | None = None) -> pn.viewable.Viewable:
        interval = self.push_min_interval if min_interval is None else min_interval
        view, subscription = live.follow(self, build_view, min_interval=interval)
        self._subscriptions.append(subscription)
        return view if isinstance(view, pn.viewable.Viewer) else view.panel()

    def close(self) -> None:
        """Stop the components' live updates, stop following the spool and close the index."""
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()
        super().close()


def open_store(spool: str | Path | None = None, index: str | Path | None = None,
               dashboard_url: str | None = None) -> NotebookStore:
    """Follow a spool into an index and return the store; close it when done.

    With no arguments: the spool and index `panel_serve.yaml` names (a private copy of the
    index when a running server holds it). With another spool: an in-memory index of it,
    or the `index` file given. Links in the components (the eye icon, "View runs of")
    point at `dashboard_url`, by default the configured server.
    """
    config = load_config()
    if spool is not None:  # another spool: an index of its own, in memory unless given
        config = replace(config, spool=Path(spool), index=Path(index) if index is not None else None)
    elif index is not None:
        config = replace(config, index=Path(index))
    base = dashboard_url if dashboard_url is not None else f"http://{config.address}:{config.port}"
    links = Links(config.routes, base.rstrip("/"))
    return Services.start(config, links, catch_up=True, store_type=NotebookStore).store
