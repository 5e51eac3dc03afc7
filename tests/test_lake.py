"""Lake mode: the index as one DuckLake (catalog in a throwaway PostgreSQL, Parquet in a temporary
folder), written by real `taskdash ship` processes and compared with local-mode indexes of the same
spools."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from builders import write_host_spool
from helpers import wait_until
from serving import free_port, ship, stopped

from dashboard import lake_mirror, queries
from dashboard.config import Config, ConfigError, load_config
from dashboard.hub import Hub
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.lake import NO_DOWNLOADS, PASSWORD_ENV, LakeError, LakeSettings, current_snapshot, extension_files
from dashboard.lake_feed import LakeFeed, changed_tables
from dashboard.lake_mirror import COPIED, MIRROR
from dashboard.lake_upkeep import LakeUpkeep
from dashboard.queries import RunFilter
from dashboard.spool import SpoolWriter
from dashboard.statuses import STATUSES
from dashboard.store import Store


def index_state(index: Index) -> dict:
    """What the comparison looks at: each run's status, task and times, and each log stream's line
    count and a hash of its text."""
    runs = index.query("SELECT run_id, task, status, exit_code, trigger_time, started, finished FROM runs "
                       "ORDER BY run_id")
    logs = index.query("""SELECT run_id, stream, count(*) AS lines, md5(string_agg(text, chr(10) ORDER BY line_no))
                          AS hash FROM log_lines GROUP BY ALL ORDER BY run_id, stream""")
    return {"runs": runs.to_dict("records"), "logs": logs.to_dict("records")}


def merged(*states: dict) -> dict:
    return {key: sorted((row for state in states for row in state[key]),
                        key=lambda row: (row["run_id"], row.get("stream", ""))) for key in ("runs", "logs")}


def local_state(spool: Path) -> dict:
    index = Index(None)
    try:
        Ingestor(index, spool).catch_up()
        return index_state(index)
    finally:
        index.close()


# ---- without PostgreSQL -----------------------------------------------------------------------

def test_the_extension_files_load_from_their_packages_into_the_pinned_duckdb():
    conn = duckdb.connect(config=dict(NO_DOWNLOADS))
    for name, path in extension_files():
        conn.execute(f"LOAD '{path}'")
    loaded = {name for (name,) in conn.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded")
              .fetchall()}
    assert {"ducklake", "postgres_scanner"} <= loaded


def test_lake_mode_is_a_setting_and_its_password_is_never_in_a_url(tmp_path, monkeypatch):
    settings = tmp_path / "panel_serve.yaml"
    settings.write_text("index:\n  mode: lake\n  catalog: postgresql://reader@db.example.com:5433/lake\n"
                        "  data_path: lake-data\n")
    config = load_config(settings)
    assert config.lake == LakeSettings("postgresql://reader@db.example.com:5433/lake", str(tmp_path / "lake-data"))
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(LakeError, match=PASSWORD_ENV):
        config.lake.password()
    monkeypatch.setenv(PASSWORD_ENV, "from the environment")
    assert config.lake.password() == "from the environment"
    (tmp_path / "secret").write_text("from a file\n")
    assert config.with_overrides(catalog_password_file=str(tmp_path / "secret")).lake.password() == "from a file"

    settings.write_text("index:\n  mode: lake\n  catalog: postgresql://reader:hunter2@db.example.com/lake\n"
                        "  data_path: lake-data\n")
    with pytest.raises(ConfigError) as refused:
        load_config(settings)
    assert "hunter2" not in str(refused.value) and PASSWORD_ENV in str(refused.value)
    # the same on the command line, where a process list would show it
    result = subprocess.run([sys.executable, "-m", "dashboard.cli", "runs", "--catalog",
                             "postgresql://reader:hunter2@db.example.com/lake", "--data-path", str(tmp_path)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 1 and "hunter2" not in result.stderr + result.stdout
    assert "must not hold the password" in result.stderr
    # a command reading a catalog nobody listens at: a message naming it, and the password is still not shown
    (tmp_path / "spool").mkdir()
    result = subprocess.run([sys.executable, "-m", "dashboard.cli", "runs", "--spool", str(tmp_path / "spool"),
                             "--catalog", f"postgresql://reader@127.0.0.1:{free_port()}/lake", "--data-path",
                             str(tmp_path / "lake-data")], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path / "spool", env=dict(os.environ, **{PASSWORD_ENV: "hunter2"}))
    assert result.returncode == 1 and "hunter2" not in result.stderr + result.stdout
    assert "the lake's catalog postgresql://reader@127.0.0.1:" in result.stderr and "Traceback" not in result.stderr


# ---- over a throwaway PostgreSQL --------------------------------------------------------------

@pytest.mark.lake
def test_a_lake_holds_what_a_local_index_holds_and_its_feed_says_what_changed(lake, tmp_path):
    spool = tmp_path / "spool"
    write_host_spool(spool, "a", range(30), lines=50)
    writer, reader = Index(None, lake=lake, host="a"), Index(None, lake=lake, read_only=True)
    feed = LakeFeed(reader, None, mirror_after_seconds=0)
    try:
        assert feed.poll() is None  # the first look only notes the snapshot
        Ingestor(writer, spool).catch_up()
        change = feed.poll()
        assert set(change.runs) == {f"a-{n:04d}" for n in range(30)}
        assert change.runs["a-0003"].status == "FAILED"
        assert change.log_lines[("a-0007", "stdout")] == 50
        assert index_state(reader) == local_state(spool)
        # a download reads the lake (the run's spool is on its host)
        store = Store(reader, Hub(), Config(spool=tmp_path / "not-this-host"))
        assert b"".join(store.log_chunks("a-0007", "stdout")) == (spool / "logs/a-0007/stdout.log").read_bytes()
        # read again from the stored offsets: nothing more, nothing doubled
        assert Ingestor(Index(None, lake=lake, host="a"), spool).catch_up() == {"events": 0, "log_lines": 0,
                                                                                "errors": 0}
        write_host_spool(spool, "a", range(30, 32), lines=3)
        Ingestor(writer, spool).catch_up()
        change = feed.poll()
        assert set(change.runs) == {"a-0030", "a-0031"} and change.log_lines[("a-0031", "stdout")] == 3
        assert index_state(reader) == local_state(spool)
    finally:
        writer.close()
        reader.close()


@pytest.mark.lake
def test_the_feed_reads_the_changes_of_the_tables_a_snapshot_changed_and_no_others(lake, tmp_path):
    spool = tmp_path / "spool"
    write_host_spool(spool, "a", range(3), lines=5)
    writer, reader = Index(None, lake=lake, host="a"), Index(None, lake=lake, read_only=True)
    feed, upkeep = LakeFeed(reader, None, mirror_after_seconds=0), LakeUpkeep(lake)

    def tables_since_last_look() -> set[str] | None:
        with reader.cursor(lake=True) as cur:
            return changed_tables(cur, feed.snapshot + 1, current_snapshot(cur))

    try:
        Ingestor(writer, spool).catch_up()
        feed.poll()
        # a run's next log line: its log's tables (and the host's offsets), no run, task or error
        with (spool / "logs/a-0001/stdout.log").open("a") as log:
            log.write("a run 1 line 5 ok\n")
        Ingestor(writer, spool).catch_up()
        tables = tables_since_last_look()
        assert {"log_text", "log_streams"} <= tables and not tables & {"runs", "tasks", "ingest_errors"}
        change = feed.poll()
        assert change.log_lines == {("a-0001", "stdout"): 6} and not change.runs and not change.many_runs
        # a run's new event: the runs' feed is read
        write_host_spool(spool, "a", range(3, 4), lines=1)
        Ingestor(writer, spool).catch_up()
        assert "runs" in tables_since_last_look()
        assert set(feed.poll().runs) == {"a-0003"}
        # the upkeep's snapshots move rows between files and change none
        assert upkeep.run_once().flushed_rows > 0
        assert tables_since_last_look() is not None
        change = feed.poll()
        assert not change.runs and not change.many_runs and not change.log_lines and not change.tasks
        # any other kind of snapshot (a table created) has every table read
        with writer.cursor() as cur:
            cur.execute("CREATE TABLE lake.extra (x INTEGER)")
        assert tables_since_last_look() is None
        assert index_state(reader) == local_state(spool)
    finally:
        upkeep.close()
        writer.close()
        reader.close()


def mirror_copied(feed: LakeFeed) -> None:
    """Look at the lake until the feed's copy of the mirror (in a thread of its own) is in use."""
    wait_until(lambda: feed.poll() is None and feed.index.mirrored, timeout=60, message="the mirror to be copied")


