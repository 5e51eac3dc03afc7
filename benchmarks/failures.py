"""Failure signatures at scale: the runs page's 'Failure signatures' over `runs` runs.

A spool of its own (the shared one's failed runs have no stderr): the runs of data.py's mix over
7 days (9 % FAILED, 3 % TERMINATED), each failed or terminated run with a stderr of
STDERR_LINES lines as real failures print them (a start line, a traceback, one of TEMPLATES's
error lines with its own ids, numbers, paths and times, a clean-up line). Figures:

1. `failure_signatures` over the 7 days (every run in the range) as a live page asks it after an
   ingest step (a new index version), each run's error line and signature already known to the
   process (dashboard.failures keeps them per run), against reading each failed run's last
   stderr line alone (no error pattern, no masking, no grouping);
2. a process's first grouping: every failure's error line found and masked;
3. the same asked again by another session before the next ingest step (the page shares one
   answer per index version and filter: shared_answers.shared_per_version).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
import time
from pathlib import Path

from tqdm import tqdm

from dashboard import queries, shared_answers
from dashboard.emphasis import Emphasis
from dashboard.failures import failure_signatures, forget
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.spool import SpoolWriter, format_timestamp
from dashboard.statuses import UNSUCCESSFUL

from .common import Row, Sizes, catch_up_with_progress, reused, say, timed, timing_row
from .data import spool_view, write_run_events

WEEK = dt.timedelta(days=7)
STDERR_LINES = 8
#: Ways to fail, with what changes from one failure to the next (each masks to one signature).
TEMPLATES = (
    lambda r: f"psycopg2.OperationalError: could not connect to server at db-{r.n(9)}.internal:{5432 + r.n(3)}",
    lambda r: f"KeyError: 'customer_{r.n(10**6)}'",
    lambda r: f"FileNotFoundError: [Errno 2] No such file or directory: '/data/in/{r.hex()}.parquet'",
    lambda r: f"TimeoutError: request {r.uuid()} to https://api.example.com/v2/orders/{r.n(10**6)} timed out "
              f"after {r.n(120)} s",
    lambda r: f'FATAL: password authentication failed for user "svc_{r.n(999)}"',
    lambda r: f"ValueError: invalid literal for int() with base 10: '{r.n(10**4)}x'",
    lambda r: f"MemoryError: worker {r.n(64)} used {r.n(64)}.{r.n(10)} GiB of {r.n(64)} GiB",
    lambda r: f"{r.time()} ERROR [worker-{r.n(8)}] etl.load: duplicate key value violates unique constraint "
              f'"orders_pkey" (id={r.n(10**7)})',
    lambda r: f"RuntimeError: upstream returned HTTP {500 + r.n(4)} after {r.n(5)} retries",
    lambda r: f"panic: runtime error: index out of range [{r.n(100)}] with length {r.n(100)} at 0x{r.hex()}",
    lambda r: f"E   AssertionError: /home/ci/build-{r.n(999)}/tests/test_load.py:{r.n(500)} assert {r.n(99)} == "
              f"{r.n(99)}",
    lambda r: f"{r.time()} FATAL [main] scheduler.agent: lost heartbeat from agent-{r.n(8)} for {r.n(600)} s",
)


class Values(random.Random):
    def n(self, top: int) -> int:
        return self.randrange(top)

    def hex(self) -> str:
        return f"{self.getrandbits(48):012x}"

    def uuid(self) -> str:
        return f"{self.getrandbits(32):08x}-{self.getrandbits(16):04x}-4{self.getrandbits(12):03x}-" \
               f"a{self.getrandbits(12):03x}-{self.getrandbits(48):012x}"

    def time(self) -> str:
        return format_timestamp(dt.datetime(2026, 11, 1) + dt.timedelta(seconds=self.n(10**6)))


def stderr_of(values: Values, run_id: str, status: str) -> str:
    """What a failed (or terminated) run printed on stderr, STDERR_LINES lines."""
    # Some ways fail far more often than others, as in life.
    way = min(int(values.expovariate(0.35)), len(TEMPLATES) - 1)
    lines = [f"{values.time()} INFO  starting {run_id} (attempt {values.n(3) + 1})",
             "Traceback (most recent call last):",
             f'  File "/opt/app/jobs/job_{values.n(50)}.py", line {values.n(400)}, in run',
             "    result = step(batch)",
             f'  File "/opt/app/lib/steps.py", line {values.n(900)}, in step',
             TEMPLATES[way](values) if status == "FAILED" else f"{values.time()} WARN  received SIGTERM",
             f"{values.time()} INFO  cleaning up {values.n(100)} temporary files",
             f"{values.time()} INFO  exit"]
    return "".join(line + "\n" for line in lines[:STDERR_LINES])


def prepare(folder: Path, sizes: Sizes) -> Path:
    """The spool and index in `folder` (made unless there): the index's path."""
    index_path, marker = folder / "index.duckdb", folder / "complete.json"
    spool = folder / "spool"
    if marker.exists():
        say(f"reusing {folder}")
        return reused(index_path, spool)
    now = queries.utcnow()
    start = time.perf_counter()
    write_run_events(spool, sizes.runs, now)
    index = Index(index_path, fallback_to_private=False)
    try:
        catch_up_with_progress(Ingestor(index, spool_view(spool, "events", folder)), "ingesting events")
        failed = index.query(f"SELECT run_id, status FROM runs WHERE status IN {tuple(UNSUCCESSFUL)}")
        values = Values(20)
        with SpoolWriter(spool, name="bench-failures") as writer:
            for run_id, status in tqdm(zip(failed["run_id"], failed["status"]), total=len(failed), unit="run",
                                       desc="writing stderr", file=sys.stderr):
                writer.append_log(run_id, "stderr", stderr_of(values, run_id, status))
        catch_up_with_progress(Ingestor(index, spool_view(spool, "logs", folder)), "ingesting stderr")
        counts = index.counts()
    finally:
        index.close()
    marker.write_text(json.dumps({"size": sizes.name, "made": now.isoformat(), "failed": len(failed)}))
    say(f"failures data: {counts['runs']:,} runs, {len(failed):,} failed or terminated with stderr, "
        f"{counts['log_lines']:,} log lines, made in {time.perf_counter() - start:.0f} s")
    return index_path


