"""Real Airflow 3 into the dashboard: a DAG of Python and Bash tasks with a failing task and its
downstream, run by a real scheduler with the OpenLineage provider's file transport pointed at a
spool, and `taskdash follow-airflow-logs` beside it. The index, the CLI and Chromium are checked
against what Airflow's own metadata database says."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from airflow_run import DAG_ID, TASKDASH, run_dag
from helpers import read_log, wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process
from venvs import ensure

from dashboard.airflow_logs import task_instance_run_id

#: Airflow's task instance states -> the status our runs show (upstream_failed: never started,
#: so no OpenLineage run; the graph shows it blocked by its failed upstream).
STATUS_OF_STATE = {"success": "SUCCESS", "failed": "FAILED"}


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    run = run_dag(tmp_path_factory.mktemp("airflow"), ensure("airflow"))
    print(f"real Airflow run: {', '.join(f'{k} {v:.1f} s' for k, v in run.seconds.items())}", file=sys.stderr)
    return run


def run_id_of(airflow, task_instance: dict) -> str:
    return task_instance_run_id(airflow.namespace, DAG_ID, task_instance["task_id"], task_instance["try_number"],
                                airflow.logical_date, task_instance["map_index"])


def taskdash(airflow, tmp_path, *args: str) -> str:
    done = subprocess.run([str(TASKDASH), *args, "--spool", str(airflow.spool), "--index", str(tmp_path / "index.duckdb")],
                          capture_output=True, text=True, check=True)
    return done.stdout


def test_runs_json_agrees_with_airflows_metadata(airflow, tmp_path):
    runs = json.loads(taskdash(airflow, tmp_path, "runs", "--json", "--since", "7d"))
    by_task = {run["task"]: run for run in runs}
    states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances}
    assert states == {"extract": "success", "transform": "success", "load": "failed", "report": "upstream_failed"}
    for ti in airflow.task_instances:
        run = by_task.get(f"{DAG_ID}.{ti['task_id']}")
        if ti["state"] not in STATUS_OF_STATE:
            assert run is None, "a task Airflow never started has no run"
            continue
        assert run["status"] == STATUS_OF_STATE[ti["state"]]
        assert run["run_id"] == run_id_of(airflow, ti), "the provider's run id, reproduced from Airflow's metadata"
        assert run["group"] == airflow.namespace and run["agent"].startswith("Airflow 3.")
    assert by_task[f"{DAG_ID}.load"]["message"] == "warehouse refused the load: column 'amount' is not numeric"
    assert by_task[DAG_ID]["status"] == "FAILED", "the DAG run itself is a run of the DAG's job"
    assert taskdash(airflow, tmp_path, "errors") == "", "every real OpenLineage line was read"


def test_the_follower_copied_each_tries_log_and_the_stack_trace(airflow):
    logs = {ti["task_id"]: read_log(airflow.spool, run_id_of(airflow, ti), "stdout") for ti in airflow.task_instances}
    assert "INFO task.stdout - extract: fetched batch 2 of 3" in logs["extract"]
    assert "transform: 120 rows" in logs["transform"] and "transform: done" in logs["transform"]
    assert airflow.live, "transform's first line reached the spool while transform still ran"
    assert "ValueError: warehouse refused the load: column 'amount' is not numeric" in logs["load"]
    assert logs["report"] == "", "a task that never started has no log"
    load = next(ti for ti in airflow.task_instances if ti["task_id"] == "load")
    stderr = read_log(airflow.spool, run_id_of(airflow, load), "stderr")
    assert stderr.startswith("Traceback (most recent call last):")
    assert stderr.rstrip().endswith("ValueError: warehouse refused the load: column 'amount' is not numeric")


@pytest.mark.ui
def test_chromium_shows_the_failed_task_its_log_and_the_blocked_downstream(airflow, tmp_path, page: Page):
    load = next(ti for ti in airflow.task_instances if ti["task_id"] == "load")
    with served_in_process(airflow.spool, tmp_path / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["runs"] == 4, timeout=60, message="the spool indexed")
        page.goto(f"{url}/task-runs?since=7d")
        row = page.locator(".tabulator-row", has=page.locator(f'a.td-eye[href$="/{run_id_of(airflow, load)}"]'))
        expect(row.locator('[tabulator-field="status"]')).to_have_text("FAILED", timeout=30_000)
        expect(row).to_contain_text(f"{DAG_ID}.load")

        page.goto(f"{url}/task-runs/{run_id_of(airflow, load)}")
        expect(page.locator(".td-card")).to_contain_text("warehouse refused the load", timeout=30_000)
        expect(page.get_by_text("load: writing 120 rows to the warehouse")).to_be_visible(timeout=30_000)
        page.screenshot(path=str(tmp_path / "airflow-run.png"), full_page=True)

        page.goto(f"{url}/tasks")
        expect(page.get_by_text(f"root cause {DAG_ID}.load blocks 1")).to_be_visible(timeout=60_000)
        page.screenshot(path=str(tmp_path / "airflow-tasks.png"), full_page=True)
