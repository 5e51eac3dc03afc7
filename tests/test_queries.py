"""The query layer (`dashboard.queries`) over a real spool ingested into a real DuckDB file:
each run as written, the statuses it reached, groups, the runs table rewritten in trigger
order, blocked runs.

The `world` fixture (tests/conftest.py) is the planned runs of tests/builders.py: 130 runs
written through the real SpoolWriter and ingested by the real Ingestor, beside a plain-Python
plan of every run worked out from what was written. Filters: test_run_filters.py; order,
pages and status counts: test_run_pages.py.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from builders import AGES, DEFINED_TASKS, RUN_COUNT, ingest, value

from dashboard import queries
from dashboard.index import Index, index_frame
from dashboard.ingest import Ingestor
from dashboard.queries import RunFilter
from dashboard.spool import SpoolWriter
from dashboard.statuses import STATUSES


# ---- the fixture itself ----------------------------------------------------------------

def test_the_fixture_covers_every_status_age_and_kind_of_group(world):
    assert world.index.counts()["runs"] == RUN_COUNT
    assert {run.status for run in world.runs} == set(STATUSES)
    assert {run.age for run in world.runs} == set(AGES)
    assert any(run.reported_grp is None and run.grp is not None for run in world.runs)
    assert any(run.reported_grp is not None and DEFINED_TASKS.get(run.task) is None for run in world.runs)
    assert any(run.grp is None for run in world.runs)
    assert any(run.agent is None for run in world.runs)
    assert len({run.trigger_time for run in world.runs}) < RUN_COUNT, "some trigger times tie"


def test_runs_page_returns_each_run_as_written(world):
    frame = queries.runs_page(world.index, limit=10_000, now=world.now)
    assert set(queries.RUN_COLUMNS) | {"reached", "duration"} <= set(frame.columns)
    rows = {row["run_id"]: row for row in frame.to_dict("records")}
    assert set(rows) == {run.run_id for run in world.runs}
    for run in world.runs:
        row = rows[run.run_id]
        got = {name: value(row[name]) for name in
               ("task", "grp", "status", "agent", "adhoc", "trigger_time", "started", "finished")}
        want = {name: getattr(run, name) for name in got}
        assert got == want, run.run_id
        duration = run.duration(world.now)
        if duration is None:
            assert value(row["duration"]) is None, run.run_id
        else:
            assert row["duration"] == pytest.approx(duration.total_seconds(), abs=1e-6), run.run_id


@pytest.mark.parametrize("run_filter", [RunFilter(), RunFilter(statuses=("RUNNING",)), RunFilter(statuses=("SUCCESS",)),
                                        RunFilter(task_text="no such task")], ids=["all", "running", "success", "none"])
def test_a_page_read_through_arrow_is_the_frame_duckdb_would_give(world, run_filter):
    """runs_page reads its page as an Arrow table (its values as Python lists for blocking and
    estimates) and makes it a frame: the same values and types as DuckDB's own DataFrame, with
    nulls in some columns (exit codes of running runs), in all, or no rows at all."""
    page = queries.runs_page(world.index, run_filter, limit=10_000, now=world.now)
    where, params = run_filter.where(world.now)
    sql = f"SELECT * EXCLUDE (reached, own_grp) FROM runs r {where} ORDER BY trigger_time DESC, run_id DESC"
    expected = world.index.query(sql, params)
    with world.index.cursor() as cur:
        got = index_frame(cur.execute(sql, params).to_arrow_table())
    pd.testing.assert_frame_equal(got, expected)
    shown = page[list(expected.columns)].sort_values(["trigger_time", "run_id"], ascending=False, ignore_index=True)
    pd.testing.assert_frame_equal(shown, expected.sort_values(["trigger_time", "run_id"], ascending=False,
                                                              ignore_index=True))
    assert page["blocked"].dtype == object and page["blocks"].dtype == int and page["late"].dtype == bool


# ---- the statuses a run reached -----------------------------------------------------

def test_reached_lists_each_status_a_run_went_through_once(world):
    frame = queries.runs_page(world.index, limit=10_000, now=world.now)
    reached = dict(zip(frame["run_id"], frame["reached"]))
    planned = {run.run_id: run for run in world.runs}
    for run_id, text in reached.items():
        parts = text.split(",")
        assert len(parts) == len(set(parts)), f"{run_id}: a status listed twice in {text!r}"
        assert set(parts) == planned[run_id].reached, run_id
    repeated = world.index.query("SELECT run_id FROM transitions GROUP BY run_id "
                                 "HAVING count(*) > count(DISTINCT status)")["run_id"].tolist()
    assert repeated, "some runs sent RUNNING twice, and still list it once"


def test_a_run_that_only_got_to_running_reached_exactly_trigger_started_running(world):
    running = [run for run in world.runs if run.reached == {"TRIGGER", "STARTED", "RUNNING"}]
    assert running
    for run in running:
        assert set(queries.run(world.index, run.run_id)["reached"].split(",")) == {"TRIGGER", "STARTED", "RUNNING"}


# ---- groups -------------------------------------------------------------------------

def test_groups_come_from_task_definitions_and_runs_sorted_without_none(world):
    expected = sorted({g for g in DEFINED_TASKS.values() if g is not None}
                      | {run.reported_grp for run in world.runs if run.reported_grp is not None})
    got = queries.groups(world.index)
    assert got == expected
    assert {"archive", "crm", "ingest-adhoc", "ops"} <= set(got)  # defined only; reported only
    assert None not in got


def test_groups_of_an_empty_index_are_none(tmp_path):
    index = Index(tmp_path / "index.duckdb")
    try:
        assert queries.groups(index) == []
    finally:
        index.close()


# ---- the group kept on each run, and the runs table rewritten in trigger order -------

def test_a_task_moved_to_another_group_moves_its_runs_but_not_those_with_their_own(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.define_task("Load", "etl")
    writer.status("r-plain", "Load", "RUNNING")
    writer.status("r-own", "Load", "RUNNING", group="adhoc-loads")
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, tmp_path / "spool")
    ingestor.catch_up()
    assert queries.run(index, "r-plain")["grp"] == "etl" and queries.run(index, "r-own")["grp"] == "adhoc-loads"

    writer.define_task("Load", "warehouse")
    ingestor.catch_up()
    assert queries.run(index, "r-plain")["grp"] == "warehouse"
    assert queries.run(index, "r-own")["grp"] == "adhoc-loads"
    assert set(all_ids_in(index, RunFilter(group="warehouse"))) == {"r-plain"}
    index.close()


def all_ids_in(index: Index, run_filter: RunFilter) -> list[str]:
    return queries.runs_page(index, run_filter, limit=10_000)["run_id"].tolist()


def test_clustering_the_runs_keeps_every_row(world):
    before = world.index.query("SELECT * FROM runs ORDER BY run_id")
    world.index.cluster_runs()
    after = world.index.query("SELECT * FROM runs ORDER BY run_id")
    pd.testing.assert_frame_equal(before, after)
    stored = world.index.query("SELECT trigger_time FROM runs")["trigger_time"]
    assert stored.is_monotonic_increasing, "rows are stored in trigger order"


def test_a_run_whose_upstream_of_the_same_cycle_failed_is_blocked_not_waiting(tmp_path):
    """Another scheduler's spool may leave such runs ACTIVE: the queries flag them as blocked."""
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.define_task("Extract", "etl")
    writer.define_task("Load", "etl", depends_on=["Extract"])
    writer.define_task("Report", "etl", depends_on=["Load"])
    cycle, earlier = dt.datetime(2026, 11, 28, 12, 0), dt.datetime(2026, 11, 28, 11, 0)
    for run_id, task, status, trigger in [
            ("x-1", "Extract", "FAILED", cycle), ("l-1", "Load", "ACTIVE", cycle),
            ("x-0", "Extract", "RUNNING", earlier), ("l-0", "Load", "ACTIVE", earlier),  # waiting
            ("l-2", "Load", "ACTIVE", dt.datetime(2026, 11, 28, 11, 30)),  # another cycle: waiting
            ("r-1", "Report", "ACTIVE", cycle)]:  # its upstream Load is blocked in turn
        writer.status(run_id, task, status, trigger_time=trigger, ts=trigger)
    index = ingest(tmp_path)

    page = queries.runs_page(index, limit=100).set_index("run_id")
    assert page.loc["l-1", "blocked"] == "upstream Extract failed"
    assert pd.isna(page.loc["l-0", "blocked"]) and pd.isna(page.loc["l-2", "blocked"])
    assert pd.isna(page.loc["x-1", "blocked"]), "a failed run is not blocked, it failed"
    assert page.loc["r-1", "blocked"] == "upstream Extract failed (via Load)"
    assert page.loc["r-1", "blocked_by"] == page.loc["l-1", "blocked_by"] == "x-1"
    assert (page.loc["x-1", "blocks"], page.loc["x-0", "blocks"], page.loc["l-1", "blocks"]) == (2, 0, 0)
    assert queries.run(index, "l-1")["blocked"] == "upstream Extract failed"
    assert queries.run(index, "l-0")["blocked"] is None
    stats = queries.task_stats(index).set_index("task")
    assert stats.loc["Load", "last_blocked"] == "upstream Extract failed"
    assert pd.isna(stats.loc["Extract", "last_blocked"])
    index.close()


