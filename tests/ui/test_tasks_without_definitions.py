"""/tasks on a spool whose tool defines no tasks, in Chromium: the tasks seen in runs are drawn
(new ones live, ad hoc ones not), a note says why they have no dependencies, and once the
spool defines tasks the graph is theirs and the others are named. A server of its own: the
process's services belong to one served spool at a time."""

from __future__ import annotations

from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process
from test_tasks_page import node_data

from dashboard.spool import SpoolWriter
from dashboard.statuses import COLORS


def test_a_spool_without_definitions_draws_the_tasks_seen_in_runs_and_says_so(tmp_path, page: Page):
    writer = SpoolWriter(tmp_path / "spool", "other-tool")
    writer.status("x-1", "nightly.extract", "SUCCESS", group="nightly")
    writer.status("x-2", "nightly.load", "FAILED", exit_code=1)
    with served_in_process(tmp_path / "spool", tmp_path / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["runs"] == 2, timeout=30, message="the spool indexed")
        page.goto(f"{url}/tasks")
        note = page.locator(".td-definitions-note")
        expect(note).to_contain_text("No task definitions: the 2 tasks seen in runs are drawn without dependencies",
                                     timeout=30_000)
        wait_until(lambda: set(node_data(page)) == {"nightly.extract", "nightly.load"}, timeout=30,
                   message="the two tasks drawn")
        assert node_data(page)["nightly.load"]["fill"] == COLORS["FAILED"]
        assert node_data(page)["nightly.extract"]["group"] == "nightly"

        writer.status("x-3", "nightly.report", "RUNNING")  # a new task, live
        writer.status("a-1", "Adhoc_echo", "RUNNING", adhoc=True)  # no part of the graph
        wait_until(lambda: set(node_data(page)) == {"nightly.extract", "nightly.load", "nightly.report"},
                   timeout=30, message="the new task drawn without a reload, the ad hoc run's not")
        expect(note).to_contain_text("the 3 tasks seen in runs")
        expect(page.locator(".tabulator-row", has_text="nightly.report")).to_be_visible()

        # Once the spool defines tasks, the graph is theirs; the others are named.
        writer.define_task("nightly.report", "nightly", ["nightly.load"])
        expect(note).to_contain_text("1 task with runs but no definition is not drawn: nightly.extract",
                                     timeout=30_000)
        wait_until(lambda: set(node_data(page)) == {"nightly.load", "nightly.report"}, timeout=30,
                   message="the defined task and its upstream drawn")
        nodes = node_data(page)
        assert nodes["nightly.load"]["x"] < nodes["nightly.report"]["x"]
        assert nodes["nightly.load"]["group"] == "not defined", "an upstream without a definition"