def mirror_differences(index: Index) -> dict[str, int]:
    """For each table the mirror copies: how many rows it and the lake do not have in common."""
    with index.cursor(lake=True) as cur:
        return {table: cur.execute(f"""SELECT count(*) FROM ((FROM {MIRROR}.main.{table} EXCEPT ALL FROM lake.main.{table})
                                       UNION ALL (FROM lake.main.{table} EXCEPT ALL FROM {MIRROR}.main.{table}))
                                    """).fetchone()[0] for table in COPIED}


def assert_counts_are_the_lakes(index: Index) -> None:
    """The status counts of a time range (from the runs per hour the server keeps, dashboard.run_hours)
    are those a statement over the lake's own runs gives."""
    now, run_filter = queries.utcnow(), RunFilter(since=dt.timedelta(hours=2))
    where, params = run_filter.where(now)
    with index.cursor(lake=True) as cur:
        counted = dict(cur.execute(f"SELECT status, count(*) FROM runs r {where} GROUP BY status", params).fetchall())
    assert queries.status_counts(index, run_filter, now) == dict.fromkeys(STATUSES, 0) | counted


@pytest.mark.lake
def test_a_lake_servers_mirror_answers_as_the_lake_through_new_runs_updates_deletions_and_a_new_attach(lake, tmp_path):
    spool = tmp_path / "spool"
    write_host_spool(spool, "a", range(20), lines=3)
    writer, reader = Index(None, lake=lake, host="a"), Index(None, lake=lake, read_only=True)
    feed = LakeFeed(reader, None, mirror_after_seconds=0)
    try:
        Ingestor(writer, spool).catch_up()
        waiting = LakeFeed(reader, None, mirror_after_seconds=3600)  # a server's first pages come first
        assert waiting.poll() is None and waiting.poll() is None and not reader.mirrored
        assert feed.poll() is None and not reader.mirrored  # the first look: pages wait for it
        mirror_copied(feed)
        with reader.cursor() as cur:  # a runs statement reads the mirror, a log's lines the lake
            assert f"{MIRROR}.main.runs" in cur.execute("EXPLAIN SELECT count(*) FROM runs").fetchall()[0][1]
            assert cur.execute("SELECT count(*) FROM log_text").fetchone()[0] == 20 * 3 + 4  # (stderr: every fifth)
        assert mirror_differences(reader) == {"runs": 0, "tasks": 0, "log_streams": 0}
        assert_counts_are_the_lakes(reader)
        # compacted while a page reads it: the page reads on
        with reader.cursor() as page, reader.cursor() as upkeep:
            page.execute("BEGIN")
            assert page.execute("SELECT count(*) FROM runs").fetchone()[0] == 20
            lake_mirror.compact(upkeep)
            assert page.execute("SELECT count(*) FROM runs").fetchone()[0] == 20
            page.execute("COMMIT")
        # new runs, a run's new status and a log's new lines, in one snapshot and in several
        write_host_spool(spool, "a", range(20, 23), lines=2)
        with SpoolWriter(spool, "a") as events:
            events.status("a-0001", "a_task_1", "FAILED", agent="agent-a", exit_code=3)
            events.append_log("a-0004", "stdout", "one more\n")
        Ingestor(writer, spool).catch_up()
        write_host_spool(spool, "a", range(23, 25), lines=1)
        Ingestor(writer, spool).catch_up()
        change = feed.poll()
        assert {"a-0001", "a-0023"} <= set(change.runs) and mirror_differences(reader) == dict.fromkeys(COPIED, 0)
        assert queries.run(reader, "a-0001")["exit_code"] == 3
        assert index_state(reader) == local_state(spool)
        assert reader.hour_changes.between(reader.version - 1, reader.version), "the hours the feed changed"
        assert_counts_are_the_lakes(reader)
        # a host's retention deletes runs: gone from the mirror too
        with SpoolWriter(spool, "a") as events:
            events.status("a-0100", "a_task_2", "RUNNING", agent="agent-a")
        Ingestor(writer, spool).catch_up()
        assert writer.drop_runs_older_than(0.5 / 24) == 24  # (a-0001's last event is new)
        feed.poll()
        assert mirror_differences(reader) == dict.fromkeys(COPIED, 0)
        assert set(queries.runs_page(reader)["run_id"]) == {"a-0001", "a-0100"}
        assert_counts_are_the_lakes(reader)
        # the lake attached anew (a changed password, say): the mirror is copied again
        reader.attach_lake()
        assert not reader.mirrored
        write_host_spool(spool, "a", range(30, 32), lines=1)
        Ingestor(writer, spool).catch_up()
        assert set(feed.poll().runs) == {"a-0030", "a-0031"}  # (read from the lake, while it is copied)
        mirror_copied(feed)
        assert mirror_differences(reader) == dict.fromkeys(COPIED, 0) and queries.count_runs(reader) == 4
        assert_counts_are_the_lakes(reader)
        # a snapshot that does more than change rows (a table created): copied anew as well
        with writer.cursor() as cur:
            cur.execute("CREATE TABLE lake.extra (x INTEGER)")
        write_host_spool(spool, "a", range(32, 33), lines=1)
        Ingestor(writer, spool).catch_up()
        assert set(feed.poll().runs) == {"a-0032"} and not reader.mirrored
        mirror_copied(feed)
        assert mirror_differences(reader) == dict.fromkeys(COPIED, 0) and queries.count_runs(reader) == 5
    finally:
        writer.close()
        reader.close()


