"""A task's latest run: the latest by trigger time, then start, then last event.

Retries often share their first try's trigger time (Airflow's logical date works that way).
A real spool of 40 retried tasks in a chain, ingested into a real DuckDB file; the expected
latest run of each task is worked out here in plain Python from what was written, and every
reader (the tasks table's stats, the graph's analysis, the CLI's newest-first order) must agree.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys

import pytest
from builders import ingest

from dashboard import queries
from dashboard.graph_view import analyse
from dashboard.graph import dependency_graph
from dashboard.spool import SpoolWriter

NOW = queries.utcnow().replace(microsecond=0)
TASKS = [f"model.analytics.step_{n:02d}" for n in range(40)]
#: How each task's runs go: (status reached, seconds from trigger to start or None, seconds to last event)
SHAPES = {
    "retry succeeded, started later": [("FAILED", 5, 60), ("SUCCESS", 90, 150)],
    "retry waiting, not started": [("FAILED", 5, 60), ("ACTIVE", None, 70)],
    "same start, later last event": [("FAILED", 5, 30), ("SUCCESS", 5, 40)],
    "an older trigger retried": [("SUCCESS", 5, 9)],  # plus a later trigger below
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("latest")
    rng = random.Random(15)
    writer = SpoolWriter(folder / "spool", "test")
    plan = {}  # task -> [(trigger, started, updated, run_id, status)]
    for n, task in enumerate(TASKS):
        writer.define_task(task, "analytics", [TASKS[n - 1]] if n else [])
        shape = list(SHAPES)[n % len(SHAPES)]
        trigger = NOW - dt.timedelta(hours=1, minutes=n)
        tries = list(SHAPES[shape])
        triggers = [trigger] * len(tries)
        if shape == "an older trigger retried":
            tries.append(("FAILED", 2, 4))
            triggers.append(trigger + dt.timedelta(minutes=5))
        # Run ids in random order, so that the id alone cannot pick the right one.
        ids = rng.sample(range(1000), len(tries))
        for (status, start, last), at, number in zip(tries, triggers, ids):
            run_id = f"r-{n:02d}-{number:03d}"
            started = None if start is None else at + dt.timedelta(seconds=start)
            events = [("TRIGGER", at)] + ([("RUNNING", started)] if started else [])
            events.append((status, at + dt.timedelta(seconds=last)))
            for event, ts in events:
                writer.status(run_id, task, event, ts=ts, trigger_time=at)
            plan.setdefault(task, []).append((at, started or dt.datetime.max, events[-1][1], run_id, status))
    writer.close()
    index = ingest(folder)
    expected = {task: max(runs)[4] for task, runs in plan.items()}
    yield index, expected, folder
    index.close()


def test_the_fixture_has_retries_whose_first_try_failed_with_the_same_trigger_time(world):
    _, expected, _ = world
    assert sorted(set(expected.values())) == ["ACTIVE", "FAILED", "SUCCESS"]


def test_task_stats_take_the_latest_run_by_trigger_then_start_then_last_event(world):
    index, expected, _ = world
    stats = queries.task_stats(index, dt.timedelta(hours=24), now=NOW)
    assert dict(zip(stats["task"], stats["last_status"])) == expected


def test_the_graph_colours_and_root_causes_follow_the_same_latest_run(world):
    index, expected, _ = world
    tasks = queries.tasks(index)
    state = analyse(dependency_graph(zip(tasks["task"], tasks["grp"], tasks["depends_on"])),
                    queries.task_stats(index, dt.timedelta(hours=24), now=NOW))
    assert state.status == expected
    failed = [task for task in TASKS if expected[task] == "FAILED"]
    assert set(state.causes) <= {failed[0]}, "only the first failed task of the chain is a root cause"


def test_the_cli_lists_each_task_s_latest_run_first(world):
    _, expected, folder = world
    result = subprocess.run([sys.executable, "-m", "dashboard.cli", "runs", "--json", "--limit", "1000",
                             "--spool", str(folder / "spool"), "--index", str(folder / "cli.duckdb")],
                            capture_output=True, text=True, timeout=120, check=True)
    first = {}
    for run in json.loads(result.stdout):
        first.setdefault(run["task"], run["status"])
    assert first == expected
