"""The runs query layer (`dashboard.queries`) over a real spool ingested into a real DuckDB file.

One module-scoped fixture writes 130 runs through `SpoolWriter` (tasks with awkward names,
groups from task definitions and from the runs themselves, every lifecycle shape, trigger
times from one hour to ten days before "now") and ingests them with the real `Ingestor`.
While writing, it keeps a plain-Python plan of every run (its final status, group, trigger
time, start, finish and the statuses it went through), worked out from what was written and
not from the code under test. Every test compares the queries with that plan.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import Counter
from dataclasses import dataclass, replace
from types import SimpleNamespace

import pandas as pd
import pytest

from dashboard import queries
from dashboard.index import Index
from dashboard.index_schema import SCHEMA_VERSION, RunSummary
from dashboard.ingest import Ingestor
from dashboard.queries import RunFilter
from dashboard.spool import SpoolWriter
from dashboard.statuses import STATUSES, TERMINAL

# ---- the data --------------------------------------------------------------------------

#: Every task definition written: name -> group (None: defined without a group).
DEFINED_TASKS = {
    "Fetch_Orders": "ingest",
    "fetch_orders_backfill": "ingest",
    "Generate_Invoice": "billing",
    "Send_Email_Invoice": "billing",
    "growth_100%": "reports",   # '%' literal vs. 'growth_1000'
    "growth_1000": "reports",
    "load_a_b": "warehouse",    # '_' literal vs. 'load_axb'
    "load_axb": "warehouse",
    "o'brien_sync": None,       # its runs report the group 'crm'
    "Old_Export": "archive",    # defined, never run
}
#: The tasks runs are written for; 'adhoc_cleanup' is never defined.
RUN_TASKS = [task for task in DEFINED_TASKS if task != "Old_Export"] + ["adhoc_cleanup"]

#: How long before "now" a run was triggered: 1h .. 10d, plus 0-45 minutes of jitter each.
AGES = {"1h": dt.timedelta(hours=1), "5h": dt.timedelta(hours=5), "10h": dt.timedelta(hours=10),
        "20h": dt.timedelta(hours=20), "2d": dt.timedelta(days=2), "5d": dt.timedelta(days=5),
        "10d": dt.timedelta(days=10)}
JITTER_MINUTES = (0, 15, 30, 45)  # few values, so trigger times (and starts, finishes) tie

#: The statuses each kind of run goes through, in order.
SHAPES = {
    "idle": ["IDLE"],
    "active": ["IDLE", "ACTIVE"],
    "triggered": ["IDLE", "ACTIVE", "TRIGGER"],
    "started": ["TRIGGER", "STARTED"],
    "running": ["TRIGGER", "STARTED", "RUNNING"],
    "success": ["IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING", "SUCCESS"],
    "failed": ["TRIGGER", "STARTED", "RUNNING", "FAILED"],
    "killed": ["TRIGGER", "STARTED", "RUNNING", "TERMINATED"],
    "cancelled": ["TRIGGER", "TERMINATED"],  # ended before it started: no duration
}
#: Seconds from a run's trigger to each status (the terminal one is added to the run time).
OFFSETS = {"IDLE": -120, "ACTIVE": -60, "TRIGGER": 0, "STARTED": 5, "RUNNING": 6}
RUN_TIMES = (dt.timedelta(seconds=60), dt.timedelta(seconds=60), dt.timedelta(seconds=300),
             dt.timedelta(seconds=1234, milliseconds=567), dt.timedelta(minutes=30))
EXIT_CODES = {"SUCCESS": 0, "FAILED": 2, "TERMINATED": -15}
RUN_COUNT = 130


@dataclass(frozen=True)
class PlannedRun:
    """What a run should look like in the index, worked out from the events written."""

    run_id: str
    task: str
    grp: str | None  # the group the run reported, else its task's defined group
    reported_grp: str | None
    status: str
    agent: str | None
    adhoc: bool
    age: str  # a key of AGES
    trigger_time: dt.datetime
    started: dt.datetime | None
    finished: dt.datetime | None
    reached: frozenset[str]
    updated: dt.datetime | None = None  # its last event

    def duration(self, now: dt.datetime) -> dt.timedelta | None:
        return None if self.started is None else (self.finished or now) - self.started


def reported_group(task: str, i: int, adhoc: bool) -> str | None:
    """The group a run's events carry (most carry none and take their task's group)."""
    if task == "o'brien_sync":
        return "crm"
    if task == "Fetch_Orders" and adhoc:
        return "ingest-adhoc"  # overrides the defined group 'ingest'
    if task == "Generate_Invoice" and i % 2:
        return "billing"  # the same as the defined group, reported explicitly
    if task == "adhoc_cleanup" and i % 3:
        return "ops"
    return None


def write_spool(spool, now: dt.datetime) -> list[PlannedRun]:
    """Write the task definitions and RUN_COUNT runs; return the plan of every run."""
    rng = random.Random(20261128)
    writer = SpoolWriter(spool, "test")
    for task, group in DEFINED_TASKS.items():
        writer.define_task(task, group, depends_on=["Fetch_Orders"] if task != "Fetch_Orders" else [])
    run_ids = [f"run-{n:04x}" for n in rng.sample(range(16 ** 4), RUN_COUNT)]  # not in write order
    shape_names = list(SHAPES)
    plan = []
    for i, run_id in enumerate(run_ids):
        # Co-prime cycles (10 tasks, 9 shapes, 7 ages) spread every combination around.
        task, shape, age = RUN_TASKS[i % 10], shape_names[i % 9], list(AGES)[i % 7]
        statuses = SHAPES[shape]
        trigger = now - AGES[age] - dt.timedelta(minutes=rng.choice(JITTER_MINUTES))
        agent = rng.choice(["agent-1", "agent-2", "agent-3", None])
        adhoc = i % 5 == 0
        group = reported_group(task, i, adhoc)
        explicit_trigger = rng.random() < 0.5  # a scheduler's trigger_time, else the TRIGGER event's
        run_time = rng.choice(RUN_TIMES)

        events = []
        for status in statuses:
            if status in TERMINAL:
                seconds = 30 if shape == "cancelled" else None
                ts = trigger + (dt.timedelta(seconds=seconds) if seconds else
                                dt.timedelta(seconds=OFFSETS["RUNNING"]) + run_time)
            else:
                ts = trigger + dt.timedelta(seconds=OFFSETS[status])
                if explicit_trigger and status == "TRIGGER":
                    ts += dt.timedelta(seconds=2)  # noticed a little after the scheduled time
            events.append((status, ts))
        if shape == "running" and rng.random() < 0.5:
            events.append(("RUNNING", trigger + dt.timedelta(minutes=10)))  # a repeated heartbeat
        for status, ts in events:
            writer.status(run_id, task, status, agent=agent, adhoc=adhoc, ts=ts, group=group,
                          trigger_time=trigger if explicit_trigger else None,
                          exit_code=EXIT_CODES.get(status))

        times = dict(reversed(events))  # status -> its first time
        if explicit_trigger:
            trigger_time = trigger
        elif "TRIGGER" in times:
            trigger_time = times["TRIGGER"]
        else:
            trigger_time = min(ts for _, ts in events)
        starts = [ts for status, ts in events if status in ("STARTED", "RUNNING")]
        final = statuses[-1]
        plan.append(PlannedRun(
            run_id=run_id, task=task, grp=group or DEFINED_TASKS.get(task), reported_grp=group,
            status=final, agent=agent, adhoc=adhoc, age=age, trigger_time=trigger_time,
            started=min(starts) if starts else None,
            finished=times[final] if final in TERMINAL else None,
            reached=frozenset(statuses), updated=max(ts for _, ts in events)))
    writer.close()
    return plan


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The ingested index, the plan of its runs, and the "now" every query is asked at."""
    folder = tmp_path_factory.mktemp("queries")
    now = queries.utcnow()
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # the spool keeps milliseconds
    plan = write_spool(folder / "spool", now)
    index = Index(folder / "index.duckdb")
    Ingestor(index, folder / "spool").catch_up()
    yield SimpleNamespace(index=index, runs=plan, now=now, spool=folder / "spool", folder=folder)
    index.close()


