"""Test data builders: synthetic spools in the real layout, for the tests and the benchmarks alike.

Large spools of logs and events (benchmarks, kill tests), a dbt-shaped project (graph tests and
benchmarks), and the planned runs the query tests check every answer against.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from dashboard import queries
from dashboard.formatting import utcnow
from dashboard.index import Index
from dashboard.index_schema import RunSummary
from dashboard.ingest import Ingestor
from dashboard.queries import RunFilter
from dashboard.spool import SpoolWriter, events_dir, format_timestamp, log_path
from dashboard.statuses import TERMINAL

STATUS_PATH = ("IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING")
LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")


def ingest(folder: Path, name: str = "index.duckdb") -> Index:
    """The spool at folder/spool ingested into a new index file in `folder`; the caller closes it."""
    index = Index(folder / name)
    Ingestor(index, folder / "spool").catch_up()
    return index


def write_log_spool(spool: Path, runs: int, lines_per_run: int, seed: int = 1) -> int:
    """Write `runs` stdout logs of `lines_per_run` realistic lines each; return the line count."""
    rng = random.Random(seed)
    words = ["order", "invoice", "batch", "rows", "loaded", "retry", "customer", "warehouse", "ok"]
    for run in range(runs):
        path = log_path(spool, f"bench-{run:06d}", "stdout")
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = (f"2026-11-28T12:{n // 6000 % 60:02d}:{n // 100 % 60:02d}.{n % 1000:03d}Z "
                 f"{LEVELS[n % 6]} step {n}: {' '.join(rng.choices(words, k=6))}\n" for n in range(lines_per_run))
        path.write_text("".join(lines), encoding="utf-8")
    return runs * lines_per_run


def write_event_spool(spool: Path, runs: int, files: int = 4, seed: int = 1) -> int:
    """Write the full lifecycle of `runs` runs as status events over several files; return the count."""
    rng = random.Random(seed)
    folder = events_dir(spool)
    folder.mkdir(parents=True, exist_ok=True)
    # Two days back from today's midnight: inside a page's widest range (7d) whatever the date.
    start = utcnow().replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=2)
    handles = [open(folder / f"bench-{i}.jsonl", "w", encoding="utf-8") for i in range(files)]
    count = 0
    try:
        for run in range(runs):
            trigger = start + dt.timedelta(seconds=run)
            terminal = rng.choice(("SUCCESS", "SUCCESS", "SUCCESS", "FAILED", "TERMINATED"))
            handle = handles[run % files]
            for step, status in enumerate((*STATUS_PATH, terminal)):
                event = {"kind": "status", "run_id": f"ev-{run:07d}", "task": f"Task_{run % 500:03d}",
                         "status": status, "ts": format_timestamp(trigger + dt.timedelta(seconds=step)),
                         "agent": f"agent-{run % 3 + 1}", "adhoc": run % 50 == 0}
                if status in ("SUCCESS", "FAILED"):
                    event["exit_code"] = 0 if status == "SUCCESS" else 1
                handle.write(json.dumps(event, separators=(",", ":")) + "\n")
                count += 1
    finally:
        for handle in handles:
            handle.close()
    return count


# ---- a dbt-shaped DAG ------------------------------------------------------------------

DBT_TOPS = ("staging", "intermediate", "marts", "reporting", "utils")
DBT_DOMAINS = ("stripe", "salesforce", "hubspot", "zendesk", "github", "jira", "segment", "netsuite", "copilot",
               "mattermost", "blapi", "cws", "finance", "product", "growth", "support", "sales", "billing",
               "events", "telemetry", "licenses", "customers", "web", "marketing", "people", "security",
               "orgs", "releases", "plugins", "calls", "playbooks", "boards")
DBT_WORDS = ("aggregated", "to_date", "daily", "monthly", "active_users", "server", "installs", "activity",
             "snapshots", "history", "latest", "deduplicated", "enriched", "by_account", "sessions", "events",
             "facts", "dimension", "seats", "trials", "renewals", "invoices", "tickets", "opportunities")


@dataclass(frozen=True)
class DbtRun:
    run_id: str
    task: str
    trigger: dt.datetime
    started: dt.datetime | None
    updated: dt.datetime  # its last event
    status: str


@dataclass(frozen=True)
class DbtProject:
    """What `write_dbt_spool` wrote: the definitions (task, group, upstreams) and every run."""

    definitions: list[tuple[str, str, list[str]]]
    runs: list[DbtRun]

    def latest_status(self) -> dict[str, str]:
        """Each task's latest run's status, by trigger time, then start (none: latest), then last event."""
        latest = {}
        for run in self.runs:
            key = (run.trigger, run.started or dt.datetime.max, run.updated, run.run_id)
            if run.task not in latest or key > latest[run.task][0]:
                latest[run.task] = (key, run.status)
        return {task: status for task, (_, status) in latest.items()}


def dbt_project(tasks: int = 1000, seed: int = 15) -> list[tuple[str, str, list[str]]]:
    """A dbt-like model graph: folder groups (`marts/finance/...`), long dotted names, about
    a quarter of the tasks sources with no upstream, the rest depending on one to three
    tasks of the layers before them."""
    rng = random.Random(seed)
    folders = {top: [f"{top}/{d}" for d in rng.sample(DBT_DOMAINS, 24 if top != "utils" else 6)]
               for top in DBT_TOPS}
    folders["marts"] += [f"{f}/{rng.choice(('core', 'derived', 'exports'))}" for f in folders["marts"][:10]]
    share = {"staging": 0.3, "intermediate": 0.3, "marts": 0.25, "reporting": 0.12, "utils": 0.03}
    prefix = {"staging": "stg", "intermediate": "int", "marts": "fct", "reporting": "rpt", "utils": "util"}
    definitions, by_top, used = [], {top: [] for top in DBT_TOPS}, set()
    for top in DBT_TOPS:
        for _ in range(max(1, round(tasks * share[top]))):
            if len(definitions) >= tasks:
                break
            folder = rng.choice(folders[top])
            domain = folder.split("/")[1]
            while True:
                words = "_".join(rng.sample(DBT_WORDS, rng.choice((1, 2, 3))))
                name = f"model.mattermost_analytics.{prefix[top]}_{domain}_{words}"
                if name not in used:
                    break
            used.add(name)
            before = [t for earlier in DBT_TOPS[:DBT_TOPS.index(top)] for t in by_top[earlier]]
            if top == "staging" and rng.random() < 0.9 or not before:
                upstream = []
            else:
                upstream = sorted(set(rng.sample(before[-300:], min(len(before), rng.choice((1, 1, 2, 3))))))
            definitions.append((name, folder, upstream))
            by_top[top].append(name)
    return definitions


def write_dbt_spool(spool: Path, tasks: int = 1000, seed: int = 15, now: dt.datetime | None = None,
                    cycles: int = 4) -> DbtProject:
    """Write a dbt-shaped project and `cycles` hourly cycles of runs through the real writer.

    Each cycle triggers every task at one time (a logical date). Failures cascade: a task
    whose upstream failed or still runs stays ACTIVE. In earlier cycles some failed tasks are
    retried with the same trigger time and succeed; the last cycle is in progress.
    """
    rng = random.Random(seed)
    definitions = dbt_project(tasks, seed)
    now = now or utcnow().replace(microsecond=0)
    runs, ids = [], iter(rng.sample(range(10 ** 6), tasks * cycles * 2))
    with SpoolWriter(spool, "dbt") as writer:
        for task, group, upstream in definitions:
            writer.define_task(task, group, upstream)
        for cycle in range(cycles):
            trigger = now - dt.timedelta(hours=cycles - cycle - 1, minutes=30)
            last = cycle == cycles - 1
            state: dict[str, str] = {}
            for n, (task, _group, upstream) in enumerate(definitions):
                ups = [state[u] for u in upstream]
                if any(s != "SUCCESS" for s in ups):
                    status = "ACTIVE"
                else:
                    roll = rng.random()
                    status = ("FAILED" if roll < 0.02 else "RUNNING" if last and roll < 0.12 else "SUCCESS")
                tries = [status]
                if status == "FAILED" and not last and rng.random() < 0.7:
                    tries = ["FAILED", "SUCCESS"]  # a retry with the same trigger time
                for attempt, outcome in enumerate(tries):
                    run_id = f"dbt-{next(ids):06d}"
                    started = None if outcome == "ACTIVE" else trigger + dt.timedelta(seconds=5 + 300 * attempt
                                                                                      + n % 60)
                    events = [("TRIGGER", trigger)] if outcome != "ACTIVE" else [("ACTIVE", trigger)]
                    if started:
                        events.append(("RUNNING", started))
                    if outcome in ("SUCCESS", "FAILED"):
                        events.append((outcome, started + dt.timedelta(seconds=20 + rng.randrange(200))))
                    for status_, ts in events:
                        writer.status(run_id, task, status_, ts=ts, trigger_time=trigger, agent="agent-1",
                                      exit_code=None if status_ not in ("SUCCESS", "FAILED") else
                                      int(status_ == "FAILED"))
                    runs.append(DbtRun(run_id, task, trigger, started, events[-1][1], outcome))
                state[task] = tries[-1]
    return DbtProject(definitions, runs)


# ---- planned runs: a small world whose every query answer is worked out independently ----
#
# RUN_COUNT runs written through SpoolWriter (tasks with awkward names, groups from task
# definitions and from the runs themselves, every lifecycle shape, trigger times from one hour
# to ten days before "now"), and beside them a plain-Python plan of every run (its final
# status, group, trigger time, start, finish and the statuses it went through), worked out
# from what was written and not from the code under test. The query tests compare with it.

#: Every task definition written: name -> group (None: defined without a group).
DEFINED_TASKS = {
    "Fetch_Orders": "ingest",
    "fetch_orders_backfill": "ingest",
    "Generate_Invoice": "billing",
    "Send_Email_Invoice": "billing",
    "growth_100%": "reports",   # '%' literal vs. 'growth_1000'
    "growth_1000": "reports",
    "load_a_b": "warehouse",    # '_' literal vs. 'load_axb'
    "load_axb": "warehouse",
    "o'brien_sync": None,       # its runs report the group 'crm'
    "Old_Export": "archive",    # defined, never run
}
#: The tasks runs are written for; 'adhoc_cleanup' is never defined.
RUN_TASKS = [task for task in DEFINED_TASKS if task != "Old_Export"] + ["adhoc_cleanup"]

#: How long before "now" a run was triggered: 1h .. 10d, plus 0-45 minutes of jitter each.
AGES = {"1h": dt.timedelta(hours=1), "5h": dt.timedelta(hours=5), "10h": dt.timedelta(hours=10),
        "20h": dt.timedelta(hours=20), "2d": dt.timedelta(days=2), "5d": dt.timedelta(days=5),
        "10d": dt.timedelta(days=10)}
JITTER_MINUTES = (0, 15, 30, 45)  # few values, so trigger times (and starts, finishes) tie

#: The statuses each kind of run goes through, in order.
SHAPES = {
    "idle": ["IDLE"],
    "active": ["IDLE", "ACTIVE"],
    "triggered": ["IDLE", "ACTIVE", "TRIGGER"],
    "started": ["TRIGGER", "STARTED"],
    "running": ["TRIGGER", "STARTED", "RUNNING"],
    "success": ["IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING", "SUCCESS"],
    "failed": ["TRIGGER", "STARTED", "RUNNING", "FAILED"],
    "killed": ["TRIGGER", "STARTED", "RUNNING", "TERMINATED"],
    "cancelled": ["TRIGGER", "TERMINATED"],  # ended before it started: no duration
}
#: Seconds from a run's trigger to each status (the terminal one is added to the run time).
OFFSETS = {"IDLE": -120, "ACTIVE": -60, "TRIGGER": 0, "STARTED": 5, "RUNNING": 6}
RUN_TIMES = (dt.timedelta(seconds=60), dt.timedelta(seconds=60), dt.timedelta(seconds=300),
             dt.timedelta(seconds=1234, milliseconds=567), dt.timedelta(minutes=30))
EXIT_CODES = {"SUCCESS": 0, "FAILED": 2, "TERMINATED": -15}
RUN_COUNT = 130


@dataclass(frozen=True)
class PlannedRun:
    """What a run should look like in the index, worked out from the events written."""

    run_id: str
    task: str
    grp: str | None  # the group the run reported, else its task's defined group
    reported_grp: str | None
    status: str
    agent: str | None
    adhoc: bool
    age: str  # a key of AGES
    trigger_time: dt.datetime
    started: dt.datetime | None
    finished: dt.datetime | None
    reached: frozenset[str]
    updated: dt.datetime | None = None  # its last event

    def duration(self, now: dt.datetime) -> dt.timedelta | None:
        return None if self.started is None else (self.finished or now) - self.started


def reported_group(task: str, i: int, adhoc: bool) -> str | None:
    """The group a run's events carry (most carry none and take their task's group)."""
    if task == "o'brien_sync":
        return "crm"
    if task == "Fetch_Orders" and adhoc:
        return "ingest-adhoc"  # overrides the defined group 'ingest'
    if task == "Generate_Invoice" and i % 2:
        return "billing"  # the same as the defined group, reported explicitly
    if task == "adhoc_cleanup" and i % 3:
        return "ops"
    return None


def write_planned_spool(spool, now: dt.datetime) -> list[PlannedRun]:
    """Write the task definitions and RUN_COUNT runs; return the plan of every run."""
    rng = random.Random(20261128)
    writer = SpoolWriter(spool, "test")
    for task, group in DEFINED_TASKS.items():
        writer.define_task(task, group, depends_on=["Fetch_Orders"] if task != "Fetch_Orders" else [])
    run_ids = [f"run-{n:04x}" for n in rng.sample(range(16 ** 4), RUN_COUNT)]  # not in write order
    shape_names = list(SHAPES)
    plan = []
    for i, run_id in enumerate(run_ids):
        # Co-prime cycles (10 tasks, 9 shapes, 7 ages) spread every combination around.
        task, shape, age = RUN_TASKS[i % 10], shape_names[i % 9], list(AGES)[i % 7]
        statuses = SHAPES[shape]
        trigger = now - AGES[age] - dt.timedelta(minutes=rng.choice(JITTER_MINUTES))
        agent = rng.choice(["agent-1", "agent-2", "agent-3", None])
        adhoc = i % 5 == 0
        group = reported_group(task, i, adhoc)
        explicit_trigger = rng.random() < 0.5  # a scheduler's trigger_time, else the TRIGGER event's
        run_time = rng.choice(RUN_TIMES)

        events = []
        for status in statuses:
            if status in TERMINAL:
                seconds = 30 if shape == "cancelled" else None
                ts = trigger + (dt.timedelta(seconds=seconds) if seconds else
                                dt.timedelta(seconds=OFFSETS["RUNNING"]) + run_time)
            else:
                ts = trigger + dt.timedelta(seconds=OFFSETS[status])
                if explicit_trigger and status == "TRIGGER":
                    ts += dt.timedelta(seconds=2)  # noticed a little after the scheduled time
            events.append((status, ts))
        if shape == "running" and rng.random() < 0.5:
            events.append(("RUNNING", trigger + dt.timedelta(minutes=10)))  # a repeated heartbeat
        for status, ts in events:
            writer.status(run_id, task, status, agent=agent, adhoc=adhoc, ts=ts, group=group,
                          trigger_time=trigger if explicit_trigger else None,
                          exit_code=EXIT_CODES.get(status))

        times = dict(reversed(events))  # status -> its first time
        if explicit_trigger:
            trigger_time = trigger
        elif "TRIGGER" in times:
            trigger_time = times["TRIGGER"]
        else:
            trigger_time = min(ts for _, ts in events)
        starts = [ts for status, ts in events if status in ("STARTED", "RUNNING")]
        final = statuses[-1]
        plan.append(PlannedRun(
            run_id=run_id, task=task, grp=group or DEFINED_TASKS.get(task), reported_grp=group,
            status=final, agent=agent, adhoc=adhoc, age=age, trigger_time=trigger_time,
            started=min(starts) if starts else None,
            finished=times[final] if final in TERMINAL else None,
            reached=frozenset(statuses), updated=max(ts for _, ts in events)))
    writer.close()
    return plan


def planned_world(folder: Path) -> SimpleNamespace:
    """The planned runs ingested into a real index file: the index, the plan of its runs, the
    spool, and the "now" every query is asked at. The caller closes the index."""
    now = utcnow()
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # the spool keeps milliseconds
    plan = write_planned_spool(folder / "spool", now)
    index = ingest(folder)
    return SimpleNamespace(index=index, runs=plan, now=now, spool=folder / "spool", folder=folder)


# ---- what the plan expects of the queries ------------------------------------------------

def plan_matches(run: PlannedRun, run_filter: RunFilter, now: dt.datetime) -> bool:
    """Whether a planned run should pass a filter (the plain-Python reading of the filter)."""
    return ((not run_filter.statuses or run.status in run_filter.statuses)
            and run_filter.task_text.lower() in run.task.lower()
            and (run_filter.since is None or run.trigger_time >= now - run_filter.since)
            and (not run_filter.group or run.grp == run_filter.group)
            and (run_filter.start is None or run.trigger_time >= run_filter.start)
            and (run_filter.end is None or run.trigger_time < run_filter.end))


def expected_ids(world, run_filter: RunFilter) -> set[str]:
    return {run.run_id for run in world.runs if plan_matches(run, run_filter, world.now)}


def sort_value(run: PlannedRun, column: str, now: dt.datetime):
    if column == "trigger_time":  # the latest run first: ties by start (not started: latest), then last event
        return run.trigger_time, run.started or dt.datetime.max, run.updated
    return run.duration(now) if column == "duration" else getattr(run, column)


def expected_order(runs, column: str, descending: bool, now: dt.datetime) -> list[str]:
    """Run ids sorted by a column, ties by run id in the same direction, missing values last."""
    present = sorted(((sort_value(r, column, now), r.run_id) for r in runs
                      if sort_value(r, column, now) is not None), reverse=descending)
    missing = sorted((r.run_id for r in runs if sort_value(r, column, now) is None), reverse=descending)
    return [run_id for _, run_id in present] + missing


def all_ids(world, run_filter: RunFilter = RunFilter(), **kwargs) -> list[str]:
    """Every matching run id, as runs_page orders them."""
    page = queries.runs_page(world.index, run_filter, limit=10_000, now=world.now, **kwargs)
    return page["run_id"].tolist()


def value(cell):
    """A DataFrame cell as a plain Python value (None for NULL)."""
    if cell is None or (not isinstance(cell, (list, tuple)) and pd.isna(cell)):
        return None
    return cell.to_pydatetime() if isinstance(cell, pd.Timestamp) else cell


def summaries(index) -> dict[str, RunSummary]:
    """What the hub would report of each run (the same join the ingestor uses)."""
    frame = index.query("SELECT r.run_id, r.task, coalesce(r.grp, t.grp) AS grp, r.status, r.trigger_time "
                        "FROM runs r LEFT JOIN tasks t USING (task)")
    return {row.run_id: RunSummary(row.task, value(row.grp), row.status, value(row.trigger_time))
            for row in frame.itertuples(index=False)}


#: The lake tests' runs start an hour ago, so every page's default range shows them.
HOST_T0 = dt.datetime.now(dt.UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0) - dt.timedelta(hours=1)


def write_host_spool(spool: Path, host: str, runs: range, lines: int) -> None:
    """Runs `<host>-<n>` with their whole lifecycle (every third FAILED) and `lines` stdout lines
    each (every fifth run some stderr too), appended as a writer of the contract appends them."""
    with SpoolWriter(spool, host) as writer:
        for n in runs:
            run_id, task = f"{host}-{n:04d}", f"{host}_task_{n % 7}"
            end = "FAILED" if n % 3 == 0 else "SUCCESS"
            for i, status in enumerate(("TRIGGER", "STARTED", "RUNNING", end)):
                exit_code = (1 if end == "FAILED" else 0) if status == end else None
                writer.status(run_id, task, status, agent=f"agent-{host}", exit_code=exit_code,
                              ts=HOST_T0 + dt.timedelta(seconds=i, microseconds=n))
            writer.append_log(run_id, "stdout", "".join(f"{host} run {n} line {k} ok\n" for k in range(lines)))
            if n % 5 == 0:
                writer.append_log(run_id, "stderr", f"{host} run {n}: a warning\n")
