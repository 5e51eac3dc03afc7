"""Each hour's longest runs kept between a local index's writes (`dashboard.longest_runs`): after
every kind of write, every page of a time range sorted by duration, longest first, is the one the
plain statement over the runs gives."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from dashboard import longest_runs, queries
from dashboard.components.runs_grid import RunsGrid
from dashboard.config import Config
from dashboard.formatting import utcnow
from dashboard.hub import Hub
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.queries import RunFilter
from dashboard.spool import SpoolWriter
from dashboard.store import Store

RANGES = [RunFilter(since=dt.timedelta(hours=hours)) for hours in (1, 6, 24, 72)]


def kept_and_plain_pages(index: Index, now: dt.datetime, limit: int) -> list[tuple]:
    """(range, offset, the page from the runs kept, the page of the plain statement) for every page
    of each range until KEPT_PER_HOUR runs deep."""
    pages = []
    for run_filter in RANGES:
        hours = queries.runs_per_hour(index, run_filter, now)
        for offset in range(0, longest_runs.KEPT_PER_HOUR - limit + 1, limit):
            kept = queries.runs_page(index, run_filter, limit, offset, "duration", True, now, None, hours)
            plain = queries.runs_page(index, run_filter, limit, offset, "duration", True, now, None, None)
            pages.append((run_filter.since, offset, kept, plain))
    return pages


def assert_pages_hold(index: Index, now: dt.datetime) -> None:
    for limit in (1, 2, 3):
        for since, offset, kept, plain in kept_and_plain_pages(index, now, limit):
            assert kept["run_id"].tolist() == plain["run_id"].tolist(), (since, offset, limit)
            pd.testing.assert_frame_equal(kept, plain, obj=f"{since}, {offset}, {limit}")


@pytest.fixture
def live(live, monkeypatch):
    """The live spool, index and ingestor (conftest), with 4 runs kept an hour, fewer than most
    hours hold."""
    monkeypatch.setattr(longest_runs, "KEPT_PER_HOUR", 4)
    return live


def test_every_write_keeps_the_longest_runs_of_each_range_those_of_the_runs(live, monkeypatch):
    writer, index, ingestor, now = live
    reads = []
    read_hours = longest_runs._read_hours
    monkeypatch.setattr(longest_runs, "_read_hours", lambda cur, select, duration, params, hours: (
        reads.append(sorted(hours)) or read_hours(cur, select, duration, params, hours)))
    for n in range(400):  # 400 runs over three days, five an hour or so; durations shared across hours
        trigger = now - dt.timedelta(minutes=11 * n + 3)
        writer.status(f"r-{n:03d}", f"task_{n % 4}", "TRIGGER", ts=trigger, trigger_time=trigger)
        if n % 13 == 0:
            continue  # not started
        writer.status(f"r-{n:03d}", f"task_{n % 4}", "RUNNING", ts=trigger + dt.timedelta(seconds=30))
        if n % 9:
            seconds = 30 + (n * 37) % 600 if n % 5 else 90  # a fifth of them last exactly 90 s
            writer.status(f"r-{n:03d}", f"task_{n % 4}", "SUCCESS" if n % 7 else "FAILED",
                          ts=trigger + dt.timedelta(seconds=30 + seconds))
    ingestor.catch_up()
    assert_pages_hold(index, now)
    assert reads, "the pages were read from the runs kept"

    # Asked again with nothing written, every hour is kept; a run still going grows longer.
    reads.clear()
    later = now + dt.timedelta(minutes=40)
    assert_pages_hold(index, later)
    assert reads == []

    # A run ends in an hour read before, one still going is heard of late for the hour a range starts
    # inside, a new one starts, and one is moved two hours earlier by its TRIGGER: only the hours
    # changed are read again.
    writer.status("r-010", "task_2", "SUCCESS", ts=now + dt.timedelta(hours=3))
    edge = now - dt.timedelta(hours=24) + dt.timedelta(minutes=10)
    writer.status("r-late", "task_1", "SUCCESS", ts=edge + dt.timedelta(hours=40), trigger_time=edge)
    writer.status("r-late", "task_1", "RUNNING", ts=edge + dt.timedelta(minutes=1))
    writer.status("r-new", "task_0", "RUNNING", ts=now - dt.timedelta(minutes=20))
    writer.status("r-100", "task_0", "TRIGGER", ts=now - dt.timedelta(hours=24), trigger_time=now - dt.timedelta(hours=20))
    ingestor.catch_up()
    reads.clear()
    assert_pages_hold(index, later)
    assert reads and all(len(hours) < 8 for hours in reads), reads

    # A task defined in another group, and retention: writes that name no hours forget them all.
    writer.define_task("task_1", "crm")
    ingestor.catch_up()
    reads.clear()
    assert_pages_hold(index, later)
    assert max(map(len, reads)) > 20
    assert index.drop_runs_older_than(2) > 0
    assert_pages_hold(index, later)


def test_a_page_past_the_runs_kept_or_into_runs_not_started_is_read_by_its_statement(live):
    writer, index, ingestor, now = live
    for n in range(12):
        trigger = now - dt.timedelta(minutes=5 * n)
        writer.status(f"r-{n}", "task", "TRIGGER", ts=trigger, trigger_time=trigger)
        if n % 4 == 1:
            writer.status(f"r-{n}", "task", "RUNNING", ts=trigger)
            writer.status(f"r-{n}", "task", "SUCCESS", ts=trigger + dt.timedelta(seconds=n))
    ingestor.catch_up()
    week = RunFilter(since=dt.timedelta(days=7))
    hours = queries.runs_per_hour(index, week, now)
    select, duration = queries._RUN_SELECT, f"{queries._DURATION_US} / 1e6"
    page = index.longest_runs.page(select, duration, [now], hours, now - week.since, 3, 0)
    assert page["run_id"].to_pylist() == ["r-9", "r-5", "r-1"]
    assert index.longest_runs.page(select, duration, [now], hours, now - week.since, 2, 2) is None, "r-1, then runs not started"
    assert index.longest_runs.page(select, duration, [now], hours, now - week.since, 5, 0) is None, "deeper than 4 an hour"
    runs = queries.runs_page(index, week, 2, 2, "duration", True, now, None, hours)
    assert runs["run_id"].tolist() == ["r-1", "r-8"]  # (no duration: by run id, last first)
    total = queries.count_runs(index, week, now)  # the last page of the shortest first, read from its end:
    last = queries.runs_page(index, week, 2, total - 2, "duration", False, now, total, hours)
    assert last["run_id"].tolist() == ["r-7", "r-8"]  # runs not started, last (by run id)


def test_the_runs_grid_sorted_by_duration_shows_the_longest_runs_kept(tmp_path, monkeypatch):
    """The grid asks through the pages' Store, as a served page does."""
    writer = SpoolWriter(tmp_path / "spool", "test")
    now = utcnow()
    for n in range(60):
        trigger = now - dt.timedelta(minutes=20 * n + 5)
        writer.status(f"r-{n:02d}", f"task_{n % 3}", "RUNNING", ts=trigger, trigger_time=trigger)
        writer.status(f"r-{n:02d}", f"task_{n % 3}", "SUCCESS", ts=trigger + dt.timedelta(seconds=(n * 7) % 61))
    writer.close()
    reads = []
    read_hours = longest_runs._read_hours
    monkeypatch.setattr(longest_runs, "_read_hours", lambda *args: reads.append(args[-1]) or read_hours(*args))
    index = Index(tmp_path / "index.duckdb")
    try:
        Ingestor(index, tmp_path / "spool").catch_up()
        store = Store(index, Hub(), Config(spool=tmp_path / "spool", index=tmp_path / "index.duckdb"))
        grid = RunsGrid(store=store, sort="duration", since="24h")
        longest = sorted(((n * 7) % 61, f"r-{n:02d}") for n in range(60) if 20 * n + 5 < 24 * 60)
        assert list(grid.grid.value["run_id"]) == [run_id for _, run_id in reversed(longest)][:grid.page_size]
        assert reads, "read from the runs kept"
    finally:
        index.close()
