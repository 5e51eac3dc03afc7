"""The read side of one process's dashboard: what every page, component and notebook is handed.

A `Store` answers queries over the index, lets a view subscribe to the live feed, makes the
links between pages and says how the ingest is doing. It has no writer: the process's
services (`dashboard.services`) own the ingestor and build the store over the same index and
hub. `queries` functions take a store wherever they take an index (it has `query`, `cursor`, `log_id`
and `version`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote, urlencode

import duckdb
import pandas as pd

from . import clock, queries
from .config import Config
from .changes import Change
from .hub import Hub, Subscription
from .spool import log_path, open_spool_file

if TYPE_CHECKING:
    from .blocking import KeptCycles
    from .index import Index
    from .longest_runs import LongestRuns
    from .run_hours import RunHours

#: A download is read from the spool file this many bytes at a time.
CHUNK_BYTES = 1024 * 1024
#: In lake mode a download is read from the index this many lines at a time.
INDEXED_CHUNK_LINES = 20_000
#: The pages, by the names Config.routes knows them.
PAGES = ("task_runs", "run_detail", "tasks", "compare")


class Health(Protocol):
    """How the ingest is doing (the ingestor's `IngestHealth`): enough for the connection indicator."""

    failure: str | None
    errors_recorded: int
    current_at: float | None
    behind: float | None
    #: What the index is read from, as the indicator names it: "spool", or "lake" in lake mode.
    source: str


def log_file_chunks(spool: str | Path, run_id: str, stream: str) -> Iterator[bytes]:
    """The bytes of a run's stream as written to the spool, a chunk at a time (none if there is no
    file). As ingest does, it is opened without following any link below the spool's logs/ folder
    (check and open one step: spool.open_spool_file) and read through that one descriptor."""
    try:
        fd = open_spool_file(Path(spool), log_path(Path(), run_id, stream).as_posix())
    except FileNotFoundError:
        return
    with open(fd, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


#: Path segments after a page's route that Panel answers itself (/task-runs/ws, /task-runs/metadata,
#: /task-runs/autoload.js) or that lead to the login page (/task-runs/login).
RESERVED_RUN_IDS = ("ws", "metadata", "autoload.js", "login")


def run_segment(run_id: str) -> str:
    """A run id as the path segment of its page. A reserved one has its first letter percent-encoded
    (/task-runs/%77s): Tornado matches routes on the path as sent, so that is the run's page, and
    it hands the page the decoded id."""
    if run_id in RESERVED_RUN_IDS:
        return f"%{ord(run_id[0]):02X}{run_id[1:]}"
    return quote(run_id, safe="")


@dataclass(frozen=True)
class Links:
    """Where the pages are, as this process serves them (or a notebook links to them)."""

    #: page name -> route template (/task-runs/{run_id}); with None, plain `panel serve`: /<module>?run_id=
    routes: dict[str, str] | None = None
    #: Put before routed links: empty on the server; the server's address in a notebook.
    base: str = ""

    def page(self, name: str, run_id: str | None = None, **query: str) -> str:
        """The link to a page ('task_runs', 'run_detail', 'tasks' or 'compare'), with `query` and the
        page's clock (tz=, ago=: dashboard.clock) as its query string, so the next page keeps it."""
        url = self._page(name, run_id)
        args = {**query, **clock.current_url_args()}
        return url + (("&" if "?" in url else "?") + urlencode(args) if args else "")

    def _page(self, name: str, run_id: str | None = None) -> str:
        if self.routes is not None:
            route = self.routes[name]
            return self.base + (route.replace("{run_id}", run_segment(run_id)) if run_id is not None else route)
        return f"./{name}" + (f"?run_id={quote(run_id, safe='')}" if run_id is not None else "")

    def compare(self, a: str, b: str, **view) -> str:
        """The comparison of run `a` with run `b` (/compare?a=…&b=…), with more of its view if given
        (`stream`, `difference`, ...)."""
        page = self.page("compare")
        return page + ("&" if "?" in page else "?") + urlencode({"a": a, "b": b, **view})

    def download(self, run_id: str, stream: str) -> str | None:
        """The streamed download of a run's stream, or None where no server route serves it."""
        if self.routes is None:
            return None
        return f"{self._page('run_detail', run_id)}/logs/{stream}.log"


@dataclass
class _NoHealth:
    failure: str | None = None
    errors_recorded: int = 0
    current_at: float | None = None
    behind: float | None = None
    source: str = "spool"


@dataclass(eq=False)  # hashed by identity: shared_answers keys its answers on the store
class Store:
    """One index, read only, with its live feed, links and the ingest's health."""

    index: Index
    hub: Hub
    config: Config
    links: Links = field(default_factory=Links)
    #: The ingest's health now (the ingestor's, read each time).
    health_of: Callable[[], Health] = _NoHealth
    #: What closing the store also stops (its process's services, in a notebook).
    on_close: Callable[[], None] | None = None
    #: The server's alerts for open pages, numbered (the alerter's `browser_alerts`); None when
    #: no alert rule asks for them (and in a notebook).
    browser_alerts_of: Callable[[int | None], list[tuple[int, dict]]] | None = None

    # ---- what queries read ----------------------------------------------------------

    def query(self, sql: str, params: list | tuple = ()) -> pd.DataFrame:
        """Run a parameterised query and return its rows as a DataFrame."""
        return self.index.query(sql, params)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for use in one thread (use with `with`)."""
        return self.index.cursor()

    def log_id(self, cur, run_id: str, stream: str) -> int | None:
        """The id of a run's stream in log_text (see Index.log_id)."""
        return self.index.log_id(cur, run_id, stream)

    def log_source(self, cur, run_id: str, stream: str, search: bool = False) -> tuple[str, int | None]:
        """Where a run's stream's lines are read, or searched (see Index.log_source)."""
        return self.index.log_source(cur, run_id, stream, search)

    @property
    def run_hours(self) -> RunHours | None:
        """Runs per hour of trigger time and status, kept between writes (see Index.run_hours)."""
        return self.index.run_hours

    @property
    def kept_cycles(self) -> KeptCycles | None:
        """The cycles asked for, kept between writes (see Index.kept_cycles)."""
        return self.index.kept_cycles

    @property
    def longest_runs(self) -> LongestRuns | None:
        """Each hour's longest runs, kept between writes (see Index.longest_runs)."""
        return self.index.longest_runs

    @property
    def version(self) -> int:
        """Raised after every ingest step that changed what a query can answer."""
        return self.index.version

    def counts(self) -> dict[str, int]:
        return self.index.counts()

    @property
    def rebuilt_reason(self) -> str | None:
        """Why the index was rebuilt (None if it was not): when the process started, or since."""
        return self.index.rebuilt_reason

    @property
    def rebuilt_while_running(self) -> bool:
        """The index was found damaged while the server ran and built anew from the spool."""
        return self.index.rebuilt_while_running

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB cursor on the index, for your own SQL (tables: runs, transitions, log_lines, tasks)."""
        return self.cursor()

    # ---- the live feed and health ------------------------------------------------------

    def subscribe(self, callback: Callable[[Change], None]) -> Subscription:
        """Hear what each ingest step changed, on the ingest thread (dashboard.components.live
        delivers onto a browser session)."""
        return self.hub.subscribe(callback)

    @property
    def health(self) -> Health:
        return self.health_of()

    @property
    def push_min_interval(self) -> float:
        """The shortest time between two live updates of one view, in seconds."""
        return self.config.push_min_interval_seconds

    @property
    def log_push_min_interval(self) -> float:
        """The shortest time between two live updates of a run's page and its log viewer, in seconds."""
        return self.config.log_push_min_interval_seconds

    def log_chunks(self, run_id: str, stream: str) -> Iterator[bytes]:
        """The bytes of a run's stream as its process wrote them (see log_file_chunks). In lake mode
        the run's spool is on another host: its indexed lines instead (invalid UTF-8 replaced)."""
        if self.index.lake is not None:
            return self._indexed_log_chunks(run_id, stream)
        return log_file_chunks(self.config.spool, run_id, stream)

    def _indexed_log_chunks(self, run_id: str, stream: str) -> Iterator[bytes]:
        total = queries.log_line_counts(self, run_id)[stream]
        for first in range(1, total + 1, INDEXED_CHUNK_LINES):
            lines = queries.log_page(self, run_id, stream, first, INDEXED_CHUNK_LINES)["text"]
            yield "".join(line + "\n" for line in lines).encode("utf-8")

    # ---- DataFrames for notebooks and scripts ------------------------------------------

    def runs(self, statuses=(), task: str = "", since: str | None = None, group: str | None = None,
             limit: int = 10_000, sort: str = "trigger_time", descending: bool = True) -> pd.DataFrame:
        """Runs matching the filters, newest first; `duration` in seconds; the group as `group`,
        as the CLI's JSON calls it (the index's column is `grp`, GROUP being SQL's word)."""
        run_filter = queries.RunFilter.from_user(statuses, task, since, group)
        runs = queries.runs_page(self, run_filter, limit=limit, sort=sort, descending=descending)
        return runs.rename(columns={"grp": "group"})

    def transitions(self, run_id: str) -> pd.DataFrame:
        """A run's status changes in time order."""
        return queries.transitions(self, run_id)

    def log_lines(self, run_id: str, stream: str = "stdout", first: int = 1,
                  count: int = queries.LOG_PAGE_LINES) -> pd.DataFrame:
        """Lines `first` .. `first + count - 1` of a run's stream (line_no, text)."""
        return queries.log_page(self, run_id, stream, first, count)

    def task_stats(self, since: str | None = None) -> pd.DataFrame:
        """Per task: latest run, number of runs, success rate and median duration."""
        return queries.task_stats(self, queries.parse_duration(since) if since else None)

    # ---- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop what the store was opened with (in a notebook: its ingestor and index)."""
        if self.on_close is not None:
            self.on_close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()
