"""Runs named like the paths Panel answers itself under a page (ws, metadata, autoload.js) or
like the login page have reachable pages (issue 23): linked as /task-runs/%77s, with the real
server, real websockets and Chromium following the grid's eye links."""

from __future__ import annotations

from helpers import wait_until
from playwright.sync_api import expect
from serving import dashboard_server
from test_access import page_token, pull_document, request

from dashboard.store import RESERVED_RUN_IDS, run_segment
from dashboard.spool import SpoolWriter


def test_runs_named_ws_metadata_autoload_js_and_login_have_pages(tmp_path, page):
    writer = SpoolWriter(tmp_path / "spool", "reserved")
    for run_id in (*RESERVED_RUN_IDS, "r-ordinary"):
        writer.status(run_id, f"Task_of_{run_id}", "RUNNING", agent="agent-1")
        writer.append_log(run_id, "stdout", f"output of {run_id}\n")
        writer.status(run_id, f"Task_of_{run_id}", "SUCCESS", agent="agent-1", exit_code=0)
    with dashboard_server(tmp_path) as server:
        base = server.url
        for run_id in (*RESERVED_RUN_IDS, "r-ordinary"):
            path = f"/task-runs/{run_segment(run_id)}"
            wait_until(lambda: f"Task_of_{run_id}" in pull_document(base, path + "/ws", base,
                                                                    token=page_token(base, path)),
                       timeout=60, interval=0.5, message=f"{path} to show run {run_id!r}")
            download = request(f"{base}{path}/logs/stdout.log")
            print(f"run {run_id!r}: {path} shows its task; its download: {download.status}")
            assert download.status == 200 and download.text == f"output of {run_id}\n"
        assert request(f"{base}/task-runs/ws").status != 200, "the grid's own websocket stays where it was"

        page.goto(f"{base}/task-runs?since=7d")
        for run_id in RESERVED_RUN_IDS:
            row = page.locator(".tabulator-row", has_text=f"Task_of_{run_id}")
            href = row.locator("a.td-eye").get_attribute("href", timeout=60_000)
            assert href.endswith(f"/task-runs/{run_segment(run_id)}"), href
        for run_id in RESERVED_RUN_IDS:
            page.goto(f"{base}/task-runs?since=7d")
            page.locator(".tabulator-row", has_text=f"Task_of_{run_id}").locator("a.td-eye").click(timeout=60_000)
            expect(page.locator(".td-card")).to_contain_text(f"Task_of_{run_id}", timeout=60_000)
            print(f"the grid's eye of run {run_id!r} opens {page.url}, its details card")