def log_answers(index: Index, run_id: str) -> tuple:
    """What the log viewer asks of a run's stdout: its first page, a search, a jump to a match."""
    page = queries.log_page(index, run_id, "stdout", 1, 500)
    return (page["line_no"].tolist(), page["text"].tolist(), queries.search_matches(index, run_id, "stdout", "LINE 2").tolist(),
            queries.next_line_matching(index, run_id, "stdout", "line [13]", 2))


def copied(index: Index, run_id: str) -> bool:
    """Whether pages read the run's stdout from the server's copy (log_copies), not the lake."""
    with index.cursor() as cur:
        return index.log_source(cur, run_id, "stdout")[0] == index.log_copies.table


@pytest.mark.lake
def test_a_lake_servers_copies_of_finished_logs_answer_as_the_lake_and_are_forgotten_as_their_lines_change(
        lake, tmp_path):
    spool = tmp_path / "spool"
    with SpoolWriter(spool, "a") as events:  # a running run: its log is not copied while it runs
        events.status("a-0100", "a_task_1", "RUNNING", agent="agent-a")
        events.append_log("a-0100", "stdout", "".join(f"running line {k}\n" for k in range(5)))
    write_host_spool(spool, "a", range(1, 5), lines=30)
    writer, reader, local = Index(None, lake=lake, host="a"), Index(None, lake=lake, read_only=True), Index(None)
    feed = LakeFeed(reader, None, mirror_after_seconds=0)
    try:
        Ingestor(writer, spool).catch_up()
        Ingestor(local, spool).catch_up()
        mirror_copied(feed)
        # the first read of a finished log reads the lake and has it copied; later reads read the copy
        assert not copied(reader, "a-0100")
        assert log_answers(reader, "a-0001") == log_answers(local, "a-0001")
        wait_until(lambda: copied(reader, "a-0001"), message="a-0001's log to be copied")
        assert log_answers(reader, "a-0001") == log_answers(local, "a-0001")
        assert not copied(reader, "a-0100")  # (asked before a-0001's copy, in the same thread: looked at)
        # lines after the run's end, and a last line completed: the copy is forgotten at the feed's look
        with SpoolWriter(spool, "a") as events:
            events.append_log("a-0001", "stdout", "a late line 2\n")
            events.append_log("a-0002", "stdout", "an unfinished line")  # (its run has ended: a line)
        for index in (writer, local):
            Ingestor(index, spool).catch_up()
        feed.poll()
        assert not copied(reader, "a-0001") and log_answers(reader, "a-0001") == log_answers(local, "a-0001")
        log_answers(reader, "a-0002")
        wait_until(lambda: copied(reader, "a-0002"), message="a-0002's log to be copied")
        assert log_answers(reader, "a-0002") == log_answers(local, "a-0002")
        with SpoolWriter(spool, "a") as events:
            events.append_log("a-0002", "stdout", ", finished at LINE 2\n")
        for index in (writer, local):
            Ingestor(index, spool).catch_up()
        feed.poll()
        assert not copied(reader, "a-0002") and log_answers(reader, "a-0002") == log_answers(local, "a-0002")
        assert log_answers(local, "a-0002")[1][-1] == "an unfinished line, finished at LINE 2"
        # every run deleted (retention): a new run's log is given an id a copy was filed under
        with SpoolWriter(spool, "a") as events:
            events.status("a-0100", "a_task_1", "SUCCESS", agent="agent-a", exit_code=0)
        Ingestor(writer, spool).catch_up()
        feed.poll()
        runs = ("a-0100", "a-0001", "a-0002", "a-0003", "a-0004")
        for run_id in runs:
            wait_until(lambda: copied(reader, run_id), message=f"{run_id}'s log to be copied")
        with reader.cursor() as cur:
            copied_ids = {reader.log_id(cur, run_id, "stdout") for run_id in runs}
        assert writer.drop_runs_older_than(0) == len(runs)
        feed.poll()
        with SpoolWriter(spool, "a") as events:
            events.status("a-0300", "a_task_1", "SUCCESS", agent="agent-a", exit_code=0)
            events.append_log("a-0300", "stdout", "".join(f"new run line {k}\n" for k in range(3)))
        Ingestor(writer, spool).catch_up()
        feed.poll()
        with reader.cursor() as cur:
            assert reader.log_id(cur, "a-0300", "stdout") in copied_ids
        new_lines = ["new run line 0", "new run line 1", "new run line 2"]
        assert log_answers(reader, "a-0300")[1] == new_lines
        wait_until(lambda: copied(reader, "a-0300"), message="a-0300's log to be copied")
        assert log_answers(reader, "a-0300")[1] == new_lines
    finally:
        writer.close()
        reader.close()
        local.close()


