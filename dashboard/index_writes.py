"""The ingestor's batched writes: what one ingest step adds to the index, and the SQL that adds it.

`Index.apply` runs `write_batch` inside one transaction with the spool offsets the batch
came from, so a restart neither loses nor doubles anything.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .index_schema import POSITIONED_SCHEMA, REACHED_BITS, TRANSITION_COLUMNS, RunSummary
from .log_lines import split_lines
from .run_hours import HOUR_MS
from .statuses import ORDER, TERMINAL, UNDER_WAY, sql_list
from .terminal import visible_array

#: Raw log output gathered before it is split into lines (see Batch.split_log_lines).
SPLIT_BYTES = 4 * 1024 * 1024
#: A batch touching more runs than this reports them as "many" instead of one by one.
LISTED_RUNS_MAX = 5_000
#: At most this many runs ending before they started are named by one batch.
LISTED_ENDS_BEFORE_STARTS = 20

_TERMINAL_SQL = sql_list(TERMINAL)
_COLUMNS = ", ".join(TRANSITION_COLUMNS)
# An event's rank as one number (arg_max on a number is several times faster than on a
# struct): terminal first, then time, then lifecycle step, then status name.
_BY_STEP = sorted(ORDER, key=lambda status: (ORDER[status], status))
_BIT_SQL = "CASE status " + " ".join(f"WHEN '{s}' THEN {n}" for n, s in enumerate(REACHED_BITS)) + " END"
_RANK_SQL = ("(status IN ({terminal}))::HUGEINT * 18446744073709551616 + epoch_us(ts)::HUGEINT * 8 + "
             "CASE status {codes} END").format(
    terminal=_TERMINAL_SQL,
    codes=" ".join(f"WHEN '{s}' THEN {n}" for n, s in enumerate(_BY_STEP)))


# A run's current status is its latest event by time, except that a terminal status
# outranks any non-terminal one: an older (or skewed) RUNNING never reopens a finished run.
# Events of one millisecond (IDLE then ACTIVE, say) are told apart by lifecycle order.
# A run's group is the one its events report, else its task's (kept current by
# GROUPS_FROM_TASKS), so reads never join. Rows go in trigger order: time filters skip
# row groups. A run the index held before the batch (touched_before) is computed from all its
# events, read back; a new one from the batch's own (`events`, as inserted): every event of a
# run is in the index with its run, so a new run has none there. A catch-up's batch is almost all
# new runs (72,000 of 72,250 in one of 433,000 events): not reading them back, this statement took
# 3.4-3.6 s of a 6M-event catch-up where it took 4.2 (the catch-up 5 % less, paired runs).
def recompute_runs(events: str) -> str:
    """The SQL that puts back the touched runs, the batch's events being `events`."""
    return f"""
DELETE FROM runs WHERE run_id IN (SELECT run_id FROM touched_before);
INSERT INTO runs
SELECT a.run_id, a.latest.task, coalesce(a.own_grp, t.grp), a.latest.status, a.agent, a.adhoc, a.trigger_time,
       a.started, CASE WHEN a.latest.status IN ({_TERMINAL_SQL}) THEN a.latest.ts END, a.exit_code,
       a.latest.message,  -- what the current status says, if anything
       a.updated, a.reached,
       a.own_grp IS NOT NULL
FROM (
    SELECT run_id,
           arg_max({{'task': task, 'status': status, 'ts': ts, 'message': message}}, rank) AS latest,
           arg_max(grp, ts) FILTER (WHERE grp IS NOT NULL) AS own_grp,
           arg_max(agent, ts) FILTER (WHERE agent IS NOT NULL) AS agent,
           bool_or(adhoc) AS adhoc,
           coalesce(min(trigger_time), min(ts) FILTER (WHERE status = 'TRIGGER'), min(ts)) AS trigger_time,
           min(ts) FILTER (WHERE status IN ({sql_list(UNDER_WAY)})) AS started,
           arg_max(exit_code, rank) FILTER (WHERE exit_code IS NOT NULL) AS exit_code,
           max(ts) AS updated,
           bit_or((1 << {_BIT_SQL})::UTINYINT) AS reached  -- one bit a status (index_schema.REACHED_BITS)
    FROM (SELECT *, {_RANK_SQL} AS rank
          FROM (SELECT {_COLUMNS} FROM transitions WHERE run_id IN (SELECT run_id FROM touched_before)
                UNION ALL
                SELECT {_COLUMNS} FROM {events} WHERE run_id NOT IN (SELECT run_id FROM touched_before)))
    GROUP BY run_id) a
LEFT JOIN tasks t ON t.task = a.latest.task
ORDER BY a.trigger_time;
"""


