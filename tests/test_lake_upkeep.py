"""Upkeep of a lake (issue 18, item 4): compaction keeps the data files per table few under
continuous commits, one process at a time (a PostgreSQL advisory lock that a `kill -9` releases),
without losing or doubling rows or breaking a server's feed; retention drops old runs, in a lake
and in a local index."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from builders import write_host_spool
from helpers import wait_until
from test_lake import index_state, local_state

from dashboard import queries
from dashboard.changes import Change
from dashboard.config import Config, ConfigError, load_config
from dashboard.hub import Hub
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.lake import is_conflict
from dashboard.lake_feed import LakeFeed
from dashboard.lake_upkeep import LakeUpkeep
from dashboard.spool import SpoolWriter

#: Runs this old are past the tests' retention of 30 days.
OLD = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=40)


def write_old_runs(spool: Path, count: int) -> set[str]:
    """Runs `old-<n>` whose every event is 40 days old, with a few log lines each."""
    with SpoolWriter(spool, "old") as writer:
        for n in range(count):
            run_id = f"old-{n:04d}"
            for i, status in enumerate(("TRIGGER", "STARTED", "SUCCESS")):
                writer.status(run_id, "old_task", status, ts=OLD + dt.timedelta(seconds=i, microseconds=n),
                              exit_code=0 if status == "SUCCESS" else None)
            writer.append_log(run_id, "stdout", "".join(f"old run {n} line {k}\n" for k in range(5)))
    return {f"old-{n:04d}" for n in range(count)}


def without(state: dict, run_ids: set[str]) -> dict:
    return {key: [row for row in rows if row["run_id"] not in run_ids] for key, rows in state.items()}


class RecordedUpkeep(LakeUpkeep):
    """An upkeep that notes when each of its rounds held the lock (in `held`, shared by several)."""

    def __init__(self, *args, held: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.held = held

    def _compact(self, done):
        started = time.monotonic()
        super()._compact(done)
        self.held.append((started, time.monotonic()))


#: Commits of the load: more than the bound, so that without compaction a table would hold more files.
COMMITS = 120
#: Rows of each commit: over DuckLake's inlining limit (10), so each commit writes a Parquet file.
ROWS = 20


@pytest.mark.lake
@pytest.mark.timeout(300)
def test_compaction_keeps_files_few_under_continuous_commits_one_process_at_a_time_and_loses_nothing(
        lake, tmp_path, caplog):
    spool = tmp_path / "spool"
    old = write_old_runs(spool, 4)
    write_host_spool(spool, "a", range(6), lines=30)
    writer, reader = Index(None, lake=lake, host="a"), Index(None, lake=lake)
    Ingestor(writer, spool).catch_up()
    feed = LakeFeed(reader, None, poll_seconds=0.05)
    held: list[tuple[float, float]] = []
    # two compacting "processes" (each its own catalog sessions), on periods that drift apart;
    # snapshots expire at once: the feed must live with it (the retention is applied at the end)
    upkeeps = [RecordedUpkeep(lake, period, keep_snapshots_seconds=0, held=held)
               for period in (0.5, 0.61)]
    caplog.set_level(logging.INFO, logger="dashboard")
    feed.start()
    for upkeep in upkeeps:
        upkeep.start()
    most_files, began = 0, time.monotonic()
    try:
        with writer.cursor() as cur:
            for n in range(COMMITS):  # each its own commit, as a busy host's steps are
                # at most 10 a second (a ship makes at most 4): the bound holds for what upkeep can follow
                time.sleep(max(0.0, began + n / 10 - time.monotonic()))
                for attempt in range(30):  # a commit that loses a race with the upkeep is tried again, as ship's are
                    try:
                        cur.execute("INSERT INTO log_text SELECT ?, range, 'load ' || range, NULL FROM range(?)",
                                    [-1 - n, ROWS])
                        break
                    except duckdb.Error as exc:
                        if not is_conflict(exc) or attempt == 29:
                            raise
                        time.sleep(0.05)
                most_files = max(most_files, cur.execute(  # the table the load writes to
                    "SELECT count(*) FROM ducklake_list_files('lake', 'log_text')").fetchone()[0])
        load_seconds = time.monotonic() - began
        wait_until(lambda: all(upkeep.rounds >= 2 for upkeep in upkeeps) or sum(u.rounds for u in upkeeps) >= 6,
                   timeout=60, message="upkeep rounds")
    finally:
        for upkeep in upkeeps:
            upkeep.stop()
        feed.stop()
    try:
        print(f"{COMMITS} commits in {load_seconds:.1f} s; at most {most_files} files in a table; "
              f"rounds {[(u.rounds, u.skipped) for u in upkeeps]}")
        assert most_files < 100
        assert all(upkeep.failure is None for upkeep in upkeeps), [upkeep.failure for upkeep in upkeeps]
        assert sum(upkeep.rounds for upkeep in upkeeps) >= 3 and sum(upkeep.skipped for upkeep in upkeeps)
        held.sort()
        assert all(later[0] >= earlier[1] for earlier, later in zip(held, held[1:])), "two rounds at once"
        last = LakeUpkeep(lake, retention_days=30, keep_snapshots_seconds=0)
        done = last.run_once()
        last.close()
        assert done.dropped_runs == len(old)
        print(f"a last round took {done.seconds:.2f} s: {done}")
        assert max(done.files.values()) <= 2, done.files
        # every row written is there once
        load = reader.query("SELECT count(*) AS n, count(DISTINCT (log_id, line_no)) AS distinct_rows, "
                            "sum(line_no) AS total FROM log_text WHERE log_id < 0")
        assert load.to_dict("records") == [{"n": COMMITS * ROWS, "distinct_rows": COMMITS * ROWS,
                                            "total": COMMITS * ROWS * (ROWS - 1) // 2}]
        # retention dropped the old runs, and nothing else was lost or doubled
        assert index_state(reader) == without(local_state(spool), old)
        for table in ("transitions", "log_streams"):
            assert reader.query(f"SELECT count(*) AS n FROM {table} WHERE run_id LIKE 'old-%'")["n"][0] == 0
        # the feed read on through expired snapshots, and told of the runs retention dropped
        assert not [r for r in caplog.records if "reading the lake failed" in r.getMessage()]
    finally:
        writer.close()
        reader.close()


class CountedUpkeep(LakeUpkeep):
    """An upkeep that keeps every failure of its rounds (the thread notes only the latest)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.failures: list[str] = []

    def run_once(self):
        try:
            return super().run_once()
        except Exception as exc:
            self.failures.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            raise