@pytest.mark.lake
def test_a_lake_servers_copies_of_logs_fit_their_budget_and_a_larger_log_is_read_from_the_lake(lake, tmp_path):
    spool = tmp_path / "spool"
    write_host_spool(spool, "a", range(3), lines=20)  # each log about 400 bytes: 800 with its folded text
    with SpoolWriter(spool, "a") as events:
        events.status("a-0100", "a_task_1", "SUCCESS", agent="agent-a", exit_code=0)
        events.append_log("a-0100", "stdout", "".join(f"a longer log's line {k}\n" for k in range(100)))
    writer, reader, local = Index(None, lake=lake, host="a"), Index(None, lake=lake, read_only=True), Index(None)
    reader.log_copies.budget = 2000  # two of the small logs, not three; never the long one
    feed = LakeFeed(reader, None, mirror_after_seconds=0)
    try:
        Ingestor(writer, spool).catch_up()
        Ingestor(local, spool).catch_up()
        mirror_copied(feed)
        for run_id in ("a-0100", "a-0000", "a-0001", "a-0002"):
            assert log_answers(reader, run_id) == log_answers(local, run_id)
            if run_id != "a-0100":
                wait_until(lambda: copied(reader, run_id), message=f"{run_id}'s log to be copied")
        # the least recently read went first; the long log was looked at (before the others) and left
        assert [copied(reader, run_id) for run_id in ("a-0100", "a-0000", "a-0001", "a-0002")] == \
            [False, False, True, True]
        for run_id in ("a-0100", "a-0000", "a-0001", "a-0002"):
            assert log_answers(reader, run_id) == log_answers(local, run_id)
    finally:
        writer.close()
        reader.close()
        local.close()


