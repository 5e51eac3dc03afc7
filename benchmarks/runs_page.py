"""The Task Runs page's server side at scale: queries, one session's update, server memory.

Each against the usual Panel approach (a pandas DataFrame of all runs that a session holds,
filtered, counted, sorted and sliced in pandas) on the same data:

1. runs page query + count: `queries.runs_view` (one page, the total and the counts per
   status, as one page refresh asks them) for a set of views (default 24h, FAILED over 7d,
   a task-name search, a group, sort by duration, the last page of 7d).
2. session update cycle: `RunsGrid.changed` for a real status change of a run shown
   on page 1 (the page's Bokeh models attached to a document, each model change
   serialised as a PATCH-DOC message), and for a change the session cannot show.
3. server memory: RSS of a real `taskdash serve` with 0, 1 and N sessions opened with
   `bokeh.client.pull_session`.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
import pyarrow as pa

from dashboard import queries
from dashboard.components.offload import UNDRAWN_WAIT
from dashboard.hub import Change, Hub
from dashboard.index import Index
from dashboard.index_schema import reached_names
from dashboard.ingest import Ingestor
from dashboard.spool import SpoolWriter
from dashboard.statuses import LIFECYCLE, TERMINAL

from .common import Row, Sizes, say, server, settle, timed, timing_row, tree_rss
from .data import AGENTS, Dataset

PAGE_SIZE = 50
WEEK = dt.timedelta(days=7)


# ---- figure 1: the page's queries against pandas ------------------------------------------

VIEWS = (  # name, filter, page, sort, descending
    ("default (24h, newest first)", queries.RunFilter(since=dt.timedelta(hours=24)), 1, "trigger_time", True),
    ("FAILED over 7d", queries.RunFilter(statuses=("FAILED",), since=WEEK), 1, "trigger_time", True),
    ('search "task_04" over 7d', queries.RunFilter(task_text="task_04", since=WEEK), 1, "trigger_time", True),
    ("group_07 over 7d", queries.RunFilter(group="group_07", since=WEEK), 1, "trigger_time", True),
    ("7d by duration, longest first", queries.RunFilter(since=WEEK), 1, "duration", True),
    ("7d, last page", queries.RunFilter(since=WEEK), 10**9, "trigger_time", True),
)

ALL_RUNS_SQL = """
SELECT r.run_id, r.task, coalesce(r.grp, t.grp) AS grp, r.status, r.agent, r.adhoc, r.trigger_time,
       r.started, r.finished, r.exit_code, r.message, r.updated, r.reached