# ---- tasks seen in runs without a definition -----------------------------------------

def test_tasks_with_scheduled_runs_but_no_definition_are_listed_newest_first_with_their_latest_group(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.define_task("Defined", "etl")
    start = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.timezone.utc)
    for n, (run_id, task, group, adhoc) in enumerate([
            ("r-1", "Defined", None, False), ("r-2", "Seen", "old", False), ("r-3", "Seen", "new", False),
            ("r-4", "Other", None, False), ("r-5", "Adhoc_echo", None, True)]):
        writer.status(run_id, task, "RUNNING", group=group, adhoc=adhoc, trigger_time=start + dt.timedelta(minutes=n))
    index = Index(tmp_path / "index.duckdb")
    try:
        Ingestor(index, tmp_path / "spool").catch_up()
        seen, total = queries.tasks_seen_in_runs(index)
        assert seen == [("Other", None), ("Seen", "new")]
        assert total == 2, "ad hoc runs' tasks are no part of the graph; defined ones are drawn from definitions"
        seen, total = queries.tasks_seen_in_runs(index, limit=1)
        assert seen == [("Other", None)] and total == 2
    finally:
        index.close()


def test_pages_sorted_by_a_time_are_those_of_the_whole_sort_with_ties_and_missing_times(tmp_path, monkeypatch):
    """runs_page bounds a page sorted by a time by its last run's time (queries._page_bound): every
    page, both ways, from either end, is the page the plain sort gives, with many runs sharing a
    trigger time (a cycle) and runs not started or not finished."""
    writer = SpoolWriter(tmp_path / "spool", "test")
    start = dt.datetime(2026, 11, 20, 6, 0)
    for n in range(120):
        trigger = start + dt.timedelta(minutes=n // 10)  # ten runs a cycle
        writer.status(f"r-{n:03d}", f"T{n % 10}", "TRIGGER", trigger_time=trigger, ts=trigger)
        if n % 4:
            writer.status(f"r-{n:03d}", f"T{n % 10}", "RUNNING", ts=trigger + dt.timedelta(seconds=n % 7))
        if n % 3 == 0 and n % 4:
            writer.status(f"r-{n:03d}", f"T{n % 10}", "SUCCESS", ts=trigger + dt.timedelta(seconds=30 + n % 5))
    index = ingest(tmp_path)
    now = dt.datetime(2026, 11, 20, 12, 0)
    try:
        total = queries.count_runs(index)
        for sort in ("trigger_time", "started", "finished"):
            for descending in (True, False):
                pages = [queries.runs_page(index, RunFilter(), 7, offset, sort, descending, now, total)["run_id"].tolist()
                         for offset in range(0, total, 7)]
                with monkeypatch.context() as plain:
                    plain.setattr(queries, "_page_bound", lambda *args: ("", []))
                    expected = [queries.runs_page(index, RunFilter(), 7, offset, sort, descending, now, total)[
                        "run_id"].tolist() for offset in range(0, total, 7)]
                assert pages == expected, (sort, descending)
                assert sorted(sum(pages, [])) == sorted(f"r-{n:03d}" for n in range(120))
    finally:
        index.close()


def test_pages_sorted_by_duration_are_those_of_the_whole_sort_when_durations_are_shared(tmp_path):
    """Runs sharing a duration cross the edges of pages by duration: every page, both ways, from
    either end, is the slice of the whole sort (by duration, then run id), with runs not started last."""
    writer = SpoolWriter(tmp_path / "spool", "test")
    start = dt.datetime(2026, 11, 20, 6, 0)
    durations = {}
    for n in range(150):
        trigger = start + dt.timedelta(minutes=n)
        writer.status(f"r-{n:03d}", f"T{n % 10}", "TRIGGER", trigger_time=trigger, ts=trigger)
        if n % 11 == 0:
            continue  # not started: no duration
        seconds = n % 6 if n % 2 else 100 + n  # runs of 0 to 5 s share them, the others their own
        writer.status(f"r-{n:03d}", f"T{n % 10}", "RUNNING", ts=trigger)
        writer.status(f"r-{n:03d}", f"T{n % 10}", "SUCCESS", ts=trigger + dt.timedelta(seconds=seconds))
        durations[f"r-{n:03d}"] = seconds
    index = ingest(tmp_path)
    now = dt.datetime(2026, 11, 21, 12, 0)
    try:
        total = queries.count_runs(index)
        not_started = sorted((run_id for n in range(150) if (run_id := f"r-{n:03d}") not in durations), reverse=True)
        for descending in (True, False):
            whole = [run_id for _, run_id in sorted(((seconds, run_id) for run_id, seconds in durations.items()),
                                                    reverse=descending)]
            whole += not_started if descending else not_started[::-1]
            for size in (7, 100):
                pages = [queries.runs_page(index, RunFilter(), size, offset, "duration", descending, now, total)
                         for offset in range(0, total, size)]
                assert sum((page["run_id"].tolist() for page in pages), []) == whole, (size, descending)
                assert pages[0]["duration"].notna().all()
    finally:
        index.close()


def test_a_page_whose_bound_went_stale_between_its_two_statements_is_read_again(tmp_path, monkeypatch):
    """The bound is read by a statement before the page's: if the runs changed between them (one left
    the filter) the page comes out short, and is read again without it."""
    writer = SpoolWriter(tmp_path / "spool", "test")
    start = dt.datetime(2026, 11, 20, 6, 0)
    for n in range(30):
        trigger = start + dt.timedelta(minutes=n)
        writer.status(f"r-{n:03d}", f"T{n % 10}", "TRIGGER", trigger_time=trigger, ts=trigger)
    index = ingest(tmp_path)
    now = dt.datetime(2026, 11, 20, 12, 0)
    try:
        total = queries.count_runs(index)
        expected = [f"r-{n:03d}" for n in range(29, 29 - 7, -1)]
        assert queries.runs_page(index, RunFilter(), 7, 0, "trigger_time", True, now, total)["run_id"].tolist() == expected
        real = queries._page_bound

        def stale(index, sort, where, params, direction, nulls, limit, offset):  # the bound of a page of 2 runs
            return real(index, sort, where, params, direction, nulls, 2, offset)

        monkeypatch.setattr(queries, "_page_bound", stale)
        assert queries.runs_page(index, RunFilter(), 7, 0, "trigger_time", True, now, total)["run_id"].tolist() == expected
    finally:
        index.close()
