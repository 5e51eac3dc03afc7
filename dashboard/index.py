"""The DuckDB index of the spool: its schema, the ingestor's batched writes, and every query.

The index is derived: it can always be rebuilt from the spool. One connection is shared by
the process; each call opens its own cursor, so the ingest thread and page sessions can
use it at once (DuckDB's MVCC gives readers the last committed state).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from .event_lines import POSITIONED_SCHEMA, TRANSITION_SCHEMA
from .statuses import ORDER, TERMINAL
from .terminal import visible_array

log = logging.getLogger(__name__)

SCHEMA_VERSION = "7"
#: A batch touching more runs than this reports them as "many" instead of one by one.
LISTED_RUNS_MAX = 5_000
MAX_LINE_CHARS = 64 * 1024  # a longer log line is kept cut, with a marker

# Log text is stored uncompressed: three times the disk, but a search scans it twice as fast
# and an append costs half (measured on 2M realistic lines: 274 against 91 MB, ILIKE 138
# against 250 ms, 2.3M against 1.1M lines/s).
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR, value VARCHAR);
CREATE TABLE IF NOT EXISTS tasks (
    task VARCHAR, grp VARCHAR, depends_on VARCHAR[], description VARCHAR, defined_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS transitions (
    run_id VARCHAR, task VARCHAR, status VARCHAR, ts TIMESTAMP, agent VARCHAR, adhoc BOOLEAN,
    grp VARCHAR, trigger_time TIMESTAMP, exit_code INTEGER, message VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR, task VARCHAR, grp VARCHAR, status VARCHAR, agent VARCHAR, adhoc BOOLEAN,
    trigger_time TIMESTAMP, started TIMESTAMP, finished TIMESTAMP, exit_code INTEGER,
    message VARCHAR, updated TIMESTAMP, reached VARCHAR[], own_grp BOOLEAN);
CREATE TABLE IF NOT EXISTS log_streams (log_id INTEGER, run_id VARCHAR, stream VARCHAR, lines BIGINT);
CREATE TABLE IF NOT EXISTS log_text (log_id INTEGER, line_no BIGINT, text VARCHAR USING COMPRESSION uncompressed,
    visible VARCHAR USING COMPRESSION uncompressed);  -- what a terminal shows, if not the text itself
CREATE VIEW IF NOT EXISTS log_lines AS
    SELECT s.run_id, s.stream, t.line_no, t.text FROM log_text t JOIN log_streams s USING (log_id);
CREATE TABLE IF NOT EXISTS ingest_offsets (
    path VARCHAR, "offset" BIGINT, lines BIGINT, in_long_line BOOLEAN, tail BIGINT);
CREATE TABLE IF NOT EXISTS ingest_errors (
    file VARCHAR, "offset" BIGINT, reason VARCHAR, excerpt VARCHAR, recorded TIMESTAMP);
"""

TABLES = ("meta", "tasks", "transitions", "runs", "log_streams", "log_text", "ingest_offsets", "ingest_errors")

TRANSITION_COLUMNS = TRANSITION_SCHEMA.names

_TERMINAL_SQL = ", ".join(f"'{s}'" for s in TERMINAL)
LIFECYCLE_STEP_SQL = "CASE status " + " ".join(f"WHEN '{s}' THEN {n}" for s, n in ORDER.items()) + " END"
# An event's rank as one number (arg_max on a number is several times faster than on a
# struct): terminal first, then time, then lifecycle step, then status name.
_BY_STEP = sorted(ORDER, key=lambda status: (ORDER[status], status))
_BY_NAME = sorted(ORDER)
_NAME_CODE_SQL = "CASE status " + " ".join(f"WHEN '{s}' THEN {n}" for n, s in enumerate(_BY_NAME)) + " END"
_RANK_SQL = ("(status IN ({terminal}))::HUGEINT * 18446744073709551616 + epoch_us(ts)::HUGEINT * 8 + "
             "CASE status {codes} END").format(
    terminal=", ".join(f"'{s}'" for s in TERMINAL),
    codes=" ".join(f"WHEN '{s}' THEN {n}" for n, s in enumerate(_BY_STEP)))

