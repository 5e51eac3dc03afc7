"""Load (issue 8): 20 live sessions while the spool takes 5,000 log lines/s and 200 status
events/s for two minutes; then 500 sessions of every page opened and closed, and plain GETs
whose session never connects (issue 23), after which nothing of them is left.

Real parts only: a `taskdash serve` subprocess (or the dashboard served in this process, to
look at its hub and pn.state), Chromium pages, Bokeh client sessions (`pull_session`) that
keep applying the server's changes like a browser tab does, and writer subprocesses
appending to the spool at a steady pace.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import gc
import html
import re
import statistics
import subprocess
import sys
import time
from collections import Counter

import panel as pn
import psutil
import pytest
from bokeh.models import CheckboxButtonGroup, RadioButtonGroup
from clients import ClientProcess, LiveClient, import_page_models
from helpers import read_events, wait_until
from playwright.sync_api import expect
from serving import LOG_LINE_PROBE, dashboard_server, plain_get, served_in_process

from dashboard.components import live, timers
from dashboard.spool import SpoolWriter
from dashboard.statuses import LIFECYCLE, STATUSES

LOAD_SECONDS = 120  # the issue asks for two minutes
LOG_LINES_PER_SECOND = 5000
STATUS_EVENTS_PER_SECOND = 200
PAGES_PER_ROUTE = 3  # Chromium pages on /task-runs, and on the running run's detail
CLIENTS_PER_ROUTE = 7  # Bokeh client sessions on each: 2 x (3 + 7) = 20 sessions
SESSIONS_CYCLED = 500
BATCH = 25  # sessions open at once while cycling
#: How much the server may grow over the cycle's second half (250 sessions, writers running): the
#: first half fills what a server keeps (DuckDB's buffers, Bokeh's and Panel's caches). Measured
#: +19 and +23 MB; +85 MB when each shared query kept 256 answers of versions and seconds gone by.
#: On 2026-12-07: +7.6 to +26.6 MB in six runs and +57.8 MB in one (the same code +18.2 run again):
#: DuckDB's memory outside its own count moves with the writers' writes, so the bound is 64 MB,
#: under the 85 MB of that leak (the sessions' own leftovers are asserted one by one above).
SECOND_HALF_GROWTH = 64 * 2**20
TAIL_RUN, TAIL_TASK = "r-load-tail", "Load_Tail"
MB = 2**20

# Appends LOG_LINES_PER_SECOND lines to one log at a steady pace, and every 100 ms a probe
# line holding its own time.time(); prints "<lines> <probes> <seconds>" when done.
LOG_WRITER = r"""
import sys, time
path, per_second, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
start, written, probes = time.monotonic(), 0, 0
with open(path, "ab", buffering=0) as log:
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * per_second)
        chunk = "".join(f"{time.time():.3f} INFO  [worker-{n % 8}] load.step: line {n} of a busy run, "
                        f"loaded {n * 7 % 5000} rows\n" for n in range(written, due))
        if elapsed >= probes * 0.1:
            chunk += f"probe {time.time():.6f} {probes}\n"
            probes += 1
        log.write(chunk.encode())
        written = due
        time.sleep(0.01)
print(written + probes, probes, time.monotonic() - start)
"""

# Writes STATUS_EVENTS_PER_SECOND status events at a steady pace: 100 runs in flight, each
# moving one lifecycle step per turn, IDLE ... RUNNING then SUCCESS, FAILED or TERMINATED; new
# runs start as others end. At the end every run in flight is finished. Prints
# "<events written at pace> <seconds>".
EVENTS_WRITER = r"""
import collections, itertools, sys, time
from dashboard.spool import SpoolWriter
spool, per_second, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
STEPS = ("IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING")
writer = SpoolWriter(spool, "load-events")
tasks = [f"Load_Task_{n:02d}" for n in range(20)]
for n, task in enumerate(tasks):
    writer.define_task(task, group=f"group_{n % 4}")
in_flight, numbers = collections.deque(), itertools.count()

