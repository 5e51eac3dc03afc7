"""A change the ingestor publishes while a page is being built (after its first query, before
it is shown) reaches that page at once, not at its next periodic refresh.

Each test writes to the spool from inside the page's view constructor, right after the view
first queried the index, and lets the ingestor index and publish it before the page goes on.
"""

from __future__ import annotations

import threading

from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process

from dashboard.components import live
from dashboard.components.log_viewer import LogViewer
from dashboard.components.runs_grid import RunsGrid
from dashboard.pages.task_runs import SLIDE_SECONDS
from dashboard.spool import SpoolWriter

#: Well before any periodic refresh (the runs grid's is SLIDE_SECONDS).
SHOWN_WITHIN_MS = 10_000


def publish_while_built(monkeypatch, view_class, services, write, is_it):
    """Make the first `view_class` built call `write()` once it has queried, and wait until the
    ingestor has published a change for which `is_it(change)` holds."""
    published = threading.Event()
    publish = services.hub.publish

    def publish_and_tell(change):
        publish(change)
        if is_it(change):
            published.set()

    monkeypatch.setattr(services.hub, "publish", publish_and_tell)
    build = view_class.__init__

    def build_then_write(view, *args, **kwargs):
        build(view, *args, **kwargs)
        if not published.is_set():
            write()
            wait_until(published.is_set, timeout=30, message="the write to be indexed and published")

    monkeypatch.setattr(view_class, "__init__", build_then_write)
    return published


def test_a_run_started_while_the_runs_page_is_built_appears_on_it(tmp_path, page: Page, monkeypatch):
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.status("r-0", "Fetch_Orders", "SUCCESS", agent="agent-1", exit_code=0)
    with served_in_process(tmp_path / "spool", tmp_path / "index.duckdb") as (url, services):
        published = publish_while_built(
            monkeypatch, RunsGrid, services,
            write=lambda: writer.status("r-1", "Load_Sales", "RUNNING", agent="agent-1"),
            is_it=lambda change: "r-1" in change.runs)
        page.goto(f"{url}/task-runs")
        task_cells = page.locator('.tabulator-row .tabulator-cell[tabulator-field="task"]')
        expect(task_cells).to_have_text(["Load_Sales", "Fetch_Orders"], timeout=SHOWN_WITHIN_MS)
        assert published.is_set()
        # That update reached the page before its first drawing, which answers for it: the
        # next update need not wait for the receipt timeout.
        pace = live.session_paces()[-1]  # the newest session's (an earlier test's may linger)
        wait_until(lambda: pace._receipt.delivered and pace._sent_at is None, timeout=SHOWN_WITHIN_MS / 1000,
                   message="the browser's receipt of the update delivered before its first drawing")
        print(f"\nrun r-1 indexed and published while the page was built: shown within "
              f"{SHOWN_WITHIN_MS / 1000:g} s (the grid's periodic refresh is every {SLIDE_SECONDS} s); "
              f"{pace._receipt.delivered} update(s) delivered, all drawn")


def test_lines_written_while_the_run_page_is_built_appear_on_it(tmp_path, page: Page, monkeypatch):
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.status("r-0", "Stream_Events", "RUNNING", agent="agent-1")
    writer.append_log("r-0", "stdout", "".join(f"line {n}\n" for n in range(1, 4)))
    with served_in_process(tmp_path / "spool", tmp_path / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.query("SELECT count(*) AS n FROM log_lines")["n"][0] == 3,
                   timeout=30, message="the first lines indexed")
        published = publish_while_built(
            monkeypatch, LogViewer, services,
            write=lambda: writer.append_log("r-0", "stdout", "line 4\nline 5\n"),
            is_it=lambda change: change.log_lines.get(("r-0", "stdout")) == 5)
        page.goto(f"{url}/task-runs/r-0")
        expect(page.locator('.td-line[data-line="5"] .td-text')).to_have_text("line 5", timeout=SHOWN_WITHIN_MS)
        expect(page.locator(".td-line")).to_have_count(5)
        assert published.is_set()
        print("\nlines 4-5 indexed and published while the run's page was built: shown, after lines 1-3")
