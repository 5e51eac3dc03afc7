"""The Task Run Detail page's log viewer at scale: opening, paging, searching, downloading, live.

    python -m benchmarks.logs [--lines 2000000] [--repeat 30] [--probes 120] [--background 5000] [--keep DIR]

The data goes through the real spool and ingestor: one finished run whose stdout holds
`--lines` realistic lines (timestamps, INFO/DEBUG/WARN/ERROR, ERROR about 1 line in 1,000,
"deadlock detected" once in 100,000), and 20 other finished runs of 1,000 lines each, each
run with its status events (IDLE ... RUNNING, SUCCESS) written by `SpoolWriter`; then
`Ingestor.catch_up()` builds the DuckDB index. With `--keep DIR` the spool and index stay
in DIR and a later run reuses them (`--lines` is then ignored).

Figures (median and p95 over `--repeat` samples after a warm-up; baselines and the
download, which take about a second each, over at most 10):

1. open the log at its last page: `LogViewer(...)` for the big run at its last page (the
   server side of opening the page: line counts, the page's query, the widgets).
2. fetch a page of 500 lines: `queries.log_page` for random pages, against reading the
   whole file and slicing the lines out (how many schedulers serve a log page).
3. count search matches: `queries.search_matches` for a frequent, a rare and an absent
   text, against Python reading the file and testing each line (any case, like ours).
4. download the whole stream: iterating `queries.log_text_chunks`; and the memory a first
   download takes in a process that just opened the index (RSS growth, tracemalloc peak).
5. line written by a running command → visible in Chromium: a real `taskdash serve` on the
   same spool (with its own fresh index), a running run's detail page open in Chromium
   (following by default), a MutationObserver noting when each probe line is added; a
   thread appends a probe line holding its own time.time() every 100 ms, first with the
   spool quiet, then while a writer process appends `--background` lines a second to
   another running run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from contextlib import ExitStack
from pathlib import Path

import psutil
from tqdm import tqdm

from benchmarks.runs_page import (catch_up_with_progress, ms, percentile, print_table, server, settle, timing_row,
                                  work_folder)
from dashboard import queries
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.spool import SpoolWriter, log_path, new_run_id

BIG_RUN = "logs-bench-big"
SMALL_RUNS, SMALL_LINES = 20, 1000
TASK, GROUP = "Nightly_Warehouse_Load", "etl"
PAGE = queries.LOG_PAGE_LINES
CHUNK_LINES = 20_000  # lines per append while generating
RARE_EVERY = 100_000
SEARCHES = (  # (label, text): frequent, rare, absent; any case, as the viewer's search box
    ("frequent", "ERROR"),
    ("rare", "Deadlock Detected"),
    ("absent", "kernel panic"),
)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# ---- data ------------------------------------------------------------------------------

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
    for step, status in enumerate(("IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING")):
        writer.status(run_id, TASK, status, agent=agent if step >= 3 else None,
                      ts=start + dt.timedelta(seconds=step))
    text = LogText(seed, start + dt.timedelta(seconds=5))
    for first in range(0, lines, CHUNK_LINES):
        count = min(CHUNK_LINES, lines - first)
        writer.append_log(run_id, "stdout", text.lines(count))
        if bar is not None:
            bar.update(count)
    finished = dt.datetime.fromtimestamp(text.clock_ms / 1000 + 1, dt.timezone.utc).replace(tzinfo=None)
    writer.status(run_id, TASK, "SUCCESS", agent=agent, exit_code=0, ts=finished)


def write_spool(spool: Path, lines: int) -> int:
    now = queries.utcnow()
    with SpoolWriter(spool, name="bench-logs") as writer:
        writer.define_task(TASK, group=GROUP, description="Loads the day's orders into the warehouse.")
        total = lines + SMALL_RUNS * SMALL_LINES
        with tqdm(total=total, unit="line", unit_scale=True, desc="generating spool", file=sys.stderr) as bar:
            for n in range(SMALL_RUNS):
                write_run(writer, f"logs-bench-small-{n:02d}", SMALL_LINES,
                          now - dt.timedelta(hours=6, minutes=-10 * n), seed=100 + n, bar=bar)
            write_run(writer, BIG_RUN, lines, now - dt.timedelta(hours=4), seed=1, bar=bar)
    return total


def prepare(folder: Path, lines: int) -> tuple[Path, Path, str]:
    """The spool and index in `folder`, generated and ingested unless already there."""
    spool, index_path = folder / "spool", folder / "index.duckdb"
    if index_path.exists():
        index = Index(index_path, fallback_to_private=False)
        start = time.perf_counter()
        Ingestor(index, spool).catch_up()  # whatever an earlier, interrupted run left
        caught_up = time.perf_counter() - start
        note = (f"reused {folder} ({queries.log_line_counts(index, BIG_RUN)['stdout']:,} lines in the big run, "
                f"{index.counts()['log_lines']:,} in all; --lines ignored), catch-up {caught_up:.1f} s")
        index.close()
        return spool, index_path, note
    if spool.exists():  # an interrupted generation: start over
        shutil.rmtree(spool)
    start = time.perf_counter()
    total = write_spool(spool, lines)
    generated = time.perf_counter() - start
    size = log_path(spool, BIG_RUN, "stdout").stat().st_size
    start = time.perf_counter()
    index = Index(index_path, fallback_to_private=False)
    added = catch_up_with_progress(Ingestor(index, spool))
    ingested = time.perf_counter() - start
    counts = index.counts()
    index.close()
    return spool, index_path, (
        f"generated {total:,} lines in {SMALL_RUNS + 1} runs (big run's stdout.log {size / 2**20:,.0f} MB) in "
        f"{generated:.1f} s; ingested {added['log_lines']:,} lines + {added['events']:,} events in "
        f"{ingested:.1f} s ({added['log_lines'] / ingested:,.0f} lines/s, {counts['runs']} runs, "
        f"{added['errors']} ingest errors)")


# ---- figures 1-4: the server side, in this process ---------------------------------------


def timed(fn, samples: int) -> tuple[list[float], object]:
    """Run fn once to warm up, then `samples` times; the times and the last result."""
    result = fn()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def open_figures(index: Index, total: int, repeat: int) -> list[tuple]:
    from dashboard.pages.log_viewer import LogPosition, LogViewer

    last_page = -(-total // PAGE)
    first_line = (last_page - 1) * PAGE + 1

    def open_viewer() -> LogViewer:
        return LogViewer(index, BIG_RUN, running=False, detail_url="/task-runs/x",
                         position=LogPosition(page=last_page))

    times, viewer = timed(open_viewer, repeat)
    shown = viewer.view.lines
    if viewer.page != last_page or not shown or shown[0][0] != first_line or shown[-1][0] != total:
        print(f"warning: the viewer shows page {viewer.page}, lines {shown[0][0] if shown else '-'}"
              f"–{shown[-1][0] if shown else '-'}, not the last page", file=sys.stderr)
    counts_t, _ = timed(lambda: queries.log_line_counts(index, BIG_RUN), repeat)
    page_t, _ = timed(lambda: queries.log_page(index, BIG_RUN, "stdout", first_line, PAGE), repeat)
    return [
        timing_row(f"open the log at its last page (page {last_page:,}): LogViewer(...)", times, None,
                   "≤ 50 ms (aim; the issue sets none)", 50, None, None),
        timing_row("  of which log_line_counts", counts_t, None, "", None, None, None),
        timing_row("  of which log_page (the last 500 lines)", page_t, None, "", None, None, None),
    ]


def page_figures(index: Index, path: Path, total: int, repeat: int, heavy: int) -> list[tuple]:
    rng = random.Random(3)
    pages = -(-total // PAGE)
    firsts = [(rng.randrange(pages)) * PAGE + 1 for _ in range(repeat + 1)]
    ours = []
    for n, first in enumerate(firsts):
        start = time.perf_counter()
        frame = queries.log_page(index, BIG_RUN, "stdout", first, PAGE)
        elapsed = time.perf_counter() - start
        if n:  # the first one warms up
            ours.append(elapsed)
        if len(frame) != min(PAGE, total - first + 1) or int(frame["line_no"].iloc[0]) != first:
            print(f"warning: log_page from line {first} gave {len(frame)} lines", file=sys.stderr)

    def whole_file(first: int) -> list[str]:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().splitlines()[first - 1:first - 1 + PAGE]

    base = []
    for n, first in enumerate(firsts[:heavy + 1]):
        start = time.perf_counter()
        lines = whole_file(first)
        elapsed = time.perf_counter() - start
        if n:
            base.append(elapsed)
        else:
            ours_text = queries.log_page(index, BIG_RUN, "stdout", first, PAGE)["text"].tolist()
            if ours_text != lines:
                print("warning: log_page and the file disagree on a page", file=sys.stderr)
    return [timing_row("fetch a page of 500 lines, random pages: log_page", ours, base,
                       "≤ 5 ms, ≥ 50x", 5, None, 50)]


def search_figures(index: Index, path: Path, repeat: int, heavy: int) -> list[tuple]:
    rows = []
    for label, text in SEARCHES:
        times, matches = timed(lambda: queries.search_matches(index, BIG_RUN, "stdout", text), repeat)
        needle = text.lower()

        def python_count() -> int:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return sum(1 for line in handle if needle in line.lower())

        base, count = timed(python_count, heavy)
        if count != len(matches):
            print(f"warning: {text!r}: DuckDB found {len(matches):,} lines, Python {count:,}", file=sys.stderr)
        rows.append(timing_row(f'count search matches ({label}: "{text}", {len(matches):,} lines): search_matches',
                               times, base, "≤ 100 ms", 100, None, None))
    return rows


class PeakRSS:
    """The highest RSS of this process while it runs, sampled every few milliseconds."""

    def __init__(self, period: float = 0.005):
        self.process, self.period = psutil.Process(), period
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.period):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def download(index: Index) -> tuple[int, int]:
    """Iterate the big run's whole stdout as the download route does: (characters, lines)."""
    characters = newlines = 0
    for chunk in queries.log_text_chunks(index, BIG_RUN, "stdout"):
        characters += len(chunk)
        newlines += chunk.count("\n")
    return characters, newlines


