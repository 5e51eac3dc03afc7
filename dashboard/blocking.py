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

from collections import Counter
from dataclasses import dataclass

import networkx as nx
import pandas as pd

from .graph import closing_edges
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
    closing edges are left out), so a chain of thousands of tasks costs no recursion.
    """

    def __init__(self, runs: list[CycleRun], depends_on: dict[str, list[str]]):
        self.runs = {run.task: run for run in runs}  # the latest run of each task (runs come oldest first)
        graph = nx.DiGraph()
        graph.add_nodes_from(self.runs)
        graph.add_edges_from((upstream, task) for task in self.runs for upstream in depends_on.get(task, ())
                             if upstream in self.runs)
        graph.remove_edges_from(closing_edges(graph)[0])
        self.graph = graph
        #: what holds each task's run (itself when it failed or was terminated on its own)
        self.roots: dict[str, frozenset[str]] = {}
        #: the root causes of a waiting run's upstreams: non-empty when it is blocked
        self.held: dict[str, frozenset[str]] = {}
        for task in nx.topological_sort(graph):
            run = self.runs[task]
            waiting = run.started is None and run.status not in ("SUCCESS", "FAILED")
            upstream = frozenset().union(*(self.roots[up] for up in graph.predecessors(task)))
            self.held[task] = upstream if waiting else frozenset()
            own = frozenset({task}) if run.status in UNSUCCESSFUL else frozenset()
            self.roots[task] = (upstream or own) if waiting else own
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


def cycles_of(index, run_ids) -> tuple[dict[str, object], dict[object, Cycle]]:
    """The trigger time of each of `run_ids` that could be blocked or block others, and the cycles
    of those trigger times. Ad hoc runs belong to no cycle."""
    run_ids = list(run_ids)
    if not run_ids:
        return {}, {}
    placeholders = ", ".join("?" * len(run_ids))
    frame = index.query(f"""
        WITH asked AS (SELECT run_id, trigger_time FROM runs
                       WHERE run_id IN ({placeholders}) AND NOT coalesce(adhoc, false)
                         AND (started IS NULL AND status NOT IN ('SUCCESS', 'FAILED')
                              OR status IN ('FAILED', 'TERMINATED')))
        SELECT r.run_id, r.task, r.status, r.started, r.finished, r.message, r.trigger_time,
               r.run_id IN (SELECT run_id FROM asked) AS asked
        FROM runs r
        WHERE r.trigger_time IN (SELECT trigger_time FROM asked) AND NOT coalesce(r.adhoc, false)
        ORDER BY r.trigger_time, r.task, r.updated""", run_ids)
    if frame.empty:
        return {}, {}
    tasks = index.query("SELECT task, depends_on FROM tasks WHERE len(depends_on) > 0")
    depends_on = {task: list(upstreams) for task, upstreams in zip(tasks["task"], tasks["depends_on"])}
    cycles = {}
    for trigger_time, runs in frame.groupby("trigger_time", sort=False):
        cycles[trigger_time] = Cycle([CycleRun(r.run_id, r.task, r.status, _value(r.started), _value(r.finished),
                                               _value(r.message)) for r in runs.itertuples()], depends_on)
    asked = frame[frame["asked"]]
    return dict(zip(asked["run_id"], asked["trigger_time"])), cycles


def blocked_and_blocks(index, run_ids) -> pd.DataFrame:
    """For each of `run_ids`, in order: `blocked` (the reason, or None), `blocked_by` (the first root
    cause's run id, or None) and `blocks` (how many runs of its cycle its failure blocks: 0 for a
    run that is no root cause)."""
    run_ids = list(run_ids)
    trigger_of, cycles = cycles_of(index, run_ids)
    rows = []
    for run_id in run_ids:
        cycle = cycles.get(trigger_of.get(run_id))
        run = next((r for r in cycle.runs.values() if r.run_id == run_id), None) if cycle else None
        blocked = cycle.blocked(run.task) if run else None
        is_root = run is not None and blocked is None and run.status in UNSUCCESSFUL
        rows.append((blocked.reason if blocked else None, blocked.roots[0].run_id if blocked else None,
                     cycle.blocks(run.task) if is_root else 0))
    return pd.DataFrame(rows, columns=["blocked", "blocked_by", "blocks"], dtype=object).astype({"blocks": int})


def cycle_of(index, run_id: str) -> tuple[Cycle, str] | None:
    """The cycle of a run and its task there, or None when the run is neither blocked nor failed
    (or terminated), or is ad hoc."""
    trigger_of, cycles = cycles_of(index, [run_id])
    cycle = cycles.get(trigger_of.get(run_id))
    task = next((r.task for r in cycle.runs.values() if r.run_id == run_id), None) if cycle else None
    return (cycle, task) if task else None


def _value(value):
    return None if value is None or value is pd.NaT or (isinstance(value, float) and value != value) else value