def figures(folder: Path, sizes: Sizes) -> list[Row]:
    index = Index(prepare(folder / "failures", sizes), fallback_to_private=False)
    try:
        week = queries.RunFilter(since=WEEK)

        def first() -> object:
            forget(index)
            return failure_signatures(index, week)

        # A process's first grouping reads and masks every failure's error line; later ones (a live
        # page's after each ingest step: a new index version) only those of runs new or changed.
        cold, _ = timed(first, sizes.heavy_repeat)
        ours, groups = timed(lambda: failure_signatures(index, week), sizes.heavy_repeat * 2)
        where, params = queries.RunFilter(statuses=UNSUCCESSFUL, since=WEEK).where()
        base, _ = timed(lambda: index.query(
            f"SELECT s.run_id, arg_max(t.text, t.line_no) FROM log_streams s JOIN log_text t USING (log_id) "
            f"WHERE s.stream = 'stderr' AND s.run_id IN (SELECT r.run_id FROM runs r {where}) GROUP BY s.run_id",
            params), sizes.heavy_repeat * 2)
        shared = shared_answers.shared_per_version(failure_signatures)
        now, emphasis = queries.utcnow().replace(microsecond=0), Emphasis()  # (making one checks its patterns)
        again, _ = timed(lambda: shared(index, week, emphasis, now), sizes.repeat)
        failed = int(groups["runs"].sum())
        runs = index.counts()["runs"]
    finally:
        index.close()
    return [
        timing_row(f"failure signatures over {runs:,} runs in 7 days ({failed:,} failed with stderr, {len(groups)} "
                   "signatures): failure_signatures after an ingest step (baseline: each one's last stderr line)",
                   ours, base, "≤ 300 ms", 300, None, None),
        timing_row("failure signatures: a process's first grouping (every failure's error line found and masked)",
                   cold, None, "report only", None, None, None),
        timing_row("failure signatures: asked again in the same index version (shared by the page's sessions)",
                   again, None, "", None, None, None),
    ]
