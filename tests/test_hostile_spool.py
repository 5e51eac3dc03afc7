"""Hostile spool content (issue 23, ingest side): floods of bad lines, files that cannot be read,
events dated far away. Real spool files in temporary folders, a real DuckDB index."""

from __future__ import annotations

import datetime as dt
import json
import linecache
import os
import pwd
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import pytest
from builders import write_event_spool, write_log_spool
from helpers import wait_until

from dashboard import bad_lines, event_lines, ingest, queries
from dashboard.bad_lines import ERROR_SAMPLES
from dashboard.index import Index
from dashboard.ingest import EVENT_LINES_MAX, Ingestor
from dashboard.spool import SpoolWriter, format_timestamp

T0 = dt.datetime(2026, 11, 28, 12, 0, 0)


def event(run_id: str, status: str = "RUNNING", ts: dt.datetime | None = None) -> bytes:
    ts = ts or T0
    return json.dumps({"kind": "status", "run_id": run_id, "task": "Generate_Invoice", "status": status,
                       "ts": format_timestamp(ts), "agent": "agent-1"}).encode() + b"\n"


def bad_lines_listed(index: Index) -> int:
    """How many bad lines the ingest errors account for: one a row, or N of a 'N more like this' row."""
    total = 0
    for reason in index.query("SELECT reason FROM ingest_errors")["reason"]:
        more = re.match(r"([\d,]+) more bad lines like this", reason)
        total += int(more[1].replace(",", "")) if more else 1
    return total


JUNK = [b"x", b"{", b"[1, 2]", b"\xff\xfe not utf-8", b'"text"', b"{}", b"12"]


def test_a_flood_of_bad_lines_costs_a_few_errors_and_keeps_every_good_line_between(tmp_path):
    spool = tmp_path / "spool"
    (spool / "events").mkdir(parents=True)
    good, bad = 0, 0
    with open(spool / "events" / "flood.jsonl", "wb") as out:
        for n in range(60_000):
            if n % 1_000 == 0:
                out.write(event(f"r-{n}"))
                good += 1
            else:
                out.write(JUNK[n % len(JUNK)] + b"\n")
                bad += 1
    index = Index(tmp_path / "index.duckdb")
    try:
        added = Ingestor(index, spool).catch_up()
        rows = index.query('SELECT "offset", reason, excerpt FROM ingest_errors ORDER BY "offset"')
        print(f"\n{bad:,} bad lines, {good} good: {len(rows)} ingest errors; the last: {rows['reason'].iloc[-1]!r}")
        assert index.counts()["runs"] == good, "every good line between the bad ones"
        assert len(rows) == added["errors"] == ERROR_SAMPLES + 1, "20 listed, the rest one count"
        assert bad_lines_listed(index) == bad
        assert all(len(excerpt) <= bad_lines.EXCERPT_BYTES for excerpt in rows["excerpt"])
        content = (spool / "events" / "flood.jsonl").read_bytes()
        assert all(content[offset - 1:offset] in (b"", b"\n") for offset in rows["offset"]), "offsets of lines"
    finally:
        index.close()


def test_one_file_of_junk_does_not_hold_up_the_runs_of_another(tmp_path, monkeypatch):
    spool = tmp_path / "spool"
    (spool / "events").mkdir(parents=True)
    (spool / "events" / "a-junk.jsonl").write_bytes(b"x\n" * (3 * EVENT_LINES_MAX))
    (spool / "events" / "b-good.jsonl").write_bytes(event("r-good"))
    index = Index(tmp_path / "index.duckdb")
    commits = []
    apply = index.apply

    def recorded(batch):
        touched = apply(batch)
        commits.append((dict(batch.offsets), set(touched or ())))
        return touched
    monkeypatch.setattr(index, "apply", recorded)
    try:
        Ingestor(index, spool).catch_up()
        junk_size = (spool / "events" / "a-junk.jsonl").stat().st_size
        first_with_good = next(n for n, (_, runs) in enumerate(commits) if "r-good" in runs)
        junk_read = commits[first_with_good][0].get("events/a-junk.jsonl", (0,))[0]
        print(f"\n{len(commits)} commits; r-good went in commit {first_with_good + 1}, with "
              f"{junk_read:,} of the junk file's {junk_size:,} bytes read")
        assert junk_read < junk_size, "the good file waited for the whole junk file"
        assert bad_lines_listed(index) == 3 * EVENT_LINES_MAX
    finally:
        index.close()


