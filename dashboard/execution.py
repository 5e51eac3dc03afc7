"""Running one command as a run (subprocess, pid file, logs, events from STARTED on), and terminating it.

While a command runs, ``<spool>/pids/<run_id>.pid`` holds one line, ``"<pid> <runner_pid> <json>"``:
the command's pid (also its process group id), the pid of the process that waits for it, and
what a status event of the run needs. ``terminate`` uses it from any process on the same host.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .spool import SpoolError, SpoolWriter, format_timestamp, parse_timestamp, validate_run_id

KILL_WAIT_SECONDS = 2.0  # how long a SIGKILLed process group may take to disappear
GRACE_SECONDS = 5.0  # how long a process group gets between SIGTERM and SIGKILL
POLL_SECONDS = 0.05

logger = logging.getLogger(__name__)


class RunnerError(RuntimeError):
    """A runner request that cannot be done, such as terminating a run that is not running here."""


class Outcome(NamedTuple):
    """How a run ended: its terminal status, exit code and a message for the user."""

    status: str
    exit_code: int
    message: str | None


@dataclass(frozen=True)
class RunIdentity:
    """What every status event of one run repeats: the run, its task and how it was triggered."""

    run_id: str
    task: str
    adhoc: bool = False
    group: str | None = None
    trigger_time: dt.datetime | None = None

    def emit(self, writer: SpoolWriter, status: str, agent: str | None = None, **details) -> None:
        """Record a status of this run; details: exit_code, message."""
        writer.status(self.run_id, self.task, status, agent=agent, adhoc=self.adhoc,
                      group=self.group, trigger_time=self.trigger_time, **details)


def pid_file(spool: str | Path, run_id: str) -> Path:
    """Where the pid of a running run's process group is kept while it runs."""
    return Path(spool) / "pids" / f"{validate_run_id(run_id)}.pid"


def terminate_marker(spool: str | Path, run_id: str) -> Path:
    """A file whose presence means "terminate was asked for", so a trapped SIGTERM still ends TERMINATED."""
    return Path(spool) / "pids" / f"{validate_run_id(run_id)}.terminate"


def execute_run(writer: SpoolWriter, run: RunIdentity, command: str | Sequence[str], *,
                agent: str, cwd: str | Path | None = None) -> Outcome:
    """Run a command to its end as the given run, recording STARTED, RUNNING and how it ended.

    A string is run by the shell; a sequence is an argv run without one. Output is appended to
    the run's spool log files by the process itself, so it is there as soon as it is written.
    """
    stdout_path, stderr_path = writer.log_path(run.run_id, "stdout"), writer.log_path(run.run_id, "stderr")
    pids, marker = pid_file(writer.spool, run.run_id), terminate_marker(writer.spool, run.run_id)
    pids.parent.mkdir(parents=True, exist_ok=True)
    run.emit(writer, "STARTED", agent)
    with open(stdout_path, "ab") as stdout, open(stderr_path, "ab") as stderr:
        try:
            process = subprocess.Popen(
                command, shell=isinstance(command, str), cwd=cwd, stdin=subprocess.DEVNULL,
                stdout=stdout, stderr=stderr, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # its own process group, so terminate reaches its children too
            )
        except OSError as exc:
            program = command if isinstance(command, str) else command[0]
            # The shell's exit codes for "cannot execute" and "not found".
            outcome = Outcome("FAILED", 126 if isinstance(exc, PermissionError) else 127,
                              f"cannot start {program!r}: {exc.strerror or exc}")
            stderr.write(f"{outcome.message}\n".encode())
            run.emit(writer, outcome.status, agent, exit_code=outcome.exit_code, message=outcome.message)
            return outcome
    interrupted = False
    try:
        try:
            _write_pid_file(pids, process.pid, run, agent)
            run.emit(writer, "RUNNING", agent, message=f"pid {process.pid}")
        except OSError:
            # Unrecorded, nobody could see it run or terminate it: it must not outlive us.
            signum = _stop_group(process.pid, GRACE_SECONDS)
            process.wait()
            logger.warning("run %s: its RUNNING status could not be recorded, so its command (pid %d) %s",
                           run.run_id, process.pid, f"was stopped with {signum.name}" if signum else "had ended")
            raise
        if marker.exists():  # terminate came before the pid file existed: it could not signal us
            _signal_group(process.pid, signal.SIGTERM)
        try:
            returncode = process.wait()
        except KeyboardInterrupt:
            # The command has its own session, so Ctrl-C reached only this process: pass it on.
            interrupted = True
            marker.touch()
            _signal_group(process.pid, signal.SIGTERM)
            returncode = process.wait()
    finally:
        pids.unlink(missing_ok=True)
    outcome = _outcome(returncode, terminate_requested=marker.exists())
    marker.unlink(missing_ok=True)
    run.emit(writer, outcome.status, agent, exit_code=outcome.exit_code, message=outcome.message)
    if interrupted:
        raise KeyboardInterrupt
    return outcome