@pytest.mark.lake
def test_the_lakes_log_lines_are_written_in_row_groups_a_page_can_pick(lake, tmp_path):
    """A page of a log read from the lake reads the Parquet row groups it falls in: the lake's log
    lines are written in groups of LOG_ROW_GROUP_ROWS, not DuckLake's 122,880 rows."""
    from dashboard.lake import LOG_ROW_GROUP_ROWS

    spool = tmp_path / "spool"
    write_host_spool(spool, "a", range(1), lines=3 * LOG_ROW_GROUP_ROWS)
    writer, reader = Index(None, lake=lake, host="a"), Index(None, lake=lake, read_only=True)
    reader.log_copies = None  # every read from the lake itself
    try:
        Ingestor(writer, spool).catch_up()
        files = sorted(str(path) for path in (Path(lake.data_path) / "main" / "log_text").rglob("*.parquet"))
        with duckdb.connect() as conn:
            groups = conn.execute("SELECT row_group_id, any_value(row_group_num_rows) FROM parquet_metadata(?) "
                                  "GROUP BY file_name, row_group_id", [files]).fetchall()
        assert sum(rows for _, rows in groups) == 3 * LOG_ROW_GROUP_ROWS + 1  # (and its one stderr line)
        assert max(rows for _, rows in groups) <= LOG_ROW_GROUP_ROWS and len(groups) >= 3
        page = queries.log_page(reader, "a-0000", "stdout", 2 * LOG_ROW_GROUP_ROWS - 1, 3)
        assert page["text"].tolist() == [f"a run 0 line {k} ok" for k in range(2 * LOG_ROW_GROUP_ROWS - 2,
                                                                                 2 * LOG_ROW_GROUP_ROWS + 1)]
    finally:
        writer.close()
        reader.close()

