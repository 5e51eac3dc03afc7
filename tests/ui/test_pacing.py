"""A tab that cannot draw gets no flood of updates: the server holds the next one back until
the browser says it drew the last, and the tab then shows the newest state at once.

The tab is frozen with Chromium's debugger (Debugger.pause): its page scripts stop, as in a
tab busy drawing. The page's receipt (the connection indicator) counts what the server sent.
"""

from __future__ import annotations

from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process

from dashboard.components import live
from dashboard.spool import SpoolWriter

#: Longer than the test can take on a slow machine, so every update sent is one the browser asked for.
RECEIPT_TIMEOUT = 120.0


def test_a_frozen_tab_gets_one_update_and_the_newest_state_once_it_draws(tmp_path, page: Page, monkeypatch):
    monkeypatch.setattr("dashboard.components.live.RECEIPT_TIMEOUT", RECEIPT_TIMEOUT)
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.status("r-0", "Fetch_Orders", "SUCCESS", agent="agent-1", exit_code=0)
    with served_in_process(tmp_path / "spool", tmp_path / "index.duckdb") as (url, services):
        page.goto(f"{url}/task-runs")
        expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=30_000)
        task_cells = page.locator('.tabulator-row .tabulator-cell[tabulator-field="task"]')
        expect(task_cells).to_have_text(["Fetch_Orders"], timeout=30_000)
        pace = wait_until(live.session_paces, message="the page's pace")[-1]  # the newest session's
        wait_until(lambda: pace._sent_at is None, message="the browser's receipt of what it shows")

        debugger = page.context.new_cdp_session(page)
        debugger.send("Debugger.enable")
        debugger.send("Debugger.pause")  # takes effect when the page next runs a script
        receipt = pace._receipt
        try:
            # Counted from what the browser drew last: an update may go out while the pause takes
            # effect (the page heard something else meanwhile), and the browser then never draws it.
            drawn = receipt.drawn
            for n in range(1, 6):
                writer.status(f"r-{n}", f"Task_{n}", "RUNNING", agent="agent-1")
                wait_until(lambda n=n: services.index.query("SELECT count(*) AS n FROM runs")["n"][0] == n + 1,
                           timeout=30, message=f"run r-{n} to be indexed")
                # Published: the session got the first; it holds the next ones back.
                try:
                    wait_until(lambda n=n: receipt.delivered > drawn and (n == 1 or pace._held_back), timeout=30,
                               message="the first update sent, and the next ones to wait for the browser's receipt")
                except AssertionError as failure:
                    raise AssertionError(f"{failure} (run {n}: {receipt.delivered - drawn} sent, drawn "
                                         f"{receipt.drawn - drawn}, {len(pace._held_back)} held back)") from None
            assert receipt.drawn == drawn, "the frozen tab drew nothing"
            sent_while_frozen = receipt.delivered - drawn
            assert sent_while_frozen == 1, f"{sent_while_frozen} updates sent to a tab that drew none"
        finally:
            debugger.send("Debugger.resume")
        print(f"\nfrozen tab: 5 runs started, {sent_while_frozen} update sent while it could not draw")

        # Drawn: the held-back changes arrive merged, asked for by the browser (not by a timeout).
        expect(task_cells).to_have_count(6, timeout=30_000)
        expect(task_cells.first).to_have_text("Task_5")
        wait_until(lambda: not pace._held_back, timeout=30, message="nothing held back")
        print(f"after it drew: {receipt.delivered - drawn} updates in all, the grid shows all 6 runs")
