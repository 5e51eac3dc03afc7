"""A run page asked for before its run is ingested says so, then opens the run once it arrives."""

from __future__ import annotations

from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_component, served_in_process

from dashboard.pages.run_detail import Reload
from dashboard.spool import SpoolWriter


def test_a_run_page_opens_its_run_once_it_is_ingested(tmp_path, page: Page):
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.status("r-early", "Early", "RUNNING")
    with served_in_process(tmp_path / "spool", tmp_path / "index.duckdb") as (url, _):
        page.goto(f"{url}/task-runs/r-later")
        expect(page.get_by_text("Run not found")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("this page opens it as soon as it is")).to_be_visible()
        writer.status("r-later", "Late_Arrival", "RUNNING")
        writer.append_log("r-later", "stdout", "here at last\n")
        expect(page.locator(".td-card")).to_contain_text("Late_Arrival", timeout=30_000)
        expect(page.locator(".td-line").first).to_contain_text("here at last", timeout=30_000)
        page.goto(f"{url}/task-runs/r-never")  # a mistyped id stays on the notice, quietly
        expect(page.get_by_text("Run not found")).to_be_visible(timeout=30_000)


def test_a_reload_already_due_when_the_browser_gets_the_page_still_reloads(page: Page):
    # The run can arrive between the page's first request and its connection: the browser then
    # gets a Reload that is due from the start, which no later change announces.
    sessions = []

    def build():
        sessions.append(len(sessions))
        return Reload(due=len(sessions) == 1)  # due in the first session only: one reload, no loop

    with served_component(build) as url:
        page.goto(url)
        wait_until(lambda: len(sessions) >= 2, timeout=30, message="the page to reload itself")
        # The reloaded page drawn, then closed while its server still answers: a page caught loading
        # from a server stopped under it could hang the browser's closing of it (seen in full runs).
        expect(page.locator("[id^=anchor]")).to_be_attached(timeout=30_000)
        page.close()
