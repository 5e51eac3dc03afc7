"""Airflow's task logs, and OpenLineage stack traces, into the spool's run logs.

OpenLineage carries no log lines. `taskdash follow-airflow-logs --logs $AIRFLOW_HOME/logs
--spool DIR` follows Airflow's log folder and copies each task try's log, live, to the
`logs/<run_id>/stdout.log` of the OpenLineage run Airflow's provider reports for that try.

The run id is found without Airflow: the provider makes it deterministic (see
`task_instance_run_id`) from its namespace, the DAG id, the task id, the try number, the map
index and the DAG run's logical date. The log path (Airflow 3's default `log_filename_template`,
`dag_id=…/run_id=…/task_id=…/[map_index=…/]attempt=N.log`) gives all but the namespace and the
logical date, which the DAG run's own OpenLineage events in the spool carry (its START, sent by
the scheduler before any task starts): so a try's log is mapped before the try's own first
event is written, and a log whose DAG run is not known yet waits for it.

Airflow 3 writes its task logs as JSON lines (structlog); each becomes one text line
"[time] LEVEL logger - event" (an exception's frames on the lines after it), as Airflow's own
log view shows them.

The follower also writes each OpenLineage FAIL event's `errorMessage` stack trace into the
run's `stderr.log` (once: only while that file does not exist), so a failed run's page shows
its trace in the stderr tab. Writing it here, a writer of the spool, keeps the index derived
from files alone: the log viewer, the search and the download all see the same bytes.

What it copied is remembered in `<spool>/follow-airflow-logs.json` (the source file's inode and
offset), written after each append: a restart goes on where it stopped (a crash between the
append and that write repeats the last chunk of one file).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from .spool import events_dir, log_path, validate_run_id

log = logging.getLogger(__name__)

#: Airflow 3's default log_filename_template, relative to its log folder.
LOG_PATH = re.compile(r"(?:^|/)dag_id=(?P<dag>[^/]+)/run_id=(?P<run>[^/]+)/task_id=(?P<task>[^/]+)/"
                      r"(?:map_index=(?P<map>-?\d+)/)?attempt=(?P<try>\d+)\.log$")
STATE_FILE = "follow-airflow-logs.json"
#: A read of one log file at a time (a task can log fast: the rest comes at the next step).
CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class TaskTry:
    """One task try's log file, as its path names it."""
    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    map_index: int


def parse_log_path(relative: str) -> TaskTry | None:
    """The task try a log file (relative to Airflow's log folder) belongs to, or None if it is
    not a task log (the DAG processor's and scheduler's logs live there too)."""
    match = LOG_PATH.search(relative.replace(os.sep, "/"))
    if match is None:
        return None
    return TaskTry(match["dag"], match["run"], match["task"], int(match["try"]),
                   int(match["map"]) if match["map"] is not None else -1)


