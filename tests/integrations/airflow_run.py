"""One real Airflow 3 DAG run, as production runs it: the API server (the tasks' execution API),
the scheduler and the DAG processor, each a real process, LocalExecutor, SQLite metadata, the
OpenLineage provider's file transport writing into a spool's events/, and `taskdash
follow-airflow-logs` copying the task logs into the spool while the tasks run."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from helpers import wait_until
from serving import free_port

DAGS = Path(__file__).parent / "airflow_dags"
DAG_ID = "taskdash_etl"
TASKDASH = Path(sys.executable).parent / "taskdash"


@dataclass(frozen=True)
class AirflowRun:
    spool: Path
    dag_run_id: str            # Airflow's run id
    logical_date: dt.datetime
    namespace: str
    task_instances: list[dict]  # Airflow's metadata: task_id, state, try_number, map_index
    seconds: dict[str, float]  # how long each phase took
    live: bool                 # transform's first line was in the spool before transform ended


def _started(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    handle = open(log, "wb")
    process = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    handle.close()
    return process


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _all_events(spool: Path) -> list[dict]:
    events = []
    for path in (spool / "events").glob("*.jsonl"):
        text = path.read_text(encoding="utf-8")
        events.extend(json.loads(line) for line in text.split("\n")[:-1] if line)  # whole lines only
    return events


def _dag_run_events(spool: Path) -> list[dict]:
    return [e for e in _all_events(spool) if e.get("job", {}).get("name") == DAG_ID]


def run_dag(folder: Path, airflow_bin: Path) -> AirflowRun:
    """Run the test DAG once through a real scheduler; return where its events and logs went
    and what Airflow's metadata database says of its task instances."""
    import time

    spool, home = folder / "spool", folder / "airflow-home"
    (spool / "events").mkdir(parents=True)
    (home / "logs").mkdir(parents=True)
    port = free_port()
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
           "AIRFLOW__API_AUTH__JWT_SECRET": "taskdash-integration-test-" + "x" * 32,
           "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1", "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
           # The settings a user pastes (README, "Use with Airflow"):
           "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
               {"type": "file", "log_file_path": str(spool / "events" / "openlineage.jsonl"), "append": True}),
           "AIRFLOW__OPENLINEAGE__NAMESPACE": "airflow-test"}
    airflow = str(airflow_bin / "airflow")
    seconds = {}
    started = time.monotonic()
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    seconds["db migrate"] = time.monotonic() - started
    with ExitStack() as stack:
        for name, command in [("follower", [str(TASKDASH), "follow-airflow-logs", "--logs", str(home / "logs"),
                                            "--spool", str(spool)]),
                              ("api-server", [airflow, "api-server", "--port", str(port)]),
                              ("scheduler", [airflow, "scheduler"]),
                              ("dag-processor", [airflow, "dag-processor"])]:
            process = _started(command, env, folder / f"{name}.log")
            stack.callback(_stop, process)
        database = home / "airflow.db"

        def dag_known() -> bool:
            with sqlite3.connect(database) as db:
                return bool(db.execute("SELECT 1 FROM serialized_dag WHERE dag_id = ?", [DAG_ID]).fetchall())

        phase = time.monotonic()
        wait_until(dag_known, timeout=180, interval=0.5, message="the DAG processor to parse the test DAG")
        seconds["start and parse the DAG"] = time.monotonic() - phase
        logical_date = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=30)
        phase = time.monotonic()
        subprocess.run([airflow, "dags", "trigger", DAG_ID, "--logical-date", logical_date.isoformat()],
                       env=env, check=True, capture_output=True)
        from dashboard.airflow_logs import task_instance_run_id

        transform = spool / "logs" / task_instance_run_id("airflow-test", DAG_ID, "transform", 1, logical_date) / "stdout.log"
        wait_until(lambda: transform.exists() and "transform: 120 rows" in transform.read_text(), timeout=240,
                   interval=0.1, message="transform's first line copied into the spool")
        seconds["first line of transform copied"] = time.monotonic() - phase
        logged = next(line for line in transform.read_text().splitlines() if "transform: 120 rows" in line)
        written = dt.datetime.fromisoformat(logged[1:logged.index("]")].replace("Z", "+00:00"))
        seconds["that line: Airflow's timestamp to the spool (at most)"] = (
            dt.datetime.now(dt.timezone.utc) - written).total_seconds()
        live = not any(e["job"]["name"] == f"{DAG_ID}.transform" and e["eventType"] == "COMPLETE" for e in _all_events(spool))
        wait_until(lambda: any(e["eventType"] in ("COMPLETE", "FAIL") for e in _dag_run_events(spool)),
                   timeout=240, interval=0.5, message="the DAG run's last OpenLineage event")
        seconds["DAG run"] = time.monotonic() - phase
        dag_run = next(e for e in _dag_run_events(spool) if "airflowDagRun" in e["run"]["facets"])
        dag_run_id = dag_run["run"]["facets"]["airflowDagRun"]["dagRun"]["run_id"]
        with sqlite3.connect(database) as db:
            db.row_factory = sqlite3.Row
            task_instances = [dict(row) for row in db.execute(
                "SELECT task_id, state, try_number, map_index FROM task_instance WHERE dag_id = ? AND run_id = ?",
                [DAG_ID, dag_run_id])]
        # The follower has copied every try's log once the failed try's last line is there.
        failed = [t for t in task_instances if t["state"] == "failed"]
        failed_id = task_instance_run_id("airflow-test", DAG_ID, failed[0]["task_id"], failed[0]["try_number"],
                                         logical_date, failed[0]["map_index"])
        stdout = spool / "logs" / failed_id / "stdout.log"
        wait_until(lambda: stdout.exists() and "emitted OpenLineage `FAIL`" in stdout.read_text(),
                   timeout=60, interval=0.2, message="the follower to copy the failed try's log")
    return AirflowRun(spool, dag_run_id, logical_date, "airflow-test", task_instances, seconds, live)
