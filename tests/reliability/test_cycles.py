"""Task cycles do not freeze the server (issue 23): with 1,500 tasks that each depend on
themselves, /tasks builds in seconds and the event loop keeps answering meanwhile.

It answered /liveness after 78 s once, as the cycle search copied the graph once per cycle on the
event loop. With the search linear, the page's first build still ran there: about 0.9 s of
analysis and 1.9 s of HoloViews building Bokeh models, /liveness waiting up to 1.3–2.2 s on the
shared machine (6.3 s with a load test beside it). Now the graph is laid out and built on a
worker thread: the page arrives at once, saying what it lays out, and the graph follows.
"""

from __future__ import annotations

import statistics
import threading
import time

from playwright.sync_api import Page, expect
from serving import dashboard_server
from test_access import page_token, pull_document, request

from dashboard.spool import SpoolWriter

TASKS = 1500
#: The slowest /liveness answer while /tasks builds may reach that of the light /task-runs page's first
#: build in the same run (the page's frame: its models and HTML, on the loop for every page) times
#: this factor, or one second. Before, the graph's layout and models were on the loop too: /tasks's
#: slowest answer was 1.3 s on a quiet machine, 2.1 s with the load average at 10 (/task-runs: 0.4–0.7 s).
FRAME_FACTOR, WORST_LIVENESS = 2.0, 1.0
#: Each page is built this many times; /tasks is judged by its best build (a neighbour's burst of
#: work on the shared machine can stall any one), /task-runs by its worst.
BUILDS = 2
#: The median answer: the loop is free for most of the build.
MEDIAN_LIVENESS = 0.1


def liveness_while(base: str, build) -> tuple[float, list[float]]:
    """Seconds `build()` took, and each /liveness answer's seconds, asked one after another meanwhile."""
    answers: list[float] = []
    building = threading.Event()

    def poll() -> None:
        while building.is_set():
            start = time.monotonic()
            assert request(base + "/liveness").status == 200
            answers.append(time.monotonic() - start)

    building.set()
    poller = threading.Thread(target=poll)
    poller.start()
    try:
        start = time.monotonic()
        build()
        return time.monotonic() - start, answers
    finally:
        building.clear()
        poller.join()


def figures(answers: list[float]) -> str:
    return (f"{len(answers)} answers, median {statistics.median(answers) * 1000:,.0f} ms, "
            f"slowest {max(answers) * 1000:,.0f} ms")


def test_the_event_loop_answers_while_tasks_with_1500_self_loops_is_built(tmp_path, page: Page):
    writer = SpoolWriter(tmp_path / "spool", "cycles")
    for n in range(TASKS):
        writer.define_task(f"Loop_{n:04}", depends_on=[f"Loop_{n:04}"])
    with dashboard_server(tmp_path) as server:
        base = server.url
        server.wait_for_output("index caught up with the spool", timeout=120)

        def tasks() -> None:
            page.goto(f"{base}/tasks")
            expect(page.get_by_text("1,490 more cycles")).to_be_visible(timeout=120_000)

        def task_runs() -> None:
            page.goto(f"{base}/task-runs")
            expect(page.get_by_text("No runs in the last 24h.")).to_be_visible(timeout=120_000)

        for first_visit in (tasks, task_runs):  # the server's first pages load its code
            first_visit()
        frames, builds = [], []
        for _ in range(BUILDS):
            frame_seconds, frame = liveness_while(base, task_runs)
            print(f"\n/task-runs (no runs) drawn in Chromium in {frame_seconds:.1f} s; /liveness meanwhile: "
                  f"{figures(frame)}")
            seconds, liveness = liveness_while(base, tasks)
            print(f"/tasks with {TASKS:,} self-looping tasks drawn in Chromium in {seconds:.1f} s; /liveness "
                  f"meanwhile: {figures(liveness)}")
            frames.append(max(frame))
            builds.append(liveness)
        best = min(builds, key=max)
        assert max(best) < max(WORST_LIVENESS, FRAME_FACTOR * max(frames))
        assert statistics.median(best) < MEDIAN_LIVENESS
        expect(page.get_by_text("Laying out")).to_be_hidden()

        # A client without a browser gets the page's frame at once; its table and graph follow over the websocket.
        start = time.monotonic()
        document = pull_document(base, "/tasks/ws", base, token=page_token(base, "/tasks"),
                                 until=lambda text: "Loop_0000" in text and "1,490 more cycles" in text)
        print(f"a plain client's document with the table and the graph: {time.monotonic() - start:.1f} s")
        assert document.index("Tasks &amp;amp; Groups") < document.index("Loop_0000")  # the title came first
