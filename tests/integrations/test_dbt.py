"""Real dbt into the dashboard: a small dbt-duckdb project with a model that fails and one
downstream of it, run by `dbt-ol run --consume-structured-logs` (OpenLineage events live, as
each model runs) with the file transport pointed at a spool. The index, the CLI and Chromium are
checked against dbt's own run_results.json, and `taskdash follow-dbt-logs` beside it puts dbt's
log lines into the models' runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import read_log, wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process
from venvs import ensure

PROJECT = Path(__file__).parent / "dbt_project"
TASKDASH = Path(sys.executable).parent / "taskdash"
#: dbt's result statuses -> ours (a model skipped for its failed upstream gets START and ABORT).
STATUS_OF_RESULT = {"success": "SUCCESS", "error": "FAILED", "skipped": "TERMINATED"}


@pytest.fixture(scope="module")
def dbt(tmp_path_factory):
    bin_folder = ensure("dbt")
    folder = tmp_path_factory.mktemp("dbt")
    spool = folder / "spool"
    (spool / "events").mkdir(parents=True)
    env = {**os.environ, "PATH": f"{bin_folder}{os.pathsep}{os.environ['PATH']}",  # dbt-ol runs `dbt`
           "TASKDASH_DBT_DATABASE": str(folder / "shop.duckdb"),
           # The settings a user sets (README, "Use with dbt"):
           "OPENLINEAGE__TRANSPORT__TYPE": "file",
           "OPENLINEAGE__TRANSPORT__LOG_FILE_PATH": str(spool / "events" / "openlineage.jsonl"),
           "OPENLINEAGE__TRANSPORT__APPEND": "true", "OPENLINEAGE_NAMESPACE": "dbt-test"}
    (folder / "logs").mkdir()
    with open(folder / "follower.log", "wb") as output:
        follower = subprocess.Popen([str(TASKDASH), "follow-dbt-logs", "--log", str(folder / "logs" / "dbt.log"),
                                     "--spool", str(spool)], stdout=output, stderr=subprocess.STDOUT)
    try:
        started = time.monotonic()
        done = subprocess.run([str(bin_folder / "dbt-ol"), "run", "--consume-structured-logs", "--project-dir",
                               str(PROJECT), "--profiles-dir", str(PROJECT), "--target-path", str(folder / "target"),
                               "--log-path", str(folder / "logs")], env=env, capture_output=True, text=True, cwd=folder)
        print(f"real dbt-ol run: {time.monotonic() - started:.1f} s", file=sys.stderr)
        assert done.returncode == 1, f"one model fails, so dbt exits 1:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        results = json.loads((folder / "target" / "run_results.json").read_text())["results"]
        copied = folder / "logs" / "dbt.log"
        wait_until(lambda: _all_copied(spool, copied), timeout=60, interval=0.2,
                   message="the follower to copy dbt's whole log")
    finally:
        follower.terminate()
        follower.wait(30)
    return spool, results


def _all_copied(spool: Path, dbt_log: Path) -> bool:
    """Whether the follower's state says dbt's log is copied to its end."""
    try:
        state = json.loads((spool / "follow-dbt-logs.json").read_text())
    except (OSError, ValueError):
        return False
    return state.get(str(dbt_log), [0, -1])[1] == dbt_log.stat().st_size


def runs_json(spool: Path, index: Path) -> list[dict]:
    done = subprocess.run([str(TASKDASH), "runs", "--json", "--since", "7d", "--spool", str(spool), "--index", str(index)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_runs_json_agrees_with_dbts_run_results(dbt, tmp_path):
    spool, results = dbt
    runs = {run["task"]: run for run in runs_json(spool, tmp_path / "index.duckdb")}
    assert {r["unique_id"]: r["status"] for r in results} == {
        "model.taskdash_shop.stg_orders": "success", "model.taskdash_shop.order_totals": "success",
        "model.taskdash_shop.revenue": "error", "model.taskdash_shop.revenue_report": "skipped"}
    for result in results:
        run = runs[result["unique_id"]]
        assert run["status"] == STATUS_OF_RESULT[result["status"]], result["unique_id"]
        assert run["group"] == "dbt-test" and run["agent"].startswith("dbt ")
    error = next(r["message"] for r in results if r["status"] == "error")
    assert "Conversion Error: Could not convert string \"n/a\"" in error
    assert runs["model.taskdash_shop.revenue"]["message"] == error, "dbt's own message, whole"
    invocation = runs["dbt-run-taskdash_shop"]
    assert invocation["status"] == "FAILED"
    assert len({run["trigger_time"] for run in runs.values()}) == 1, "one invocation, one cycle"
    assert not any(".sql." in task for task in runs), "SQL statements are steps, not runs"


def test_the_follower_put_each_models_log_lines_in_its_run(dbt, tmp_path):
    spool, _ = dbt
    runs = {run["task"]: run["run_id"] for run in runs_json(spool, tmp_path / "index.duckdb")}
    revenue = read_log(spool, runs["model.taskdash_shop.revenue"], "stdout")
    assert "Began running node model.taskdash_shop.revenue" in revenue
    assert "Conversion Error: Could not convert string" in revenue
    assert "model.taskdash_shop.stg_orders" not in revenue, "only the model's own lines"
    assert "Done. PASS=2 WARN=0 ERROR=1 SKIP=1" in read_log(spool, runs["dbt-run-taskdash_shop"], "stdout")
    trace = read_log(spool, runs["model.taskdash_shop.revenue"], "stderr")
    assert trace.startswith("Traceback (most recent call last):"), "the failed statement's stack trace, on its model"


@pytest.mark.ui
def test_chromium_shows_the_failed_model_and_its_skipped_downstream(dbt, tmp_path, page: Page):
    spool, _ = dbt
    with served_in_process(spool, tmp_path / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["runs"] == 5, timeout=60, message="the spool indexed")
        page.goto(f"{url}/task-runs?since=7d&search=revenue")
        failed = page.locator(".tabulator-row", has_text="model.taskdash_shop.revenue").filter(
            has_not_text="revenue_report")
        expect(failed.locator('[tabulator-field="status"]')).to_have_text("FAILED", timeout=30_000)
        skipped = page.locator(".tabulator-row", has_text="revenue_report")
        expect(skipped.locator('[tabulator-field="status"]')).to_have_text("TERMINATED")
        failed.locator("a.td-eye").first.click()
        expect(page.locator(".td-card")).to_contain_text("Conversion Error", timeout=30_000)
        expect(page.get_by_text("Began running node model.taskdash_shop.revenue")).to_be_visible(timeout=30_000)
        page.screenshot(path=str(tmp_path / "dbt-run.png"), full_page=True)
