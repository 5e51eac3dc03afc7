"""Read queries over the index: runs with filters and pages, one run, its logs, ingest errors.

Every query is parameterised; user text never becomes SQL. Results are DataFrames of at
most one page, so a caller never holds a whole filtered set.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import run_hours
from .blocking import blocked_and_blocks, blocking_columns
from .emphasis import pattern_problem
from .estimates import page_estimates
from .formatting import utcnow
from .index import Index, index_frame
from .index_schema import RunSummary, reached_names
from .statuses import ORDER, STATUSES, UNDER_WAY

RUN_COLUMNS = ("run_id", "task", "grp", "status", "agent", "adhoc", "trigger_time", "started",
               "finished", "exit_code", "message", "updated")
#: The time ranges the pages offer, shortest first.
TIME_RANGES = ("6h", "12h", "24h", "3d", "7d")
SORTABLE = ("trigger_time", "task", "grp", "status", "agent", "started", "finished", "duration")
_RANGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

_RUNS_FROM = "FROM runs r"
_TASK_TEXT = "strpos(lower(r.task), lower(?)) > 0"  # literal text, no wildcards
_RUN_SELECT = """
SELECT r.run_id, r.task, r.grp, r.status, r.agent, r.adhoc, r.trigger_time, r.started, r.finished,
       r.exit_code, r.message, r.updated, r.reached
"""
# Never negative: a run whose end (or a clock) is dated before its start shows 0 s, as the
# detail page does (formatting.duration_seconds). In whole microseconds: sorting 1M runs by it took
# 24 ms, against 61 ms as an INTERVAL (epoch() of which gives the same seconds, to the last bit).
_DURATION_US = ("CASE WHEN r.started IS NOT NULL "  # (greatest skips a null: not started stays null)
                "THEN greatest(epoch_us(coalesce(r.finished, ?)) - epoch_us(r.started), 0) END")
#: DuckDB reads the runs of a sorted page late (the sort's columns first, then the page's runs by
#: row id) only for a LIMIT of at most 50 (its late_materialization_max_rows). Read as one, a page
#: of 100 sorted by duration took 180 ms at 1M runs; as two pieces of 50, 52 ms. A page of the grid
#: (at most LATE_READ_PIECES of them) is read in such pieces; a longer list (a command's, a
#: notebook's) as one: each piece sorts all the runs before it again.
LATE_READ_ROWS = 50
LATE_READ_PIECES = 4
#: What blocking and estimates look at in a page of runs.
_ASSESSED = ("run_id", "task", "agent", "status", "adhoc", "trigger_time", "started", "finished")
LIFECYCLE_STEP_SQL = "CASE status " + " ".join(f"WHEN '{s}' THEN {n}" for s, n in ORDER.items()) + " END"
#: A task's latest run is the latest by trigger time, then start (a retry not started yet is
#: later than the try it replaces), then last event, then run id. A retry often has its first
#: try's trigger time (Airflow's logical date): by trigger time alone the failed try could win.
#: The tasks table, the graph, the notebook API and the CLI's newest-first order all use this.
LATEST_RUN_ORDER = ("r.trigger_time", "coalesce(r.started, 'infinity'::TIMESTAMP)", "r.updated", "r.run_id")
_LATEST_RUN_KEY = "{" + ", ".join(f"'k{i}': {column}" for i, column in enumerate(LATEST_RUN_ORDER)) + "}"


def page_count(total: int, page_size: int) -> int:
    """How many pages of `page_size` hold `total` items: at least one, an empty one when there are none."""
    return max(1, -(-total // page_size))


def parse_duration(text: str) -> dt.timedelta:
    """A time range such as '6h', '3d' or '90m' as a timedelta; ValueError if it is not one."""
    match = _RANGE.fullmatch(text.strip().lower())
    if not match:
        raise ValueError(f"not a time range: {text!r} (use for example 30m, 6h, 3d, 1w)")
    return dt.timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


@dataclass(frozen=True)
class RunFilter:
    """Which runs to show: any combination of statuses, task-name text, a time range, a group, a
    set of runs (those of one failure signature, say), and a window of trigger times."""

    statuses: tuple[str, ...] = ()
    task_text: str = ""
    since: dt.timedelta | None = None
    group: str | None = None
    #: only these runs (None: any run)
    run_ids: frozenset[str] | None = None
    #: only runs triggered at or after this (naive UTC; None: no bound)
    start: dt.datetime | None = None
    #: only runs triggered before this (naive UTC; None: no bound)
    end: dt.datetime | None = None

    @classmethod
    def from_user(cls, statuses=(), task: str = "", since: str | None = None, group: str | None = None) -> RunFilter:
        """The filter for what a user asked: statuses in any case, part of a task name, a time range
        such as '24h' (none: all time), a group (none or '': any). ValueError says what is wrong."""
        run_filter = cls(statuses=tuple(status.upper() for status in statuses), task_text=task,
                         since=parse_duration(since) if since else None, group=group or None)
        run_filter.check()
        return run_filter

    def check(self) -> None:
        """Raise ValueError, naming the known statuses, if the filter asks for an unknown one."""
        unknown = set(self.statuses) - set(STATUSES)
        if unknown:
            raise ValueError(f"unknown status {sorted(unknown)[0]!r}: use one of {', '.join(STATUSES)}")

    def where(self, now: dt.datetime | None = None) -> tuple[str, list]:
        clauses, params = [], []
        self.check()
        if self.statuses:
            clauses.append(f"r.status IN ({', '.join('?' * len(self.statuses))})")
            params += list(self.statuses)
        if self.task_text:
            clauses.append(_TASK_TEXT)
            params.append(self.task_text)
        if self.since is not None:
            clauses.append("r.trigger_time >= ?")
            params.append((now or utcnow()) - self.since)
        if self.group:
            clauses.append("r.grp = ?")
            params.append(self.group)
        if self.run_ids is not None:
            clauses.append("r.run_id IN (SELECT unnest(?::VARCHAR[]))")
            params.append(sorted(self.run_ids))
        if self.start is not None:
            clauses.append("r.trigger_time >= ?")
            params.append(self.start)
        if self.end is not None:
            clauses.append("r.trigger_time < ?")
            params.append(self.end)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def may_admit(self, run: RunSummary, now: dt.datetime | None = None) -> bool:
        """Whether a run could match, judged in Python from a hub summary (never a false no).

        A live page asks this before it queries: a change to runs it neither shows nor
        could show costs it nothing.
        """
        if self.statuses and run.status not in self.statuses:
            return False
        if self.group and run.grp is not None and run.grp != self.group:
            return False
        if self.since is not None and run.trigger_time is not None and \
                run.trigger_time < (now or utcnow()) - self.since - dt.timedelta(minutes=1):
            return False
        if run.trigger_time is not None and (
                (self.start is not None and run.trigger_time < self.start - dt.timedelta(minutes=1))
                or (self.end is not None and run.trigger_time >= self.end + dt.timedelta(minutes=1))):
            return False
        if not self.task_text or not (self.task_text.isascii() and run.task.isascii()):
            return True  # Python's and DuckDB's lower() may differ beyond ASCII: query to be sure
        return self.task_text.lower() in run.task.lower()


@dataclass(frozen=True)
class RunsPage:
    """One page of runs, with the total it was cut from and the count in each status."""

    runs: pd.DataFrame
    total: int
    page: int  # 1-based, moved back to the last page when asked for one past it
    page_size: int
    #: runs per status under the filter but whatever statuses it picks
    status_counts: dict[str, int]

    @property
    def pages(self) -> int:
        return page_count(self.total, self.page_size)

    @property
    def first_row(self) -> int:
        """1-based position of the page's first run in the whole set (0 when it is empty)."""
        return (self.page - 1) * self.page_size + 1 if self.total else 0


