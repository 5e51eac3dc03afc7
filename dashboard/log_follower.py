"""What the followers of a scheduler's own logs share: OpenLineage carries no log lines, so a
follower copies the scheduler's log lines into the spool's `logs/<run_id>/stdout.log` of the
OpenLineage run each belongs to (`airflow_logs` for Airflow's task logs, `dbt_logs` for dbt's).

A follower is a writer of the spool like any other: it reads the spool's OpenLineage lines to
learn the runs (never the index), and appends to run logs. It also writes each FAIL event's
`errorMessage` stack trace into the run's `stderr.log` (once: only while that file does not
exist), so a failed run's page shows it in the stderr tab. Writing it here keeps the index
derived from files alone: the log viewer, its search and the download see the same bytes.

What it copied is remembered in `<spool>/<name>.json` (each source file's inode and offset),
written once a step after its appends: a restart goes on where it stopped (a crash between the
appends and that write repeats what that step copied). Once per step, not per file: over
10,000 Airflow log files, writing it after each file made the first step take 160 s.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from .openlineage import STEP_JOB_TYPES
from .spool import events_dir, log_path, validate_run_id

log = logging.getLogger(__name__)

#: A read of one source file at a time (a task can log fast: the rest comes at the next step).
CHUNK = 4 * 1024 * 1024


def _task_run_id(event: dict, run: dict, facets: dict) -> object:
    """The run a FAIL's stack trace belongs to: its own, or for a step inside a task (which has
    no run of its own, see openlineage.STEP_JOB_TYPES) its parent's."""
    job = event.get("job") if isinstance(event.get("job"), dict) else {}
    job_type = (job.get("facets") or {}).get("jobType") if isinstance(job.get("facets"), dict) else None
    parent = facets.get("parent")
    if isinstance(job_type, dict) and job_type.get("jobType") in STEP_JOB_TYPES and isinstance(parent, dict):
        return (parent.get("run") or {}).get("runId") if isinstance(parent.get("run"), dict) else None
    return run.get("runId")


class LogFollower:
    """Copies a scheduler's log lines into the spool's run logs: `step()` does one pass,
    `follow()` repeats it whenever watchfiles sees a change (and every `rescan` seconds).
    Subclasses say what the OpenLineage lines teach (`learn`) and what to copy (`copy_new`)."""

    def __init__(self, spool: str | Path, name: str):
        self.spool = Path(spool)
        self._state_path = self.spool / f"{name}.json"
        try:
            self._state: dict[str, list[int]] = json.loads(self._state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._state = {}
        self._event_offsets: dict[str, int] = {}
        self._unsaved = False

    def step(self, changed: set[Path] | None = None) -> int:
        """Read new OpenLineage lines, then copy what is new (of the `changed` files, or of all
        when None); return the bytes of log read."""
        self._read_events()
        copied = self.copy_new(changed)
        if self._unsaved:
            temporary = self._state_path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self._state), encoding="utf-8")
            os.replace(temporary, self._state_path)
            self._unsaved = False
        return copied

    def copy_new(self, changed: set[Path] | None) -> int:
        raise NotImplementedError

    def unchanged(self, path: Path, key: str) -> bool:
        """Whether `path` is the file copied to its end already (one stat, no open)."""
        try:
            stat = path.stat()
        except OSError:
            return True
        return self._state.get(key) == [stat.st_ino, stat.st_size]

    def learn(self, event: dict) -> None:
        """Note what an OpenLineage RunEvent says; here: write a FAIL's stack trace."""
        run = event.get("run") if isinstance(event.get("run"), dict) else {}
        facets = run.get("facets") if isinstance(run.get("facets"), dict) else {}
        error = facets.get("errorMessage")
        if event.get("eventType") == "FAIL" and isinstance(error, dict) and isinstance(error.get("stackTrace"), str):
            self._write_stack_trace(_task_run_id(event, run, facets), error["stackTrace"])

    def new_lines(self, path: Path, key: str) -> tuple[bytes, int, int]:
        """The whole lines of `path` not copied yet (a line still being written waits for its
        newline), with the file's inode and the offset they start at; a file replaced or
        truncated is read again from its start."""
        try:
            with open(path, "rb") as source:
                stat = os.fstat(source.fileno())
                inode, offset = self._state.get(key, (stat.st_ino, 0))
                if inode != stat.st_ino or stat.st_size < offset:
                    inode, offset = stat.st_ino, 0
                source.seek(offset)
                data = source.read(CHUNK)
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            return b"", 0, 0
        return data[:data.rfind(b"\n") + 1], inode, offset

    def append(self, run_id: str, text: str) -> None:
        target = log_path(self.spool, run_id, "stdout")
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "ab") as out:
            out.write(text.encode("utf-8"))

    def copied(self, key: str, inode: int, offset: int) -> None:
        """Remember that `key`'s file is copied up to `offset` (saved at the end of the step)."""
        self._state[key] = [inode, offset]
        self._unsaved = True

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
                if b"eventType" not in line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # the ingestor reports bad lines; a follower reads what it can use
                if isinstance(event, dict):
                    self.learn(event)

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

    def follow(self, stop: threading.Event, watched: list[Path], rescan: float = 30.0) -> None:
        """Step over the files watchfiles says changed, and over all of them every `rescan`
        seconds (the safety net), until `stop` is set."""
        from watchfiles import watch

        self.step()
        folders = [*watched, events_dir(self.spool)]
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
        for changes in watch(*folders, stop_event=stop, rust_timeout=int(rescan * 1000), yield_on_timeout=True):
            self.step({Path(path) for _, path in changes} if changes else None)
