"""OpenLineage runs on the pages, in Chromium: an Airflow-shaped DAG run written by the real
OpenLineage client shows in the grid, on the failed run's page (its error message) and in the
graph (the DAG's tree, the failed task as the root cause of its blocked downstream)."""

from __future__ import annotations

import datetime as dt

import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process

from test_openlineage import NAMESPACE, write_airflow_like_spool
from test_tasks_page import NODE_DATA


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("openlineage-pages")
    logical_date = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=40)
    ids = write_airflow_like_spool(folder / "spool", logical_date)
    with served_in_process(folder / "spool", folder / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["runs"] == 5, timeout=30, message="the spool indexed")
        yield url, ids


def test_the_grid_and_the_run_page_show_the_failed_task_with_its_error(served, page: Page):
    url, ids = served
    page.goto(f"{url}/task-runs")
    row = page.locator(".tabulator-row", has=page.locator(f'a.td-eye[href$="/{ids["load"]}"]'))
    expect(row.locator('[tabulator-field="status"]')).to_have_text("FAILED", timeout=30_000)
    expect(row).to_contain_text("billing.load")
    expect(row).to_contain_text(NAMESPACE)
    expect(row).to_contain_text("Airflow 3.1.0")

    page.goto(f"{url}/task-runs/{ids['load']}")
    expect(page.locator(".td-card")).to_contain_text("ZeroDivisionError: division by zero", timeout=30_000)
    expect(page.locator('.td-timeline li[data-status="STARTED"]')).to_have_count(1)


def test_the_graph_draws_the_dag_tree_with_the_failed_task_as_root_cause(served, page: Page):
    url, _ = served
    page.goto(f"{url}/tasks")
    expect(page.get_by_text("root cause billing.load blocks 1")).to_be_visible(timeout=30_000)
    wait_until(lambda: {n["task"] for n in page.evaluate(NODE_DATA)} ==
               {"billing.extract", "billing.load", "billing.report"}, timeout=30, message="the DAG's three tasks drawn")