# ---- independent expectations ----------------------------------------------------------

def plan_matches(run: PlannedRun, run_filter: RunFilter, now: dt.datetime) -> bool:
    """Whether a planned run should pass a filter (the plain-Python reading of the filter)."""
    return ((not run_filter.statuses or run.status in run_filter.statuses)
            and run_filter.task_text.lower() in run.task.lower()
            and (run_filter.since is None or run.trigger_time >= now - run_filter.since)
            and (not run_filter.group or run.grp == run_filter.group))


def expected_ids(world, run_filter: RunFilter) -> set[str]:
    return {run.run_id for run in world.runs if plan_matches(run, run_filter, world.now)}


def sort_value(run: PlannedRun, column: str, now: dt.datetime):
    if column == "trigger_time":  # the latest run first: ties by start (not started: latest), then last event
        return run.trigger_time, run.started or dt.datetime.max, run.updated
    return run.duration(now) if column == "duration" else getattr(run, column)


def expected_order(runs, column: str, descending: bool, now: dt.datetime) -> list[str]:
    """Run ids sorted by a column, ties by run id in the same direction, missing values last."""
    present = sorted(((sort_value(r, column, now), r.run_id) for r in runs
                      if sort_value(r, column, now) is not None), reverse=descending)
    missing = sorted((r.run_id for r in runs if sort_value(r, column, now) is None), reverse=descending)
    return [run_id for _, run_id in present] + missing


def all_ids(world, run_filter: RunFilter = RunFilter(), **kwargs) -> list[str]:
    """Every matching run id, as runs_page orders them."""
    page = queries.runs_page(world.index, run_filter, limit=10_000, now=world.now, **kwargs)
    return page["run_id"].tolist()


def value(cell):
    """A DataFrame cell as a plain Python value (None for NULL)."""
    if cell is None or (not isinstance(cell, (list, tuple)) and pd.isna(cell)):
        return None
    return cell.to_pydatetime() if isinstance(cell, pd.Timestamp) else cell


