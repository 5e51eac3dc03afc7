"""Runs per hour kept between a local index's writes (`dashboard.run_hours`): after every kind of
write the status counts of a time range equal those counted from the runs themselves."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from dashboard import queries
from dashboard.index import Index
from dashboard.queries import RunFilter
from dashboard.run_hours import HourChanges, hour_of
from dashboard.statuses import STATUSES

RANGES = [RunFilter(since=dt.timedelta(hours=hours), group=group, task_text=text) for hours in (1, 6, 24, 72)
          for group in (None, "etl", "crm", "own") for text in ("", "TASK_1", "k_3", "absent")]


def counted_from_runs(index: Index, run_filter: RunFilter, now: dt.datetime) -> dict[str, int]:
    """The counts as a plain statement over the runs gives them (the path with no kept counts)."""
    where, params = run_filter.where(now)
    with index.cursor() as cur:
        rows = cur.execute(f"SELECT status, count(*) FROM runs r {where} GROUP BY status", params).fetchall()
    return dict.fromkeys(STATUSES, 0) | dict(rows)


def assert_counts_hold(index: Index, now: dt.datetime) -> None:
    for run_filter in RANGES:
        assert queries.status_counts(index, run_filter, now) == counted_from_runs(index, run_filter, now), run_filter
        for statuses in (("RUNNING",), ("SUCCESS", "FAILED")):
            view = queries.runs_view(index, replace(run_filter, statuses=statuses), 1, 3, now=now)
            where, params = replace(run_filter, statuses=statuses).where(now)
            with index.cursor() as cur:
                newest = [row[0] for row in cur.execute(
                    f"SELECT run_id FROM runs r {where} ORDER BY trigger_time DESC, "
                    "coalesce(started, 'infinity'::TIMESTAMP) DESC, updated DESC, run_id DESC LIMIT 3", params).fetchall()]
            assert view.runs["run_id"].tolist() == newest


def test_every_write_keeps_the_counts_of_each_range_equal_to_the_runs(live):
    writer, index, ingestor, now = live
    for n in range(4):
        writer.define_task(f"task_{n}", "etl" if n % 2 else "crm")
    for n in range(60):  # a run every 70 minutes over three days, some running, most done
        trigger = now - dt.timedelta(minutes=70 * n + 5)
        writer.status(f"r-{n}", f"task_{n % 4}", "TRIGGER", ts=trigger, trigger_time=trigger,
                      group="own" if n % 7 == 0 else None)
        writer.status(f"r-{n}", f"task_{n % 4}", "RUNNING", ts=trigger + dt.timedelta(minutes=1))
        if n % 3:
            writer.status(f"r-{n}", f"task_{n % 4}", "SUCCESS" if n % 5 else "FAILED", ts=trigger + dt.timedelta(minutes=2))
    edge = now - dt.timedelta(hours=24) + dt.timedelta(minutes=10)  # in the hour the 24h range starts inside
    writer.status("r-edge", "task_1", "RUNNING", ts=edge, trigger_time=edge)
    for run_id in ("r-stale-1", "r-stale-2"):  # last heard of a month ago, for a trigger time of today
        writer.status(run_id, "task_3", "RUNNING", ts=now - dt.timedelta(days=30),
                      trigger_time=now - dt.timedelta(hours=2, minutes=30))
    ingestor.catch_up()
    assert_counts_hold(index, now)

    # A run of an hour read before ends, and so does one of the hour the 24h range starts inside,
    # where a run is also heard of late; another run starts in a new hour; one written without
    # a trigger time is dated by its first event, then moved two hours earlier by its TRIGGER.
    writer.status("r-1", "task_1", "FAILED", ts=now)
    writer.status("r-edge", "task_1", "FAILED", ts=now)
    writer.status("r-late", "task_1", "RUNNING", ts=now, trigger_time=edge + dt.timedelta(minutes=5))
    writer.status("r-new", "task_0", "RUNNING", ts=now + dt.timedelta(minutes=20))
    writer.status("r-moved", "task_2", "RUNNING", ts=now - dt.timedelta(minutes=70))
    ingestor.catch_up()
    assert_counts_hold(index, now)
    moved_from = hour_of(now - dt.timedelta(minutes=70))
    writer.status("r-moved", "task_2", "TRIGGER", ts=now - dt.timedelta(hours=2), trigger_time=now - dt.timedelta(hours=2))
    ingestor.catch_up()
    assert_counts_hold(index, now)
    assert {moved_from, hour_of(now - dt.timedelta(hours=2))} <= index.hour_changes.between(index.version - 1,
                                                                                           index.version)

    # A task defined in another group moves its runs (but those reporting a group of their own).
    etl = RunFilter(since=dt.timedelta(hours=72), group="etl")
    before = sum(queries.status_counts(index, etl, now).values())
    writer.define_task("task_1", "crm")
    ingestor.catch_up()
    assert index.hour_changes.between(index.version - 1, index.version) is None
    assert_counts_hold(index, now)
    assert 0 < sum(queries.status_counts(index, etl, now).values()) < before

    # Log lines alone change no hour; a write the index cannot name the hours of (retention)
    # has every hour counted anew.
    writer.log_path("r-new", "stdout").write_text("one line\n", encoding="utf-8")
    ingestor.catch_up()
    assert index.hour_changes.between(index.version - 1, index.version) == frozenset()
    assert queries.status_counts(index, RunFilter(since=dt.timedelta(hours=6)), now)["RUNNING"] > 2
    assert index.drop_runs_older_than(10) == 2
    assert_counts_hold(index, now)


def test_hours_are_named_only_while_every_write_since_is_remembered():
    changes = HourChanges()
    changes.record(1, {10, 11})
    changes.record(2, set())
    changes.record(4, {12})
    assert changes.between(0, 2) == {10, 11}
    assert changes.between(1, 2) == frozenset()
    assert changes.between(2, 4) is None, "version 3 is a write of hours unknown"
    changes.record(5, None)
    assert changes.between(4, 5) is None
    assert changes.between(5, 5) == frozenset()


def test_a_task_text_is_kept_from_its_second_ask(live):
    """Each letter typed is a new text: it is counted by its page's statement, and its runs per hour
    are read and kept only once the same text is asked for again (a page refreshed)."""
    writer, index, ingestor, now = live
    writer.status("r-1", "load_orders", "RUNNING", ts=now, trigger_time=now - dt.timedelta(minutes=5))
    ingestor.catch_up()
    typed = [RunFilter(since=dt.timedelta(hours=6), task_text=text) for text in ("l", "lo", "loa")]
    assert [queries.runs_per_hour(index, run_filter, now) for run_filter in typed] == [None, None, None]
    assert sum(counts.sum() for _, counts in queries.runs_per_hour(index, typed[-1], now)) == 1
    assert queries.runs_view(index, typed[-1], now=now).total == 1


def test_texts_asked_once_never_push_out_the_texts_kept(live):
    """A word typed letter by letter asks for each of its beginnings once: those are remembered
    apart, and the texts asked for twice (kept) stay kept however many are typed."""
    from dashboard.run_hours import ASKED_ONCE_KEPT, KEPT_CONDITIONS

    writer, index, ingestor, now = live
    writer.status("r-1", "load_orders", "RUNNING", ts=now, trigger_time=now - dt.timedelta(minutes=5))
    ingestor.catch_up()
    hours = index.run_hours
    kept = [("r.task LIKE ?", (f"%{n}%",)) for n in range(KEPT_CONDITIONS)]
    for condition in kept * 2:
        hours.matching(*condition)
    first = {condition: hours.matching(*condition) for condition in kept}
    assert None not in first.values()
    for n in range(3 * KEPT_CONDITIONS):  # typed once each
        assert hours.matching("r.task LIKE ?", (f"%typed {n}%",)) is None
    assert all(hours.matching(*condition) is first[condition] for condition in kept), "a kept text was dropped"
    typed = [("r.task LIKE ?", (f"%letter {n}%",)) for n in range(ASKED_ONCE_KEPT + 1)]
    for condition in typed:
        hours.matching(*condition)
    assert hours.matching(*typed[0]) is None, "the oldest text asked once is forgotten"
    assert hours.matching(*typed[-1]) is not None, "a text asked once is kept when asked again"
