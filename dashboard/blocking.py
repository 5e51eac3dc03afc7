"""Why a run can no longer start, and what a failure blocks: root causes within a cycle.

A cycle is the runs of one trigger time. A run is **blocked** when it has not started, has not
ended on its own (SUCCESS or FAILED), and an upstream run of its cycle failed or was
terminated, directly or through upstreams blocked in turn. Its **root causes** are the
furthest such runs: those that failed or were terminated themselves, not for being blocked.
A root cause **blocks** the runs whose root causes include it.

Derived from the index rather than written to the spool, so the runs of any scheduler that
were left waiting show it too. Asked for a page of runs at a time: only the cycles of those
runs are read.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from dataclasses import dataclass

import networkx as nx
import pandas as pd

from .graph import closing_edges
from .run_hours import hour_of
from .shared_answers import shared_per_version
from .statuses import UNSUCCESSFUL


@dataclass(frozen=True)
class CycleRun:
    run_id: str
    task: str
    status: str
    started: object
    finished: object
    message: str | None


@dataclass(frozen=True)
class Blocked:
    """Why a run is blocked: its root causes (the first by task name is named) and, when the root is
    not a direct upstream, the direct upstream the block came through."""

    roots: tuple[CycleRun, ...]
    via: str | None

    @property
    def reason(self) -> str:
        """"upstream Extract failed (via Load)", the built-in runner's words."""
        root = self.roots[0]
        verb = "failed" if root.status == "FAILED" else "was terminated"
        more = f" and {len(self.roots) - 1} more" if len(self.roots) > 1 else ""
        return f"upstream {root.task} {verb}{more}" + (f" (via {self.via})" if self.via else "")


class Cycle:
    """The runs of one trigger time and the tasks' dependencies, with their root causes.

    One pass over the tasks in dependency order (a loop in the definitions holds nothing: its
    closing edges are left out), so a chain of thousands of tasks costs no recursion. A cycle
    where no run waits holds nothing: its graph is not built (a page of 50 failed runs of 50
    cycles: 3.8 of its 6 ms went to building graphs).
    """

    def __init__(self, runs: list[CycleRun], depends_on: dict[str, list[str]]):
        self.runs = {run.task: run for run in runs}  # the latest run of each task (runs come oldest first)
        self.by_run_id = {run.run_id: run for run in self.runs.values()}
        own = {task: frozenset({task}) if run.status in UNSUCCESSFUL else frozenset()
               for task, run in self.runs.items()}
        #: what holds each task's run (itself when it failed or was terminated on its own)
        self.roots: dict[str, frozenset[str]] = own
        #: the root causes of a waiting run's upstreams: non-empty when it is blocked
        self.held: dict[str, frozenset[str]] = {}
        self._blocks: Counter = Counter()
        self.graph = None  # (when nothing is blocked, no path is asked for)
        if not any(_waiting(run) for run in self.runs.values()):
            return
        self.roots = {}
        graph = nx.DiGraph()
        graph.add_nodes_from(self.runs)
        graph.add_edges_from((upstream, task) for task in self.runs for upstream in depends_on.get(task, ())
                             if upstream in self.runs)
        graph.remove_edges_from(closing_edges(graph)[0])
        self.graph = graph
        for task in nx.topological_sort(graph):
            run = self.runs[task]
            waiting = _waiting(run)
            upstream = frozenset().union(*(self.roots[up] for up in graph.predecessors(task)))
            self.held[task] = upstream if waiting else frozenset()
            self.roots[task] = (upstream or own[task]) if waiting else own[task]
        self._blocks = Counter(root for held in self.held.values() for root in held)

    def blocked(self, task: str) -> Blocked | None:
        """Why `task`'s run is blocked, or None if it is not."""
        roots = sorted(self.held.get(task, ()))
        if not roots:
            return None
        direct = set(self.graph.predecessors(task))
        via = None if roots[0] in direct else self._step(task, roots[0])
        return Blocked(tuple(self.runs[root] for root in roots), via)

    def blocks(self, task: str) -> int:
        """How many runs of the cycle `task`'s failure blocks."""
        return self._blocks.get(task, 0)

    def chain(self, task: str) -> list[CycleRun]:
        """From `task`'s run up to its first root cause, through the upstreams the block came by."""
        path = [self.runs[task]]
        roots = sorted(self.held.get(task) or self.roots.get(task, ()))
        while roots and path[-1].task != roots[0]:
            path.append(self.runs[self._step(path[-1].task, roots[0])])
        return path

    def _step(self, task: str, root: str) -> str:
        """The first (by name) upstream of `task` that `root` holds."""
        return min(upstream for upstream in self.graph.predecessors(task) if root in self.roots[upstream])


