"""The helpers every caller shares: the index's now, how a time reads, page counts, the runs filter."""

import datetime as dt

import pandas as pd
import pytest

from dashboard.formatting import clock, utcnow
from dashboard.queries import RunFilter, page_count


def test_now_is_utc_without_a_zone_as_the_index_keeps_times():
    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    now = utcnow()
    assert now.tzinfo is None
    assert before <= now <= dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def test_a_time_reads_as_date_and_clock_or_only_the_clock_on_the_same_day():
    moment = dt.datetime(2026, 11, 28, 12, 0, 3, 120_000)
    assert clock(moment) == "2026-11-28 12:00:03"
    assert clock(pd.Timestamp(moment)) == "2026-11-28 12:00:03"
    assert clock(moment, day_of=dt.datetime(2026, 11, 28, 23, 59)) == "12:00:03"
    assert clock(moment, day_of=dt.datetime(2026, 11, 29)) == "2026-11-28 12:00:03"
    assert clock(moment, day_of=pd.NaT) == "2026-11-28 12:00:03"


def test_an_unknown_time_reads_as_the_callers_mark():
    assert clock(None) == "" and clock(pd.NaT) == ""
    assert clock(None, missing="—") == "—"


@pytest.mark.parametrize("total, size, pages", [(0, 50, 1), (1, 50, 1), (50, 50, 1), (51, 50, 2), (1_000, 500, 2),
                                                 (1_001, 500, 3)])
def test_page_count_is_at_least_one_and_rounds_up(total, size, pages):
    assert page_count(total, size) == pages


def test_the_runs_filter_from_what_a_user_asked():
    run_filter = RunFilter.from_user(["failed", "Running"], "invoice", "7d", "billing")
    assert run_filter == RunFilter(statuses=("FAILED", "RUNNING"), task_text="invoice",
                                   since=dt.timedelta(days=7), group="billing")
    assert RunFilter.from_user() == RunFilter()
    assert RunFilter.from_user(group="", since="") == RunFilter(), "empty means any"


@pytest.mark.parametrize("asked, message", [({"statuses": ["DONE"]}, "unknown status 'DONE'"),
                                            ({"since": "yesterday"}, "not a time range")])
def test_a_runs_filter_the_user_got_wrong_says_what(asked, message):
    with pytest.raises(ValueError, match=message):
        RunFilter.from_user(**asked)
