"""The dashboard's benchmark: one command, one table, ours against the usual approach.

    python -m benchmarks            # the issue's size: 1,000,000 runs, 20,000,000 log lines
    python -m benchmarks --quick    # a small size that runs in under a minute (the tests run it)
    python -m benchmarks --only fleet_search --fleet-lines 20000000 --keep DIR   # one section, its size
    python -m benchmarks --only scaling --scaling-runs 100000 1000000   # how cost grows with history
                                        # (the full run leaves it out unless named: over an hour)
    python -m benchmarks --only lake    # lake mode beside local mode (a throwaway PostgreSQL 15 of its own;
                                        # --quick leaves it out unless named: --quick --only lake)

It generates its data through the real spool and ingestor (with progress bars on stderr),
measures every figure several times, and prints one table on stdout: each figure with our
median and p95, the baseline's median on the same data in the same run, the ratio, and
the target. --keep DIR keeps the data for a later run (generating the full size takes
minutes); --only runs some sections.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from . import compare, data, failures, fleet_search, graph, ingest, lake, logs, receive, runs_page, scaling, strip, \
    terminal, timeline
from .common import FULL, QUICK, print_table, work_folder

SECTIONS = ("ingest", "runs_page", "failures", "logs", "fleet_search", "graph", "terminal", "receive", "timeline",
            "compare", "strip", "scaling", "lake")
#: Sections --quick runs only when named with --only.
QUICK_LEAVES_OUT = ("lake",)
#: Sections the full size runs only when named with --only: scaling's 10M runs take about 80 minutes
#: and 60 GB of disk to generate, four times the rest of the benchmark.
FULL_LEAVES_OUT = ("scaling",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the small size, for a check that all of it works")
    parser.add_argument("--keep", type=Path, help="generate the data into DIR and keep it; reuse it next time")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections (default: all but scaling, "
                        "which takes over an hour: give --only scaling for it; with --quick all but lake, which "
                        "takes a minute: give --quick --only lake for it)")
    parser.add_argument("--fleet-lines", type=int, help="log lines the fleet search section searches (default: "
                        "20,000,000, the issue's size; --quick 200,000); its spool is its own, kept in DIR/fleet")
    parser.add_argument("--scaling-runs", type=int, nargs="+", help="the sizes the scaling section measures, in "
                        "runs (default: 100000 1000000 10000000; --quick 1000 10000); each kept in DIR/scaling-N")
    parser.add_argument("--lake-runs", type=int, help="runs of the lake section's dataset (default: 100,000, with "
                        "2M log lines; 1000000 for the shared dataset's size, about 20 minutes)")
    parser.add_argument("--graph-screenshot", type=Path, help="save a screenshot of the graph page here")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.only is None:  # the quick run is the tests' (tests/test_benchmarks.py): the lake's minute is left out
        args.only = [name for name in SECTIONS if name not in (QUICK_LEAVES_OUT if args.quick else FULL_LEAVES_OUT)]
    started = time.monotonic()
    with ExitStack() as stack:
        folder = work_folder(stack, args.keep, "taskdash-bench-")
        if args.keep and (folder / "complete.json").exists() and sizes.name not in (folder / "complete.json").read_text():
            parser.error(f"{folder} holds data of another size; use another --keep folder")
        rows = []
        dataset = data.prepare(folder, sizes) if {"ingest", "runs_page", "logs"} & set(args.only) else None
        if "ingest" in args.only:
            rows += ingest.figures(dataset, sizes, folder)
        if "runs_page" in args.only:
            rows += runs_page.figures(dataset, sizes)
        if "failures" in args.only:
            rows += failures.figures(folder, sizes)
        if "logs" in args.only:
            rows += logs.figures(dataset, sizes)
        if "fleet_search" in args.only:
            lines = args.fleet_lines or (200_000 if args.quick else 20_000_000)
            rows += fleet_search.figures(folder / "fleet", lines, sizes.heavy_repeat)
            rows += fleet_search.short_runs_figures(folder / "fleet-short", 2_000 if args.quick else 200_000,
                                                    sizes.repeat)
        if "graph" in args.only:
            rows += graph.figures(folder, sizes, args.graph_screenshot)
        if "terminal" in args.only:
            rows += terminal.figures(sizes)
        if "receive" in args.only:
            rows += receive.figures(sizes)
        if "timeline" in args.only:
            rows += timeline.figures(folder, sizes)
        if "compare" in args.only:
            rows += compare.figures(sizes)
        if "strip" in args.only:
            rows += strip.figures(folder, sizes)
        if "scaling" in args.only:
            rows += scaling.figures(folder, args.quick, tuple(args.scaling_runs or ()))
        if "lake" in args.only:
            rows += lake.figures(folder, sizes, args.lake_runs)
    command = "python -m benchmarks" + (" --quick" if args.quick else "")
    print(f"{command}: {sizes.runs:,} runs, {sizes.log_lines:,} log lines ({sizes.big_run_lines:,} in one run), "
          f"{sizes.graph_tasks:,}-task graph; {dt.date.today().isoformat()}, {platform.system()} "
          f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{time.monotonic() - started:.0f} s")
    for note in dataset.notes if dataset else ():
        print(f"  {note}")
    print()
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