def emit(start_new):
    if start_new and len(in_flight) < 100:
        n = next(numbers)
        run = [f"run-{n:06d}", tasks[n % len(tasks)], n, 0]
    else:
        run = in_flight.popleft()
    run_id, task, n, step = run
    end = "FAILED" if n % 10 == 3 else "TERMINATED" if n % 25 == 7 else "SUCCESS"
    status = STEPS[step] if step < len(STEPS) else end
    writer.status(run_id, task, status, agent=f"agent-{n % 4}" if step >= 3 else None,
                  exit_code={"SUCCESS": 0, "FAILED": 1, "TERMINATED": -15}[end] if step == len(STEPS) else None)
    run[3] += 1
    if run[3] <= len(STEPS):
        in_flight.append(run)

start, written = time.monotonic(), 0
while (elapsed := time.monotonic() - start) < seconds:
    for _ in range(int(elapsed * per_second) - written):
        emit(start_new=True)
        written += 1
    time.sleep(0.01)
paced = time.monotonic() - start
while in_flight:
    emit(start_new=False)
print(written, paced)
"""


def writer_process(script: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE, text=True)


def median_p95(values: list[float]) -> str:
    if len(values) < 2:
        return f"{len(values)} samples"
    return (f"median {statistics.median(values) * 1000:,.0f} ms, p95 "
            f"{statistics.quantiles(values, n=20)[-1] * 1000:,.0f} ms ({len(values):,} samples)")


# ---- what a session shows ------------------------------------------------------------

# The grid's rows as [run_id, status], read from the DOM (the eye link holds the run id).
GRID_ROWS = """grid => [...grid.querySelectorAll(".tabulator-row")].map(row => [
  decodeURIComponent(row.querySelector("a.td-eye").getAttribute("href").split("/").pop()),
  row.querySelector('.tabulator-cell[tabulator-field="status"]').textContent])"""

# Notes when each (run, status) first shows in the grid: window.__statuses["<run_id> <status>"] = ms.
GRID_OBSERVER = f"""grid => {{
  const rows = {GRID_ROWS}
  const seen = window.__statuses = {{}}
  const look = () => {{
    const now = performance.timeOrigin + performance.now()
    for (const [run, status] of rows(grid)) {{ if (!((run + " " + status) in seen)) seen[run + " " + status] = now }}
  }}
  new MutationObserver(look).observe(grid, {{childList: true, subtree: true, characterData: true}})
  look()
}}"""


def chip_labels(labels: list[str]) -> list[str]:
    return [label for label in labels if label.split(" ")[0] in STATUSES]


def grid_in_chromium(page) -> tuple[list[str], list[list[str]]]:
    return chip_labels(page.locator(".bk-btn").all_inner_texts()), page.locator(".tabulator").evaluate(GRID_ROWS)


def grid_in_client(doc) -> tuple[list[str], list[list[str]]]:
    from panel.models.tabulator import DataTabulator

    chips = next(iter(doc.select({"type": CheckboxButtonGroup}))).labels
    data = next(iter(doc.select({"type": DataTabulator}))).source.data
    return chip_labels(list(chips)), [[run, status] for run, status in zip(data["run_id"], data["status"])]


def detail_in_chromium(page) -> tuple[str, str, int]:
    """(the run's status badge, the stdout tab's label, the last line number shown)"""
    stdout = [label for label in page.locator(".bk-btn").all_inner_texts() if label.startswith("stdout")]
    last = page.locator(".td-line").last.get_attribute("data-line")
    return page.locator(".td-card dd .td-badge").first.text_content(), stdout[0], int(last)


def detail_in_client(doc) -> tuple[str, str, int]:
    from panel.models.markup import HTML

    card = next(html.unescape(m.text) for m in doc.select({"type": HTML}) if "td-card" in m.text)
    tabs = next(m.labels for m in doc.select({"type": RadioButtonGroup}) if m.labels[0].startswith("stdout"))
    log = next(m for m in doc.models if type(m).__name__.startswith("LogLines"))
    last = max([row[0] for row in (*log.lines[-1:], *log.appended[-1:])], default=0)
    return re.search(r"td-badge td-s-(\w+)", card)[1], tabs[0], last


def running_tail_run(spool, lines: int) -> SpoolWriter:
    """A spool with TAIL_RUN running and `lines` stdout lines; its writer, still open."""
    writer = SpoolWriter(spool, "test")
    writer.define_task(TAIL_TASK, "load")
    for status in LIFECYCLE:
        writer.status(TAIL_RUN, TAIL_TASK, status, agent="agent-1")
    writer.append_log(TAIL_RUN, "stdout", "".join(f"starting {n}\n" for n in range(1, lines + 1)))
    return writer


# ---- 1. twenty sessions under load ---------------------------------------------------------


@pytest.mark.timeout(LOAD_SECONDS + 600)
def test_twenty_sessions_follow_a_busy_spool(tmp_path, context):
    import_page_models()
    spool = tmp_path / "spool"
    writer = running_tail_run(spool, lines=10)
    log_file = writer.log_path(TAIL_RUN, "stdout")
    page_errors: list[str] = []
    clients: list[LiveClient] = []
    writers: list[subprocess.Popen] = []

    with dashboard_server(tmp_path) as server:
        grid_url, detail_url = f"{server.url}/task-runs", f"{server.url}/task-runs/{TAIL_RUN}"
        context.set_default_timeout(90_000)
        grid_pages, detail_pages = [], []
        for url, pages, shown in ((grid_url, grid_pages, ".tabulator-row"), (detail_url, detail_pages, ".td-line")):
            for _ in range(PAGES_PER_ROUTE):
                page = context.new_page()
                page.on("pageerror", lambda error: page_errors.append(str(error)))
                page.goto(url)
                expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=90_000)
                expect(page.locator(shown).first).to_be_attached(timeout=90_000)
                pages.append(page)
        for page in grid_pages:
            page.locator(".tabulator").evaluate(GRID_OBSERVER)
        for page in detail_pages:
            page.locator(".td-log").evaluate(LOG_LINE_PROBE)
        try:
            # Opened on other threads: pull_session runs its own event loop until connected,
            # which it cannot do on this thread, where Playwright's loop runs.
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                grid_clients = list(pool.map(LiveClient, [grid_url] * CLIENTS_PER_ROUTE))
                clients += grid_clients
                detail_clients = list(pool.map(LiveClient, [detail_url] * CLIENTS_PER_ROUTE))
                clients += detail_clients
            for client in grid_clients:
                assert client.read(grid_in_client)[1], "a client session's grid is empty"
            for client in detail_clients:
                assert client.read(detail_in_client)[0] == "RUNNING"
            sessions = len(grid_pages) + len(detail_pages) + len(clients)
            print(f"\n{sessions} sessions open: {len(grid_pages)} Chromium + {len(grid_clients)} Bokeh clients on "
                  f"/task-runs, {len(detail_pages)} + {len(detail_clients)} on {TAIL_RUN}'s detail (following)")

            lines_before = log_file.read_bytes().count(b"\n")
            writers += [writer_process(LOG_WRITER, log_file, LOG_LINES_PER_SECOND, LOAD_SECONDS),
                        writer_process(EVENTS_WRITER, spool, STATUS_EVENTS_PER_SECOND, LOAD_SECONDS)]
            (log_out, _), (events_out, _) = (w.communicate(timeout=LOAD_SECONDS + 120) for w in writers)
            assert [w.returncode for w in writers] == [0, 0], "a writer failed"
            log_lines, probes, log_seconds = log_out.split()
            paced_events, events_seconds = events_out.split()
            line_rate = (int(log_lines) - int(probes)) / float(log_seconds)
            event_rate = int(paced_events) / float(events_seconds)
            print(f"written in {LOAD_SECONDS} s: {int(log_lines):,} log lines ({line_rate:,.0f}/s, {probes} probes) "
                  f"and {int(paced_events):,} status events ({event_rate:,.0f}/s) at pace")
            assert line_rate >= 0.9 * LOG_LINES_PER_SECOND and event_rate >= 0.9 * STATUS_EVENTS_PER_SECOND, \
                "the writers did not reach the load the test is about"
            writer.status(TAIL_RUN, TAIL_TASK, "SUCCESS", agent="agent-1", exit_code=0)

            # The final state, from the spool itself.
            final, written_at = {}, {}
            for event in read_events(spool):
                if event["kind"] == "status":
                    final[event["run_id"]] = event["status"]  # one writer per run, in order
                    written_at[f"{event['run_id']} {event['status']}"] = dt.datetime.fromisoformat(
                        event["ts"].replace("Z", "+00:00")).timestamp()
            counts = Counter(final.values())
            chips = [f"{status} {counts[status]:,}" for status in STATUSES]
            total_lines = log_file.read_bytes().count(b"\n")
            assert total_lines == lines_before + int(log_lines)
            detail_final = ("SUCCESS", f"stdout · {total_lines:,}", total_lines)
            print(f"final state: {len(final):,} runs ({', '.join(chips)}); {TAIL_RUN}: SUCCESS, "
                  f"{total_lines:,} stdout lines")

            sessions_views = (
                [(f"Chromium /task-runs #{n}", "grid", lambda p=p: grid_in_chromium(p)) for n, p in enumerate(grid_pages)]
                + [(f"client /task-runs #{n}", "grid", lambda c=c: c.read(grid_in_client))
                   for n, c in enumerate(grid_clients)]
                + [(f"Chromium detail #{n}", "detail", lambda p=p: detail_in_chromium(p))
                   for n, p in enumerate(detail_pages)]
                + [(f"client detail #{n}", "detail", lambda c=c: c.read(detail_in_client))
                   for n, c in enumerate(detail_clients)])
            behind: dict[str, object] = {}
            caught_up: dict[str, float] = {}  # session -> seconds after the last write it first showed the final state

            def all_final() -> bool:
                behind.clear()
                for name, kind, shown in sessions_views:
                    state = shown()
                    if kind == "grid":
                        shown_chips, rows = state
                        ok = shown_chips == chips and len(rows) == min(50, len(final)) and all(
                            final.get(run) == status for run, status in rows)
                    else:
                        ok = state == detail_final
                    if ok:
                        caught_up.setdefault(name, time.monotonic() - start)
                    else:
                        behind[name] = state if kind == "detail" else (state[0], [
                            row for row in state[1] if final.get(row[0]) != row[1]][:3])
                return not behind

            start = time.monotonic()
            try:
                wait_until(all_final, timeout=300, interval=1, message="every session to show the final state")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; behind: {behind}") from None
            print(f"every session shows the final state {time.monotonic() - start:.1f} s after the last write")
            print("  first showed it after: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in
                                                       sorted(caught_up.items(), key=lambda item: item[1])))

            log_latencies, status_latencies = [], []
            for n, page in enumerate(detail_pages):
                seen = page.evaluate("() => window.__probes")
                log_latencies += [at / 1000 - float(text.split()[1]) for text, at in seen.items()]
                print(f"  Chromium detail #{n}: {len(seen)} of {probes} probe lines seen")
                # Lines arriving more than FOLLOW_KEEP at a time are skipped to the newest: the count
                # says how far behind the page fell, the latency below by how much.
                assert seen, "a page following the log saw none of the probe lines"
            for n, page in enumerate(grid_pages):
                seen = page.evaluate("() => window.__statuses")
                status_latencies += [at / 1000 - written_at[key] for key, at in seen.items()
                                     if key.startswith("run-")]
                print(f"  Chromium /task-runs #{n}: {len([k for k in seen if k.startswith('run-')]):,} "
                      f"status changes seen")
            print(f"push latency, log line written → shown in Chromium: {median_p95(log_latencies)}")
            print(f"push latency, status event written → shown in Chromium's grid: {median_p95(status_latencies)}")
            print(f"server RSS at the end: {psutil.Process(server.process.pid).memory_info().rss / MB:,.0f} MB")
            assert status_latencies, "no status change was seen in the grid"
        finally:
            writer.close()
            for process in writers:
                process.kill()
                process.communicate()
            for client in clients:
                client.close()
            for page in grid_pages + detail_pages:
                page.close()
        assert page_errors == [], f"errors in the pages: {page_errors[:5]}"
        problems = [line for line in server.output if re.search(r"Traceback|\bERROR\b", line)]
        assert problems == [], "the server logged errors:\n" + "".join(problems[:20])
        print("no Traceback or ERROR in the server output, no error in the pages")


# ---- 2. five hundred sessions opened and closed -------------------------------------------


def bokeh_sessions() -> int:
    return sum(len(server.get_sessions()) for server, _, _ in pn.state._servers.values())


def alive_page_views() -> list:
    """The pages' view objects still alive (each belongs to one session)."""
    from dashboard.components.dependency_graph import DependencyGraph
    from dashboard.components.graph_plot import GraphPlot
    from dashboard.components.log_viewer import LogViewer
    from dashboard.components.run_card import RunCard
    from dashboard.components.runs_grid import RunsGrid
    from dashboard.components.tasks_table import TasksTable

    gc.collect()
    kinds = (RunsGrid, RunCard, LogViewer, DependencyGraph, TasksTable, GraphPlot)
    return [o for o in gc.get_objects() if isinstance(o, kinds)]