@pytest.mark.lake
def test_a_mirror_copied_while_the_catalog_is_down_fails_as_an_error_and_is_copied_once_it_is_back(
        lake, postgres, tmp_path):
    spool = tmp_path / "spool"
    write_host_spool(spool, "a", range(5), lines=1)
    writer, reader = Index(None, lake=lake, host="a"), Index(None, lake=lake, read_only=True)
    try:
        Ingestor(writer, spool).catch_up()
        postgres.halt()
        try:  # an error, not the end of the process (see lake_mirror.build)
            with pytest.raises(duckdb.Error):
                reader.copy_mirror()
            assert not reader.mirrored
        finally:
            postgres.resume()
        reader.attach_lake()
        assert reader.use_mirror(reader.copy_mirror())
        assert reader.mirrored and mirror_differences(reader) == dict.fromkeys(COPIED, 0)
        # one copied before the lake was attached anew is not used: it went with the old connection
        copied_before = reader.copy_mirror()
        reader.attach_lake()
        assert not reader.use_mirror(copied_before) and not reader.mirrored
    finally:
        writer.close()
        reader.close()


@pytest.mark.lake
def test_a_catalog_serialization_failure_is_a_lost_race_that_is_tried_again(lake, postgres):
    """Two hosts starting at once both set the lake's options; the one whose catalog snapshot is
    older than the other's update fails in PostgreSQL ("could not serialize access"), and tries
    again as after any conflict (it crashed a `taskdash ship` at its start)."""
    from dashboard import lake as lakes

    Index(None, lake=lake, host="a").close()  # the lake's tables
    first, second = lakes.connect(lake), lakes.connect(lake)
    option = f"CALL {lakes.LAKE}.set_option('parquet_row_group_size', ?, table_name => 'log_text')"
    try:
        second.execute("BEGIN")
        second.execute("SELECT count(*) FROM log_streams").fetchall()  # its snapshot
        first.execute(option, [1000])
        with pytest.raises(duckdb.Error) as raised:
            second.execute(option, [2000])
        assert "could not serialize access" in str(raised.value) and lakes.is_conflict(raised.value)
        second.execute("ROLLBACK")
        second.execute(option, [2000])  # tried again, with a snapshot of its own
    finally:
        first.close()
        second.close()
    Index(None, lake=lake, host="b").close()  # a host starting later sets them again, and starts


