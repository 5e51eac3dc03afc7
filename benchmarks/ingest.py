"""Ingest throughput: log lines and status events a second, against only reading the same files.

Ours: `Ingestor.catch_up` of the spool's events, then of its logs, each into an index of its
own (the index build is the first sample). Baselines on the same files: reading them and
splitting the lines (logs); reading them and parsing every line with DuckDB's own JSON
reader into a table of typed columns (events).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import duckdb

from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.spool import events_dir, logs_dir

from .common import Row, Sizes, rate_row, say
from .data import Dataset, spool_view

EVENT_COLUMNS = {"kind": "VARCHAR", "run_id": "VARCHAR", "task": "VARCHAR", "status": "VARCHAR", "ts": "VARCHAR",
                 "agent": "VARCHAR", "adhoc": "BOOLEAN", "group": "VARCHAR", "trigger_time": "VARCHAR",
                 "exit_code": "INTEGER", "message": "VARCHAR", "depends_on": "VARCHAR[]", "description": "VARCHAR"}


def read_and_split(spool: Path) -> int:
    lines = 0
    for path in logs_dir(spool).glob("*/*.log"):
        lines += len(path.read_bytes().split(b"\n")) - 1
    return lines


def read_and_parse(spool: Path) -> int:
    """The events parsed into a table of typed columns in memory. (Read out of DuckDB as one Arrow
    table instead, DuckDB 1.5.5 took 28 s for the 6M events that it parses into a table in 2.6 s:
    the baseline measured that until 2026-12-06.)"""
    files = sorted(str(path) for path in events_dir(spool).glob("*.jsonl"))
    with duckdb.connect() as conn:
        conn.execute("SET enable_progress_bar = false")
        conn.execute("CREATE TABLE events AS SELECT * FROM read_json($files, format = 'newline_delimited', "
                     "columns = $columns)", {"files": files, "columns": EVENT_COLUMNS})
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


def ingest_into_fresh_index(view: Path) -> tuple[float, dict[str, int]]:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        index = Index(Path(folder) / "index.duckdb", fallback_to_private=False)
        start = time.perf_counter()
        added = Ingestor(index, view).catch_up()
        seconds = time.perf_counter() - start
        index.close()
    return seconds, added


def baseline_times(fn, spool: Path, samples: int) -> tuple[list[float], int]:
    times, count = [], 0
    for _ in range(samples):
        start = time.perf_counter()
        count = fn(spool)
        times.append(time.perf_counter() - start)
    return times, count


def figures(data: Dataset, sizes: Sizes, folder: Path) -> list[Row]:
    rows = []
    for part, key, build, baseline, target, label in (
            ("logs", "log_lines", data.logs_build, read_and_split, 1_000_000,
             "ingest of log lines from the spool (baseline: read and split the files)"),
            ("events", "events", data.events_build, read_and_parse, 500_000,
             "ingest of status events (baseline: DuckDB's read_json of the files)")):
        view = spool_view(data.spool, part, folder)
        times, count = ([build[0]], build[1]) if build else ([], 0)
        while len(times) < sizes.ingest_repeat:
            say(f"measuring the ingest of {part} ({len(times) + 1}/{sizes.ingest_repeat})...")
            seconds, added = ingest_into_fresh_index(view)
            times.append(seconds)
            count = added[key]
        base_times, base_count = baseline_times(baseline, view, sizes.ingest_repeat)
        if base_count != count:
            say(f"warning: the baseline read {base_count:,} {part} items, the ingest {count:,}")
        rows.append(rate_row(f"{label}: {count:,}", count, times, base_times, target))
    return rows
