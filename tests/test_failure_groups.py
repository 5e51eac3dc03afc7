"""The runs page's Failure signatures (components.failure_groups) without a browser: its rows, pages,
links, empty state and live groups, from a notebook's store."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

from helpers import wait_until

from dashboard import open_store, queries
from dashboard.components.failure_groups import EMPTY, GROUPS_SHOWN, FailureGroups
from dashboard.components.runs_grid import RunsQuery
from dashboard.spool import SpoolWriter


def fail(writer: SpoolWriter, run_id: str, error: str, minutes_ago: float, task: str = "Load") -> None:
    at = queries.utcnow() - dt.timedelta(minutes=minutes_ago)
    writer.append_log(run_id, "stderr", f"{error}\n")
    writer.status(run_id, task, "FAILED", agent="agent-1", ts=at, trigger_time=at)


def test_groups_page_link_and_join_live_over_the_query(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "test")
    for way in range(GROUPS_SHOWN + 2):  # one more way a run than the last: the most first
        for n in range(way + 1):
            fail(writer, f"w{way}-{n}", f"RuntimeError: step {chr(65 + way)} <b>gave up</b> after {n} s", 10 + n)
    fail(writer, "old", "RuntimeError: step A <b>gave up</b> after 1 s", 60 * 30)  # the day before
    with open_store(tmp_path / "spool") as store:
        wait_until(lambda: store.counts()["log_lines"] == 79, timeout=30, message="the spool indexed")
        query = RunsQuery(since="24h")
        groups = store.failure_groups(grid=query)
        assert isinstance(groups, FailureGroups)
        html = groups.table.object
        assert html.count("<tr class") + html.count("<tr>") - 1 == GROUPS_SHOWN  # (the header's row)
        assert "step L &lt;b&gt;gave up&lt;/b&gt; after &lt;n&gt; s" in html and "<b>gave up" not in html
        assert groups.card.title == "Failure signatures · 12 signatures · 78 failed runs · 11 new"
        assert ">12 runs</a>" in html and ">3 runs</a>" in html and ">1 run<" not in html
        groups.more.clicks += 1  # the next page: the two smallest
        assert groups.page == 2 and groups.table.object.count(">1 run</a>") == 1
        link = re.search(r'href="([^"]+)"', groups.table.object)[1].replace("&amp;", "&")
        args = parse_qs(urlsplit(link).query)
        assert urlsplit(link).path == "/task-runs" and set(args) == {"failure"}, link
        # Another failure of the smallest signature joins it, live.
        fail(writer, "w0-new", "RuntimeError: step A <b>gave up</b> after 99 s", 1)
        wait_until(lambda: "79 failed runs" in groups.card.title, timeout=30, message="the new failure joined")
        assert groups.table.object.count(">2 runs</a>") == 2 and ">1 run</a>" not in groups.table.object
        # The query's filters narrow the groups; none: the empty state.
        query.search = "no such task"
        assert groups.page == 1 and EMPTY in groups.table.object
        assert groups.card.title == "Failure signatures · no failures"