def _waiting(run: CycleRun) -> bool:
    """Not started, and not ended on its own: a run an upstream's failure can hold."""
    return run.started is None and run.status not in ("SUCCESS", "FAILED")


#: At most this many runs of cycles are kept between writes (a cycle of a 1,000-task graph holds
#: 1,000; a page shows the cycles of at most 200 runs).
KEPT_CYCLE_RUNS = 200_000


#: The columns of a run `cycles_of` and `blocked_and_blocks` look at.
RUN_COLUMNS = ["run_id", "task", "trigger_time", "status", "started", "adhoc"]


def runs_of(index, run_ids) -> pd.DataFrame:
    """The RUN_COLUMNS of each of `run_ids` the index has, in their order."""
    run_ids = list(run_ids)
    if not run_ids:
        return pd.DataFrame(columns=RUN_COLUMNS)
    frame = index.query(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id IN ({', '.join('?' * len(run_ids))})",
                        run_ids)
    return frame.set_index("run_id").reindex(pd.Index(run_ids, name="run_id")).dropna(how="all").reset_index()


@shared_per_version
def dependencies(index) -> dict[str, list[str]]:
    """Each task's upstreams (tasks without any left out), read once per index version. Shared:
    callers must not change it."""
    with index.cursor() as cur:
        return {task: list(ups) for task, ups in
                cur.execute("SELECT task, depends_on FROM tasks WHERE len(depends_on) > 0").fetchall()}


def cycles_of(index, runs) -> dict[dt.datetime, Cycle]:
    """The cycles (by trigger time) of the runs that could be blocked or block others: of a task
    with upstreams, not started and not ended on their own; or of a task with downstreams, failed
    or terminated. Ad hoc runs belong to no cycle. Only those trigger times are read (the runs
    table is in trigger order: the rest is skipped), and only if the index does not keep them
    (see KeptCycles). `runs`: a frame, or columns of values (a page read as lists), holding
    RUN_COLUMNS."""
    depends_on = dependencies(index)
    if not depends_on:
        return {}
    has_downstreams = {upstream for upstreams in depends_on.values() for upstream in upstreams}
    times = list(dict.fromkeys(  # plain Python: a page is small, pandas' masks cost more
        _time_key(trigger_time)
        for trigger_time, task, status, started, adhoc in zip(runs["trigger_time"], runs["task"], runs["status"],
                                                              runs["started"], runs["adhoc"])
        if adhoc is not True and not pd.isna(trigger_time)
        and ((status in UNSUCCESSFUL and task in has_downstreams)
             or (task in depends_on and pd.isna(started) and status not in ("SUCCESS", "FAILED")))))
    if not times:
        return {}
    if index.kept_cycles is None:
        return _read_cycles(index, times, depends_on)
    return index.kept_cycles.of(times, depends_on)


def _read_cycles(index, times: list[dt.datetime], depends_on: dict[str, list[str]]) -> dict[dt.datetime, Cycle]:
    with index.cursor() as cur:  # (the range lets DuckDB skip row groups: an IN list alone, 1.9 ms against 1.4)
        rows = cur.execute(f"""
            SELECT trigger_time, run_id, task, status, started, finished, message FROM runs
            WHERE trigger_time BETWEEN ? AND ? AND trigger_time IN ({', '.join('?' * len(times))})
              AND NOT coalesce(adhoc, false)
            ORDER BY trigger_time, task, updated""", [min(times), max(times), *times]).fetchall()
    by_trigger: dict[dt.datetime, list[CycleRun]] = {}
    for trigger_time, *run in rows:
        by_trigger.setdefault(trigger_time, []).append(CycleRun(*run))
    return {trigger_time: Cycle(runs, depends_on) for trigger_time, runs in by_trigger.items()}


