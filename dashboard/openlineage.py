"""OpenLineage RunEvents read as spool lines: each mapped onto our own events.

Airflow, dbt (`dbt-ol`), Dagster and Spark emit OpenLineage run events through their official
integrations; OpenLineage's file transport writes them one JSON object a line. Such a line in
`events/*.jsonl` is understood as is, beside our own lines: `to_events` turns it into the task
definitions and status events of the spool contract (as plain dicts), which `spool.parse_event`
then validates like any other. So one set of rules says what a valid event is, and a bad or
unknown OpenLineage line is an ingest error like any other line.

The mapping (the README's spool contract has it as a table):
- eventType START -> STARTED and RUNNING, RUNNING -> RUNNING, COMPLETE -> SUCCESS,
  FAIL -> FAILED (the errorMessage facet's message as the run's message), ABORT -> TERMINATED;
  OTHER (metadata only) -> no status.
- run.runId (a UUID) -> run_id; job.namespace -> group; job.name -> task; eventTime -> ts.
- the nominalTime run facet (which Airflow gives every run of a DAG run, from its logical
  date) -> trigger_time, so the runs of one parent run form one cycle. Without it (dbt-ol sends
  none), the time in the root run's id from the `parent` facet: OpenLineage's clients make run
  ids as UUIDv7, whose first 48 bits are the milliseconds at which the root run began (dbt-ol's
  matched its START to the millisecond); so a dbt invocation's models form one cycle too.
- a run whose `jobType` job facet says SQL (dbt-ol's `--consume-structured-logs` sends one per
  statement a model runs, as a child of the model's run) is a step inside a task, not a task:
  read, no status.
- agent: the processing_engine facet's name and version (e.g. "Airflow 3.1.0", "dbt 1.10.0").
- dependencies: Airflow's job facet `airflow` on a DAG run's events holds the DAG's tasks
  with their `downstream_task_ids`: each becomes a task definition `<dag>.<task_id>` (the job
  name Airflow gives a task's runs) depending on its upstream tasks.
"""

from __future__ import annotations

import datetime as dt
import uuid


class OpenLineageError(ValueError):
    """A line that is OpenLineage's but cannot be mapped; spool makes it an ingest error."""

#: OpenLineage eventType -> our statuses, in order (START is both: the run started and runs).
STATUSES_OF = {
    "START": ("STARTED", "RUNNING"),
    "RUNNING": ("RUNNING",),
    "COMPLETE": ("SUCCESS",),
    "FAIL": ("FAILED",),
    "ABORT": ("TERMINATED",),
    "OTHER": (),
}
#: Our `message` field's limit: a longer error message is cut, not refused (the run's
#: failure must still show).
MESSAGE_LIMIT = 4096
_OTHER_EVENTS = ("DatasetEvent", "JobEvent")
#: jobType facet values of runs that are steps inside a task (dbt-ol: each SQL statement).
STEP_JOB_TYPES = ("SQL",)


def is_openlineage(event: object) -> bool:
    """Whether a decoded line is OpenLineage's (it has no `kind`, and has an eventType or an
    OpenLineage schemaURL) rather than one of our own."""
    if not isinstance(event, dict) or "kind" in event:
        return False
    schema = event.get("schemaURL")
    return "eventType" in event or (isinstance(schema, str) and "openlineage.io" in schema)


def to_events(event: dict) -> list[dict]:
    """The spool events an OpenLineage RunEvent stands for (unvalidated: give each to
    spool.parse_event); raise OpenLineageError if it is not a RunEvent we can map."""
    schema = event.get("schemaURL")
    if schema is not None and not isinstance(schema, str):
        raise OpenLineageError("OpenLineage: field 'schemaURL' must be text")
    for other in _OTHER_EVENTS:
        if schema and schema.endswith(f"/{other}"):
            raise OpenLineageError(f"OpenLineage {other}: only RunEvents are read (they carry runs)")
    kind = event.get("eventType")
    if kind is None:
        raise OpenLineageError("OpenLineage: missing field 'eventType' (a RunEvent without one has no status)")
    if kind not in STATUSES_OF:
        raise OpenLineageError(f"OpenLineage: unknown eventType {str(kind)[:40]!r}: use one of {', '.join(STATUSES_OF)}")
    run, job = _object(event, "run"), _object(event, "job")
    facets, job_facets = _facets(run, "run"), _facets(job, "job")
    group, task = _field(job, "namespace", "job"), _field(job, "name", "job")
    if isinstance(job_facets.get("jobType"), dict) and job_facets["jobType"].get("jobType") in STEP_JOB_TYPES:
        return []
    events = _task_definitions(group, task, job_facets)
    status = {"kind": "status", "run_id": _field(run, "runId", "run"), "task": task, "group": group,
              "ts": event.get("eventTime"), "agent": _agent(facets)}
    nominal = facets.get("nominalTime")
    if nominal is not None:
        status["trigger_time"] = _field(_facet(nominal, "nominalTime"), "nominalStartTime", "nominalTime facet")
    elif (root_started := _root_run_start(facets.get("parent"), run.get("runId"))) is not None:
        status["trigger_time"] = root_started
    if kind == "FAIL" and facets.get("errorMessage") is not None:
        message = _field(_facet(facets["errorMessage"], "errorMessage"), "message", "errorMessage facet")
        status["message"] = message if len(message) <= MESSAGE_LIMIT else message[:MESSAGE_LIMIT - 1] + "…"
    return events + [status | {"status": name} for name in STATUSES_OF[kind]]


