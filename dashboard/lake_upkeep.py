"""Upkeep of a lake: compaction and retention, run every few seconds by each `taskdash ship`, by
exactly one process at a time across every machine.

Each commit of a host writes small Parquet files (or, under DuckLake's inlining limit, rows in the
catalog). A round of upkeep uses DuckLake's own functions: it flushes inlined rows to Parquet,
merges adjacent small files (and once a table has many, all those under DuckLake's target size),
rewrites files mostly deleted (the runs table is rewritten row by row as runs change), drops the
runs older than the retention (hourly), expires snapshots older than `keep_snapshots_seconds` and
removes the files no snapshot has needed for `keep_files_seconds`.

One process at a time: a round runs while its process holds a PostgreSQL advisory lock of the
catalog's database, taken in a transaction of a connection of its own. PostgreSQL releases it when
the transaction ends, and when the session does: a process killed with `kill -9` leaves no lock
behind, and no lease to wait out (a machine cut off mid-round holds it until PostgreSQL finds the
connection dead: its tcp_keepalives_idle).

Never beside a commit: flushing, merging and rewriting files hold the lake's writes lock
exclusive, which every host's commit holds shared (lake.WRITES_LOCK). DuckLake alone let a
compaction beside a commit that replaced a run's row keep both rows. A commit waits for the
compaction under way (0.3 to 0.5 s in the tests' rounds; longer once big files are merged), and
compaction for the commits under way (its `wait` step).

Snapshots are expired only once they are `keep_snapshots_seconds` old: a server's feed
(lake_feed) reads the changes between the snapshot it last saw and the latest, so those must
still be there (a feed that fell further behind reads everything again).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field

import duckdb

from .index import RETENTION_SECONDS, Index
from .lake import (LAKE, UPKEEP_LOCK, UPKEEP_SECONDS, LakeSettings, connect, holding_writes_lock, is_conflict,
                   lock_transaction, try_advisory_lock)

log = logging.getLogger(__name__)

#: Snapshots younger than this are kept: the change feed of a server that looked at the lake up to
#: this long ago still reads from where it was.
KEEP_SNAPSHOTS_SECONDS = 600.0
#: Files no snapshot needs any more are removed once they have been unneeded this long: a query
#: or a host's commit that began before still reads them (0 s broke a commit under way).
KEEP_FILES_SECONDS = 600.0
#: Each round merges the files smaller than this; once a table has MERGE_ALL_FILES files, all
#: those under DuckLake's target file size (512 MB) too. A table then keeps fewer than
#: MERGE_ALL_FILES files plus one per 512 MB.
SMALL_FILE_BYTES = 16 * 1024 * 1024
MERGE_ALL_FILES = 32


@dataclass
class UpkeepRound:
    """What one round did (a round that found the lock held did nothing and is not reported)."""

    flushed_rows: int = 0
    merged_files: int = 0
    rewritten_files: int = 0
    dropped_runs: int = 0
    expired_snapshots: int = 0
    removed_files: int = 0
    started: float = 0.0
    seconds: float = 0.0
    #: Data files per table once the round was done.
    files: dict[str, int] = field(default_factory=dict)
    #: Seconds each step took.
    steps: dict[str, float] = field(default_factory=dict)


class LakeUpkeep:
    """Compaction and retention of one lake, every `period` seconds, under the catalog's advisory lock."""

    def __init__(self, settings: LakeSettings, period: float = UPKEEP_SECONDS, retention_days: float | None = None,
                 keep_snapshots_seconds: float = KEEP_SNAPSHOTS_SECONDS,
                 keep_files_seconds: float = KEEP_FILES_SECONDS):
        self.settings = settings
        self.period = period
        self.retention_days = retention_days
        self.keep_snapshots_seconds = keep_snapshots_seconds
        self.keep_files_seconds = keep_files_seconds
        #: The latest round this process did, and how many it did.
        self.last: UpkeepRound | None = None
        self.rounds = 0
        #: Rounds not done because another process was doing one.
        self.skipped = 0
        self.failure: str | None = None
        self._retained = -math.inf  # when this process last applied the retention
        self._index: Index | None = None
        self._lock_conn: duckdb.DuckDBPyConnection | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- one round -------------------------------------------------------------------

    def run_once(self) -> UpkeepRound | None:
        """One round, if no other process is doing one (None: the lock was held elsewhere)."""
        if self._index is None:
            self._index = Index(None, lake=self.settings)
            self._lock_conn = connect(self.settings)
        with lock_transaction(self._lock_conn) as lock:
            if not self.try_lock(lock):
                self.skipped += 1
                return None
            done = UpkeepRound(started=time.time())
            self._compact(done)
            done.seconds = time.time() - done.started
            self.last, self.rounds = done, self.rounds + 1
            return done

    @staticmethod
    def try_lock(cur) -> bool:
        """Take the upkeep lock for the transaction open on `cur`; False if another session holds it."""
        return try_advisory_lock(cur, UPKEEP_LOCK)

    def _compact(self, done: UpkeepRound) -> None:
        index = self._index

        def step(name: str, sql: str, params: list | None = None) -> list[tuple]:
            began = time.time()
            with index.cursor() as cur:
                rows = self._call(cur, sql.format(lake=LAKE), params)
            done.steps[name] = round(time.time() - began, 3)
            return rows

        began = time.time()
        with holding_writes_lock(self._lock_conn, exclusive=True):  # no host commits meanwhile
            done.steps["wait"] = round(time.time() - began, 3)
            # CALL and fetch every row: a function whose rows a query only counts commits nothing.
            done.flushed_rows = sum(row[-1] for row in step("flush", "CALL ducklake_flush_inlined_data('{lake}')"))
            # Small files only: a merge of every file rewrites the table's big ones too, each round
            # (an 80 MB file with 10 small ones: 0.53 s, against 0.02 s for the small ones alone).
            done.merged_files = sum(row[2] for row in step(
                "merge", "CALL ducklake_merge_adjacent_files('{lake}', max_file_size => ?)", [SMALL_FILE_BYTES]))
            done.rewritten_files = sum(row[2] for row in step("rewrite",
                                                              "CALL ducklake_rewrite_data_files('{lake}')"))
            with index.cursor() as cur:
                many = max(data_files(cur).values(), default=0) >= MERGE_ALL_FILES
            if many:  # the small merges' files (each SMALL_FILE_BYTES or more) into files of DuckLake's target size
                done.merged_files += sum(row[2] for row in step(
                    "merge_all", "CALL ducklake_merge_adjacent_files('{lake}')"))
        if self.retention_days is not None and time.monotonic() - self._retained >= RETENTION_SECONDS:
            # Hourly, not every round: its deletes make the hosts' concurrent commits retry (DuckLake
            # lets no insert commit into a table another transaction deleted from), and back.
            began = time.time()
            done.dropped_runs = index.drop_runs_older_than(self.retention_days)
            self._retained = time.monotonic()
            done.steps["retention"] = round(time.time() - began, 3)
        done.expired_snapshots = len(step("expire", "SELECT snapshot_id FROM ducklake_expire_snapshots('{lake}', "
                                          "older_than => now() - to_seconds(?::DOUBLE))",
                                          [self.keep_snapshots_seconds]))
        done.removed_files = len(step("cleanup", "SELECT path FROM ducklake_cleanup_old_files('{lake}', "
                                      "older_than => now() - to_seconds(?::DOUBLE))", [self.keep_files_seconds]))
        with index.cursor() as cur:
            done.files = data_files(cur)

    @staticmethod
    def _call(cur, sql: str, params: list | None = None) -> list[tuple]:
        """A maintenance function's rows; a conflict with a host's commit leaves it for the next round."""
        try:
            return cur.execute(sql, params or []).fetchall()
        except duckdb.Error as exc:
            if not is_conflict(exc):
                raise
            log.info("lake upkeep conflicted with a commit (%s): left for the next round", str(exc)[:200])
            return []

    # ---- the background thread ---------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._follow, name="taskdash-lake-upkeep", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.close()

    def close(self) -> None:
        for conn in (self._index, self._lock_conn):
            if conn is not None:
                try:
                    conn.close()
                except duckdb.Error:
                    pass
        self._index = self._lock_conn = None

    def _follow(self) -> None:
        while not self._stop.wait(self.period):
            try:
                done = self.run_once()
                self.failure = None
            except Exception as exc:  # the catalog unreachable, say: tried again next period, anew
                if self.failure is None:
                    log.warning("lake upkeep failed: %s", exc)
                self.failure = f"{type(exc).__name__}: {str(exc)[:300]}"
                self.close()
                continue
            if done is not None and (done.merged_files or done.dropped_runs or done.removed_files):
                log.info("lake upkeep: %s", done)


def data_files(cur) -> dict[str, int]:
    """The lake's data files now, per table (what compaction keeps few)."""
    tables = [name for (name,) in cur.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [LAKE]).fetchall()]
    return {table: cur.execute(f"SELECT count(*) FROM ducklake_list_files('{LAKE}', ?)", [table]).fetchone()[0]
            for table in tables}