@pytest.mark.lake
@pytest.mark.timeout(600)
def test_three_hosts_ship_at_once_and_a_kill_9_loses_and_doubles_nothing(lake, postgres, tmp_path):
    spools = {host: tmp_path / host / "spool" for host in ("east", "west", "north")}
    for host, spool in spools.items():
        write_host_spool(spool, host, range(0, 40), lines=200)
    ships = {host: ship(spool, lake.catalog, Path(lake.data_path), host) for host, spool in spools.items()}
    reader = Index(None, lake=lake)
    try:
        def lines_in_lake() -> int:
            return reader.counts()["log_lines"]

        wait_until(lambda: lines_in_lake() > 0, timeout=120, interval=0.2, message="the first shipped lines")
        # more arrives while all three ship; then east is killed (no shutdown) in the middle of a big catch-up
        for host, spool in spools.items():
            write_host_spool(spool, host, range(40, 60), lines=20_000)
        before = lines_in_lake()
        wait_until(lambda: lines_in_lake() > before, timeout=120, interval=0.05, message="shipping under way")
        os.killpg(ships["east"].pid, signal.SIGKILL)
        killed = ships.pop("east").communicate()[0]  # (out of the ships stopped at the end: it is)
        assert "Traceback" not in killed, killed
        for host, spool in spools.items():
            write_host_spool(spool, host, range(60, 70), lines=10)
        ships["east"] = ship(spools["east"], lake.catalog, Path(lake.data_path), "east")
        expected = merged(*(local_state(spool) for spool in spools.values()))
        expected_counts = {"runs": len(expected["runs"]), "log_lines": sum(row["lines"] for row in expected["logs"])}

        def held() -> str:  # (what is missing, when the lake never holds it all: slow, or lost)
            counts = reader.counts()
            shipped = reader.query("SELECT host, count(*) AS files FROM ingest_offsets GROUP BY host ORDER BY host")
            return (f"the lake to hold the three spools: it holds {counts['runs']:,} runs and "
                    f"{counts['log_lines']:,} log lines of {expected_counts['runs']:,} and "
                    f"{expected_counts['log_lines']:,}; files shipped by host: "
                    f"{dict(zip(shipped['host'], shipped['files']))}; ships still running: "
                    f"{[host for host, process in ships.items() if process.poll() is None]}")

        wait_until(lambda: {name: reader.counts()[name] for name in expected_counts} == expected_counts,
                   timeout=300, interval=0.5, message=held)
        assert index_state(reader) == expected
        offsets = reader.query("SELECT host, count(*) AS files FROM ingest_offsets GROUP BY host ORDER BY host")
        assert offsets["host"].tolist() == ["east", "north", "west"]
        # the CLI reads the lake as a page does, whatever spool it is given
        listed = subprocess.run([sys.executable, "-m", "dashboard.cli", "runs", "--json", "--limit", "1000",
                                 "--spool", str(tmp_path / "empty"), "--catalog", lake.catalog,
                                 "--data-path", lake.data_path], capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0, listed.stderr
        assert {run["run_id"]: run["status"] for run in json.loads(listed.stdout)} == {
            run["run_id"]: run["status"] for run in expected["runs"]}
    finally:
        outputs = {host: stopped(process) for host, process in ships.items()}
        reader.close()
    assert all("Traceback" not in output for output in outputs.values()), outputs


@pytest.mark.lake
def test_a_postgresql_restart_shows_as_an_error_and_both_sides_recover_by_themselves(lake, postgres, tmp_path):
    spool = tmp_path / "spool"
    writer, reader = Index(None, lake=lake, host="a"), Index(None, lake=lake)
    feed = LakeFeed(reader, None, poll_seconds=0.05)
    feed.start()
    try:
        wait_until(feed.caught_up.is_set, timeout=30)
        postgres.halt()
        try:
            failure = wait_until(lambda: feed.health.failure, timeout=30, message="the feed to fail")
            assert "the lake cannot be read" in failure and postgres.password not in failure
        finally:
            postgres.resume()
        wait_until(lambda: feed.health.failure is None, timeout=30, message="the feed to recover")
        write_host_spool(spool, "a", range(3), lines=4)
        Ingestor(writer, spool).catch_up()  # the writer's connection, cut by the restart, is made anew
        wait_until(lambda: reader.counts()["runs"] == 3 and feed.snapshot, timeout=30)
        assert index_state(reader) == local_state(spool)
    finally:
        feed.stop()
        writer.close()
        reader.close()


@pytest.mark.lake
def test_a_host_that_cannot_reach_the_catalog_keeps_trying_and_ships_its_spool_once_it_can(lake, postgres, tmp_path):
    spool = tmp_path / "spool"
    write_host_spool(spool, "a", range(4), lines=3)
    postgres.halt()
    try:
        process = ship(spool, lake.catalog, Path(lake.data_path), "a")
        output = []
        line = wait_until(lambda: output.append(process.stdout.readline()) or "trying again" in output[-1]
                          and output[-1], timeout=60, message="ship to say it cannot reach the catalog")
        assert lake.catalog in line and postgres.password not in line and process.poll() is None
    finally:
        postgres.resume()
    reader = Index(None, lake=lake)
    try:
        wait_until(lambda: reader.counts()["runs"] == 4, timeout=60, interval=0.2, message="the spool shipped")
        assert index_state(reader) == local_state(spool)
    finally:
        reader.close()
        assert "Traceback" not in stopped(process)


@pytest.mark.lake
@pytest.mark.timeout(300)
def test_a_lake_server_told_to_ship_ships_its_own_spool_to_its_pages(lake, tmp_path):
    """`taskdash serve --ship` (and `--demo`) in lake mode: the server's own spool reaches the lake,
    and so its pages; without it, a lake server reads the lake only and its own runs were never shown."""
    from serving import DashboardServer, indexed_lines

    write_host_spool(tmp_path / "spool", "self", range(4), lines=6)
    server = DashboardServer(tmp_path, "--ship", "--catalog", lake.catalog, "--data-path", lake.data_path)
    try:
        wait_until(lambda: indexed_lines(server, "self-0003") == 6, timeout=60,
                   message="the server's own run, shipped, on its pages")
    finally:
        server.stop()
    assert "Traceback" not in "".join(server.output), "".join(server.output)
    refused = subprocess.run([sys.executable, "-m", "dashboard.cli", "serve", "--ship", "--spool", str(tmp_path)],
                             capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert refused.returncode == 1 and "--ship ships this server's spool to a lake" in refused.stderr, refused
