"""Test data builders: synthetic spools in the real layout, for the tests and the benchmarks alike."""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from pathlib import Path

from dashboard.formatting import utcnow
from dashboard.spool import SpoolWriter, events_dir, format_timestamp, log_path

STATUS_PATH = ("IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING")
LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")


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
    start = dt.datetime(2026, 11, 28)
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
