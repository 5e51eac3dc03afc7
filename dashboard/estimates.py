"""Finish-time estimates and late runs, from each task's recent successful durations.

A task's **history** is the durations of its latest successful runs; a run on an agent with
enough runs of the task, or whose runs take notably longer or shorter, goes by that agent's.
A running run's **expected duration** is the median of the history's durations longer than
what it has run so far (a run that has gone 40 s is not one of the 30 s ones), with the 10th
and 90th percentiles of the same as its range. A run is **late** once it has run longer than
the 90th percentile of its history. A cycle's **expected end** adds, along the dependency
graph, the expected durations of the tasks still to run after those still running.

`running_estimates` is what the pages and the notebook call.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import networkx as nx
import numpy as np
import pandas as pd

from .formatting import utcnow
from .statuses import UNDER_WAY, sql_list

log = logging.getLogger(__name__)

#: The history is the latest this many successful runs of a task (or of a task on one agent).
HISTORY_RUNS = 50
#: A task's history needs this many runs for an estimate; an agent's, to stand for the task's.
MIN_HISTORY = 5
#: An agent's history stands for the task's when its median differs by more than this share, or
#: when it holds this many runs (a slow agent would otherwise widen every other agent's range).
AGENT_DIFFERS = 0.2
AGENT_ENOUGH = 20
LATE_QUANTILE = 0.9
#: How long a task's history is reused before it is read again.
HISTORY_SECONDS = 60.0


#: A task's history is looked for among the runs finished within each of these, in turn (None: every
#: run), until the task and each of its agents asked for hold HISTORY_RUNS there: their latest runs
#: are then all inside. Recent runs sit in the last row groups of the runs table (ordered by trigger
#: time), so a task that runs often is answered without reading the rest of the history.
LOOK_BACK = (dt.timedelta(days=1), dt.timedelta(days=8), dt.timedelta(days=64), None)


def histories(index, keys, now: dt.datetime | None = None) -> dict[tuple[str, str | None], np.ndarray]:
    """The recent successful durations (seconds, sorted) of each task of `keys`, keyed (task, None),
    and of each of `keys` that names an agent, keyed (task, agent): the latest HISTORY_RUNS by
    finish of each. `keys`: (task, agent or None) pairs."""
    agents_of = _agents_of(keys)
    found: dict[tuple[str, str | None], np.ndarray] = {}
    if not agents_of:
        return found
    now = now or utcnow()
    with index.cursor() as cur:  # (from the column's statistics: no run is read)
        oldest = cur.execute("SELECT min(finished) FROM runs").fetchone()[0]
    for look_back in LOOK_BACK:
        if not agents_of:
            break
        since = now - look_back if look_back is not None and oldest is not None and now - look_back > oldest else None
        read = _latest_durations(index, sorted(agents_of), since)
        for task, agents in list(agents_of.items()):
            wanted = [(task, None), *((task, agent) for agent in agents)]
            if since is None or all(len(read.get(key, ())) >= HISTORY_RUNS for key in wanted):
                found |= {key: read[key] for key in wanted if key in read}
                del agents_of[task]
    return found


def _latest_durations(index, tasks: list[str], finished_since: dt.datetime | None) -> dict:
    """The latest HISTORY_RUNS successful durations (sorted) of each of `tasks`, keyed (task, None),
    and of each on each agent, keyed (task, agent), among the runs finished since `finished_since`
    (None: every run)."""
    since, params = ("AND finished >= ?", [finished_since]) if finished_since is not None else ("", [])
    # Sorted in DuckDB, one list per task and per task on an agent: grouped in pandas, 8 tasks' took
    # 10 of 33 ms at 1M runs, holding the GIL (a refresh beside it waited). The latest of each are
    # kept by arg_max's top n as the runs go by: numbering every run of a task in its order, as a
    # window, cost twice as much (50 tasks: 104 against 42 ms at 1M runs, 288 against 142 at 10M).
    with index.cursor() as cur:
        rows = cur.execute(f"""
            WITH done AS (
                SELECT task, agent, epoch(finished - started) AS seconds, finished
                FROM runs WHERE status = 'SUCCESS' AND started IS NOT NULL AND finished >= started {since}
                                AND task IN ({', '.join('?' * len(tasks))}))
            SELECT task, NULL, list_sort(arg_max(seconds, finished, ?)) FROM done GROUP BY task
            UNION ALL
            SELECT task, agent, list_sort(arg_max(seconds, finished, ?)) FROM done WHERE agent IS NOT NULL
            GROUP BY task, agent""", [*params, *tasks, HISTORY_RUNS, HISTORY_RUNS]).fetchall()
    return {(task, agent): np.array(seconds, dtype=float) for task, agent, seconds in rows}


def recent_histories(index, keys) -> dict[tuple[str, str | None], np.ndarray]:
    """`histories` of `keys` ((task, agent or None) pairs), shared and kept task by task: the
    durations of finished runs change slowly, and a live grid asks every second. Kept
    HISTORY_SECONDS, then given as kept while a thread of their own reads them again (read in the
    refresh that found them old, they took 27-50 ms of it once a minute at 1M runs). Only tasks (or
    agents of a task) never read before are read at once: kept by task set instead, a run that
    finished changed the set of running tasks, and the refresh it caused read them all again (40-57
    ms of a 100 ms update at 1M runs). The arrays are shared: callers must not change them."""
    return _kept_histories(index).get(_agents_of(keys))


def _agents_of(keys) -> dict[str, set[str]]:
    """The agents of each task of `keys` ((task, agent) pairs, an agent None or NaN for none)."""
    agents_of: dict[str, set[str]] = {}
    for task, agent in keys:
        agents_of.setdefault(task, set()).update(() if agent is None or pd.isna(agent) else (agent,))
    return agents_of


#: How many tasks' histories an index keeps (a few kB each).
KEPT_TASKS = 2_048
_READER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskdash-histories")


@functools.lru_cache(maxsize=16)
def _kept_histories(index) -> _KeptHistories:
    return _KeptHistories(index)


class _KeptHistories:
    """One index's histories by task, each task's with when it was read and for which agents."""

    def __init__(self, index):
        self._index = index
        self._lock = threading.Lock()
        # task -> (when read, the agents read, its histories: (task, None) and (task, agent) -> durations)
        self._kept: OrderedDict[str, tuple[float, frozenset[str], dict]] = OrderedDict()
        self._reading: set[str] = set()

    def get(self, agents_of: dict[str, set[str]]) -> dict:
        """The histories of each task of `agents_of` and of it on each of its agents."""
        now = time.monotonic()
        with self._lock:
            known = {task: self._kept[task] for task in agents_of if task in self._kept}
            kept = {task: entry for task, entry in known.items() if agents_of[task] <= entry[1]}
            old = {task: set(agents) for task, (read, agents, _) in kept.items()
                   if now - read >= HISTORY_SECONDS and task not in self._reading}
            self._reading |= set(old)
        if old:
            _READER.submit(self._read_again, old)
        found = {key: durations for _, _, of_task in kept.values() for key, durations in of_task.items()}
        if missing := {task: agents | (known[task][1] if task in known else set())
                       for task, agents in agents_of.items() if task not in kept}:
            found |= self._read(missing)
        return found

    def _read(self, agents_of: dict[str, set[str]]) -> dict:
        found = histories(self._index, [(task, agent) for task, agents in sorted(agents_of.items())
                                        for agent in [None, *sorted(agents)]])
        by_task = {task: {} for task in agents_of}  # a task without history is kept too
        for key, durations in found.items():
            by_task[key[0]][key] = durations
        read = time.monotonic()
        with self._lock:
            for task, of_task in by_task.items():
                self._kept[task] = (read, frozenset(agents_of[task]), of_task)
                self._kept.move_to_end(task)
            while len(self._kept) > KEPT_TASKS:
                self._kept.popitem(last=False)
        return found

    def _read_again(self, agents_of: dict[str, set[str]]) -> None:
        try:
            self._read(agents_of)
        except Exception:  # (a closed or reopened index, say: the next refresh reads them itself)
            log.debug("histories of %d tasks not read again", len(agents_of), exc_info=True)
        finally:
            with self._lock:
                self._reading -= set(agents_of)


def history_of(found: dict, task: str, agent: str | None) -> np.ndarray | None:
    """The history that stands for a run of `task` on `agent`: the agent's when it has enough runs
    (AGENT_ENOUGH, or MIN_HISTORY if it differs from the task's), else the task's; None when there
    is too little history."""
    of_task = found.get((task, None))
    if of_task is None or len(of_task) < MIN_HISTORY:
        return None
    of_agent = found.get((task, agent)) if agent is not None else None
    if of_agent is not None and len(of_agent) >= MIN_HISTORY:
        task_median, agent_median = quantile(of_task, 0.5), quantile(of_agent, 0.5)
        if len(of_agent) >= AGENT_ENOUGH or (
                task_median > 0 and abs(agent_median - task_median) / task_median > AGENT_DIFFERS):
            return of_agent
    return of_task


def expected_duration(history: np.ndarray, elapsed: float) -> tuple[float, float, float]:
    """(expected, low, high) seconds for a run that has run `elapsed` seconds: the median and the
    10th and 90th percentiles of the history's durations longer than that; past them all, what it
    has run so far (it may end any moment)."""
    longer = history[int(np.searchsorted(history, elapsed, side="right")):]
    if len(longer) == 0:
        return elapsed, elapsed, elapsed
    return quantile(longer, 0.5), quantile(longer, 0.1), quantile(longer, 0.9)


def is_late(history: np.ndarray, elapsed: float) -> bool:
    """Whether a run has run longer than LATE_QUANTILE of its history."""
    return bool(elapsed > quantile(history, LATE_QUANTILE))


def quantile(ordered: np.ndarray, share: float) -> float:
    """numpy.quantile(ordered, share) (its linear method, to the last bit) of values already sorted:
    a page's 50 running runs asked numpy for 200 quantiles of a few dozen values, 10 ms of a live
    update spent on numpy's overhead per call."""
    position = share * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    low, high = float(ordered[below]), float(ordered[above])
    return high - (high - low) * (1 - fraction) if fraction >= 0.5 else low + (high - low) * fraction


def running_estimates(index, now: dt.datetime | None = None, runs=None) -> pd.DataFrame:
    """Each running run: its elapsed seconds, expected finish with its range (`finish_low`,
    `finish_high`), and whether it is `late`. Runs of a task with too little history have no
    estimate (NaT) and are never late. `runs`: only these (run ids, or a frame with run_id, task,
    agent, started and status: a page of runs already read)."""
    now = now or utcnow()
    if runs is None or not isinstance(runs, pd.DataFrame):
        where, params = f"status IN ({sql_list(UNDER_WAY)}) AND started IS NOT NULL", []
        if runs is not None:
            runs = list(runs)
            if not runs:
                return _empty()
            where += f" AND run_id IN ({', '.join('?' * len(runs))})"
            params = runs
        runs = index.query(f"SELECT run_id, task, agent, started, status FROM runs WHERE {where}", params)
    runs = runs[runs["status"].isin(UNDER_WAY) & runs["started"].notna()]
    if runs.empty:
        return _empty()
    found = recent_histories(index, zip(runs["task"], runs["agent"]))
    return pd.DataFrame([(run_id, task, *_estimate(found, task, agent, started, now)) for run_id, task, agent, started
                         in zip(runs["run_id"], runs["task"], runs["agent"], runs["started"])], columns=_COLUMNS)


def page_estimates(index, runs, now: dt.datetime | None = None) -> dict[str, np.ndarray]:
    """running_estimates' expected_finish, finish_low, finish_high and late for each row of a page
    of runs (a frame, or columns of values, holding task, agent, status, started and finished), as
    columns to set on it: NaT and False where a run is not running or has too little history. No
    frame is built: a live grid asks at every update, and building, deduplicating and reindexing
    one took 5 of a runs page's 18 ms."""
    now = now or utcnow()
    count = len(runs["task"])
    columns = {name: np.full(count, np.datetime64("NaT"), dtype="datetime64[ns]")
               for name in ("expected_finish", "finish_low", "finish_high")}
    late = np.zeros(count, dtype=bool)
    # Plain Python over the page's values: pandas' masks and Timestamps cost more at 50 rows.
    running = [(row, task, agent, started) for row, (task, agent, status, started, finished)
               in enumerate(zip(runs["task"], runs["agent"], runs["status"], runs["started"], runs["finished"]))
               if status in UNDER_WAY and not pd.isna(started) and pd.isna(finished)]
    if running:
        found = recent_histories(index, [(task, agent) for _, task, agent, _ in running])
        for row, task, agent, started in running:
            history = history_of(found, task, None if pd.isna(agent) else agent)
            if history is not None:
                seconds = max(0.0, (now - started).total_seconds())
                for name, value in zip(columns, expected_duration(history, seconds)):
                    columns[name][row] = started + dt.timedelta(seconds=value)
                late[row] = is_late(history, seconds)
    return columns | {"late": late}


def _estimate(found: dict, task: str, agent: str | None, started: dt.datetime, now: dt.datetime) -> tuple:
    """(elapsed seconds, expected finish, low, high, late) of a run of `task` on `agent` started at
    `started`; NaT and False with too little history."""
    elapsed = max(0.0, (now - started).total_seconds())
    history = history_of(found, task, None if pd.isna(agent) else agent)
    if history is None:
        return elapsed, pd.NaT, pd.NaT, pd.NaT, False
    expected, low, high = expected_duration(history, elapsed)
    return (elapsed, started + dt.timedelta(seconds=expected), started + dt.timedelta(seconds=low),
            started + dt.timedelta(seconds=high), is_late(history, elapsed))


def cycle_end(index, trigger_time: dt.datetime, now: dt.datetime | None = None) -> dt.datetime | None:
    """When the cycle of `trigger_time` is expected to end: running runs end at their expected
    finish, tasks not started yet start when their last upstream ends and take their median
    duration; None when a task of the cycle has too little history, or nothing is left to run."""
    now = now or utcnow()
    runs = index.query("SELECT run_id, task, agent, status, started, finished FROM runs "
                       "WHERE trigger_time = ? AND NOT coalesce(adhoc, false) ORDER BY updated", [trigger_time])
    latest = {row.task: row for row in runs.itertuples()}  # a retry replaces its earlier try
    pending = [task for task, row in latest.items() if pd.isna(row.finished)]
    if not pending:
        return None
    tasks = index.query("SELECT task, depends_on FROM tasks")
    graph = nx.DiGraph()
    graph.add_nodes_from(latest)
    graph.add_edges_from((up, task) for task, ups in zip(tasks["task"], tasks["depends_on"]) if task in latest
                         for up in (ups if ups is not None else ()) if up in latest)
    if not nx.is_directed_acyclic_graph(graph):
        return None
    found = histories(index, [(task, None) for task in pending], now)
    running = running_estimates(index, now, [latest[task].run_id for task in pending]).set_index("task")
    ends: dict[str, dt.datetime] = {}
    for task in nx.topological_sort(graph):
        row = latest[task]
        if not pd.isna(row.finished):
            ends[task] = row.finished
        elif task in running.index:
            if pd.isna(running.loc[task, "expected_finish"]):
                return None
            ends[task] = max(running.loc[task, "expected_finish"], now)
        else:
            history = history_of(found, task, None)
            if history is None:
                return None
            start = max([now, *(ends[up] for up in graph.predecessors(task))])
            ends[task] = start + dt.timedelta(seconds=float(np.median(history)))
    return max(ends[task] for task in pending)


_COLUMNS = ["run_id", "task", "elapsed", "expected_finish", "finish_low", "finish_high", "late"]


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=_COLUMNS)