def task_instance_run_id(namespace: str, dag_id: str, task_id: str, try_number: int,
                         logical_date: dt.datetime, map_index: int = -1) -> str:
    """The OpenLineage run id Airflow's provider gives a task try: its
    `build_task_instance_ol_run_id`, i.e. the OpenLineage client's `generate_static_uuid` (a
    UUIDv7 of the logical date's milliseconds and 76 bits of a SHA-1 of the date and
    "<namespace>.<dag>.<task>.<try>.<map index>"), reproduced here without importing either."""
    instant = logical_date.astimezone(dt.timezone.utc)
    data = f"{namespace}.{dag_id}.{task_id}.{try_number}.{map_index}".encode()
    node = int.from_bytes(hashlib.sha1(instant.isoformat().encode() + data).digest(), "big") >> 84  # noqa: S324
    value = ((int(instant.timestamp() * 1000) & 0xFFFF_FFFF_FFFF) << 80) | (node & (1 << 80) - 1)
    value = (value & ~(0xF000 << 64)) | (7 << 76)      # version 7
    value = (value & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def render_line(raw: bytes) -> str:
    """One line of an Airflow 3 task log as text (with its newline): its JSON record as
    "[time] LEVEL logger - event", an exception's type, value and frames on the lines after;
    a line that is not such a record is kept as it is."""
    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    try:
        record = json.loads(text)
    except ValueError:
        return text + "\n"
    if not isinstance(record, dict) or "event" not in record:
        return text + "\n"
    head = f"[{record.get('timestamp', '')}] {str(record.get('level', '')).upper()} {record.get('logger', '')} - {record['event']}"
    lines = [head]
    for error in record.get("error_detail") or []:
        if not isinstance(error, dict):
            continue
        for frame in error.get("frames") or []:
            if isinstance(frame, dict):
                lines.append(f'  File "{frame.get("filename")}", line {frame.get("lineno")}, in {frame.get("name")}')
        lines.append(f"{error.get('exc_type', '')}: {error.get('exc_value', '')}")
    return "\n".join(lines) + "\n"


class AirflowLogFollower:
    """Copies Airflow's task logs (and FAIL events' stack traces) into a spool; `step()` does one
    pass, `follow()` repeats it whenever watchfiles sees a change (and every `rescan` seconds)."""

    def __init__(self, airflow_logs: str | Path, spool: str | Path):
        self.airflow_logs = Path(airflow_logs)
        self.spool = Path(spool)
        self._state_path = self.spool / STATE_FILE
        self._state = self._load_state()
        self._event_offsets: dict[str, int] = {}
        #: (dag_id, Airflow run_id) -> (OpenLineage namespace, logical date)
        self.dag_runs: dict[tuple[str, str], tuple[str, dt.datetime]] = {}

    def _load_state(self) -> dict[str, list[int]]:
        try:
            return json.loads(self._state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def _save_state(self) -> None:
        temporary = self._state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._state), encoding="utf-8")
        os.replace(temporary, self._state_path)

    def step(self) -> int:
        """Read new OpenLineage lines, then copy what is new of every task log whose run is
        known; return the number of log bytes read."""
        self._read_events()
        copied = 0
        for path in sorted(self.airflow_logs.rglob("attempt=*.log")):
            relative = path.relative_to(self.airflow_logs).as_posix()
            task_try = parse_log_path(relative)
            if task_try is None or (task_try.dag_id, task_try.run_id) not in self.dag_runs:
                continue
            namespace, logical_date = self.dag_runs[task_try.dag_id, task_try.run_id]
            run_id = task_instance_run_id(namespace, task_try.dag_id, task_try.task_id, task_try.try_number,
                                          logical_date, task_try.map_index)
            copied += self._copy(path, relative, run_id)
        return copied

    def _copy(self, path: Path, relative: str, run_id: str) -> int:
        try:
            with open(path, "rb") as source:
                stat = os.fstat(source.fileno())
                inode, offset = self._state.get(relative, (stat.st_ino, 0))
                if inode != stat.st_ino or stat.st_size < offset:  # replaced or truncated: again
                    inode, offset = stat.st_ino, 0
                source.seek(offset)
                data = source.read(CHUNK)
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            return 0
        whole = data[:data.rfind(b"\n") + 1]  # a line still being written waits for its newline
        if not whole:
            return 0
        text = "".join(render_line(line) for line in whole.splitlines(keepends=True))
        target = log_path(self.spool, run_id, "stdout")
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "ab") as out:
            out.write(text.encode("utf-8"))
        self._state[relative] = [inode, offset + len(whole)]
        self._save_state()
        return len(whole)

    def _read_events(self) -> None:
        folder = events_dir(self.spool)
        for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else ():
            start = self._event_offsets.get(path.name, 0)
            try:
                with open(path, "rb") as handle:
                    handle.seek(start)
                    data = handle.read()
            except OSError:
                continue
            whole = data[:data.rfind(b"\n") + 1]
            self._event_offsets[path.name] = start + len(whole)
            for line in whole.splitlines():
                if b"eventType" in line:
                    self._learn(line)

    def _learn(self, line: bytes) -> None:
        """Note a DAG run's namespace and logical date; write a FAIL event's stack trace."""
        try:
            event = json.loads(line)
            run, job = event["run"], event["job"]
            facets = run.get("facets") or {}
        except (ValueError, KeyError, TypeError, AttributeError):
            return  # the ingestor reports bad lines; this reads what it can use
        for name in ("airflowDagRun", "airflow"):
            dag_run = (facets.get(name) or {}).get("dagRun") if isinstance(facets.get(name), dict) else None
            if isinstance(dag_run, dict):
                date = dag_run.get("logical_date") or dag_run.get("run_after")
                try:
                    moment = dt.datetime.fromisoformat(date)
                except (TypeError, ValueError):
                    continue
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=dt.timezone.utc)
                self.dag_runs[str(dag_run.get("dag_id")), str(dag_run.get("run_id"))] = (str(job.get("namespace")), moment)
                break
        error = facets.get("errorMessage")
        if event.get("eventType") == "FAIL" and isinstance(error, dict) and isinstance(error.get("stackTrace"), str):
            self._write_stack_trace(run.get("runId"), error["stackTrace"])

    def _write_stack_trace(self, run_id: object, trace: str) -> None:
        try:
            run_id = validate_run_id(run_id)
        except ValueError:
            return
        target = log_path(self.spool, run_id, "stderr")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:  # once: a restart reading the same FAIL event again finds the file there
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return
        with os.fdopen(fd, "wb") as out:
            out.write((trace if trace.endswith("\n") else trace + "\n").encode("utf-8", errors="replace"))

    def follow(self, stop: threading.Event, rescan: float = 5.0) -> None:
        """Step whenever the log folder or the spool's events change, until `stop` is set."""
        from watchfiles import watch

        self.step()
        self.airflow_logs.mkdir(parents=True, exist_ok=True)
        events_dir(self.spool).mkdir(parents=True, exist_ok=True)
        for _ in watch(self.airflow_logs, events_dir(self.spool), stop_event=stop,
                       rust_timeout=int(rescan * 1000), yield_on_timeout=True):
            self.step()
