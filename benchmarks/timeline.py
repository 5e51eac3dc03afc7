"""The timeline page with 5,000 runs in view (1,000 at the quick size) of 100 tasks on 8 agents,
in the last 6 hours.

The runs go through the real spool and ingestor, in a spool of their own. Server side: the
query and the bars (`RunTimeline.refresh`'s work). Browser: a real `taskdash serve` and
Chromium: from a reload of /timeline to its bars on the canvas, and from a click on "agent"
(5,000 bars sent again, in other rows) to them drawn, each split where the server's part ends:
the page's HTML (its models in it) arrived, the new bars' data arrived. The reload's baseline
is the same page with no bars (`?status=RUNNING`: none runs), what the page costs by itself.
The first visit, which warms the server's imports, is not counted.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from pathlib import Path

from serving import CHROMIUM, CHROMIUM_ARGS

from dashboard import queries
from dashboard.components.run_timeline import MAX_RUNS, RunTimeline, TimelineQuery, timeline_rows
from dashboard.formatting import utcnow
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.spool import SpoolWriter

from .common import Row, Sizes, say, server, timed, timing_row

TASKS, AGENTS = 100, 8
#: The renderer of the run bars, once it holds them all.
BARS_DRAWN = ("() => window.Bokeh && Bokeh.index.query_one(v => v.model.data_source != null && "
              "v.model.data_source.data.part != null && v.model.data_source.data.part[0] === 'run' && "
              "v.model.data_source.data.run_id.length == {runs} && "
              "v.model.data_source.data.agent[0] {agent} v.model.data_source.data.task[0]) != null")
FRAMES = "() => new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)))"
#: Notes when the run bars' data next changes in the browser (the server's message applied).
WATCH_DATA = ("() => { window.benchData = null; Bokeh.index.query_one(v => v.model.data_source != null && "
              "v.model.data_source.data.part != null && v.model.data_source.data.part[0] === 'run')"
              ".model.data_source.change.connect(() => { window.benchData ??= performance.now() }) }")


def write_runs(spool: Path, runs: int) -> None:
    """`runs` finished runs in the last 6 hours, each queued a few seconds, then run 1 to 5 minutes."""
    writer = SpoolWriter(spool, "bench")
    rng, now = random.Random(7), utcnow()
    for n in range(runs):
        task, agent = f"task_{n % TASKS:03d}", f"agent-{rng.randrange(AGENTS)}"
        trigger = now - dt.timedelta(seconds=rng.uniform(600, 6 * 3600 - 600))
        start = trigger + dt.timedelta(seconds=rng.uniform(1, 30))
        writer.status(f"run-{n:05d}", task, "TRIGGER", ts=trigger, trigger_time=trigger)
        writer.status(f"run-{n:05d}", task, "RUNNING", agent=agent, ts=start, trigger_time=trigger)
        writer.status(f"run-{n:05d}", task, "FAILED" if n % 17 == 0 else "SUCCESS", agent=agent,
                      ts=start + dt.timedelta(seconds=rng.uniform(60, 300)), trigger_time=trigger)


def browser(spool: Path, index: Path, runs: int, samples: int) -> dict[str, list[float]]:
    """Seconds from a reload of /timeline to its bars drawn, and from a click on "agent" to them
    redrawn in their agents' rows, `samples` times each after a first visit; each split in two:
    until the page's HTML (its models in it) arrived and after, until the new data was in the
    browser and after."""
    from playwright.sync_api import sync_playwright

    by_task = BARS_DRAWN.format(runs=runs, agent="!=")
    by_agent = BARS_DRAWN.replace("data.agent[0] {agent} v.model.data_source.data.task[0]",
                                  "data.y0[0] < {agents}").format(runs=runs, agents=AGENTS)
    no_bars = ("() => window.Bokeh && Bokeh.index.query_one(v => v.model.data_source != null && "
               "v.model.data_source.data.part != null) != null")
    times: dict[str, list[float]] = {name: [] for name in ("empty", "reload", "html", "drawn", "redraw", "data",
                                                           "redrawn")}
    with server(spool, index) as (url, _process, _output), sync_playwright() as playwright:
        page = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS).new_page(
            viewport={"width": 1920, "height": 1080})
        page.goto(f"{url}/timeline")  # a first visit warms the server's imports
        page.wait_for_function(by_task, timeout=120_000)
        for _ in range(samples):
            start = time.perf_counter()  # the same page with no bars (no run is RUNNING): its own cost
            page.goto(f"{url}/timeline?status=RUNNING")
            page.wait_for_function(no_bars, timeout=120_000)
            page.evaluate(FRAMES)
            times["empty"].append(time.perf_counter() - start)
            start = time.perf_counter()
            page.goto(f"{url}/timeline")
            page.wait_for_function(by_task, timeout=120_000)
            page.evaluate(FRAMES)
            times["reload"].append(time.perf_counter() - start)
            html, drawn = page.evaluate("() => [performance.getEntriesByType('navigation')[0].responseEnd, "
                                        "performance.now()]")
            times["html"].append(html / 1000)
            times["drawn"].append((drawn - html) / 1000)
            page.evaluate(WATCH_DATA)
            clicked = page.evaluate("() => performance.now()")
            start = time.perf_counter()
            page.get_by_role("button", name="agent").click()
            page.wait_for_function(by_agent, timeout=120_000)
            page.evaluate(FRAMES)
            times["redraw"].append(time.perf_counter() - start)
            data, drawn = page.evaluate("() => [window.benchData, performance.now()]")
            times["data"].append((data - clicked) / 1000)
            times["redrawn"].append((drawn - data) / 1000)
    return times


def plot_update(index: Index, samples: int) -> tuple[list[float], list[float], int]:
    """The server's side of a click on "agent" (or "task"): seconds to query and update the plot's
    Bokeh models (HoloViews), seconds to serialise the message, and its bytes."""
    import holoviews as hv
    import panel as pn
    from bokeh.document import Document
    from bokeh.protocol import Protocol

    from dashboard.config import Config
    from dashboard.hub import Hub
    from dashboard.store import Links, Store

    hv.extension("bokeh")
    timeline = RunTimeline(store=Store(index, Hub(), Config(), Links(Config().routes)))
    document, events = Document(), []
    document.add_root(pn.panel(timeline).get_root(document))
    document.callbacks.on_change(events.append)
    updates, serialised, size = [], [], 0
    for n in range(samples + 1):
        events.clear()
        start = time.perf_counter()
        timeline.by = "agent" if n % 2 == 0 else "task"
        updated = time.perf_counter()
        message = Protocol().create("PATCH-DOC", events)
        size = len(message.content_json) + sum(len(buffer.to_bytes()) for buffer in message.buffers)
        if n:  # the first warms up
            updates.append(updated - start)
            serialised.append(time.perf_counter() - updated)
    return updates, serialised, size


def figures(folder: Path, sizes: Sizes) -> list[Row]:
    runs = MAX_RUNS if sizes.name == "full" else 1_000  # the quick size checks that it works
    spool, index_path = folder / "timeline-spool", folder / "timeline-index.duckdb"
    for stale in (index_path, Path(f"{index_path}.wal")):
        stale.unlink(missing_ok=True)
    if spool.exists():  # its runs are dated from when they were written: write them anew
        import shutil
        shutil.rmtree(spool)
    say(f"timeline: writing {runs:,} runs...")
    write_runs(spool, runs)
    index = Index(index_path, fallback_to_private=False)
    Ingestor(index, spool).catch_up()
    query = TimelineQuery()

    def server_side():
        now = utcnow()
        return timeline_rows(queries.timeline_runs(index, query.run_filter(), limit=MAX_RUNS + 1, now=now), "task", now)

    server_times, (_, bars, _) = timed(server_side, sizes.repeat)
    updates, serialised, size = plot_update(index, sizes.repeat)
    index.close()
    if len(bars) != runs:
        raise RuntimeError(f"the timeline has {len(bars)} bars, not {runs}")
    say("timeline: measuring Chromium...")
    times = browser(spool, index_path, runs, sizes.heavy_repeat)
    name = f"timeline, {runs:,} runs, {TASKS} tasks"
    return [
        timing_row(f"{name}: query and bars, server side", server_times, None, "", None, None, None),
        timing_row(f"{name}: query, bars and the plot's update (HoloViews), server side", updates, None, "",
                   None, None, None),
        timing_row(f"{name}: the update's message serialised, server side", serialised, None, "", None, None, None),
        (f"{name}: the update's message, bytes", f"{size / 1e6:.2f} MB", "", "", "", ""),
        timing_row(f"{name}: reload → bars drawn in Chromium (baseline: the page with no bars)", times["reload"],
                   times["empty"], "", None, None, None),
        timing_row(f"{name}: … reload → the page's HTML (the server builds the page)", times["html"], None, "",
                   None, None, None),
        timing_row(f"{name}: … HTML → bars drawn (BokehJS loads and draws)", times["drawn"], None, "",
                   None, None, None),
        timing_row(f"{name}: rows per agent clicked → bars redrawn in Chromium", times["redraw"], None,
                   "≤ 1 s", 1000, None, None),
        timing_row(f"{name}: … click → new data in the browser (the server's side, the network)", times["data"],
                   None, "", None, None, None),
        timing_row(f"{name}: … new data → bars drawn (BokehJS)", times["redrawn"], None, "", None, None, None),
    ]
