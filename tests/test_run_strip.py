"""The strip of runs over time above the runs grid: its buckets counted against the planned runs
(tests/builders.py), the window a click on a bar gives the grid, and that window in the URL."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pandas as pd
import pytest
from builders import expected_ids, plan_matches

from dashboard import clock, queries
from dashboard.changes import Change
from dashboard.components.run_strip import RunStrip, strip_source
from dashboard.components.runs_grid import RunsQuery
from dashboard.config import Config
from dashboard.hub import Hub
from dashboard.index import Index
from dashboard.index_schema import RunSummary
from dashboard.ingest import Ingestor
from dashboard.queries import RunFilter
from dashboard.spool import SpoolWriter
from dashboard.statuses import STATUSES
from dashboard.store import Store

EPOCH = dt.datetime(1970, 1, 1)


def planned_strip(world, run_filter: RunFilter, bucket: dt.timedelta) -> Counter:
    """(bucket start, status) -> runs, worked out from the plan alone."""
    counts = Counter()
    for run in world.runs:
        if plan_matches(run, run_filter, world.now) and run.trigger_time <= world.now:
            start = EPOCH + bucket * ((run.trigger_time - EPOCH) // bucket)
            counts[start, run.status] += 1
    return counts


def counted(strip) -> Counter:
    return Counter({(row.start.to_pydatetime(), status): getattr(row, status)
                    for row in strip.itertuples() for status in STATUSES if getattr(row, status)})


def drawn(data: dict[str, list], status: str) -> int:
    """The runs of `status` the strip's source draws, over all its bars."""
    return sum(count for count, drawn_status in zip(data["count"], data["status"]) if drawn_status == status)


@pytest.mark.parametrize("since", queries.TIME_RANGES)
def test_each_range_has_36_to_73_buckets_on_whole_multiples_of_their_size(world, since):
    bucket = queries.strip_bucket(queries.parse_duration(since))
    strip = queries.strip_counts(world.index, RunFilter(since=queries.parse_duration(since)), bucket, world.now)
    assert 36 <= len(strip) <= queries.STRIP_MAX_BARS + 1, "the first bucket is cut by the range"
    assert (strip["end"] - strip["start"] == bucket).all() and strip["start"].is_monotonic_increasing
    assert strip["start"].iloc[0] <= world.now - queries.parse_duration(since) < strip["end"].iloc[0]
    assert strip["start"].iloc[-1] <= world.now < strip["end"].iloc[-1]
    assert all((start - EPOCH) % bucket == dt.timedelta(0) for start in strip["start"])


@pytest.mark.parametrize("run_filter", [
    RunFilter(since=dt.timedelta(days=7)),
    RunFilter(since=dt.timedelta(hours=24), group="billing"),
    RunFilter(since=dt.timedelta(days=3), statuses=("FAILED", "RUNNING"), task_text="ORDERS"),
    RunFilter(since=dt.timedelta(hours=6)),
], ids=["7d", "24h-billing", "3d-failed-running-orders", "6h"])
def test_the_counts_per_bucket_and_status_are_exact(world, run_filter):
    bucket = queries.strip_bucket(run_filter.since)
    strip = queries.strip_counts(world.index, run_filter, bucket, world.now)
    expected = planned_strip(world, run_filter, bucket)
    assert counted(strip) == expected
    assert int(strip["runs"].sum()) == sum(expected.values()) == len(expected_ids(world, run_filter))
    assert (strip["runs"] == strip[list(STATUSES)].sum(axis=1)).all()


def test_a_window_narrows_the_runs_to_its_bucket_and_the_strip_ignores_it(world):
    week = RunFilter(since=dt.timedelta(days=7))
    bucket = queries.strip_bucket(week.since)
    strip = queries.strip_counts(world.index, week, bucket, world.now)
    busiest = strip.loc[strip["runs"].idxmax()]
    window = RunFilter(since=week.since, start=busiest["start"].to_pydatetime(), end=busiest["end"].to_pydatetime())
    ids = expected_ids(world, window)
    assert 0 < len(ids) < len(expected_ids(world, week))
    assert set(queries.runs_page(world.index, window, limit=1000, now=world.now)["run_id"]) == ids
    assert queries.count_runs(world.index, window, world.now) == busiest["runs"]
    # The end is exclusive: the bucket after it holds none of its runs.
    after = RunFilter(since=week.since, start=window.end, end=window.end + bucket)
    assert not ids & expected_ids(world, after)
    assert set(queries.runs_page(world.index, after, limit=1000, now=world.now)["run_id"]).isdisjoint(ids)


def test_the_window_reads_from_the_url_and_bad_values_are_named():
    query = RunsQuery()
    problems = query.from_url({"start": "2026-11-02T10:00:00+01:00", "end": "2026-11-02 10:00", "since": "3d"})
    assert problems == []
    assert (query.start, query.end) == ("2026-11-02T09:00:00Z", "2026-11-02T10:00:00Z"), "written in UTC"
    assert query.base_filter().start == dt.datetime(2026, 11, 2, 9) and query.base_filter().end == dt.datetime(
        2026, 11, 2, 10)
    assert query.to_url() == {"since": "3d", "start": "2026-11-02T09:00:00Z", "end": "2026-11-02T10:00:00Z"}
    assert query.window_label() == "2026-11-02 09:00–10:00"
    assert query.filtered
    problems = RunsQuery().from_url({"start": "yesterday", "end": "2026-11-02T10:00:00Z"})
    assert len(problems) == 1 and "ignored start='yesterday'" in problems[0] and "ISO 8601" in problems[0]


