"""The fleet log search (issue 20) at scale: which runs printed a text, over every run's logs.

Its own spool: `lines` realistic log lines (benchmarks.data.LogText) in runs of 1,000 lines
each, triggered over the last 7 days, one run in 100 printing "deadlock detected" once. The
size is a parameter (`--fleet-lines`): the issue's target is over 20,000,000 lines, which takes
this 2-core machine minutes to generate, so the routine default is smaller (see __main__).

1. the whole search, all time, no filter, for the rare text: `queries.fleet_search` (the first
   page of 50 runs: it reads every line, as few runs match), against one ILIKE count of all lines;
2. time to first results: how long after the search starts `queries.fleet_search_progress`
   hands the page its first matching runs, for a frequent text (p95 ≤ 500 ms: the first chunk)
   and the rare one (reported: it comes with the chunk that holds it), and when the page is whole;
3. the page's first state ("Searching… 0 of N runs' logs"), before any log is read.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from dashboard import queries
from dashboard.index import Index
from dashboard.spool import SpoolWriter
from dashboard.statuses import LIFECYCLE

from .common import Row, catch_up_with_progress, percentile, reused, say, timed, timing_row
from .data import WEEK, LogText

LINES_PER_RUN = 1_000
DEADLOCK_EVERY = 100  # runs
RARE, FREQUENT = "Deadlock Detected", "connection reset by peer"


def prepare(folder: Path, lines: int) -> Path:
    """The spool and index of `lines` log lines in `folder` (reused when already made at that size);
    return the index's path."""
    folder.mkdir(parents=True, exist_ok=True)
    spool, index_path, marker = folder / "spool", folder / "index.duckdb", folder / "complete.json"
    if marker.exists() and json.loads(marker.read_text())["lines"] == lines:
        return reused(index_path, spool)
    for stale in (index_path, marker):
        stale.unlink(missing_ok=True)
    if spool.exists():
        raise SystemExit(f"{spool} holds a spool of another size: remove {folder} first")
    now, runs = queries.utcnow(), max(1, lines // LINES_PER_RUN)
    start = time.perf_counter()
    with SpoolWriter(spool, name="bench-fleet") as writer, \
            tqdm(total=runs * LINES_PER_RUN, unit="line", unit_scale=True, desc="generating fleet logs",
                 file=sys.stderr) as bar:
        writer.define_task("Fleet_Task", group="fleet")
        for n in range(runs):
            run_id, trigger = f"fleet-{n:07d}", now - WEEK + WEEK * (n + 0.5) / runs
            for step, status in enumerate(LIFECYCLE):
                writer.status(run_id, f"task_{n % 500:03d}", status, trigger_time=trigger,
                              ts=trigger + dt.timedelta(seconds=step), group="fleet")
            text = LogText(1_000 + n, trigger).lines(LINES_PER_RUN)
            if n % DEADLOCK_EVERY == DEADLOCK_EVERY // 2:
                text += f"{trigger.isoformat()}Z WARN  [worker-1] db.pool: deadlock detected on orders, retrying\n"
            writer.append_log(run_id, "stdout", text)
            writer.status(run_id, f"task_{n % 500:03d}", "SUCCESS", trigger_time=trigger, exit_code=0,
                          ts=trigger + dt.timedelta(seconds=60), group="fleet")
            bar.update(LINES_PER_RUN)
    say(f"fleet: generated {runs:,} runs in {time.perf_counter() - start:.0f} s; indexing...")
    index = Index(index_path, fallback_to_private=False)
    try:
        from dashboard.ingest import Ingestor
        catch_up_with_progress(Ingestor(index, spool), "ingesting fleet logs")
    finally:
        index.close()
    marker.write_text(json.dumps({"lines": lines, "made": now.isoformat(timespec="seconds") + "Z"}))
    return index_path


def first_results(index: Index, text: str) -> tuple[float, float, float]:
    """Seconds from asking to: the first partial state, the first matching run, the whole page."""
    start = time.perf_counter()
    first_state = first_found = None
    for progress in queries.fleet_search_progress(index, text, limit=queries.SEARCH_PAGE_RUNS + 1):
        now = time.perf_counter() - start
        first_state = now if first_state is None else first_state
        if first_found is None and len(progress.found):
            first_found = now
    done = time.perf_counter() - start
    return first_state, first_found if first_found is not None else done, done


def figures(folder: Path, lines: int, repeat: int) -> list[Row]:
    index = Index(prepare(folder, lines), fallback_to_private=False)
    try:
        total = index.counts()["log_lines"]
        say(f"fleet: searching {total:,} lines...")
        times, found = timed(lambda: queries.fleet_search(index, RARE), repeat)
        base, _ = timed(lambda: index.query("SELECT count(*) FROM log_text WHERE coalesce(visible, text) ILIKE ?",
                                            [f"%{RARE}%"]), max(2, repeat // 3))
        rows = [timing_row(f'fleet search over all {total:,} lines ("{RARE}": {len(found):,} runs on its first page): '
                           "fleet_search (baseline: one ILIKE count of all lines)", times, base, "p95 ≤ 2 s",
                           None, 2000, None)]
        for label, text in (("frequent", FREQUENT), ("rare", RARE)):
            samples = [first_results(index, text) for _ in range(repeat + 1)][1:]
            state, found_at, done = ([s[i] for s in samples] for i in range(3))
            # A text many runs print: its first results come with the first chunk. A rare one: when
            # the first chunk holding it is read (reported only: it depends on where it is).
            rows.append(timing_row(f'  fleet search time to first results ({label}: "{text}"; the whole page in '
                                   f"{percentile(done, 0.5) * 1000:,.0f} ms): fleet_search_progress", found_at,
                                   None, "p95 ≤ 500 ms" if label == "frequent" else "", None,
                                   500 if label == "frequent" else None, None))
            if label == "rare":
                rows.append(timing_row('  fleet search time to its first state on the page ("Searching… 0 of N runs")',
                                       state, None, "p95 ≤ 250 ms", None, 250, None))
        return rows
    finally:
        index.close()