#: Updates of the runs in the test below (each a commit): without the writes lock, each of three
#: tries of 80 saw rounds fail, and DuckLake doubled a run after 39 and after about 60.
UPDATES = 80


@pytest.mark.lake
@pytest.mark.timeout(300)
def test_runs_updated_while_compaction_runs_are_never_doubled(lake, tmp_path):
    """A run's row is replaced at each change of its status (a delete and an insert in one commit).
    Compaction beside such commits failed (\"Failed to delete flushed inlined data\") and kept the
    old row too: the grid showed one run RUNNING and SUCCESS."""
    spool = tmp_path / "spool"
    writer, index, reader = SpoolWriter(spool, "a"), Index(None, lake=lake, host="a"), Index(None, lake=lake)
    ingestor = Ingestor(index, spool)
    upkeep = CountedUpkeep(lake, period=0.2)
    doubled: list[tuple[int, list]] = []
    upkeep.start()
    try:
        for n in range(UPDATES):
            run_id = f"r-{n % 20:02d}"
            # each run TRIGGER, STARTED, RUNNING at first; then back and forth between RUNNING and SUCCESS
            for status in ("TRIGGER", "STARTED", "RUNNING") if n < 20 else ("SUCCESS" if n % 2 else "RUNNING",):
                writer.status(run_id, "task", status, agent="a", exit_code=0 if status == "SUCCESS" else None)
            writer.append_log(run_id, "stdout", f"line {n}\n")
            ingestor.catch_up()
            twice = reader.query("SELECT run_id FROM runs GROUP BY run_id HAVING count(*) > 1")["run_id"].tolist()
            if twice:
                doubled.append((n, twice))
        rounds_beside = upkeep.rounds
    finally:
        upkeep.stop()
        writer.close()
    try:
        print(f"{UPDATES} updates beside {rounds_beside} rounds of upkeep; the last: {upkeep.last}")
        assert rounds_beside >= 10
        assert not upkeep.failures, upkeep.failures[:3]
        assert not doubled, f"runs doubled after these updates: {doubled[:5]}"
        assert index_state(reader) == local_state(spool)
    finally:
        index.close()
        reader.close()


