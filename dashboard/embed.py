"""The dashboard's parts in a notebook: a store on a spool, its live components, and queries
that return pandas DataFrames.

    import panel as pn
    from dashboard import open_store
    pn.extension("tabulator")
    store = open_store("data/spool")
    store.runs_grid()                 # live, like /task-runs
    store.run_detail(run_id)          # details, timeline and log viewer
    store.dependency_graph()          # the Tasks & Groups page's graph and table
    store.runs(statuses=["FAILED"], since="24h")   # a DataFrame

The components are the served pages' own views (no second implementation); the store
follows the spool with its own ingestor and hub, exactly as a server process does.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb
import pandas as pd
import panel as pn

from . import queries
from .app import Services
from .config import load_config
from .hub import Hub, Subscription
from .index import Index
from .ingest import Ingestor


class Store:
    """A spool followed live into a DuckDB index, with the dashboard's components and queries."""

    def __init__(self, services: Services):
        self.services = services
        self._subscriptions: list[Subscription] = []

    @property
    def index(self) -> Index:
        return self.services.index

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB cursor on the index, for your own SQL (tables: runs, transitions, log_lines, tasks)."""
        return self.index.cursor()

    # ---- components (each displays in a notebook cell and updates live) --------------

    def runs_grid(self, **query) -> pn.viewable.Viewable:
        """The runs grid with its filters; `query` presets them (search, status, since, group...)."""
        from .pages.task_runs import RunsQuery, TaskRunsView

        return self._follow(lambda: TaskRunsView(self.services, RunsQuery(**query)))

    def run_detail(self, run_id: str, stream: str = "stdout") -> pn.viewable.Viewable:
        """One run's details card, lifecycle timeline and log viewer."""
        from .pages.log_viewer import LogPosition
        from .pages.run_detail import RunDetailView

        run = queries.run(self.index, run_id)
        if run is None:
            raise KeyError(f"no run {run_id!r} in the index (see store.runs())")
        return self._follow(lambda: RunDetailView(self.services, run, LogPosition(stream=stream)))

    def dependency_graph(self, **query) -> pn.viewable.Viewable:
        """The dependency graph and the tasks table; `query` presets group, search, since, task, hops."""
        from .pages.tasks import TasksQuery, TasksView

        return self._follow(lambda: TasksView(self.services, TasksQuery(**query)), min_interval=1.0)

    def _follow(self, build_view, min_interval: float | None = None) -> pn.viewable.Viewable:
        interval = self.services.config.push_min_interval_seconds if min_interval is None else min_interval
        view, subscription = self.services.hub.follow(build_view, min_interval=interval)
        self._subscriptions.append(subscription)
        return view.panel()

    # ---- queries (pandas DataFrames) ----------------------------------------------------

    def runs(self, statuses=(), task: str = "", since: str | None = None, group: str | None = None,
             limit: int = 10_000, sort: str = "trigger_time", descending: bool = True) -> pd.DataFrame:
        """Runs matching the filters, newest first; `duration` in seconds; the group as `group`,
        as the CLI's JSON calls it (the index's column is `grp`, GROUP being SQL's word)."""
        run_filter = queries.RunFilter.from_user(statuses, task, since, group)
        runs = queries.runs_page(self.index, run_filter, limit=limit, sort=sort, descending=descending)
        return runs.rename(columns={"grp": "group"})

    def transitions(self, run_id: str) -> pd.DataFrame:
        """A run's status changes in time order."""
        return queries.transitions(self.index, run_id)

    def log_lines(self, run_id: str, stream: str = "stdout", first: int = 1,
                  count: int = queries.LOG_PAGE_LINES) -> pd.DataFrame:
        """Lines `first` .. `first + count - 1` of a run's stream (line_no, text)."""
        return queries.log_page(self.index, run_id, stream, first, count)

    def task_stats(self, since: str | None = None) -> pd.DataFrame:
        """Per task: latest run, number of runs, success rate and median duration."""
        return queries.task_stats(self.index, queries.parse_duration(since) if since else None)

    def close(self) -> None:
        """Stop the components' live updates, stop following the spool and close the index."""
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()
        self.services.stop()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def open_store(spool: str | Path | None = None, index: str | Path | None = None,
               dashboard_url: str | None = None) -> Store:
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
    store_index = Index(config.index)
    hub = Hub()
    ingestor = Ingestor(store_index, config.spool, hub, rescan_seconds=config.rescan_seconds)
    ingestor.catch_up()
    ingestor.start()
    base = dashboard_url if dashboard_url is not None else f"http://{config.address}:{config.port}"
    return Store(Services(config, store_index, hub, ingestor, routed=True, link_base=base.rstrip("/")))
