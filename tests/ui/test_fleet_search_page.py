"""Fleet log search on /task-runs, in Chromium: which runs printed a text, over the grid's filters,
each linking to its log at the first matching line; live; text shown as text."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process

from dashboard import queries
from dashboard.spool import SpoolWriter

PLACEHOLDER = "Which runs printed… (search every run's logs)"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fleet")
    writer = SpoolWriter(folder / "spool", "test")
    now = queries.utcnow()
    for i in range(6):
        trigger = now - dt.timedelta(minutes=10 * (i + 1))
        writer.status(f"r-{i}", f"Load_{i % 2}", "FAILED" if i % 2 else "SUCCESS", trigger_time=trigger, ts=trigger)
        writer.append_log(f"r-{i}", "stdout", "".join(f"step {n}\n" for n in range(30))
                          + ("ERROR: Deadlock detected <b>in</b> orders\n" if i % 2 else "done\n"))
    with served_in_process(folder / "spool", folder / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["log_lines"] == 6 * 31, timeout=30, message="the spool indexed")
        yield url, writer


def test_the_runs_that_printed_a_text_link_to_their_line_and_new_ones_join(served, page: Page):
    url, writer = served
    page.goto(f"{url}/task-runs")
    box = page.get_by_placeholder(PLACEHOLDER)
    box.fill("deadlock DETECTED")
    box.press("Enter")
    rows = page.locator(".td-search tbody tr")
    expect(rows).to_have_count(3, timeout=30_000)
    expect(rows.first.locator("code")).to_have_text("ERROR: Deadlock detected <b>in</b> orders")  # as text
    expect(rows.first.locator("a")).to_have_attribute("href", "/task-runs/r-1?stream=stdout&line=31")
    # A run that prints it now joins without a reload.
    writer.status("r-new", "Load_9", "RUNNING")
    writer.append_log("r-new", "stderr", "Deadlock detected again\n")
    expect(rows).to_have_count(4, timeout=30_000)
    expect(rows.first).to_contain_text("Load_9")
    rows.nth(1).locator("a").click()
    expect(page.locator('.td-line[data-line="31"]')).to_have_class(re.compile("td-addressed"), timeout=30_000)
    assert "/task-runs/r-1?" in page.url and "line=31" in page.url


def test_the_grids_filters_narrow_the_search(served, page: Page):
    url, _ = served
    page.goto(f"{url}/task-runs?search=Load_1")
    box = page.get_by_placeholder(PLACEHOLDER)
    box.fill("Deadlock")
    box.press("Enter")
    rows = page.locator(".td-search tbody tr")
    expect(rows).to_have_count(3, timeout=30_000)
    page.get_by_placeholder("Search task name…").fill("Load_0")
    expect(page.get_by_text("No run printed “Deadlock” in the runs the filters show.")).to_be_visible(timeout=30_000)


def test_the_search_is_kept_in_the_url_both_ways(served, page: Page):
    """A link with the search in it opens its results; changing the search changes the URL, beside
    the grid's own view."""
    url, _ = served
    page.goto(f"{url}/task-runs?since=7d&q=deadlock+detected+%3Cb%3Ein%3C%2Fb%3E")
    rows = page.locator(".td-search tbody tr")
    expect(rows).to_have_count(3, timeout=30_000)
    expect(page.get_by_placeholder(PLACEHOLDER)).to_have_value("deadlock detected <b>in</b>")
    expect(page.locator(".td-search caption")).to_contain_text("that printed “deadlock detected <b>in</b>”")
    box = page.get_by_placeholder(PLACEHOLDER)
    box.fill("step 2[89]")
    box.press("Enter")
    page.locator(".bk-Checkbox input[type=checkbox]").check()  # the regular expression box
    expect(rows).to_have_count(6, timeout=30_000)
    wait_until(lambda: "q=step+2%5B89%5D" in page.url and "q_regex=true" in page.url and "since=7d" in page.url,
               timeout=30, message=f"the URL follows the search (it is {page.url})")
