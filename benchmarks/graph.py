"""The dependency graph at 1,000 tasks and 2,000 edges: layout and render, server and browser.

Task definitions (in 20 groups, each task depending on two earlier ones) and one run per
task go through the real spool and ingestor, in a spool of their own. Server side: reading
the definitions and statistics, building the graph, the layered layout, the analysis
(blocked, root causes, critical path), the node and edge frames, and HoloViews' render to
Bokeh models. Browser: a real `taskdash serve` and Chromium, from a reload of /tasks to the
graph's nodes on the canvas (the first visit, which warms the server's imports, not counted).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import holoviews as hv

from dashboard import queries
from dashboard.graph import dependency_graph, layered_layout
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.pages.dependency_graph import analyse, draw, graph_frames
from dashboard.spool import SpoolWriter

from .common import CHROMIUM, CHROMIUM_ARGS, Row, Sizes, say, server, timing_row

GROUPS = 20
#: The renderer of the task points (its data has the task names and fills).
NODES_JS = "Bokeh.index.query_one(v => v.model.data_source != null && v.model.data_source.data.fill != null)"


def write_spool(spool: Path, tasks: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    names = [f"task_{i:04d}" for i in range(tasks)]
    with SpoolWriter(spool, "bench") as writer:
        for i, name in enumerate(names):
            upstream = sorted(set(rng.sample(names[max(0, i - 60):i], min(2, i)))) if i else []
            writer.define_task(name, f"group_{i % GROUPS:02d}", upstream)
        statuses = ["SUCCESS"] * 8 + ["FAILED", "RUNNING", "ACTIVE"]
        for i, name in enumerate(names):
            status = rng.choice(statuses)
            run_id = f"run-{i:05d}"
            writer.status(run_id, name, "RUNNING" if status in ("SUCCESS", "FAILED") else status, agent="a")
            if status in ("SUCCESS", "FAILED"):
                writer.status(run_id, name, status, agent="a", exit_code=0 if status == "SUCCESS" else 1)


def server_side(index: Index) -> dict[str, float]:
    timings = {}
    start = time.perf_counter()
    tasks = queries.tasks(index)
    stats = queries.task_stats(index)
    timings["read definitions and stats"] = time.perf_counter() - start
    start = time.perf_counter()
    task_graph = dependency_graph(zip(tasks["task"], tasks["grp"], tasks["depends_on"]))
    timings["build graph"] = time.perf_counter() - start
    start = time.perf_counter()
    positions = layered_layout(task_graph)
    timings["layered layout"] = time.perf_counter() - start
    start = time.perf_counter()
    state = analyse(task_graph, stats)
    frames = graph_frames(task_graph, set(task_graph.graph), positions, stats, state, None)
    timings["analysis and frames"] = time.perf_counter() - start
    start = time.perf_counter()
    hv.render(draw(frames), backend="bokeh")
    timings["HoloViews → Bokeh models"] = time.perf_counter() - start
    timings["total, server side"] = sum(timings.values())
    return timings


def browser_first_paint(spool: Path, index: Path, samples: int, screenshot: Path | None) -> list[float]:
    """Seconds from a reload of /tasks to its graph drawn, `samples` times after a first visit."""
    from playwright.sync_api import sync_playwright

    drawn = f"() => window.Bokeh && ({NODES_JS}) != null"
    times = []
    with server(spool, index) as (url, _process, _output), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(f"{url}/tasks")  # a first visit warms the server's imports
        page.wait_for_function(drawn, timeout=120_000)
        for _ in range(samples):
            start = time.perf_counter()
            page.reload()
            page.wait_for_function(drawn, timeout=120_000)
            page.evaluate("() => new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)))")
            times.append(time.perf_counter() - start)
        if screenshot:
            page.screenshot(path=str(screenshot))
        browser.close()
    return times


def figures(folder: Path, sizes: Sizes, screenshot: Path | None = None) -> list[Row]:
    hv.extension("bokeh", logo=False)
    spool = folder / "graph-spool"
    for stale in (folder / "graph-index.duckdb", folder / "graph-index.duckdb.wal"):
        stale.unlink(missing_ok=True)
    if not spool.exists():
        write_spool(spool, sizes.graph_tasks)
    index = Index(folder / "graph-index.duckdb", fallback_to_private=False)
    Ingestor(index, spool).catch_up()
    edges = int(index.query("SELECT sum(len(depends_on)) AS n FROM tasks")["n"].iloc[0])
    say(f"graph: {sizes.graph_tasks:,} tasks, {edges:,} edges; measuring the server side...")
    samples = [server_side(index) for _ in range(sizes.heavy_repeat + 1)][1:]
    index.close()
    say("graph: measuring the first paint in Chromium...")
    paint = browser_first_paint(spool, folder / "graph-index.duckdb", sizes.heavy_repeat, screenshot)
    size = f"{sizes.graph_tasks:,} tasks / {edges:,} edges"
    rows = []
    for name in samples[0]:
        times = [sample[name] for sample in samples]
        if name == "total, server side":
            rows.append(timing_row(f"dependency graph, {size}: layout and render, server side", times, None,
                                   "≤ 1 s", 1000, None, None))
        else:
            rows.append(timing_row(f"  of which {name}", times, None, "", None, None, None))
    rows.append(timing_row(f"dependency graph, {size}: reload → graph drawn in Chromium", paint, None,
                           "≤ 2 s to first paint", 2000, None, None))
    return rows
