"""Lake mode side by side with local mode, in one run, on a throwaway PostgreSQL 15 (tests/postgres.py).

The data is data.py's (runs over 7 days, one big run's log, 1,000-line logs of other runs) at a
size of its own: LAKE_FULL (100,000 runs, 2,000,000 lines; shipping the shared 1M-run dataset
takes longer than the rest of the table: `--lake-runs 1000000` does) or LAKE_QUICK. Each figure's
baseline is local mode:

1. ship throughput: a real `taskdash ship` of the spool into a new lake, from its start to its
   "caught up" (lines and runs a second), against `Ingestor.catch_up` of the same spool into a new
   local index; and three hosts (three spools of tests/builders.py's host runs) shipped by three
   processes at once, against one local catch-up of each spool after the other.
2. the runs page (runs_page.VIEWS through `queries.runs_view`), a 500-line log page
   (`queries.log_page`) and a search count (`queries.search_matches`, logs.SEARCHES) on an Index
   opened in lake mode on the shipped lake as a lake server opens it (its feed has copied the
   mirror of the small tables, see dashboard.lake_mirror), against the local index of the same spool.
3. a new server's start to its first full page: `taskdash serve` started, /task-runs in Chromium
   showing the count of a fixed window's runs; in lake mode on the shipped lake (it reads, ingests
   nothing), against a local-mode server that must rebuild its index from the spool.
4. a line written on one host → visible in Chromium through another server: a `taskdash ship` on
   the spool, the lake server of figure 3 with the run's log page open (logs.probe_phase's probes,
   serving.LOG_LINE_PROBE noting when each shows); against the local server of figure 3 reading
   the spool itself. Probed once the server's start-up work (the first failure grouping, at 1M runs
   seconds of a core) has ended, which the target is about; and, reported only, in its first
   seconds after the first page, while that work runs.

Without PostgreSQL's programs (or the lake extra) the section prints a note and a row saying so.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import statistics
import subprocess
import threading
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import psutil
from builders import write_host_spool
from serving import CHROMIUM, CHROMIUM_ARGS, LOG_LINE_PROBE, DashboardServer, ship

from dashboard import queries
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.lake_feed import LakeFeed
from dashboard.spool import SpoolWriter, new_run_id

from . import data as shared_data
from .common import FULL, QUICK, Row, Sizes, ms, percentile, rate_row, say, settle, timing_row
from .logs import SEARCHES, probe_phase
from .runs_page import PAGE_SIZE, VIEWS

#: The lake's own sizes: data.py's shape, a tenth of the shared dataset at the full size.
LAKE_FULL = replace(FULL, name="lake-full", runs=100_000, log_lines=2_000_000, big_run_lines=200_000,
                    repeat=30, heavy_repeat=3, ingest_repeat=2, probes=60)
LAKE_QUICK = replace(QUICK, name="lake-quick", runs=2_000, log_lines=20_000, big_run_lines=10_000,
                     repeat=5, heavy_repeat=1, ingest_repeat=1, probes=5)
#: Three hosts: (runs, stdout lines a run) of tests/builders.py's host spools, each.
HOSTS = ("east", "west", "north")
HOST_RUNS = {"lake-full": (10_000, 100), "lake-quick": (200, 20)}
#: The window of the new server's first full page: fixed, so its count does not slide with the clock.
WINDOW = dt.timedelta(days=6)


def lake_sizes(sizes: Sizes, runs: int | None = None) -> Sizes:
    """The lake's sizes; `runs` (--lake-runs) scales the full size's: 20 log lines a run, the big
    run's log 2 lines a run (1,000,000: the shared dataset's sizes, about 20 minutes here)."""
    if sizes.name == QUICK.name:
        return LAKE_QUICK
    if runs is None or runs == LAKE_FULL.runs:
        return LAKE_FULL
    return replace(LAKE_FULL, name=f"lake-{runs}", runs=runs, log_lines=20 * runs, big_run_lines=2 * runs)


class Shipping:
    """A `taskdash ship` process (serving.ship) whose output is read as it comes."""

    def __init__(self, spool: Path, catalog: str, data_path: Path, host: str):
        self.started = time.perf_counter()
        self.process = ship(spool, catalog, data_path, host)
        self.output: list[str] = []
        self.caught_up_at: float | None = None
        self.shipping_at: float | None = None  # it said it ships: started, the lake attached
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)
            if self.shipping_at is None and line.startswith("shipping the spool"):
                self.shipping_at = time.perf_counter()
            if self.caught_up_at is None and line.startswith("caught up:"):
                self.caught_up_at = time.perf_counter()

    def wait_caught_up(self, timeout: float = 1800) -> float:
        """Seconds from the process's start to its "caught up"."""
        deadline = time.monotonic() + timeout
        while self.caught_up_at is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("taskdash ship did not catch up:\n" + "".join(self.output[-30:]))
            time.sleep(0.05)
        return self.caught_up_at - self.started

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:  # a ship that will not stop is killed
                self.process.kill()
                self.process.wait()
        self._reader.join(10)
        self.process.stdout.close()
        if "Traceback" in "".join(self.output):
            say("---- taskdash ship output ----\n" + "".join(self.output))