def _object(event: dict, name: str) -> dict:
    value = event.get(name)
    if not isinstance(value, dict):
        raise OpenLineageError(f"OpenLineage: missing or non-object {name!r}")
    return value


def _facets(part: dict, name: str) -> dict:
    facets = part.get("facets")
    if facets is None:
        return {}
    if not isinstance(facets, dict):
        raise OpenLineageError(f"OpenLineage: {name}.facets must be an object")
    return facets


def _facet(value: object, name: str) -> dict:
    if not isinstance(value, dict):
        raise OpenLineageError(f"OpenLineage: the {name} facet must be an object")
    return value


def _field(part: dict, name: str, where: str) -> str:
    value = part.get(name)
    if not isinstance(value, str) or not value.strip():
        raise OpenLineageError(f"OpenLineage: missing or non-text {name!r} in {where}")
    return value


def _root_run_start(parent: object, own_id: object) -> str | None:
    """When the root run began (the `parent` facet's root, else its parent, else the run
    itself), from its id if that is a UUIDv7 (else None): the id's first 48 bits are its
    milliseconds since the epoch."""
    parent = parent if isinstance(parent, dict) else {}
    for holder in (parent.get("root"), parent, {"run": {"runId": own_id}}):
        run = holder.get("run") if isinstance(holder, dict) else None
        run_id = run.get("runId") if isinstance(run, dict) else None
        try:
            parsed = uuid.UUID(run_id) if isinstance(run_id, str) else None
        except ValueError:
            parsed = None
        if parsed is not None and parsed.version == 7:
            moment = dt.datetime.fromtimestamp((parsed.int >> 80) / 1000, dt.timezone.utc)
            return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if run_id is not None:
            return None  # the nearest id given is not a UUIDv7: its first event's time instead
    return None


def _agent(facets: dict) -> str | None:
    """The processing engine (name and version), else unknown: OpenLineage has no standard
    facet for the host, and Airflow's run facet carries none (its taskInstance has duration,
    try_number, pool, queued_dttm, log_url, map_index)."""
    engine = facets.get("processing_engine")
    if engine is None:
        return None
    engine = _facet(engine, "processing_engine")
    name, version = engine.get("name"), engine.get("version")
    if not isinstance(name, str) or not name.strip():
        return None
    return (f"{name} {version}" if isinstance(version, str) and version else name)[:256]


def _task_definitions(group: str, dag: str, job_facets: dict) -> list[dict]:
    """Airflow's DAG tree (the `airflow` job facet of a DAG run's events) as task definitions."""
    airflow = job_facets.get("airflow")
    if airflow is None:
        return []
    tasks = _facet(airflow, "airflow job").get("tasks")
    if tasks is None:
        return []
    if not isinstance(tasks, dict):
        raise OpenLineageError("OpenLineage: the airflow job facet's 'tasks' must be an object")
    upstreams: dict[str, list[str]] = {task_id: [] for task_id in tasks}
    for task_id, details in tasks.items():
        downstream = _facet(details, f"airflow job facet's task {task_id[:40]!r}").get("downstream_task_ids") or []
        if not isinstance(downstream, list) or not all(isinstance(d, str) for d in downstream):
            raise OpenLineageError("OpenLineage: 'downstream_task_ids' must be a list of task ids")
        for child in downstream:
            upstreams.setdefault(child, []).append(task_id)
    return [{"kind": "task", "task": f"{dag}.{task_id}", "group": group,
             "depends_on": [f"{dag}.{parent}" for parent in sorted(parents)]}
            for task_id, parents in upstreams.items()]
