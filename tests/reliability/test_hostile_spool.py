"""Hostile spool content against a real `taskdash serve` (issue 23, ingest side): a flood of junk
lines, files that cannot be read. Each test prints its figures: memory, time until other runs
show."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request

import psutil
from serving import DashboardServer

from dashboard.index import Index
from dashboard.spool import SpoolWriter

MB = 1024 * 1024
CAUGHT_UP = "index caught up with the spool"


def indexed_lines(server: DashboardServer, run_id: str, stream: str = "stdout") -> int | None:
    """How many lines of a run's stream the running server's index holds (its log download says so)."""
    try:
        with urllib.request.urlopen(f"{server.url}/task-runs/{run_id}/logs/{stream}.log", timeout=10) as response:
            return int(response.headers["X-Indexed-Lines"])
    except urllib.error.HTTPError:
        return None


def peak_rss(pid: int) -> int:
    """The process's highest resident set size so far (VmHWM), in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status_file:
        status = status_file.read()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) * 1024


def wait_for(predicate, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {message}"
        time.sleep(0.05)
    return result


def test_48_mb_of_junk_lines_keeps_the_server_small_and_other_runs_flowing(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "good")
    writer.status("r-before", "Fetch_Orders", "RUNNING", agent="agent-1")
    server = DashboardServer(tmp_path)
    try:
        server.wait_for_output(CAUGHT_UP, timeout=120)
        process = psutil.Process(server.process.pid)
        before = process.memory_info().rss
        # The attack of the issue: 48 MB of `x` lines in one write (24M bad lines) ...
        with open(tmp_path / "spool" / "events" / "junk.jsonl", "wb") as junk:
            junk.write(b"x\n" * (24 * MB))
            junk.write(b'{"kind": "status", "run_id": "r-after-junk", "task": "Late", "status": "RUNNING", '
                       b'"ts": "2026-12-01T12:00:00Z"}\n')
        writer.append_log("r-after-junk", "stdout", "read after the junk\n")
        # ... then a run in another file, which must show within seconds.
        written = time.monotonic()
        writer.status("r-other", "Send_Email", "RUNNING", agent="agent-2")
        writer.append_log("r-other", "stdout", "still flowing\n")
        wait_for(lambda: indexed_lines(server, "r-other") == 1, timeout=30, message="the other run's line")
        shown = time.monotonic() - written
        # The junk file ends with a good run: once it shows, the whole file was read.
        wait_for(lambda: indexed_lines(server, "r-after-junk") == 1, timeout=120, message="the junk file read")
        read_all = time.monotonic() - written
        peak, after = peak_rss(process.pid), process.memory_info().rss
        print(f"\n48 MB of 'x' lines: server RSS {before / MB:,.0f} MB before, peak {peak / MB:,.0f} MB, "
              f"{after / MB:,.0f} MB after; a run in another file showed {shown:.1f} s after it was written, "
              f"the whole junk file was read in {read_all:.1f} s")
    except BaseException:
        print("".join(server.output))
        raise
    finally:
        server.stop()
    assert peak < 1024 * MB, "the server's memory budget"
    assert peak - before < 400 * MB
    assert shown < 10, "other files' runs keep flowing within seconds"
    index = Index(tmp_path / "index.duckdb")
    try:
        rows = index.query("SELECT reason FROM ingest_errors WHERE file = 'events/junk.jsonl'")["reason"]
        counted = sum(int(m[1].replace(",", "")) if (m := re.match(r"([\d,]+) more bad lines", r)) else 1
                      for r in rows)
        print(f"the junk file: {len(rows)} ingest errors accounting for {counted:,} bad lines")
        assert counted == 24 * MB and len(rows) < 200
    finally:
        index.close()
