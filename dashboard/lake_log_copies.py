"""A lake server's copies of finished logs: the lines of a log whose run has ended, copied from the
lake into the server's mirror (see lake_mirror) after a page first reads it, so that its next pages,
searches and match jumps stay in the server.

A 500-line page of a log read from the lake costs 20-30 ms (a snapshot, the table's files and
deletes from the catalog, the Parquet files' footers, a row group decompressed) where a local index
answers it in 2-3 ms; a search over 2M lines, 270-320 ms where a local index takes half. The page
that asked reads the lake; a copy is made in the background, one log at a time, and the pages after
it read the copy.

Each copy is filed under a number of its own, never given twice. The feed forgets a log's copy as
its lines change (appended after the run ended, a last line completed: its log_streams row changes)
or every copy (runs deleted, whose log ids may be given again; the mirror copied anew); a page that
took a copy's number a moment before reads on what it took, and the rows are deleted a while later.
The copies hold at most `budget` bytes of text, the least recently read dropped first; a log larger
than that is not copied.
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

from .lake import LAKE
from .lake_mirror import MIRROR, compact
from .statuses import is_terminal

log = logging.getLogger(__name__)

#: The mirror's table of copied lines: log_text's columns, filed under a copy's number.
COPIES = f"{MIRROR}.main.log_copies"
#: The most bytes of text the copies hold, whatever the memory DuckDB may use (a quarter of it, if less).
BUDGET_BYTES = 512 * 2**20
#: Lines read from the lake in one statement while a log is copied (its size checked after each).
COPY_LINES = 250_000
#: A log not copied because its run is still running is looked at again after this many seconds.
RETRY_SECONDS = 5.0
#: A forgotten copy's rows are deleted once it has been forgotten this long (a page may still read it).
DELETE_AFTER_SECONDS = 5.0


class LogCopies:
    """The copies of one lake server's mirror, and the thread that makes them."""

    def __init__(self, budget: int = BUDGET_BYTES):
        self.budget = budget
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
        """Where a page reads the log's lines: (the copies, its number) once it is copied; else
        (log_text, log_id), and a copy is made for the pages after it if its run has ended."""
        with self._lock:
            held = self._held.get(log_id)
            if held is not None:
                self._held.move_to_end(log_id)
                return COPIES, held[0]
            if (not self._closed and log_id not in self._copying
                    and time.monotonic() >= self._not_before.get(log_id, 0.0)):
                self._copying.add(log_id)
                self._numbers += 1
                self._worker.submit(self._copy, index, log_id, self._numbers)
        return "log_text", log_id

    def held(self, log_id: int) -> bool:
        with self._lock:
            return log_id in self._held

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
                self._delete_forgotten(cur)
                row = cur.execute(f"SELECT s.lines, r.status FROM {MIRROR}.main.log_streams s "
                                  f"JOIN {MIRROR}.main.runs r USING (run_id) WHERE s.log_id = ?", [log_id]).fetchone()
                if row is None or not is_terminal(row[1]):
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
                    cur.execute(f"DELETE FROM {COPIES} WHERE log_id = ?", [number])
                    retry = time.monotonic()
        except duckdb.Error as exc:  # the catalog gone away, the connection closed: the lake is read
            log.info("a log's lines could not be copied into this server's mirror: %s", str(exc).splitlines()[0])
        finally:
            with self._lock:
                if log_id in self._copying and log_id not in self._held:
                    self._not_before[log_id] = retry
                self._copying.discard(log_id)
                self._stale.discard(log_id)

    def _copied(self, cur, log_id: int, number: int, lines: int) -> int | None:
        """Copy the log's lines from the lake under `number`; their bytes, or None (nothing kept)
        when they are more than the budget. duckdb.Error if they are not the `lines` its stream counts."""
        cur.execute(f"CREATE TABLE IF NOT EXISTS {COPIES} (log_id BIGINT, line_no BIGINT, "
                    "text VARCHAR USING COMPRESSION uncompressed, visible VARCHAR USING COMPRESSION uncompressed)")
        size = copied = 0
        for first in range(1, lines + 1, COPY_LINES):
            if self._closed:
                break
            cur.execute(f"INSERT INTO {COPIES} SELECT ?, line_no, text, visible FROM {LAKE}.main.log_text "
                        "WHERE log_id = ? AND line_no >= ? AND line_no < ?", [number, log_id, first, first + COPY_LINES])
            more, count = cur.execute(f"SELECT coalesce(sum(strlen(text) + coalesce(strlen(visible), 0)), 0), count(*) "
                                      f"FROM {COPIES} WHERE log_id = ? AND line_no >= ?", [number, first]).fetchone()
            size, copied = size + more, copied + count
            if size > self.budget:
                log.info("the log %d is larger than this server's copies may be (%d MB): its pages read the lake",
                         log_id, self.budget >> 20)
                cur.execute(f"DELETE FROM {COPIES} WHERE log_id = ?", [number])
                return None
        if copied != lines:  # (lines came or went meanwhile: the feed will tell)
            cur.execute(f"DELETE FROM {COPIES} WHERE log_id = ?", [number])
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
            cur.execute(f"DELETE FROM {COPIES} WHERE list_contains(?, log_id)", [due])
            compact(cur)