# ---- files that cannot be read ----------------------------------------------------------------

# Runs as another user when the tests run as root (root reads a mode-000 file): the ingest of one
# spool, twice, with the permissions fixed in between; what it indexed and recorded, as JSON.
UNREADABLE_INGEST = """
import json, os, sys
from dashboard.index import Index
from dashboard.ingest import Ingestor
spool, user = sys.argv[1], int(sys.argv[2])
if user >= 0:  # as that user from here on (its imports done: the interpreter may be in root's home)
    os.setgroups([])
    os.setgid(user)
    os.setuid(user)
index = Index(None)
ingestor = Ingestor(index, spool)
steps = [ingestor.catch_up()]
print(json.dumps({"fix": True}), flush=True)
sys.stdin.readline()  # the permissions are fixed
steps.append(ingestor.catch_up())
steps.append(ingestor.catch_up())
print(json.dumps({
    "steps": steps,
    "errors": index.query("SELECT file, reason FROM ingest_errors ORDER BY file").values.tolist(),
    "lines": dict(index.query("SELECT run_id, count(*) FROM log_lines GROUP BY run_id").values.tolist()),
    "runs": sorted(index.query("SELECT run_id FROM runs")["run_id"]),
}), flush=True)
"""

SPECIAL = ["r-mode0", "r-dir0", "r-fifo", "r-sock", "r-loop", "r-hard", "r-dev", "r-gone"]


