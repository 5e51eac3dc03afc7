"""The runs filter (`queries.RunFilter`) against the plan of the planned runs: each filter
alone, combinations, `may_admit` (the live pages' Python pre-check), and bad input."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from builders import AGES, RUN_COUNT, all_ids, expected_ids, summaries

from dashboard import queries
from dashboard.queries import RunFilter
from dashboard.statuses import STATUSES


# ---- each filter alone --------------------------------------------------------------

def test_no_filter_returns_every_run(world):
    assert set(all_ids(world)) == {run.run_id for run in world.runs}
    assert queries.count_runs(world.index, RunFilter(), world.now) == RUN_COUNT


@pytest.mark.parametrize("status", STATUSES)
def test_one_status(world, status):
    run_filter = RunFilter(statuses=(status,))
    expected = {run.run_id for run in world.runs if run.status == status}
    assert expected, f"the fixture has {status} runs"
    assert set(all_ids(world, run_filter)) == expected
    assert queries.count_runs(world.index, run_filter, world.now) == len(expected)


@pytest.mark.parametrize("statuses", [("SUCCESS", "FAILED"), ("IDLE", "ACTIVE", "TRIGGER"),
                                      ("RUNNING", "STARTED", "TERMINATED"), STATUSES])
def test_several_statuses(world, statuses):
    expected = {run.run_id for run in world.runs if run.status in statuses}
    assert set(all_ids(world, RunFilter(statuses=statuses))) == expected


@pytest.mark.parametrize("text, tasks", [
    ("invoice", {"Generate_Invoice", "Send_Email_Invoice"}),
    ("INVOICE", {"Generate_Invoice", "Send_Email_Invoice"}),
    ("fetch_ORDERS", {"Fetch_Orders", "fetch_orders_backfill"}),
    ("orders_back", {"fetch_orders_backfill"}),
    ("_invoice", {"Generate_Invoice", "Send_Email_Invoice"}),
    ("adhoc_cleanup", {"adhoc_cleanup"}),
    ("no such task", set()),
])
def test_task_text_is_a_case_insensitive_substring(world, text, tasks):
    found = queries.runs_page(world.index, RunFilter(task_text=text), limit=10_000, now=world.now)
    assert set(found["task"]) == tasks
    assert set(found["run_id"]) == {run.run_id for run in world.runs if run.task in tasks}


@pytest.mark.parametrize("text, tasks", [
    ("%", {"growth_100%"}),
    ("100%", {"growth_100%"}),           # as LIKE '%100%%' it would match growth_1000 too
    ("h_1", {"growth_100%", "growth_1000"}),
    ("a_b", {"load_a_b"}),               # as a wildcard '_' would match load_axb too
    ("d_a", {"load_a_b", "load_axb"}),
    ("'", {"o'brien_sync"}),
    ("O'BRIEN", {"o'brien_sync"}),
    ("%_%", set()),                      # as wildcards: everything with a character
    ("__", set()),
])
def test_percent_underscore_and_quote_in_task_text_are_literal(world, text, tasks):
    found = queries.runs_page(world.index, RunFilter(task_text=text), limit=10_000, now=world.now)
    assert set(found["task"]) == tasks
    assert set(found["run_id"]) == {run.run_id for run in world.runs if text.lower() in run.task.lower()}


@pytest.mark.parametrize("since, ages", [
    ("6h", {"1h", "5h"}),
    ("12h", {"1h", "5h", "10h"}),
    ("24h", {"1h", "5h", "10h", "20h"}),
    ("3d", {"1h", "5h", "10h", "20h", "2d"}),
    ("7d", {"1h", "5h", "10h", "20h", "2d", "5d"}),
    ("30d", set(AGES)),
])
def test_since_keeps_runs_triggered_in_the_range(world, since, ages):
    run_filter = RunFilter(since=queries.parse_duration(since))
    expected = {run.run_id for run in world.runs if run.age in ages}
    assert expected == {run.run_id for run in world.runs if run.trigger_time >= world.now - run_filter.since}
    assert set(all_ids(world, run_filter)) == expected
    # Asked without a `now`, the range is relative to the clock (the margins are minutes wide).
    assert queries.count_runs(world.index, run_filter) == len(expected)
    assert set(queries.runs_page(world.index, run_filter, limit=10_000)["run_id"]) == expected


@pytest.mark.parametrize("group", ["ingest", "billing", "reports", "warehouse", "crm", "ops",
                                   "ingest-adhoc", "archive", "nope"])
def test_group_matches_the_run_group_else_the_task_group(world, group):
    expected = {run.run_id for run in world.runs if run.grp == group}
    assert set(all_ids(world, RunFilter(group=group))) == expected
    if group == "ingest":  # runs that reported 'ingest-adhoc' are not in their task's group
        assert any(run.task == "Fetch_Orders" and run.grp == "ingest-adhoc" for run in world.runs)
        assert not expected & {run.run_id for run in world.runs if run.reported_grp == "ingest-adhoc"}
    if group == "crm":  # a task defined without a group takes its runs' group
        assert {run.task for run in world.runs if run.run_id in expected} == {"o'brien_sync"}


# ---- combinations -------------------------------------------------------------------

COMBINATIONS = [
    RunFilter(statuses=("SUCCESS", "FAILED"), task_text="invoice"),
    RunFilter(statuses=("RUNNING",), since=queries.parse_duration("24h")),
    RunFilter(task_text="ORDERS", group="ingest"),
    RunFilter(task_text="orders", group="ingest-adhoc", since=queries.parse_duration("7d")),
    RunFilter(statuses=("TERMINATED", "IDLE"), task_text="_", since=queries.parse_duration("3d"),
              group="billing"),
    RunFilter(statuses=("SUCCESS",), task_text="o'brien", since=queries.parse_duration("7d"), group="crm"),
    RunFilter(statuses=("STARTED", "RUNNING", "TRIGGER"), since=queries.parse_duration("12h"), group="ops"),
    RunFilter(statuses=("SUCCESS",), task_text="invoice", group="crm"),  # nothing: no such pair
]


@pytest.mark.parametrize("run_filter", COMBINATIONS, ids=repr)
def test_filters_combine_with_and(world, run_filter):
    expected = expected_ids(world, run_filter)
    assert set(all_ids(world, run_filter)) == expected
    assert queries.count_runs(world.index, run_filter, world.now) == len(expected)


def test_the_combinations_are_not_trivial(world):
    sizes = [len(expected_ids(world, run_filter)) for run_filter in COMBINATIONS]
    assert sum(1 for size in sizes if size) >= 5 and sizes[-1] == 0
    assert all(size < RUN_COUNT // 4 for size in sizes)


# ---- may_admit ----------------------------------------------------------------------

PROPERTY_FILTERS = [
    RunFilter(statuses=statuses, task_text=text, since=since, group=group)
    for statuses in [(), ("RUNNING",), ("SUCCESS", "FAILED"), ("IDLE", "TERMINATED")]
    for text in ["", "invoice", "ORDERS", "%", "a_b", "'", "k", "\u212a", "é"]  # \u212a: Kelvin sign
    for since in [None, queries.parse_duration("6h"), queries.parse_duration("7d")]
    for group in [None, "billing", "crm", "ingest-adhoc"]
]


def test_may_admit_never_refuses_a_run_the_query_matches(world):
    runs = summaries(world.index)
    assert len(runs) == RUN_COUNT
    matched_somewhere = 0
    for run_filter in PROPERTY_FILTERS:
        matched = set(all_ids(world, run_filter))
        matched_somewhere += bool(matched)
        refused = [run_id for run_id in matched if not run_filter.may_admit(runs[run_id], world.now)]
        assert not refused, f"{run_filter} refuses runs it matches: {refused}"
    assert matched_somewhere > len(PROPERTY_FILTERS) // 4


def test_may_admit_keeps_a_run_triggered_exactly_at_the_start_of_the_range(world):
    for run_id, summary in sorted(summaries(world.index).items())[::4]:  # a quarter of them: ~33 queries
        run_filter = RunFilter(since=world.now - summary.trigger_time)
        assert run_id in all_ids(world, run_filter)
        assert run_filter.may_admit(summary, world.now)


def test_may_admit_never_refuses_with_a_dotted_capital_i(world):
    # DuckDB lowers 'İ' (U+0130) to 'i', Python to 'i̇' (i + U+0307): the query matches ASCII names.
    runs = summaries(world.index)
    run_filter = RunFilter(task_text="\u0130")
    matched = set(all_ids(world, run_filter))
    assert matched, "DuckDB matches 'İ' against tasks with an 'i'"
    assert all(run_filter.may_admit(runs[run_id], world.now) for run_id in matched)


def test_may_admit_refuses_clear_non_matches(world):
    runs = list(summaries(world.index).values())
    checked = Counter()
    for run in runs:
        other_status = next(s for s in STATUSES if s != run.status)
        assert not RunFilter(statuses=(other_status,)).may_admit(run, world.now)
        assert not RunFilter(statuses=tuple(s for s in STATUSES if s != run.status)).may_admit(run, world.now)
        assert RunFilter(statuses=(run.status,)).may_admit(run, world.now)
        checked["status"] += 1
        if run.grp is not None:
            assert not RunFilter(group=f"not-{run.grp}").may_admit(run, world.now)
            assert RunFilter(group=run.grp).may_admit(run, world.now)
            checked["group"] += 1
        if run.trigger_time < world.now - dt.timedelta(days=7, minutes=5):
            assert not RunFilter(since=queries.parse_duration("7d")).may_admit(run, world.now)
            checked["old"] += 1
        if run.trigger_time < world.now - dt.timedelta(hours=24, minutes=5):
            assert not RunFilter(since=queries.parse_duration("24h")).may_admit(run, world.now)
        assert not RunFilter(task_text="zzz").may_admit(run, world.now)
        assert RunFilter(task_text=run.task.upper()).may_admit(run, world.now)
    assert checked["status"] == RUN_COUNT and checked["group"] > 0 and checked["old"] > 0


# ---- bad input ---------------------------------------------------------------------

@pytest.mark.parametrize("statuses, named", [(("PAUSED",), "PAUSED"), (("running",), "running"),
                                             (("SUCCESS", "DONE"), "DONE")])
def test_an_unknown_status_is_refused_with_the_known_ones(world, statuses, named):
    run_filter = RunFilter(statuses=statuses)
    for call in (lambda: queries.runs_page(world.index, run_filter, now=world.now),
                 lambda: queries.runs_view(world.index, run_filter, now=world.now),
                 lambda: queries.count_runs(world.index, run_filter, world.now),
                 lambda: run_filter.where(world.now)):
        with pytest.raises(ValueError, match=f"unknown status '{named}'") as caught:
            call()
        assert all(status in str(caught.value) for status in STATUSES)


@pytest.mark.parametrize("sort", ["run_id", "Task", "", "trigger_time; DROP TABLE runs"])
def test_an_unknown_sort_column_is_refused_with_the_sortable_ones(world, sort):
    for call in (lambda: queries.runs_page(world.index, sort=sort, now=world.now),
                 lambda: queries.runs_view(world.index, sort=sort, now=world.now)):
        with pytest.raises(ValueError, match="cannot sort by") as caught:
            call()
        assert repr(sort) in str(caught.value)
        assert all(column in str(caught.value) for column in queries.SORTABLE)
    assert world.index.counts()["runs"] == RUN_COUNT


@pytest.mark.parametrize("text, expected", [
    ("6h", dt.timedelta(hours=6)), ("12h", dt.timedelta(hours=12)), ("24h", dt.timedelta(days=1)),
    ("3d", dt.timedelta(days=3)), ("7d", dt.timedelta(days=7)), ("1w", dt.timedelta(days=7)),
    ("90m", dt.timedelta(minutes=90)), (" 1.5H ", dt.timedelta(minutes=90)), ("30s", dt.timedelta(seconds=30)),
])
def test_parse_duration(text, expected):
    assert queries.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "6", "h", "6x", "-6h", "6h30m", "six hours"])
def test_parse_duration_refuses_what_is_not_a_range(text):
    with pytest.raises(ValueError, match="not a time range"):
        queries.parse_duration(text)
