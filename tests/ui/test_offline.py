"""No page asks anything of another host (fonts, scripts, styles): the dashboard works offline.

Chromium blocks every request that is not for the dashboard's own server and records it.
"""

from __future__ import annotations

import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import block_other_hosts, dashboard_server

from dashboard.spool import SpoolWriter
from test_tasks_page import NODE_DATA


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A real `taskdash serve` process, as users run it. (A server in the test process would
    also serve the scripts of every Panel model any earlier test imported: the full suite once
    brought in Vizzu's, from cdn.jsdelivr.net.)"""
    folder = tmp_path_factory.mktemp("offline")
    writer = SpoolWriter(folder / "spool", "test")
    writer.define_task("Extract", "etl")
    writer.status("r-1", "Extract", "RUNNING", agent="agent-1")
    writer.append_log("r-1", "stdout", "one line\n")
    with dashboard_server(folder) as server:
        yield server.url


def test_no_page_loads_anything_from_another_host(served, page: Page):
    elsewhere = block_other_hosts(page, served)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    for path in ("/task-runs", "/task-runs/r-1", "/tasks"):
        page.goto(served + path)
        expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=30_000)
        if path == "/task-runs":  # the run indexed, so its page shows it
            expect(page.locator(".tabulator-row")).to_have_count(1, timeout=30_000)
    wait_until(lambda: page.evaluate(NODE_DATA), timeout=30, message="the graph drawn")
    page.wait_for_load_state("networkidle")
    assert elsewhere == [], "requests for other hosts"
    assert errors == [], "console errors"
