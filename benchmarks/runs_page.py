"""The Task Runs page's server side at scale: queries, one session's update, server memory.

    python -m benchmarks.runs_page [--runs 1000000] [--repeat 30] [--sessions 10] [--keep DIR]

The data goes through the real spool and ingestor: task definitions (500 tasks in 20
groups) and each run's lifecycle (IDLE, ACTIVE, TRIGGER, STARTED, RUNNING, then SUCCESS,
FAILED or TERMINATED, a few seconds apart) as JSONL status events in several events
files, trigger times spread uniformly over the last 7 days; a run whose end would lie in
the future is still going (so the newest hold a handful of RUNNING, STARTED, TRIGGER...).
Then `Ingestor.catch_up()` builds the DuckDB index. With `--keep DIR` the spool and index
stay in DIR and a later run reuses them (generating 1M runs takes minutes); the time
ranges are relative to when they were generated.

Figures, each against the usual Panel approach (a pandas DataFrame of all runs that a
session holds, filtered, counted, sorted and sliced in pandas) on the same data:

1. runs page query + count: `queries.runs_view` (one page, the total and the counts per
   status, as one page refresh asks them) for a set of views (default 24h, FAILED over 7d, a task-name search, a group, sort by duration,
   the last page of 7d).
2. session update cycle: `TaskRunsView.changed` for a real status change of a run shown
   on page 1 (the page's Bokeh models attached to a document, each model change
   serialised as a PATCH-DOC message), and for a change the session cannot show.
3. server memory: RSS of a real `taskdash serve` with 0, 1 and N sessions opened with
   `bokeh.client.pull_session`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import queue
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pandas as pd
import psutil
from tqdm import tqdm

from dashboard import queries
from dashboard.hub import Change, Hub
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.spool import SpoolWriter, events_dir, format_timestamp
from dashboard.statuses import LIFECYCLE, TERMINAL

REPO = Path(__file__).resolve().parents[1]
TASKS, GROUPS, PAGE_SIZE = 500, 20, 50
WEEK = dt.timedelta(days=7)
TERMINAL_MIX = (("SUCCESS", 0.88), ("FAILED", 0.09), ("TERMINATED", 0.03))
ADHOC_SHARE = 0.02
AGENTS = tuple(f"agent-{n}" for n in range(1, 9))


def task_name(number: int) -> str:
    return f"task_{number:03d}"


def group_name(number: int) -> str:
    return f"group_{number:02d}"


# ---- data ------------------------------------------------------------------------------


def write_spool(spool: Path, runs: int, now: dt.datetime, files: int = 8, seed: int = 7) -> int:
    """Task definitions and the status events of `runs` runs; return the number of events."""
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
    start = now - WEEK
    # Uniform trigger times over the week, written in time order like live writers would.
    offsets = sorted(rng.random() * WEEK.total_seconds() for _ in range(runs))
    statuses, weights = zip(*TERMINAL_MIX)
    handles = [open(folder / f"scheduler-{i}.jsonl", "w", encoding="utf-8") for i in range(files)]
    try:
        with tqdm(total=runs, unit="run", unit_scale=True, desc="generating spool", file=sys.stderr) as bar:
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


def catch_up_with_progress(ingestor: Ingestor) -> dict[str, int]:
    offsets = ingestor.index.load_offsets()
    pending = sum(max(0, (ingestor.spool / rel).stat().st_size - offsets.get(rel, (0, 0, False))[0])
                  for rel in ingestor.spool_files())
    with tqdm(total=pending, unit="B", unit_scale=True, desc="ingesting", file=sys.stderr,
              disable=pending < 1024 * 1024) as bar:
        return ingestor.catch_up(progress=bar.update)


def prepare(folder: Path, runs: int) -> tuple[Path, Path, str]:
    """The spool and index in `folder`, generated and ingested unless already there."""
    spool, index_path = folder / "spool", folder / "index.duckdb"
    if index_path.exists():
        index = Index(index_path)
        note = f"reused {folder} ({index.counts()['runs']:,} runs; --runs ignored)"
        start = time.perf_counter()
        Ingestor(index, spool).catch_up()  # whatever an earlier, interrupted run left
        index.close()
        return spool, index_path, note + f", catch-up {time.perf_counter() - start:.1f} s"
    if spool.exists():  # an interrupted generation: start over
        shutil.rmtree(spool)
    start = time.perf_counter()
    events = write_spool(spool, runs, queries.utcnow())
    generated = time.perf_counter() - start
    size = sum(path.stat().st_size for path in events_dir(spool).iterdir())
    start = time.perf_counter()
    index = Index(index_path)
    added = catch_up_with_progress(Ingestor(index, spool))
    ingested = time.perf_counter() - start
    counts = index.counts()
    index.close()
    return spool, index_path, (
        f"generated {runs:,} runs = {events:,} events ({size / 2**20:,.0f} MB) in {generated:.1f} s; "
        f"ingested {added['events']:,} events into {counts['runs']:,} runs in {ingested:.1f} s "
        f"({added['events'] / ingested:,.0f} events/s, {added['errors']} ingest errors)")


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
       r.started, r.finished, r.exit_code, r.message, r.updated, array_to_string(r.reached, ',') AS reached
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


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * share) - 1)]


def query_figures(index: Index, repeat: int) -> tuple[list[tuple], pd.DataFrame]:
    start = time.perf_counter()
    frame = index.query(ALL_RUNS_SQL)
    load_seconds = time.perf_counter() - start
    ours = {name: [] for name, *_ in VIEWS}
    base = {name: [] for name, *_ in VIEWS}
    for round_no in range(repeat + 1):  # round 0 warms up, and checks both give the same answer
        for name, run_filter, page, sort, descending in VIEWS:
            now = queries.utcnow()
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


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds >= 0.0005 else f"{seconds * 1e6:,.0f} µs"


def timing_row(name, ours, baseline, target, median_max, p95_max, ratio_min) -> tuple:
    median, p95 = statistics.median(ours), percentile(ours, 0.95)
    base = statistics.median(baseline) if baseline else None
    ratio = base / median if base else None
    met = ((median_max is None or median * 1000 <= median_max) and (p95_max is None or p95 * 1000 <= p95_max)
           and (ratio_min is None or ratio is None or ratio >= ratio_min))
    return (name, ms(median), ms(p95), ms(base) if base else "", f"{ratio:,.1f}x" if ratio else "",
            f"{target} {'ok' if met else 'MISSED'}" if target else "")


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
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    from dashboard.app import Services
    from dashboard.config import Config
    from dashboard.pages.task_runs import RunsQuery, TaskRunsView

    hub = Hub()
    ingestor = Ingestor(index, spool, hub)  # never started: the benchmark steps it
    heard: list[Change] = []
    hub.subscribe(heard.append, min_interval=0)
    svc = Services(Config(spool=spool, index=index_path), index, hub, ingestor)
    view = TaskRunsView(svc, RunsQuery())
    doc = Document()
    root = view.panel().get_root(doc)
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


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def settle(process: psutil.Process, quiet_percent: float = 3.0, timeout: float = 120.0) -> None:
    """Wait until the server has been idle for two seconds in a row."""
    deadline, quiet = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and quiet < 4:
        quiet = quiet + 1 if process.cpu_percent(interval=0.5) < quiet_percent else 0


@contextmanager
def server(spool: Path, index_path: Path):
    """A real `taskdash serve` on a free port: (its base URL, its psutil.Process); stopped on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dashboard.cli", "--config", str(REPO / "panel_serve.yaml"), "serve",
         "--port", "0", "--spool", str(spool), "--index", str(index_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def read() -> None:
        for line in process.stdout:
            output.append(line)
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError("the server did not start:\n" + "".join(output)) from None
            if line.startswith("note:"):
                raise RuntimeError(f"the server could not use the index: {line.strip()}")
            match = re.search(r"Task Runs Dashboard: (http://\S+?)/task-runs", line)
            if match:
                break
        yield match[1], psutil.Process(process.pid), output
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            import os

            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def memory_figures(spool: Path, index_path: Path, sessions: int, frame_bytes: int) -> list[tuple]:
    from bokeh.client import pull_session

    mb = 2**20
    with server(spool, index_path) as (url, process, output), ExitStack() as opened:
        time.sleep(1)
        settle(process)
        rss = {0: tree_rss(process)}
        for n in range(1, sessions + 1):
            session = pull_session(url=f"{url}/task-runs")
            opened.callback(session.close)
            if not session.document.roots:
                raise RuntimeError("pull_session got an empty document")
            settle(process)
            rss[n] = tree_rss(process)
        if "Traceback" in "".join(output):
            print("---- server output ----\n" + "".join(output), file=sys.stderr)
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


# ---- the table ---------------------------------------------------------------------------


def print_table(rows: list[tuple]) -> None:
    header = ("figure", "ours (median)", "ours (p95)", "baseline (median)", "ratio", "target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for n, row in enumerate([header, *rows]):
        print(" | ".join(cell.ljust(w) if i == 0 else cell.rjust(w) if i < 5 else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if n == 0:
            print("-+-".join("-" * w for w in widths))


def work_folder(stack: ExitStack, keep: Path | None, prefix: str) -> Path:
    """The --keep folder (made if missing), or a temporary one the stack removes."""
    if keep:
        keep.absolute().mkdir(parents=True, exist_ok=True)
        return keep.absolute()
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30, help="timed samples of each figure")
    parser.add_argument("--sessions", type=int, default=10, help="browser sessions opened on the server")
    parser.add_argument("--keep", type=Path, help="generate into DIR and keep it; reuse it when it holds an index")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        folder = work_folder(stack, args.keep, "bench-runs-page-")
        spool, index_path, note = prepare(folder, args.runs)
        print(note, flush=True)
        index = Index(index_path, fallback_to_private=False)
        try:
            print(f"index: {index.counts()['runs']:,} runs; measuring queries...", file=sys.stderr, flush=True)
            rows, frame = query_figures(index, args.repeat)
            frame_bytes = int(frame.memory_usage(deep=True).sum())
            del frame
            print("measuring a session's update cycle...", file=sys.stderr, flush=True)
            rows += session_figures(index, spool, index_path, args.repeat)
        finally:
            index.close()  # the server needs the index file
        print(f"measuring the server with {args.sessions} sessions...", file=sys.stderr, flush=True)
        rows += memory_figures(spool, index_path, args.sessions, frame_bytes)
    print_table(rows)


if __name__ == "__main__":
    main()
