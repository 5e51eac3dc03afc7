"""Failure signatures on /task-runs, in Chromium: the grid's failures grouped by their masked last
error line, counts live, and each group's link filtering the grid to exactly its runs."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process

from dashboard import queries
from dashboard.spool import SpoolWriter

CONNECT = "<time> ERROR could not connect to db-<n>.internal:<n> (request <id>)"
PASSWORD = 'FATAL: password authentication failed for user "…"'


def fail(writer: SpoolWriter, run_id: str, task: str, at: dt.datetime, error: str) -> None:
    writer.append_log(run_id, "stderr", f"starting {run_id}\n{error}\ncleaning up 3 files\n")
    writer.status(run_id, task, "FAILED", agent=f"agent-{len(run_id) % 2}", ts=at, trigger_time=at, exit_code=1)


def connect_error(i: int) -> str:
    return f"2026-11-0{i + 1}T10:0{i}:00Z ERROR could not connect to db-{i}.internal:54{i}2 " \
           f"(request 1b4e28ba-2fa1-11d2-883f-0016d3cca4{i}{i})"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("failures")
    writer = SpoolWriter(folder / "spool", "test")
    now = queries.utcnow()
    for i in range(4):
        fail(writer, f"db-{i}", "Load_Orders", now - dt.timedelta(minutes=5 + i), connect_error(i))
    for i in range(2):
        fail(writer, f"pw-{i}", "Sync_Users", now - dt.timedelta(minutes=20 + i),
             f'FATAL: password authentication failed for user "svc_{i}"')
    for i in range(3):  # successes print errors too, and are no failure
        at = now - dt.timedelta(minutes=30 + i)
        writer.append_log(f"ok-{i}", "stderr", connect_error(i) + "\n")
        writer.status(f"ok-{i}", "Load_Orders", "SUCCESS", ts=at, trigger_time=at, exit_code=0)
    with served_in_process(folder / "spool", folder / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["runs"] == 9 and services.index.counts()["log_lines"] == 9 * 3 - 6,
                   timeout=30, message="the spool indexed")
        yield url, writer


def grid_run_ids(page: Page) -> set[str]:
    hrefs = page.locator(".tabulator-row a.td-eye").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    return {href.rsplit("/", 1)[-1] for href in hrefs}


def test_failures_group_by_signature_live_and_each_group_filters_the_grid(served, page: Page):
    url, writer = served
    page.goto(f"{url}/task-runs")
    rows = page.locator(".td-failures tbody tr")
    expect(rows).to_have_count(2, timeout=30_000)
    expect(rows.nth(0).locator("code")).to_have_text(CONNECT)  # masked values, shown as text
    expect(rows.nth(0).locator(".td-group-runs")).to_have_text("4 runs")
    expect(rows.nth(1).locator("code")).to_have_text(PASSWORD)
    expect(rows.nth(1).locator(".td-group-runs")).to_have_text("2 runs")
    expect(rows.nth(1)).to_contain_text("Sync_Users")
    expect(page.locator(".td-new")).to_have_count(2)  # the hour before had no failure
    # A new failure joins its group without a reload.
    fail(writer, "pw-new", "Sync_Users", queries.utcnow(), 'FATAL: password authentication failed for user "x"')
    expect(rows.nth(1).locator(".td-group-runs")).to_have_text("3 runs", timeout=30_000)
    # Its link opens the grid with only that signature's runs, in a URL that can be shared.
    rows.nth(1).locator(".td-group-runs").click()
    expect(page).to_have_url(re.compile(r"[?&]failure=[0-9a-f]{12}"), timeout=30_000)
    wait_until(lambda: grid_run_ids(page) == {"pw-0", "pw-1", "pw-new"}, timeout=30,
               message="the grid shows the signature's runs")
    expect(page.locator(".td-failure-note code")).to_have_text(PASSWORD)
    expect(page.locator(".td-failures tr.td-chosen code")).to_have_text(PASSWORD)
    page.get_by_role("button", name="✕ Every run").click()
    wait_until(lambda: len(grid_run_ids(page)) == 10, timeout=30, message="the grid shows every run again")
    page.get_by_placeholder("Search task name…").fill("Nothing_Like_It")
    expect(page.get_by_text("No failures in this range")).to_be_visible(timeout=30_000)