def test_unreadable_vanished_and_special_files_are_one_error_each_and_the_rest_flows():
    # A folder any user can reach (pytest's tmp_path is root's own when run as root), with a
    # path short enough for a socket.
    base = Path(tempfile.mkdtemp(prefix="td-"))
    base.chmod(0o755)
    try:
        special_files_ingested(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def special_files_ingested(base: Path) -> None:
    spool = base / "spool"
    writer = SpoolWriter(spool, "test")
    for run_id in ["r-ok", *SPECIAL]:
        writer.status(run_id, "Task", "RUNNING", ts=T0)
        writer.append_log(run_id, "stdout", f"line of {run_id}\n")
    logs = spool / "logs"
    (logs / "r-fifo" / "stdout.log").unlink()
    os.mkfifo(logs / "r-fifo" / "stdout.log")
    (logs / "r-sock" / "stdout.log").unlink()
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(str(logs / "r-sock" / "stdout.log"))
    (logs / "r-loop" / "stdout.log").unlink()
    (logs / "r-loop" / "stdout.log").symlink_to("stdout.log")
    (base / "secret.txt").write_text("not for the dashboard\n")
    (logs / "r-hard" / "stdout.log").unlink()
    os.link(base / "secret.txt", logs / "r-hard" / "stdout.log")
    (logs / "r-dev" / "stdout.log").unlink()
    try:
        os.mknod(logs / "r-dev" / "stdout.log", 0o600 | 0o020000, os.makedev(1, 3))  # like /dev/null
    except PermissionError:  # not root: a FIFO stands in
        os.mkfifo(logs / "r-dev" / "stdout.log")
    (logs / "r-gone" / "stdout.log").unlink()  # vanished
    user = -1
    if os.geteuid() == 0:
        user = pwd.getpwnam("nobody").pw_uid
        for path in [base, *base.rglob("*")]:
            os.lchown(path, user, user)
    (logs / "r-mode0" / "stdout.log").chmod(0)
    (logs / "r-dir0").chmod(0)
    try:
        with subprocess.Popen([sys.executable, "-c", UNREADABLE_INGEST, str(spool), str(user)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as process:
            fix = process.stdout.readline()
            assert fix and json.loads(fix) == {"fix": True}, "the ingest as another user"
            (logs / "r-mode0" / "stdout.log").chmod(0o644)
            (logs / "r-dir0").chmod(0o755)
            output = process.communicate("\n", timeout=60)[0]
        result = json.loads(output)
    finally:
        listening.close()
    print(f"\n{result['steps']}")
    for file, reason in result["errors"]:
        print(f"{file}: {reason}")
    reasons = dict(result["errors"])
    assert len(result["errors"]) == len(reasons) == 7, "one error naming each, said once"
    assert "Permission denied" in reasons["logs/r-mode0/stdout.log"]
    assert "Permission denied" in reasons["logs/r-dir0/"]
    for run_id in ("r-fifo", "r-sock", "r-dev"):
        assert "not a regular file" in reasons[f"logs/{run_id}/stdout.log"]
    assert "symbolic link" in reasons["logs/r-loop/stdout.log"]
    assert "hard link" in reasons["logs/r-hard/stdout.log"]
    assert result["runs"] == sorted(["r-ok", *SPECIAL]), "every run's events"
    assert result["lines"] == {"r-ok": 1, "r-mode0": 1, "r-dir0": 1}, "once readable, read; the others never"
    assert result["steps"][1]["errors"] == result["steps"][2]["errors"] == 0


# ---- an index damaged where DuckDB can still open it -------------------------------------------

HEADERS, BLOCK = 3 * 4096, 256 * 1024  # DuckDB's file: three 4 KiB headers, then 256 KiB blocks


def damage_a_block(path: Path, table: str, column: str) -> int:
    """Overwrite part of the first block holding `table`.`column` with random bytes; return its offset."""
    with duckdb.connect(str(path), read_only=True) as con:
        block = con.execute("SELECT min(block_id) FROM pragma_storage_info(?) WHERE column_name = ? "
                            "AND block_id >= 0", [table, column]).fetchone()[0]
    offset = HEADERS + block * BLOCK + 4096
    with open(path, "r+b") as index_file:
        index_file.seek(offset)
        index_file.write(random.Random(23).randbytes(64 * 1024))
    return offset


def indexed_spool(tmp_path: Path) -> tuple[Path, dict]:
    spool = tmp_path / "spool"
    write_log_spool(spool, 6, 2_000)
    write_event_spool(spool, 300)
    index = Index(tmp_path / "index.duckdb")
    Ingestor(index, spool).catch_up()
    counts = index.counts()
    index.close()
    return spool, counts


def test_a_damaged_block_met_by_a_query_has_the_index_moved_aside_and_rebuilt(tmp_path):
    spool, counts = indexed_spool(tmp_path)
    damage_a_block(tmp_path / "index.duckdb", "log_text", "text")
    index = Index(tmp_path / "index.duckdb")  # it opens: the damage is in a table's block
    ingestor = Ingestor(index, spool, rescan_seconds=3600, check_seconds=3600)
    try:
        assert index.rebuilt_reason is None
        with pytest.raises(duckdb.Error, match="Corrupt database file"):
            index.query("SELECT max(text) FROM log_lines")
        assert "Corrupt database file" in index.corruption
        ingestor.start()
        wait_until(lambda: index.rebuilt_reason and ingestor.health.failure is None
                   and index.counts() == counts, timeout=60, message="the index rebuilt from the spool")
        print(f"\n{index.rebuilt_reason}")
        assert index.query("SELECT count(*) AS n FROM log_lines WHERE text IS NOT NULL")["n"][0] == 12_000
        assert len(list(tmp_path.glob("index.duckdb.corrupt-*"))) == 1
    finally:
        ingestor.stop()
        index.close()


def test_a_query_that_met_the_damage_before_the_rebuild_does_not_start_another(tmp_path):
    spool, counts = indexed_spool(tmp_path)
    damage_a_block(tmp_path / "index.duckdb", "log_text", "text")
    index = Index(tmp_path / "index.duckdb")
    try:
        slow_reader = index.cursor()  # a page's query still running on the damaged file
        with pytest.raises(duckdb.Error, match="Corrupt database file") as damage:
            with index.cursor() as cur:
                cur.execute("SELECT max(text) FROM log_lines").fetchall()
        index.rebuild()
        assert index.corruption is None
        slow_reader.__exit__(type(damage.value), damage.value, None)  # it fails after the rebuild
        assert index.corruption is None, "a second rebuild would cut off the pages reading the new file"
        index.noticed_corruption(damage.value, index.generation)  # the new file's own damage is news
        assert index.corruption is not None
    finally:
        index.close()


def test_a_query_asked_while_the_rebuild_has_the_old_file_closed_waits_for_the_new_one(tmp_path, monkeypatch):
    """A run's page built in that moment failed with "Connection already closed" (seen in the
    Chromium test of a damaged index): its query now runs on the new index."""
    spool, counts = indexed_spool(tmp_path)
    index = Index(tmp_path / "index.duckdb")
    closed, go, answers = threading.Event(), threading.Event(), []
    move_aside = Index._move_aside

    def held_move_aside(self):  # the rebuild, with the old connection closed and the new one not open
        closed.set()
        assert go.wait(60)
        return move_aside(self)

    def reader() -> None:
        try:
            answers.append(index.query("SELECT count(*) AS n FROM runs")["n"][0])
        except Exception as exc:  # noqa: BLE001
            answers.append(exc)

    monkeypatch.setattr(Index, "_move_aside", held_move_aside)
    rebuild = threading.Thread(target=index.rebuild)
    rebuild.start()
    try:
        assert closed.wait(60)
        reading = threading.Thread(target=reader)
        reading.start()

        def waiting_for_the_rebuild() -> bool:  # the reader waits on the index's write lock
            frame = sys._current_frames().get(reading.ident)
            while frame is not None and frame.f_code.co_name != "cursor":
                frame = frame.f_back
            return bool(answers) or frame is not None and "_write_lock" in linecache.getline(
                frame.f_code.co_filename, frame.f_lineno)

        wait_until(waiting_for_the_rebuild, timeout=30, message="the reader to meet the closed index")
        go.set()
        reading.join(60)
        rebuild.join(60)
        assert answers == [0], "the new index is empty until the ingestor reads the spool into it"
        assert index.rebuilt_reason and len(list(tmp_path.glob("index.duckdb.corrupt-*"))) == 1
    finally:
        go.set()
        rebuild.join(60)
        index.close()


def test_a_damaged_block_no_page_reads_is_found_by_the_periodic_check(tmp_path):
    spool, counts = indexed_spool(tmp_path)
    damage_a_block(tmp_path / "index.duckdb", "transitions", "message")
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, spool, rescan_seconds=3600, check_seconds=0.5)
    try:
        ingestor.start()
        wait_until(lambda: index.rebuilt_reason and ingestor.health.failure is None
                   and index.counts() == counts, timeout=60, message="the index checked and rebuilt")
        print(f"\n{index.rebuilt_reason}")
        assert "damaged" in index.rebuilt_reason and len(list(tmp_path.glob("index.duckdb.corrupt-*"))) == 1
    finally:
        ingestor.stop()
        index.close()


# ---- times far from now ---------------------------------------------------------------------------

def test_events_dated_far_ahead_or_long_ago_are_ingest_errors_in_either_parser(tmp_path, monkeypatch):
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    far = {"r-9999": dt.datetime(9999, 12, 31, 23, 59), "r-tomorrow-plus": now + dt.timedelta(days=2),
           "r-year-1": dt.datetime(1, 1, 1), "r-1990": dt.datetime(1990, 1, 1)}
    near = {"r-now": now, "r-skewed": now + dt.timedelta(hours=2), "r-last-year": now - dt.timedelta(days=365)}
    fillers = event_lines.MIN_LINES  # enough lines for the bulk parser
    for min_lines in (event_lines.MIN_LINES, 10**9):  # bulk, then Python alone
        monkeypatch.setattr(event_lines, "MIN_LINES", min_lines)
        spool = tmp_path / f"spool-{min_lines}"
        (spool / "events").mkdir(parents=True)
        with open(spool / "events" / "times.jsonl", "wb") as out:
            for n in range(fillers):
                out.write(event(f"r-filler-{n}", ts=now))
            for run_id, moment in {**far, **near}.items():
                out.write(event(run_id, ts=moment))
            out.write(event("r-far-trigger", ts=now)[:-2] + b', "trigger_time": "9999-01-01T00:00:00Z"}\n')
        index = Index(tmp_path / f"index-{min_lines}.duckdb")
        try:
            Ingestor(index, spool).catch_up()
            runs = set(index.query("SELECT run_id FROM runs")["run_id"])
            errors = index.query("SELECT reason FROM ingest_errors")["reason"].tolist()
        finally:
            index.close()
        print(f"\nMIN_LINES={min_lines}: {errors}")
        assert set(near) <= runs and not (set(far) | {"r-far-trigger"}) & runs
        assert len(errors) == len(far) + 1 and all("the event is skipped" in reason for reason in errors)
        assert sum("over a day ahead" in reason for reason in errors) == 3


def test_the_first_of_many_events_dated_far_ahead_are_the_ones_listed_whatever_order_duckdb_parses_them(
        tmp_path, monkeypatch):
    # Small scan batches spread one chunk's lines over DuckDB's threads, which return them out of order.
    monkeypatch.setattr(event_lines, "SCAN_BATCH_LINES", 16)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    far_lines = set(range(7, 3000, 97))  # 31 lines, more than are listed one by one
    (tmp_path / "spool" / "events").mkdir(parents=True)
    offsets, offset = [], 0
    with open(tmp_path / "spool" / "events" / "far.jsonl", "wb") as out:
        for n in range(3000):
            line = event(f"r-{n}", ts=dt.datetime(9999, 1, 1) if n in far_lines else now)
            if n in far_lines:
                offsets.append(offset)
            offset += out.write(line)
    index = Index(tmp_path / "index.duckdb")
    try:
        Ingestor(index, tmp_path / "spool").catch_up()
        errors = index.query('SELECT "offset", reason FROM ingest_errors ORDER BY "offset"')
    finally:
        index.close()
    listed = errors[~errors["reason"].str.contains("more bad lines")]
    assert listed["offset"].tolist() == offsets[:bad_lines.ERROR_SAMPLES]
    [summary] = errors[errors["reason"].str.contains("more bad lines")]["reason"]
    assert summary.startswith(f"{len(offsets) - bad_lines.ERROR_SAMPLES} more bad lines like this, "
                              f"from byte {offsets[bad_lines.ERROR_SAMPLES]:,} to {offsets[-1]:,}")


@pytest.mark.parametrize("min_lines", [1, 10**9], ids=["bulk", "python"])
def test_a_run_ended_before_it_started_shows_no_negative_duration_and_is_an_ingest_error(
        tmp_path, monkeypatch, min_lines):
    monkeypatch.setattr(event_lines, "MIN_LINES", min_lines)
    spool = tmp_path / "spool"
    (spool / "events").mkdir(parents=True)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    started = event("r-skewed", "RUNNING", now - dt.timedelta(minutes=1))
    ended = event("r-skewed", "FAILED", now - dt.timedelta(minutes=5))  # the terminal status wins, dated earlier
    (spool / "events" / "skewed.jsonl").write_bytes(
        started + ended + event("r-ahead", "RUNNING", now + dt.timedelta(hours=2)))  # started "in two hours"
    index = Index(tmp_path / "index.duckdb")
    try:
        ingestor = Ingestor(index, spool)
        ingestor.catch_up()
        with open(spool / "events" / "skewed.jsonl", "ab") as out:  # read again: said once
            out.write(ended + event("r-skewed", "RUNNING", now))  # moves neither start nor end
        ingestor.catch_up()
        page = queries.runs_page(index, sort="duration")
        durations = dict(zip(page["run_id"], page["duration"]))
        errors = index.query('SELECT file, "offset", reason FROM ingest_errors')
    finally:
        index.close()
    print(f"\n{durations}\n{errors.to_dict('records')}")
    assert durations == {"r-skewed": 0, "r-ahead": 0}
    assert len(errors) == 1
    assert (errors["file"][0], errors["offset"][0]) == ("events/skewed.jsonl", len(started))
    assert "r-skewed ends at" in errors["reason"][0] and "before it started" in errors["reason"][0]


# ---- the periodic rescan of a big spool ------------------------------------------------------------

def test_a_rescan_opens_only_the_files_that_changed_and_still_finds_every_change(tmp_path, monkeypatch):
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "test")
    for n in range(200):
        writer.status(f"r-{n}", "Task", "SUCCESS", ts=T0)
        writer.append_log(f"r-{n}", "stdout", f"line 1 of r-{n}\n")
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, spool)
    opened = []
    real_open = ingest.SpoolFolders.open

    def counted(folders, rel):
        opened.append(rel)
        return real_open(folders, rel)
    monkeypatch.setattr(ingest.SpoolFolders, "open", counted)
    try:
        ingestor.catch_up()
        first = len(opened)
        opened.clear()
        ingestor.catch_up()  # nothing changed
        unchanged = len(opened)
        writer.append_log("r-7", "stdout", "line 2 of r-7\n")
        writer.append_log("r-new", "stdout", "line 1 of r-new\n")
        rotated = spool / "logs" / "r-9" / "stdout.log"  # replaced by a new file of the same size
        replacement = rotated.with_name("new.tmp")
        replacement.write_text("line 1 of r-X\n")
        replacement.replace(rotated)
        opened.clear()
        ingestor.catch_up()
        print(f"\nfirst scan opened {first} files, a rescan of the unchanged spool {unchanged}, "
              f"after three changes {sorted(opened)}")
        assert first == 201 and unchanged == 0
        assert sorted(opened) == ["logs/r-7/stdout.log", "logs/r-9/stdout.log", "logs/r-new/stdout.log"]
        lines = index.query("SELECT run_id, text FROM log_lines WHERE run_id IN ('r-7', 'r-9', 'r-new') "
                            "ORDER BY run_id, line_no").values.tolist()
        assert lines == [["r-7", "line 1 of r-7"], ["r-7", "line 2 of r-7"], ["r-9", "line 1 of r-9"],
                         ["r-9", "line 1 of r-X"], ["r-new", "line 1 of r-new"]]
    finally:
        index.close()


