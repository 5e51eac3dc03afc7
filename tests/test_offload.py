"""A view's work off the event loop (dashboard.components.offload) reaches whoever holds the page."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pandas as pd
import panel as pn
from bokeh.client import pull_session
from tornado.ioloop import IOLoop

from dashboard.components import offload
from helpers import wait_until
from serving import on_client_loop, served_component


def shown_tasks(document) -> list[str]:
    return [task for model in list(document.models) if type(model).__name__ == "ColumnDataSource"
            for task in model.data.get("task", [])]


def opened(url: str) -> tuple[IOLoop, object]:
    loop = IOLoop()
    return loop, pull_session(url=url, io_loop=loop)


def test_below_the_fold_work_for_a_page_nobody_drew_starts_late_and_reaches_a_client_that_only_pulled_it(
        monkeypatch):
    """A Bokeh client session never says it drew the page: the work starts after UNDRAWN_WAIT (it
    would take a core from a browser's first paint), and its result reaches the client then."""
    monkeypatch.setattr(offload, "UNDRAWN_WAIT", 1.0)
    times = {}

    def compute():
        times["started"] = time.monotonic()
        return pd.DataFrame({"task": ["computed on the worker"]})

    def build():
        shown = pn.widgets.Tabulator(pd.DataFrame({"task": ["waiting"]}))
        times["built"] = time.monotonic()
        went_off = offload.off_the_loop(compute, lambda rows: setattr(shown, "value", rows), after_first_paint=True)
        assert went_off, "in a server session the work goes to the worker"
        return shown

    with served_component(build) as url:
        # Opened on another thread: pull_session runs its own event loop until connected, which it
        # cannot do on a thread where another loop runs (Playwright's, in the suite).
        with concurrent.futures.ThreadPoolExecutor(1) as opener:
            loop, session = opener.submit(opened, url).result(timeout=60)
        reader = threading.Thread(target=session._loop_until_closed, daemon=True)
        reader.start()
        try:
            wait_until(lambda: "computed on the worker" in on_client_loop(loop, lambda: shown_tasks(session.document), 30),
                       timeout=15, message="the worker's result at the client")
            assert times["started"] - times["built"] >= offload.UNDRAWN_WAIT
        finally:
            loop.add_callback(session.close)
            reader.join(10)


def test_settle_drops_the_work_not_started_and_waits_for_the_work_under_way():
    """What a server does before it closes its index: no work reads it after."""
    started, release, ran = threading.Event(), threading.Event(), []

    def under_way() -> None:
        started.set()
        release.wait(10)
        ran.append("under way")

    offload._submit(under_way)
    offload._submit(lambda: ran.append("not started"))
    assert started.wait(10)
    threading.Timer(0.2, release.set).start()
    offload.settle(timeout=10)
    assert ran == ["under way"]  # done before settle returned; the other one dropped
    assert not offload._outstanding
    after = threading.Event()
    offload._submit(after.set)  # the worker takes new work afterwards
    assert after.wait(10)
