"""The dependency graph of a dbt-shaped project (1,000 tasks in 111 folder groups, about
1,230 edges, four cycles of runs): layout and render, server and browser.

The project goes through the real spool and ingestor, in a spool of its own. Server side:
reading the definitions and statistics, building the graph, the overview (groups above 150
tasks) and its layout, the analysis (blocked, root causes, critical path), the node and edge
frames, and HoloViews' render to Bokeh models; then what a click or a filter costs the server,
sent into the drawn plot as the page does: selecting a task, opening a group, filtering by
name, and, for reference, every task drawn at once. Browser: a real `taskdash serve` and
Chromium, from a reload of /tasks to the graph's nodes on the canvas (the first visit, which
warms the server's imports, not counted).
"""

from __future__ import annotations

import time
from pathlib import Path

import holoviews as hv
from builders import write_dbt_spool
from serving import CHROMIUM, CHROMIUM_ARGS

from dashboard import queries
from dashboard.graph import dependency_graph
from dashboard.graph_groups import group_path
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.components.graph_plot import GraphPlot, draw, render
from dashboard.graph_view import analyse, focus, graph_frames, view_of

from .common import Row, Sizes, say, server, timing_row

#: The renderer of the task points (its data has the task names and fills).
NODES_JS = "Bokeh.index.query_one(v => v.model.data_source != null && v.model.data_source.data.fill != null)"


def _timed(timings: dict[str, float], name: str, work):
    start = time.perf_counter()
    result = work()
    timings[name] = time.perf_counter() - start
    return result


def server_side(index: Index) -> dict[str, float]:
    """Seconds of each step of opening the page, and of each interaction after it."""
    timings: dict[str, float] = {}
    tasks, stats = _timed(timings, "read definitions and stats",
                          lambda: (queries.tasks(index), queries.task_stats(index)))
    task_graph = _timed(timings, "build graph",
                        lambda: dependency_graph(zip(tasks["task"], tasks["grp"], tasks["depends_on"])))
    everything = set(task_graph.graph)
    view, positions = _timed(timings, "overview and layout", lambda: view_of(task_graph, everything, set()))
    state = analyse(task_graph, stats)
    start = time.perf_counter()
    frames = graph_frames(view, positions, stats, state, None)
    timings["analysis and frames"] = time.perf_counter() - start + timings.pop("analysis", 0.0)
    _timed(timings, "HoloViews → Bokeh models", lambda: hv.render(draw(frames), backend="bokeh"))
    timings["total, server side"] = sum(timings.values())

    # As the page does it: the first drawing's plot; then a selection recolours it through its
    # pipe (HoloViews updates the Bokeh models), and opening a group or filtering lays out and
    # sends the new layout through it, fitted to the view. Each starts from the overview.
    plot = GraphPlot(on_select=lambda _task: None)
    plot.show(render(frames))

    def from_overview(name: str, view_and_positions, selected=None) -> None:
        plot.update(frames, fit=True)
        start = time.perf_counter()
        plot.update(graph_frames(*view_and_positions(), stats, state, selected), fit=selected is None)
        timings[name] = time.perf_counter() - start

    task = max(task_graph.graph, key=task_graph.graph.degree)
    from_overview("select a task", lambda: (view, positions), task)
    top = group_path(task_graph.graph.nodes[task].get("group"))[:1]
    from_overview("open a group", lambda: view_of(task_graph, everything, set(top)))
    from_overview("filter by name", lambda: view_of(task_graph, focus(task_graph, None, 0, "", "int_"), set()))
    every_group = {level for n in task_graph.graph for level in group_path(task_graph.graph.nodes[n].get("group"))}
    from_overview("every task drawn at once", lambda: view_of(task_graph, everything, every_group))
    return timings


def browser_first_paint(spool: Path, index: Path, samples: int,
                        screenshot: Path | None) -> tuple[list[float], list[float]]:
    """Seconds from a reload of /tasks to its graph drawn, and to the table's rows below it shown
    (they come after the first paint), `samples` times after a first visit."""
    from playwright.sync_api import sync_playwright

    drawn = f"() => window.Bokeh && ({NODES_JS}) != null"
    times, table_times = [], []
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
            page.wait_for_selector(".tabulator-row", timeout=120_000)
            table_times.append(time.perf_counter() - start)
        if screenshot:
            page.screenshot(path=str(screenshot))
        browser.close()
    return times, table_times


INTERACTIONS = ("select a task", "open a group", "filter by name", "every task drawn at once")


def figures(folder: Path, sizes: Sizes, screenshot: Path | None = None) -> list[Row]:
    hv.extension("bokeh", logo=False)
    spool = folder / "dbt-graph-spool"
    for stale in (folder / "graph-index.duckdb", folder / "graph-index.duckdb.wal"):
        stale.unlink(missing_ok=True)
    if not spool.exists():
        write_dbt_spool(spool, sizes.graph_tasks)
    index = Index(folder / "graph-index.duckdb", fallback_to_private=False)
    Ingestor(index, spool).catch_up()
    edges = int(index.query("SELECT sum(len(depends_on)) AS n FROM tasks")["n"].iloc[0])
    say(f"graph: {sizes.graph_tasks:,} tasks, {edges:,} edges; measuring the server side...")
    samples = [server_side(index) for _ in range(sizes.heavy_repeat + 1)][1:]
    index.close()
    say("graph: measuring the first paint in Chromium...")
    paint, table = browser_first_paint(spool, folder / "graph-index.duckdb", sizes.heavy_repeat, screenshot)
    size = f"{sizes.graph_tasks:,} dbt-shaped tasks / {edges:,} edges"
    rows = []
    for name in samples[0]:
        times = [sample[name] for sample in samples]
        if name == "total, server side":
            rows.append(timing_row(f"dependency graph, {size}: layout and render, server side", times, None,
                                   "≤ 1 s", 1000, None, None))
        elif name in INTERACTIONS:
            target = ("", None) if name == "every task drawn at once" else ("≤ 300 ms", 300)
            rows.append(timing_row(f"dependency graph, server side: {name}", times, None, target[0], target[1],
                                   None, None))
        else:
            rows.append(timing_row(f"  of which {name}", times, None, "", None, None, None))
    rows.append(timing_row(f"dependency graph, {size}: reload → graph drawn in Chromium", paint, None,
                           "≤ 2 s to first paint", 2000, None, None))
    rows.append(timing_row("  and → the tasks table's rows below it shown", table, None, "", None, None, None))
    return rows