def test_a_followed_spool_watches_its_open_run_folders_alone(tmp_path, monkeypatch):
    """Watching the whole spool took an inotify watch a folder: past the system's limit (8,192 on
    many systems) the watcher failed and a full rescan ran every 2 s (200,000 run folders: 64 % of
    a core, a line 4.3 s late). It watches events/, logs/ and the folders of runs under way or made
    lately; a finished run's folder leaves at the next full scan, and its late lines come with it."""
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "test")
    for n in range(50):
        writer.status(f"old-{n:02d}", "Task", "SUCCESS", ts=T0)
        writer.append_log(f"old-{n:02d}", "stdout", "done\n")
    writer.status("running", "Task", "RUNNING", ts=T0)
    writer.append_log("running", "stdout", "started\n")
    an_hour_ago = time.time() - 3600
    for folder in (spool / "logs").iterdir():
        os.utime(folder, (an_hour_ago, an_hour_ago))
    watched = []
    watch = ingest.watchfiles.watch
    monkeypatch.setattr(ingest.watchfiles, "watch", lambda *paths, **options: watched.append(
        (paths, options.get("recursive", True))) or watch(*paths, **options))
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, spool, rescan_seconds=1)
    root, logs = spool.resolve(), spool.resolve() / "logs"

    def lines(run_id: str) -> int:
        return queries.log_line_counts(index, run_id)["stdout"]

    try:
        ingestor.start()
        assert ingestor.caught_up.wait(30)
        wait_until(lambda: watched[-1] == ((str(root / "events"), str(logs), str(logs / "running")), False),
                   timeout=20, message="the running run's folder watched, not the 50 finished ones")
        writer.append_log("running", "stdout", "more\n")
        writer.append_log("new-run", "stdout", "first\n")  # a folder made now: watched from now on
        wait_until(lambda: lines("running") == 2 and lines("new-run") == 1, timeout=20, message="both lines")
        wait_until(lambda: str(logs / "new-run") in watched[-1][0], timeout=20, message="the new folder watched")
        writer.append_log("old-07", "stdout", "a late line\n")  # not watched: the next full scan reads it
        writer.status("running", "Task", "SUCCESS", ts=T0 + dt.timedelta(seconds=5))
        os.utime(logs / "running", (an_hour_ago, an_hour_ago))
        wait_until(lambda: lines("old-07") == 2, timeout=20, message="the finished run's late line")
        wait_until(lambda: str(logs / "running") not in watched[-1][0], timeout=20,
                   message="the ended run's folder no longer watched")
        assert ingestor.health.failure is None
    finally:
        ingestor.stop()
        index.close()