class Lakes:
    """New lakes on one throwaway PostgreSQL: a catalog database and a data folder each."""

    def __init__(self, postgres, folder: Path):
        self.postgres, self.folder, self._made = postgres, folder, 0

    def new(self):
        from dashboard.lake import LakeSettings

        self._made += 1
        data_path = self.folder / f"lake-data-{self._made}"
        shutil.rmtree(data_path, ignore_errors=True)  # a kept folder's, of an earlier run's lake
        return LakeSettings(self.postgres.new_catalog(), str(data_path))


# ---- figure 1: ship throughput ------------------------------------------------------------


def local_catch_up(spools: list[Path], folder: Path) -> tuple[float, int, int]:
    """Seconds, lines and runs of a local catch-up of each spool (one after another) into a new index."""
    seconds, lines, runs = 0.0, 0, 0
    for n, spool in enumerate(spools):
        path = folder / f"local-{n}.duckdb"
        index = Index(path, fallback_to_private=False)
        start = time.perf_counter()
        Ingestor(index, spool).catch_up()
        seconds += time.perf_counter() - start
        counts = index.counts()
        lines, runs = lines + counts["log_lines"], runs + counts["runs"]
        index.close()
        path.unlink()
        Path(f"{path}.wal").unlink(missing_ok=True)
    return seconds, lines, runs


def ship_all(spools: dict[str, Path], lake) -> tuple[float, float, int, int]:
    """Seconds from starting one ship per spool at once until all caught up, and of those until the
    last said it ships (the process started, the lake attached); the lake's lines and runs."""
    ships = [Shipping(spool, lake.catalog, Path(lake.data_path), host) for host, spool in spools.items()]
    try:
        seconds = max(shipping.wait_caught_up() for shipping in ships)
        startup = max(shipping.shipping_at - shipping.started for shipping in ships)
    finally:
        for shipping in ships:
            shipping.stop()
    index = Index(None, lake=lake, read_only=True)
    counts = index.counts()
    index.close()
    return seconds, startup, counts["log_lines"], counts["runs"]


