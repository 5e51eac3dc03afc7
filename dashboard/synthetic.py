"""Generates large synthetic spools in the real layout, for benchmarks and kill tests."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

from .spool import events_dir, format_timestamp, log_path

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