def runs_page(index: Index, run_filter: RunFilter = RunFilter(), limit: int = 50, offset: int = 0,
              sort: str = "trigger_time", descending: bool = True, now: dt.datetime | None = None,
              total: int | None = None, hours: list[tuple[int, np.ndarray]] | None = None) -> pd.DataFrame:
    """One page of runs matching the filter, newest first unless told otherwise.

    `duration` is in seconds, up to `now` for a run that has not finished. Given the
    `total`, a page in the second half is read from the other end (a last page costs what
    a first page does, instead of sorting everything before it). Given the filter's
    `runs_per_hour`, a page by trigger time reads only the hours it spans, and a page of a time
    range's longest runs is made from each hour's longest, kept (see dashboard.longest_runs).
    """
    if sort not in SORTABLE:
        raise ValueError(f"cannot sort by {sort!r}: use one of {', '.join(SORTABLE)}")
    now = now or utcnow()
    where, params = run_filter.where(now)
    from_end = total is not None and offset > total // 2
    if from_end:
        limit, offset = max(0, min(limit, total - offset)), max(0, total - offset - limit)
    direction = "DESC" if descending != from_end else "ASC"
    nulls = "FIRST" if from_end else "LAST"  # missing values stay at the end of the whole order
    order_columns = ([_DURATION_US] if sort == "duration" else list(LATEST_RUN_ORDER[:-1]) if sort == "trigger_time"
                     else [f"r.{sort}"])
    order_params = [now] if sort == "duration" else []
    order = ", ".join(f"{column} {direction} NULLS {nulls}" for column in order_columns)
    if hours is not None and sort == "trigger_time":
        bound, bound_params = _hour_bound(hours, run_filter.statuses, direction, where, int(limit) + int(offset))
    else:
        bound, bound_params = _page_bound(index, sort, where, params, direction, nulls, int(limit), int(offset))

    def read(bound: str, bound_params: list) -> pa.Table:
        # Within a bound, the page is cut from a few thousand runs: DuckDB's late materialization
        # (the page's runs read again by row id) cost more than it saved (1M runs, the default
        # view: 5.3 ms against 3.6). OFFSET 0 keeps the bounded runs a subquery of their own.
        # Unbounded, the page is read in pieces DuckDB reads late.
        runs = f"FROM (SELECT * {_RUNS_FROM} {where} {bound} OFFSET 0) r" if bound else f"{_RUNS_FROM} {where}"
        statement = f"{_RUN_SELECT}, {_DURATION_US} / 1e6 AS duration {runs} ORDER BY {order}"
        args = [now] + params + bound_params + order_params
        pieces = [(int(limit), int(offset))]
        if not bound and LATE_READ_ROWS < limit <= LATE_READ_PIECES * LATE_READ_ROWS:
            pieces = [(min(LATE_READ_ROWS, int(limit) - n), int(offset) + n) for n in range(0, int(limit), LATE_READ_ROWS)]

        def piece(cur: duckdb.DuckDBPyConnection, limit: int, offset: int) -> pa.Table:
            return cur.execute(f"{statement}, r.run_id {direction} LIMIT ? OFFSET ?", args + [limit, offset]).to_arrow_table()
        with index.cursor() as cur:
            if len(pieces) > 1:
                cur.begin()  # one snapshot for all pieces (a write between two could repeat or skip a run)
            return pa.concat_tables([piece(cur, limit, offset) for limit, offset in pieces])
    runs = None
    if (sort == "duration" and descending and not from_end and hours is not None and index.longest_runs is not None
            and run_filter == RunFilter(since=run_filter.since)):  # (the week's longest, say: see longest_runs)
        runs = index.longest_runs.page(_RUN_SELECT, f"{_DURATION_US} / 1e6", [now], hours, now - run_filter.since,
                                       int(limit), int(offset))
    if runs is None:
        runs = read(bound, bound_params)
    if bound and total is not None and len(runs) < min(int(limit), total - int(offset)):
        runs = read("", [])  # the runs changed between the two statements (one left the filter)
    runs = runs.take(np.arange(len(runs))[::-1]) if from_end else runs
    runs = runs.set_column(runs.schema.get_field_index("reached"), "reached", reached_names(runs.column("reached")))
    # Why a run is blocked, and for those running the expected finish with its range and whether
    # they are late (dashboard.estimates; NaT and False for the others), from the page's values as
    # Python lists (the frame's columns and pandas' Timestamps: 2 ms more), added to the page's
    # table, which pandas then takes in one step (a frame for each, joined by pd.concat: 2.2 ms
    # against 1.9).
    values = {name: runs.column(name).to_pylist() for name in _ASSESSED}
    blocking = blocking_columns(index, values)
    for name, column in [("blocks", pa.array(blocking.pop("blocks"), pa.int64())),
                         *page_estimates(index, values, now).items()]:
        runs = runs.append_column(name, pa.array(column, from_pandas=True))
    frame = index_frame(runs)
    for name in ("blocked", "blocked_by"):  # before blocks; None where not blocked (a str column: NaN)
        frame.insert(frame.columns.get_loc("blocks"), name, pd.Series(blocking[name], frame.index, dtype=object))
    return frame


