"""The strip of runs over time above the runs grid: its counts over `runs` runs (1,000,000 at the
issue's size) of data.py's mix over 7 days, in a spool of its own with only their status events
(no logs: the strip reads only the runs table).

Figures: `queries.strip_counts` as a live page asks it after an ingest step (a new index version,
so not the shared answer) over 7 days (56 buckets of 3 h), over 24 hours (72 of 20 min), and over
7 days with a task-name search and two statuses; against reading the range's trigger times and
statuses into pandas and counting there (the usual approach). Then the same asked again by
another session in the same index version and second (shared_answers.shared_per_version).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from dashboard import queries, shared_answers
from dashboard.index import Index
from dashboard.ingest import Ingestor

from .common import Row, Sizes, catch_up_with_progress, reused, say, timed, timing_row
from .data import data_clock, made_at, write_run_events

WEEK = dt.timedelta(days=7)


def prepare(folder: Path, sizes: Sizes) -> tuple[Path, Callable[[], dt.datetime]]:
    """The events-only spool and its index in `folder` (made unless there): the index's path, and
    the clock of its data (see data.data_clock)."""
    index_path, marker = folder / "index.duckdb", folder / "complete.json"
    if marker.exists() and sizes.name in marker.read_text():
        say(f"reusing {folder}")
        return reused(index_path, folder / "spool"), data_clock(made_at(marker))
    for stale in (index_path, Path(f"{index_path}.wal"), marker):
        stale.unlink(missing_ok=True)
    now, start = queries.utcnow(), time.perf_counter()
    write_run_events(folder / "spool", sizes.runs, now)
    index = Index(index_path, fallback_to_private=False)
    try:
        catch_up_with_progress(Ingestor(index, folder / "spool"), "ingesting the strip's runs")
        runs = index.counts()["runs"]
    finally:
        index.close()
    marker.write_text(json.dumps({"size": sizes.name, "made": now.isoformat()}))
    say(f"strip data: {runs:,} runs made in {time.perf_counter() - start:.0f} s")
    return index_path, data_clock(now)


def pandas_strip(index: Index, run_filter: queries.RunFilter, bucket: dt.timedelta, now: dt.datetime) -> pd.Series:
    """The baseline: the range's trigger times and statuses read out, counted per bucket in pandas."""
    where, params = run_filter.where(now)
    frame = index.query(f"SELECT r.trigger_time, r.status FROM runs r {where}", params)
    return frame.groupby([frame["trigger_time"].dt.floor(pd.Timedelta(bucket)), "status"]).size()


def figures(folder: Path, sizes: Sizes) -> list[Row]:
    index_path, clock = prepare(folder / "strip", sizes)
    index = Index(index_path, fallback_to_private=False)
    rows = []
    try:
        runs = index.counts()["runs"]
        cases = [("7 days", queries.RunFilter(since=WEEK)),
                 ("24 hours", queries.RunFilter(since=dt.timedelta(hours=24))),
                 ("7 days, task search 'task_01' and FAILED or TERMINATED",
                  queries.RunFilter(since=WEEK, task_text="task_01", statuses=("FAILED", "TERMINATED")))]
        for name, run_filter in cases:
            bucket = queries.strip_bucket(run_filter.since)
            now = clock()
            ours, strip = timed(lambda: queries.strip_counts(index, run_filter, bucket, now), sizes.repeat)
            base, counts = timed(lambda: pandas_strip(index, run_filter, bucket, now), sizes.heavy_repeat * 2)
            if int(strip["runs"].sum()) != int(counts.sum()):
                raise RuntimeError(f"the strip counted {int(strip['runs'].sum())} runs, pandas {int(counts.sum())}")
            rows.append(timing_row(
                f"runs strip over {runs:,} runs, {name}: {len(strip)} bars of {bucket}, {int(strip['runs'].sum()):,} "
                "counted (baseline: pandas)", ours, base, "≤ 300 ms", 300, None, None))
        shared = shared_answers.shared_per_version(queries.strip_counts)
        week, now = queries.RunFilter(since=WEEK), clock().replace(microsecond=0)
        again, _ = timed(lambda: shared(index, week, queries.strip_bucket(WEEK), now), sizes.repeat)
        rows.append(timing_row("runs strip: asked again in the same index version and second (shared by sessions)",
                               again, None, "", None, None, None))
    finally:
        index.close()
    return rows
