"""Runs in order and in pages (`queries.runs_page`, `queries.runs_view`) against the plan of the
planned runs: sorting by every column, pages, and the count of runs in each status."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import replace

import pytest
from builders import RUN_COUNT, all_ids, expected_order, plan_matches

from dashboard import queries
from dashboard.queries import RunFilter
from dashboard.statuses import STATUSES


# ---- sorting ------------------------------------------------------------------------

@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
@pytest.mark.parametrize("column", queries.SORTABLE)
def test_sorting_by_every_column(world, column, descending):
    got = all_ids(world, sort=column, descending=descending)
    assert got == expected_order(world.runs, column, descending, world.now)


@pytest.mark.parametrize("column", ["finished", "started", "duration", "agent"])
@pytest.mark.parametrize("descending", [False, True], ids=["asc", "desc"])
def test_missing_values_sort_last_in_both_directions(world, column, descending):
    frame = queries.runs_page(world.index, limit=10_000, sort=column, descending=descending, now=world.now)
    missing = frame[column].isna().tolist()
    assert any(missing) and not all(missing)
    assert missing == sorted(missing), f"every NULL {column} comes after every value"


@pytest.mark.parametrize("column", [c for c in queries.SORTABLE if c != "grp"])
def test_sorting_a_filtered_set(world, column):
    run_filter = RunFilter(since=queries.parse_duration("3d"), task_text="o")
    runs = [run for run in world.runs if plan_matches(run, run_filter, world.now)]
    for descending in (False, True):
        assert all_ids(world, run_filter, sort=column, descending=descending) == \
            expected_order(runs, column, descending, world.now)


def test_running_runs_count_their_duration_up_to_now(world):
    later = world.now + dt.timedelta(hours=1)
    at_now = queries.runs_page(world.index, RunFilter(statuses=("RUNNING", "STARTED")), limit=10_000,
                               sort="duration", now=world.now).set_index("run_id")["duration"]
    an_hour_on = queries.runs_page(world.index, RunFilter(statuses=("RUNNING", "STARTED")), limit=10_000,
                                   sort="duration", now=later).set_index("run_id")["duration"]
    assert len(at_now) > 0
    for run in world.runs:
        if run.status in ("RUNNING", "STARTED"):
            assert at_now[run.run_id] == pytest.approx((world.now - run.started).total_seconds())
            assert an_hour_on[run.run_id] == pytest.approx(at_now[run.run_id] + 3600)


def test_default_order_is_newest_trigger_first(world):
    frame = queries.runs_page(world.index, limit=10_000, now=world.now)
    assert frame["run_id"].tolist() == expected_order(world.runs, "trigger_time", True, world.now)


# ---- pages --------------------------------------------------------------------------

@pytest.mark.parametrize("page_size", [25, 50, 100])
def test_pages_cut_the_sorted_set(world, page_size):
    order = expected_order(world.runs, "trigger_time", True, world.now)
    pages = math.ceil(RUN_COUNT / page_size)
    assert pages == {25: 6, 50: 3, 100: 2}[page_size]
    for page in sorted({1, (pages + 1) // 2, pages}):  # first, a middle one, the last (partial)
        view = queries.runs_view(world.index, RunFilter(), page, page_size, now=world.now)
        assert (view.page, view.page_size, view.total, view.pages) == (page, page_size, RUN_COUNT, pages)
        assert view.first_row == (page - 1) * page_size + 1
        start = (page - 1) * page_size
        assert view.runs["run_id"].tolist() == order[start:start + page_size]
    last = queries.runs_view(world.index, RunFilter(), pages, page_size, now=world.now)
    assert len(last.runs) == RUN_COUNT - (pages - 1) * page_size < page_size


@pytest.mark.parametrize("sort", ["task", "duration", "finished"])
@pytest.mark.parametrize("page_size", [25, 50, 100])
def test_all_pages_together_are_the_whole_sorted_set(world, sort, page_size):
    views = [queries.runs_view(world.index, RunFilter(), page, page_size, sort, False, world.now)
             for page in range(1, math.ceil(RUN_COUNT / page_size) + 1)]
    joined = [run_id for view in views for run_id in view.runs["run_id"]]
    assert joined == expected_order(world.runs, sort, False, world.now)


@pytest.mark.parametrize("run_filter", [RunFilter(since=queries.parse_duration("7d")),
                                        RunFilter(since=queries.parse_duration("24h")),
                                        RunFilter(statuses=("SUCCESS", "RUNNING"), since=queries.parse_duration("3d")),
                                        RunFilter(group="billing", since=queries.parse_duration("7d"))],
                         ids=repr)
@pytest.mark.parametrize("descending", [True, False], ids=["newest first", "oldest first"])
@pytest.mark.parametrize("page_size", [3, 7])
def test_pages_of_a_time_range_are_bounded_by_its_hours_and_cut_the_sorted_set(world, run_filter, descending,
                                                                               page_size):
    """A time range's pages by trigger time are bounded by the runs per hour the index keeps
    (dashboard.run_hours), the pages past the middle from the other end."""
    matching = [run for run in world.runs if plan_matches(run, run_filter, world.now)]
    views = [queries.runs_view(world.index, run_filter, page, page_size, "trigger_time", descending, world.now)
             for page in range(1, math.ceil(len(matching) / page_size) + 1)]
    assert len({hour for hour, _ in queries.runs_per_hour(world.index, run_filter, world.now)}) > 2
    assert all(view.total == len(matching) for view in views) and len(views) > 2
    joined = [run_id for view in views for run_id in view.runs["run_id"]]
    assert joined == expected_order(matching, "trigger_time", descending, world.now)


@pytest.mark.parametrize("asked, given", [(6, 6), (7, 6), (99, 6), (0, 1), (-3, 1)])
def test_a_page_out_of_range_gives_the_nearest_page(world, asked, given):
    view = queries.runs_view(world.index, RunFilter(), asked, 25, now=world.now)
    order = expected_order(world.runs, "trigger_time", True, world.now)
    assert view.page == given and view.pages == 6
    assert view.first_row == (given - 1) * 25 + 1
    assert view.runs["run_id"].tolist() == order[(given - 1) * 25:given * 25]


@pytest.mark.parametrize("run_filter", [RunFilter(since=queries.parse_duration("24h")),
                                        RunFilter(group="billing"),
                                        RunFilter(statuses=("SUCCESS", "FAILED", "RUNNING"))], ids=repr)
def test_a_filter_that_shrinks_the_set_moves_an_old_page_to_the_new_last(world, run_filter):
    before = queries.runs_view(world.index, RunFilter(), 6, 25, now=world.now)
    assert before.page == 6
    matching = [run for run in world.runs if plan_matches(run, run_filter, world.now)]
    last = math.ceil(len(matching) / 25)
    assert 1 < last < 6, "the filter leaves more than one page but fewer than six"
    after = queries.runs_view(world.index, run_filter, 6, 25, now=world.now)
    assert (after.page, after.pages, after.total) == (last, last, len(matching))
    assert after.first_row == (last - 1) * 25 + 1
    order = expected_order(matching, "trigger_time", True, world.now)
    assert after.runs["run_id"].tolist() == order[(last - 1) * 25:]


@pytest.mark.parametrize("page", [1, 3, 99])
def test_an_empty_result_is_page_one_of_one(world, page):
    view = queries.runs_view(world.index, RunFilter(task_text="no such task"), page, 25, now=world.now)
    assert (view.page, view.pages, view.total, view.first_row) == (1, 1, 0, 0)
    assert view.runs.empty
    assert set(queries.RUN_COLUMNS) <= set(view.runs.columns)


# ---- status counts ------------------------------------------------------------------

@pytest.mark.parametrize("run_filter", [
    RunFilter(),
    RunFilter(statuses=("FAILED",)),
    RunFilter(since=queries.parse_duration("24h")),
    RunFilter(statuses=("RUNNING",), task_text="invoice", since=queries.parse_duration("3d")),
    RunFilter(group="billing", statuses=("SUCCESS", "IDLE")),
    RunFilter(task_text="%"),
    RunFilter(group="crm", since=queries.parse_duration("6h")),
    RunFilter(task_text="no such task", statuses=("SUCCESS",)),
], ids=repr)
def test_status_counts_ignore_the_chosen_statuses_and_honour_the_rest(world, run_filter):
    counts = queries.status_counts(world.index, run_filter, world.now)
    expected = Counter(run.status for run in world.runs
                       if plan_matches(run, replace(run_filter, statuses=()), world.now))
    assert set(counts) == set(STATUSES), "every status, zeros included"
    assert {status: int(n) for status, n in counts.items()} == {s: expected[s] for s in STATUSES}


def test_status_counts_have_zeros_for_statuses_not_in_the_range(world):
    counts = queries.status_counts(world.index, RunFilter(task_text="o'brien", since=queries.parse_duration("6h")),
                                   world.now)
    assert 0 < sum(counts.values()) < len(STATUSES)
    assert 0 in counts.values()