FROM runs r LEFT JOIN tasks t ON t.task = r.task
"""


def pandas_view(frame: pd.DataFrame, run_filter: queries.RunFilter, page: int, page_size: int, sort: str,
                descending: bool, now: dt.datetime) -> tuple[pd.DataFrame, int, dict[str, int]]:
    """The usual Panel way: the page, the total and the status counts from a frame of all runs."""
    mask = pd.Series(True, index=frame.index)
    if run_filter.since is not None:
        mask &= frame["trigger_time"] >= now - run_filter.since
    if run_filter.group:
        mask &= frame["grp"] == run_filter.group
    if run_filter.task_text:
        mask &= frame["task"].str.contains(run_filter.task_text, case=False, regex=False)
    in_range = frame[mask]
    counts = in_range["status"].value_counts().to_dict()
    chosen = in_range[in_range["status"].isin(run_filter.statuses)] if run_filter.statuses else in_range
    total = len(chosen)
    page = min(max(1, page), max(1, -(-total // page_size)))
    if sort == "duration":
        chosen = chosen.assign(duration=(chosen["finished"].fillna(now) - chosen["started"]).dt.total_seconds())
    ordered = chosen.sort_values([sort, "run_id"], ascending=not descending, na_position="last")
    rows = ordered.iloc[(page - 1) * page_size: page * page_size]
    if sort != "duration":
        rows = rows.assign(duration=(rows["finished"].fillna(now) - rows["started"]).dt.total_seconds())
    return rows, total, counts


def query_figures(index: Index, repeat: int, clock: Callable[[], dt.datetime]) -> tuple[list[tuple], pd.DataFrame]:
    start = time.perf_counter()
    frame = index.query(ALL_RUNS_SQL)
    frame["reached"] = reached_names(pa.array(frame["reached"], pa.uint8())).to_pandas()
    load_seconds = time.perf_counter() - start
    ours = {name: [] for name, *_ in VIEWS}
    base = {name: [] for name, *_ in VIEWS}
    for round_no in range(repeat + 1):  # round 0 warms up, and checks both give the same answer
        for name, run_filter, page, sort, descending in VIEWS:
            now = clock()
            t0 = time.perf_counter()
            view = queries.runs_view(index, run_filter, page, PAGE_SIZE, sort, descending, now)  # page + counts
            t1 = time.perf_counter()
            rows, total, base_counts = pandas_view(frame, run_filter, page, PAGE_SIZE, sort, descending, now)
            t2 = time.perf_counter()
            if round_no == 0:
                same = (view.total == total and view.runs["run_id"].tolist() == rows["run_id"].tolist()
                        and {k: v for k, v in view.status_counts.items() if v} == base_counts)
                if not same:
                    print(f"warning: pandas and DuckDB disagree on {name!r}", file=sys.stderr)
                continue
            ours[name].append(t1 - t0)
            base[name].append(t2 - t1)
    rows = []
    target = "med ≤ 10 ms, p95 ≤ 25 ms, ≥ 10x"
    for name, *_ in VIEWS:
        rows.append(timing_row(f"runs page query + count: {name}", ours[name], base[name], target, 10, 25, 10))
    rows.append(timing_row("runs page query + count: all views pooled", sum(ours.values(), []),
                           sum(base.values(), []), target, 10, 25, 10))
    rows.append(("  (baseline: load all runs into pandas once)", "", "", f"{load_seconds * 1000:,.0f} ms", "", ""))
    return rows, frame


# ---- figure 2: one session's reaction to a change ---------------------------------------


class PatchSerialiser:
    """Serialises each document change as the server would send it (a PATCH-DOC message)."""

    def __init__(self):
        from bokeh.protocol import Protocol

        self.protocol = Protocol()
        self.messages = 0
        self.bytes = 0

    def __call__(self, event) -> None:
        message = self.protocol.create("PATCH-DOC", [event])
        self.bytes += len(message.header_json) + len(message.metadata_json) + len(message.content_json)
        self.bytes += sum(len(buffer.to_bytes()) for buffer in message.buffers)
        self.messages += 1


def session_figures(index: Index, spool: Path, index_path: Path, repeat: int) -> list[tuple]:
    import panel as pn
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    from dashboard.components.runs_grid import RunsGrid
    from dashboard.config import Config
    from dashboard.store import Store

    hub = Hub()
    ingestor = Ingestor(index, spool, hub)  # never started: the benchmark steps it
    heard: list[Change] = []
    hub.subscribe(heard.append)
    svc = Store(index, hub, Config(spool=spool, index=index_path))
    view = RunsGrid(store=svc)
    doc = Document()
    root = pn.panel(view).get_root(doc)
    doc.add_root(root)
    serialiser = PatchSerialiser()
    doc.on_change(serialiser)
    writer = SpoolWriter(spool, name="bench-runs-page")

    def change_status(run_id: str) -> Change:
        """Append a real status event for the run, ingest it, and return what the hub announced."""
        run = queries.run(index, run_id)
        if run["status"] in TERMINAL:  # a newer terminal status replaces the older one
            status = "FAILED" if run["status"] == "SUCCESS" else "SUCCESS"
        else:
            status = (*LIFECYCLE, "SUCCESS")[LIFECYCLE.index(run["status"]) + 1]
        ts = max(queries.utcnow(), pd.Timestamp(run["updated"]).to_pydatetime() + dt.timedelta(milliseconds=1))
        writer.status(run_id, run["task"], status, agent=run["agent"] or AGENTS[0], ts=ts,
                      exit_code={"SUCCESS": 0, "FAILED": 1}.get(status))
        heard.clear()
        ingestor.catch_up([writer.events_path.relative_to(spool).as_posix()])
        assert heard and run_id in heard[-1].runs, "the hub did not announce the change"
        return heard[-1]

    def timed_change(change: Change) -> float:
        with set_curdoc(doc):
            start = time.perf_counter()
            view.changed(change)
            return time.perf_counter() - start

    shown_times, hidden_times, messages, sent_bytes, hidden_queries = [], [], [], [], 0
    old_run = index.query("SELECT run_id FROM runs ORDER BY trigger_time LIMIT 1")["run_id"].iloc[0]
    real_query = index.query
    try:
        for n in range(repeat + 1):
            shown = view.grid.value["run_id"].tolist()
            change = change_status(shown[n % len(shown)])
            serialiser.messages = serialiser.bytes = 0
            elapsed = timed_change(change)
            if n:  # the first one warms up
                shown_times.append(elapsed)
                messages.append(serialiser.messages)
                sent_bytes.append(serialiser.bytes)
            change = change_status(old_run)
            calls = []
            index.query = lambda *a, **k: calls.append(a) or real_query(*a, **k)
            elapsed = timed_change(change)
            index.query = real_query
            if n:
                hidden_times.append(elapsed)
                hidden_queries += len(calls)
    finally:
        index.query = real_query
        writer.close()
    target = "≤ 50 ms"
    return [
        timing_row(f"session update cycle: run on page 1 changed ({statistics.median(messages):.0f} patches, "
                   f"{statistics.median(sent_bytes) / 1024:,.0f} kB)", shown_times, None, target, 50, None, None),
        timing_row(f"session update cycle: change it cannot show ({hidden_queries} queries)", hidden_times,
                   None, target + (" (0 queries)" if hidden_queries == 0 else " QUERIED"), 50, None, None),
    ]


# ---- figure 3: the real server's memory -------------------------------------------------


def memory_figures(spool: Path, index_path: Path, sessions: int, frame_bytes: int) -> list[tuple]:
    from bokeh.client import pull_session

    import dashboard.pages.task_runs  # noqa: F401  (the client decodes the page's models by name)

    mb = 2**20
    with server(spool, index_path) as (url, process, output), ExitStack() as opened:
        settle(process)
        rss = {0: tree_rss(process)}
        for n in range(1, sessions + 1):
            session = pull_session(url=f"{url}/task-runs")
            opened.callback(session.close)
            if not session.document.roots:
                raise RuntimeError("pull_session got an empty document")
            # A page no browser draws starts its below-the-fold work (failure signatures) UNDRAWN_WAIT
            # after it is built: the first session's (a process's first grouping fills DuckDB's buffers)
            # belongs to that session, and the last ones' to the sessions measured.
            settle(process, not_before=time.monotonic() + UNDRAWN_WAIT + 1 if n in (1, sessions) else 0.0)
            rss[n] = tree_rss(process)
    per_session = (rss[sessions] - rss[1]) / max(1, sessions - 1)
    frame_mb = frame_bytes / mb
    return [
        ("server memory: RSS, no session", f"{rss[0] / mb:,.0f} MB", "", "", "", ""),
        ("server memory: RSS, 1 session", f"{rss[1] / mb:,.0f} MB", "", "", "", ""),
        (f"server memory: RSS, {sessions} sessions", f"{rss[sessions] / mb:,.0f} MB", "",
         f"≈ {(rss[1] + (sessions - 1) * frame_bytes) / mb:,.0f} MB (est.)", "",
         f"≤ 1 GB {'ok' if rss[sessions] <= 2**30 else 'MISSED'}"),
        ("server memory: per extra session", f"{per_session / mb:,.1f} MB", "", f"{frame_mb:,.0f} MB",
         f"{frame_mb / (per_session / mb):,.1f}x" if per_session > 0 else "",
         f"≤ 15 MB {'ok' if per_session <= 15 * mb else 'MISSED'}"),
    ]


# ---- the section -------------------------------------------------------------------------


def figures(data: Dataset, sizes: Sizes) -> list[Row]:
    index = Index(data.index_path, fallback_to_private=False)
    try:
        say(f"runs page: {index.counts()['runs']:,} runs; measuring queries...")
        rows, frame = query_figures(index, sizes.repeat, data.now)
        frame_bytes = int(frame.memory_usage(deep=True).sum())
        del frame
        say("runs page: measuring a session's update cycle...")
        rows += session_figures(index, data.spool, data.index_path, sizes.repeat)
    finally:
        index.close()  # the server needs the index file
    say(f"runs page: measuring the server with {sizes.sessions} sessions...")
    return rows + memory_figures(data.spool, data.index_path, sizes.sessions, frame_bytes)
