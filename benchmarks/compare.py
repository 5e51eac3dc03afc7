"""Comparing a run with another (/compare): the diff of two 100,000-line logs (issue 20, item 4).

Two runs of one task whose logs differ by one line inserted at line 50,001 (the issue's test
and size, at either benchmark size):

1. the diff of their stdout, equal but for that line: `compare.log_diff`, against Python's
   difflib over the two files' lines (how a diff is usually made); target ≤ 1 s.
2. the diff of their stderr, where every line also holds its own time and job id, with times
   and ids ignored (`ignore_masked`); target ≤ 1 s. No baseline: masked, these lines are all
   alike, and difflib over them (autojunk off, to be right) is quadratic: it had not ended
   after 10 minutes.
3. opening the comparison: `RunCompare(...)`, the server side of /compare (both runs, their
   line counts, the diff, the lines of the first difference); target ≤ 1 s.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import tempfile
from contextlib import ExitStack
from pathlib import Path

from dashboard.compare import VARYING, Hunk, log_diff
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.spool import SpoolWriter, log_path

from .common import Row, Sizes, say, timed, timing_row

#: The issue's size, at either benchmark size: two logs of this many lines.
LINES = 100_000
#: Where the second run's extra line is.
INSERTED_AT = 50_001
T0 = dt.datetime(2026, 11, 28, 12, 0)
RUNS = (("good", "0a1b2c3d4e"), ("bad", "9f8e7d6c5b"))


def plain_line(n: int) -> str:
    level = "ERROR" if n % 1000 == 0 else "WARN" if n % 97 == 0 else "INFO"
    return f"{level} worker-{n % 17} processed batch {n} of orders_{n % 13}"


def stamped_line(n: int, trigger: dt.datetime, job: str) -> str:
    return f"{(trigger + dt.timedelta(milliseconds=n)).isoformat()} step {n} of job {job} took {n * 7} ms"


def write_spool(spool: Path) -> None:
    writer = SpoolWriter(spool, "bench")
    for k, (run_id, job) in enumerate(RUNS):
        trigger = T0 + dt.timedelta(hours=k)
        writer.status(run_id, "Nightly", "RUNNING", trigger_time=trigger, ts=trigger + dt.timedelta(seconds=5))
        streams = {"stdout": [plain_line(n) for n in range(1, LINES + 1)],
                   "stderr": [stamped_line(n, trigger, job) for n in range(1, LINES + 1)]}
        if run_id == "bad":
            for lines in streams.values():
                lines.insert(INSERTED_AT - 1, "ERROR: deadlock detected while loading orders")
        for stream, lines in streams.items():
            writer.append_log(run_id, stream, "".join(line + "\n" for line in lines))
        writer.status(run_id, "Nightly", "SUCCESS" if k == 0 else "FAILED", trigger_time=trigger,
                      ts=trigger + dt.timedelta(seconds=65), exit_code=k)


def difflib_hunks(spool: Path, stream: str, mask: bool) -> int:
    """The baseline: read both files, mask if asked, difflib's differing blocks; how many."""
    pattern = re.compile(VARYING)
    texts = []
    for run_id, _job in RUNS:
        lines = log_path(spool, run_id, stream).read_text(encoding="utf-8").splitlines()
        texts.append([pattern.sub("#", line) for line in lines] if mask else lines)
    matcher = difflib.SequenceMatcher(None, *texts, autojunk=False)
    return sum(tag != "equal" for tag, *_ in matcher.get_opcodes())


def figures(sizes: Sizes) -> list[Row]:
    from dashboard.components.run_compare import RunCompare
    from dashboard.config import Config
    from dashboard.hub import Hub
    from dashboard.store import Links, Store

    rows = []
    expected = [Hunk(INSERTED_AT, 0, INSERTED_AT, 1)]
    samples = max(3, sizes.heavy_repeat)
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-compare-")))
        say(f"writing two runs of 2 × {LINES:,} log lines, one line apart...")
        write_spool(folder / "spool")
        index = Index(folder / "index.duckdb", fallback_to_private=False)
        stack.callback(index.close)
        Ingestor(index, folder / "spool").catch_up()
        for stream, mask, what in (("stdout", False, "equal lines"),
                                   ("stderr", True, "every line's time and id differing, ignored")):
            say(f"diffing {stream}...")
            times, diff = timed(lambda: log_diff(index, "good", "bad", stream, ignore_masked=mask), samples)
            if diff.hunks != expected:
                say(f"warning: the {stream} diff found {diff.hunks[:3]}, not {expected}")
            baseline = None
            if not mask:
                baseline, found = timed(lambda: difflib_hunks(folder / "spool", stream, mask), sizes.heavy_repeat)
                if found != 1:
                    say(f"warning: difflib found {found} differences in {stream}, not 1")
            rows.append(timing_row(f"diff of 2 × {LINES:,}-line logs, one line inserted at {INSERTED_AT:,} ({what})"
                                   + (" (baseline: difflib over the files)" if baseline else ""),
                                   times, baseline, "≤ 1 s", 1000, None, None))
        say("opening the comparison...")

        def open_view() -> RunCompare:  # a store of its own: the diff shared per store is not reused
            store = Store(index, Hub(), Config(), Links(Config().routes))
            return RunCompare(store=store, a="good", b="bad", stream="stderr", ignore_masked=True)

        times, view = timed(open_view, samples)
        if f'data-line="{INSERTED_AT}"' not in view.lines.object:
            say("warning: the comparison does not show the inserted line")
        rows.append(timing_row("open /compare at its first difference, times and ids ignored: RunCompare(...)",
                               times, None, "≤ 1 s", 1000, None, None))
    return rows