def live_page_views() -> dict[str, int]:
    """The pages' view objects still alive, counted by class."""
    return dict(Counter(type(view).__name__ for view in alive_page_views()))


def page_views_snapshot() -> tuple[dict[str, int], set[int]]:
    """The pages' view objects alive now, counted by class, and their ids (not the views: a
    snapshot must not keep them alive)."""
    views = alive_page_views()
    return dict(Counter(type(view).__name__ for view in views)), {id(view) for view in views}


def what_holds(target, max_depth: int = 100, max_layer: int = 20_000) -> str:
    """The shortest chain of references that keeps `target` alive, from a module, a class or another
    thread's running frame down to it, one link a line (the test's own thread is left out); or,
    when there is none, a chain from an object nothing the collector sees refers to (held from C:
    a thread's current context, an extension's object)."""
    import types

    this_thread = _stack(sys._getframe())
    running = set().union(*map(_stack, sys._current_frames().values())) - this_thread
    module_globals = {id(vars(module)): module for module in list(sys.modules.values()) if module is not None}
    child_of: dict[int, object] = {id(target): None}
    layer, unheld = [target], []
    skipped = {id(child_of), id(unheld)} | this_thread

    def chain_from(holder) -> str:
        chain = [holder]
        while chain[-1] is not target:  # down the links found
            chain.append(child_of[id(chain[-1])])
        links = [_link(holder, held) for holder, held in zip(chain, chain[1:])]
        return "\n".join([*links, f"  the {type(target).__qualname__}"])

    for _ in range(max_depth):
        layer_ids = {id(obj) for obj in layer}
        next_layer, held_here = [], set()
        skipped |= {id(layer), id(next_layer), id(layer_ids), id(held_here)}
        for referrer in gc.get_referrers(*layer):
            key = id(referrer)
            if key in skipped:
                continue
            children = [o for o in gc.get_referents(referrer) if id(o) in layer_ids]
            held_here.update(map(id, children))
            if key in child_of:
                continue
            child_of[key] = children[0] if children else None
            if key in module_globals:
                return f"  module {module_globals[key].__name__}\n{chain_from(referrer)}"
            if isinstance(referrer, (types.ModuleType, type)) or key in running:
                return chain_from(referrer)
            next_layer.append(referrer)
        unheld += [obj for obj in layer if id(obj) not in held_here]
        layer = next_layer[:max_layer]
        if not layer:
            break
    if not unheld:
        return "no chain found"
    return "held from outside the collector's view, through:\n" + "\n--\n".join(map(chain_from, unheld[-3:]))