# A run's current status is its latest event by time, except that a terminal status
# outranks any non-terminal one: an older (or skewed) RUNNING never reopens a finished run.
# Events of one millisecond (IDLE then ACTIVE, say) are told apart by lifecycle order.
# A run's group is the one its events report, else its task's (kept current by
# GROUPS_FROM_TASKS), so reads never join. Rows go in trigger order: time filters skip
# row groups.
RECOMPUTE_RUNS = f"""
DELETE FROM runs WHERE run_id IN (SELECT run_id FROM touched);
INSERT INTO runs
SELECT a.run_id, a.latest.task, coalesce(a.own_grp, t.grp), a.latest.status, a.agent, a.adhoc, a.trigger_time,
       a.started, CASE WHEN a.latest.status IN ({_TERMINAL_SQL}) THEN a.latest.ts END, a.exit_code,
       a.latest.message,  -- what the current status says, if anything
       a.updated, list_filter({list(_BY_NAME)}, lambda status, i: (a.reached >> (i - 1)) & 1 = 1),
       a.own_grp IS NOT NULL
FROM (
    SELECT run_id,
           arg_max({{'task': task, 'status': status, 'ts': ts, 'message': message}}, rank) AS latest,
           arg_max(grp, ts) FILTER (WHERE grp IS NOT NULL) AS own_grp,
           arg_max(agent, ts) FILTER (WHERE agent IS NOT NULL) AS agent,
           bool_or(adhoc) AS adhoc,
           coalesce(min(trigger_time), min(ts) FILTER (WHERE status = 'TRIGGER'), min(ts)) AS trigger_time,
           min(ts) FILTER (WHERE status IN ('STARTED', 'RUNNING')) AS started,
           arg_max(exit_code, rank) FILTER (WHERE exit_code IS NOT NULL) AS exit_code,
           max(ts) AS updated,
           bit_or(1 << {_NAME_CODE_SQL}) AS reached  -- one bit a status, in name order
    FROM (SELECT *, {_RANK_SQL} AS rank
          FROM transitions WHERE run_id IN (SELECT run_id FROM touched))
    GROUP BY run_id) a
LEFT JOIN tasks t ON t.task = a.latest.task
ORDER BY a.trigger_time;
"""

# A task (re)defined in another group moves the runs that report no group of their own.
GROUPS_FROM_TASKS = """
UPDATE runs SET grp = n.grp FROM new_tasks n
WHERE runs.task = n.task AND NOT runs.own_grp AND runs.grp IS DISTINCT FROM n.grp
"""


class RunSummary(NamedTuple):
    """What a live page needs to know of a changed run to tell whether its view is affected."""

    task: str
    grp: str | None
    status: str
    trigger_time: dt.datetime | None


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

    def __getattr__(self, name):
        return getattr(self._cursor, name)

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        return self._cursor

    def __exit__(self, kind, exc, traceback) -> None:
        if is_corruption(exc):
            self._index.noticed_corruption(exc)
        self._cursor.close()


def cut_line(line: str, length: str | None = None) -> str:
    """An over-long log line cut to MAX_LINE_CHARS, with a marker saying how long it was."""
    length = length or f"{len(line):,} characters"
    return f"{line[:MAX_LINE_CHARS]} … [line of {length} cut at {MAX_LINE_CHARS:,} characters]"


def split_lines(data: bytes) -> tuple[pa.LargeStringArray, int]:
    """Complete lines (each ending in a newline) as an Arrow array, without a Python object per line.

    Invalid UTF-8 is replaced, CRLF endings become LF, and an over-long line is cut.
    """
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        data = data.decode("utf-8", "replace").encode("utf-8")  # a newline is never inside a sequence
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    newlines = newline_positions(data)
    count = len(newlines)
    if count and np.diff(newlines, prepend=-1).max() - 1 > MAX_LINE_CHARS:  # rare: cut in Python
        texts = data.decode("utf-8").split("\n")[:-1]
        return pa.array([cut_line(x) if len(x) > MAX_LINE_CHARS else x for x in texts], pa.large_string()), count
    return line_array(data, newlines), count


