"""Task cycles do not freeze the server (issue 23): with 1,500 tasks that each depend on
themselves, /tasks builds in seconds and /liveness keeps answering meanwhile (it answered
after 78 s, as the cycle search copied the graph once per cycle on the event loop)."""

from __future__ import annotations

import statistics
import threading
import time

from serving import dashboard_server
from test_access import page_token, pull_document, request
from helpers import wait_until

from dashboard.spool import SpoolWriter

TASKS = 1500
#: /liveness may wait this long behind a page build (the issue measured 78 s; here the cycle
#: search alone took 30 s). The build of the page itself (mostly HoloViews' Bokeh models, about
#: 2 s) still runs on the event loop: 2.2 s on the shared machine, 6.3 s with a load test beside it.
LIVENESS_LIMIT = 15.0


def test_liveness_answers_while_tasks_with_1500_self_loops_is_built(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "cycles")
    for n in range(TASKS):
        writer.define_task(f"Loop_{n:04}", depends_on=[f"Loop_{n:04}"])
    with dashboard_server(tmp_path) as server:
        base = server.url

        def tasks_document() -> str:
            return pull_document(base, "/tasks/ws", base, token=page_token(base, "/tasks"))

        wait_until(lambda: f"Loop_{TASKS - 1:04}" in tasks_document(), timeout=120, interval=0.5,
                   message="the server to index the task definitions")
        built: dict[str, float | str] = {}

        def build() -> None:
            start = time.monotonic()
            built["document"] = tasks_document()
            built["seconds"] = time.monotonic() - start

        liveness = []
        builder = threading.Thread(target=build)
        builder.start()
        while builder.is_alive():
            start = time.monotonic()
            assert request(base + "/liveness").status == 200
            liveness.append(time.monotonic() - start)
        builder.join()
        print(f"\n/tasks with {TASKS:,} self-looping tasks built and pulled in {built['seconds']:.1f} s; /liveness "
              f"meanwhile: {len(liveness)} answers, median {statistics.median(liveness) * 1000:,.0f} ms, "
              f"slowest {max(liveness) * 1000:,.0f} ms")
        assert "1,490 more cycles" in built["document"] or "1\\\\,490 more cycles" in built["document"]
        assert max(liveness) < LIVENESS_LIMIT