def _page_bound(index: Index, sort: str, where: str, params: list, direction: str, nulls: str, limit: int,
                offset: int) -> tuple[str, list]:
    """A condition that keeps every run of the page sorted by a time: no later (or, ascending, no
    earlier) than the page's last run, found by a statement sorting that one column. The runs table
    is in trigger order, so with the time as a constant DuckDB skips the row groups past it (1M runs,
    7 days, page 101: 27 ms against 221 ms unbounded). As a subquery of the page's own statement it
    became a join that reads every run in the range: 58 ms for page 1, against 7 ms.
    ("", []) when the sort is not by a time, the page ends the set or its last run has no time."""
    if sort not in ("trigger_time", "started", "finished") or limit <= 0:
        return "", []
    with index.cursor() as cur:
        row = cur.execute(f"SELECT r.{sort} {_RUNS_FROM} {where} ORDER BY r.{sort} {direction} NULLS {nulls} "
                          "LIMIT 1 OFFSET ?", params + [offset + limit - 1]).fetchone()
    if row is None or row[0] is None:
        return "", []
    missing = f" OR r.{sort} IS NULL" if nulls == "FIRST" else ""  # (these come before it)
    return f"{'AND' if where else 'WHERE'} (r.{sort} {'>=' if direction == 'DESC' else '<='} ?{missing})", [row[0]]


def _hour_bound(hours: list[tuple[int, np.ndarray]], statuses: tuple[str, ...], direction: str, where: str,
                rows: int) -> tuple[str, list]:
    """`_page_bound` from runs_per_hour's counts, with no statement: the first hour (from the newest,
    or with `direction` ASC from the oldest) by which the filter holds `rows` runs bounds the page.
    The page is read again unbounded if runs left the filter since the counts were read (see
    runs_page): one hour's runs more than the page are read, against 2.4 ms for _page_bound's
    statement at 1M runs."""
    columns = [STATUSES.index(status) for status in statuses] if statuses else slice(None)
    seen = 0
    for hour, counts in (reversed(hours) if direction == "DESC" else hours):
        seen += int(counts[columns].sum())
        if seen >= rows:
            word = "AND" if where else "WHERE"
            if direction == "DESC":
                return f"{word} r.trigger_time >= ?", [run_hours.hour_start(hour)]
            return f"{word} r.trigger_time < ?", [run_hours.hour_start(hour + 1)]
    return "", []


def timeline_runs(index: Index, run_filter: RunFilter = RunFilter(), limit: int = 5_000,
                  now: dt.datetime | None = None) -> pd.DataFrame:
    """The newest `limit` runs matching the filter, with only what a timeline draws (no blocking
    or estimates, which a page of the grid adds): run_id, task, agent, status and times."""
    where, params = run_filter.where(now)
    order = ", ".join(f"{column} DESC NULLS LAST" for column in LATEST_RUN_ORDER)
    return index.query(f"SELECT r.run_id, r.task, r.agent, r.status, r.trigger_time, r.started, r.finished "
                       f"{_RUNS_FROM} {where} ORDER BY {order} LIMIT ?", params + [int(limit)])


def runs_under_way(index: Index, run_filter: RunFilter = RunFilter(), now: dt.datetime | None = None) -> pd.DataFrame:
    """The runs under way (started, not ended) that the filter admits: run_id, task, agent, started
    and status (what estimates.running_estimates takes). With a time range, only its row groups are
    read (all runs' statuses: 18 ms at 1M runs; the last 24 h's: 3 ms)."""
    wanted = tuple(status for status in UNDER_WAY if not run_filter.statuses or status in run_filter.statuses)
    where, params = replace(run_filter, statuses=wanted or UNDER_WAY).where(now)
    return index.query(f"SELECT r.run_id, r.task, r.agent, r.started, r.status {_RUNS_FROM} {where} "
                       f"AND r.started IS NOT NULL {'' if wanted else 'AND false'}", params)


def blocked_reasons(index: Index, run_ids) -> pd.Series:
    """Why each run can no longer start ("upstream Extract failed (via Load)"), or None; aligned
    with `run_ids`. See dashboard.blocking."""
    return blocked_and_blocks(index, run_ids)["blocked"]


def runs_view(index: Index, run_filter: RunFilter = RunFilter(), page: int = 1, page_size: int = 50,
              sort: str = "trigger_time", descending: bool = True, now: dt.datetime | None = None) -> RunsPage:
    """The page of runs a grid shows, with the total; a page past the end gives the last page."""
    run_filter.check()
    now = now or utcnow()
    hours = runs_per_hour(index, run_filter, now)
    counts = _hour_totals(hours) if hours is not None else _counted_by_status(index, run_filter, now)
    total = sum(counts[status] for status in (run_filter.statuses or STATUSES))
    last_page = page_count(total, page_size)
    page = min(max(1, int(page)), last_page)
    runs = runs_page(index, run_filter, page_size, (page - 1) * page_size, sort, descending, now, total, hours)
    return RunsPage(runs, total, page, page_size, counts)


def count_runs(index: Index, run_filter: RunFilter = RunFilter(), now: dt.datetime | None = None) -> int:
    """How many runs match the filter."""
    where, params = run_filter.where(now)
    return int(index.query(f"SELECT count(*) AS n {_RUNS_FROM} {where}", params)["n"].iloc[0])


def status_counts(index: Index, run_filter: RunFilter = RunFilter(), now: dt.datetime | None = None) -> dict[str, int]:
    """How many runs match the filter in each status, whatever statuses the filter picks."""
    hours = runs_per_hour(index, run_filter, now)
    return _hour_totals(hours) if hours is not None else _counted_by_status(index, run_filter, now)