def download_memory(index_path: str) -> None:
    """In a fresh process (the index closed elsewhere): print RSS growth and Python's peak of one download."""
    index = Index(Path(index_path), fallback_to_private=False)
    queries.log_line_counts(index, BIG_RUN)
    tracemalloc.start()
    with PeakRSS() as rss:
        download(index)
    print(rss.peak - rss.start, tracemalloc.get_traced_memory()[1])
    index.close()


def measure_download_memory(index_path: Path) -> tuple[int, int]:
    """(RSS growth, Python peak) in bytes of a first download by a process that just opened the index."""
    result = subprocess.run(
        [sys.executable, "-c", f"from benchmarks.logs import download_memory; download_memory({str(index_path)!r})"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    rss, python_peak = result.stdout.split()
    return int(rss), int(python_peak)


def download_figures(index: Index, total: int, heavy: int, memory: tuple[int, int]) -> list[tuple]:
    times, (characters, newlines) = timed(lambda: download(index), heavy)
    if newlines != total:
        print(f"warning: the download held {newlines:,} lines, not {total:,}", file=sys.stderr)
    mb = 2**20
    median = statistics.median(times)
    return [
        (*timing_row(f"download the whole stream ({newlines:,} lines, {characters / mb:,.0f} M characters): "
                     f"log_text_chunks, {characters / mb / median:,.0f} M chars/s", times, None, "", None, None,
                     None)[:5], "report only"),
        ("  memory of a first download in a fresh process: RSS growth / Python peak",
         f"+{memory[0] / mb:,.0f} MB", "", f"{memory[1] / mb:,.0f} MB (Python)", "", "report only"),
    ]


# ---- figure 5: written → visible in Chromium ---------------------------------------------

NOISE_WRITER = r"""
import sys, time
path, per_second = sys.argv[1], float(sys.argv[2])
start, written = time.monotonic(), 0
with open(path, "ab", buffering=0) as log:
    while True:
        due = int((time.monotonic() - start) * per_second)
        if due > written:
            log.write("".join(f"{time.time():.6f} INFO  [worker-{n % 8}] noise.step: background line {n} of a "
                              f"busy neighbour, loaded {n * 7 % 5000} rows\n" for n in range(written, due)).encode())
            written = due
        time.sleep(0.01)
"""

OBSERVE = """log => {
  window.__probes = {}
  const seen = window.__probes
  window.__observer = new MutationObserver(records => {
    const now = performance.timeOrigin + performance.now()
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (node.nodeType !== 1 || !node.classList.contains("td-line")) continue
        const text = (node.querySelector(".td-text") || node).textContent
        if (text.startsWith("probe ") && !(text in seen)) seen[text] = now
      }
    }
  })
  window.__observer.observe(log, {childList: true})
}"""


def probe_phase(page, writer: SpoolWriter, run_id: str, phase: str, probes: int) -> tuple[list[float], int]:
    """Append a timestamped probe line every 100 ms; return the latencies (s) and how many never arrived."""
    written: dict[str, float] = {}

    def write() -> None:
        start = time.monotonic()
        for n in range(probes):
            time.sleep(max(0.0, start + n * 0.1 - time.monotonic()))
            now = time.time()
            text = f"probe {now:.6f} {phase} {n}"
            writer.append_log(run_id, "stdout", text + "\n")
            written[text] = now

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    thread.join()
    deadline = time.monotonic() + 15
    while True:
        arrived = page.evaluate("phase => Object.keys(window.__probes).filter(t => t.split(' ')[2] === phase).length",
                                phase)
        if arrived >= probes or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    seen = page.evaluate("() => window.__probes")
    latencies = [seen[text] / 1000 - at for text, at in written.items() if text in seen]
    return latencies, probes - len(latencies)


def browser_figures(spool: Path, live_index: Path, probes: int, background: int) -> list[tuple]:
    from playwright.sync_api import sync_playwright

    for leftover in (live_index, live_index.with_name(live_index.name + ".wal")):
        leftover.unlink(missing_ok=True)
    writer = SpoolWriter(spool, name="bench-logs-live")
    probe_run, noise_run = new_run_id("logs-probe"), new_run_id("logs-noise")
    for run_id in (probe_run, noise_run):
        for status in ("IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING"):
            writer.status(run_id, "Live_Tail", status, agent="agent-1")
            time.sleep(0.002)
        writer.append_log(run_id, "stdout", "".join(f"starting {n}\n" for n in range(1, 11)))
    rows, noise = [], None
    try:
        with ExitStack() as stack:
            print("starting the server (it indexes the whole spool into a fresh index)...", file=sys.stderr,
                  flush=True)
            url, process, output = stack.enter_context(server(spool, live_index))
            playwright = stack.enter_context(sync_playwright())
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            stack.callback(browser.close)
            page = browser.new_page()
            start, deadline = time.monotonic(), time.monotonic() + 180
            while True:  # the server catches up in the background: the run appears when it is done
                page.goto(f"{url}/task-runs/{probe_run}")
                page.locator(".td-conn[data-state='Live']").wait_for(timeout=60_000)
                shown = False
                for _ in range(50):
                    if page.locator(".td-line").count():
                        shown = True
                        break
                    if page.get_by_text("Run not found").count():
                        break
                    time.sleep(0.1)
                if shown:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the probe run never appeared on its page:\n" + "".join(output[-30:]))
                time.sleep(1)
            print(f"page open after {time.monotonic() - start:.1f} s; waiting for the server to go quiet...",
                  file=sys.stderr, flush=True)
            settle(process)
            page.locator(".td-log").evaluate(OBSERVE)
            phases = [("idle", 0), ("load", background)] if background else [("idle", 0)]
            for phase, rate in phases:
                if rate:
                    noise_path = writer.log_path(noise_run, "stdout")
                    before = noise_path.stat().st_size
                    noise = subprocess.Popen([sys.executable, "-c", NOISE_WRITER, str(noise_path), str(rate)])
                    noise_start = time.monotonic()
                    time.sleep(2)  # let it reach its pace
                print(f"probing ({phase}, {rate:,} other lines/s)...", file=sys.stderr, flush=True)
                latencies, missing = probe_phase(page, writer, probe_run, phase, probes)
                note = ""
                if noise is not None:
                    noise.kill()
                    noise.wait()
                    elapsed = time.monotonic() - noise_start
                    with open(noise_path, "rb") as handle:
                        handle.seek(before)
                        achieved = handle.read().count(b"\n") / elapsed
                    noise = None
                    note = f" (written: {achieved:,.0f}/s)"
                label = "idle spool" if not rate else f"{rate:,} other lines/s flowing{note}"
                name = f"line written → visible in Chromium, {label}: {len(latencies)} probes"
                if missing:
                    name += f", {missing} NEVER SHOWN"
                if not latencies:
                    rows.append((name, "", "", "", "", "med ≤ 250 ms, p95 ≤ 750 ms MISSED"))
                    continue
                row = timing_row(name, latencies, None, "med ≤ 250 ms, p95 ≤ 750 ms", 250, 750, None)
                if missing:
                    row = (*row[:5], row[5].replace(" ok", " MISSED"))
                rows.append(row)
                print(f"  {phase}: median {ms(statistics.median(latencies))}, p95 {ms(percentile(latencies, 0.95))}, "
                      f"max {ms(max(latencies))}, min {ms(min(latencies))}", file=sys.stderr, flush=True)
            if "Traceback" in "".join(output):
                print("---- server output ----\n" + "".join(output), file=sys.stderr)
    finally:
        if noise is not None:
            noise.kill()
            noise.wait()
        for run_id in (probe_run, noise_run):  # a kept spool holds no run running forever
            writer.status(run_id, "Live_Tail", "SUCCESS", agent="agent-1", exit_code=0)
        writer.close()
        for leftover in (live_index, live_index.with_name(live_index.name + ".wal")):
            leftover.unlink(missing_ok=True)
    return rows


# ---- the whole benchmark -----------------------------------------------------------------


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=2_000_000, help="stdout lines of the big run")
    parser.add_argument("--repeat", type=int, default=30, help="timed samples of each figure")
    parser.add_argument("--probes", type=int, default=120, help="probe lines per live phase (one every 100 ms)")
    parser.add_argument("--background", type=int, default=5000, help="other lines a second in the loaded phase")
    parser.add_argument("--keep", type=Path, help="generate into DIR and keep it; reuse it when it holds an index")
    args = parser.parse_args(argv)
    heavy = max(3, min(args.repeat, 10))
    with ExitStack() as stack:
        folder = work_folder(stack, args.keep, "bench-logs-")
        spool, index_path, note = prepare(folder, args.lines)
        print(note, flush=True)
        path = log_path(spool, BIG_RUN, "stdout")
        print("measuring a download's memory in a fresh process...", file=sys.stderr, flush=True)
        memory = measure_download_memory(index_path)
        index = Index(index_path, fallback_to_private=False)
        try:
            total = queries.log_line_counts(index, BIG_RUN)["stdout"]
            print(f"index: {index.counts()['log_lines']:,} log lines; measuring opening the last page...",
                  file=sys.stderr, flush=True)
            rows = open_figures(index, total, args.repeat)
            print("measuring pages...", file=sys.stderr, flush=True)
            rows += page_figures(index, path, total, args.repeat, heavy)
            print("measuring searches...", file=sys.stderr, flush=True)
            rows += search_figures(index, path, args.repeat, heavy)
            print("measuring the download...", file=sys.stderr, flush=True)
            rows += download_figures(index, total, heavy, memory)
        finally:
            index.close()
        rows += browser_figures(spool, folder / "live-index.duckdb", args.probes, args.background)
    print_table(rows)


if __name__ == "__main__":
    main()