HOLD_THE_LOCK = """
import sys, time
from dashboard.lake import LakeSettings, connect
from dashboard.lake_upkeep import LakeUpkeep
conn = connect(LakeSettings(sys.argv[1], sys.argv[2]))
conn.execute("BEGIN")
print("holding" if LakeUpkeep.try_lock(conn) else "refused", flush=True)
time.sleep(600)
"""


@pytest.mark.lake
def test_while_one_process_compacts_another_does_not_and_a_kill_9_leaves_no_lock(lake, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, lake.catalog, lake.data_path],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    upkeep = LakeUpkeep(lake)
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert upkeep.run_once() is None and upkeep.skipped == 1  # the other process compacts
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(30)
        done = wait_until(upkeep.run_once, timeout=30, interval=0.1, message="the lock freed by the kill")
        assert done.seconds >= 0 and upkeep.rounds == 1
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
        holder.communicate()
        upkeep.close()


def test_retention_drops_old_runs_with_their_logs_and_keeps_recent_ones(tmp_path):
    spool = tmp_path / "spool"
    old = write_old_runs(spool, 3)
    write_host_spool(spool, "a", range(4), lines=6)  # an hour ago
    index, hub = Index(None), Hub()
    told: list[Change] = []
    hub.subscribe(told.append)
    ingestor = Ingestor(index, spool, hub, retention_days=30)
    try:
        ingestor.catch_up()
        assert set(index.query("SELECT run_id FROM runs")["run_id"]) >= old
        before = index_state(index)
        told.clear()
        assert ingestor.apply_retention() == 3
        wait_until(lambda: any(change.many_runs for change in told), timeout=30, message="pages told")
        assert index_state(index) == without(before, old)
        for table in ("transitions", "log_streams"):
            assert index.query(f"SELECT count(*) AS n FROM {table} WHERE run_id LIKE 'old-%'")["n"][0] == 0
        assert index.counts()["log_lines"] == 4 * 6 + 1  # a-0000 has a stderr line too
        assert ingestor.apply_retention() == 0
        assert Ingestor(index, spool).catch_up()["events"] == 0  # the spool is not read again
    finally:
        index.close()


@pytest.mark.parametrize("mode", ["local", pytest.param("lake", marks=pytest.mark.lake)])
def test_a_log_read_before_retention_dropped_its_run_never_shows_a_later_run_s_lines(mode, request, tmp_path):
    # An index remembers a stream's id once read; a stream numbered after retention may be given it
    # again (ids are the highest so far plus one), so the dropped run's log must read as empty.
    spool = tmp_path / "spool"
    (old,) = write_old_runs(spool, 1)
    if mode == "lake":
        lake = request.getfixturevalue("lake")
        writer, reader = Index(None, lake=lake, host="a"), Index(None, lake=lake)
    else:
        writer = reader = Index(None)
    feed = LakeFeed(reader, None) if mode == "lake" else None
    ingestor = Ingestor(writer, spool, retention_days=30)
    try:
        if feed is not None:
            feed.poll()  # the first look notes the snapshot
        ingestor.catch_up()
        if feed is not None:
            feed.poll()
        assert len(queries.log_page(reader, old, "stdout", 1)) == 5
        assert ingestor.apply_retention() == 1
        write_host_spool(spool, "a", range(1), lines=3)  # a-0000: stdout and stderr, numbered anew
        ingestor.catch_up()
        if feed is not None:
            assert feed.poll().many_runs  # a run was deleted: pages read again
        assert queries.log_page(reader, old, "stdout", 1).empty
        assert list(queries.log_page(reader, "a-0000", "stdout", 1)["text"]) == [f"a run 0 line {k} ok" for k in range(3)]
        assert list(queries.log_page(reader, "a-0000", "stderr", 1)["text"]) == ["a run 0: a warning"]
    finally:
        writer.close()
        if reader is not writer:
            reader.close()


def test_retention_is_a_setting_of_the_index(tmp_path):
    settings = tmp_path / "panel_serve.yaml"
    settings.write_text("index:\n  path: taskruns.duckdb\n  retention_days: 30\n")
    config = load_config(settings)
    assert config.retention_days == 30 and config.index == tmp_path / "taskruns.duckdb"
    assert config.with_overrides(retention_days=7).retention_days == 7
    settings.write_text("index:\n  retention_days: soon\n")
    with pytest.raises(ConfigError, match="index.retention_days must be a number of days"):
        load_config(settings)
    assert Config().retention_days is None  # the default keeps every run
