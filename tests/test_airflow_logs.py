"""taskdash follow-airflow-logs without Airflow: the run ids it computes (against the
OpenLineage client's scheme and ids a real Airflow 3.3.2 made), the log paths and lines it
reads, and how it copies (live, whole lines, once across restarts). tests/integrations/
test_airflow.py runs it beside a real Airflow."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

from openlineage.client.uuid import generate_static_uuid

from dashboard.airflow_logs import AirflowLogFollower, TaskTry, parse_log_path, render_line, task_instance_run_id

LOGICAL_DATE = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
AIRFLOW_RUN = "manual__2026-12-02T07:11:01.284371+00:00"


def test_run_ids_are_the_ones_airflows_provider_makes():
    # Made by apache-airflow 3.3.2 with apache-airflow-providers-openlineage 2.20.3 (namespace
    # "default"), read from its FAIL and COMPLETE events.
    assert task_instance_run_id("default", "taskdash_etl", "load", 1, LOGICAL_DATE) == "01a23179-de00-74f3-9d57-7e47f152e4ea"
    assert task_instance_run_id("default", "taskdash_etl", "extract", 1, LOGICAL_DATE) == "01a23179-de00-7f8e-8d1a-ad85db681944"
    for namespace, dag, task, try_number, map_index, moment in [
            ("prod", "etl", "t", 3, 7, dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc)),
            ("ns", "d.x", "group.task", 0, -1, dt.datetime(2020, 2, 29, tzinfo=dt.timezone(dt.timedelta(hours=5))))]:
        data = f"{namespace}.{dag}.{task}.{try_number}.{map_index}".encode()
        assert task_instance_run_id(namespace, dag, task, try_number, moment, map_index) == \
            str(generate_static_uuid(instant=moment, data=data))


def test_a_task_logs_path_names_its_try():
    assert parse_log_path(f"dag_id=etl/run_id={AIRFLOW_RUN}/task_id=load/attempt=2.log") == \
        TaskTry("etl", AIRFLOW_RUN, "load", 2, -1)
    assert parse_log_path("dag_id=etl/run_id=r/task_id=fan.out/map_index=4/attempt=1.log") == TaskTry("etl", "r", "fan.out", 1, 4)
    assert parse_log_path("dag_processor/2026-12-02/dags-folder/etl.py.log") is None


def test_airflows_json_log_lines_read_as_text():
    record = {"timestamp": "2026-12-02T07:11:19.240983Z", "level": "error", "event": "Task failed with exception",
              "logger": "task", "error_detail": [{"exc_type": "ValueError", "exc_value": "bad <b>row</b>",
                                                  "frames": [{"filename": "/dags/etl.py", "lineno": 21, "name": "load"}]}]}
    assert render_line(json.dumps(record).encode() + b"\n") == (
        "[2026-12-02T07:11:19.240983Z] ERROR task - Task failed with exception\n"
        '  File "/dags/etl.py", line 21, in load\n'
        "ValueError: bad <b>row</b>\n")
    assert render_line(b"plain text \xff\n") == "plain text \ufffd\n"


def write_events(spool, *events):
    with open(spool / "events" / "openlineage.jsonl", "a", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(event) + "\n")


def dag_run_start(namespace="default"):
    return {"eventType": "START", "eventTime": "2026-12-02T07:11:02Z", "job": {"namespace": namespace, "name": "etl"},
            "run": {"runId": "01a23179-de00-7b68-9574-07249a4cbe9f", "facets": {"airflowDagRun": {"dagRun": {
                "dag_id": "etl", "run_id": AIRFLOW_RUN, "logical_date": LOGICAL_DATE.isoformat(), "run_after": "2026-12-02T07:11:01Z"}}}}}


def line(event: str) -> bytes:
    return json.dumps({"timestamp": "2026-12-02T07:11:16Z", "level": "info", "event": event, "logger": "task.stdout"}).encode() + b"\n"


def test_the_follower_copies_whole_lines_once_and_waits_for_the_dag_run(tmp_path):
    logs, spool = tmp_path / "airflow-logs", tmp_path / "spool"
    source = logs / "dag_id=etl" / f"run_id={AIRFLOW_RUN}" / "task_id=load" / "attempt=1.log"
    source.parent.mkdir(parents=True)
    (spool / "events").mkdir(parents=True)
    source.write_bytes(line("first") + line("second")[:20])
    run_id = task_instance_run_id("default", "etl", "load", 1, LOGICAL_DATE)
    target = spool / "logs" / run_id / "stdout.log"

    follower = AirflowLogFollower(logs, spool)
    follower.step()
    assert not target.exists(), "the DAG run's logical date is not known yet: the log waits"

    write_events(spool, dag_run_start())
    follower.step()
    assert target.read_text() == "[2026-12-02T07:11:16Z] INFO task.stdout - first\n", "a line still being written waits"

    with open(source, "ab") as out:
        out.write(line("second")[20:] + line("third"))
    AirflowLogFollower(logs, spool).step()  # a restarted follower goes on where it stopped
    AirflowLogFollower(logs, spool).step()
    assert [text.split(" - ")[1] for text in target.read_text().splitlines()] == ["first", "second", "third"]


def test_a_fail_events_stack_trace_goes_to_stderr_once(tmp_path):
    logs, spool = tmp_path / "airflow-logs", tmp_path / "spool"
    logs.mkdir()
    (spool / "events").mkdir(parents=True)
    trace = 'Traceback (most recent call last):\n  File "/dags/etl.py", line 21, in load\nValueError: bad'
    fail = {"eventType": "FAIL", "eventTime": "2026-12-02T07:11:19Z", "job": {"namespace": "default", "name": "etl.load"},
            "run": {"runId": "01a23179-de00-74f3-9d57-7e47f152e4ea",
                    "facets": {"errorMessage": {"message": "bad", "programmingLanguage": "python", "stackTrace": trace}}}}
    bad_id = {**fail, "run": {**fail["run"], "runId": "../../etc"}}
    write_events(spool, fail, bad_id)

    AirflowLogFollower(logs, spool).step()
    AirflowLogFollower(logs, spool).step()

    assert (spool / "logs" / fail["run"]["runId"] / "stderr.log").read_text() == trace + "\n"
    assert sorted(p.name for p in (spool / "logs").iterdir()) == [fail["run"]["runId"]], "a bad run id names no folder"


def follow_command(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "dashboard.cli", "follow-airflow-logs", *args,
                           "--spool", str(tmp_path / "spool")], capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_the_command_copies_once_and_names_a_missing_log_folder(tmp_path):
    missing = follow_command(tmp_path, "--logs", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert f"no Airflow log folder at {tmp_path / 'nowhere'}" in missing.stderr

    logs = tmp_path / "airflow-logs"
    source = logs / "dag_id=etl" / f"run_id={AIRFLOW_RUN}" / "task_id=load" / "attempt=1.log"
    source.parent.mkdir(parents=True)
    source.write_bytes(line("copied by the command"))
    (tmp_path / "spool" / "events").mkdir(parents=True)
    write_events(tmp_path / "spool", dag_run_start())
    done = follow_command(tmp_path, "--logs", str(logs), "--once")
    assert done.returncode == 0, done.stderr
    run_id = task_instance_run_id("default", "etl", "load", 1, LOGICAL_DATE)
    assert "copied by the command" in (tmp_path / "spool" / "logs" / run_id / "stdout.log").read_text()


def test_a_step_over_what_changed_reads_those_logs_and_a_new_dag_runs_waiting_ones(tmp_path):
    logs, spool = tmp_path / "airflow-logs", tmp_path / "spool"
    waiting = logs / "dag_id=etl" / f"run_id={AIRFLOW_RUN}" / "task_id=load" / "attempt=1.log"
    waiting.parent.mkdir(parents=True)
    (spool / "events").mkdir(parents=True)
    waiting.write_bytes(line("written before the DAG run's event"))
    follower = AirflowLogFollower(logs, spool)
    follower.step()

    write_events(spool, dag_run_start())
    follower.step({spool / "events" / "openlineage.jsonl"})  # only the events changed
    run_id = task_instance_run_id("default", "etl", "load", 1, LOGICAL_DATE)
    assert "written before the DAG run's event" in (spool / "logs" / run_id / "stdout.log").read_text()

    with open(waiting, "ab") as out:
        out.write(line("then one more"))
    follower.step({waiting})
    assert (spool / "logs" / run_id / "stdout.log").read_text().count("\n") == 2