def _outcome(returncode: int, terminate_requested: bool) -> Outcome:
    if returncode < 0:
        how = f"killed by {_signal_name(-returncode)}"
        return Outcome("TERMINATED", 128 - returncode, how + (" on request" if terminate_requested else ""))
    if terminate_requested:
        return Outcome("TERMINATED", returncode, f"terminated on request; exited with code {returncode}")
    if returncode == 0:
        return Outcome("SUCCESS", 0, None)
    return Outcome("FAILED", returncode, f"exited with code {returncode}")


def terminate(spool: str | Path, run_id: str, grace: float = GRACE_SECONDS) -> str:
    """Stop a running run's whole process group: SIGTERM, then SIGKILL after ``grace`` seconds.

    The process that started the run records TERMINATED; if that process is gone, this one
    does. Returns what was done; raises RunnerError if the run is not running on this host.
    """
    try:
        pids, marker = pid_file(spool, run_id), terminate_marker(spool, run_id)
    except SpoolError as exc:
        raise RunnerError(str(exc)) from None
    pid, runner_pid, details = _read_pid_file(pids)
    if pid is None or not _group_alive(pid):
        raise RunnerError(f"run {run_id} is not running here")
    marker.touch()
    signum = _stop_group(pid, grace)
    if signum is None:
        marker.unlink(missing_ok=True)
        raise RunnerError(f"run {run_id} is not running here")
    how = signum.name if signum == signal.SIGTERM else f"SIGKILL after {grace:g} s"
    if not _process_alive(runner_pid):
        # Nobody else will record the end: the process that started the command has gone.
        run = RunIdentity(run_id, details["task"], bool(details.get("adhoc")), details.get("group"),
                          details.get("trigger_time") and parse_timestamp(details["trigger_time"]))
        with SpoolWriter(spool, "terminate") as writer:
            run.emit(writer, "TERMINATED", details.get("agent"), exit_code=128 + signum,
                     message=f"killed by {signum.name} on request; its runner (pid {runner_pid}) had gone")
        pids.unlink(missing_ok=True)
        marker.unlink(missing_ok=True)
    return f"run {run_id} terminated ({how})"


def _write_pid_file(path: Path, pid: int, run: RunIdentity, agent: str) -> None:
    details = {"task": run.task, "group": run.group, "agent": agent, "adhoc": run.adhoc,
               "trigger_time": run.trigger_time and format_timestamp(run.trigger_time)}
    partial = path.with_suffix(".pid.partial")
    partial.write_text(f"{pid} {os.getpid()} {json.dumps(details)}\n", encoding="utf-8")
    partial.replace(path)  # atomic, so terminate never reads half a line


def _read_pid_file(path: Path) -> tuple[int | None, int, dict]:
    try:
        pid, runner_pid, details = path.read_text(encoding="utf-8").split(" ", 2)
        return int(pid), int(runner_pid), json.loads(details)
    except FileNotFoundError:
        return None, 0, {}
    except ValueError:
        raise RunnerError(f"unreadable pid file {path}") from None


def _stop_group(pgid: int, grace: float) -> signal.Signals | None:
    """SIGTERM a process group, then SIGKILL it if it is still there after ``grace`` seconds.

    Returns the last signal sent, or None if there was no such group.
    """
    if not _signal_group(pgid, signal.SIGTERM):
        return None
    if _wait_until_gone(pgid, grace):
        return signal.SIGTERM
    _signal_group(pgid, signal.SIGKILL)
    _wait_until_gone(pgid, KILL_WAIT_SECONDS)
    return signal.SIGKILL


def _signal_group(pgid: int, signum: int) -> bool:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _wait_until_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _group_alive(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)  # another process's group: there is nothing to block on
    return True


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _proc_stat(Path(f"/proc/{pid}/stat"))
    return stat is None or stat[0] not in "ZX"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not Path("/proc").is_dir():
        return True  # without /proc an ended but unreaped process cannot be told apart
    # Orphans that ended stay zombies until init reaps them (some containers never do): not alive.
    return any(stat[1] == pgid and stat[0] not in "ZX"
               for stat in map(_proc_stat, Path("/proc").glob("[0-9]*/stat")) if stat)


def _proc_stat(path: Path) -> tuple[str, int] | None:
    """A process's state letter and process group from /proc/<pid>/stat, or None if unreadable."""
    try:
        fields = path.read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[2])
    except (OSError, IndexError, ValueError):
        return None
