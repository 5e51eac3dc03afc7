"""Smoke test: `taskdash serve --demo` shows real runs live in Chromium, without a reload."""

from __future__ import annotations

import re

from serving import dashboard_server
from playwright.sync_api import expect

TERMINAL = re.compile(r"^(SUCCESS|FAILED|TERMINATED)$")


def test_demo_runs_appear_and_a_running_run_finishes_without_reload(tmp_path, page):
    with dashboard_server(tmp_path, "--demo") as server:
        page.goto(f"{server.url}/task-runs")
        page.evaluate("window.__no_reload_marker = true")
        rows = page.locator(".tabulator-row")
        expect(rows.first).to_be_visible(timeout=60_000)

        running = page.locator(".tabulator-row", has=page.locator(".tabulator-cell", has_text=re.compile(r"^RUNNING$")))
        expect(running.first).to_be_visible(timeout=60_000)
        href = running.first.locator("a").get_attribute("href")
        run_id = href.rsplit("/", 1)[-1]

        same_run = page.locator(".tabulator-row", has=page.locator(f'a.td-eye[href$="/{run_id}"]'))
        status_cell = same_run.locator('.tabulator-cell[tabulator-field="status"]')
        expect(status_cell).to_have_text(TERMINAL, timeout=120_000)
        assert page.evaluate("window.__no_reload_marker === true"), "the page was reloaded"
