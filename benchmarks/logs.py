"""The Task Run Detail page's log viewer at scale: opening, paging, searching, downloading, live.

On the dataset's big run (its stdout holds `big_run_lines` realistic lines: timestamps,
INFO/DEBUG/WARN/ERROR, ERROR about 1 line in 1,000, "deadlock detected" once in 100,000):

1. open the log at its last page: `LogViewer(...)` at its last page (the server side of
   opening the page: line counts, the page's query, the widgets).
2. fetch a page of 500 lines: `queries.log_page` for random pages, against reading the
   whole file and slicing the lines out (how many schedulers serve a log page).
3. count search matches: `queries.search_matches` for a frequent, a rare and an absent
   text, as a log's first search (from the index) and as a search once the log's folded copy
   is made (dashboard.log_copies: after its first page or search), against Python reading the file and testing
   each line (any case, like ours); and the
   fleet search (`queries.fleet_search`: which runs printed the rare text, over every run's
   logs) against one ILIKE count of all lines.
4. download the whole stream: iterating `store.log_file_chunks`; and the memory a first
   download takes in a process that just opened the index (RSS growth, tracemalloc peak).
5. line written by a running command → visible in Chromium: a real `taskdash serve` on the
   spool, a running run's detail page open in Chromium (following by default), a
   MutationObserver noting when each probe line is added; a thread appends a probe line
   holding its own time.time() every 100 ms, first with the spool quiet, then while a
   writer process appends `background_lines` lines a second to another running run.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from contextlib import ExitStack
from pathlib import Path

import psutil
from serving import CHROMIUM, CHROMIUM_ARGS, LOG_LINE_PROBE

from dashboard import queries
from dashboard.store import log_file_chunks
from dashboard.index import Index
from dashboard.spool import SpoolWriter, new_run_id

from .common import Row, Sizes, ms, percentile, say, server, settle, timed, timing_row
from .data import BIG_RUN, Dataset

PAGE = queries.LOG_PAGE_LINES
SEARCHES = (  # (label, text): frequent, rare, absent; any case, as the viewer's search box
    ("frequent", "ERROR"),
    ("rare", "Deadlock Detected"),
    ("absent", "kernel panic"),
)


# ---- figures 1-4: the server side, in this process ---------------------------------------


def open_figures(index: Index, total: int, repeat: int) -> list[tuple]:
    from dashboard.config import Config
    from dashboard.hub import Hub
    from dashboard.components.log_viewer import LogViewer
    from dashboard.store import Links, Store

    store = Store(index, Hub(), Config(), Links(Config().routes))  # served: the download is a link
    last_page = -(-total // PAGE)
    first_line = (last_page - 1) * PAGE + 1

    def open_viewer() -> LogViewer:
        return LogViewer(store=store, run_id=BIG_RUN, page=last_page)

    times, viewer = timed(open_viewer, repeat)
    shown = viewer.view.lines
    if viewer.page != last_page or not shown or shown[0][0] != first_line or shown[-1][0] != total:
        say(f"warning: the viewer shows page {viewer.page}, lines {shown[0][0] if shown else '-'}"
              f"–{shown[-1][0] if shown else '-'}, not the last page")
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
            say(f"warning: log_page from line {first} gave {len(frame)} lines")

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
                say("warning: log_page and the file disagree on a page")
    return [timing_row("fetch a page of 500 lines, random pages: log_page", ours, base,
                       "≤ 5 ms, ≥ 50x", 5, None, 50)]


def search_figures(index: Index, path: Path, repeat: int, heavy: int) -> list[tuple]:
    """Each search first as a log's first search reads it (from the index, the log's copies left
    aside), then from the folded copy (see dashboard.log_copies) that its first page or search has
    made for the searches after it."""
    rows, first_times, matches_of = [], {}, {}
    copies, index.log_copies = index.log_copies, None
    try:
        for label, text in SEARCHES:
            first_times[text], matches_of[text] = timed(
                lambda: queries.search_matches(index, BIG_RUN, "stdout", text), repeat)
        # The viewer's next step of a search after 1,000 new lines of a followed stream: only those.
        label, text = SEARCHES[0]
        last = queries.log_line_counts(index, BIG_RUN)["stdout"]
        stepped, _ = timed(lambda: queries.search_matches(index, BIG_RUN, "stdout", text, from_line=last - 999), repeat)
        whole, _ = timed(lambda: queries.search_matches(index, BIG_RUN, "stdout", text), repeat)
    finally:
        index.log_copies = copies
    copy_seconds = folded_copy(index)
    for label, text in SEARCHES:
        times, matches = timed(lambda: queries.search_matches(index, BIG_RUN, "stdout", text), repeat)
        needle = text.lower()

        def python_count() -> int:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return sum(1 for line in handle if needle in line.lower())

        base, count = timed(python_count, heavy)
        for found in (matches, matches_of[text]):
            if count != len(found):
                say(f"warning: {text!r}: DuckDB found {len(found):,} lines, Python {count:,}")
        name = f'count search matches ({label}: "{text}", {len(matches):,} lines): search_matches'
        rows.append(timing_row(f"{name}, a log's first search (read from the index)", first_times[text], base,
                               "≤ 100 ms", 100, None, None))
        rows.append(timing_row(f"{name}, once its folded copy is made (after its first page or search)", times,
                               base, "≤ 100 ms", 100, None, None))
    rows.append((f"  (the folded copy of the {queries.log_line_counts(index, BIG_RUN)['stdout']:,}-line log, made "
                 "in the background after its first page or search)", f"{copy_seconds:.2f} s", "", "", "",
                 "report only"))
    label, text = SEARCHES[0]
    rows.append(timing_row(f'search stepped on after 1,000 new lines ({label}: "{text}"): search_matches of '
                           "the new lines (baseline: the whole stream again, as before 2026-12-05)",
                           stepped, whole, "report only", None, None, None))
    # Fleet search: which runs printed a rare text, over every run's logs.
    text = SEARCHES[1][1]
    times, found = timed(lambda: queries.fleet_search(index, text), repeat)
    lines = index.counts()["log_lines"]
    base, _ = timed(lambda: index.query("SELECT count(*) FROM log_text WHERE coalesce(visible, text) ILIKE ?",
                                        [f"%{text}%"]), repeat)
    rows.append(timing_row(f'fleet search over all {lines:,} lines ("{text}": {len(found):,} runs): fleet_search '
                           "(baseline: one ILIKE count of all lines)", times, base, "p95 ≤ 2 s", None, 2000, None))
    return rows


def folded_copy(index: Index) -> float:
    """Have the big log copied for searches (see dashboard.log_copies); the seconds until it is. (Its
    pages, read before, had it copied: forgotten first.)"""
    index.forget_log_copies()
    start = time.perf_counter()
    while time.perf_counter() - start < 300:
        with index.cursor() as cur:
            if index.log_source(cur, BIG_RUN, "stdout", search=True)[0] == index.log_copies.table:
                return time.perf_counter() - start
        time.sleep(0.05)
    raise RuntimeError("the big log was not copied for searches within 300 s")


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


def download(spool: Path) -> tuple[int, int]:
    """Iterate the big run's whole stdout as the download route does (the spool file's bytes): (bytes, lines)."""
    size = newlines = 0
    for chunk in log_file_chunks(spool, BIG_RUN, "stdout"):
        size += len(chunk)
        newlines += chunk.count(b"\n")
    return size, newlines


def download_memory(spool: str) -> None:
    """In a fresh process: print RSS growth and Python's peak of one download."""
    tracemalloc.start()
    with PeakRSS() as rss:
        download(Path(spool))
    print(rss.peak - rss.start, tracemalloc.get_traced_memory()[1])


