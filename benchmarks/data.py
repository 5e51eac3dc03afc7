"""The benchmark's data, generated through the real spool and ingestor.

One spool: 500 tasks in 20 groups, `runs` runs over the last 7 days with a realistic mix
of outcomes (each run's lifecycle IDLE, ACTIVE, TRIGGER, STARTED, RUNNING, then SUCCESS,
FAILED or TERMINATED, a few seconds apart; the newest still going) as status events in
several events files; and `log_lines` realistic log lines: one finished run of
`big_run_lines` stdout lines, the rest 1,000 lines each in runs spread over the week.
The index is built from it by `Ingestor.catch_up`, the events and the logs in turn, and
those two catch-ups are the first samples of the ingest figures.

With --keep DIR the data stays in DIR and a later run reuses it (the full size takes
minutes to generate). Its reads then keep the time it was generated as theirs (`Dataset.now`):
by the real clock, data reused twelve hours later held half a day in the 24 hours' view, and its
runs still going had been going for twelve hours, the longest of the week by far.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from dashboard import queries
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.spool import SpoolWriter, events_dir, format_timestamp, logs_dir
from dashboard.statuses import LIFECYCLE, TERMINAL

from .common import Sizes, catch_up_with_progress, say

TASKS, GROUPS = 500, 20
WEEK = dt.timedelta(days=7)
TERMINAL_MIX = (("SUCCESS", 0.88), ("FAILED", 0.09), ("TERMINATED", 0.03))
ADHOC_SHARE = 0.02
AGENTS = tuple(f"agent-{n}" for n in range(1, 9))
BIG_RUN = "logs-bench-big"
BIG_TASK, BIG_GROUP = "Nightly_Warehouse_Load", "etl"
CHUNK_LINES = 20_000  # lines per append while generating
RARE_EVERY = 100_000


def task_name(number: int) -> str:
    return f"task_{number:03d}"


def group_name(number: int) -> str:
    return f"group_{number:02d}"


# ---- data ------------------------------------------------------------------------------


def write_run_events(spool: Path, runs: int, now: dt.datetime, files: int = 8, seed: int = 7,
                     span: dt.timedelta = WEEK) -> int:
    """Task definitions and the status events of `runs` runs over the `span` before `now`; return
    the number of events."""
    rng = random.Random(seed)
    folder = events_dir(spool)
    folder.mkdir(parents=True, exist_ok=True)
    per_group = TASKS // GROUPS
    with open(folder / "tasks.jsonl", "w", encoding="utf-8") as handle:
        for n in range(TASKS):
            handle.write(json.dumps({
                "kind": "task", "task": task_name(n), "group": group_name(n // per_group),
                "depends_on": [task_name(n - 1)] if n % per_group else [],
                "description": f"Synthetic task {n} of {group_name(n // per_group)}."}, separators=(",", ":")) + "\n")
    count = TASKS
    start = now - span
    # Uniform trigger times over the span, written in time order like live writers would.
    offsets = sorted(rng.random() * span.total_seconds() for _ in range(runs))
    statuses, weights = zip(*TERMINAL_MIX)
    handles = [open(folder / f"scheduler-{i}.jsonl", "w", encoding="utf-8") for i in range(files)]
    try:
        with tqdm(total=runs, unit="run", unit_scale=True, desc="generating runs", file=sys.stderr) as bar:
            for run, offset in enumerate(offsets):
                trigger = start + dt.timedelta(seconds=round(offset, 3))
                task = rng.randrange(TASKS)
                agent = rng.choice(AGENTS)
                terminal = rng.choices(statuses, weights)[0]
                idle = trigger - dt.timedelta(seconds=round(rng.uniform(2, 6), 3))
                active = trigger - dt.timedelta(seconds=round(rng.uniform(0.2, 1.8), 3))
                started = trigger + dt.timedelta(seconds=round(rng.uniform(0.5, 5), 3))
                running = started + dt.timedelta(seconds=round(rng.uniform(0.1, 2), 3))
                ended = running + dt.timedelta(seconds=round(min(rng.expovariate(1 / 45), 3600) + 0.5, 3))
                common = {"kind": "status", "run_id": f"run-{run:08d}", "task": task_name(task),
                          "group": group_name(task // per_group), "adhoc": rng.random() < ADHOC_SHARE}
                handle = handles[run % files]
                for status, ts in zip((*LIFECYCLE, terminal), (idle, active, trigger, started, running, ended)):
                    if ts > now:  # not there yet: the run is still going
                        break
                    event = {**common, "status": status, "ts": format_timestamp(ts)}
                    if status in ("STARTED", "RUNNING") or status in TERMINAL:
                        event["agent"] = agent
                    if status in TERMINAL:
                        event["exit_code"] = {"SUCCESS": 0, "FAILED": 1, "TERMINATED": -15}[status]
                        if status == "TERMINATED":
                            event["message"] = "terminated by user"
                    handle.write(json.dumps(event, separators=(",", ":")) + "\n")
                    count += 1
                if run % 10_000 == 9_999:
                    bar.update(10_000)
            bar.update(runs - bar.n)
    finally:
        for handle in handles:
            handle.close()
    return count



# ---- logs ------------------------------------------------------------------------------

WORKERS = tuple(f"worker-{n}" for n in range(1, 9))
MODULES = ("etl.extract", "etl.transform", "etl.load", "db.pool", "http.client", "scheduler.agent")
TABLES = ("orders", "invoices", "customers", "shipments", "ledger", "payments")
REASONS = ("connection reset by peer", "timeout after 30 s", "duplicate key in orders_pkey",
           "permission denied for schema finance", "upstream returned HTTP 503")


class LogText:
    """Realistic log lines: a timestamp, a level, a worker, a module and a message."""

    def __init__(self, seed: int, start: dt.datetime):
        self.rng = random.Random(seed)
        self.clock_ms = int(start.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
        self._second, self._prefix = -1, ""
        self.n = 0

    def _stamp(self) -> str:
        second, millis = divmod(self.clock_ms, 1000)
        if second != self._second:
            self._second = second
            self._prefix = dt.datetime.fromtimestamp(second, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{millis:03d}Z"

    def lines(self, count: int) -> str:
        rng, out = self.rng, []
        for _ in range(count):
            self.n += 1
            self.clock_ms += rng.randrange(1, 9)
            ts, worker, module = self._stamp(), rng.choice(WORKERS), rng.choice(MODULES)
            if self.n % RARE_EVERY == RARE_EVERY // 2:
                out.append(f"{ts} WARN  [{worker}] db.pool: deadlock detected on {rng.choice(TABLES)}, "
                           f"rolling back transaction {rng.randrange(10**6)} and retrying\n")
                continue
            r = rng.random()
            if r < 0.001:
                out.append(f"{ts} ERROR [{worker}] {module}: batch {rng.randrange(10**5)} failed: "
                           f"{rng.choice(REASONS)} (attempt {rng.randrange(1, 6)}/5)\n")
            elif r < 0.051:
                out.append(f"{ts} WARN  [{worker}] {module}: slow query on {rng.choice(TABLES)}: "
                           f"{rng.randrange(500, 9000)} ms (threshold 500 ms)\n")
            elif r < 0.30:
                out.append(f"{ts} DEBUG [{worker}] {module}: fetched page {rng.randrange(1, 5000)} of "
                           f"{rng.choice(TABLES)}, {rng.randrange(1000, 900_000):,} bytes, cache "
                           f"{'hit' if rng.random() < 0.8 else 'miss'}\n")
            elif r < 0.65:
                out.append(f"{ts} INFO  [{worker}] {module}: loaded {rng.randrange(1, 50_000):,} rows into "
                           f"warehouse.{rng.choice(TABLES)} (batch {rng.randrange(10**5)}) in "
                           f"{rng.randrange(2, 900)} ms\n")
            else:
                out.append(f"{ts} INFO  [{worker}] {module}: committed offset {rng.randrange(10**9)} for "
                           f"partition {rng.randrange(64)} of topic {rng.choice(TABLES)}-events\n")
        return "".join(out)


def write_run(writer: SpoolWriter, run_id: str, lines: int, start: dt.datetime, seed: int,
              bar: tqdm | None = None) -> None:
    """A finished run: its lifecycle events around `lines` lines of stdout."""
    agent = f"agent-{seed % 3 + 1}"
    for step, status in enumerate(LIFECYCLE):
        writer.status(run_id, BIG_TASK, status, agent=agent if step >= 3 else None,
                      ts=start + dt.timedelta(seconds=step))
    text = LogText(seed, start + dt.timedelta(seconds=5))
    for first in range(0, lines, CHUNK_LINES):
        count = min(CHUNK_LINES, lines - first)
        writer.append_log(run_id, "stdout", text.lines(count))
        if bar is not None:
            bar.update(count)
    finished = dt.datetime.fromtimestamp(text.clock_ms / 1000 + 1, dt.timezone.utc).replace(tzinfo=None)
    writer.status(run_id, BIG_TASK, "SUCCESS", agent=agent, exit_code=0, ts=finished)




def write_logs(spool: Path, sizes: Sizes, now: dt.datetime) -> None:
    """The big run (with its own events), then the other lines in runs spread over the history."""
    span = dt.timedelta(days=sizes.days)
    other_runs = max(0, sizes.log_lines - sizes.big_run_lines) // sizes.lines_per_other_run
    step = max(1, sizes.runs // max(1, other_runs))
    with SpoolWriter(spool, name="bench-logs") as writer, \
            tqdm(total=sizes.log_lines, unit="line", unit_scale=True, desc="generating logs", file=sys.stderr) as bar:
        writer.define_task(BIG_TASK, group=BIG_GROUP, description="Loads the day's orders into the warehouse.")
        write_run(writer, BIG_RUN, sizes.big_run_lines, now - dt.timedelta(hours=4), seed=1, bar=bar)
        for n in range(other_runs):
            text = LogText(100 + n, now - span + n * span / other_runs)
            writer.append_log(f"run-{min(n * step, sizes.runs - 1):08d}", "stdout",
                              text.lines(sizes.lines_per_other_run))
            bar.update(sizes.lines_per_other_run)


@dataclass
class Dataset:
    spool: Path
    index_path: Path
    notes: list[str] = field(default_factory=list)
    #: the build's own catch-ups: (seconds, events) and (seconds, log lines); None when reused
    events_build: tuple[float, int] | None = None
    logs_build: tuple[float, int] | None = None
    #: the time it holds as now (see data_clock)
    now: Callable[[], dt.datetime] = queries.utcnow

    @property
    def big_log(self) -> Path:
        return logs_dir(self.spool) / BIG_RUN / "stdout.log"


def data_clock(made: dt.datetime) -> Callable[[], dt.datetime]:
    """A clock that reads `made` now and runs on from there: the time a live index of data made
    then would be at."""
    age = queries.utcnow() - made
    return lambda: queries.utcnow() - age


def made_at(marker: Path) -> dt.datetime:
    """When the data of a complete.json `marker` was made (naive UTC)."""
    return dt.datetime.fromisoformat(json.loads(marker.read_text())["made"].rstrip("Z"))


def spool_view(spool: Path, part: str, folder: Path) -> Path:
    """A spool showing only `part` ('events' or 'logs') of another, through a symbolic link."""
    view = folder / f"view-{part}"
    if not view.exists():
        view.mkdir(parents=True)
        os.symlink(spool.absolute() / part, view / part)
        (view / ("logs" if part == "events" else "events")).mkdir()
    return view


def prepare(folder: Path, sizes: Sizes) -> Dataset:
    """The spool and index in `folder`, generated and ingested unless already there."""
    data = Dataset(folder / "spool", folder / "index.duckdb")
    marker = folder / "complete.json"  # written once the index is built
    if marker.exists():
        made = json.loads(marker.read_text())
        index = Index(data.index_path, fallback_to_private=False)
        Ingestor(index, data.spool).catch_up()  # whatever a run of the live figures appended
        counts = index.counts()
        index.close()
        data.notes.append(f"reused {folder}: made {made['made']} at size {made['size']!r} "
                          f"({counts['runs']:,} runs, {counts['log_lines']:,} log lines); read as at that time")
        data.now = data_clock(made_at(marker))
        return data
    for stale in (data.spool, data.index_path, folder / "view-events", folder / "view-logs"):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    now = queries.utcnow()
    start = time.perf_counter()
    events = write_run_events(data.spool, sizes.runs, now, span=dt.timedelta(days=sizes.days))
    write_logs(data.spool, sizes, now)
    data.notes.append(f"generated {sizes.runs:,} runs ({events:,} events) and {sizes.log_lines:,} log lines "
                      f"in {time.perf_counter() - start:.0f} s")
    index = Index(data.index_path, fallback_to_private=False)
    for part in ("events", "logs"):
        say(f"building the index: {part}")
        start = time.perf_counter()
        added = catch_up_with_progress(Ingestor(index, spool_view(data.spool, part, folder)), f"ingesting {part}")
        seconds = time.perf_counter() - start
        if part == "events":
            data.events_build = seconds, added["events"]
        else:
            data.logs_build = seconds, added["log_lines"]
        if added["errors"]:
            data.notes.append(f"warning: {added['errors']} ingest errors while building the index")
    left = Ingestor(index, data.spool).catch_up()
    if left["events"] or left["log_lines"]:
        data.notes.append(f"warning: the whole spool still held {left} after its two parts")
    index.close()
    marker.write_text(json.dumps({"made": now.isoformat(timespec="seconds") + "Z", "size": sizes.name,
                                  "build": {"events": data.events_build, "log_lines": data.logs_build}}))
    data.now = data_clock(now)
    return data


def build_figures(folder: Path) -> dict[str, tuple[float, int]]:
    """The index build's own catch-ups of the data in `folder`, as measured when it was made:
    {'events': (seconds, events), 'log_lines': (seconds, lines)}; {} for data made before they were kept."""
    marker = folder / "complete.json"
    return {part: tuple(figure) for part, figure in json.loads(marker.read_text()).get("build", {}).items()}
