"""What every benchmark section shares: the sizes, timing, table rows, and a real server."""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
from serving import DashboardServer
from tqdm import tqdm

from dashboard.index import Index
from dashboard.ingest import Ingestor

Row = tuple[str, str, str, str, str, str]  # figure, ours (median), ours (p95), baseline, ratio, target


@dataclass(frozen=True)
class Sizes:
    """How big the data is and how often each figure is measured."""

    name: str
    runs: int  # of TASKS tasks in GROUPS groups over `days` days
    log_lines: int  # in all, the big run's included
    big_run_lines: int  # stdout lines of the one big run
    lines_per_other_run: int
    graph_tasks: int  # in a spool of their own, with two upstreams each
    repeat: int  # samples of each quick figure
    heavy_repeat: int  # samples of the figures (and baselines) that take a second or more
    ingest_repeat: int
    sessions: int  # opened on the server for the memory figure
    probes: int  # lines written per live phase, one every 100 ms
    background_lines: int  # other lines a second while probing under load
    days: float = 7.0  # the history the runs are spread over, ending now


FULL = Sizes("full", runs=1_000_000, log_lines=20_000_000, big_run_lines=2_000_000, lines_per_other_run=1_000,
             graph_tasks=1_000, repeat=30, heavy_repeat=5, ingest_repeat=3, sessions=10, probes=120,
             background_lines=5_000)
QUICK = Sizes("quick", runs=20_000, log_lines=200_000, big_run_lines=100_000, lines_per_other_run=1_000,
              graph_tasks=150, repeat=5, heavy_repeat=2, ingest_repeat=2, sessions=3, probes=10,
              background_lines=5_000)


def say(message: str) -> None:
    """Progress on stderr, so stdout holds only the table."""
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * share) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds >= 0.0005 else f"{seconds * 1e6:,.0f} µs"


def timed(fn, samples: int) -> tuple[list[float], object]:
    """Run fn once to warm up, then `samples` times; the times and the last result."""
    result = fn()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def timing_row(name: str, ours: list[float], baseline: list[float] | None, target: str,
               median_max: float | None, p95_max: float | None, ratio_min: float | None) -> Row:
    """A row of durations (seconds); the limits in milliseconds, the ratio baseline / ours."""
    median, p95 = statistics.median(ours), percentile(ours, 0.95)
    base = statistics.median(baseline) if baseline else None
    ratio = base / median if base else None
    met = ((median_max is None or median * 1000 <= median_max) and (p95_max is None or p95 * 1000 <= p95_max)
           and (ratio_min is None or ratio is None or ratio >= ratio_min))
    limited = (median_max, p95_max, ratio_min) != (None, None, None)  # else the target is words only
    return (name, ms(median), ms(p95), ms(base) if base else "", f"{ratio:,.1f}x" if ratio else "",
            f"{target} {'ok' if met else 'MISSED'}" if target and limited else target)


def rate_row(name: str, items: int, ours: list[float], baseline: list[float],
             target_per_second: float | None) -> Row:
    """A row of throughputs: items a second over each sample's seconds (p95 = the slowest 5 %);
    no target: a figure reported only."""
    median = statistics.median(ours)
    rate, slow = items / median, items / percentile(ours, 0.95)
    base = items / statistics.median(baseline)
    if target_per_second is None:
        target = "report only"
    else:
        target = f"≥ {target_per_second:,.0f}/s {'ok' if rate >= target_per_second else 'MISSED'}"
    return (name, f"{rate:,.0f}/s", f"{slow:,.0f}/s", f"{base:,.0f}/s", f"{rate / base:.2f}x of it", target)


def print_table(rows: list[Row], out=sys.stdout) -> None:
    header = ("figure", "ours (median)", "ours (p95)", "baseline (median)", "ratio", "target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for n, row in enumerate([header, *rows]):
        print(" | ".join(cell.ljust(w) if i in (0, 5) else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(row, widths))).rstrip(), file=out)
        if n == 0:
            print("-+-".join("-" * w for w in widths), file=out)


def work_folder(stack: ExitStack, keep: Path | None, prefix: str) -> Path:
    """The --keep folder (made if missing), or a temporary one the stack removes."""
    if keep:
        keep.absolute().mkdir(parents=True, exist_ok=True)
        return keep.absolute()
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))


def catch_up_with_progress(ingestor: Ingestor, desc: str = "ingesting") -> dict[str, int]:
    """Ingestor.catch_up with a progress bar over the bytes still to read."""
    offsets = ingestor.index.load_offsets()
    pending = sum(max(0, (ingestor.spool / rel).stat().st_size - offsets.get(rel, (0, 0, False))[0])
                  for rel in ingestor.spool_files())
    with tqdm(total=pending, unit="B", unit_scale=True, desc=desc, file=sys.stderr,
              disable=pending < 1024 * 1024) as bar:
        return ingestor.catch_up(progress=bar.update)


def reused(index_path: Path, spool: Path) -> Path:
    """The index of data made before, caught up with its spool (which rebuilds it from the spool when
    the index's layout changed since); its path."""
    index = Index(index_path, fallback_to_private=False)
    try:
        catch_up_with_progress(Ingestor(index, spool), f"catching up {index_path.parent.name}")
    finally:
        index.close()
    return index_path


# ---- a real server ----------------------------------------------------------------------


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def settle(process: psutil.Process, quiet_percent: float = 3.0, timeout: float = 120.0,
           not_before: float = 0.0) -> None:
    """Wait until the server has been idle for two seconds in a row (and `not_before`, a monotonic time, has passed)."""
    deadline, quiet = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and (quiet < 4 or time.monotonic() < not_before):
        quiet = quiet + 1 if process.cpu_percent(interval=0.5) < quiet_percent else 0


@contextmanager
def server(spool: Path, index_path: Path):
    """A real `taskdash serve` on a free port: (its base URL, its psutil.Process, its output); stopped on exit."""
    running = DashboardServer(index_path.parent, spool=spool, index=index_path, wait=False)
    try:
        url = running.wait_for_url(timeout=120)
        note = next((line for line in running.output if line.startswith("note:")), None)
        if note:
            raise RuntimeError(f"the server could not use the index: {note.strip()}")
        yield url, psutil.Process(running.process.pid), running.output
    finally:
        running.stop()
        if "Traceback" in "".join(running.output):
            say("---- server output ----\n" + "".join(running.output))
