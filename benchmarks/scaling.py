"""How cost grows with history (issue 19): the same figures at 100k, 1M and 10M runs.

Runs come at one rate whatever the size, the full size's (1,000,000 runs a week, about 143,000
a day), so a bigger index holds a longer history, not a busier day: 100,000 runs are 17 hours,
1,000,000 are 7 days, 10,000,000 are 70 days. Log lines grow with the runs (20 a run: 2M, 20M,
200M); the big run's stream, where a log page and a search are measured, stays 2,000,000 lines.
Each size is generated through the real spool and ingestor into a folder of its own (kept for
the next run with --keep).

At each size: ingest throughput (the index build's own catch-ups of events and of lines), the
index's size on disk, the runs page (query + status counts over the views a user opens, pooled),
a log page and a search count in the big stream, and a real server's memory: at rest, after one
/task-runs session, after one run detail page and after downloading the big stream. Each row of a
bigger size is printed beside the same figure at the size before it, with the growth factor per
10× (the sizes are 10× apart). A page's cost must stay nearly flat as history grows: time
filters skip old data.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
import statistics
import time
import urllib.request
from pathlib import Path

from dashboard import queries
from dashboard.index import Index

from . import data
from .common import FULL, Row, Sizes, ms, percentile, say, server, settle, tree_rss
from .data import BIG_RUN
from .runs_page import PAGE_SIZE

FULL_RUNS = (100_000, 1_000_000, 10_000_000)
QUICK_RUNS = (1_000, 10_000)
RUNS_PER_DAY = FULL.runs / FULL.days
LINES_PER_RUN = 20
#: A page's cost may grow this much per 10× of history and still count as flat.
FLAT = 1.5
WEEK = dt.timedelta(days=7)
VIEWS = (  # what a user opens on /task-runs: name, filter, page, sort
    ("24h, newest first", queries.RunFilter(since=dt.timedelta(hours=24)), 1, "trigger_time"),
    ("FAILED over 7d", queries.RunFilter(statuses=("FAILED",), since=WEEK), 1, "trigger_time"),
    ('search "task_04" over 7d', queries.RunFilter(task_text="task_04", since=WEEK), 1, "trigger_time"),
    ("7d, last page", queries.RunFilter(since=WEEK), 10**9, "trigger_time"),
    ("7d by duration", queries.RunFilter(since=WEEK), 1, "duration"),
)
SEARCH = "ERROR"


def size_of(runs: int, quick: bool) -> Sizes:
    """The data of one size: `runs` runs at RUNS_PER_DAY, LINES_PER_RUN log lines a run."""
    lines = runs * LINES_PER_RUN
    return dataclasses.replace(FULL, name=f"scaling-{runs}", runs=runs, log_lines=lines,
                               big_run_lines=min(lines, 20_000 if quick else 2_000_000),
                               days=runs / RUNS_PER_DAY)


def measure(folder: Path, prepared: data.Dataset, sizes: Sizes, repeat: int) -> dict[str, tuple]:
    """Every figure of one size: name -> (kind, values), kind 'time' (seconds), 'rate' (items, seconds)
    or 'bytes'."""
    figures: dict[str, tuple] = {}
    for part, (seconds, items) in data.build_figures(folder).items():
        figures[f"ingest of {part.replace('_', ' ')} (the index build)"] = ("rate", items, seconds)
    disk = sum(path.stat().st_size for path in folder.glob("index.duckdb*"))
    figures["index size on disk"] = ("bytes", disk)
    index = Index(prepared.index_path, fallback_to_private=False)
    try:
        say(f"scaling {sizes.runs:,} runs: measuring the runs page...")
        pooled = []
        for round_no in range(repeat + 1):
            for _, run_filter, page, sort in VIEWS:
                now = prepared.now()
                start = time.perf_counter()
                queries.runs_view(index, run_filter, page, PAGE_SIZE, sort, True, now)
                if round_no:  # the first round warms up
                    pooled.append(time.perf_counter() - start)
        figures[f"runs page query + count ({len(VIEWS)} views pooled)"] = ("time", pooled)
        total = queries.log_line_counts(index, BIG_RUN)["stdout"]
        rng = random.Random(3)
        pages = -(-total // queries.LOG_PAGE_LINES)
        firsts = [rng.randrange(pages) * queries.LOG_PAGE_LINES + 1 for _ in range(repeat + 1)]
        figures["a log page (500 lines, random pages of the big stream)"] = ("time", _times(
            lambda first: queries.log_page(index, BIG_RUN, "stdout", first), firsts))
        figures[f'search count in the big stream ("{SEARCH}")'] = ("time", _times(
            lambda _: queries.search_matches(index, BIG_RUN, "stdout", SEARCH), range(repeat + 1)))
    finally:
        index.close()  # the server needs the index file
    say(f"scaling {sizes.runs:,} runs: measuring a server's memory...")
    figures.update(_server_memory(prepared))
    return figures


def _times(call, arguments) -> list[float]:
    """The time of `call(a)` for each argument but the first (which warms up)."""
    times = []
    for n, argument in enumerate(arguments):
        start = time.perf_counter()
        call(argument)
        if n:
            times.append(time.perf_counter() - start)
    return times


def _server_memory(prepared: data.Dataset) -> dict[str, tuple]:
    from bokeh.client import pull_session

    import panel.models.tabulator  # noqa: F401  (the client decodes the pages' models by name)

    import dashboard.pages.run_detail  # noqa: F401
    import dashboard.pages.task_runs  # noqa: F401

    with server(prepared.spool, prepared.index_path) as (url, process, _):
        settle(process)
        at_rest = tree_rss(process)
        runs_page = pull_session(url=f"{url}/task-runs")
        settle(process)
        after_runs_page = tree_rss(process)
        detail = pull_session(url=f"{url}/task-runs/{BIG_RUN}")
        settle(process)
        after_detail = tree_rss(process)
        with urllib.request.urlopen(f"{url}/task-runs/{BIG_RUN}/logs/stdout.log", timeout=600) as response:
            while response.read(1 << 20):
                pass
        settle(process)
        after_download = tree_rss(process)
        runs_page.close()
        detail.close()
    return {"server RSS at rest": ("bytes", at_rest),
            "  + a /task-runs session": ("bytes", after_runs_page - at_rest),
            "  + a run detail page (the big run)": ("bytes", after_detail - after_runs_page),
            "  + downloading the big stream": ("bytes", after_download - after_detail)}


def _cells(figure: tuple) -> tuple[str, str, float]:
    """(median, p95, the number growth is computed on) of a figure."""
    kind, *values = figure
    if kind == "time":
        times = values[0]
        median = statistics.median(times)
        return ms(median), ms(percentile(times, 0.95)), median
    if kind == "rate":
        items, seconds = values
        return f"{items / seconds:,.0f}/s", "", items / seconds
    return f"{values[0] / 2**20:,.0f} MB", "", values[0]


def figures(folder: Path, quick: bool, runs: tuple[int, ...] | None = None) -> list[Row]:
    runs = runs or (QUICK_RUNS if quick else FULL_RUNS)
    repeat = 5 if quick else 30
    sizes = {count: size_of(count, quick) for count in runs}
    # Every size made first, then every size measured: the figures of one run share the machine's state.
    prepared = {count: data.prepare(folder / sizes[count].name, sizes[count]) for count in runs}
    measured = {count: measure(folder / sizes[count].name, prepared[count], sizes[count], repeat) for count in runs}
    rows: list[Row] = []
    previous = None
    for count in runs:
        lines = count * LINES_PER_RUN
        for name, figure in measured[count].items():
            median, p95, value = _cells(figure)
            base, ratio, target = "", "", ""
            before = measured[previous].get(name) if previous else None
            if before is not None:
                base_median, _, base_value = _cells(before)
                decades = math.log10(count / previous)  # growth is per 10x, whatever the step
                growth = (value / base_value) ** (1 / decades) if base_value > 0 and value > 0 else None
                base = f"{base_median} at {previous:,}"
                ratio = f"{growth:,.2f}x per 10x" if growth is not None else ""
                if figure[0] == "time" and growth is not None:  # a page: nearly flat
                    target = f"≤ {FLAT}x per 10x {'ok' if growth <= FLAT else 'MISSED'}"
            rows.append((f"scaling, {count:,} runs / {lines:,} lines: {name.strip()}" if not name.startswith(" ")
                         else f"  {name.strip()}", median, p95, base, ratio, target))
        previous = count
    return rows