# A task (re)defined in another group moves the runs that report no group of their own.
GROUPS_FROM_TASKS = """
UPDATE runs SET grp = n.grp FROM new_tasks n
WHERE runs.task = n.task AND NOT runs.own_grp AND runs.grp IS DISTINCT FROM n.grp
"""


@dataclass
class Batch:
    """What one ingest step adds to the index, committed together with the offsets it read."""

    tasks: list[dict] = field(default_factory=list)
    #: status events parsed one by one (spool.parse_event), and in bulk (event_lines)
    transitions: list[dict] = field(default_factory=list)
    transition_tables: list[pa.Table] = field(default_factory=list)
    event_lines_read: int = 0  # the position of the next event line read into the batch
    #: (run_id, stream, first line number, how many lines) of each chunk of log lines, in the order read
    log_chunks: list[tuple[str, str, int, int]] = field(default_factory=list)
    #: their lines split so far, and each line's visible text or null (see split_log_lines)
    log_texts: list[pa.Array] = field(default_factory=list)
    log_visible: list[pa.Array] = field(default_factory=list)
    #: the raw lines of the chunks not split yet
    unsplit: list[bytes] = field(default_factory=list)
    unsplit_bytes: int = 0
    #: (run_id, stream) -> the last line number this batch adds
    log_last_lines: dict[tuple[str, str], int] = field(default_factory=dict)
    log_line_count: int = 0
    #: (run_id, stream) -> the first line number to delete before this batch's lines go in (an
    #: unterminated last line read again now that its file grew)
    replaced: dict[tuple[str, str], int] = field(default_factory=dict)
    offsets: dict[str, tuple[int, int, bool, int]] = field(default_factory=dict)
    errors: list[tuple[str, int, str, str]] = field(default_factory=list)
    #: where the event lines came from: (position of the first, file, byte offset, line starts)
    event_sources: list[tuple[int, str, int, np.ndarray]] = field(default_factory=list)

    def add_log_lines(self, run_id: str, stream: str, first_line_no: int, data: bytes) -> int:
        """Add complete lines of raw output; return how many there were. They are split into lines
        SPLIT_BYTES at a time, many files' chunks together (see split_log_lines)."""
        if len(data) >= SPLIT_BYTES:  # split alone, now (its count comes with it)
            self.split_log_lines()  # (the chunks before it first: the lines stay in order)
            texts, count = split_lines(data)
            if count:
                self._add_split(texts)
        else:
            count = data.count(b"\n")
            if count:
                self.unsplit.append(data)
                self.unsplit_bytes += len(data)
        if not count:
            return 0
        self.log_chunks.append((run_id, stream, first_line_no, count))
        self.log_last_lines[(run_id, stream)] = first_line_no + count - 1
        self.log_line_count += count
        if self.unsplit_bytes >= SPLIT_BYTES:
            self.split_log_lines()
        return count

    def split_log_lines(self) -> None:
        """Split the lines added since the last call, all in one pass: split one file at a time, a
        log of 10 lines cost 130 µs (200,000 such files: 27 of a catch-up's 65 s). (Lines are split
        one by one, and every chunk ends with its newline: joined, each line splits as alone.)"""
        if not self.unsplit:
            return
        data = b"".join(self.unsplit)
        self.unsplit, self.unsplit_bytes = [], 0
        self._add_split(split_lines(data)[0])

    def _add_split(self, texts: pa.LargeStringArray) -> None:
        self.log_texts.append(texts)
        self.log_visible.append(visible_array(texts))

    def log_lines_table(self, log_ids: dict[tuple[str, str], int]) -> pa.Table:
        """Every log line of the batch as a table of log_text's columns, given each stream's log id."""
        self.split_log_lines()
        counts = np.array([count for *_, count in self.log_chunks], dtype=np.int64)
        before = np.cumsum(counts) - counts  # the lines of the chunks before each
        firsts = np.array([first for _, _, first, _ in self.log_chunks], dtype=np.int64)
        ids = np.array([log_ids[(run_id, stream)] for run_id, stream, *_ in self.log_chunks], dtype=np.int32)
        log_id = np.repeat(ids, counts)
        line_no = np.arange(self.log_line_count, dtype=np.int64) + np.repeat(firsts - before, counts)
        # One record batch a split, as DuckDB scans them best (one a thread; columns cut alike).
        ends = np.cumsum([len(texts) for texts in self.log_texts])
        return pa.Table.from_batches([
            pa.record_batch({"log_id": log_id[end - len(texts):end], "line_no": line_no[end - len(texts):end],
                             "text": texts, "visible": visible})
            for texts, visible, end in zip(self.log_texts, self.log_visible, ends)])

    def event_source(self, position: int) -> tuple[str, int]:
        """The file and byte offset of the batch's event line at `position` (-1 if not known)."""
        for first, rel, offset, starts in reversed(self.event_sources):
            if first <= position:
                return rel, offset + int(starts[position - first])
        return "events", -1

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