def _counted_by_status(index: Index, run_filter: RunFilter, now: dt.datetime | None) -> dict[str, int]:
    where, params = replace(run_filter, statuses=()).where(now)
    frame = index.query(f"SELECT r.status, count(*) AS n {_RUNS_FROM} {where} GROUP BY r.status", params)
    counts = dict.fromkeys(STATUSES, 0)
    counts.update(zip(frame["status"], frame["n"].astype(int)))
    return counts


def _hour_totals(hours: list[tuple[int, np.ndarray]]) -> dict[str, int]:
    total = sum((counts for _, counts in hours), np.zeros(len(STATUSES), dtype=np.int64))
    return dict(zip(STATUSES, total.tolist()))


def runs_per_hour(index: Index, run_filter: RunFilter, now: dt.datetime | None = None) -> list[tuple[int, np.ndarray]] | None:
    """The runs of the filter's time range (group and task-name text) per hour and status
    (dashboard.run_hours), whatever statuses it picks; None when the filter also asks for something
    else (some runs, a window), the index keeps no counts, or a text is asked for the first time."""
    if (index.run_hours is None or run_filter.since is None
            or run_filter.run_ids is not None or run_filter.start is not None or run_filter.end is not None):
        return None
    hours = index.run_hours.matching(_TASK_TEXT, (run_filter.task_text,)) if run_filter.task_text else index.run_hours
    return None if hours is None else hours.since((now or utcnow()) - run_filter.since, run_filter.group)


#: The sizes a strip of runs over time cuts its range into (strip_bucket picks one).
STRIP_BUCKETS = tuple(dt.timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 720, 1440))
#: A strip has at most this many bars (and, from 6 hours up, at least half as many).
STRIP_MAX_BARS = 72


def strip_bucket(since: dt.timedelta) -> dt.timedelta:
    """The bucket a strip of runs over the last `since` counts by: the smallest of STRIP_BUCKETS
    giving at most STRIP_MAX_BARS bars (6h: 5 min, 12h: 10 min, 24h: 20 min, 3d: 1 h, 7d: 3 h)."""
    return next((size for size in STRIP_BUCKETS if since / size <= STRIP_MAX_BARS), STRIP_BUCKETS[-1])


def strip_counts(index: Index, run_filter: RunFilter, bucket: dt.timedelta,
                 now: dt.datetime | None = None) -> pd.DataFrame:
    """The runs the filter admits per bucket of trigger time and status, for a strip of runs over
    time: one row per bucket from the one holding `now - run_filter.since` to the one holding
    `now`, oldest first, with its `start` and `end` (naive UTC), a column of counts per status
    (STATUSES' order) and `runs`. Buckets are whole multiples of `bucket` since the Unix epoch
    (hours start on the hour); the first is cut by the range. Runs triggered after `now` are
    left out."""
    now = now or utcnow()
    if run_filter.since is None:
        raise ValueError("a strip of runs needs a time range")
    step = int(bucket / dt.timedelta(milliseconds=1))
    epoch = dt.datetime(1970, 1, 1)
    first = (now - run_filter.since - epoch) // dt.timedelta(milliseconds=1) // step
    last = (now - epoch) // dt.timedelta(milliseconds=1) // step
    where, params = run_filter.where(now)
    # A row per bucket and status, put in place here: 1M runs over 7 days on 2 loaded cores, integer
    # milliseconds 72 ms, floor(epoch() / seconds) 87 ms, a count(*) FILTER column per status 163 ms
    # (and pandas' pivot_table of the rows cost more than the query at small counts).
    frame = index.query(
        f"SELECT epoch_ms(r.trigger_time) // ? AS bucket, r.status, count(*) AS n "
        f"{_RUNS_FROM} {where} {'AND' if where else 'WHERE'} r.trigger_time <= ? GROUP BY ALL",
        [step, *params, now])
    counts = np.zeros((last - first + 1, len(STATUSES)), dtype="int64")
    column = {status: n for n, status in enumerate(STATUSES)}
    for bucket_no, status, n in zip(frame["bucket"], frame["status"], frame["n"]):
        if first <= bucket_no <= last:
            counts[int(bucket_no) - first, column[status]] += int(n)
    starts = pd.to_datetime(np.arange(first, last + 1, dtype="int64") * step, unit="ms")
    strip = pd.DataFrame(counts, columns=list(STATUSES))
    strip.insert(0, "end", starts + pd.Timedelta(milliseconds=step))
    strip.insert(0, "start", starts)
    strip["runs"] = strip[list(STATUSES)].sum(axis=1)
    return strip


def groups(index: Index) -> list[str]:
    """Every group a task is defined in or a run was reported in, in name order."""
    frame = index.query("SELECT grp FROM tasks WHERE grp IS NOT NULL UNION "
                        "SELECT DISTINCT grp FROM runs WHERE grp IS NOT NULL ORDER BY grp")
    return frame["grp"].tolist()


def run(index: Index, run_id: str) -> dict | None:
    """One run as a dict, or None if the index has no such run."""
    frame = index.query(f"{_RUN_SELECT} {_RUNS_FROM} WHERE r.run_id = ?", [run_id])
    if frame.empty:
        return None
    frame["reached"] = reached_names(pa.array(frame["reached"], pa.uint8())).to_pylist()
    return frame.iloc[0].to_dict() | blocked_and_blocks(index, frame).iloc[0].to_dict()


def last_success(index: Index, task: str, other_than: str) -> str | None:
    """The id of the task's last successful run other than `other_than`: the latest triggered no
    later than that run (else the latest after it), or None if the task never succeeded elsewhere.
    What a run is compared with first (dashboard.compare)."""
    order = ", ".join(f"{column} DESC" for column in LATEST_RUN_ORDER)
    with index.cursor() as cur:
        row = cur.execute(
            "SELECT r.run_id FROM runs r WHERE r.task = ? AND r.status = 'SUCCESS' AND r.run_id <> ? "
            "ORDER BY (r.trigger_time > (SELECT trigger_time FROM runs WHERE run_id = ?)) IS TRUE, "
            f"{order} LIMIT 1", [task, other_than, other_than]).fetchone()
    return row[0] if row else None


def transitions(index: Index, run_id: str) -> pd.DataFrame:
    """A run's status changes in time order."""
    return index.query("SELECT status, ts, agent, exit_code, message FROM transitions "
                       f"WHERE run_id = ? ORDER BY ts, {LIFECYCLE_STEP_SQL}", [run_id])


