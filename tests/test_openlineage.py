"""OpenLineage RunEvents in the spool, written by the real OpenLineage client's file transport,
read beside our own lines into a real DuckDB index and checked with a real `taskdash runs`."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid

import attr
import pytest
from builders import ingest
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    JobFacet,
    error_message_run,
    nominal_time_run,
    parent_run,
    processing_engine_run,
)

from dashboard import queries
from dashboard.spool import SpoolWriter, format_timestamp

NAMESPACE = "airflow-prod"
DAG = "billing"
LOGICAL_DATE = dt.datetime(2026, 11, 28, 6, 0, tzinfo=dt.timezone.utc)
T0 = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=30)
PRODUCER = "https://github.com/apache/airflow/tree/providers-openlineage/2.20.3"


@attr.define
class AirflowJobFacet(JobFacet):
    """The shape of the Airflow provider's `airflow` job facet (providers/openlineage/plugins/facets.py):
    the DAG's tasks, each with its downstream_task_ids, sent with the DAG run's events."""

    taskTree: dict  # noqa: N815
    taskGroups: dict  # noqa: N815
    tasks: dict


def at(seconds: int) -> str:
    return (T0 + dt.timedelta(seconds=seconds)).isoformat()


def client_writing_to(path):
    return OpenLineageClient(config={"transport": {"type": "file", "log_file_path": str(path), "append": True}})


def dag_run_event(state, run_id, seconds, logical_date):
    tasks = {"extract": {"downstream_task_ids": ["load"]}, "load": {"downstream_task_ids": ["report"]},
             "report": {"downstream_task_ids": []}}
    return RunEvent(eventType=state, eventTime=at(seconds), producer=PRODUCER,
                    run=Run(runId=run_id, facets={"nominalTime": nominal_time_run.NominalTimeRunFacet(
                        nominalStartTime=logical_date.isoformat())}),
                    job=Job(namespace=NAMESPACE, name=DAG, facets={"airflow": AirflowJobFacet(
                        taskTree={}, taskGroups={}, tasks=tasks)}))


def task_event(state, run_id, task, seconds, dag_run_id, logical_date, **facets):
    run_facets = {
        "parent": parent_run.ParentRunFacet(run=parent_run.Run(runId=dag_run_id),
                                            job=parent_run.Job(namespace=NAMESPACE, name=DAG)),
        "nominalTime": nominal_time_run.NominalTimeRunFacet(nominalStartTime=logical_date.isoformat()),
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(version="3.1.0", name="Airflow"),
        **facets}
    return RunEvent(eventType=state, eventTime=at(seconds), producer=PRODUCER,
                    run=Run(runId=run_id, facets=run_facets), job=Job(namespace=NAMESPACE, name=f"{DAG}.{task}"))


def write_airflow_like_spool(spool, logical_date=LOGICAL_DATE) -> dict[str, str]:
    """A DAG run of extract -> load -> report where load fails (report never starts), a
    cleanup run that is aborted, and one of our own runs beside them; returns the run ids."""
    ids = {name: str(uuid.uuid4()) for name in ("dag", "extract", "load", "cleanup")}
    (spool / "events").mkdir(parents=True)
    client = client_writing_to(spool / "events" / "openlineage.jsonl")
    dag = ids["dag"]
    for event in (
        dag_run_event(RunState.START, dag, 0, logical_date),
        task_event(RunState.START, ids["extract"], "extract", 1, dag, logical_date),
        task_event(RunState.COMPLETE, ids["extract"], "extract", 5, dag, logical_date),
        task_event(RunState.START, ids["load"], "load", 6, dag, logical_date),
        task_event(RunState.RUNNING, ids["load"], "load", 7, dag, logical_date),
        task_event(RunState.FAIL, ids["load"], "load", 9, dag, logical_date,
                   errorMessage=error_message_run.ErrorMessageRunFacet(
                       message="ZeroDivisionError: division by zero", programmingLanguage="python",
                       stackTrace='Traceback (most recent call last):\n  File "load.py", line 3\nZeroDivisionError')),
        task_event(RunState.START, ids["cleanup"], "cleanup", 10, dag, logical_date),
        task_event(RunState.ABORT, ids["cleanup"], "cleanup", 12, dag, logical_date),
        dag_run_event(RunState.FAIL, dag, 13, logical_date),
    ):
        client.emit(event)
    with SpoolWriter(spool, name="ours") as writer:
        writer.status("r-ours-1", "Send_Email", "SUCCESS", agent="agent-1", ts=T0, group="billing")
    return ids


@pytest.fixture(scope="module")
def airflow_like_spool(tmp_path_factory):
    folder = tmp_path_factory.mktemp("openlineage")
    ids = write_airflow_like_spool(folder / "spool")
    index = ingest(folder)
    yield folder, ids, index
    index.close()


def test_the_client_wrote_run_events_one_a_line(airflow_like_spool):
    folder, _, _ = airflow_like_spool
    lines = (folder / "spool" / "events" / "openlineage.jsonl").read_text().splitlines()
    assert len(lines) == 9
    assert all(json.loads(line)["schemaURL"].endswith("#/$defs/RunEvent") for line in lines)


def test_each_run_event_maps_onto_the_lifecycle(airflow_like_spool):
    _, ids, index = airflow_like_spool
    assert index.counts()["ingest_errors"] == 0
    runs = index.query("SELECT * FROM runs").set_index("run_id")
    assert set(runs.index) == {*ids.values(), "r-ours-1"}, "run ids are the events' UUIDs, beside our own"
    expected = {"dag": ("billing", "FAILED"), "extract": ("billing.extract", "SUCCESS"),
                "load": ("billing.load", "FAILED"), "cleanup": ("billing.cleanup", "TERMINATED")}
    for name, (task, status) in expected.items():
        run = runs.loc[ids[name]]
        assert (run.task, run.grp, run.status) == (task, NAMESPACE, status), name
    extract = runs.loc[ids["extract"]]
    assert queries.run(index, ids["extract"])["reached"] == "RUNNING,STARTED,SUCCESS"  # in name order
    assert extract.started == T0.replace(tzinfo=None) + dt.timedelta(seconds=1)
    assert extract.finished == T0.replace(tzinfo=None) + dt.timedelta(seconds=5)
    assert extract.agent == "Airflow 3.1.0", "the agent comes from the processing_engine facet"
    assert runs.loc[ids["load"]].message == "ZeroDivisionError: division by zero"
    assert runs.loc["r-ours-1"].status == "SUCCESS"


def test_the_runs_of_one_dag_run_share_its_cycle(airflow_like_spool):
    _, ids, index = airflow_like_spool
    triggers = index.query("SELECT run_id, trigger_time FROM runs").set_index("run_id").trigger_time
    assert {triggers[ids[name]] for name in ("dag", "extract", "load", "cleanup")} == {
        LOGICAL_DATE.replace(tzinfo=None)}


def test_the_dag_tree_becomes_task_dependencies(airflow_like_spool):
    _, _, index = airflow_like_spool
    tasks = index.query("SELECT task, grp, depends_on FROM tasks").set_index("task")
    assert {task: list(row.depends_on) for task, row in tasks.iterrows()} == {
        "billing.extract": [], "billing.load": ["billing.extract"], "billing.report": ["billing.load"]}
    assert set(tasks.grp) == {NAMESPACE}


def test_taskdash_runs_lists_them_as_the_grid_does(airflow_like_spool):
    folder, ids, index = airflow_like_spool
    result = subprocess.run([sys.executable, "-m", "dashboard.cli", "runs", "--json", "--spool",
                             str(folder / "spool"), "--index", str(folder / "cli.duckdb")],
                            capture_output=True, text=True, timeout=120, cwd=folder)
    assert result.returncode == 0, result.stderr
    runs = {run["run_id"]: run for run in json.loads(result.stdout)}
    load = runs[ids["load"]]
    assert (load["task"], load["group"], load["status"], load["agent"]) == (
        "billing.load", NAMESPACE, "FAILED", "Airflow 3.1.0")
    assert load["message"] == "ZeroDivisionError: division by zero"
    assert load["duration_seconds"] == 3
    assert runs[ids["cleanup"]]["status"] == "TERMINATED"


def openlineage_line(**changes):
    event = {"eventType": "START", "eventTime": format_timestamp(T0), "producer": PRODUCER,
             "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
             "run": {"runId": str(uuid.uuid4())}, "job": {"namespace": NAMESPACE, "name": "ok"}}
    for key, value in changes.items():
        if value is None:
            event.pop(key)
        else:
            event[key] = value
    return json.dumps(event).encode()


BAD_OPENLINEAGE_LINES = [
    (openlineage_line(eventType="EXPLODE"), "unknown eventType 'EXPLODE'"),
    (openlineage_line(eventType=None), "missing field 'eventType'"),
    (openlineage_line(run={"runId": "../../etc"}), "bad run_id"),
    (openlineage_line(run={}), "missing or non-text 'runId' in run"),
    (openlineage_line(job=None), "missing or non-object 'job'"),
    (openlineage_line(job={"namespace": NAMESPACE}), "missing or non-text 'name'"),
    (openlineage_line(eventTime="yesterday"), "not an ISO 8601"),
    (openlineage_line(eventTime="2999-01-01T00:00:00Z"), "over a day ahead"),
    (openlineage_line(run={"runId": str(uuid.uuid4()), "facets": {"nominalTime": "6am"}}),
     "the nominalTime facet must be an object"),
    (openlineage_line(schemaURL="https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent",
                      eventType=None), "only RunEvents are read"),
    (openlineage_line(job={"namespace": NAMESPACE, "name": "dag",
                           "facets": {"airflow": {"tasks": {"a": {"downstream_task_ids": "b"}}}}}),
     "'downstream_task_ids' must be a list"),
]


def test_bad_openlineage_lines_are_ingest_errors_and_lose_nothing_around_them(tmp_path):
    path = tmp_path / "spool" / "events" / "w.jsonl"
    path.parent.mkdir(parents=True)
    lines = []
    for bad, _ in BAD_OPENLINEAGE_LINES:
        lines += [openlineage_line(), bad]
    path.write_bytes(b"\n".join(lines) + b"\n")

    index = ingest(tmp_path)

    assert index.counts()["runs"] == len(BAD_OPENLINEAGE_LINES), "every good line around a bad one is kept"
    errors = index.query('SELECT "offset", reason FROM ingest_errors ORDER BY "offset"')
    content = path.read_bytes()
    assert len(errors) == len(BAD_OPENLINEAGE_LINES)
    for (bad, reason), (_, error) in zip(BAD_OPENLINEAGE_LINES, errors.iterrows()):
        assert content[error["offset"]:].startswith(bad)
        assert reason in error["reason"]
    index.close()


def test_openlineage_lines_among_many_take_the_bulk_path_and_come_out_the_same(tmp_path):
    """Over 256 lines a chunk goes to DuckDB, which defers OpenLineage lines to Python."""
    path = tmp_path / "spool" / "events" / "w.jsonl"
    path.parent.mkdir(parents=True)
    ours = [json.dumps({"kind": "status", "run_id": f"r-{i}", "task": "t", "status": "SUCCESS",
                        "ts": format_timestamp(T0)}).encode() for i in range(300)]
    theirs = [openlineage_line(eventType="COMPLETE", run={"runId": str(uuid.uuid4())}) for _ in range(300)]
    path.write_bytes(b"\n".join(line for pair in zip(ours, theirs) for line in pair) + b"\n")

    index = ingest(tmp_path)

    assert index.counts()["ingest_errors"] == 0
    counts = index.query("SELECT task, count(*) AS n FROM runs GROUP BY task").set_index("task").n
    assert (counts["t"], counts["ok"]) == (300, 300)
    without_nominal_time = index.query("SELECT DISTINCT trigger_time FROM runs WHERE task = 'ok'").trigger_time
    assert list(without_nominal_time) == [T0.replace(tzinfo=None)], "no nominalTime: triggered at its first event"
    index.close()


def test_an_other_event_is_read_and_changes_no_run(tmp_path):
    path = tmp_path / "spool" / "events" / "w.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(openlineage_line(eventType="OTHER") + b"\n")

    index = ingest(tmp_path)

    counts = index.counts()
    assert (counts["runs"], counts["ingest_errors"]) == (0, 0)
    index.close()


def test_a_long_error_message_is_cut_not_refused(tmp_path):
    path = tmp_path / "spool" / "events" / "w.jsonl"
    path.parent.mkdir(parents=True)
    facets = {"errorMessage": {"message": "x" * 5000, "programmingLanguage": "python"}}
    path.write_bytes(openlineage_line(eventType="FAIL", run={"runId": str(uuid.uuid4()), "facets": facets}) + b"\n")

    index = ingest(tmp_path)

    (status, message), = index.query("SELECT status, message FROM runs").itertuples(index=False)
    assert status == "FAILED"
    assert len(message) == 4096 and message.endswith("…")
    index.close()


def test_runs_without_a_nominal_time_are_one_cycle_from_their_root_runs_id(tmp_path):
    """dbt-ol sends no nominalTime; its run ids (the OpenLineage client's) are UUIDv7s, whose
    first 48 bits are when the root run (the dbt invocation) began."""
    from openlineage.client.uuid import generate_new_uuid

    invocation = str(generate_new_uuid(T0 + dt.timedelta(milliseconds=250)))
    parent = {"job": {"namespace": NAMESPACE, "name": "dbt-run-shop"}, "run": {"runId": invocation},
              "root": {"job": {"namespace": NAMESPACE, "name": "dbt-run-shop"}, "run": {"runId": invocation}}}
    lines = [openlineage_line(eventTime=format_timestamp(T0 + dt.timedelta(seconds=1)),
                              run={"runId": invocation}, job={"namespace": NAMESPACE, "name": "dbt-run-shop"})]
    for n, model in enumerate(["model.shop.stg_orders", "model.shop.revenue"]):
        lines.append(openlineage_line(eventTime=format_timestamp(T0 + dt.timedelta(seconds=5 + n)),
                                      run={"runId": str(generate_new_uuid()), "facets": {"parent": parent}},
                                      job={"namespace": NAMESPACE, "name": model}))
    path = tmp_path / "spool" / "events" / "openlineage.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\n".join(lines) + b"\n")

    index = ingest(tmp_path)

    triggers = index.query("SELECT task, trigger_time FROM runs ORDER BY task").set_index("task").trigger_time
    expected = (T0 + dt.timedelta(milliseconds=250)).replace(tzinfo=None)
    assert dict(triggers) == {"dbt-run-shop": expected, "model.shop.revenue": expected, "model.shop.stg_orders": expected}
    index.close()


def test_a_sql_step_inside_a_task_is_read_without_a_run(tmp_path):
    """dbt-ol's --consume-structured-logs sends a child run per SQL statement of a model."""
    step = {"namespace": NAMESPACE, "name": "model.shop.revenue.sql.2",
            "facets": {"jobType": {"integration": "DBT", "jobType": "SQL", "processingType": "BATCH"}}}
    model = {"namespace": NAMESPACE, "name": "model.shop.revenue",
             "facets": {"jobType": {"integration": "DBT", "jobType": "MODEL", "processingType": "BATCH"}}}
    path = tmp_path / "spool" / "events" / "openlineage.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(openlineage_line(job=step) + b"\n" + openlineage_line(job=model) + b"\n")

    index = ingest(tmp_path)

    assert list(index.query("SELECT task FROM runs").task) == ["model.shop.revenue"]
    assert index.counts()["ingest_errors"] == 0
    index.close()
