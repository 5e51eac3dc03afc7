"""Ingest throughput: log lines and status events per second, against reading and parsing alone.

    python -m benchmarks.ingest [--lines 1000000] [--events 300000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from dashboard.index import Index
from dashboard.ingest import Ingestor

from dashboard.synthetic import write_event_spool, write_log_spool


def read_and_split(spool: Path, pattern: str) -> int:
    count = 0
    for path in spool.glob(pattern):
        count += len(path.read_bytes().decode("utf-8", "replace").split("\n")) - 1
    return count


def read_and_parse(spool: Path) -> int:
    count = 0
    for path in spool.glob("events/*.jsonl"):
        for line in path.read_bytes().split(b"\n")[:-1]:
            json.loads(line)
            count += 1
    return count


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def ingest_once(spool: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        index = Index(Path(folder) / "bench.duckdb")
        Ingestor(index, spool).catch_up()
        index.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=300_000, help="status events (6 per run)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        logs, events = Path(folder) / "logs-spool", Path(folder) / "events-spool"
        line_count = write_log_spool(logs, runs=100, lines_per_run=args.lines // 100)
        event_count = write_event_spool(events, runs=args.events // 6)
        rows = []
        for name, count, ours, baseline in (
                ("ingest of log lines", line_count, lambda: ingest_once(logs),
                 lambda: read_and_split(logs, "logs/*/*.log")),
                ("ingest of status events", event_count, lambda: ingest_once(events),
                 lambda: read_and_parse(events))):
            our_times, base_times = timed(ours, args.repeat), timed(baseline, args.repeat)
            ours_median, base_median = statistics.median(our_times), statistics.median(base_times)
            rows.append((name, f"{count:,}", f"{count / ours_median:,.0f}/s", f"{count / max(our_times):,.0f}/s",
                         f"{count / base_median:,.0f}/s", f"{ours_median / base_median:.1f}x"))
    header = ("figure", "items", "ours (median)", "ours (slowest)", "read+parse only", "time ratio")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths)))


if __name__ == "__main__":
    main()
