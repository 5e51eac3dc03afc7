"""A small real DAG for the Airflow integration test: Python and Bash tasks, one failing
task (a Python exception, so its FAIL event carries a message and a stack trace) and its
downstream, which Airflow marks upstream_failed and never starts."""

from __future__ import annotations

import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def extract() -> None:
    for n in range(3):
        print(f"extract: fetched batch {n} of 3")


def load() -> None:
    print("load: writing 120 rows to the warehouse")
    raise ValueError("warehouse refused the load: column 'amount' is not numeric")


with DAG(
    dag_id="taskdash_etl",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    tags=["taskdash-test"],
):
    extract_task = PythonOperator(task_id="extract", python_callable=extract)
    transform_task = BashOperator(task_id="transform", bash_command=(
        # The pause lets the test see the first line copied while the task still runs.
        "echo 'transform: 120 rows'; echo 'transform: warning on stderr' >&2; sleep 6; echo 'transform: done'"))
    load_task = PythonOperator(task_id="load", python_callable=load)
    report_task = BashOperator(task_id="report", bash_command="echo 'report: never runs'")
    extract_task >> transform_task >> load_task >> report_task
