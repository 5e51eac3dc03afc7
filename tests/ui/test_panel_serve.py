"""The page modules under the README's plain `panel serve` command (a real subprocess), in Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import free_port
from test_tasks_page import NODE_DATA

from dashboard.spool import SpoolWriter

REPO = Path(__file__).resolve().parents[2]
PAGES = [str(REPO / "dashboard" / "pages" / name) for name in ("task_runs.py", "run_detail.py", "tasks.py")]


class PanelServe:
    """`panel serve` of the three page modules on a free port, its output kept."""

    def __init__(self, folder: Path):
        config = folder / "taskdash.yaml"
        config.write_text(f"spool: {folder / 'spool'}\nindex: {folder / 'index.duckdb'}\n", encoding="utf-8")
        self.port = free_port()
        self.output: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "panel", "serve", *PAGES, "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=folder,
            env=os.environ | {"TASKDASH_CONFIG": str(config)})
        self._reader = threading.Thread(target=lambda: self.output.extend(self.process.stdout), daemon=True)
        self._reader.start()
        wait_until(lambda: any("running at" in line for line in self.output) or self.process.poll() is not None,
                   timeout=60, message="panel serve to listen")
        self.url = f"http://localhost:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(10)  # it reads to the end of the output, then the pipe is closed
        self.process.stdout.close()


@pytest.fixture
def panel_serve(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.define_task("Extract", "etl")
    writer.define_task("Load", "etl", depends_on=["Extract"])
    writer.status("r-1", "Extract", "RUNNING", agent="agent-1")
    server = PanelServe(tmp_path)
    try:
        yield server
    except BaseException:
        print("---- panel serve output ----\n" + "".join(server.output))
        raise
    finally:
        server.stop()


def test_the_tasks_page_draws_after_the_other_pages(panel_serve, page: Page):
    for path in ("/task_runs", "/run_detail?run_id=r-1"):
        page.goto(panel_serve.url + path)
        expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=30_000)
    for _ in range(2):  # and every later /tasks too
        page.goto(panel_serve.url + "/tasks")
        wait_until(lambda: len(page.evaluate(NODE_DATA)) == 2, timeout=30, message="the graph drawn")
    assert not [line for line in panel_serve.output if "Traceback" in line or "ERROR" in line], \
        "".join(panel_serve.output)
