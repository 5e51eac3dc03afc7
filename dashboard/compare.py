"""Comparing two runs: their lifecycle phases side by side, and an aligned diff of a log stream.

The diff compares lines by a hash of their visible text (see dashboard.terminal), computed in
DuckDB; asked to ignore what changes from one run to the next (times, ids, counts), it hashes
the text with every run of digits and hexadecimal holding a digit masked (one pass: the failure
signatures' dozen masks took 9 s per million lines). The common head and tail are
found with numpy, and only what lies between them goes through difflib, so two long logs that
differ by a line cost two scans and a comparison of arrays.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np

from .formatting import duration_seconds, plain

#: At most this many lines of each log are compared.
MAX_DIFF_LINES = 2_000_000
#: What `ignore_masked` ignores: digits, and the hexadecimal words they are part of (ids, hashes).
VARYING = "[0-9a-f]*[0-9][0-9a-f]*"


@dataclass(frozen=True)
class Hunk:
    """Lines that differ: `a_count` lines of the first log from line `a_first` (1-based) stand where
    the second has `b_count` lines from `b_first`. A count of 0 is an insertion or a deletion."""

    a_first: int
    a_count: int
    b_first: int
    b_count: int

    @property
    def kind(self) -> str:
        return "inserted" if not self.a_count else "deleted" if not self.b_count else "changed"


@dataclass(frozen=True)
class LogDiff:
    hunks: list[Hunk]
    a_lines: int
    b_lines: int
    #: whether a log was longer than MAX_DIFF_LINES (the rest is not compared)
    cut: bool = False

    @property
    def first(self) -> Hunk | None:
        return self.hunks[0] if self.hunks else None


def phases(run: dict) -> dict[str, float | None]:
    """A run's lifecycle phases in seconds: the wait from its trigger to its start (or to its end
    if it never started, or to now while it waits), and its run time (to its end, or to now while
    it runs; None if it never started)."""
    trigger, started, finished = (plain(run.get(key)) for key in ("trigger_time", "started", "finished"))
    return {"queue wait": duration_seconds(trigger, started if started is not None else finished),
            "run time": duration_seconds(started, finished)}


def line_hashes(index, logs: list[tuple[str, str]], ignore_masked: bool = False) -> list[np.ndarray]:
    """For each (run id, stream): a hash of each line's visible text (masked if asked), in line
    order; empty without a log. One query for all, so DuckDB hashes the logs on several cores."""
    text = "coalesce(visible, text)"
    key = f"regexp_replace({text}, '{VARYING}', '#', 'g')" if ignore_masked else text
    with index.cursor() as cur:
        ids = [index.log_id(cur, run_id, stream) for run_id, stream in logs]
        known = [log_id for log_id in ids if log_id is not None]
        result = cur.execute(
            f"SELECT log_id, hash({key}) AS h FROM log_text WHERE log_id IN ({', '.join('?' * len(known))}) "
            "AND line_no <= ? ORDER BY log_id, line_no", [*known, MAX_DIFF_LINES + 1]).fetchnumpy() if known \
            else {"log_id": np.zeros(0, np.int32), "h": np.zeros(0, np.uint64)}
    log_ids, hashes = np.asarray(result["log_id"]), np.asarray(result["h"], dtype=np.uint64)
    return [hashes[log_ids == log_id] if log_id is not None else np.zeros(0, np.uint64) for log_id in ids]


def log_diff(index, run_a: str, run_b: str, stream: str = "stdout", ignore_masked: bool = False) -> LogDiff:
    """Where two runs' logs of a stream differ, first difference first."""
    a, b = line_hashes(index, [(run_a, stream), (run_b, stream)], ignore_masked)
    cut = len(a) > MAX_DIFF_LINES or len(b) > MAX_DIFF_LINES
    a, b = a[:MAX_DIFF_LINES], b[:MAX_DIFF_LINES]
    return LogDiff(diff_hashes(a, b), len(a), len(b), cut)


def diff_hashes(a: np.ndarray, b: np.ndarray) -> list[Hunk]:
    """The hunks between two sequences of line hashes."""
    shortest = min(len(a), len(b))
    unequal = np.flatnonzero(a[:shortest] != b[:shortest])
    head = int(unequal[0]) if len(unequal) else shortest
    unequal_tail = np.flatnonzero(a[::-1][:shortest - head] != b[::-1][:shortest - head])
    tail = int(unequal_tail[0]) if len(unequal_tail) else shortest - head
    middle_a, middle_b = a[head:len(a) - tail].tolist(), b[head:len(b) - tail].tolist()
    matcher = difflib.SequenceMatcher(None, middle_a, middle_b, autojunk=False)
    return [Hunk(head + i1 + 1, i2 - i1, head + j1 + 1, j2 - j1)
            for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]