def log_line_counts(index: Index, run_id: str) -> dict[str, int]:
    """How many lines each stream of a run holds."""
    with index.cursor() as cur:
        rows = cur.execute("SELECT stream, lines FROM log_streams WHERE run_id = ?", [run_id]).fetchall()
    return {"stdout": 0, "stderr": 0} | dict(rows)


LOG_PAGE_LINES = 500


def log_page(index: Index, run_id: str, stream: str, first_line: int, count: int = LOG_PAGE_LINES,
             emphasis: tuple[str, str | None] | None = None, head: int | None = None) -> pd.DataFrame:
    """Lines first_line .. first_line+count-1 (1-based) of a run's stream. Given (error, warning)
    regular expressions: whether each line's visible text matches them (`error`, `warn`). Given
    `head`: only a line's first `head` characters, and its visible length (`shown_length`)."""
    columns, params = ["line_no", "text"], []
    if head is not None:
        columns = ["line_no", "left(text, ?) AS text", "length(shown) AS shown_length"]
        params.append(int(head))
    flagged, flagged_params = "NULL", []
    if emphasis is not None:
        # Each line's text is scanned once, for either pattern; only the few lines it flags are
        # scanned again to tell an error from a warning. A pattern that starts with \b gets no
        # literal prefix to skip ahead by, so RE2 reads every byte: a page of 60,000-character
        # lines took 85 ms a pattern.
        error, warning = emphasis
        flagged, flagged_params = "regexp_matches(shown, ?)", [f"(?:{error})|(?:{warning})" if warning else error]
        columns.append("CASE WHEN flagged THEN regexp_matches(shown, ?) ELSE false END AS error")
        columns.append("CASE WHEN flagged THEN regexp_matches(shown, ?) ELSE false END AS warn" if warning
                       else "false AS warn")
        params += [error, warning] if warning else [error]
    with index.cursor() as cur:
        table, log_id = index.log_source(cur, run_id, stream)
        return cur.execute(f"SELECT {', '.join(columns)} FROM (SELECT line_no, text, coalesce(visible, text) AS shown, "
                           f"{flagged} AS flagged FROM {table} WHERE log_id = ? AND line_no >= ? AND line_no < ?) "
                           "ORDER BY line_no",
                           [*params, *flagged_params, log_id, int(first_line), int(first_line) + int(count)]).df()


def text_match(text: str, regex: bool = False) -> tuple[str, list]:
    """The SQL condition (and its parameter) that a log line's visible text (see dashboard.terminal)
    contains `text`, literal and in any case, or matches it as a regular expression (RE2)."""
    if regex:
        return "regexp_matches(coalesce(visible, text), ?)", [text]
    # contains(lower(...)): with DuckDB 1.5.5 ILIKE became the slow one (2M realistic lines of the
    # fleet benchmark, 2 cores under load: ILIKE 1.3-2.9 s, lower() + contains 0.55-0.74 s,
    # RE2 (?i) 0.6-0.7 s). No pattern: the text's % and _ are literal as they are.
    if text.isascii() and not any(char.isalpha() for char in text):
        # Nothing to fold (an id, a number, a path's punctuation), and no character folds into ASCII
        # other than a letter: the lines are not lowered (one 2M-line stream: 45 ms against 160).
        return _contains("coalesce(visible, text)", text)
    return folded_match("lower(coalesce(visible, text))", text)


def folded_match(folded: str, text: str) -> tuple[str, list]:
    """The SQL condition (and its parameters) that `folded`, an SQL text already lowered, contains
    `text` in any case."""
    if text.isascii():  # (Python lowers ASCII as DuckDB does)
        return _contains(folded, text.lower())
    return f"contains({folded}, lower(?))", [text]


#: Characters from the most common in log text to the least: a space, digits, English letters by
#: their frequency. Any other character is rarer than all of them.
_COMMON_FIRST = " 0123456789etaoinshrdlcumwfgypbvkjxqz"


def _rarity(char: str) -> int:
    at = _COMMON_FIRST.find(char)
    return len(_COMMON_FIRST) if at < 0 else at


def _contains(shown: str, text: str) -> tuple[str, list]:
    """`contains(shown, text)`, first asked of the end of `text` from its least common character.
    DuckDB's contains jumps to a part's first character and compares from there: a line is passed
    over fastest for a rare one, and only the few lines holding that part are searched for the whole
    (2M lines lowered: "deadlock detected" 48 -> 28 ms, "connection reset by peer" 42 -> 28)."""
    start = min(range(len(text)), key=lambda n: (-_rarity(text[n]), n), default=0)
    if start == 0:
        return f"contains({shown}, ?)", [text]
    return f"contains({shown}, ?) AND contains({shown}, ?)", [text[start:], text]


def search_matches(index: Index, run_id: str, stream: str, text: str, from_line: int = 1) -> np.ndarray:
    """Every line number of a run's stream, from `from_line` on, whose visible text (see
    dashboard.terminal) contains `text` (literal, any case), in order."""
    with index.cursor() as cur:
        table, log_id = index.log_source(cur, run_id, stream, search=True)
        # A copy of a finished log holds its lines' visible text lowered (see log_copies).
        match, params = folded_match("folded", text) if table != "log_text" else text_match(text)
        result = cur.execute(f"SELECT line_no FROM {table} WHERE log_id = ? AND line_no >= ? AND {match} "
                             "ORDER BY line_no", [log_id, from_line, *params]).fetchnumpy()
    return np.asarray(result["line_no"], dtype=np.int64)


#: A fleet search lists the matching runs a page at a time.
SEARCH_PAGE_RUNS = 50
#: A fleet search reads the newest runs' logs first, a chunk at a time, and hands on what each
#: chunk found: the first chunk holds about this many lines (its answer comes soon), each next
#: one twice the one before, up to SEARCH_CHUNK_MAX_LINES (a query costs ~10 ms of its own:
#: fewer, larger chunks once the page has something to show).
SEARCH_FIRST_CHUNK_LINES = 250_000
SEARCH_CHUNK_MAX_LINES = 4_000_000
#: ... and at most this many runs: a chunk's streams are a list of parameters, and a list of 125,000
#: (runs of two lines each) took 1.1 s where 10,000 took 65 ms.
SEARCH_CHUNK_MAX_RUNS = 5_000
FLEET_SEARCH_COLUMNS = ["run_id", "task", "grp", "status", "trigger_time", "stdout_matches", "stderr_matches",
                        "first_stream", "first_line", "first_text"]


