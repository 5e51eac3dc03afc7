"""Faults (issue 8): the server killed while it ingests, a writer killed mid-line, a log rotated
while tailed, a full disk, a lost or corrupt index, a restart with browsers open.

Real `taskdash serve` subprocesses on real spool files and a real DuckDB file; a running
server holds its index, so the index is read after the server has stopped (or read-only
between kills), and live state is read through the server (log downloads, Chromium).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from builders import write_event_spool, write_log_spool
from helpers import read_events, wait_until
from playwright.sync_api import Page, expect
from serving import DashboardServer, free_port, indexed_lines

from dashboard import queries
from dashboard.index import Index
from dashboard.spool import SpoolWriter, format_timestamp

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
        # early: while the server starts, opens its index and replays its WAL; mid-commit: 0-50 ms
        # after this life began writing its index, inside its first commit (even a small one);
        # after-commit: 0.3-3 s after that, once a commit or more may have gone through; any: 0-8 s
        # after the start. Timed from what the server does, so a slow machine moves them along.
        moment = rng.choice(("early", "mid-commit", "mid-commit", "mid-commit", "after-commit", "any"))
        delay = {"early": (0.2, 2.0), "mid-commit": (0.0, 0.05), "after-commit": (0.3, 3.0), "any": (0.0, 8.0)}[moment]
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

        try:
            wait_until(moment_came, timeout=180, interval=0.005, message="the moment to kill")
            alive, at = server.process.poll() is None, time.monotonic() - started
        finally:
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
        statuses = index.query("SELECT run_id, status FROM runs")
        assert dict(zip(statuses["run_id"], statuses["status"])) == {
            event["run_id"]: event["status"] for event in read_events(spool)}, "each run ends as its last event says"
    finally:
        index.close()


# ---- helpers of the tests below ------------------------------------------------------------

def caught_up_counts(server: DashboardServer) -> str:
    """What the server says its index holds once it has caught up with the spool."""
    return server.wait_for_output(CAUGHT_UP, timeout=120).split(": ", 1)[1].strip()


def stop_and_open_index(server: DashboardServer, tmp_path, failed_steps_logged: bool = False) -> Index:
    """Stop a server that must still be running, unharmed, and open the index it leaves."""
    try:
        assert server.process.poll() is None, "the server ended by itself"
    finally:
        server.stop()
    output = "".join(server.output)
    if not failed_steps_logged:  # else each failed ingest step logs its traceback
        assert "Traceback" not in output, output
    return Index(tmp_path / "index.duckdb")


# ---- 2. a writer killed mid-line -----------------------------------------------------------

WRITER = """
import os, sys, time
events, log, event_bytes, log_bytes, wait = sys.argv[1:]
for path, data in ((events, event_bytes), (log, log_bytes)):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, data.encode())
    os.close(fd)
print("written", flush=True)
if wait == "wait":
    time.sleep(600)