def ship_figures(spool: Path, lakes: Lakes, sizes: Sizes, folder: Path) -> tuple[list[Row], object]:
    """Figure 1; and the first lake shipped (figures 2-4 read it)."""
    rows, first_lake = [], None
    ours, base, startups, counts = [], [], [], None
    for n in range(sizes.ingest_repeat):
        lake = lakes.new()
        say(f"lake: shipping one host's spool ({n + 1}/{sizes.ingest_repeat})...")
        seconds, startup, lines, runs = ship_all({"bench": spool}, lake)
        first_lake = first_lake or lake
        ours.append(seconds)
        startups.append(startup)
        say(f"  {lines:,} lines, {runs:,} runs in {seconds:.1f} s; the same into a local index...")
        local_seconds, local_lines, local_runs = local_catch_up([spool], folder)
        base.append(local_seconds)
        if (lines, runs) != (local_lines, local_runs):
            say(f"warning: the lake holds {lines:,} lines and {runs:,} runs, the local index "
                f"{local_lines:,} and {local_runs:,}")
        counts = lines, runs
    lines, runs = counts
    size = f"{runs:,} runs, {lines:,} lines"
    rows.append(rate_row(f"lake: one host's taskdash ship, start to caught up, log lines ({size}; "
                         "baseline: local Ingestor.catch_up)", lines, ours, base, None))
    rows.append(rate_row("lake: one host's taskdash ship, runs", runs, ours, base, None))
    rows.append(timing_row("  of which its start until it ships (Python, DuckDB, the lake attached)", startups, None,
                           "", None, None, None))

    host_runs, host_lines = HOST_RUNS.get(sizes.name, HOST_RUNS["lake-full"])
    spools = {host: folder / "hosts" / host / "spool" for host in HOSTS}
    if not all((spool / "events").is_dir() for spool in spools.values()):
        say(f"lake: writing {len(HOSTS)} host spools of {host_runs:,} runs × {host_lines} lines...")
        for host, spool in spools.items():
            write_host_spool(spool, host, range(host_runs), host_lines)
    ours, base = [], []
    for n in range(sizes.ingest_repeat):
        say(f"lake: shipping {len(HOSTS)} hosts at once ({n + 1}/{sizes.ingest_repeat})...")
        seconds, _, lines, runs = ship_all(spools, lakes.new())
        ours.append(seconds)
        local_seconds, local_lines, local_runs = local_catch_up(list(spools.values()), folder)
        base.append(local_seconds)
        if (lines, runs) != (local_lines, local_runs):
            say(f"warning: the lake holds {lines:,} lines and {runs:,} runs, the local indexes "
                f"{local_lines:,} and {local_runs:,}")
    rows.append(rate_row(f"lake: {len(HOSTS)} hosts shipping at once, total log lines ({runs:,} runs, {lines:,} "
                         "lines; baseline: local catch-up of each spool in turn)", lines, ours, base, None))
    return rows, first_lake


# ---- figure 2: queries on the lake against the local index -------------------------------------


