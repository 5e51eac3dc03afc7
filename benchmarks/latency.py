"""Latency from a line written to the spool to its row in the index (as the hub announces it).

    python -m benchmarks.latency [--samples 200] [--background 5000]

A writer process appends a timestamped line every 50 ms to one run's stdout.log, like a
running command; optionally a second one writes `--background` other lines a second.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from dashboard import queries
from dashboard.hub import Hub
from dashboard.index import Index
from dashboard.ingest import Ingestor

WRITER = """
import sys, time
path, count, per_second = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with open(path, "ab", buffering=0) as log:
    for n in range(count):
        log.write(f"{time.time():.6f} line {n}\\n".encode())
        time.sleep(1 / per_second)
"""


def measure(samples: int, background: int) -> list[float]:
    with tempfile.TemporaryDirectory() as folder:
        spool = Path(folder) / "spool"
        for run_id in ("probe", "noise"):
            (spool / "logs" / run_id).mkdir(parents=True)
        hub, latencies, done = Hub(), [], threading.Event()
        index = Index(Path(folder) / "index.duckdb")
        seen = {"line": 0}

        def heard(change):
            last = change.log_lines.get(("probe", "stdout"))
            if not last:
                return
            arrived = time.time()
            lines = queries.log_page(index, "probe", "stdout", seen["line"] + 1, last - seen["line"])
            latencies.extend(arrived - float(text.split()[0]) for text in lines["text"])
            seen["line"] = last
            if len(latencies) >= samples:
                done.set()

        hub.subscribe(heard, min_interval=0)
        ingestor = Ingestor(index, spool, hub)
        ingestor.start()
        writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(spool / "logs/probe/stdout.log"),
                                     str(samples), "20"])]
        if background:
            writers.append(subprocess.Popen([sys.executable, "-c", WRITER, str(spool / "logs/noise/stdout.log"),
                                             str(background * (samples // 20 + 2)), str(background)]))
        done.wait(samples / 20 + 30)
        for writer in writers:
            writer.kill()
            writer.wait()
        ingestor.stop()
        index.close()
    return latencies


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--background", type=int, default=5000, help="other lines a second")
    args = parser.parse_args(argv)
    print("load | samples | median | p95 | max")
    for background in sorted({0, args.background}):
        values = sorted(measure(args.samples, background))
        p95 = values[int(len(values) * 0.95) - 1]
        print(f"{background:,} other lines/s | {len(values)} | {statistics.median(values) * 1000:.0f} ms | "
              f"{p95 * 1000:.0f} ms | {values[-1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
