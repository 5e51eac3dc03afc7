"""Comparing two runs (dashboard.compare): phases, and an aligned diff of a log stream."""

from __future__ import annotations

import datetime as dt
import difflib
import random

import numpy as np
import pytest
from builders import ingest

from dashboard import queries
from dashboard.compare import Hunk, diff_hashes, log_diff, phases
from dashboard.spool import SpoolWriter

T0 = dt.datetime(2026, 11, 28, 12, 0)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two 100,000-line runs of one task: the second has one more stderr line at line 50,001, and
    other times and ids on every line."""
    folder = tmp_path_factory.mktemp("compare")
    writer = SpoolWriter(folder / "spool", "test")
    for n, (run_id, job) in enumerate((("good", "0a1b2c3d4e"), ("bad", "9f8e7d6c5b"))):
        trigger = T0 + dt.timedelta(hours=n)
        writer.status(run_id, "Nightly", "ACTIVE", trigger_time=trigger, ts=trigger)
        writer.status(run_id, "Nightly", "RUNNING", trigger_time=trigger, ts=trigger + dt.timedelta(seconds=5 + n))
        writer.status(run_id, "Nightly", "SUCCESS" if n == 0 else "FAILED", trigger_time=trigger,
                      ts=trigger + dt.timedelta(seconds=65 + 30 * n), exit_code=n)
        for stream in ("stdout", "stderr"):
            lines = [f"{(trigger + dt.timedelta(milliseconds=i)).isoformat()} step {i} of job {job} took {i * 7} ms"
                     for i in range(100_000)]
            if stream == "stderr" and run_id == "bad":
                lines.insert(50_000, "ERROR: deadlock detected while loading orders")
            writer.append_log(run_id, stream, "\n".join(lines) + "\n")
    index = ingest(folder)
    yield index
    index.close()


def test_one_inserted_line_at_50_001_is_the_first_and_only_difference_when_masked(two_runs):
    diff = log_diff(two_runs, "good", "bad", "stderr", ignore_masked=True)
    assert (diff.a_lines, diff.b_lines, diff.cut) == (100_000, 100_001, False)
    assert diff.hunks == [Hunk(50_001, 0, 50_001, 1)] and diff.first.kind == "inserted"
    assert log_diff(two_runs, "good", "bad", "stdout", ignore_masked=True).hunks == []
    # Without masking every line differs (its time and ids): one hunk of everything.
    raw = log_diff(two_runs, "good", "bad", "stdout")
    assert raw.hunks == [Hunk(1, 100_000, 1, 100_000)] and raw.first.kind == "changed"


def test_a_missing_log_is_all_inserted():
    assert diff_hashes(np.zeros(0, np.uint64), np.arange(3, dtype=np.uint64)) == [Hunk(1, 0, 1, 3)]


def test_hunks_agree_with_difflib_on_random_edits():
    rng = random.Random(4)
    for _ in range(200):
        a = [rng.randrange(6) for _ in range(rng.randrange(0, 40))]
        b = list(a)
        for _ in range(rng.randrange(0, 5)):
            where = rng.randrange(len(b) + 1)
            b[where:where + rng.randrange(0, 3)] = [rng.randrange(6) for _ in range(rng.randrange(0, 3))]
        hunks = diff_hashes(np.array(a, np.uint64), np.array(b, np.uint64))
        rebuilt, position = [], 0
        for hunk in hunks:  # applying the hunks to a gives b
            rebuilt += a[position:hunk.a_first - 1] + b[hunk.b_first - 1:hunk.b_first - 1 + hunk.b_count]
            position = hunk.a_first - 1 + hunk.a_count
        assert rebuilt + a[position:] == b
        changed = sum(h.a_count + h.b_count for h in hunks)
        reference = sum(i2 - i1 + j2 - j1 for tag, i1, i2, j1, j2 in
                        difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes() if tag != "equal")
        assert changed <= reference


def test_phases_are_the_queue_wait_and_the_run_time(two_runs):
    good, bad = (phases(queries.run(two_runs, run_id)) for run_id in ("good", "bad"))
    assert good == {"queue wait": 5.0, "run time": 60.0}
    assert bad == {"queue wait": 6.0, "run time": 89.0}
    assert phases({"trigger_time": T0, "started": None, "finished": T0 + dt.timedelta(seconds=3)}) == \
        {"queue wait": 3.0, "run time": None}


def test_the_last_success_is_the_latest_before_the_run_else_after_it(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "test")
    for run_id, task, status, hours in (("s1", "Load", "SUCCESS", 0), ("f", "Load", "FAILED", 1),
                                        ("s2", "Load", "SUCCESS", 2), ("other", "Sync", "SUCCESS", 1)):
        trigger = T0 + dt.timedelta(hours=hours)
        writer.status(run_id, task, status, trigger_time=trigger, ts=trigger)
    index = ingest(tmp_path)
    try:
        assert [queries.last_success(index, "Load", run_id) for run_id in ("f", "s2", "s1")] == ["s1", "s1", "s2"]
        assert queries.last_success(index, "Sync", "other") is None
    finally:
        index.close()


def test_the_component_reads_only_the_lines_of_the_difference_it_shows(two_runs):
    from dashboard.components.run_compare import RunCompare
    from dashboard.config import Config
    from dashboard.hub import Hub
    from dashboard.store import Links, Store

    store = Store(two_runs, Hub(), Config(), Links(Config().routes))
    view = RunCompare(store=store, a="good", b="bad", stream="stderr", ignore_masked=True)
    assert "Difference 1 of 1" in view.position.object and "B has 1 more line at line 50,001" in view.position.object
    assert 'data-side="b" data-line="50001">ERROR: deadlock detected while loading orders' in view.lines.object
    assert len(view.lines.object) < 20_000  # 7 lines a side, not 100,000
    assert "/task-runs/bad?stream=stderr&amp;line=50001" in view.lines.object
    view.ignore_masked = False  # every line differs by its time and ids: one difference, its first 200 lines
    assert "Difference 1 of 1" in view.position.object and "99,800 more lines of A" in view.lines.object
    assert view.to_url() == {"a": "good", "b": "bad", "stream": "stderr"}
    for a, b, problem in (("good", "good", "the same run"), ("good", "", "Name two runs"),
                          ("good", "nope", "The index has no run 'nope'"), ("good", "../x", "bad run_id")):
        view.param.update(a=a, b=b)
        assert problem in view.problem and not view.diff_area.visible