@dataclass(frozen=True)
class SearchProgress:
    """How far a fleet search has got: the rows of the asked page found so far (fleet_search's
    columns, in its order) and how much of the filter's runs' logs it has read."""

    found: pd.DataFrame
    #: runs found so far with matching lines (from the newest), the page's and those before it
    matched: int
    runs_searched: int
    #: the runs the filter admits that have log lines (the others cannot match)
    runs_total: int
    lines_searched: int
    lines_total: int
    #: the page is final: every run was read, or the page and one run after it were found
    done: bool


def fleet_search_progress(index: Index, text: str, run_filter: RunFilter = RunFilter(), regex: bool = False,
                          limit: int = SEARCH_PAGE_RUNS, offset: int = 0,
                          now: dt.datetime | None = None) -> Iterator[SearchProgress]:
    """fleet_search's page, as it is found: the runs the filter admits are read newest first, in
    chunks of whole runs (SEARCH_FIRST_CHUNK_LINES, growing), and a SearchProgress is yielded before
    the first chunk and after each. Chunks follow the page's order, so rows found stay where they
    are and the search stops once it has the page: a text many runs print costs one small chunk.
    Once the runs left fill most of the stretch of the index their logs lie in, that stretch is
    swept instead (see _sweep). ValueError (at the first chunk) if `regex` and `text` is not a
    regular expression."""
    match = SearchMatch(*text_match(text, regex), text, regex)
    candidates = _Candidates.read(index, run_filter, now)
    wanted, hits = int(offset) + int(limit), []
    searched = chunks = 0
    chunk_lines = SEARCH_FIRST_CHUNK_LINES

    def progress(done: bool, runs_searched: int | None = None, lines: int | None = None) -> SearchProgress:
        page = pd.DataFrame(hits[int(offset):wanted], columns=FLEET_SEARCH_COLUMNS)
        runs_searched = searched if runs_searched is None else runs_searched
        return SearchProgress(page, len(hits), runs_searched, len(candidates),
                              candidates.lines_before(searched) if lines is None else lines,
                              candidates.lines_before(len(candidates)), done)

    yield progress(not len(candidates) or wanted <= 0)
    while searched < len(candidates) and len(hits) < wanted:
        # Once, after the first chunk (which answers soon, whatever the rest holds): sweep the rest?
        sweep = _sweep(index, candidates, searched, match, chunk_lines) if chunks == 1 else None
        if sweep is not None:
            runs_before, lines_before, reported = searched, candidates.lines_before(searched), 0
            for settled, runs_read, lines_read in sweep:
                hits += candidates.hits(searched, settled, sweep.found, wanted - len(hits))
                searched = settled
                done = searched >= len(candidates) or len(hits) >= wanted
                if done or runs_read > reported:
                    reported = runs_read
                    yield progress(done, runs_before + runs_read, lines_before + lines_read)
                if done:
                    return
        end = candidates.chunk_end(searched, chunk_lines)
        found = _matches(index, match, candidates.log_ids_of(searched, end).tolist())
        hits += candidates.hits(searched, end, found, wanted - len(hits))
        searched, chunks = end, chunks + 1
        chunk_lines = min(2 * chunk_lines, SEARCH_CHUNK_MAX_LINES)
        yield progress(searched >= len(candidates) or len(hits) >= wanted)


@dataclass(frozen=True)
class SearchMatch:
    """A fleet search's condition on a line (text_match's SQL and parameters) and what was asked."""

    sql: str
    params: list
    text: str
    regex: bool


@dataclass(frozen=True)
class _Candidates:
    """The runs a fleet search reads (those the filter admits with log lines), in the page's order,
    newest first, as columns: Python objects are made only for the runs found (20,000 runs made
    into tuples took 75 of the 80 ms before the search's first state)."""

    runs: pa.Table  # run_id, task, grp, status, trigger_time
    first_log: np.ndarray  # where each run's streams start in the columns below, and where the last ends
    log_ids: np.ndarray
    stdout: np.ndarray  # whether each stream is stdout (else stderr)
    cumulative_lines: np.ndarray  # the log lines of the runs before each run, and of all

    @classmethod
    def read(cls, index: Index, run_filter: RunFilter, now: dt.datetime | None) -> _Candidates:
        where, params = run_filter.where(now)
        with index.cursor() as cur:
            table = cur.execute(f"""
                SELECT r.run_id, r.task, r.grp, r.status, r.trigger_time, s.log_id, s.stream, s.lines
                FROM runs r JOIN log_streams s ON s.run_id = r.run_id {where} {"AND" if where else "WHERE"} s.lines > 0
                ORDER BY r.trigger_time DESC, r.run_id, s.log_id""", params).to_arrow_table()
        run_ids = table["run_id"]
        new_run = np.ones(table.num_rows, dtype=bool)  # (a run's streams are next to each other)
        new_run[1:] = pc.not_equal(run_ids[1:], run_ids[:-1]).to_numpy(zero_copy_only=False)
        first_log = np.append(np.flatnonzero(new_run), table.num_rows)
        lines = table["lines"].to_numpy()
        lines_by_run = np.add.reduceat(lines, first_log[:-1]) if table.num_rows else lines
        return cls(table.select(["run_id", "task", "grp", "status", "trigger_time"]).take(first_log[:-1]), first_log,
                   table["log_id"].to_numpy().astype(np.int64),
                   pc.equal(table["stream"], "stdout").to_numpy(zero_copy_only=False),
                   np.concatenate([[0], np.cumsum(lines_by_run)]))

    def __len__(self) -> int:
        return len(self.first_log) - 1

    def lines_before(self, run: int) -> int:
        return int(self.cumulative_lines[run])

    def chunk_end(self, first: int, lines: int) -> int:
        """Where a chunk of whole runs from `first` ends: one run at least, `lines` lines or more
        unless the runs end first, SEARCH_CHUNK_MAX_RUNS runs at most."""
        end = int(np.searchsorted(self.cumulative_lines, self.cumulative_lines[first] + lines, side="left"))
        return min(max(end, first + 1), first + SEARCH_CHUNK_MAX_RUNS, len(self))

    def log_ids_of(self, first: int, end: int) -> np.ndarray:
        return self.log_ids[self.first_log[first]:self.first_log[end]]

    def hits(self, first: int, end: int, found: dict[int, tuple[int, int, str]], limit: int) -> list[tuple]:
        """The page's rows of the runs `first` .. `end` - 1 whose streams have matches in `found`,
        the first `limit` of them."""
        if not found or limit <= 0:
            return []
        logs = np.arange(self.first_log[first], self.first_log[end])
        logs = logs[np.isin(self.log_ids[logs], np.fromiter(found, np.int64, len(found)))]
        runs = np.unique(np.searchsorted(self.first_log, logs, side="right") - 1)[:limit]
        rows = []
        columns = self.runs.take(runs).to_pydict().values()
        for run, (run_id, task, grp, status, trigger_time) in zip(runs, zip(*columns)):
            streams = {"stdout" if self.stdout[log] else "stderr": found[int(self.log_ids[log])]
                       for log in range(self.first_log[run], self.first_log[run + 1]) if self.log_ids[log] in found}
            first_stream = "stdout" if "stdout" in streams else "stderr"
            _count, first_line, first_text = streams[first_stream]
            rows.append((run_id, task, grp, status, trigger_time, streams.get("stdout", (0,))[0],
                         streams.get("stderr", (0,))[0], first_stream, first_line, first_text))
        return rows