def test_a_rescan_looks_at_the_open_run_folders_and_a_share_of_the_closed_ones_in_turn(tmp_path, monkeypatch):
    """Every rescan looked at every run folder, so its cost grew with the history (200,000 folders:
    1.85 s of a core every 30 s, live lines held up meanwhile). It looks at the folders open (runs
    under way or ended lately) and RESCAN_FOLDERS of the others, in turn: a late line in a folder
    closed long ago comes within ceil(folders / RESCAN_FOLDERS) rescans."""
    monkeypatch.setattr(ingest, "RESCAN_FOLDERS", 10)
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "test")
    closed = [f"old-{n:02d}" for n in range(45)]
    for run_id in closed:
        writer.status(run_id, "Task", "SUCCESS", ts=T0)
        writer.append_log(run_id, "stdout", "done\n")
    writer.status("running", "Task", "RUNNING", ts=T0)
    writer.status("ended", "Task", "SUCCESS", ts=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    for run_id in ("running", "ended"):
        writer.append_log(run_id, "stdout", "first\n")
    an_hour_ago = time.time() - 3600
    for folder in (spool / "logs").iterdir():
        os.utime(folder, (an_hour_ago, an_hour_ago))
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, spool, rescan_seconds=0.3)
    looked = []  # each scan's run folders (None: all of them)
    spool_files = ingestor.spool_files
    monkeypatch.setattr(ingestor, "spool_files",
                        lambda looked_at=None: looked.append(looked_at) or spool_files(looked_at))

    def lines(run_id: str) -> int:
        return queries.log_line_counts(index, run_id)["stdout"]

    try:
        ingestor.start()
        assert ingestor.caught_up.wait(30)
        wait_until(lambda: len(looked) >= 2, timeout=20, message="a rescan after the first scan")
        rescans_before = len(looked)
        for run_id in [*closed, "ended"]:  # appended: their folders' times stay an hour old
            writer.append_log(run_id, "stdout", "a late line\n")
        wait_until(lambda: lines("ended") == 2 and all(lines(run_id) == 2 for run_id in closed), timeout=30,
                   message="the late lines")
        rescans = looked[rescans_before:]
        wait_until(lambda: len(looked) >= 8, timeout=20, message="seven rescans")
        print(f"\nthe late lines came within {len(rescans)} rescans; each looked at "
              f"{sorted({len(folders) for folders in looked[1:]})} folders")
        assert looked[0] is None  # the first scan reads every folder
        assert all({"running", "ended"} <= folders and len(folders - {"running", "ended"}) <= 10
                   for folders in looked[1:])
        assert len(rescans) <= 6  # ceil(47 / 10) turns, and the one under way when the lines came
        assert all(set().union(*looked[first:first + 5]) >= set(closed) for first in range(1, len(looked) - 4))
        assert ingestor.health.failure is None
    finally:
        ingestor.stop()
        index.close()