def query_figures(lake_index: Index, local_index: Index, label: str, repeat: int) -> list[Row]:
    """The runs page, a log page and searches on a lake server (its mirror) and on the local index;
    the log's pages and searches twice on the lake: read from the lake itself (a log's first read,
    and every read of a running run's log), then from the server's copy of it (log_copies)."""
    indexes = {"lake": lake_index, "local": local_index}
    log_kinds = ("page", *(name for name, _ in SEARCHES))
    times = {(kind, mode): [] for kind in ("runs", *log_kinds) for mode in (*indexes, "copy")}
    total = queries.log_line_counts(local_index, shared_data.BIG_RUN)["stdout"]
    if queries.log_line_counts(lake_index, shared_data.BIG_RUN)["stdout"] != total:
        say("warning: the lake and the local index hold different line counts of the big run")
    rng = random.Random(5)
    pages = -(-total // queries.LOG_PAGE_LINES)

    def log_reads(index: Index, mode: str, first: int) -> list:
        start = time.perf_counter()
        frame = queries.log_page(index, shared_data.BIG_RUN, "stdout", first, queries.LOG_PAGE_LINES)
        times["page", mode].append(time.perf_counter() - start)
        got = [frame["text"].tolist()]
        for name, text in SEARCHES:
            start = time.perf_counter()
            matches = queries.search_matches(index, shared_data.BIG_RUN, "stdout", text)
            times[name, mode].append(time.perf_counter() - start)
            got.append(len(matches))
        return got

    def compared(answers: dict[str, list], what: str) -> None:
        differ = [n for n, (a, b) in enumerate(zip(*answers.values())) if a != b]
        if differ:
            say(f"warning: {' and '.join(answers)} answer differently ({what}: answers {differ})")

    copies, lake_index.log_copies = lake_index.log_copies, None  # first, every read reads the lake
    for round_no in range(repeat + 1):  # round 0 warms up, and checks both give the same answers
        first = rng.randrange(pages) * queries.LOG_PAGE_LINES + 1
        now = queries.utcnow().replace(microsecond=0)  # one for both: running runs' durations depend on it
        answers = {}
        for mode, index in indexes.items():
            got = []
            for name, run_filter, page, sort, descending in VIEWS:
                start = time.perf_counter()
                view = queries.runs_view(index, run_filter, page, PAGE_SIZE, sort, descending, now)
                times["runs", mode].append(time.perf_counter() - start)
                got.append((view.total, view.runs["run_id"].tolist()[:5]))
            answers[mode] = got + log_reads(index, mode, first)
        if round_no == 0:
            compared(answers, f"{len(VIEWS)} views, the log page, {len(SEARCHES)} searches")
            for key in times:
                times[key].clear()
    lake_index.log_copies = copies
    rss = psutil.Process().memory_info().rss
    start = time.perf_counter()
    queries.log_page(lake_index, shared_data.BIG_RUN, "stdout", 1, queries.LOG_PAGE_LINES)  # has it copied
    with lake_index.cursor() as cur:
        log_id = lake_index.log_id(cur, shared_data.BIG_RUN, "stdout")
    deadline = time.monotonic() + 600
    while not copies.held(log_id) and time.monotonic() < deadline:
        time.sleep(0.005)
    copy_seconds = time.perf_counter() - start
    grown = (psutil.Process().memory_info().rss - rss) / 2**20
    for round_no in range(repeat + 1):
        first = rng.randrange(pages) * queries.LOG_PAGE_LINES + 1
        answers = {mode: log_reads(lake_index if mode == "copy" else local_index, mode, first)
                   for mode in ("copy", "local")}
        if round_no == 0:
            compared(answers, f"the log page, {len(SEARCHES)} searches")
            for kind in log_kinds:
                times[kind, "copy"].clear()
    local = {kind: times[kind, "local"] for kind in log_kinds}
    rows = [timing_row(f"lake, {label}: runs page query + count, {len(VIEWS)} views pooled (baseline: local)",
                       times["runs", "lake"], times["runs", "local"], "med ≤ 10 ms, p95 ≤ 25 ms", 10, 25, None)]
    for mode, read in (("lake", "read from the lake (a log's first read; a running run's log)"),
                       ("copy", "read from the server's copy of the log")):
        rows.append(timing_row(f"lake, {label}: fetch a page of 500 lines of a {total:,}-line log, {read} "
                               "(baseline: local)", times["page", mode], local["page"], "≤ 5 ms", 5, None, None))
        for name, text in SEARCHES:
            rows.append(timing_row(f'lake, {label}: count search matches ({name}: "{text}"), {read} (baseline: local)',
                                   times[name, mode], local[name], "≤ 100 ms", 100, None, None))
    if copies.held(log_id):
        rows.append(timing_row(f"lake, {label}: the finished {total:,}-line log copied into the server (in the "
                               f"background, after its first read; its memory grew {grown:+,.0f} MB)", [copy_seconds],
                               None, "", None, None, None))
    else:
        say(f"warning: the big run's log was not copied into the lake server in {copy_seconds:.0f} s")
    return rows


# ---- figures 3 and 4: a new server's first full page; a line from a host to Chromium ----------


def window_url(url: str, start: dt.datetime, end: dt.datetime) -> str:
    """/task-runs showing the runs triggered between two times (to the minute, as the page takes them)."""
    return (f"{url}/task-runs?since=7d&start={start:%Y-%m-%dT%H}%3A{start:%M}%3A00Z"
            f"&end={end:%Y-%m-%dT%H}%3A{end:%M}%3A00Z")


#: Whether the page shows a text, in its shadow roots too, checked every 50 ms in the page: Playwright's
#: own waits look again after 100, 250, 500 and then 1,000 ms, which made this figure up to a second late.
PAGE_SHOWS_TEXT = """text => {
  const has = root => (root.textContent || "").includes(text)
                      || [...root.querySelectorAll("*")].some(element => element.shadowRoot && has(element.shadowRoot))
  return has(document)
}"""


def start_to_full_page(browser, folder: Path, extra: tuple[str, ...], spool: Path, index_path: Path,
                       window: tuple[dt.datetime, dt.datetime], total: int
                       ) -> tuple[float, DashboardServer, str, object]:
    """Seconds from `taskdash serve`'s start until /task-runs in Chromium shows the window's `total`
    runs; the server (running), its URL and the page."""
    start = time.perf_counter()
    server = DashboardServer(folder, *extra, wait=False, spool=spool, index=index_path)
    try:
        url = server.wait_for_url(timeout=600)
        page = browser.new_page()
        page.goto(window_url(url, *window))
        page.wait_for_function(PAGE_SHOWS_TEXT, arg=f"of {total:,} runs", polling=50, timeout=600_000)
        return time.perf_counter() - start, server, url, page
    except BaseException:
        say("---- server output ----\n" + "".join(server.output[-40:]))
        server.stop()
        raise


def open_log(page, url: str, run_id: str) -> None:
    """The run's log page in Chromium, following, its lines shown, the probe observer on."""
    from playwright.sync_api import expect

    page.goto(f"{url}/task-runs/{run_id}")
    expect(page.locator(".td-conn[data-state='Live']")).to_be_visible(timeout=120_000)
    expect(page.locator(".td-line").first).to_be_visible(timeout=120_000)
    page.locator(".td-log").evaluate(LOG_LINE_PROBE)


def server_figures(spool: Path, index_path: Path, lake, folder: Path, sizes: Sizes,
                   probe_runs: dict[str, str]) -> list[Row]:
    from playwright.sync_api import sync_playwright

    now = queries.utcnow()
    window = (now - WINDOW, now - dt.timedelta(minutes=2))
    run_filter = queries.RunFilter(since=dt.timedelta(days=7), start=window[0].replace(second=0, microsecond=0),
                                   end=window[1].replace(second=0, microsecond=0))
    lake_index = Index(None, lake=lake, read_only=True)
    total = queries.runs_view(lake_index, run_filter, 1, PAGE_SIZE).total
    lake_index.close()
    empty_spool = folder / "server-spool"
    empty_spool.mkdir(exist_ok=True)
    modes = {"lake": ("--catalog", lake.catalog, "--data-path", lake.data_path), "local": ()}
    starts = {mode: [] for mode in modes}
    probes: dict[str, tuple[list[float], int]] = {}  # once the server's start-up work has ended
    early: dict[str, tuple[list[float], int]] = {}  # in its first seconds, while that work runs
    writer = SpoolWriter(spool, name="bench-lake-live")
    with ExitStack() as stack:
        stack.callback(writer.close)
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        stack.callback(browser.close)
        host = Shipping(spool, lake.catalog, Path(lake.data_path), "bench")  # the host the probe lines leave
        stack.callback(host.stop)
        host.wait_caught_up()
        for n in range(sizes.heavy_repeat):
            for mode, extra in modes.items():
                server_folder = folder / f"server-{mode}-{n}"
                shutil.rmtree(server_folder, ignore_errors=True)  # local: a new index, rebuilt from the spool
                server_folder.mkdir()
                index = server_folder / "index.duckdb"
                say(f"lake: a new {mode}-mode server's first full page ({n + 1}/{sizes.heavy_repeat}, "
                    f"{total:,} runs)...")
                seconds, server, url, page = start_to_full_page(browser, server_folder, extra,
                                                           empty_spool if mode == "lake" else spool, index,
                                                           window, total)
                try:
                    starts[mode].append(seconds)
                    say(f"  {seconds:.1f} s")
                    if n == 0:
                        say(f"lake: a line written on the host → Chromium through the {mode}-mode server, "
                            "in its first seconds...")
                        open_log(page, url, probe_runs[mode])
                        early[mode] = probe_phase(page, writer, probe_runs[mode], f"{mode}-early", sizes.probes)
                        say("  ... and once its start-up work (the first failure grouping, say) has ended...")
                        settle(psutil.Process(server.process.pid), quiet_percent=15, timeout=300)
                        probes[mode] = probe_phase(page, writer, probe_runs[mode], mode, sizes.probes)
                finally:
                    page.close()
                    server.stop()
                    if "Traceback" in "".join(server.output):
                        say("---- server output ----\n" + "".join(server.output))
    rows = []
    latencies, missing = probes["lake"]
    base, base_missing = probes["local"]
    name = (f"lake: line written on a host → visible in Chromium through a lake server, its start-up work ended "
            f"({len(latencies)} probes"
            + (f", {missing} NEVER SHOWN" if missing else "") + "; baseline: a local server on the spool"
            + (f", {base_missing} never shown" if base_missing else "") + ")")
    target = "med ≤ 500 ms, p95 ≤ 1.5 s"
    if latencies:
        row = timing_row(name, latencies, base or None, target, 500, 1500, None)
        rows.append((*row[:5], row[5].replace(" ok", " MISSED")) if missing else row)
        say(f"  lake: median {ms(statistics.median(latencies))}, p95 {ms(percentile(latencies, 0.95))}")
    else:
        rows.append((name, "", "", "", "", f"{target} MISSED"))
    latencies, missing = early["lake"]
    base, base_missing = early["local"]
    if latencies:
        rows.append(timing_row(f"  the same in the servers' first seconds after their first page, their start-up work "
                               f"running ({len(latencies)} probes, {missing} never shown; local {base_missing} never shown)",
                               latencies, base or None, "report only", None, None, None))
    rows.append(timing_row(f"lake: a new server's start → first full page (/task-runs, {total:,} runs) "
                           "(baseline: a local server rebuilding its index from the spool)",
                           starts["lake"], starts["local"], "≤ 5 s", 5000, None, None))
    return rows


# ---- the section -------------------------------------------------------------------------------


def skipped(reason: str) -> list[Row]:
    say(f"lake: skipped: {reason}")
    return [(f"lake mode: skipped ({reason})", "", "", "", "", "")]


def figures(folder: Path, sizes: Sizes, runs: int | None = None) -> list[Row]:
    from postgres import PostgresServer, postgres_bin

    from dashboard.lake import PASSWORD_ENV, LakeError, extension_files

    if postgres_bin() is None:
        return skipped("PostgreSQL 15's initdb and pg_ctl were not found on PATH or under /usr/lib/postgresql: "
                       "install Debian's postgresql")
    try:
        extension_files()
    except LakeError as exc:
        return skipped(str(exc))
    own = lake_sizes(sizes, runs)
    folder = folder / own.name
    began = time.monotonic()
    say(f"lake: the dataset ({own.runs:,} runs, {own.log_lines:,} log lines)...")
    dataset = shared_data.prepare(folder, own)
    # The runs the live figure writes probe lines to: in the spool before anything reads it.
    probe_runs = {mode: new_run_id(f"lake-probe-{mode}") for mode in ("lake", "local")}
    with SpoolWriter(dataset.spool, name="bench-lake-live") as writer:
        for run_id in probe_runs.values():
            for status in ("IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING"):
                writer.status(run_id, "Live_Tail", status, agent="agent-1")
            writer.append_log(run_id, "stdout", "".join(f"starting {n}\n" for n in range(1, 11)))
    local_index = Index(dataset.index_path, fallback_to_private=False)
    Ingestor(local_index, dataset.spool).catch_up()
    local_index.close()
    postgres = PostgresServer(databases=2 * own.ingest_repeat + 1).start()
    saved = os.environ.get(PASSWORD_ENV)
    os.environ[PASSWORD_ENV] = postgres.password  # the ship and serve processes read it there
    try:
        lakes = Lakes(postgres, folder)
        rows, lake = ship_figures(dataset.spool, lakes, own, folder)
        label = f"{own.runs // 1000:,}k runs, {own.log_lines / 1e6:g}M lines"
        say("lake: measuring queries on the lake and on the local index...")
        lake_index = Index(None, lake=lake, read_only=True)
        local_index = Index(dataset.index_path, fallback_to_private=False)
        try:
            feed = LakeFeed(lake_index, None, mirror_after_seconds=0)  # a lake server's, once its mirror is copied
            deadline = time.monotonic() + 600
            while not lake_index.mirrored and time.monotonic() < deadline:
                feed.poll()
                time.sleep(0.05)
            rows += query_figures(lake_index, local_index, label, own.repeat)
        finally:
            lake_index.close()
            local_index.close()
        rows += server_figures(dataset.spool, dataset.index_path, lake, folder, own, probe_runs)
    finally:
        with SpoolWriter(dataset.spool, name="bench-lake-live") as writer:  # a kept spool runs nothing forever
            for run_id in probe_runs.values():
                writer.status(run_id, "Live_Tail", "SUCCESS", agent="agent-1", exit_code=0)
        if saved is None:
            os.environ.pop(PASSWORD_ENV, None)
        else:
            os.environ[PASSWORD_ENV] = saved
        postgres.stop()
    say(f"lake: the section took {time.monotonic() - began:.0f} s")
    return rows