def write_batch(cur, batch: Batch, now: dt.datetime,
                host: str = "") -> tuple[dict[str, RunSummary] | None, set[int] | None]:
    """Add a batch through `cur`, inside the caller's transaction. Return the runs touched and the
    hours of trigger time whose runs changed (see run_hours), each None when the runs are more than
    LISTED_RUNS_MAX. Its offsets are those of `host`'s spool."""
    moved = 0  # runs a task definition moved to another group
    if batch.tasks:
        latest = {task["task"]: task for task in batch.tasks}  # a later definition wins
        frame = pd.DataFrame({
            "task": list(latest), "grp": [t["group"] for t in latest.values()],
            "depends_on": [t["depends_on"] for t in latest.values()],
            "description": [t["description"] for t in latest.values()]})
        cur.register("new_tasks", frame)
        cur.execute("DELETE FROM tasks WHERE task IN (SELECT task FROM new_tasks)")
        cur.execute("INSERT INTO tasks SELECT task, grp, depends_on, description, ? FROM new_tasks", [now])
        moved = cur.execute(GROUPS_FROM_TASKS).fetchone()[0]
        cur.unregister("new_tasks")
    touched: dict[str, RunSummary] | None = {}
    hours: set[int] | None = set()
    if batch.transition_count:
        table = batch.transitions_table()
        cur.register("new_transitions", table)
        cur.execute("CREATE OR REPLACE TEMP TABLE touched AS SELECT DISTINCT run_id FROM new_transitions")
        cur.execute("CREATE OR REPLACE TEMP TABLE touched_before AS "
                    "SELECT run_id, started, finished, trigger_time FROM runs WHERE run_id IN (SELECT run_id FROM touched)")
        events = _insert_new_transitions(cur, table)
        cur.execute(recompute_runs(events))
        _report_ends_before_starts(cur, batch)
        cur.unregister("new_transitions")
        # (Each run touched is in runs again: recompute_runs puts back every run it took out.)
        rows = cur.execute("SELECT r.run_id, r.task, r.grp, r.status, r.trigger_time, epoch_ms(r.trigger_time) // ?, "
                           "epoch_ms(b.trigger_time) // ? FROM runs r LEFT JOIN touched_before b USING (run_id) "
                           "WHERE r.run_id IN (SELECT run_id FROM touched) LIMIT ?",
                           [HOUR_MS, HOUR_MS, LISTED_RUNS_MAX + 1]).fetchall()
        touched, hours = None, None
        if len(rows) <= LISTED_RUNS_MAX:
            touched = {run_id: RunSummary(*rest) for run_id, *rest, _, _ in rows}
            hours = {hour for *_, hour, before in rows for hour in (hour, before) if hour is not None}
    if moved:
        hours = None  # (runs moved to another group, in hours not looked up)
    if batch.replaced:
        for (run_id, stream), first in batch.replaced.items():
            cur.execute("DELETE FROM log_text WHERE log_id = (SELECT log_id FROM log_streams "
                        "WHERE run_id = ? AND stream = ?) AND line_no >= ?", [run_id, stream, first])
    if batch.log_line_count:
        cur.register("new_lines", batch.log_lines_table(_log_streams(cur, batch.log_last_lines)))
        cur.execute("INSERT INTO log_text SELECT log_id, line_no, text, visible FROM new_lines")
        cur.unregister("new_lines")
    if batch.errors:
        frame = pd.DataFrame(batch.errors, columns=["file", "offset", "reason", "excerpt"])
        cur.register("new_errors", frame)
        cur.execute('INSERT INTO ingest_errors SELECT file, "offset", reason, excerpt, ? FROM new_errors', [now])
        cur.unregister("new_errors")
    if batch.offsets:
        frame = pd.DataFrame(
            [(host, path, *state) for path, state in batch.offsets.items()],
            columns=["host", "path", "offset", "lines", "in_long_line", "tail"])
        cur.register("new_offsets", frame)
        cur.execute("DELETE FROM ingest_offsets WHERE host = ? AND path IN (SELECT path FROM new_offsets)", [host])
        cur.execute("INSERT INTO ingest_offsets SELECT * FROM new_offsets")
        cur.unregister("new_offsets")
    return touched, hours