class KeptCycles:
    """The cycles an index's pages asked for, kept between writes: a write says which hours of
    trigger time it changed the runs of (run_hours.HourChanges), and only the cycles of those hours
    are read again (1M runs: a page's cycles took 2.3-2.8 ms a refresh). A write that names no
    hours, or new task dependencies, forget them all."""

    def __init__(self, index):
        self._index = index
        self._lock = threading.Lock()
        #: trigger time -> its cycle (None: no run of it is in a cycle), oldest asked first
        self._cycles: dict[dt.datetime, Cycle | None] = {}
        self._runs = 0  # CycleRuns held
        self._version = -1
        self._depends_on: dict[str, list[str]] | None = None

    def of(self, times: list[dt.datetime], depends_on: dict[str, list[str]]) -> dict[dt.datetime, Cycle]:
        version = self._index.version  # (before reading: a write after it is read again next time)
        with self._lock:
            self._catch_up(version, depends_on)
            found = {time: self._cycles[time] for time in times if time in self._cycles}
        missing = [time for time in times if time not in found]
        if missing:
            read = _read_cycles(self._index, missing, depends_on)
            found |= {time: read.get(time) for time in missing}
            with self._lock:
                if self._version == version:  # (else another caller has moved on: these may be stale)
                    self._keep({time: found[time] for time in missing})
        return {time: cycle for time, cycle in found.items() if cycle is not None}

    def _catch_up(self, version: int, depends_on: dict[str, list[str]]) -> None:
        changed = self._index.hour_changes.between(self._version, version)
        if changed is None or (depends_on is not self._depends_on and depends_on != self._depends_on):
            self._cycles, self._runs = {}, 0
        elif changed:
            for time in [time for time in self._cycles if hour_of(time) in changed]:
                self._forget(time)
        self._version, self._depends_on = version, depends_on

    def _keep(self, cycles: dict[dt.datetime, Cycle | None]) -> None:
        for time, cycle in cycles.items():
            self._forget(time)
            self._cycles[time] = cycle
            self._runs += len(cycle.runs) if cycle else 0
        while self._runs > KEPT_CYCLE_RUNS and len(self._cycles) > 1:
            self._forget(next(iter(self._cycles)))

    def _forget(self, time: dt.datetime) -> None:
        cycle = self._cycles.pop(time, None)
        self._runs -= len(cycle.runs) if cycle else 0


def _time_key(value) -> dt.datetime | None:
    """A trigger time as cycles are keyed (a plain datetime, as DuckDB gives it), None if missing."""
    if pd.isna(value):
        return None
    return value.to_pydatetime() if isinstance(value, pd.Timestamp) else value


def blocked_and_blocks(index, runs) -> pd.DataFrame:
    """For each run, in order: `blocked` (the reason, or None), `blocked_by` (the first root cause's
    run id, or None) and `blocks` (how many runs of its cycle its failure blocks: 0 for a run that
    is no root cause). `runs`: run ids, or a frame or columns of values holding RUN_COLUMNS (a page
    of runs already read); the result has the frame's index."""
    runs = runs if isinstance(runs, (pd.DataFrame, dict)) else runs_of(index, runs)
    columns = blocking_columns(index, runs)
    rows = runs.index if isinstance(runs, pd.DataFrame) else None
    return pd.DataFrame({"blocked": pd.Series(columns["blocked"], index=rows, dtype=object),
                         "blocked_by": pd.Series(columns["blocked_by"], index=rows, dtype=object),
                         "blocks": pd.Series(columns["blocks"], index=rows, dtype=int)})


def blocking_columns(index, runs) -> dict[str, list]:
    """blocked_and_blocks' columns as lists, for a frame or columns of values holding RUN_COLUMNS."""
    cycles = cycles_of(index, runs) if len(runs["run_id"]) else {}
    blocked, blocked_by, blocks = [], [], []
    for run_id, trigger_time in zip(runs["run_id"], runs["trigger_time"]):
        cycle = cycles.get(_time_key(trigger_time))
        run = cycle.by_run_id.get(run_id) if cycle else None
        why = cycle.blocked(run.task) if run else None
        blocked.append(why.reason if why else None)
        blocked_by.append(why.roots[0].run_id if why else None)
        blocks.append(cycle.blocks(run.task) if run is not None and why is None and run.status in UNSUCCESSFUL else 0)
    return {"blocked": blocked, "blocked_by": blocked_by, "blocks": blocks}


def cycle_of(index, run_id: str) -> tuple[Cycle, str] | None:
    """The cycle of a run and its task there, or None when the run is neither blocked nor failed
    (or terminated), or is ad hoc."""
    runs = runs_of(index, [run_id])
    cycle = cycles_of(index, runs).get(_time_key(runs["trigger_time"].iloc[0])) if len(runs) else None
    run = cycle.by_run_id.get(run_id) if cycle else None
    return (cycle, run.task) if run else None
