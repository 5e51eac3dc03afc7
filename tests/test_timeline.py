"""The timeline's bars from runs: waits and runs, their ends, and the rows' order."""

from __future__ import annotations

import pandas as pd

from dashboard.components.run_timeline import timeline_rows

NOW = pd.Timestamp("2026-12-02 12:00:00")


def at(minute: int | None):
    return pd.NaT if minute is None else NOW - pd.Timedelta(minutes=60 - minute)


def test_a_run_waits_from_trigger_to_start_and_runs_to_its_end_or_now():
    runs = pd.DataFrame({
        "run_id": ["done", "running", "blocked", "queued"], "task": ["b_load", "A_extract", "c_report", "b_load"],
        "agent": ["agent-1", None, None, None], "status": ["SUCCESS", "RUNNING", "TERMINATED", "TRIGGER"],
        "trigger_time": [at(0), at(10), at(20), at(50)], "started": [at(2), at(11), at(None), at(None)],
        "finished": [at(5), at(None), at(30), at(None)]})
    waits, bars, labels = timeline_rows(runs, "task", NOW)
    assert labels == ["A_extract", "b_load", "c_report"], "rows in name order, any case, the first on top"
    assert list(bars["run_id"]) == ["done", "running"], "only runs that started have a run bar"
    assert list(bars["x1"]) == [at(5), NOW], "a running run's bar reaches now"
    assert list(waits["x1"]) == [at(2), at(11), at(30), NOW], "a wait ends at the start, else the end, else now"
    assert dict(zip(waits["run_id"], waits["y0"])) == {"done": 1.0, "running": 2.0, "blocked": 0.0, "queued": 1.0}
    assert list(bars["seconds"]) == [180.0, 2940.0] and list(waits["seconds"])[:2] == [120.0, 60.0]
    _, by_agent, agents = timeline_rows(runs, "agent", NOW)
    assert agents == ["(no agent)", "agent-1"]


def test_each_page_has_its_own_plot_and_a_refresh_sends_the_bars_once(tmp_path):
    """Two pages at once serialise (a colour map shared between documents broke the second);
    a refresh sends each part's bars once (not again column by column) and leaves one tap tool."""
    import datetime as dt

    import holoviews as hv
    import panel as pn
    from bokeh.document import Document
    from bokeh.models import TapTool
    from bokeh.protocol import Protocol
    from builders import ingest

    from dashboard.components.run_timeline import RunTimeline
    from dashboard.config import Config
    from dashboard.formatting import utcnow
    from dashboard.hub import Hub
    from dashboard.spool import SpoolWriter
    from dashboard.store import Links, Store

    hv.extension("bokeh", logo=False)
    writer, now = SpoolWriter(tmp_path / "spool", "t"), utcnow()
    for n, status in enumerate(["SUCCESS", "FAILED", "RUNNING"]):
        trigger = now - dt.timedelta(minutes=30 - n)
        writer.status(f"r-{n}", f"task_{n}", "TRIGGER", ts=trigger, trigger_time=trigger)
        writer.status(f"r-{n}", f"task_{n}", "RUNNING", agent="a-1", ts=trigger + dt.timedelta(seconds=5),
                      trigger_time=trigger)
        if status != "RUNNING":
            writer.status(f"r-{n}", f"task_{n}", status, agent="a-1", ts=trigger + dt.timedelta(minutes=2),
                          trigger_time=trigger)
    with Store(ingest(tmp_path), Hub(), Config(), Links(Config().routes)) as store:
        timelines, documents = [RunTimeline(store=store), RunTimeline(store=store)], [Document(), Document()]
        for timeline, document in zip(timelines, documents):
            document.add_root(pn.panel(timeline).get_root(document))
        for document in documents:
            Protocol().create("PULL-DOC-REPLY", "request", document)  # raised for the second page
        events = []
        documents[0].callbacks.on_change(events.append)
        timelines[0].by = "agent"
        timelines[0].refresh()
        sent = [event for event in events if type(event).__name__ == "ColumnDataChangedEvent"]
        assert sorted(len(event.model.data["run_id"]) for event in sent) == [3] * 4, "each part once a refresh, two refreshes"
        assert all(set(event.cols) >= {"run_id", "status", "x0", "x1"} for event in sent), "whole, not column by column"
        taps = [tool for model in documents[0].roots for tool in model.select({"type": TapTool})]
        assert len(taps) == 1, "one tap tool, however often the bars are redrawn"
