"""The built-in runner: runs a workflow's tasks on its schedule, and one-off ADHOC commands.

Every cycle creates one run per task, each IDLE then ACTIVE. A run whose upstreams of the same
cycle all succeeded goes TRIGGER, waits for a free agent slot, then runs (STARTED, RUNNING, and
SUCCESS, FAILED or TERMINATED). If an upstream ends FAILED or TERMINATED, its downstreams of
that cycle can no longer start: they end TERMINATED at once, with a message naming the upstream
that failed ("upstream Fetch_Orders failed"). A task never has two runs in flight:
while one is unfinished, later cycles skip the task and its downstreams, so a slow task or
too few agents cannot pile up an ever-growing queue.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .execution import RunIdentity, RunnerError, execute_run, terminate, terminate_marker
from .spool import SpoolWriter, new_run_id
from .statuses import UNSUCCESSFUL
from .workflow import Workflow, topological_order

__all__ = ["RunnerError", "Scheduler", "run_adhoc", "terminate"]

WAITING, QUEUED, RUNNING, BLOCKED = "waiting", "queued", "running", "blocked"
NOT_SUCCEEDED = UNSUCCESSFUL + (BLOCKED,)


@dataclass(eq=False)
class _ScheduledRun:
    identity: RunIdentity
    upstreams: tuple[_ScheduledRun, ...]
    state: str = WAITING  # waiting, queued, running, blocked, or the terminal status
    cause: str = ""  # for a blocked run: the failure behind it, such as "Fetch_Orders failed"


class Scheduler:
    """Triggers a workflow's cycles on its schedule and runs them as subprocesses on its agents."""

    def __init__(self, workflow: Workflow, spool: str | Path, writer_name: str = "runner",
                 cycles: int | None = None, grace: float = 5.0):
        self.workflow = workflow
        self.spool = Path(spool)
        self.cycles = cycles  # how many cycles start() triggers; None: until stop()
        self.grace = grace  # seconds a terminated process gets between SIGTERM and SIGKILL
        self._writer = SpoolWriter(self.spool, writer_name)
        self._order = topological_order(workflow)
        self._cond = threading.Condition(threading.RLock())
        self._free_slots = dict(workflow.agents)
        self._pending: list[_ScheduledRun] = []  # waiting or queued, oldest first
        self._in_flight: dict[str, _ScheduledRun] = {}  # task -> its unfinished run
        self._running: dict[str, threading.Thread] = {}  # run id -> thread waiting for its process
        self._ticker: threading.Thread | None = None
        self._ticking = False
        self._stopping = False
        self._stop_requested = False
        self._wake = threading.Event()  # set to end the wait between two cycles
        for name in self._order:
            task = workflow.tasks[name]
            self._writer.define_task(name, task.group, task.depends_on, task.description)

    def start(self) -> None:
        """Trigger cycles in a background thread: one now, then one every ``schedule_seconds``."""
        with self._cond:
            if self._ticker is not None or self._stopping:
                raise RunnerError("a scheduler can be started only once")
            self._ticking = True
            self._ticker = threading.Thread(target=self._tick, name=f"scheduler-{self.workflow.name}",
                                            daemon=True)
        self._ticker.start()

    def run_cycle(self) -> dict[str, str]:
        """Trigger one cycle now; return the run id of each task that got a run in it."""
        trigger_time = dt.datetime.now(dt.timezone.utc)
        runs: dict[str, _ScheduledRun] = {}
        with self._cond:
            if self._stopping:
                raise RunnerError("the scheduler is stopped")
            for name in self._order:
                task = self.workflow.tasks[name]
                if name in self._in_flight or any(up not in runs for up in task.depends_on):
                    continue  # its previous run is unfinished, or an upstream was skipped
                run = _ScheduledRun(RunIdentity(new_run_id(), name, False, task.group, trigger_time),
                                    tuple(runs[up] for up in task.depends_on))
                runs[name] = run
                run.identity.emit(self._writer, "IDLE")
                waiting = f"waiting for {', '.join(task.depends_on)}" if task.depends_on else None
                run.identity.emit(self._writer, "ACTIVE", message=waiting)
            self._pending.extend(runs.values())
            self._in_flight.update(runs)
            self._advance()
        return {name: run.identity.run_id for name, run in runs.items()}

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stop is requested or all is done (no more cycles, no unfinished runs); False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._stop_requested or not (self._ticking or self._in_flight), timeout)

    def request_stop(self) -> None:
        """Ask for a stop without doing it: no more cycles, and wait() returns. (Not from a signal
        handler: the locks it takes may be held by the code the signal interrupted.)"""
        self._wake.set()
        with self._cond:
            self._stop_requested = True
            self._cond.notify_all()

    def stop(self) -> None:
        """End everything: no more cycles, unstarted runs become TERMINATED, running ones are terminated."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            for run in self._pending:
                self._finish(run, "TERMINATED")
                run.identity.emit(self._writer, "TERMINATED", message="the scheduler stopped before the run started")
            self._pending.clear()
            running = dict(self._running)
            self._cond.notify_all()
        self._wake.set()
        for run_id in running:
            # A run still spawning has no pid file to signal yet; the marker makes it stop itself.
            marker = terminate_marker(self.spool, run_id)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        killers = [threading.Thread(target=self._terminate, args=item, daemon=True) for item in running.items()]
        for thread in killers:
            thread.start()
        for thread in [*killers, *running.values(), *filter(None, [self._ticker])]:
            thread.join()
        for run_id in running:
            terminate_marker(self.spool, run_id).unlink(missing_ok=True)
        self._writer.close()

    def __enter__(self) -> Scheduler:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _tick(self) -> None:
        try:
            next_cycle, count = time.monotonic(), 0
            while self.cycles is None or count < self.cycles:
                try:
                    self.run_cycle()
                except RunnerError:
                    return  # stopped meanwhile
                count += 1
                next_cycle += self.workflow.schedule_seconds
                if count == self.cycles or self._wake.wait(max(0.0, next_cycle - time.monotonic())):
                    return
        finally:
            with self._cond:
                self._ticking = False
                self._cond.notify_all()

    def _advance(self) -> None:
        """Move on every run that can: trigger, block, or start it on a free slot. Needs the lock."""
        if self._stopping:
            return
        # Oldest first, and upstreams before downstreams, so a block propagates in one pass.
        for run in list(self._pending):
            if run.state != WAITING:
                continue
            failed = next((up for up in run.upstreams if up.state in NOT_SUCCEEDED), None)
            if failed is not None:
                self._block(run, failed)
            elif all(up.state == "SUCCESS" for up in run.upstreams):
                run.state = QUEUED
                run.identity.emit(self._writer, "TRIGGER")
        for run in [run for run in self._pending if run.state == QUEUED]:
            agent = self._free_agent()
            if agent is None:
                break
            self._free_slots[agent] -= 1
            run.state = RUNNING
            self._pending.remove(run)
            thread = threading.Thread(target=self._execute, args=(run, agent), daemon=True,
                                      name=f"run-{run.identity.task}")
            self._running[run.identity.run_id] = thread
            thread.start()

    def _block(self, run: _ScheduledRun, upstream: _ScheduledRun) -> None:
        task = upstream.identity.task
        if upstream.state == BLOCKED:
            run.cause = upstream.cause
            message = f"upstream {run.cause} (via {task})"
        else:
            run.cause = f"{task} {'failed' if upstream.state == 'FAILED' else 'was terminated'}"
            message = f"upstream {run.cause}"
        self._pending.remove(run)
        self._finish(run, BLOCKED)
        # It can never start: end it now, or the ACTIVE runs of dead cycles pile up for ever.
        run.identity.emit(self._writer, "TERMINATED", message=message)

    def _finish(self, run: _ScheduledRun, state: str) -> None:
        run.state = state
        if self._in_flight.get(run.identity.task) is run:
            del self._in_flight[run.identity.task]
        self._cond.notify_all()

    def _free_agent(self) -> str | None:
        """The agent with the most free slots, ties broken by name; None if all are busy."""
        free = [agent for agent, slots in self._free_slots.items() if slots > 0]
        return min(free, key=lambda agent: (-self._free_slots[agent], agent), default=None)

    def _execute(self, run: _ScheduledRun, agent: str) -> None:
        status = "FAILED"  # if the run could not even be recorded, its downstreams must not start
        try:
            task = self.workflow.tasks[run.identity.task]
            status = execute_run(self._writer, run.identity, task.command, agent=agent,
                                 cwd=self.workflow.base_dir).status
        finally:
            with self._cond:
                self._free_slots[agent] += 1
                del self._running[run.identity.run_id]
                self._finish(run, status)
                self._advance()

    def _terminate(self, run_id: str, thread: threading.Thread) -> None:
        try:
            terminate(self.spool, run_id, self.grace)
        except RunnerError:
            # Ended by itself meanwhile, or not spawned yet: then the marker stops it. Either
            # way, if it still runs after the grace period, it has a pid file to be killed by.
            thread.join(self.grace)
            if thread.is_alive():
                try:
                    terminate(self.spool, run_id, 0)
                except RunnerError:
                    pass


def run_adhoc(spool: str | Path, argv: Sequence[str], agent: str = "adhoc", task: str | None = None,
              echo: bool = False) -> int:
    """Run one command now, outside any workflow, as an ADHOC run of this process; return its exit code.

    With `echo`, its output also goes to this process's stdout and stderr as it is written.
    """
    if not argv:
        raise RunnerError("no command given")
    run = RunIdentity(new_run_id(), task or f"Adhoc_{os.path.basename(argv[0])}", adhoc=True,
                      trigger_time=dt.datetime.now(dt.timezone.utc))
    with SpoolWriter(spool, "adhoc") as writer:
        print(f"adhoc run {run.run_id} ({run.task})", file=sys.stderr, flush=True)
        run.emit(writer, "TRIGGER")
        ended = threading.Event()
        echoing = threading.Thread(target=_echo, args=(writer, run.run_id, ended), daemon=True)
        if echo:
            echoing.start()
        try:
            return execute_run(writer, run, list(argv), agent=agent).exit_code
        finally:
            ended.set()
            if echo:
                echoing.join()


def _echo(writer: SpoolWriter, run_id: str, ended: threading.Event) -> None:
    """Copy what a run appends to its log files onto stdout and stderr, until it has ended."""
    targets = [(writer.log_path(run_id, "stdout"), sys.stdout), (writer.log_path(run_id, "stderr"), sys.stderr)]
    handles = {}
    try:
        while True:
            last = ended.is_set()  # read once more after the end: nothing written is left out
            for path, out in targets:
                if path not in handles:
                    try:
                        handles[path] = open(path, "rb")
                    except FileNotFoundError:
                        continue
                data = handles[path].read()
                if data:
                    out.buffer.write(data)
                    out.flush()
            if last:
                return
            ended.wait(0.05)
    finally:
        for handle in handles.values():
            handle.close()
