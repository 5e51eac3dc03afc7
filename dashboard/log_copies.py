"""Copies of finished logs, kept in memory beside the index and read instead of it: made after a
page or a search first reads a log whose run has ended, in the background, one log at a time.

Two kinds, one per index that reads (see Index.log_copies):
- A lake server's, in its mirror (see lake_mirror): the lines' text and visible text, for pages and
  match jumps, and their folded text for searches. A 500-line page of a log read from the lake costs
  20-30 ms (a snapshot, the table's files and deletes from the catalog, the Parquet files' footers,
  a row group decompressed) where a local index answers it in 2-3 ms.
- A local index's, in a memory database of its own (COPIES_DATABASE): only the folded text, for
  searches, of logs of SEARCH_COPY_MIN_LINES or more. A search lowers every line it reads, two
  thirds of its time: a 2M-line stream took 123-177 ms, 39-90 ms over its folded copy.

The folded text is a line's visible text (see dashboard.terminal) lowered: a search, literal and in
any case, looks for its own text lowered in it. The page or search that asked reads the index; the
ones after it read the copy.

Each copy is filed under a number of its own, never given twice. A log's copy is forgotten as its
lines change (appended after the run ended, a last line completed: a local index's writes, a lake
server's feed) and every copy as runs are deleted (their log ids may be given again) or the database
holding them is made anew; a page that took a copy's number a moment before reads on what it took,
and the rows are deleted a while later. The copies hold at most `budget` bytes of text, the least
recently read dropped first; a log larger than that is not copied.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import duckdb

from .statuses import is_terminal

log = logging.getLogger(__name__)

#: A local index's memory database that holds its copies.
COPIES_DATABASE = "taskdash_log_copies"  # (an index file named so would clash with it)
#: What a search looks for its text in, lowered: the visible text of a line, lowered.
FOLDED = "lower(coalesce(visible, text))"
#: A local index copies logs of at least this many lines (a search of 100,000 takes 10-14 ms, 5-11 over its copy).
SEARCH_COPY_MIN_LINES = 50_000
#: The most bytes of text the copies hold, whatever the memory DuckDB may use (a quarter of it, if less).
BUDGET_BYTES = 512 * 2**20
#: Lines read in one statement while a log is copied (its size checked after each).
COPY_LINES = 250_000
#: A log not copied because its run is still running (or it is short) is looked at again after this many seconds.
RETRY_SECONDS = 5.0
#: A forgotten copy's rows are deleted once it has been forgotten this long (a page may still read it).
DELETE_AFTER_SECONDS = 5.0


class LogCopies:
    """The copies of one index, and the thread that makes them."""

    def __init__(self, database: str, pages: bool, budget: int = BUDGET_BYTES, min_lines: int = 0):
        #: The table of copied lines, in `database`: log_id is a copy's number, `folded` its lines'
        #: FOLDED text, and with `pages` their text and visible text too. (They are copied from the
        #: log_text an index's cursor reads, its log_streams and runs saying how many and whether finished.)
        self.table = f"{database}.main.log_copies"
        self.pages = pages
        self._database = database
        self.budget = budget
        #: A log of fewer lines is not copied (read where it is, it costs about what its copy would).
        self.min_lines = min_lines
        self._lock = threading.Lock()
        #: log_id -> (copy number, bytes), the least recently read first.
        self._held: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self._copying: set[int] = set()
        #: Logs being copied whose lines changed meanwhile: their copy is thrown away.
        self._stale: set[int] = set()
        #: log_id -> when a copy may be tried again (math.inf: too large; a log's lines only grow).
        self._not_before: dict[int, float] = {}
        self._forgotten: list[tuple[float, int]] = []  # (time.monotonic(), copy number)
        self._numbers = 0
        self._closed = False
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskdash-log-copies")

    def source(self, index, log_id: int) -> tuple[str, int]:
        """Where the log's lines are read: (the copies' table, its number) once it is copied; else
        (log_text, log_id), and a copy is made for the reads after it if its run has ended."""
        with self._lock:
            held = self._held.get(log_id)
            if held is not None:
                self._held.move_to_end(log_id)
                return self.table, held[0]
            if (not self._closed and log_id not in self._copying
                    and time.monotonic() >= self._not_before.get(log_id, 0.0)):
                self._copying.add(log_id)
                self._numbers += 1
                self._worker.submit(self._copy, index, log_id, self._numbers)
        return "log_text", log_id

    def held(self, log_id: int) -> bool:
        with self._lock:
            return log_id in self._held

    def known(self) -> set[int]:
        """The logs copied or being copied."""
        with self._lock:
            return set(self._held) | self._copying

    def forget(self, log_ids: Iterable[int] | None = None) -> None:
        """These logs' lines changed (None: any log's, or the mirror is new): pages read them from
        the lake again, and a copy under way is thrown away."""
        now = time.monotonic()
        with self._lock:
            if log_ids is None:  # (log ids may be given again: what was known of them is not kept)
                self._not_before.clear()
            for log_id in set(self._held) | self._copying if log_ids is None else set(log_ids):
                held = self._held.pop(log_id, None)
                if held is not None:
                    self._forgotten.append((now, held[0]))
                if log_id in self._copying:
                    self._stale.add(log_id)

    def close(self) -> None:
        """Stop making copies (one under way ends at its next statement); before the connection closes."""
        with self._lock:
            self._closed = True
        self._worker.shutdown(wait=True, cancel_futures=True)

    def _copy(self, index, log_id: int, number: int) -> None:
        retry = time.monotonic() + RETRY_SECONDS  # (unless it is copied, or too large)
        try:
            with index.cursor() as cur:
                columns = "text VARCHAR USING COMPRESSION uncompressed, visible VARCHAR USING COMPRESSION uncompressed, " \
                    if self.pages else ""
                cur.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (log_id BIGINT, line_no BIGINT, "
                            f"{columns}folded VARCHAR USING COMPRESSION uncompressed)")
                self._delete_forgotten(cur)
                row = cur.execute("SELECT s.lines, r.status FROM log_streams s JOIN runs r USING (run_id) "
                                  "WHERE s.log_id = ?", [log_id]).fetchone()
                if row is None or not is_terminal(row[1]) or row[0] < self.min_lines:
                    return
                size = self._copied(cur, log_id, number, row[0])
                if size is None:
                    retry = math.inf
                    return
                with self._lock:
                    kept = log_id not in self._stale and not self._closed
                    if kept:
                        self._held[log_id] = (number, size)
                        self._evict(keep=log_id)
                if not kept:  # (its number was never handed out: no page reads it)
                    cur.execute(f"DELETE FROM {self.table} WHERE log_id = ?", [number])
                    retry = time.monotonic()
        except duckdb.Error as exc:  # the catalog gone away, the connection closed: the index is read
            log.info("a log's lines could not be copied: %s", str(exc).splitlines()[0])
        finally:
            with self._lock:
                if log_id in self._copying and log_id not in self._held:
                    self._not_before[log_id] = retry
                self._copying.discard(log_id)
                self._stale.discard(log_id)

    def _copied(self, cur, log_id: int, number: int, lines: int) -> int | None:
        """Copy the log's lines under `number`; their bytes, or None (nothing kept) when they are more
        than the budget. duckdb.Error if they are not the `lines` its stream counts."""
        copied_columns = "text, visible, " if self.pages else ""
        text_bytes = "strlen(text) + coalesce(strlen(visible), 0) + " if self.pages else ""
        size = copied = 0
        for first in range(1, lines + 1, COPY_LINES):
            if self._closed:
                break
            cur.execute(f"INSERT INTO {self.table} SELECT ?, line_no, {copied_columns}{FOLDED} FROM log_text "
                        "WHERE log_id = ? AND line_no >= ? AND line_no < ?", [number, log_id, first, first + COPY_LINES])
            more, count = cur.execute(f"SELECT coalesce(sum({text_bytes}strlen(folded)), 0), count(*) "
                                      f"FROM {self.table} WHERE log_id = ? AND line_no >= ?", [number, first]).fetchone()
            size, copied = size + more, copied + count
            if size > self.budget:
                log.info("the log %d is larger than the copies may be (%d MB): it is read from the index",
                         log_id, self.budget >> 20)
                cur.execute(f"DELETE FROM {self.table} WHERE log_id = ?", [number])
                return None
        if copied != lines:  # (lines came or went meanwhile: they are forgotten as they change)
            cur.execute(f"DELETE FROM {self.table} WHERE log_id = ?", [number])
            raise duckdb.InvalidInputException(f"the log {log_id} had {copied:,} lines, its stream {lines:,}")
        return size

    def _evict(self, keep: int) -> None:
        """Forget the least recently read copies until they fit the budget (with the lock held)."""
        total = sum(size for _, size in self._held.values())
        while total > self.budget:
            oldest = next(iter(self._held))
            if oldest == keep:
                return
            number, size = self._held.pop(oldest)
            self._forgotten.append((time.monotonic(), number))
            total -= size

    def _delete_forgotten(self, cur) -> None:
        """Delete the rows of copies forgotten long enough ago, and give their memory back."""
        deadline = time.monotonic() - DELETE_AFTER_SECONDS
        with self._lock:
            due = [number for when, number in self._forgotten if when <= deadline]
            self._forgotten = [(when, number) for when, number in self._forgotten if when > deadline]
        if due:
            cur.execute(f"DELETE FROM {self.table} WHERE list_contains(?, log_id)", [due])
            cur.execute(f"CHECKPOINT {self._database}")  # (compressed, and their memory given back)
