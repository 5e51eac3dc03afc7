"""Blocked is not waiting, in Chromium: a run whose upstream of the same cycle failed says
it is blocked in the grid, on its page and in the graph; a run still waiting does not; the
failed run says how many it blocks.

The spool is another scheduler's: it leaves the blocked run ACTIVE (the built-in runner
ends such runs TERMINATED itself, see tests/test_runner.py).
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process

from dashboard import queries
from dashboard.spool import SpoolWriter
from test_tasks_page import NODE_DATA

BLOCKED = "BLOCKED: upstream Extract failed"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blocked")
    writer = SpoolWriter(folder / "spool", "test")
    writer.define_task("Extract", "etl")
    writer.define_task("Load", "etl", depends_on=["Extract"])
    now = queries.utcnow()
    earlier, cycle, cycle2 = now - dt.timedelta(minutes=20), now - dt.timedelta(minutes=5), now - dt.timedelta(minutes=2)
    for run_id, task, statuses, trigger in [
            ("x-0", "Extract", ("IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING"), earlier),
            ("l-0", "Load", ("IDLE", "ACTIVE"), earlier),  # waiting for x-0
            ("x-1", "Extract", ("IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING", "FAILED"), cycle),
            ("l-1", "Load", ("IDLE", "ACTIVE"), cycle),  # blocked: x-1 failed
            ("x-2", "Extract", ("IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING", "FAILED"), cycle2),
            ("l-2", "Load", ("IDLE", "ACTIVE", "TERMINATED"), cycle2)]:  # blocked, ended as the runner ends them
        for step, status in enumerate(statuses):
            writer.status(run_id, task, status, ts=trigger + dt.timedelta(seconds=step), trigger_time=trigger,
                          agent="agent-1")
    with served_in_process(folder / "spool", folder / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["runs"] == 6, timeout=30, message="the spool indexed")
        yield url


def row(page: Page, run_id: str):
    return page.locator(".tabulator-row", has=page.locator(f'a.td-eye[href$="/{run_id}"]'))


def drawn_boxes(*locators) -> list[dict] | None:
    """The boxes of elements all drawn at once; None while one is not (the grid redraws its rows)."""
    boxes = [locator.bounding_box() for locator in locators]
    return None if None in boxes else boxes


def test_the_grid_tells_a_blocked_run_from_a_waiting_one(served, page: Page):
    page.goto(f"{served}/task-runs")
    expect(row(page, "l-1").locator(".td-blocked")).to_have_text(BLOCKED, timeout=30_000)
    expect(row(page, "l-1").locator("a.td-blocked")).to_have_attribute("href", "/task-runs/x-1")  # its root cause
    # On a line of its own, whole inside its cell (beside a long chain the cell's ellipsis hid it).
    for run_id in ("l-1", "l-2"):
        tag = row(page, run_id).locator(".td-blocked")
        expect(tag).to_have_text(BLOCKED)
        cell = row(page, run_id).locator(".tabulator-cell", has=page.locator(".td-blocked"))
        chain = row(page, run_id).locator(".td-chain")
        tag_box, cell_box, chain_box = wait_until(lambda: drawn_boxes(tag, cell, chain), timeout=15,
                                                  message=f"{run_id}'s tag, cell and chain drawn")
        assert tag_box["x"] + tag_box["width"] <= cell_box["x"] + cell_box["width"], (run_id, tag_box, cell_box)
        assert tag_box["y"] >= chain_box["y"] + chain_box["height"] - 1, "under the chain"
    # Hovered, a row stays light and its tag and links keep their colours (they turned white).
    row(page, "l-1").locator(".td-task, [tabulator-field='task']").first.hover()
    expect(row(page, "l-1")).to_have_css("background-color", "rgb(219, 234, 254)")
    expect(row(page, "l-1").locator(".td-blocked")).to_have_css("color", "rgb(220, 38, 38)")
    expect(row(page, "l-1").locator(".td-eye")).to_have_css("color", "rgb(37, 99, 235)")
    expect(row(page, "l-1").locator('[tabulator-field="status"]')).to_have_text("ACTIVE")
    expect(row(page, "l-0").locator(".td-step.td-current")).to_have_text("ACTIVE")
    expect(row(page, "l-0").locator(".td-blocked")).to_have_count(0)
    # The root cause says how many runs of its cycle it holds; a run still going holds none.
    expect(row(page, "x-1").locator(".td-blocks")).to_have_text("blocks 1")
    expect(row(page, "x-0").locator(".td-blocks")).to_have_count(0)


def test_a_blocked_run_page_says_so_and_does_not_wait_for_logs(served, page: Page):
    page.goto(f"{served}/task-runs/l-1")
    expect(page.locator(".td-card .td-blocked")).to_have_text(BLOCKED, timeout=30_000)
    expect(page.locator('.td-timeline li[data-status="BLOCKED"]')).to_contain_text("can no longer start")
    expect(page.locator(".td-timeline li.td-now")).to_have_count(0)
    expect(page.locator('.td-timeline li[data-status="ACTIVE"]')).to_have_class(re.compile("td-done"))
    expect(page.get_by_text("Following the newest")).to_have_count(0)
    # Its root cause, named and linked; there, how many runs it blocks.
    root = page.locator(".td-card a.td-root-cause")
    expect(root).to_have_text("Extract")
    expect(page.locator(".td-card")).to_contain_text(re.compile(r"blocked by Extract, FAILED \d\d:\d\d:\d\d"))
    root.click()
    expect(page).to_have_url(re.compile(r"/task-runs/x-1$"), timeout=30_000)
    expect(page.locator(".td-card .td-blocks")).to_have_text("blocks 1", timeout=30_000)
    expect(page.locator(".td-card")).to_contain_text("run of its cycle (same trigger time) can no longer start")

    page.goto(f"{served}/task-runs/l-0")
    expect(page.locator(".td-timeline li.td-now")).to_have_attribute("data-status", "ACTIVE", timeout=30_000)
    expect(page.locator(".td-blocked")).to_have_count(0)


def test_the_graph_marks_the_blocked_task(served, page: Page):
    page.goto(f"{served}/tasks")
    wait_until(lambda: {n["task"]: n["role"] for n in page.evaluate(NODE_DATA)}.get("Load") ==
               "⊘ BLOCKED · upstream Extract failed", timeout=30, message="Load marked blocked")