def _insert_new_transitions(cur, table: pa.Table) -> str:
    """Insert the events of `table` (registered as new_transitions) that the index does not hold yet;
    return the SQL source of the batch's events as inserted, each once.

    The same event read twice (a duplicate line, a second writer) counts once: the first one read
    (an earlier batch's, or the earliest line of this one). Only the runs the index held before the
    batch (touched_before) and the times of the batch are looked up: a duplicate has the same run and
    time, and the row groups of older events are skipped.
    """
    events = "new_transitions"
    # Numbering the events of each (run, status, time) to keep the first costs a quarter of the
    # insert (110 of 460 ms for 433,000 events); telling first that no two are alike costs 25.
    # (Hashes that collide only take the longer way.)
    if cur.execute("SELECT count(DISTINCT hash(run_id, status, ts)) FROM new_transitions").fetchone()[0] < len(table):
        events = ("(SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY run_id, status, ts ORDER BY position) "
                  "AS nth FROM new_transitions) WHERE nth = 1)")
    held, times = "", []
    if cur.execute("SELECT count(*) FROM touched_before").fetchone()[0]:
        held = """
            ANTI JOIN (SELECT run_id, status, ts FROM transitions
                       WHERE ts BETWEEN ? AND ? AND run_id IN (SELECT run_id FROM touched_before)) t
              ON n.run_id = t.run_id AND n.status = t.status AND n.ts = t.ts"""
        times = [moment.as_py() for moment in pc.min_max(table["ts"]).values()]
    cur.execute(f"INSERT INTO transitions SELECT {', '.join('n.' + c for c in TRANSITION_COLUMNS)} "
                f"FROM {events} n {held} ORDER BY n.position", times)
    return events


