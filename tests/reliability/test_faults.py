"""Faults (issue 8): the server killed while it ingests, a writer killed mid-line, a log rotated
while tailed, a full disk, a lost or corrupt index, a restart with browsers open.

Real `taskdash serve` subprocesses on real spool files and a real DuckDB file; a running
server holds its index, so the index is read after the server has stopped (or read-only
between kills), and live state is read through the server (log downloads, Chromium).
"""

from __future__ import annotations

import hashlib
import random
import time

import duckdb
from helpers import wait_until
from serving import DashboardServer

from dashboard.index import Index
from dashboard.synthetic import write_event_spool, write_log_spool

MB = 1024 * 1024
CAUGHT_UP = "index caught up with the spool"


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


def index_files(tmp_path):
    return [tmp_path / "index.duckdb", tmp_path / "index.duckdb.wal"]


def index_files_state(tmp_path) -> list:
    """Size and modification time of the index and its WAL: any write changes them."""
    return [(path.stat().st_size, path.stat().st_mtime_ns) if path.exists() else None
            for path in index_files(tmp_path)]


def index_state(tmp_path) -> str:
    """What a stopped server left in its index, read without changing it (a WAL stays to be replayed)."""
    path, wal = index_files(tmp_path)
    if not path.exists():
        return "no index file yet"
    with duckdb.connect(str(path), read_only=True) as con:
        try:
            lines, transitions, runs = con.execute(
                "SELECT (SELECT count(*) FROM log_lines), (SELECT count(*) FROM transitions), "
                "(SELECT count(*) FROM runs)").fetchone()
        except duckdb.CatalogException:
            return "an index file without its tables yet"
    pending = f", a WAL of {wal.stat().st_size / MB:.1f} MB to replay" if wal.exists() else ""
    return f"{lines:,} log lines, {transitions:,} transitions, {runs:,} runs{pending}"


# ---- 1. SIGKILL the server while it ingests ---------------------------------------------
LOG_RUNS, LINES_PER_RUN, EVENT_RUNS = 64, 12_500, 16_667  # 800,000 log lines; 6 events a run: 100,002
KILLS, SEED = 20, 8
APPENDED = 10_000  # log lines a writer adds before each start: 1,000,000 in all, and every life has work


def append_log_lines(spool, kill: int) -> None:
    path = spool / "logs" / f"live-{kill % 4}" / "stdout.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as log:
        log.write("".join(f"start {kill} line {n}: appended while the server was down\n" for n in range(APPENDED)))


def test_sigkill_the_server_at_20_moments_of_its_ingest_loses_and_doubles_nothing(tmp_path):
    spool = tmp_path / "spool"
    total_lines = write_log_spool(spool, LOG_RUNS, LINES_PER_RUN) + KILLS * APPENDED
    total_events = write_event_spool(spool, EVENT_RUNS)
    rng = random.Random(SEED)
    began, outputs = time.monotonic(), []
    print(f"\nspool: {total_lines:,} log lines ({KILLS} x {APPENDED:,} of them appended, one share before each "
          f"start), {total_events:,} events of {EVENT_RUNS:,} runs")
    for kill in range(1, KILLS + 1):
        append_log_lines(spool, kill)
        # early: while the server starts, opens its index and replays its WAL; mid-commit: 0-0.2 s
        # after this life began writing its index, inside its first commit; after-commit: 0.3-3 s
        # after that, once a commit or more may have gone through; any: 0-8 s after the start.
        # Timed from what the server does, so a slow machine moves the moments along with it.
        moment = rng.choice(("early", "mid-commit", "mid-commit", "after-commit", "any"))
        delay = {"early": (0.2, 2.0), "mid-commit": (0.0, 0.2), "after-commit": (0.3, 3.0), "any": (0.0, 8.0)}[moment]
        delay = rng.uniform(*delay)
        files_before = index_files_state(tmp_path)
        server = DashboardServer(tmp_path, wait=False)
        started, first_write = time.monotonic(), None

        def moment_came():
            nonlocal first_write
            now = time.monotonic()
            if first_write is None and index_files_state(tmp_path) != files_before:
                first_write = now
            if server.process.poll() is not None or CAUGHT_UP in "".join(server.output):
                return True
            since = first_write if moment.endswith("commit") else started
            return since is not None and now - since >= delay

        wait_until(moment_came, timeout=180, interval=0.005, message="the moment to kill")
        alive, at = server.process.poll() is None, time.monotonic() - started
        server.kill()
        outputs.append("".join(server.output))
        assert alive, "the server ended by itself:\n" + outputs[-1]
        if CAUGHT_UP in outputs[-1]:
            what = "after its catch-up"
        elif first_write is None:
            what = f"{moment}, before it wrote to its index"
        else:
            what = f"{moment}, {started + at - first_write:.2f} s after it began writing its index"
        print(f"kill {kill:2}/{KILLS} at {at:5.2f} s ({what}): the index has {index_state(tmp_path)}")

    server = DashboardServer(tmp_path)
    restarted = time.monotonic()
    try:
        caught_up = server.wait_for_output(CAUGHT_UP, timeout=180)
    finally:
        server.stop()
        outputs.append("".join(server.output))
    print(f"last start caught up in {time.monotonic() - restarted:.1f} s: {caught_up.strip()}")
    assert not any("Traceback" in output for output in outputs), "\n".join(outputs)

    index = Index(tmp_path / "index.duckdb")
    try:
        counts = index.counts()
        transitions = int(index.query("SELECT count(*) AS n FROM transitions")["n"][0])
        print(f"index: {counts['log_lines']:,} log lines, {transitions:,} transitions, {counts['runs']:,} runs, "
              f"{counts['ingest_errors']} ingest errors; {KILLS} kills in {time.monotonic() - began:.0f} s")
        assert (counts["log_lines"], transitions, counts["runs"]) == (total_lines, total_events, EVENT_RUNS)
        assert counts["ingest_errors"] == 0
        assert index_checksums(index) == spool_checksums(spool), "every run's lines, once each and in order"
    finally:
        index.close()
