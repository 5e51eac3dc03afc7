"""Test helpers: wait for a condition with a deadline, and read a spool's events and logs back."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import psutil


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, message: str | Callable[[], str] = ""):
    """Poll ``predicate`` until it returns something truthy and return that; fail after ``timeout`` seconds
    (saying ``message``, or what it returns then when it is a function)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            said = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout} s waiting for {said or predicate}")
        time.sleep(interval)


def read_events(spool: Path) -> list[dict]:
    """Every complete event line of every events/*.jsonl file, in file order."""
    events = []
    for path in sorted((Path(spool) / "events").glob("*.jsonl")):
        text = path.read_text(encoding="utf-8")
        events.extend(json.loads(line) for line in text.split("\n")[:-1] if line)
    return events


def run_events(spool: Path, run_id: str) -> list[dict]:
    """The status events of one run, in the order they were written."""
    return [e for e in read_events(spool) if e["kind"] == "status" and e["run_id"] == run_id]


def statuses(spool: Path, run_id: str) -> list[str]:
    """The statuses one run went through, in order."""
    return [e["status"] for e in run_events(spool, run_id)]


def last_event(spool: Path, run_id: str, status: str) -> dict | None:
    """The latest event of a run with the given status, or None."""
    matching = [e for e in run_events(spool, run_id) if e["status"] == status]
    return matching[-1] if matching else None


def read_log(spool: Path, run_id: str, stream: str) -> str:
    """A run's stdout or stderr log as text ('' if nothing was written yet)."""
    path = Path(spool) / "logs" / run_id / f"{stream}.log"
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def process_gone(pid: int) -> bool:
    """Whether a process has ended; a zombie (ended, not yet reaped by its parent) has ended."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def process_group_gone(pgid: int) -> bool:
    """Whether every process of a process group has ended (zombies count as ended)."""
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                return False
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return True