def _report_ends_before_starts(cur, batch: Batch) -> None:
    """An ingest error for each run that this batch leaves ending before it started.

    Its events are kept (the pages show its duration as 0 s); the error names the line that made
    it so, once: a later batch that moves neither its start nor its end says nothing again. Past
    LISTED_ENDS_BEFORE_STARTS runs, one more error counts the rest.
    """
    # (The few such runs first: joined with the batch's events at once, they cost 76 ms a batch.)
    rows = cur.execute("""
        WITH ending_early AS MATERIALIZED (
            SELECT run_id, started, finished FROM runs
            WHERE finished < started AND run_id IN (SELECT run_id FROM touched))
        SELECT r.run_id, r.started, r.finished, max(n.position), count(*) OVER ()
        FROM ending_early r JOIN new_transitions n ON n.run_id = r.run_id AND n.ts IN (r.started, r.finished)
        LEFT JOIN touched_before b ON b.run_id = r.run_id
        WHERE b.started IS DISTINCT FROM r.started OR b.finished IS DISTINCT FROM r.finished
        GROUP BY ALL ORDER BY 4 LIMIT ?""", [LISTED_ENDS_BEFORE_STARTS]).fetchall()
    for run_id, started, finished, position, _ in rows:
        batch.errors.append((*batch.event_source(position), f"run {run_id[:80]} ends at {finished.isoformat()}, "
                             f"before it started at {started.isoformat()}: its events are kept and its duration "
                             "shows as 0 s (are its agents' clocks in step?)", ""))
    if rows and rows[0][-1] > len(rows):
        batch.errors.append((batch.event_source(rows[-1][3])[0], -1, f"{rows[0][-1] - len(rows):,} more runs of "
                             "this step end before they started", ""))


def _log_streams(cur, last_lines: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    """The log_id of each (run_id, stream), numbered on for new ones in the order they were read,
    with its line count raised."""
    frame = pd.DataFrame([(*key, last, position) for position, (key, last) in enumerate(last_lines.items())],
                         columns=["run_id", "stream", "last", "position"])
    cur.register("new_streams", frame)
    known = "SELECT s.run_id, s.stream, s.log_id FROM log_streams s JOIN new_streams n ON s.run_id = n.run_id AND s.stream = n.stream"
    log_ids = {(run_id, stream): log_id for run_id, stream, log_id in cur.execute(known).fetchall()}
    if len(log_ids) < len(frame):  # (a live run's next lines, the usual step, number nothing)
        # New numbers are the highest so far plus one: two writers of one lake (two spool hosts)
        # numbering at once must not both commit. Both change the meta row, so DuckLake lets one
        # commit and the other fails and is retried (Index.apply). Local mode has one writer: a no-op.
        cur.execute("UPDATE meta SET value = value WHERE key = 'schema'")
        cur.execute("""
            INSERT INTO log_streams
            SELECT (SELECT coalesce(max(log_id), 0) FROM log_streams) + row_number() OVER (ORDER BY n.position),
                   n.run_id, n.stream, 0
            FROM new_streams n ANTI JOIN log_streams s ON s.run_id = n.run_id AND s.stream = n.stream""")
        log_ids = {(run_id, stream): log_id for run_id, stream, log_id in cur.execute(known).fetchall()}
    cur.execute("""
        UPDATE log_streams SET lines = greatest(lines, n.last) FROM new_streams n
        WHERE log_streams.run_id = n.run_id AND log_streams.stream = n.stream""")
    cur.unregister("new_streams")
    return log_ids


def drop_runs_before(cur, cutoff: dt.datetime) -> int:
    """Delete, inside the caller's transaction, the runs whose last activity (their latest event) is
    before `cutoff`, with their events, log streams and log lines; return how many runs went."""
    cur.execute("CREATE OR REPLACE TEMP TABLE expired_runs AS SELECT run_id FROM runs WHERE updated < ?", [cutoff])
    dropped = cur.execute("SELECT count(*) FROM expired_runs").fetchone()[0]
    if dropped:
        cur.execute("DELETE FROM log_text WHERE log_id IN (SELECT log_id FROM log_streams "
                    "WHERE run_id IN (SELECT run_id FROM expired_runs))")
        for table in ("log_streams", "transitions", "runs"):
            cur.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT run_id FROM expired_runs)")
    cur.execute("DROP TABLE expired_runs")
    return dropped