def test_the_strip_and_the_window_chip_read_in_the_page_s_zone():
    query = RunsQuery()
    assert query.from_url({"start": "2026-11-02T09:00:00Z", "end": "2026-11-02T10:00:00Z", "since": "3d"}) == []
    strip = pd.DataFrame({"start": [pd.Timestamp("2026-11-02 09:00")], "end": [pd.Timestamp("2026-11-02 10:00")],
                          **{status: [int(status == "SUCCESS")] for status in STATUSES}, "runs": [1]})
    with clock.fixed(clock.Clock("Asia/Tokyo")):
        assert query.window_label() == "2026-11-02 18:00–19:00"
        source = strip_source(strip)
    assert source["label"] == ["2026-11-02 18:00–19:00 Asia/Tokyo"]
    assert source["start"] == [pd.Timestamp("2026-11-02 18:00")], "the bars sit on Tokyo's wall clock"
    assert source["window"] == ["2026-11-02T09:00:00Z/2026-11-02T10:00:00Z"], "what a click sets stays UTC"


def test_a_click_on_a_bar_sets_the_grids_window_and_the_strip_highlights_it(world, tmp_path):
    store = Store(world.index, Hub(), Config(spool=world.spool, index=tmp_path / "unused.duckdb"))
    query = RunsQuery(since="7d")
    strip = RunStrip(query=query, store=store)
    data = strip.source.data
    assert sum(data["count"]) == len(expected_ids(world, query.run_filter()))
    assert [drawn(data, status) for status in STATUSES] == [
        sum(run.status == status for run in world.runs if run.run_id in expected_ids(world, query.run_filter()))
        for status in STATUSES]
    for window in set(data["window"]):  # each bar: its statuses stacked in order, from 0 to its runs
        bar = [i for i, bucket in enumerate(data["window"]) if bucket == window]
        assert [data["status"][i] for i in bar] == [status for status in STATUSES if status in
                                                     {data["status"][i] for i in bar}]
        assert [data["bottom"][i] for i in bar] == [0] + [data["top"][i] for i in bar[:-1]]
        assert data["top"][bar[-1]] == data["runs"][bar[0]] == sum(data["count"][i] for i in bar)
    busiest = max(range(len(data["runs"])), key=data["runs"].__getitem__)
    bar = [i for i, bucket in enumerate(data["window"]) if bucket == data["window"][busiest]]
    assert len(bar) > 1, "the busiest bar has runs of two statuses"
    assert f"{data['runs'][busiest]} runs" in data["summary"][busiest]
    strip.source.selected.indices = [bar[-1]]  # what a click on its top status does in the browser
    strip._clicked("indices", [], [bar[-1]])
    assert (query.start, query.end) == tuple(data["window"][busiest].split("/"))
    assert strip.source.selected.indices == bar, "the whole bar is highlighted"
    strip.source.selected.indices = [bar[0]]  # a click on the same bar's bottom status
    strip._clicked("indices", [], [bar[0]])
    assert strip.source.selected.indices == bar, "the whole bar stays highlighted"
    assert len(expected_ids(world, query.run_filter())) == data["runs"][busiest]
    assert sum(strip.source.data["count"]) == sum(data["count"]), "the strip still counts the whole range"
    query.param.update(start="", end="")  # the chip's ×
    assert strip.source.selected.indices == []
    query.param.update(group="billing")
    assert sum(strip.source.data["count"]) == len(expected_ids(world, query.run_filter())) < sum(data["count"])


def test_live_a_new_run_the_strip_could_count_is_counted_and_one_it_could_not_costs_no_query(tmp_path):
    writer, now = SpoolWriter(tmp_path / "spool", "test"), queries.utcnow()
    writer.define_task("Load", "etl")
    writer.status("r-1", "Load", "SUCCESS", ts=now - dt.timedelta(hours=1), trigger_time=now - dt.timedelta(hours=1))
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, tmp_path / "spool")
    ingestor.catch_up()
    try:
        store = Store(index, Hub(), Config(spool=tmp_path / "spool", index=tmp_path / "index.duckdb"))
        strip = RunStrip(query=RunsQuery(since="6h", group="etl"), store=store)
        assert drawn(strip.source.data, "SUCCESS") == 1
        writer.status("r-2", "Load", "FAILED", ts=now, trigger_time=now - dt.timedelta(minutes=1))
        writer.status("r-old", "Load", "FAILED", ts=now, trigger_time=now - dt.timedelta(days=2))
        ingestor.catch_up()
        old = Change(runs={"r-old": RunSummary("Load", "etl", "FAILED", now - dt.timedelta(days=2))})
        strip.changed(old)
        assert drawn(strip.source.data, "FAILED") == 0, "a run older than the range is not even queried"
        strip.changed(Change(runs={"r-2": RunSummary("Load", "etl", "FAILED", now - dt.timedelta(minutes=1))}))
        assert drawn(strip.source.data, "FAILED") == 1 and sum(strip.source.data["count"]) == 2
    finally:
        index.close()