def _stack(frame) -> set[int]:
    """The ids of a frame and of those that called it."""
    ids = set()
    while frame is not None:
        ids.add(id(frame))
        frame = frame.f_back
    return ids


def _link(holder, held) -> str:
    """One link of `what_holds`'s chain: the holder, and under what it holds the next."""
    import types

    if isinstance(holder, dict):
        keys = [key for key, value in holder.items() if value is held]
        return f"  dict[{keys[0]!r}]" if keys else "  dict"
    if isinstance(holder, types.FrameType):
        return f"  frame of {holder.f_code.co_qualname} ({holder.f_code.co_filename}:{holder.f_lineno})"
    if isinstance(holder, (types.FunctionType, types.MethodType)):
        return f"  {type(holder).__name__} {holder.__qualname__}"
    if isinstance(holder, (types.ModuleType, type)):
        return f"  {type(holder).__name__} {holder.__name__}"
    if isinstance(holder, asyncio.TimerHandle):
        due = holder.when() - holder._loop.time()
        return f"  {holder!r:.200} (due in {due:.1f} s)"
    kind = type(holder)
    size = f" of {len(holder)}" if isinstance(holder, (list, tuple, set, frozenset)) else ""
    return f"  {kind.__module__}.{kind.__qualname__}{size}"