"""


def run_writer(spool, event_text: str, log_text: str, wait: bool) -> subprocess.Popen:
    """A writer process appending raw text to an events file and a log; it stays alive when `wait`."""
    (spool / "logs" / "r-torn").mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(spool / "events" / "torn.jsonl"),
         str(spool / "logs" / "r-torn" / "stdout.log"), event_text, log_text, "wait" if wait else "exit"],
        stdout=subprocess.PIPE, text=True, start_new_session=True)


def test_a_writer_killed_mid_line_leaves_an_event_that_waits_and_a_log_line_read_again(tmp_path):
    running = json.dumps({"kind": "status", "run_id": "r-torn", "task": "Torn", "status": "RUNNING",
                          "ts": format_timestamp(), "agent": "agent-1"})
    success = json.dumps({"kind": "status", "run_id": "r-torn", "task": "Torn", "status": "SUCCESS",
                          "ts": format_timestamp(), "agent": "agent-1", "exit_code": 0})
    server = DashboardServer(tmp_path)
    writer = run_writer(tmp_path / "spool", running + "\n" + success[:40], "line 1\nline 2\nline 3 is cu", wait=True)
    try:
        assert writer.stdout.readline().strip() == "written"
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait(10)
        wait_until(lambda: indexed_lines(server, "r-torn") == 3, timeout=60,
                   message="the two whole log lines indexed, and the half line once its file is quiet")
    except BaseException:
        server.stop()
        raise
    finally:
        if writer.poll() is None:
            os.killpg(writer.pid, signal.SIGKILL)
            writer.wait(10)
        writer.stdout.close()
    index = stop_and_open_index(server, tmp_path)
    try:
        transitions = index.query("SELECT status FROM transitions WHERE run_id = 'r-torn'")["status"].tolist()
        offsets = index.load_offsets()
        print(f"\nwriter killed (exit {writer.returncode}) with half an event and half a log line written: "
              f"the index has transitions {transitions}, {index.counts()['log_lines']} log lines, "
              f"{index.counts()['ingest_errors']} ingest errors, offsets {offsets}")
        assert writer.returncode == -signal.SIGKILL
        assert transitions == ["RUNNING"] and index.counts()["ingest_errors"] == 0
        assert offsets["events/torn.jsonl"][0] == len(running) + 1, "the half event is left for later"
        assert offsets["logs/r-torn/stdout.log"] == (len("line 1\nline 2\n"), 2, False, len("line 3 is cu")), \
            "the half log line is a line (its file went quiet) that is read again when the file grows"
    finally:
        index.close()

    server = DashboardServer(tmp_path)  # restarted: the halves still wait
    finisher = run_writer(tmp_path / "spool", success[40:] + "\n", "t here\nline 4\n", wait=False)
    try:
        assert finisher.wait(30) == 0
        finisher.stdout.close()
        wait_until(lambda: indexed_lines(server, "r-torn") == 4, timeout=60,
                   message="the completed line and the next one indexed")
    except BaseException:
        server.stop()
        raise
    index = stop_and_open_index(server, tmp_path)
    try:
        run = queries.run(index, "r-torn")
        errors = index.counts()["ingest_errors"]
        print(f"once a second writer appended the rest and a newline: run {run['status']} (exit {run['exit_code']}), "
              f"log {queries.log_line_counts(index, 'r-torn')['stdout']} lines, {errors} ingest errors")
        assert (run["status"], run["exit_code"], errors) == ("SUCCESS", 0, 0)
        assert queries.log_page(index, "r-torn", "stdout", 1, 10)["text"].tolist() == \
            ["line 1", "line 2", "line 3 is cut here", "line 4"], "the half line read again whole, not doubled"
        assert index.query("SELECT count(*) AS n FROM transitions")["n"][0] == 2
    finally:
        index.close()


# ---- 3. a log truncated, then replaced, while the server tails it --------------------------

def test_a_log_truncated_or_replaced_while_tailed_is_an_ingest_error_and_its_new_lines_are_indexed(
        tmp_path, page: Page):
    log = tmp_path / "spool" / "logs" / "r-rot" / "stdout.log"
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.status("r-rot", "Rotating", "RUNNING", agent="agent-1")
    old = "".join(f"old line {n}\n" for n in range(1, 21))
    writer.append_log("r-rot", "stdout", old)
    server = DashboardServer(tmp_path)
    try:
        wait_until(lambda: indexed_lines(server, "r-rot") == 20, timeout=60, message="the log indexed")
        page.goto(f"{server.url}/task-runs/r-rot")
        indicator = page.locator(".td-conn")
        expect(indicator).to_have_attribute("data-state", "Live", timeout=30_000)

        os.truncate(log, 0)  # copytruncate-style rotation: same file, cut to nothing, written on
        writer.append_log("r-rot", "stdout", "after truncation 1\n")
        expected = old + "after truncation 1\n"
        wait_until(lambda: indexed_lines(server, "r-rot") == expected.count("\n"), timeout=60,
                   message="the new line indexed")
        expect(indicator.locator(".td-label")).to_have_text("Error · 1", timeout=30_000)
        print(f"\ntruncated to 0 and written on: the index reads it again from its start; the page says "
              f"{indicator.locator('.td-label').inner_text()!r} ({indicator.get_attribute('title')})")

        # rename-style rotation: a new, longer file takes the log's name
        replacement = tmp_path / "replacement.log"
        replacement.write_text("".join(f"replaced line {n}\n" for n in range(1, 41)), encoding="utf-8")
        expected += replacement.read_text(encoding="utf-8")
        os.replace(replacement, log)
        wait_until(lambda: indexed_lines(server, "r-rot") == expected.count("\n"), timeout=60,
                   message="the whole replacement indexed, from its first line")
        expect(indicator.locator(".td-label")).to_have_text("Error · 2", timeout=30_000)
        print(f"replaced by a longer file: all of it indexed after the old lines; "
              f"the page says {indicator.locator('.td-label').inner_text()!r}")
    except BaseException:
        server.stop()
        raise
    index = stop_and_open_index(server, tmp_path)
    try:
        reasons = queries.ingest_errors(index)["reason"].tolist()
        print(f"ingest errors: {reasons}")
        assert len(reasons) == 2
        assert any("shrank" in reason for reason in reasons) and any("replaced" in reason for reason in reasons)
    finally:
        index.close()


# ---- 4. a full disk: under the spool, then under the index ---------------------------------
# A small filesystem needs root to mount; a file size limit (RLIMIT_FSIZE) fails writes past
# it the same way anywhere: a write crossing it is cut short, the next one fails (EFBIG).

def adhoc(spool, *command: str, file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    """`taskdash adhoc -- command`, under a file size limit if given."""
    limit = ["prlimit", f"--fsize={file_size_limit}:"] if file_size_limit else []
    return subprocess.run([*limit, sys.executable, "-m", "dashboard.cli", "adhoc", "--spool", str(spool), "--",
                           *command], capture_output=True, text=True, timeout=120)


def adhoc_run_id(result: subprocess.CompletedProcess) -> str:
    return re.search(r"adhoc run (\S+)", result.stderr)[1]


def adhoc_events_file(spool, result: subprocess.CompletedProcess):
    """The events file the adhoc run wrote: the one that names its run."""
    run_id = adhoc_run_id(result)
    return next(path for path in (spool / "events").glob("adhoc-*.jsonl") if run_id.encode() in path.read_bytes())


def test_a_full_spool_disk_fails_the_writer_clearly_and_leaves_only_whole_lines(tmp_path):
    spool = tmp_path / "spool"
    server = DashboardServer(tmp_path)
    try:
        # An adhoc run writes four events (TRIGGER, STARTED, RUNNING, SUCCESS) to a new file of
        # its own: the next run's disk "fills" halfway through the fourth.
        sizes = [len(line) for line in adhoc_events_file(spool, adhoc(spool, "true")).read_bytes().splitlines(True)]
        full = adhoc(spool, "echo", "hello", file_size_limit=sum(sizes[:3]) + sizes[3] // 2)
        written = adhoc_events_file(spool, full).read_bytes()
        first = adhoc_run_id(full)
        wait_until(lambda: indexed_lines(server, first) == 1, timeout=60, message="what was written indexed")
        again = adhoc(spool, "echo", "space is back")  # a new writer, once there is room again
        second = adhoc_run_id(again)
        wait_until(lambda: indexed_lines(server, second) == 1, timeout=60,
                   message="the next writer's run indexed")
    except BaseException:
        server.stop()
        raise
    index = stop_and_open_index(server, tmp_path)
    try:
        statuses = {run_id: sorted(index.query("SELECT status FROM transitions WHERE run_id = ?", [run_id])["status"])
                    for run_id in (first, second)}
        now = {run_id: queries.run(index, run_id)["status"] for run_id in (first, second)}
        errors = index.counts()["ingest_errors"]
    finally:
        index.close()
    print(f"\nwriter whose disk fills at {sum(sizes[:3]) + sizes[3] // 2} bytes: exit {full.returncode}, it said "
          f"{full.stderr.strip().splitlines()[-1]!r}; its events file holds {len(written)} bytes in "
          f"{len(written.splitlines())} lines; the server indexed {statuses[first]} (now {now[first]}); the next "
          f"writer's run: {statuses[second]} (now {now[second]}); {errors} ingest errors")
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
    assert re.search(r"taskdash: cannot write to the spool: .*File too large", full.stderr), full.stderr
    assert written.endswith(b"\n"), "no half event left behind"
    assert statuses[first] == ["RUNNING", "STARTED", "TRIGGER"] and now == {first: "RUNNING", second: "SUCCESS"}
    assert errors == 0


def processes_with_argv(*argv: str) -> list[int]:
    wanted = "\0".join(argv).encode() + b"\0"
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes() == wanted:
                pids.append(int(cmdline.parent.name))
        except OSError:  # ended meanwhile
            pass
    return pids


def test_a_command_whose_running_status_cannot_be_written_is_stopped_not_left_running_unseen(tmp_path):
    spool = tmp_path / "spool"
    command = ("sleep", "171.25")  # an argv no other process has
    # Same task name (Adhoc_sleep), so the same event sizes: the disk "fills" halfway through RUNNING.
    sizes = [len(line) for line in adhoc_events_file(spool, adhoc(spool, "sleep", "0")).read_bytes().splitlines(True)]
    try:
        full = adhoc(spool, *command, file_size_limit=sum(sizes[:2]) + sizes[2] // 2)
        left_running = processes_with_argv(*command)
    finally:
        for pid in processes_with_argv(*command):
            os.kill(pid, signal.SIGKILL)
    written = adhoc_events_file(spool, full).read_text(encoding="utf-8")
    statuses = [json.loads(line)["status"] for line in written.splitlines()]
    said = full.stderr.strip().splitlines()
    print(f"\nwriter whose disk fills in the RUNNING event: exit {full.returncode}; it said {said}; "
          f"events written: {statuses}; `{' '.join(command)}` processes left running: {left_running}")
    assert left_running == [], "the command outlived the runner that could not record it"
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr
    assert re.search(r"its RUNNING status could not be recorded, so its command \(pid \d+\) was stopped with SIGTERM",
                     full.stderr), full.stderr
    assert re.search(r"taskdash: cannot write to the spool: .*File too large", said[-1]), said
    assert statuses == ["TRIGGER", "STARTED"] and written.endswith("\n")


CHUNK = 50_000  # log lines appended at a time: fewer than a DuckDB row group, so they go through the WAL
FAILED_STEP = "ingest step failed"


@pytest.mark.parametrize("backlog_runs", [0, 80], ids=["the-commit-fails", "the-checkpoint-fails"])
def test_a_full_index_disk_turns_the_indicator_to_error_and_it_recovers_when_space_is_back(
        tmp_path, page: Page, backlog_runs):
    # With a small index the first commit cannot write its WAL. With a 25 MB one the WAL passes
    # DuckDB's 16 MB checkpoint threshold first and the checkpoint fails: DuckDB then refuses the
    # database until it is opened again.
    write_log_spool(tmp_path / "spool", backlog_runs, 12_500)
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.status("r-1", "Fetch_Orders", "RUNNING", agent="agent-1")
    writer.append_log("r-1", "stdout", "first line\n")
    server = DashboardServer(tmp_path)
    try:
        caught_up_counts(server)
        page.goto(f"{server.url}/task-runs?search=Fetch")
        indicator = page.locator(".td-conn")
        expect(indicator).to_have_attribute("data-state", "Live", timeout=30_000)
        # The server may not grow its index files past their size plus 64 KiB: its disk is full.
        limit = max(path.stat().st_size for path in index_files(tmp_path) if path.exists()) + 64 * 1024
        resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        # Free blocks inside the index file take writes without growing it, but never more than
        # the whole file: past that much text a write must fail. Each line below is over 40 bytes.
        most_chunks = math.ceil(limit / (CHUNK * 40)) + 2
        lines, chunks = "first line\n", 0
        while FAILED_STEP not in "".join(server.output):
            assert chunks < most_chunks, "no write failed"
            chunk = "".join(f"chunk {chunks} line {n}: written while the index disk is full\n" for n in range(CHUNK))
            writer.append_log("r-1", "stdout", chunk)
            lines, chunks = lines + chunk, chunks + 1
            wait_until(lambda: FAILED_STEP in "".join(server.output) or indexed_lines(server, "r-1") == lines.count("\n"),
                       timeout=60, message="the chunk indexed or a failed ingest step")
        expect(indicator).to_have_attribute("data-state", "Error", timeout=30_000)
        failure = indicator.get_attribute("title")
        shown = indexed_lines(server, "r-1")
        expect(page.locator(".tabulator-row")).to_have_count(1)

        resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        space_back = time.monotonic()
        wait_until(lambda: indexed_lines(server, "r-1") == lines.count("\n"), timeout=20,  # not the next 30 s rescan
                   message="the lines indexed soon after there is room again")
        indexed = time.monotonic() - space_back
        expect(indicator).to_have_attribute("data-state", "Live", timeout=30_000)
        served = "nothing (the index could not be read)" if shown is None else f"{shown:,} lines"
        print(f"\nindex files limited to {limit:,} bytes: chunk {chunks} of {CHUNK:,} lines failed; the indicator "
              f"said {failure!r}; the run's log served {served}; {indexed:.1f} s after space came back all "
              f"{lines.count(chr(10)):,} lines were indexed, Live again {time.monotonic() - space_back:.1f} s after")
    except BaseException:
        print("".join(server.output))
        server.stop()
        raise
    assert "File too large" in failure, failure
    if not backlog_runs:  # the failed commit changed nothing: the server kept serving what it had
        assert shown == 1, "the one line it had before"
    index = stop_and_open_index(server, tmp_path, failed_steps_logged=True)
    try:
        assert index_checksums(index)["r-1"] == (lines.count("\n"), hashlib.sha256(lines[:-1].encode()).hexdigest())
        assert index.counts()["log_lines"] == backlog_runs * 12_500 + lines.count("\n")
    finally:
        index.close()


# ---- 5. the index deleted or corrupted while the server is down ----------------------------

def test_an_index_corrupted_or_deleted_while_the_server_is_down_is_rebuilt_and_the_server_says_so(
        tmp_path, page: Page):
    spool, index_path = tmp_path / "spool", tmp_path / "index.duckdb"
    lines, events = write_log_spool(spool, 6, 2_000), write_event_spool(spool, 300)
    server = DashboardServer(tmp_path)
    try:
        first = caught_up_counts(server)
    finally:
        server.stop()
    assert first == f"300 runs, {lines:,} log lines, 0 ingest errors"

    garbage = random.Random(SEED).randbytes(64 * 1024)
    with open(index_path, "r+b") as index_file:  # the header and the first blocks
        index_file.write(garbage)
    server = DashboardServer(tmp_path)
    try:
        note = server.wait_for_output("note: the index", timeout=60).strip()
        assert "could not be opened" in note and "moved to index.duckdb.corrupt-" in note
        rebuilt = caught_up_counts(server)
        page.goto(f"{server.url}/task-runs?since=7d")
        notice = page.locator(".notyf__message")
        expect(notice).to_contain_text("The index was rebuilt when the server started", timeout=30_000)
        expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live")
        expect(page.get_by_text("of 300 runs")).to_be_visible()
        print(f"\n64 KiB of garbage over the index: the server says {note!r}, then {rebuilt!r}; "
              f"the page says {notice.inner_text()!r}")
    except BaseException:
        print("".join(server.output))
        raise
    finally:
        server.stop()
    assert rebuilt == first
    kept = sorted(path.name for path in tmp_path.glob("index.duckdb.corrupt-*"))
    assert len(kept) == 1 and (tmp_path / kept[0]).read_bytes()[:len(garbage)] == garbage, kept

    for path in index_files(tmp_path):
        path.unlink(missing_ok=True)
    server = DashboardServer(tmp_path)
    try:
        note = server.wait_for_output("no index at", timeout=60).strip()
        rebuilt = caught_up_counts(server)
    finally:
        server.stop()
    print(f"index deleted: the server says {note!r}, then {rebuilt!r}")
    assert rebuilt == first and "Traceback" not in "".join(server.output)
    index = Index(index_path)
    try:
        assert index.query("SELECT count(*) AS n FROM transitions")["n"][0] == events
        assert index_checksums(index) == spool_checksums(spool)
    finally:
        index.close()


# ---- 6. a server restart with browsers open -------------------------------------------------

def runs_view(page: Page) -> dict:
    """What a /task-runs page shows: its URL, filters, page and the runs in its rows."""
    return {
        "url": page.url,
        "search": page.get_by_placeholder("Search task name…").input_value(),
        "chips": page.locator(".bk-btn.bk-active", has_text=re.compile(r"^(FAILED|SUCCESS|RUNNING)")).all_inner_texts(),
        "page": page.get_by_text(re.compile(r"^Page \d+ of \d+$")).inner_text(),
        "rows": [href.rsplit("/", 1)[-1] for href in page.locator(".tabulator-row a.td-eye").evaluate_all(
            "links => links.map(a => a.getAttribute('href'))")],
    }


def log_view(page: Page) -> dict:
    """What a run detail page shows of its log: URL, stream tab, lines shown and the marked line."""
    return {
        "url": page.url,
        "tab": page.locator(".bk-btn.bk-active", has_text=re.compile(r"^(stdout|stderr) · ")).inner_text(),
        "lines": page.get_by_text(re.compile(r"^Lines [\d,]+–[\d,]+ of [\d,]+$")).inner_text(),
        "marked": page.locator(".td-line.td-addressed").get_attribute("data-line"),
        "marked_text": page.locator(".td-line.td-addressed").inner_text(),
    }


def test_browsers_open_across_a_server_restart_come_back_to_the_same_view(tmp_path, page: Page, context):
    writer = SpoolWriter(tmp_path / "spool", "test")
    now = queries.utcnow()
    for i in range(80):  # 60 Fetch_Orders runs, half FAILED, of different durations; 20 others
        task, trigger = ("Fetch_Orders" if i < 60 else "Daily_Report"), now - dt.timedelta(minutes=5 * i + 1)
        writer.status(f"r-{i:03d}", task, "RUNNING", ts=trigger, trigger_time=trigger, agent="agent-1")
        writer.status(f"r-{i:03d}", task, "FAILED" if i % 2 else "SUCCESS", ts=trigger + dt.timedelta(seconds=i % 37),
                      trigger_time=trigger, agent="agent-1", exit_code=i % 2)
    writer.append_log("r-000", "stdout", "".join(f"step {n} of the run\n" for n in range(1, 1201)))
    port = str(free_port())
    server = DashboardServer(tmp_path, "--port", port)
    detail = context.new_page()
    try:
        caught_up_counts(server)
        page.goto(f"{server.url}/task-runs?search=fetch&status=FAILED,SUCCESS&sort=duration&descending=asc"
                  "&page=2&page_size=25")
        detail.goto(f"{server.url}/task-runs/r-000?line=777")
        for tab in (page, detail):
            expect(tab.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=30_000)
        expect(page.get_by_text("Page 2 of 3")).to_be_visible()
        expect(detail.locator(".td-line.td-addressed")).to_have_attribute("data-line", "777")
        before = runs_view(page), log_view(detail)
        for tab in (page, detail):
            tab.evaluate("window.__before_restart = true")

        server.stop()
        down = time.monotonic()
        for tab in (page, detail):
            expect(tab.locator(".td-conn")).to_have_attribute("data-state", re.compile("Connecting|Disconnected"),
                                                              timeout=30_000)
        server = DashboardServer(tmp_path, "--port", port)
        for tab in (page, detail):
            expect(tab.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=60_000)
        expect(page.get_by_text("Page 2 of 3")).to_be_visible()
        expect(detail.locator(".td-line.td-addressed")).to_have_attribute("data-line", "777")
        wait_until(lambda: runs_view(page)["rows"] == before[0]["rows"], timeout=30, message="the same rows")
        after = runs_view(page), log_view(detail)
        how = ["reconnected" if tab.evaluate("window.__before_restart === true") else "reloaded from its URL"
               for tab in (page, detail)]
        print(f"\nserver stopped and started again on port {port}; both pages Live again "
              f"{time.monotonic() - down:.1f} s after the stop (runs page {how[0]}, run page {how[1]})")
        print(f"runs page before and after: {before[0]}")
        print(f"run page before and after: {before[1]}")
        assert after == before
        assert sorted(before[0]["chips"]) == ["FAILED 30", "SUCCESS 30"] and before[0]["search"] == "fetch"
        assert len(before[0]["rows"]) == 25 and all(int(run[2:]) < 60 for run in before[0]["rows"])
    except BaseException:
        print("---- server output ----\n" + "".join(server.output))
        raise
    finally:
        server.stop()