class _Sweep:
    """The fleet search's runs left (`first` on, in the page's order), read by sweeping the stretch
    of log_text their logs lie in, a range of log ids at a time (see _sweep): upward, or downward
    where the page's first runs hold the higher ids (logs ingested as their runs ran, the oldest
    first).

    Iterating yields, after each range: where the runs end whose newer runs are all read too (so
    rows found still stay where they are), and how many runs and lines are read in all (some not
    yet in page order). `found` holds the matches of every stream read so far."""

    def __init__(self, index: Index, candidates: _Candidates, first: int, match: SearchMatch, stretch: dict,
                 piece_lines: int):
        self.index, self.candidates, self.first, self.match = index, candidates, first, match
        self.piece_lines = piece_lines
        log_ids = np.asarray(stretch["log_id"], dtype=np.int64)
        lines = np.asarray(stretch["lines"], dtype=np.int64)
        # Where each run is done: its last log going up, its first going down. A run's `reach` is that
        # log id, negated going down, so that the sweep's progress is an ascending number either way.
        theirs = candidates.log_ids_of(first, len(candidates))
        starts = candidates.first_log[first:-1] - candidates.first_log[first]
        highest, lowest = np.maximum.reduceat(theirs, starts), np.minimum.reduceat(theirs, starts)
        half = len(starts) // 2
        self.downward = half > 0 and highest[:half].mean() > highest[half:].mean()
        self.reach = -lowest if self.downward else highest
        self.log_ids = log_ids[::-1] if self.downward else log_ids  # in the order swept
        self.rows = np.cumsum(lines[::-1] if self.downward else lines)  # rows up to each stream's end
        self.found: dict[int, tuple[int, int, str]] = {}
        self._theirs = np.sort(theirs)  # (the stretch holds others' logs too)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        by_reach = np.argsort(self.reach, kind="stable")  # runs in the order the sweep finishes them
        reach_sorted = self.reach[by_reach]
        runs_lines = np.diff(self.candidates.cumulative_lines[self.first:])
        lines_sorted = np.cumsum(runs_lines[by_reach])
        first, settled, size = 0, 0, self.piece_lines
        while first < len(self.log_ids):
            rows_before = int(self.rows[first - 1]) if first else 0
            last = max(first, int(np.searchsorted(self.rows, rows_before + size, side="right")) - 1)
            low, high = sorted((int(self.log_ids[first]), int(self.log_ids[last])))
            found = _matches(self.index, self.match, None, low, high)
            ids = np.fromiter(found, np.int64, len(found))
            self.found.update((int(log_id), found[log_id]) for log_id in ids[np.isin(ids, self._theirs)])
            reached = -low if self.downward else high
            read = int(np.searchsorted(reach_sorted, reached, side="right"))
            beyond = np.flatnonzero(self.reach[settled:] > reached)
            settled = settled + int(beyond[0]) if len(beyond) else len(self.reach)
            yield self.first + settled, read, int(lines_sorted[read - 1]) if read else 0
            first, size = last + 1, min(2 * size, SEARCH_CHUNK_MAX_LINES)


def _sweep(index: Index, candidates: _Candidates, first: int, match: SearchMatch, piece_lines: int) -> _Sweep | None:
    """A sweep of the runs left (`first` on), or None when they fill less than half of the stretch of
    log_text their logs lie in (reading chunks of them then costs less).

    A chunk reads only its runs' lines, but it finds them by scanning the log id of every row in its
    range: where logs were ingested in another order than their runs were triggered, the range is
    about the whole table, each time (1M runs, 20M lines: about 180 ms a chunk, whatever its size;
    a rare text's search took 2.5 s, where one read of every line takes 1.0). A sweep reads each
    row of the stretch once, a range of log ids at a time (rows are stored in ingest order: each
    range is a stretch of the table, and DuckDB skips the rest)."""
    theirs = candidates.log_ids_of(first, len(candidates))
    with index.cursor() as cur:
        stretch = cur.execute("SELECT log_id, lines FROM log_streams WHERE log_id BETWEEN ? AND ? AND lines > 0 "
                              "ORDER BY log_id", [int(theirs.min()), int(theirs.max())]).fetchnumpy()
    left = candidates.lines_before(len(candidates)) - candidates.lines_before(first)
    if 2 * left < int(np.sum(stretch["lines"])):
        return None
    return _Sweep(index, candidates, first, match, stretch, piece_lines)


