"""The DuckDB index of the spool: its file, opened or replaced, and the transactions that write it.

Its tables are in index_schema, what a batch writes in index_writes, the read queries in queries.

The index is derived: it can always be rebuilt from the spool. One connection is shared by
the process; each call opens its own cursor, so the ingest thread and page sessions can
use it at once (DuckDB's MVCC gives readers the last committed state).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import duckdb
import pandas as pd
import pyarrow as pa

from .formatting import utcnow
from . import lake as lakes
from . import lake_mirror
from .blocking import KeptCycles
from .config import DEFAULT_MEMORY, duckdb_memory_limit, memory_bytes
from .log_copies import BUDGET_BYTES, COPIES_DATABASE, SEARCH_COPY_MIN_LINES, LogCopies
from .index_schema import LAKE_SCHEMA, SCHEMA, SCHEMA_VERSION, TABLES, RunSummary
from .index_writes import Batch, drop_runs_before, write_batch
from .longest_runs import LongestRuns
from .run_hours import HourChanges, RunHours

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A commit that lost a race with another writer of the lake is tried again this many times.
CONFLICT_RETRIES = 30

#: With a retention, the runs past it are looked for this often (seconds), and at the start.
RETENTION_SECONDS = 3600.0

#: The log ids an index remembers (see Index.log_id); past this many it starts again.
LOG_IDS_KEPT = 100_000

#: A private index lives in <temp>/taskdash-index-<pid>-<random>/: a killed process cannot
#: remove its own, so the next process that needs one removes those of processes gone.
PRIVATE_PREFIX = "taskdash-index-"

def remove_stale_private_indexes(folder: str | Path | None = None) -> list[Path]:
    """Remove the private indexes left by processes that no longer run; return what was removed."""
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{PRIVATE_PREFIX}*-*"):
        pid = path.name[len(PRIVATE_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or not path.is_dir() or _running(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class IndexLockedError(RuntimeError):
    """The index file is held by another process."""


# ---- corruption DuckDB can still open (issue 23, item 5) ----------------------------------------

#: What DuckDB says of a block whose checksum does not match: bytes of the file were damaged.
CORRUPTION_MARKERS = ("Corrupt database file", "does not match stored checksum")


def is_corruption(exc: BaseException | None) -> bool:
    return isinstance(exc, duckdb.Error) and any(marker in str(exc) for marker in CORRUPTION_MARKERS)


class _Cursor:
    """A cursor of the index that tells it when a statement met a damaged block (use with `with`)."""

    def __init__(self, index: Index, cursor: duckdb.DuckDBPyConnection):
        self._index, self._cursor = index, cursor
        self._generation = index.generation  # the file this cursor reads (a rebuild starts another)

    def __getattr__(self, name):
        return getattr(self._cursor, name)

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        return self._cursor

    def __exit__(self, kind, exc, traceback) -> None:
        if is_corruption(exc):
            self._index.noticed_corruption(exc, self._generation)
        self._cursor.close()


class Index:
    """A DuckDB index file (or a private one when the file is locked by another process), or in lake
    mode (`lake` given) the shared DuckLake: the same tables and SQL, reached over its catalog."""

    def __init__(self, path: str | Path | None, fallback_to_private: bool = True,
                 lake: lakes.LakeSettings | None = None, host: str = "", read_only: bool = False,
                 wait_for_lake: bool = False, memory: str = DEFAULT_MEMORY, copy_logs: bool = True):
        #: How much memory DuckDB may hold for the index (an `index_memory` setting).
        self.memory_limit = duckdb_memory_limit(memory)
        #: Lake mode: where the lake is (None: a local DuckDB file, or memory).
        self.lake = lake
        #: Lake mode: the lake is attached READ_ONLY (a server that ships nothing; a command that
        #: reads): a PostgreSQL role with SELECT alone will do.
        self.read_only = read_only
        #: Lake mode with `wait_for_lake` (a server): why the lake is not attached yet, while pages
        #: are served from an empty stand-in; None once it is (see attach_lake).
        self.lake_failure: str | None = None
        #: Lake mode: a cursor reads the server's mirror of the lake's small tables (see lake_mirror),
        #: set by the feed once it has copied them; the lake itself until then.
        self.mirrored = False
        #: Copies of finished logs (see log_copies), in at most a quarter of DuckDB's memory: a lake
        #: server's in its mirror, for pages and searches; a local index's in a memory database, for
        #: searches of long logs. None for a lake index that writes (it reads no logs, and has no mirror),
        #: and without `copy_logs` (a command reads a log once: no page or search comes after it).
        budget = min(BUDGET_BYTES, memory_bytes(self.memory_limit) // 4)
        self.log_copies: LogCopies | None = None
        if copy_logs and lake is None:
            self.log_copies = LogCopies(COPIES_DATABASE, pages=False, budget=budget, min_lines=SEARCH_COPY_MIN_LINES)
        elif copy_logs and read_only:
            self.log_copies = LogCopies(lake_mirror.MIRROR, pages=True, budget=budget)
        #: Whose spool offsets this process reads and writes (each host ships its own spool to a lake).
        self.host = host
        if lake is not None:
            path = None
        self.requested_path = Path(path) if path else None
        self.private_reason: str | None = None
        self.rebuilt_reason: str | None = None
        #: A statement met a damaged block: what DuckDB said, until the index is rebuilt.
        self.corruption: str | None = None
        self.rebuilt_while_running = False
        #: Raised by each rebuild: a damaged block met by a query that began before it is old news.
        self.generation = 0
        self._private_dir: str | None = None
        self.path = self.requested_path
        #: The index file did not exist: everything in the spool is read into a new one.
        self.created = self.path is not None and not self.path.exists()
        #: Raised after every write that changes what a query can answer (see shared_answers).
        self.version = 0
        #: The hours of trigger time each write changed runs of (its own, or in lake mode its feed's
        #: into the mirror), and the runs per hour kept between them (see run_hours). Not for a lake
        #: index that writes: other hosts' writes reach its pages unannounced.
        self.hour_changes = HourChanges()
        self.run_hours = RunHours(self) if lake is None or read_only else None
        #: The cycles the pages asked for, and each hour's longest runs, kept between writes as the
        #: runs per hour are.
        self.kept_cycles = KeptCycles(self) if self.run_hours is not None else None
        self.longest_runs = LongestRuns(self) if self.run_hours is not None else None
        #: (run_id, stream) -> its log_id, as read once (see log_id).
        self._log_ids: dict[tuple[str, str], int] = {}
        # Reentrant: cursor() waits on it for a rebuild, and a writer already holding it may ask one.
        self._write_lock = threading.RLock()
        try:
            self._open()
        except lakes.LakeUnreachable as exc:
            if not wait_for_lake:
                raise
            self.lake_failure = str(exc)
            self._conn = _empty_lake()
        except IndexLockedError as exc:
            if not fallback_to_private:
                raise
            remove_stale_private_indexes()
            self._private_dir = tempfile.mkdtemp(prefix=f"{PRIVATE_PREFIX}{os.getpid()}-")
            self.path = Path(self._private_dir) / "taskruns.duckdb"
            self.private_reason = str(exc)
            # Info, not a warning: the CLI and the server each say so once in their own words.
            log.info("%s; indexing into a private index at %s instead", exc, self.path)
            self._open()
        except duckdb.Error as exc:
            if self.path is None or not self.path.exists():
                raise
            # The index is derived from the spool: a file DuckDB cannot open (corrupt, or not an
            # index at all) is kept aside for a post-mortem and a new index is built.
            aside = self._move_aside()
            problem = str(exc).strip().splitlines()[0][:300]
            self.rebuilt_reason = (f"the index {self.path} could not be opened ({problem}); it was moved to "
                                   f"{aside.name} and a new index is built from the spool")
            log.warning(self.rebuilt_reason)
            self._open()

    def reopen(self) -> None:
        """Open the index file again: after a fatal error (a checkpoint that failed on a full disk,
        say) DuckDB refuses every statement until the database is opened anew."""
        with self._write_lock:
            try:
                self._conn.close()
            except duckdb.Error:
                pass
            self._open()

    def noticed_corruption(self, exc: BaseException, generation: int | None = None) -> None:
        """A statement met a damaged block (of the current file, unless `generation` says an
        earlier one, which a rebuild has already moved aside)."""
        if generation is not None and generation != self.generation:
            return
        if self.corruption is None:
            self.corruption = str(exc).strip().splitlines()[0][:300]
            log.warning("the index %s is damaged: %s", self.path, self.corruption)

    def check(self) -> None:
        """Read every block of every table (DuckDB checks each block's checksum as it reads it)."""
        if self.lake is not None:  # the lake's files are not this process's to rebuild: nothing to check
            return
        with self.cursor() as cur:
            for table in TABLES:
                cur.execute(f"SELECT count(*), max(hash({table})) FROM {table}").fetchall()

    def rebuild(self) -> None:
        """Move a damaged index file aside (as one that does not open) and start an empty one;
        the ingestor then reads the spool into it."""
        with self._write_lock:
            try:
                self._conn.close()
            except duckdb.Error:
                pass
            # DuckDB's first words ("Corrupt database file"): its checksums and block are in the log.
            problem = (self.corruption or "").split(":")[0]
            if self.path is not None and self.path.exists():
                aside = self._move_aside()
                self.rebuilt_reason = (f"the index {self.path} was found damaged ({problem}); it was "
                                       f"moved to {aside.name} and a new index is built from the spool")
            else:
                self.rebuilt_reason = f"the index was found damaged ({problem}): built anew from the spool"
            log.warning(self.rebuilt_reason)
            self.rebuilt_while_running, self.corruption = True, None
            self.generation += 1
            self.forget_log_ids()
            self._open()
            self.version += 1

    def attach_lake(self) -> None:
        """Attach the lake anew (lake mode): after a start while it could not be (the empty
        stand-in is replaced), or to pick up a changed password. LakeError if it still cannot be."""
        with self._write_lock:
            previous = self._conn
            self.mirrored = False  # (the mirror is the old connection's: the feed copies it anew)
            try:
                self._open()
            except BaseException:
                self._conn = previous  # (closed by _open if it failed after connecting)
                raise
            self.lake_failure = None
            self.version += 1  # every query is asked again, of the lake
        # Not closed: a page's query may still run on it (its cursors keep it until they end).
        del previous

    def copy_mirror(self) -> duckdb.DuckDBPyConnection:
        """Lake mode: copy the lake's small tables into a mirror on the current connection (see
        lake_mirror), which `use_mirror` of that connection has cursors read. Only for an index
        that writes nothing: its writes would go to the mirror."""
        if not self.read_only:
            raise ValueError("only a read-only lake index has a mirror: writes go to the lake")
        conn = self._conn
        lake_mirror.build(conn)
        return conn

    def use_mirror(self, conn: duckdb.DuckDBPyConnection) -> bool:
        """From now on cursors read the mirror copied on `conn`; False (and not) when the lake has
        been attached anew since: the mirror went with the old connection."""
        with self._write_lock:
            if conn is not self._conn:
                return False
            self.mirrored = True
            self.forget_log_copies()
            self.version += 1
            return True

    def _open(self) -> None:
        self._conn = self._connect(self.path, self.lake, self.read_only)
        self.forget_log_copies()  # (held in the connection before)
        try:
            self._conn.execute("SET memory_limit = ?", [self.memory_limit])
            if self.lake is None:
                self._conn.execute(f"ATTACH ':memory:' AS {COPIES_DATABASE} (COMPRESS)")
            self._create_schema()
        except BaseException:
            self._conn.close()
            raise

    def _move_aside(self) -> Path:
        """Rename the index file (and its WAL) to <name>.corrupt-<time>; return the new path."""
        stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S%f")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        self.path.replace(aside)
        wal = self.path.with_name(self.path.name + ".wal")
        if wal.exists():
            wal.replace(aside.with_name(aside.name + ".wal"))
        return aside

    @staticmethod
    def _connect(path: Path | None, lake: lakes.LakeSettings | None = None,
                 read_only: bool = False) -> duckdb.DuckDBPyConnection:
        if lake is not None:
            return lakes.connect(lake, read_only=read_only)
        if path is None:
            return duckdb.connect(":memory:")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise IndexLockedError(f"the index {path} is in use by another process") from None
            raise

    def _create_schema(self) -> None:
        if self.lake is not None and self.read_only:
            self._check_lake_schema()
            return
        if self.lake is not None:
            self._retry_conflicts(self._create_lake_schema)
            return
        with self.cursor() as cur:
            cur.execute(SCHEMA)
            version = cur.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if version is not None and version[0] != SCHEMA_VERSION:
                # The index is derived from the spool: an older layout is dropped and rebuilt.
                self.rebuilt_reason = (f"the index {self.path} had schema {version[0]}, not "
                                       f"{SCHEMA_VERSION}: rebuilding it from the spool")
                log.warning(self.rebuilt_reason)
                for kind in ("VIEW", "TABLE"):  # whatever the older layout had
                    for (name,) in cur.execute(f"SELECT {kind.lower()}_name FROM duckdb_{kind.lower()}s() "
                                               "WHERE NOT internal AND database_name = current_database()"
                                               ).fetchall():
                        cur.execute(f'DROP {kind} "{name}"')
                cur.execute(SCHEMA)
                version = None
            if version is None:
                cur.execute("INSERT INTO meta VALUES ('schema', ?)", [SCHEMA_VERSION])

    def _create_lake_schema(self) -> None:
        """The lake's tables, made by whichever process comes first (in one transaction: two hosts
        starting at once conflict, and the one retried finds them made). A lake of another schema
        is not dropped: other hosts and servers use it."""
        with self.cursor() as cur:
            cur.execute("BEGIN")
            try:
                cur.execute(LAKE_SCHEMA)
                version = cur.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if version is None:
                    cur.execute("INSERT INTO meta VALUES ('schema', ?)", [SCHEMA_VERSION])
                cur.execute("COMMIT")
            except BaseException:
                _rollback(cur)
                raise
            # (Once the table is committed: DuckLake sets nothing on a table of the transaction.)
            cur.execute(f"CALL {lakes.LAKE}.set_option('parquet_row_group_size', {lakes.LOG_ROW_GROUP_ROWS}, "
                        "table_name => 'log_text')")
        if version is not None and version[0] != SCHEMA_VERSION:
            raise lakes.LakeError(f"the lake at {self.lake.safe_catalog} has the index schema {version[0]}, and this "
                                  f"taskdash writes schema {SCHEMA_VERSION}: use the same taskdash version on every "
                                  "host and server, or a new lake")

    def _check_lake_schema(self) -> None:
        """A reader's look at the lake's tables: it cannot make them (the first host's ship does)."""
        with self.cursor() as cur:
            try:
                version = cur.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            except duckdb.CatalogException:
                raise lakes.LakeUnreachable(f"the lake at {self.lake.safe_catalog} holds no taskdash tables yet: the "
                                            "first host's `taskdash ship` makes them") from None
        if version is not None and version[0] != SCHEMA_VERSION:
            raise lakes.LakeError(f"the lake at {self.lake.safe_catalog} has the index schema {version[0]}, and this "
                                  f"taskdash reads schema {SCHEMA_VERSION}: use the same taskdash version on every "
                                  "host and server")

    def _retry_conflicts(self, write: Callable[[], T]) -> T:
        """Run a write transaction; in lake mode holding the lake's writes lock shared (compaction
        waits for it), and again while it loses a race with another writer (DuckLake's optimistic
        concurrency: the commit fails, nothing of it is kept)."""
        for attempt in range(CONFLICT_RETRIES):
            try:
                if self.lake is None:
                    return write()
                with lakes.holding_writes_lock(self._conn):
                    return write()
            except duckdb.Error as exc:
                if self.lake is None or not lakes.is_conflict(exc) or attempt == CONFLICT_RETRIES - 1:
                    raise
                log.info("a lake commit conflicted with another writer's (attempt %d): trying again", attempt + 1)
                time.sleep(min(0.05 * 2 ** attempt, 1.0) * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable")

    @property
    def is_private(self) -> bool:
        return self.private_reason is not None

    def cursor(self, lake: bool = False) -> duckdb.DuckDBPyConnection:
        """A cursor of the shared connection, for use in one thread (use with `with`). In lake mode
        it reads the mirror once there is one, or with `lake` the lake itself (its change feed)."""
        try:
            cursor = self._conn.cursor()
        except duckdb.ConnectionException:
            # Closed by a rebuild or a reopen under way (a run's page built then failed with
            # "Connection already closed"): its new connection is there once they let go.
            with self._write_lock:
                cursor = self._conn.cursor()
        if self.lake is not None:  # each cursor is a connection of its own, on the memory database
            cursor.execute(f"USE {lake_mirror.MIRROR if self.mirrored and not lake else lakes.LAKE}")
        return _Cursor(self, cursor)

    def close(self) -> None:
        if self.log_copies is not None:
            self.log_copies.close()
        self._conn.close()
        if self._private_dir:
            shutil.rmtree(self._private_dir, ignore_errors=True)

    # ---- writes: only the ingestor calls these ---------------------------------------

    def clear(self) -> None:
        """Drop every row, so the spool is read again from its start."""
        with self._write_lock, self.cursor() as cur:
            cur.execute("BEGIN")
            for table in TABLES:
                if table != "meta":
                    cur.execute(f"DELETE FROM {table}")
            cur.execute("COMMIT")
            self.forget_log_ids()
            self.version += 1
            if self.lake is None:
                cur.execute("CHECKPOINT")

    def load_offsets(self) -> dict[str, tuple[int, int, bool, int]]:
        """Where the ingestor stopped in each file of this host's spool: path -> (offset, lines, in_long_line, tail)."""
        with self.cursor() as cur:
            rows = cur.execute('SELECT path, "offset", lines, in_long_line, tail FROM ingest_offsets WHERE host = ?',
                               [self.host]).fetchall()
        return {path: (offset, lines, long, tail) for path, offset, lines, long, tail in rows}

    def apply(self, batch: Batch) -> dict[str, RunSummary] | None:
        """Commit a batch and the offsets it came from in one transaction; return the runs touched,
        or None when they are more than LISTED_RUNS_MAX (a catch-up: every page reads again)."""
        now = utcnow()
        errors = list(batch.errors)  # a retried write reports the same errors once

        def write() -> dict[str, RunSummary] | None:
            batch.errors[:] = errors
            with self._write_lock, self.cursor() as cur:
                cur.execute("BEGIN")
                try:
                    touched, hours = write_batch(cur, batch, now, self.host)
                    cur.execute("COMMIT")
                    self.hour_changes.record(self.version + 1, hours)
                    self.version += 1
                    self._forget_changed_copies(cur, batch)
                except BaseException:
                    _rollback(cur)
                    raise
            return touched

        return self._retry_conflicts(write)

    def _forget_changed_copies(self, cur, batch: Batch) -> None:
        """Forget the copies of the logs a committed batch added lines to, before the pages hear of it."""
        copied = self.log_copies.known() if self.log_copies is not None else set()
        changed = batch.log_last_lines.keys() | batch.replaced.keys()
        if copied and changed:
            rows = cur.execute("SELECT log_id, run_id, stream FROM log_streams WHERE list_contains(?, log_id)",
                               [sorted(copied)]).fetchall()
            self.forget_log_copies([log_id for log_id, *key in rows if tuple(key) in changed])

    def drop_runs_older_than(self, days: float) -> int:
        """Retention: delete the runs whose last activity is more than `days` ago, with their events
        and log lines; return how many runs went. A run left alone in the spool is not read again
        (its offsets stay): only a rebuilt local index brings it back, until the next retention."""
        cutoff = utcnow() - dt.timedelta(days=days)
        with self.cursor() as cur:  # the usual case: nothing old enough, and no write (no snapshot)
            if not cur.execute("SELECT count(*) FROM runs WHERE updated < ?", [cutoff]).fetchone()[0]:
                return 0

        def write() -> int:
            with self._write_lock, self.cursor() as cur:
                cur.execute("BEGIN")
                try:
                    dropped = drop_runs_before(cur, cutoff)
                    cur.execute("COMMIT")
                except BaseException:
                    _rollback(cur)
                    raise
                self.forget_log_ids()
                self.version += 1
            return dropped

        return self._retry_conflicts(write)

    def cluster_runs(self) -> None:
        """Rewrite the runs table in trigger order, after a catch-up filled it out of order.

        DuckDB skips row groups whose trigger times lie outside a query's range only when
        each row group holds a narrow span of them. Not in a lake: there it would rewrite the table
        every host writes (each of their commits would conflict), and its files are laid out by
        DuckLake's own upkeep.
        """
        if self.lake is not None:
            return
        with self._write_lock, self.cursor() as cur:
            cur.execute("BEGIN")
            try:
                cur.execute("CREATE TEMP TABLE ordered_runs AS SELECT * FROM runs ORDER BY trigger_time, run_id")
                cur.execute("DELETE FROM runs")
                cur.execute("INSERT INTO runs SELECT * FROM ordered_runs")
                cur.execute("DROP TABLE ordered_runs")
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            if self.lake is None:
                cur.execute("CHECKPOINT")

    # ---- queries ---------------------------------------------------------------------

    def log_id(self, cur, run_id: str, stream: str) -> int | None:
        """The id of a run's stream in log_text (a constant filter there skips whole row groups), or
        None if it has no lines yet. Read once, then remembered: a stream keeps its id until its run is
        deleted (a lake statement costs 10-20 ms of catalog reads, a followed log asks at every delivery)."""
        key, known = (run_id, stream), self._log_ids  # an id read while they are forgotten is not kept
        log_id = known.get(key)
        if log_id is None:
            row = cur.execute("SELECT log_id FROM log_streams WHERE run_id = ? AND stream = ?", [run_id, stream]).fetchone()
            if row is None:
                return None
            if len(known) >= LOG_IDS_KEPT:
                known.clear()
            log_id = known[key] = row[0]
        return log_id

    def forget_log_ids(self) -> None:
        """Runs were deleted (retention, a cleared or rebuilt index): their ids may be given again.
        (A new dict: a lookup that began before keeps what it read in the old one.)"""
        self._log_ids = {}
        self.forget_log_copies()

    def log_source(self, cur, run_id: str, stream: str, search: bool = False) -> tuple[str, int | None]:
        """Where a run's stream's lines are read, and the id they are filed under there (None if the
        stream has no lines yet): log_text and the stream's log_id, or a copy of a finished log once
        it is made (see log_copies). A page reads a table with log_text's columns; a `search`, one
        with those or with the lines' `folded` text alone (a local index's copies). A local index's
        pages read log_text, and have a finished log's copy made all the same: the search a person
        types once a log is open reads it (a 2M-line stream: copied in 0.4 s, then searched in
        41-97 ms instead of 128-183)."""
        log_id = self.log_id(cur, run_id, stream)
        copies = self.log_copies
        if log_id is None or copies is None or (self.lake is not None and not self.mirrored):
            return "log_text", log_id
        source = copies.source(self, log_id)
        return source if search or copies.pages else ("log_text", log_id)

    def forget_log_copies(self, log_ids=None) -> None:
        """These logs' lines changed (None: any log's): their copies are not read again."""
        if self.log_copies is not None:
            self.log_copies.forget(log_ids)

    def query(self, sql: str, params: list | tuple = ()) -> pd.DataFrame:
        """Run a parameterised query and return its rows as a DataFrame."""
        with self.cursor() as cur:
            return cur.execute(sql, list(params)).df()

    def counts(self) -> dict[str, int]:
        """How many tasks, runs, log lines and ingest errors the index holds."""
        with self.cursor() as cur:
            row = cur.execute("""SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM runs),
                                        (SELECT count(*) FROM log_text), (SELECT count(*) FROM ingest_errors)
                              """).fetchone()
        return dict(zip(("tasks", "runs", "log_lines", "ingest_errors"), row))


_NULLABLE = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
             pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}


def index_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table of query results as `Index.query` gives them (DuckDB's own conversion): an
    integer or boolean column holding nulls takes pandas' nullable type (not floats or objects),
    and a text column of nulls alone (or of no rows) is of objects."""
    # (DuckDB's tables carry no pandas metadata, and a page's columns need not be one block:
    # a page of runs converts in 0.71 ms against 0.97.)
    frame = table.to_pandas(ignore_metadata=True, split_blocks=True)
    for name, column in zip(table.column_names, table.columns):
        if column.null_count and column.type in _NULLABLE:
            frame[name] = column.to_pandas(types_mapper={column.type: _NULLABLE[column.type]}.get)
        elif column.null_count == len(column) and pa.types.is_string(column.type):
            frame[name] = pd.Series([None] * len(column), dtype=object)
    return frame


def _empty_lake() -> duckdb.DuckDBPyConnection:
    """An in-memory stand-in for a lake not attached yet: the lake's tables, empty, under its name,
    so pages open (and show nothing) while the connection indicator says why."""
    conn = duckdb.connect(":memory:")
    conn.execute(f"ATTACH ':memory:' AS {lakes.LAKE}")
    conn.execute(f"USE {lakes.LAKE}")
    conn.execute(LAKE_SCHEMA)
    return conn


def _rollback(cur) -> None:
    try:
        cur.execute("ROLLBACK")
    except duckdb.Error:  # a failed COMMIT (a full disk, a lost race) has ended the transaction itself
        pass
