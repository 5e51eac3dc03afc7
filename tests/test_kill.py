"""SIGKILL an ingesting process at different moments: the index still equals the spool exactly."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys

import pytest
from helpers import wait_until

from dashboard.index import Index
from dashboard.synthetic import write_event_spool, write_log_spool

RUNS, LINES_PER_RUN, EVENT_RUNS = 40, 12_500, 20_000


def spool_checksums(spool):
    """Per run: line count and a digest of the lines, straight from the log files."""
    sums = {}
    for path in sorted(spool.glob("logs/*/stdout.log")):
        lines = path.read_text(encoding="utf-8").split("\n")[:-1]
        sums[path.parent.name] = (len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest())
    return sums


def index_checksums(index):
    sums = {}
    for run_id in index.query("SELECT DISTINCT run_id FROM log_lines ORDER BY run_id")["run_id"]:
        lines = index.query("SELECT text FROM log_lines WHERE run_id = ? ORDER BY line_no", [run_id])["text"]
        sums[run_id] = (len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest())
    return sums


def ingest_command(spool, index_path):
    return [sys.executable, "-m", "dashboard.cli", "ingest", "--spool", str(spool), "--index", str(index_path)]


@pytest.mark.parametrize("kill_after_bytes", [1, 4_000_000, 20_000_000])
def test_sigkill_while_ingesting_neither_loses_nor_doubles(tmp_path, kill_after_bytes):
    spool, index_path = tmp_path / "spool", tmp_path / "index.duckdb"
    total_lines = write_log_spool(spool, RUNS, LINES_PER_RUN)
    total_events = write_event_spool(spool, EVENT_RUNS)

    def index_size():
        files = [index_path, index_path.with_name(index_path.name + ".wal")]
        return sum(f.stat().st_size for f in files if f.exists())

    victim = subprocess.Popen(ingest_command(spool, index_path), stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: index_size() >= kill_after_bytes or victim.poll() is not None, timeout=60,
                   interval=0.005, message="the ingest to write to its index")
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    print(f"killed after {index_size():,} bytes of index were written")

    subprocess.run(ingest_command(spool, index_path), check=True, capture_output=True, timeout=120)

    index = Index(index_path)
    counts = index.counts()
    assert counts["log_lines"] == total_lines
    assert index.query("SELECT count(*) AS n FROM transitions")["n"][0] == total_events
    assert counts["runs"] == EVENT_RUNS
    assert index_checksums(index) == spool_checksums(spool)
    index.close()
