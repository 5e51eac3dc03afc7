"""Hostile spool content against a real `taskdash serve` (issue 23, ingest side): a flood of junk
lines, files that cannot be read. Each test prints its figures: memory, time until other runs
show."""

from __future__ import annotations

import random
import resource
import re
import time
import urllib.error
import urllib.request

import duckdb
import psutil
from builders import write_event_spool, write_log_spool
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import DashboardServer, dashboard_server, indexed_lines

from dashboard.index import Index
from dashboard.spool import SpoolWriter

MB = 1024 * 1024
CAUGHT_UP = "index caught up with the spool"


def peak_rss(pid: int) -> int:
    """The process's highest resident set size so far (VmHWM), in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status_file:
        status = status_file.read()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) * 1024


def test_48_mb_of_junk_lines_keeps_the_server_small_and_other_runs_flowing(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "good")
    writer.status("r-before", "Fetch_Orders", "RUNNING", agent="agent-1")
    with dashboard_server(tmp_path) as server:
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
        wait_until(lambda: indexed_lines(server, "r-other") == 1, timeout=30, message="the other run's line")
        shown = time.monotonic() - written
        # The junk file ends with a good run: once it shows, the whole file was read.
        wait_until(lambda: indexed_lines(server, "r-after-junk") == 1, timeout=120, message="the junk file read")
        read_all = time.monotonic() - written
        peak, after = peak_rss(process.pid), process.memory_info().rss
        print(f"\n48 MB of 'x' lines: server RSS {before / MB:,.0f} MB before, peak {peak / MB:,.0f} MB, "
              f"{after / MB:,.0f} MB after; a run in another file showed {shown:.1f} s after it was written, "
              f"the whole junk file was read in {read_all:.1f} s")
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


def run_page(server: DashboardServer, run_id: str) -> tuple[int, str]:
    """A run's page as the server builds it (its log viewer reads the run's first lines from the index)."""
    try:
        with urllib.request.urlopen(f"{server.url}/task-runs/{run_id}", timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def shows_its_log(server: DashboardServer, run_id: str, line: str) -> bool:
    status, html = run_page(server, run_id)
    return status == 200 and "Corrupt database file" not in html and line in html


def test_an_index_damaged_where_duckdb_still_opens_it_is_noticed_rebuilt_and_said(tmp_path, page: Page):
    spool = tmp_path / "spool"
    write_log_spool(spool, 30, 2_000)
    write_event_spool(spool, 270)
    writer = SpoolWriter(spool, "logs")
    for path in spool.glob("logs/*/stdout.log"):  # the downloads need a run
        writer.status(path.parent.name, "Bench", "SUCCESS", agent="agent-1")
    with dashboard_server(tmp_path) as server:
        server.wait_for_output(CAUGHT_UP, timeout=120)
    # The attack of the issue: 256 KiB of random bytes inside the index, here over the log text.
    with duckdb.connect(str(tmp_path / "index.duckdb"), read_only=True) as con:
        block = con.execute("SELECT min(block_id) FROM pragma_storage_info('log_text') "
                            "WHERE column_name = 'text' AND block_id >= 0").fetchone()[0]
    with open(tmp_path / "index.duckdb", "r+b") as index_file:
        index_file.seek(3 * 4096 + block * 256 * 1024)
        index_file.write(random.Random(23).randbytes(256 * 1024))
    # A word of each run's first line (the page's JSON escapes the rest).
    expected = {path.parent.name: path.read_text().split(": ", 1)[0].split()[-1]
                for path in spool.glob("logs/*/stdout.log")}

    with dashboard_server(tmp_path) as server:
        server.wait_for_output(CAUGHT_UP, timeout=120)
        started, failed = time.monotonic(), []
        for run_id, line in sorted(expected.items()):  # a reader meets the damage; the ingestor notices it
            if not shows_its_log(server, run_id, line):
                failed.append(run_id)
            if "was found damaged" in "".join(server.output):
                break
        note = server.wait_for_output("was found damaged", timeout=60).strip()
        noticed = time.monotonic() - started
        rebuilt = server.wait_for_output("the rebuilt index caught up", timeout=120).strip()
        wait_until(lambda: all(shows_its_log(server, run_id, line) for run_id, line in expected.items()),
                 timeout=120, message="every run page showing its log from the rebuilt index")
        recovered = time.monotonic() - started
        page.goto(f"{server.url}/task-runs?since=7d")
        notice = page.locator(".notyf__message")
        expect(notice).to_contain_text("The index was rebuilt while the server ran", timeout=30_000)
        expect(page.get_by_text("of 300 runs")).to_be_visible(timeout=30_000)
        expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=30_000)
        print(f"\n256 KiB of random bytes over the index's log text: noticed {noticed:.1f} s after the first run "
              f"page asked, {len(failed)} of {len(expected)} run pages failed before the rebuild; "
              f"{rebuilt.split(': ', 1)[-1]!r}; every run page read again whole {recovered:.1f} s after the first; "
              f"the server said {note!r}; the page says {notice.inner_text()!r}")
    assert len(list(tmp_path.glob("index.duckdb.corrupt-*"))) == 1


def test_an_index_disk_full_for_long_recovers_within_seconds_of_space_coming_back(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.status("r-1", "Fetch_Orders", "RUNNING", agent="agent-1")
    writer.append_log("r-1", "stdout", "first line\n")
    with dashboard_server(tmp_path) as server:
        server.wait_for_output(CAUGHT_UP, timeout=120)
        wait_until(lambda: indexed_lines(server, "r-1") == 1, timeout=30, message="the first line")
        files = [tmp_path / "index.duckdb", tmp_path / "index.duckdb.wal"]
        limit = max(path.stat().st_size for path in files if path.exists()) + 64 * 1024
        resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        lines = 1
        while "ingest step failed" not in "".join(server.output):  # until a write fails
            assert lines < 2_000_000, "no write failed"
            writer.append_log("r-1", "stdout", "".join(f"line {lines + n}: the index disk is full\n"
                                                        for n in range(50_000)))
            lines += 50_000
            wait_until(lambda: "ingest step failed" in "".join(server.output) or indexed_lines(server, "r-1") == lines,
                     timeout=60, message="the chunk indexed or a failed step")
        full_since = time.monotonic()
        # The disk stays full while the retries back off: 2, 4, 8, 16 s took them to the 30 s
        # rescan period before, so space coming back then waited up to 30 s more.
        wait_until(lambda: "".join(server.output).count("ingest step failed") >= 6, timeout=120,
                 message="six failed steps")
        full_for = time.monotonic() - full_since
        resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        space_back = time.monotonic()
        wait_until(lambda: indexed_lines(server, "r-1") == lines, timeout=60, message="every line indexed")
        recovered = time.monotonic() - space_back
        print(f"\nthe index disk full for {full_for:.0f} s (6 failed steps): all {lines:,} lines indexed "
              f"{recovered:.1f} s after space came back")
    assert recovered < 10, "within seconds"