def newline_positions(data: bytes) -> np.ndarray:
    return np.flatnonzero(np.frombuffer(data, np.uint8) == 10)


def line_array(data: bytes, newlines: np.ndarray) -> pa.LargeStringArray:
    """The complete lines of valid UTF-8 `data` (without their newlines) as one Arrow array."""
    # With every newline removed, line i ends where its newline stood, less the i newlines before it.
    offsets = np.concatenate([[0], newlines - np.arange(len(newlines))]).astype(np.int64)
    return pa.LargeStringArray.from_buffers(len(newlines), pa.py_buffer(offsets),
                                            pa.py_buffer(data.replace(b"\n", b"")))


@dataclass
class Batch:
    """What one ingest step adds to the index, committed together with the offsets it read."""

    tasks: list[dict] = field(default_factory=list)
    #: status events parsed one by one (spool.parse_event), and in bulk (event_lines)
    transitions: list[dict] = field(default_factory=list)
    transition_tables: list[pa.Table] = field(default_factory=list)
    event_lines_read: int = 0  # the position of the next event line read into the batch
    #: (run_id, stream, first line number, the lines, their visible text or null), in the order read
    log_chunks: list[tuple[str, str, int, pa.LargeStringArray, pa.Array]] = field(default_factory=list)
    #: (run_id, stream) -> the last line number this batch adds
    log_last_lines: dict[tuple[str, str], int] = field(default_factory=dict)
    log_line_count: int = 0
    #: (run_id, stream) -> the first line number to delete before this batch's lines go in (an
    #: unterminated last line read again now that its file grew)
    replaced: dict[tuple[str, str], int] = field(default_factory=dict)
    offsets: dict[str, tuple[int, int, bool, int]] = field(default_factory=dict)
    errors: list[tuple[str, int, str, str]] = field(default_factory=list)

    def add_log_lines(self, run_id: str, stream: str, first_line_no: int, data: bytes) -> int:
        """Add complete lines of raw output; return how many there were."""
        texts, count = split_lines(data)
        if not count:
            return 0
        self.log_chunks.append((run_id, stream, first_line_no, texts, visible_array(texts)))
        self.log_last_lines[(run_id, stream)] = first_line_no + count - 1
        self.log_line_count += count
        return count

    def replace_lines_from(self, run_id: str, stream: str, line_no: int) -> None:
        key = (run_id, stream)
        self.replaced[key] = min(line_no, self.replaced.get(key, line_no))

    @property
    def transition_count(self) -> int:
        return len(self.transitions) + sum(table.num_rows for table in self.transition_tables)

    def transitions_table(self) -> pa.Table:
        """Every status event of the batch as one table of POSITIONED_SCHEMA."""
        columns = {name: [t["group" if name == "grp" else name] for t in self.transitions]
                   for name in POSITIONED_SCHEMA.names}
        parsed = pa.table(columns, schema=POSITIONED_SCHEMA)
        return pa.concat_tables([parsed, *self.transition_tables])

    def __bool__(self) -> bool:
        return bool(self.tasks or self.transition_count or self.log_line_count or self.offsets or self.errors
                    or self.replaced)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Index:
    """A DuckDB index file (or a private one when the file is locked by another process)."""

    def __init__(self, path: str | Path | None, fallback_to_private: bool = True):
        self.requested_path = Path(path) if path else None
        self.private_reason: str | None = None
        self.rebuilt_reason: str | None = None
        #: A statement met a damaged block: what DuckDB said, until the index is rebuilt.
        self.corruption: str | None = None
        self.rebuilt_while_running = False
        self._private_dir: str | None = None
        self.path = self.requested_path
        #: The index file did not exist: everything in the spool is read into a new one.
        self.created = self.path is not None and not self.path.exists()
        #: Raised after every write that changes what a query can answer (see queries.shared_per_version).
        self.version = 0
        self._write_lock = threading.Lock()
        try:
            self._open()
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

    def noticed_corruption(self, exc: BaseException) -> None:
        if self.corruption is None:
            self.corruption = str(exc).strip().splitlines()[0][:300]
            log.warning("the index %s is damaged: %s", self.path, self.corruption)

    def check(self) -> None:
        """Read every block of every table (DuckDB checks each block's checksum as it reads it)."""
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
            if self.path is not None and self.path.exists():
                aside = self._move_aside()
                self.rebuilt_reason = (f"the index {self.path} was found damaged ({self.corruption}); it was "
                                       f"moved to {aside.name} and a new index is built from the spool")
            else:
                self.rebuilt_reason = f"the index was found damaged ({self.corruption}): built anew from the spool"
            log.warning(self.rebuilt_reason)
            self.rebuilt_while_running, self.corruption = True, None
            self._open()
            self.version += 1

    def _open(self) -> None:
        self._conn = self._connect(self.path)
        try:
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
    def _connect(path: Path | None) -> duckdb.DuckDBPyConnection:
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

    @property
    def is_private(self) -> bool:
        return self.private_reason is not None

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of the shared connection, for use in one thread (use with `with`)."""
        return _Cursor(self, self._conn.cursor())

    def close(self) -> None:
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
            self.version += 1
            cur.execute("CHECKPOINT")

    def load_offsets(self) -> dict[str, tuple[int, int, bool, int]]:
        """Where the ingestor stopped in each spool file: path -> (offset, lines, in_long_line, tail)."""
        with self.cursor() as cur:
            rows = cur.execute('SELECT path, "offset", lines, in_long_line, tail FROM ingest_offsets').fetchall()
        return {path: (offset, lines, long, tail) for path, offset, lines, long, tail in rows}

    def apply(self, batch: Batch) -> dict[str, RunSummary] | None:
        """Commit a batch and the offsets it came from in one transaction; return the runs touched,
        or None when they are more than LISTED_RUNS_MAX (a catch-up: every page reads again)."""
        now = _utcnow()
        with self._write_lock, self.cursor() as cur:
            cur.execute("BEGIN")
            try:
                touched = self._write(cur, batch, now)
                cur.execute("COMMIT")
                self.version += 1
            except BaseException:
                try:
                    cur.execute("ROLLBACK")
                except duckdb.Error:  # a failed COMMIT (a full disk, say) has ended the transaction itself
                    pass
                raise
        return touched

    def _write(self, cur, batch: Batch, now: dt.datetime) -> dict[str, RunSummary] | None:
        if batch.tasks:
            latest = {task["task"]: task for task in batch.tasks}  # a later definition wins
            frame = pd.DataFrame({
                "task": list(latest), "grp": [t["group"] for t in latest.values()],
                "depends_on": [t["depends_on"] for t in latest.values()],
                "description": [t["description"] for t in latest.values()]})
            cur.register("new_tasks", frame)
            cur.execute("DELETE FROM tasks WHERE task IN (SELECT task FROM new_tasks)")
            cur.execute("INSERT INTO tasks SELECT task, grp, depends_on, description, ? FROM new_tasks", [now])
            cur.execute(GROUPS_FROM_TASKS)
            cur.unregister("new_tasks")
        touched: dict[str, RunSummary] | None = {}
        if batch.transition_count:
            table = batch.transitions_table()
            cur.register("new_transitions", table)
            # The same event read twice (a duplicate line, a second writer) counts once: the
            # first one read (an earlier batch's, or the earliest line of this one).
            cur.execute(f"""
                INSERT INTO transitions
                SELECT DISTINCT ON (n.run_id, n.status, n.ts) {', '.join('n.' + c for c in TRANSITION_COLUMNS)}
                FROM new_transitions n
                ANTI JOIN (SELECT run_id, status, ts FROM transitions
                           WHERE run_id IN (SELECT run_id FROM new_transitions)) t
                  ON n.run_id = t.run_id AND n.status = t.status AND n.ts = t.ts
                ORDER BY n.position""")
            cur.execute("CREATE OR REPLACE TEMP TABLE touched AS SELECT DISTINCT run_id FROM new_transitions")
            cur.unregister("new_transitions")
            cur.execute(RECOMPUTE_RUNS)
            rows = cur.execute("SELECT run_id, task, grp, status, trigger_time FROM runs "
                               "WHERE run_id IN (SELECT run_id FROM touched) LIMIT ?", [LISTED_RUNS_MAX + 1]).fetchall()
            touched = {run_id: RunSummary(*rest) for run_id, *rest in rows} if len(rows) <= LISTED_RUNS_MAX else None
        if batch.replaced:
            for (run_id, stream), first in batch.replaced.items():
                cur.execute("DELETE FROM log_text WHERE log_id = (SELECT log_id FROM log_streams "
                            "WHERE run_id = ? AND stream = ?) AND line_no >= ?", [run_id, stream, first])
        if batch.log_line_count:
            log_ids = self._log_streams(cur, batch.log_last_lines)
            cur.register("new_lines", pa.Table.from_batches([pa.record_batch({
                "log_id": pa.array(np.full(len(texts), log_ids[(run_id, stream)], np.int32)),
                "line_no": pa.array(np.arange(first, first + len(texts), dtype=np.int64)),
                "text": texts, "visible": visible}) for run_id, stream, first, texts, visible in batch.log_chunks]))
            cur.execute("INSERT INTO log_text SELECT log_id, line_no, text, visible FROM new_lines")
            cur.unregister("new_lines")
        if batch.errors:
            frame = pd.DataFrame(batch.errors, columns=["file", "offset", "reason", "excerpt"])
            cur.register("new_errors", frame)
            cur.execute('INSERT INTO ingest_errors SELECT file, "offset", reason, excerpt, ? FROM new_errors', [now])
            cur.unregister("new_errors")
        if batch.offsets:
            frame = pd.DataFrame(
                [(path, *state) for path, state in batch.offsets.items()],
                columns=["path", "offset", "lines", "in_long_line", "tail"])
            cur.register("new_offsets", frame)
            cur.execute("DELETE FROM ingest_offsets WHERE path IN (SELECT path FROM new_offsets)")
            cur.execute("INSERT INTO ingest_offsets SELECT * FROM new_offsets")
            cur.unregister("new_offsets")
        return touched

    @staticmethod
    def _log_streams(cur, last_lines: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
        """The log_id of each (run_id, stream), numbered on for new ones, with its line count raised."""
        frame = pd.DataFrame([(*key, last) for key, last in last_lines.items()], columns=["run_id", "stream", "last"])
        cur.register("new_streams", frame)
        cur.execute("""
            INSERT INTO log_streams
            SELECT (SELECT coalesce(max(log_id), 0) FROM log_streams) + row_number() OVER (), n.run_id, n.stream, 0
            FROM new_streams n ANTI JOIN log_streams s ON s.run_id = n.run_id AND s.stream = n.stream""")
        cur.execute("""
            UPDATE log_streams SET lines = greatest(lines, n.last) FROM new_streams n
            WHERE log_streams.run_id = n.run_id AND log_streams.stream = n.stream""")
        rows = cur.execute("SELECT s.run_id, s.stream, s.log_id FROM log_streams s "
                           "JOIN new_streams n ON s.run_id = n.run_id AND s.stream = n.stream").fetchall()
        cur.unregister("new_streams")
        return {(run_id, stream): log_id for run_id, stream, log_id in rows}

    def cluster_runs(self) -> None:
        """Rewrite the runs table in trigger order, after a catch-up filled it out of order.

        DuckDB skips row groups whose trigger times lie outside a query's range only when
        each row group holds a narrow span of them.
        """
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
            cur.execute("CHECKPOINT")

    # ---- queries ---------------------------------------------------------------------

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