def test_a_run_folder_made_between_two_watchers_is_read_at_once(tmp_path, monkeypatch):
    """The watcher starts again when what it watches changes; a run folder made after the old one's
    last yield and before the new one watched was told of by neither, and its first line waited
    for the next rescan (30 s: a follow of 200,000 run folders met it at its first probe)."""
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "test")
    writer.status("running", "Task", "RUNNING", ts=T0)
    writer.append_log("running", "stdout", "first\n")
    logs = spool / "logs"
    an_hour_ago = time.time() - 3600
    os.utime(logs / "running", (an_hour_ago, an_hour_ago))
    starts = []
    watch = ingest.watchfiles.watch

    def watch_after_a_new_folder(*paths, **options):
        starts.append(paths)
        if len(starts) == 2:  # the first watcher stopped (the running run's folder to watch too)
            writer.append_log("between", "stdout", "made between two watchers\n")
            later = logs.stat().st_mtime_ns + 10**9  # (a clock tick of its own, whatever the file system's)
            os.utime(logs, ns=(later, later))
        return watch(*paths, **options)

    monkeypatch.setattr(ingest.watchfiles, "watch", watch_after_a_new_folder)
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, spool, rescan_seconds=3600)  # no rescan to read it
    try:
        ingestor.start()
        assert ingestor.caught_up.wait(30)
        wait_until(lambda: queries.log_line_counts(index, "between").get("stdout") == 1, timeout=20,
                   message="the line of the run folder made between two watchers")
        assert str(logs.resolve() / "running") in starts[1]
        assert ingestor.health.failure is None
    finally:
        ingestor.stop()
        index.close()


def test_a_followed_spool_indexes_new_run_folders_and_a_flood_without_waiting_for_the_rescan(tmp_path):
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "test")
    writer.status("r-before", "Task", "RUNNING", ts=T0)
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, spool, rescan_seconds=3600)  # only pushes: no rescan to catch a miss
    try:
        ingestor.start()
        assert ingestor.caught_up.wait(30)
        (spool / "events" / "junk.jsonl").write_bytes(b"x\n" * (8 * 1024 * 1024))  # 16 MB of junk being read
        for n in range(100):  # a run folder and its first line at once: the watcher sees the folder late
            writer.append_log(f"r-{n}", "stdout", f"line of r-{n}\n")
        wait_until(lambda: index.query("SELECT count(*) AS n FROM log_lines")["n"][0] == 100, timeout=20,
                   message="every new run's line, pushed")
        wait_until(lambda: bad_lines_listed(index) == 8 * 1024 * 1024, timeout=20, message="the junk, read on")
    finally:
        ingestor.stop()
        index.close()
