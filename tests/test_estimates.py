"""Finish-time estimates and late runs (dashboard.estimates), on a synthetic history whose
duration distributions are known."""

from __future__ import annotations

import datetime as dt
import math
import random

import numpy as np
import pandas as pd
import pytest
from builders import ingest

from dashboard import queries
from dashboard.components.runs_table import grid_rows
from dashboard.estimates import cycle_end, expected_duration, page_estimates, running_estimates
from dashboard.queries import RunFilter
from dashboard.spool import SpoolWriter

NOW = dt.datetime(2026, 11, 28, 12, 0)
SIGMA = 0.15  # log-normal spread of every task's durations
# Each task's median seconds, and how much slower each agent is (agent-2 is slow for two tasks).
TASKS = {"Extract": 40, "Transform": 90, "Load": 300, "Report": 20, "Vacuum": 600, "Notify": 5}
SLOW = {("Transform", "agent-2"): 1.8, ("Load", "agent-2"): 1.6}
AGENTS = ("agent-1", "agent-2", "agent-3")


def median_of(task: str, agent: str) -> float:
    return TASKS[task] * SLOW.get((task, agent), 1.0)


def p90_of(task: str, agent: str) -> float:
    return median_of(task, agent) * math.exp(1.2816 * SIGMA)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A week of successful runs, then running runs: some half-way through their (hidden) duration,
    some at a random point of a duration up to twice their median."""
    folder, rng = tmp_path_factory.mktemp("estimates"), random.Random(21)
    writer = SpoolWriter(folder / "spool", "test")
    truth: dict[str, tuple[str, str, float, float]] = {}  # run -> task, agent, true duration, elapsed now
    n = 0
    for task in TASKS:
        for agent in AGENTS:
            for _ in range(50):
                seconds = rng.lognormvariate(math.log(median_of(task, agent)), SIGMA)
                started = NOW - dt.timedelta(hours=rng.uniform(2, 160))
                writer.status(f"h-{n}", task, "RUNNING", agent=agent, ts=started, trigger_time=started)
                writer.status(f"h-{n}", task, "SUCCESS", agent=agent, ts=started + dt.timedelta(seconds=seconds),
                              trigger_time=started)
                n += 1
            for kind in ("half", "any") * 25:
                seconds = rng.lognormvariate(math.log(median_of(task, agent)), SIGMA)
                elapsed = seconds / 2 if kind == "half" else rng.uniform(0, 2 * median_of(task, agent))
                started = NOW - dt.timedelta(seconds=elapsed)
                writer.status(f"{kind}-{n}", task, "RUNNING", agent=agent, ts=started, trigger_time=started)
                truth[f"{kind}-{n}"] = (task, agent, seconds, elapsed)
                n += 1
    index = ingest(folder)
    yield index, truth
    index.close()


def test_half_way_through_the_estimate_is_within_15_percent_in_the_median(world):
    index, truth = world
    estimates = running_estimates(index, NOW).set_index("run_id")
    errors = []
    for run_id, (task, agent, seconds, elapsed) in truth.items():
        if run_id.startswith("half"):
            row = estimates.loc[run_id]
            estimated = (row["expected_finish"] - (NOW - dt.timedelta(seconds=elapsed))).total_seconds()
            errors.append(abs(estimated - seconds) / seconds)
            assert row["finish_low"] <= row["expected_finish"] <= row["finish_high"]
    print(f"\n{len(errors)} runs half-way: median error {np.median(errors):.1%}, p90 {np.quantile(errors, 0.9):.1%}")
    assert np.median(errors) <= 0.15


def test_late_flags_agree_with_the_true_90th_percentile(world):
    index, truth = world
    estimates = running_estimates(index, NOW).set_index("run_id")
    checked = [(bool(estimates.loc[run_id, "late"]), elapsed > p90_of(task, agent))
               for run_id, (task, agent, _, elapsed) in truth.items() if run_id.startswith("any")]
    agreement = sum(flag == true for flag, true in checked) / len(checked)
    print(f"\n{len(checked)} runs: {sum(true for _, true in checked)} truly late, "
          f"{sum(flag for flag, _ in checked)} flagged, agreement {agreement:.1%}")
    assert agreement >= 0.95
    assert any(flag for flag, _ in checked) and not all(flag for flag, _ in checked)


def test_a_run_past_its_whole_history_may_end_any_moment():
    history = np.array([10.0, 11, 12, 13, 14])
    assert expected_duration(history, 20) == (20, 20, 20)
    expected, low, high = expected_duration(history, 11.5)
    assert 11.5 < low <= expected <= high <= 14


def test_a_cycle_ends_when_its_critical_path_of_remaining_tasks_does(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.define_task("A", "g")
    writer.define_task("B", "g", depends_on=["A"])
    writer.define_task("C", "g", depends_on=["A"])
    writer.define_task("D", "g", depends_on=["B", "C"])
    n = 0
    for task, seconds in {"A": 60, "B": 100, "C": 30, "D": 10}.items():
        for day in range(6):
            started = NOW - dt.timedelta(days=day + 1)
            writer.status(f"p-{n}", task, "RUNNING", ts=started, trigger_time=started)
            writer.status(f"p-{n}", task, "SUCCESS", ts=started + dt.timedelta(seconds=seconds), trigger_time=started)
            n += 1
    cycle = NOW - dt.timedelta(seconds=30)
    writer.status("a", "A", "RUNNING", ts=cycle, trigger_time=cycle)  # A half-way: 30 s left
    for task in "BCD":
        writer.status(task.lower(), task, "ACTIVE", ts=cycle, trigger_time=cycle)
    index = ingest(tmp_path)
    try:
        end = cycle_end(index, cycle, NOW)
    finally:
        index.close()
    assert end == NOW + dt.timedelta(seconds=30 + 100 + 10)  # A's rest, then B (longer than C), then D


def test_the_runs_page_and_the_grid_carry_the_estimate(world):
    index, truth = world
    late = next(run_id for run_id, (task, agent, _, elapsed) in truth.items()
                if run_id.startswith("any") and elapsed > 1.5 * p90_of(task, agent))
    waiting = next(run_id for run_id, (task, agent, _, elapsed) in truth.items()
                   if run_id.startswith("any") and elapsed < 0.5 * median_of(task, agent))
    page = queries.runs_page(index, limit=10**6, now=NOW).query("run_id in @late or run_id in @waiting")
    rows = grid_rows(page).set_index("run_id")
    assert rows.loc[late, "late"] and not rows.loc[waiting, "late"]
    for run_id in (late, waiting):
        assert rows.loc[run_id, "finished"].startswith("≈ ") and "expected to finish between" in rows.loc[run_id, "expected"]
    finished = grid_rows(queries.runs_page(index, RunFilter(statuses=("SUCCESS",)), limit=1, now=NOW)).iloc[0]
    assert not finished["late"] and finished["expected"] == "" and not finished["finished"].startswith("≈")


def test_quantile_of_sorted_values_is_numpy_s_to_the_last_bit():
    from dashboard.estimates import quantile

    rng = np.random.default_rng(7)
    for size in range(1, 80):
        ordered = np.sort(rng.exponential(120.0, size))
        for share in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
            assert quantile(ordered, share) == float(np.quantile(ordered, share)), (size, share)


def test_a_page_of_runs_gets_the_estimates_of_its_running_runs_to_the_microsecond(world):
    index, truth = world
    page = queries.runs_page(index, limit=10**6, now=NOW)
    columns = page_estimates(index, page, NOW)
    expected = running_estimates(index, NOW, page).set_index("run_id")
    assert expected["expected_finish"].notna().sum() > 10
    for row, run_id in enumerate(page["run_id"]):
        if run_id in expected.index:
            estimate = expected.loc[run_id]
            times = ("expected_finish", "finish_low", "finish_high")
            assert [str(columns[name][row].astype("datetime64[us]")) for name in times] + [bool(columns["late"][row])] \
                == [str(np.datetime64(estimate[name], "us")) if pd.notna(estimate[name]) else "NaT" for name in times] \
                + [bool(estimate["late"])], run_id
        else:
            assert np.isnat(columns["expected_finish"][row]) and not columns["late"][row]


def test_histories_grown_old_are_given_as_kept_while_a_thread_of_their_own_reads_them_again(tmp_path, monkeypatch):
    import threading

    from helpers import wait_until

    from dashboard import estimates
    from dashboard.index import Index
    from dashboard.ingest import Ingestor

    writer = SpoolWriter(tmp_path / "spool", "test")
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, tmp_path / "spool")

    def succeed(n: int) -> None:
        started = NOW - dt.timedelta(hours=n + 1)
        writer.status(f"r-{n}", "Extract", "RUNNING", agent="a", ts=started, trigger_time=started)
        writer.status(f"r-{n}", "Extract", "SUCCESS", agent="a", ts=started + dt.timedelta(seconds=10 + n))
        ingestor.catch_up()

    readers: list[str] = []
    real = estimates.histories
    monkeypatch.setattr(estimates, "histories", lambda *args: readers.append(threading.current_thread().name)
                        or real(*args))
    for n in range(6):
        succeed(n)
    assert len(estimates.recent_histories(index, [("Extract", "a")])[("Extract", None)]) == 6
    succeed(6)
    assert len(estimates.recent_histories(index, [("Extract", "a")])[("Extract", None)]) == 6, "kept HISTORY_SECONDS"
    assert readers == [threading.current_thread().name]
    monkeypatch.setattr(estimates, "HISTORY_SECONDS", 0.0)
    assert len(estimates.recent_histories(index, [("Extract", "a")])[("Extract", None)]) == 6, "old: given as kept"
    wait_until(lambda: len(estimates.recent_histories(index, [("Extract", "a")])[("Extract", None)]) == 7, timeout=30,
               message="the histories were never read again")
    assert readers[0] == threading.current_thread().name and readers[1].startswith("taskdash-histories")
    writer.close()
    index.close()


def test_histories_are_kept_task_by_task_so_a_finished_run_costs_no_read(tmp_path, monkeypatch):
    """A run that finishes changes the set of running tasks: a set whose tasks were all read before
    is answered from what is kept, and a new task among known ones is the only one read."""
    from dashboard import estimates

    writer = SpoolWriter(tmp_path / "spool", "test")
    for n in range(15):
        task = ("Extract", "Transform", "Load")[n % 3]
        started = NOW - dt.timedelta(hours=n + 1)
        writer.status(f"r-{n}", task, "RUNNING", agent="a", ts=started, trigger_time=started)
        writer.status(f"r-{n}", task, "SUCCESS", agent="a", ts=started + dt.timedelta(seconds=10 + n))
    writer.close()
    index = ingest(tmp_path)
    asked: list[list[str]] = []
    real = estimates.histories
    monkeypatch.setattr(estimates, "histories", lambda index, keys: asked.append(list(keys)) or real(index, keys))

    both = estimates.recent_histories(index, [("Extract", "a"), ("Transform", None)])
    assert sorted(task for task, agent in both if agent is None) == ["Extract", "Transform"]
    one = estimates.recent_histories(index, [("Transform", None)])
    assert {key: list(durations) for key, durations in one.items()} \
        == {key: list(durations) for key, durations in both.items() if key[0] == "Transform"}
    three = estimates.recent_histories(index, [("Extract", None), ("Load", "a"), ("Nightly", "a")])  # Nightly: never ran
    assert asked == [[("Extract", None), ("Extract", "a"), ("Transform", None)],
                     [("Load", None), ("Load", "a"), ("Nightly", None), ("Nightly", "a")]]
    assert sorted(task for task, agent in three if agent is None) == ["Extract", "Load"]
    estimates.recent_histories(index, [("Nightly", "a"), ("Extract", float("nan"))])
    assert len(asked) == 2, "a task without history is kept too, and a run without an agent asks for none"
    estimates.recent_histories(index, [("Extract", "b"), ("Transform", None)])
    assert asked[2:] == [[("Extract", None), ("Extract", "a"), ("Extract", "b")]], \
        "a new agent of a kept task reads that task again, with the agents read before"
    index.close()


def test_a_history_is_the_latest_successful_runs_by_their_finish_of_the_task_and_of_each_agent(tmp_path):
    """Older runs beyond HISTORY_RUNS, failed runs and running ones are not in it."""
    from dashboard import estimates

    writer = SpoolWriter(tmp_path / "spool", "test")
    count = 2 * estimates.HISTORY_RUNS + 10  # each agent has more than a history too
    for n in range(count):  # run n finishes n hours before NOW and took n + 1 seconds
        finished = NOW - dt.timedelta(hours=n)
        agent = "a" if n % 2 else "b"
        started = finished - dt.timedelta(seconds=n + 1)
        writer.status(f"r-{n}", "Extract", "RUNNING", agent=agent, ts=started, trigger_time=started)
        writer.status(f"r-{n}", "Extract", "SUCCESS", agent=agent, ts=finished)
    writer.status("r-failed", "Extract", "RUNNING", agent="a", ts=NOW - dt.timedelta(seconds=100))
    writer.status("r-failed", "Extract", "FAILED", agent="a", ts=NOW - dt.timedelta(seconds=1))
    writer.status("r-running", "Extract", "RUNNING", agent="a", ts=NOW - dt.timedelta(seconds=1))
    writer.close()
    index = ingest(tmp_path)
    try:
        found = estimates.histories(index, [("Extract", "a"), ("Extract", "b")], now=NOW)
    finally:
        index.close()
    latest = range(estimates.HISTORY_RUNS)
    assert list(found[("Extract", None)]) == [n + 1.0 for n in latest]
    assert list(found[("Extract", "a")]) == [n + 1.0 for n in range(1, count, 2)][:estimates.HISTORY_RUNS]
    assert list(found[("Extract", "b")]) == [n + 1.0 for n in range(0, count, 2)][:estimates.HISTORY_RUNS]


def test_a_history_looks_back_as_far_as_the_task_and_each_agent_asked_for_need(tmp_path, monkeypatch):
    """The last day holds more than a history of the task, on agent a; agent b ran it only a month
    ago and agent c a year ago: each still gets its own runs, and asking for the task and agent a
    alone reads the last day only."""
    from dashboard import estimates

    writer = SpoolWriter(tmp_path / "spool", "test")
    runs = [(f"a-{n}", "a", NOW - dt.timedelta(minutes=10 * n), n + 1) for n in range(estimates.HISTORY_RUNS + 10)]
    runs += [(f"b-{n}", "b", NOW - dt.timedelta(days=30 + n), 100 + n) for n in range(12)]
    runs += [(f"c-{n}", "c", NOW - dt.timedelta(days=400 + n), 500 + n) for n in range(3)]
    for run_id, agent, finished, seconds in runs:
        started = finished - dt.timedelta(seconds=seconds)
        writer.status(run_id, "Extract", "RUNNING", agent=agent, ts=started, trigger_time=started)
        writer.status(run_id, "Extract", "SUCCESS", agent=agent, ts=finished)
    writer.close()
    index = ingest(tmp_path)
    looked_back: list = []
    real = estimates._latest_durations
    monkeypatch.setattr(estimates, "_latest_durations", lambda index, tasks, since: looked_back.append(since)
                        or real(index, tasks, since))
    try:
        found = estimates.histories(index, [("Extract", None), ("Extract", "a"), ("Extract", "b"), ("Extract", "c")],
                                    now=NOW)
        assert looked_back == [NOW - span if span else None for span in estimates.LOOK_BACK]
        looked_back.clear()
        recent = estimates.histories(index, [("Extract", "a")], now=NOW)
    finally:
        index.close()
    latest = [n + 1.0 for n in range(estimates.HISTORY_RUNS)]
    assert list(found[("Extract", None)]) == latest and list(found[("Extract", "a")]) == latest
    assert list(found[("Extract", "b")]) == [100.0 + n for n in range(12)]
    assert list(found[("Extract", "c")]) == [500.0, 501.0, 502.0]
    assert looked_back == [NOW - estimates.LOOK_BACK[0]]
    assert {key: list(durations) for key, durations in recent.items()} \
        == {key: list(durations) for key, durations in found.items() if key[1] in (None, "a")}
