"""A real client: JupyterLab on a free port, Chromium opens the quick-start notebook, runs all
cells, and sees the live runs grid render with rows."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import free_port, responds

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"


@pytest.fixture
def jupyterlab(tmp_path):
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)  # the committed notebook stays without outputs
    port = free_port()
    log = open(tmp_path / "jupyterlab.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", "--ServerApp.token=", "--ServerApp.password=",
         "--ServerApp.disable_check_xsrf=True", "--LabApp.expose_app_in_browser=True",
         f"--ServerApp.root_dir={tmp_path}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: responds(url + "/api/status"), timeout=90, message="JupyterLab to listen")
        yield url
    except BaseException:
        print((tmp_path / "jupyterlab.log").read_text())
        raise
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.mark.timeout(600)
def test_the_quick_start_renders_the_runs_grid_in_jupyterlab(jupyterlab, page: Page):
    page.goto(f"{jupyterlab}/lab/tree/{NOTEBOOK.name}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session", timeout=120_000)
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                           ".status === 'idle'", timeout=120_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    rows = page.locator(".jp-OutputArea .tabulator-row")
    expect(rows.first).to_be_visible(timeout=240_000)
    assert rows.count() >= 3, "the demo's runs are in the grid"
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                           ".status === 'idle'", timeout=240_000)  # the last cell stopped the runner
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
                          ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    printed = errors.all_inner_texts()
    assert not [text for text in printed if "Traceback" in text or "Error" in text], printed