def measure_download_memory(spool: Path) -> tuple[int, int]:
    """(RSS growth, Python peak) in bytes of a first download by a fresh process."""
    result = subprocess.run(
        [sys.executable, "-c", f"from benchmarks.logs import download_memory; download_memory({str(spool)!r})"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    rss, python_peak = result.stdout.split()
    return int(rss), int(python_peak)


def download_figures(spool: Path, total: int, heavy: int, memory: tuple[int, int]) -> list[tuple]:
    times, (characters, newlines) = timed(lambda: download(spool), heavy)
    if newlines != total:
        say(f"warning: the download held {newlines:,} lines, not {total:,}")
    mb = 2**20
    median = statistics.median(times)
    return [
        (*timing_row(f"download the whole stream ({newlines:,} lines, {characters / mb:,.0f} MB): "
                     f"the spool file's bytes, {characters / mb / median:,.0f} MB/s", times, None, "", None, None,
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


def browser_figures(spool: Path, index_path: Path, probes: int, background: int) -> list[Row]:
    from playwright.sync_api import sync_playwright

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
            say("logs: starting the server for the live figure...")
            url, process, output = stack.enter_context(server(spool, index_path))
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
            say(f"logs: page open after {time.monotonic() - start:.1f} s; waiting for the server to go quiet...")
            settle(process)
            page.locator(".td-log").evaluate(LOG_LINE_PROBE)
            phases = [("idle", 0), ("load", background)] if background else [("idle", 0)]
            for phase, rate in phases:
                if rate:
                    noise_path = writer.log_path(noise_run, "stdout")
                    before = noise_path.stat().st_size
                    noise = subprocess.Popen([sys.executable, "-c", NOISE_WRITER, str(noise_path), str(rate)])
                    noise_start = time.monotonic()
                    time.sleep(2)  # let it reach its pace
                say(f"logs: probing ({phase}, {rate:,} other lines/s)...")
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
                say(f"  {phase}: median {ms(statistics.median(latencies))}, p95 {ms(percentile(latencies, 0.95))}, "
                    f"max {ms(max(latencies))}, min {ms(min(latencies))}")
    finally:
        if noise is not None:
            noise.kill()
            noise.wait()
        for run_id in (probe_run, noise_run):  # a kept spool holds no run running forever
            writer.status(run_id, "Live_Tail", "SUCCESS", agent="agent-1", exit_code=0)
        writer.close()
    return rows


# ---- the section -------------------------------------------------------------------------


def figures(data: Dataset, sizes: Sizes) -> list[Row]:
    heavy = sizes.heavy_repeat
    say("logs: measuring a download's memory in a fresh process...")
    memory = measure_download_memory(data.spool)
    index = Index(data.index_path, fallback_to_private=False)
    try:
        total = queries.log_line_counts(index, BIG_RUN)["stdout"]
        say(f"logs: the big run has {total:,} lines; measuring opening the last page...")
        rows = open_figures(index, total, sizes.repeat)
        say("logs: measuring pages...")
        rows += page_figures(index, data.big_log, total, sizes.repeat, heavy)
        say("logs: measuring searches...")
        rows += search_figures(index, data.big_log, sizes.repeat, heavy)
        say("logs: measuring the download...")
        rows += download_figures(data.spool, total, heavy, memory)
    finally:
        index.close()
    return rows + browser_figures(data.spool, data.index_path, sizes.probes, sizes.background_lines)
