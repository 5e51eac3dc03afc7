"""A server in lake mode: two spool "hosts" shipped by real `taskdash ship` processes, one
`taskdash serve --catalog …` that ingests nothing, and Chromium showing runs of both, live."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import write_host_spool
from playwright.sync_api import expect
from serving import dashboard_server, ship, stopped


@pytest.mark.lake
@pytest.mark.timeout(600)
def test_a_lake_server_shows_runs_shipped_from_two_hosts_and_new_ones_live(lake, tmp_path, page):
    spools = {host: tmp_path / host / "spool" for host in ("east", "west")}
    for host, spool in spools.items():
        write_host_spool(spool, host, range(3), lines=5)
    ships = [ship(spool, lake.catalog, Path(lake.data_path), host) for host, spool in spools.items()]
    try:
        # the server's own spool is empty: whatever it shows came through the lake
        with dashboard_server(tmp_path, "--catalog", lake.catalog, "--data-path", lake.data_path) as server:
            page.goto(f"{server.url}/task-runs")
            page.evaluate("window.__no_reload_marker = true")
            for run_id in ("east-0001", "west-0002"):
                expect(page.locator(f'.tabulator-row a.td-eye[href$="/{run_id}"]')).to_be_visible(timeout=120_000)
            write_host_spool(spools["west"], "west", range(7, 8), lines=5)
            row = page.locator(".tabulator-row", has=page.locator('a.td-eye[href$="/west-0007"]'))
            expect(row.locator('.tabulator-cell[tabulator-field="status"]')).to_have_text("SUCCESS", timeout=60_000)
            assert page.evaluate("window.__no_reload_marker === true"), "the page was reloaded"
            page.screenshot(path=str(tmp_path / "lake-task-runs.png"))

            page.goto(f"{server.url}/task-runs/east-0000")
            expect(page.get_by_text("east run 0 line 4 ok")).to_be_visible(timeout=60_000)
    finally:
        outputs = [stopped(process) for process in ships]
    assert all("Traceback" not in output for output in outputs), outputs
