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