def _matches(index: Index, match: SearchMatch, log_ids: list[int] | None, low: int | None = None,
             high: int | None = None) -> dict[int, tuple[int, int, str]]:
    """log id -> (matching lines, the first one's number, its visible text) over those streams, or
    over every stream of the log id range `low` .. `high`."""
    if log_ids is not None:
        low, high = min(log_ids), max(log_ids)
        if high - low + 1 == len(log_ids):  # the range holds these streams alone: no list to check
            log_ids = None
    # The range lets DuckDB skip row groups outside it (a stream's lines are stored together, in the
    # order they were ingested); the list keeps only these streams, checked on the log_id column
    # before any text is read. As a list of parameters, not a join (IN (SELECT unnest(?))): a
    # join filters after the text match, so every chunk cost a whole scan where ingest order is
    # not trigger order (20M lines under load: 250 runs 0.87 against 4.6-6.3 s).
    listed = f'AND t.log_id IN ({", ".join("?" * len(log_ids))})' if log_ids is not None else ""
    sql = f"""
        SELECT t.log_id, count(*), min(t.line_no), left(arg_min(coalesce(t.visible, t.text), t.line_no), 2000)
        FROM log_text t
        WHERE t.log_id BETWEEN ? AND ? {listed} AND {match.sql}
        GROUP BY t.log_id"""
    try:
        with index.cursor() as cur:
            rows = cur.execute(sql, [low, high, *(log_ids or []), *match.params]).fetchall()
    except duckdb.InvalidInputException as exc:
        if match.regex:
            raise ValueError(f"not a regular expression: {match.text!r} ({pattern_problem(exc)})") from None
        raise
    return {log_id: (int(count), int(first), first_text) for log_id, count, first, first_text in rows}


def fleet_search(index: Index, text: str, run_filter: RunFilter = RunFilter(), regex: bool = False,
                 limit: int = SEARCH_PAGE_RUNS, offset: int = 0, now: dt.datetime | None = None) -> pd.DataFrame:
    """The runs the filter admits whose logs have lines matching `text` (see text_match), newest
    first: each with its task, status and trigger time, its matching lines per stream and the
    first of them (stdout's before stderr's) with its stream, number and visible text.
    ValueError if `regex` and `text` is not a regular expression. (fleet_search_progress gives
    the same page as it is found.)"""
    for progress in fleet_search_progress(index, text, run_filter, regex, limit, offset, now):
        if progress.done:
            return progress.found
    raise AssertionError("a fleet search ends done")  # pragma: no cover


def next_line_matching(index: Index, run_id: str, stream: str, pattern: str, after: int,
                       direction: int = 1) -> int | None:
    """The first line after (or, direction -1, before) line `after` whose visible text matches the
    regular expression `pattern`, wrapping around the stream; None if no line does."""
    forward = direction >= 0
    where, order = (">", "ASC") if forward else ("<", "DESC")
    with index.cursor() as cur:
        table, log_id = index.log_source(cur, run_id, stream)
        for start in (int(after), 0 if forward else 2**62):  # then wrap around
            row = cur.execute(
                f"SELECT line_no FROM {table} WHERE log_id = ? AND line_no {where} ? "
                f"AND regexp_matches(coalesce(visible, text), ?) ORDER BY line_no {order} LIMIT 1",
                [log_id, start, pattern]).fetchone()
            if row is not None:
                return int(row[0])
    return None


def ingest_errors(index: Index, limit: int = 1000) -> pd.DataFrame:
    """The newest ingest errors: file, byte offset, reason and an excerpt of the bad line."""
    return index.query('SELECT recorded, file, "offset", reason, excerpt FROM ingest_errors '
                       'ORDER BY recorded DESC, file, "offset" DESC LIMIT ?', [limit])


def task_stats(index: Index, since: dt.timedelta | None = None, now: dt.datetime | None = None) -> pd.DataFrame:
    """Per task with runs triggered in the range: its latest run (id, status, message, times,
    why it is blocked if it is), how many runs, the share of finished runs that succeeded and the median duration."""
    where, params = RunFilter(since=since).where(now)
    # The latest run as one struct (arg_max would skip a NULL `started` and take an older run's),
    # by LATEST_RUN_ORDER.
    stats = index.query(f"""
        SELECT task, latest.run_id AS last_run_id, latest.status AS last_status, latest.message AS last_message,
               latest.trigger_time AS last_trigger, latest.started AS last_started,
               latest.finished AS last_finished, runs, success_rate, median_seconds
        FROM (SELECT r.task,
                     arg_max({{'run_id': r.run_id, 'status': r.status, 'message': r.message,
                               'trigger_time': r.trigger_time, 'started': r.started, 'finished': r.finished}},
                             {_LATEST_RUN_KEY}) AS latest,
                     count(*) AS runs,
                     count(*) FILTER (WHERE r.status = 'SUCCESS')
                         / nullif(count(*) FILTER (WHERE r.finished IS NOT NULL), 0) AS success_rate,
                     median(epoch(r.finished - r.started)) FILTER (WHERE r.finished IS NOT NULL) AS median_seconds
              {_RUNS_FROM} {where} GROUP BY r.task)""", params)
    stats["last_blocked"] = blocked_reasons(index, stats["last_run_id"])
    return stats


def task_count(index: Index) -> int:
    """How many tasks are defined (what a page about to lay them out can say)."""
    with index.cursor() as cur:
        return cur.execute("SELECT count(*) FROM tasks").fetchone()[0]


def tasks(index: Index) -> pd.DataFrame:
    """Every defined task with its group, dependencies and description."""
    return index.query("SELECT task, grp, depends_on, description FROM tasks ORDER BY grp, task")


#: The most tasks seen only in runs that a graph draws (the most recently triggered first).
SEEN_TASKS_DRAWN = 2_000


def tasks_seen_in_runs(index: Index, limit: int = SEEN_TASKS_DRAWN) -> tuple[list[tuple[str, str | None]], int]:
    """The tasks with scheduled (not ad hoc) runs but no definition, the most recently triggered
    first, with the group of their latest run: at most `limit` (task, group) pairs, and how many
    there are. A spool written by another tool may hold runs and no definitions at all."""
    with index.cursor() as cur:
        rows = cur.execute("""
            SELECT task, grp, count(*) OVER () AS seen FROM (
                SELECT r.task, arg_max(r.grp, r.trigger_time) AS grp, max(r.trigger_time) AS last_trigger
                FROM runs r WHERE NOT coalesce(r.adhoc, false)
                  AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.task = r.task)
                GROUP BY r.task)
            ORDER BY last_trigger DESC NULLS LAST, task LIMIT ?""", [limit]).fetchall()
    return [(task, group) for task, group, _ in rows], rows[0][2] if rows else 0
