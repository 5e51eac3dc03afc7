"""The benchmark keeps working: its quick size runs end to end and prints every figure.

Its timings are not asserted (this machine is shared and noisy); that every figure was
measured, with a number, is.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from serving import REPO

FIGURES = (
    "ingest of log lines from the spool",
    "ingest of status events",
    "runs page query + count: all views pooled",
    "failure signatures over",
    "session update cycle: run on page 1 changed",
    "server memory: per extra session",
    "fetch a page of 500 lines, random pages",
    "count search matches (frequent",
    "download the whole stream",
    "fleet search over all",
    "fleet search time to first results (frequent",
    "fleet search over 2,000 runs of 10 lines each",
    "line written → visible in Chromium, idle spool",
    "line written → visible in Chromium, 5,000 other lines/s flowing",
    "layout and render, server side",
    "reload → graph drawn in Chromium",
    "ingest of an escape-heavy log",
    "search of the escape-heavy log's visible text for 'error'",
    "first paint of a page of 60,000-character lines",
    "receive: one OpenLineage event a request",
    "receive: 8 senders at once",
    "timeline, 1,000 runs, 100 tasks: reload → bars drawn in Chromium",
    "rows per agent clicked → bars redrawn in Chromium",
    "diff of 2 × 100,000-line logs, one line inserted at 50,001 (equal lines)",
    "open /compare at its first difference",
    "runs strip over",
    "scaling, 10,000 runs / 200,000 lines: runs page query + count",
    "scaling, 10,000 runs / 200,000 lines: search count in the big stream",
    "scaling, 10,000 runs / 200,000 lines: server RSS at rest",
)


@pytest.mark.timeout(600)
@pytest.mark.flaky(reruns=1)  # it opens pages in Chromium (tests/conftest.py), and takes minutes
def test_the_quick_benchmark_prints_every_figure(tmp_path):
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--keep", str(tmp_path / "data")],
                            cwd=REPO, capture_output=True, text=True, timeout=540)
    print(result.stdout)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    rows = {line.split(" | ")[0].strip(): [cell.strip() for cell in line.split(" | ")[1:]]
            for line in result.stdout.splitlines() if " | " in line}
    for figure in FIGURES:
        found = [cells for name, cells in rows.items() if figure in name]
        assert found, f"no row for {figure!r}"
        # (a memory growth can be below zero: "-0.0 MB" a session when the collector freed more)
        assert re.match(r"[-+]?[\d,.]+ ?(ms|µs|MB|/s)", found[0][0]), (figure, found[0])
    assert not [name for name, cells in rows.items() if "NEVER SHOWN" in name], "every probe line reached Chromium"
    grown = next(cells for name, cells in rows.items() if "10,000 runs / 200,000 lines: runs page" in name)
    assert grown[2].endswith("at 1,000") and re.fullmatch(r"[\d.]+x per 10x", grown[3]), grown
