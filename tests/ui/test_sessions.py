"""Browser sessions subscribe to the hub while open and leave it when they close."""

from __future__ import annotations

import pytest
from helpers import wait_until
from playwright.sync_api import expect
from serving import served_in_process

from dashboard.spool import SpoolWriter


@pytest.fixture
def served(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.define_task("Fetch_Orders", "billing")
    writer.status("r-1", "Fetch_Orders", "RUNNING", agent="agent-1")
    writer.append_log("r-1", "stdout", "hello\n")
    # Sessions whose browser left are destroyed after 0.2 s instead of Bokeh's 15 s.
    with served_in_process(tmp_path / "spool", tmp_path / "index.duckdb", check_unused_sessions_milliseconds=200,
                           unused_session_lifetime_milliseconds=200) as (url, services):
        yield url, services, writer


def test_sessions_subscribe_and_unsubscribe_when_closed(served, context):
    url, services, writer = served
    pages = []
    for path in ("/task-runs", "/task-runs/r-1", "/tasks"):
        page = context.new_page()
        page.goto(url + path)
        expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=30_000)
        pages.append(page)
    # Each page's views and its connection indicator subscribe: /task-runs its grid, its strip of
    # runs over time, its failure signatures and its fleet search, the run page its card and log
    # (one delivery), /tasks its graph and its table.
    wait_until(lambda: services.hub.subscriber_count == 5 + 2 + 3, timeout=30,
               message="the three pages' 10 subscriptions")

    writer.status("r-1", "Fetch_Orders", "SUCCESS", agent="agent-1", exit_code=0)
    expect(pages[0].locator('.tabulator-cell[tabulator-field="status"]')).to_have_text("SUCCESS", timeout=30_000)

    for page in pages:
        page.close()
    wait_until(lambda: services.hub.subscriber_count == 0, timeout=30,
               message="closed sessions to leave the hub")