def summaries(index) -> dict[str, RunSummary]:
    """What the hub would report of each run (the same join the ingestor uses)."""
    frame = index.query("SELECT r.run_id, r.task, coalesce(r.grp, t.grp) AS grp, r.status, r.trigger_time "
                        "FROM runs r LEFT JOIN tasks t USING (task)")
    return {row.run_id: RunSummary(row.task, value(row.grp), row.status, value(row.trigger_time))
            for row in frame.itertuples(index=False)}


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


# ---- 1. each filter alone --------------------------------------------------------------

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


# ---- 2. combinations -------------------------------------------------------------------

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


# ---- 3. sorting ------------------------------------------------------------------------

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


# ---- 4. pages --------------------------------------------------------------------------

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


# ---- 5. status counts ------------------------------------------------------------------

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


# ---- 6. may_admit ----------------------------------------------------------------------

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


# ---- 7. the statuses a run reached -----------------------------------------------------

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


# ---- 8. groups -------------------------------------------------------------------------

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


# ---- 9. an index of an older schema is rebuilt -----------------------------------------

def test_an_index_of_an_older_schema_is_dropped_and_rebuilt_from_the_spool(world, tmp_path):
    path = tmp_path / "old.duckdb"
    index = Index(path)
    Ingestor(index, world.spool).catch_up()
    assert index.counts()["runs"] == RUN_COUNT and index.rebuilt_reason is None
    with index.cursor() as cur:
        cur.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    index.close()

    rebuilt = Index(path)
    try:
        assert rebuilt.rebuilt_reason and "schema 1" in rebuilt.rebuilt_reason
        assert f"not {SCHEMA_VERSION}" in rebuilt.rebuilt_reason
        assert rebuilt.counts() == {"tasks": 0, "runs": 0, "log_lines": 0, "ingest_errors": 0}
        assert rebuilt.load_offsets() == {}
        assert rebuilt.query("SELECT value FROM meta WHERE key = 'schema'")["value"].tolist() == [SCHEMA_VERSION]
        Ingestor(rebuilt, world.spool).catch_up()
        assert rebuilt.counts()["runs"] == RUN_COUNT
        assert rebuilt.counts()["tasks"] == len(DEFINED_TASKS)
        assert set(all_ids(SimpleNamespace(index=rebuilt, now=world.now))) == {run.run_id for run in world.runs}
    finally:
        rebuilt.close()

    again = Index(path)
    try:
        assert again.rebuilt_reason is None, "a current index is kept"
        assert again.counts()["runs"] == RUN_COUNT
    finally:
        again.close()


# ---- 10. bad input ---------------------------------------------------------------------

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


# ---- 11. the group kept on each run, and the runs table rewritten in trigger order -------

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


# ---- 10. sessions showing the same view share one answer per index version ------------------

def test_a_shared_query_is_asked_once_per_index_version_and_arguments(tmp_path):
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "test")
    writer.status("r-1", "Fetch_Orders", "RUNNING")
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, spool)
    ingestor.catch_up()
    asked = []

    @queries.shared_per_version
    def task_names(index, status):
        asked.append(status)
        return index.query("SELECT task FROM runs WHERE status = ? ORDER BY task", [status])["task"].tolist()

    try:
        assert task_names(index, "RUNNING") == ["Fetch_Orders"]
        assert task_names(index, "RUNNING") is task_names(index, "RUNNING"), "one answer, shared"
        assert task_names(index, "FAILED") == []
        assert asked == ["RUNNING", "FAILED"]

        writer.status("r-2", "Daily_Report", "RUNNING")
        ingestor.catch_up()  # a write: a new version, a new answer
        assert task_names(index, "RUNNING") == ["Daily_Report", "Fetch_Orders"]
        assert asked == ["RUNNING", "FAILED", "RUNNING"]
        ingestor.catch_up()  # nothing new: no write, the answer stands
        task_names(index, "RUNNING")
        assert asked == ["RUNNING", "FAILED", "RUNNING"]
    finally:
        index.close()


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
            ("r-1", "Report", "ACTIVE", cycle)]:  # its upstream Load is itself only blocked
        writer.status(run_id, task, status, trigger_time=trigger, ts=trigger)
    index = Index(tmp_path / "index.duckdb")
    Ingestor(index, tmp_path / "spool").catch_up()

    page = queries.runs_page(index, limit=100).set_index("run_id")
    assert page.loc["l-1", "blocked"] == "upstream Extract failed"
    assert pd.isna(page.loc["l-0", "blocked"]) and pd.isna(page.loc["l-2", "blocked"])
    assert pd.isna(page.loc["x-1", "blocked"]), "a failed run is not blocked, it failed"
    assert pd.isna(page.loc["r-1", "blocked"]), "Load may still be run by its scheduler"
    assert queries.run(index, "l-1")["blocked"] == "upstream Extract failed"
    assert queries.run(index, "l-0")["blocked"] is None
    stats = queries.task_stats(index).set_index("task")
    assert stats.loc["Load", "last_blocked"] == "upstream Extract failed"
    assert pd.isna(stats.loc["Extract", "last_blocked"])
    index.close()