def views_freed(before: tuple[dict[str, int], set[int]], timeout: float = 20) -> float:
    """Wait until no more page views of a kind are alive than in the snapshot `before` (other
    tests' may be there), and return how long it took; fail saying what is alive then and what
    holds one of the views newer than the snapshot."""
    started = time.monotonic()
    count_before, ids_before = before

    def released() -> bool:
        return all(count <= count_before.get(name, 0) for name, count in live_page_views().items())

    def still_held() -> str:
        alive = live_page_views()
        said = [f"the closed sessions' page views to be freed: alive {alive}, before {count_before}"]
        newer = [view for view in alive_page_views() if id(view) not in ids_before]
        for name, count in alive.items():
            one = next((view for view in newer if type(view).__name__ == name), None)
            if count > count_before.get(name, 0) and one is not None:
                said.append(f"what holds a {name}:\n{what_holds(one)}")
        return "\n".join(said)

    wait_until(released, timeout=timeout, interval=1, message=still_held)
    return time.monotonic() - started


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


# 570-750 s in the full suite's runs on this 2-core machine while the clients shared the server's
# process; 909 s (a timeout) once with benchmarks running beside it.
@pytest.mark.timeout(1200)
def test_sessions_opened_and_closed_leave_nothing_behind(tmp_path, caplog):
    spool = tmp_path / "spool"
    writer = running_tail_run(spool, lines=1000)
    writer.close()
    # Sessions whose client left are destroyed after 0.2 s instead of Bokeh's 15 s.
    with served_in_process(spool, tmp_path / "index.duckdb", check_unused_sessions_milliseconds=200,
                           unused_session_lifetime_milliseconds=200) as (url, services), ClientProcess() as clients:
        routes = [f"{url}/task-runs", f"{url}/task-runs/{TAIL_RUN}"]  # /tasks and plain GETs: the test below

        def counts() -> tuple[int, int, int, int]:
            return (services.hub.subscriber_count, live.paced_session_count(), timers.ticker_count(),
                    bokeh_sessions())

        def cycle(route: str, count: int) -> tuple[tuple[int, int, int, int], int]:
            """Open `count` sessions at once, note the counts and RSS while they are open, close them."""
            clients.open(route, count)
            try:
                return counts(), psutil.Process().memory_info().rss
            finally:
                clients.close_all()

        baseline = counts()
        # Some light traffic, so sessions also get pushes while they open and close.
        writers = [writer_process(LOG_WRITER, spool / "logs" / TAIL_RUN / "stdout.log", 100, 3600),
                   writer_process(EVENTS_WRITER, spool, 10, 3600)]
        try:
            for route in routes:  # warm-up: the first sessions fill caches
                cycle(route, 5)
            wait_until(lambda: counts() == baseline, timeout=60, message="the warm-up sessions to end")
            rss_before, views_before = rss(), page_views_snapshot()  # other tests' sessions may still be open
            start, peak, rss_peak, opened = time.monotonic(), (0, 0, 0, 0), 0, 0
            while opened < SESSIONS_CYCLED:
                count = min(BATCH, SESSIONS_CYCLED - opened)
                while_open, rss_open = cycle(routes[opened // BATCH % len(routes)], count)
                assert while_open[0] >= baseline[0] + 2 * count, f"{count} open sessions: {while_open}"
                assert while_open[1] >= baseline[1] + count, f"{count} open sessions, not all paced: {while_open}"
                peak, rss_peak = tuple(map(max, peak, while_open)), max(rss_peak, rss_open)
                opened += count
                if opened == SESSIONS_CYCLED // 2:
                    wait_until(lambda: counts()[3] == baseline[3], timeout=60, message="the first half's sessions to end")
                    rss_half = rss()
            cycled = time.monotonic() - start
            wait_until(lambda: counts() == baseline, timeout=120, interval=0.2,
                       message=f"hub subscriptions, paced sessions, page timers and sessions back to {baseline}")
            back = time.monotonic() - start - cycled
        finally:
            for process in writers:
                process.kill()
                process.communicate()
        rss_after = rss()
        growth = rss_after - rss_before

        # A callback already scheduled in a closed session's context (Panel's garbage collection
        # a few seconds after a document's end) holds its page until it is due: seconds, not the
        # minute a page's periodic refresh held it (see dashboard.components.timers).
        held_at_close = live_page_views()
        released = views_freed(views_before)
        print(f"\n{SESSIONS_CYCLED} Bokeh client sessions opened and closed, {BATCH} at a time (/task-runs and "
              f"{TAIL_RUN}'s detail in turn, the clients in a process of their own), in {cycled:.0f} s")
        names = ("hub subscriptions", "paced sessions", "page timers", "sessions")
        print("while open, at most: " + ", ".join(f"{n} {name}" for n, name in zip(peak, names)))
        print(f"{back:.1f} s after the last close: " + ", ".join(f"{n} {name}" for n, name in zip(counts(), names))
              + f" (before: {', '.join(map(str, baseline))})")
        print(f"RSS of the server's process: {rss_before / MB:,.0f} MB after the warm-up, at most "
              f"{rss_peak / MB:,.0f} MB with a batch open, {rss_after / MB:,.0f} MB after: growth "
              f"{growth / MB:+,.1f} MB ({growth / SESSIONS_CYCLED / 1024:+,.0f} kB per session cycled), "
              f"{(rss_after - rss_half) / MB:+,.1f} MB over the second half")
        print(f"page views in memory when the sessions had ended: {held_at_close or 'none'} (before the cycle: "
              f"{views_before[0] or 'none'}); all of the cycle's freed {released:.1f} s later")
        errors = [record.getMessage() for record in caplog.records if record.levelname in ("ERROR", "CRITICAL")]
        assert errors == [], f"the server logged errors: {errors[:5]}"
        assert rss_after - rss_half <= SECOND_HALF_GROWTH, \
            f"the server grew by {(rss_after - rss_half) / MB:,.0f} MB over the second half of the cycle"


@pytest.mark.timeout(900)
def test_closed_tasks_sessions_and_plain_gets_of_every_page_are_freed(tmp_path, caplog):
    """Issue 23: every closed /tasks session stayed in memory (HoloViews kept the graph's click
    hook, a bound method of the page, in its process-wide options), and so did the session of
    every plain GET of /tasks, which never connects. 20 /tasks client sessions, then 30 plain
    GETs of each page; the 500-session cycle above takes the two lighter pages."""
    spool = tmp_path / "spool"
    running_tail_run(spool, lines=100).close()
    with served_in_process(spool, tmp_path / "index.duckdb", check_unused_sessions_milliseconds=200,
                           unused_session_lifetime_milliseconds=200) as (url, services):
        pages = [f"{url}/task-runs", f"{url}/task-runs/{TAIL_RUN}", f"{url}/tasks"]

        def counts() -> tuple[int, int]:
            return services.hub.subscriber_count, bokeh_sessions()

        baseline = counts()
        with concurrent.futures.ThreadPoolExecutor(4) as pool, ClientProcess() as clients:
            for route in pages:  # warm-up: the first sessions fill caches
                assert plain_get(route)
            wait_until(lambda: counts() == baseline, timeout=60, message="the warm-up sessions to end")
            rss_before, views_before = rss(), page_views_snapshot()
            for _ in range(4):
                clients.open(f"{url}/tasks", 5)
                clients.close_all()
            for route in pages:
                assert all(pool.map(lambda _: plain_get(route), range(30)))
        wait_until(lambda: counts() == baseline, timeout=120, interval=0.2,
                   message=f"hub subscriptions and sessions back to {baseline}")

        held = live_page_views()
        released = views_freed(views_before)
        growth = rss() - rss_before
        print(f"\n20 /tasks client sessions and 30 plain GETs of each page, closed: page views alive at the last "
              f"close {held or 'none'}, all freed {released:.1f} s later; RSS of this process {growth / MB:+,.1f} MB "
              f"({growth / 110 / 1024:+,.0f} kB per session)")
        errors = [record.getMessage() for record in caplog.records if record.levelname in ("ERROR", "CRITICAL")]
        assert errors == [], f"the server logged errors: {errors[:5]}"
