"""The ingestor: tails the spool and writes the index; the only writer of its index.

Each step reads what was appended since the stored offsets, and commits the rows together
with the new offsets, so a restart (or a kill) neither loses nor doubles anything. Pushes
come from watchfiles; a slow rescan catches anything a push missed (see RESCAN_FOLDERS).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import watchfiles

from . import bad_lines, event_lines
from .formatting import utcnow
from .hub import Change, Hub
from .index import RETENTION_SECONDS, Index, is_corruption
from .index_writes import Batch
from .lake import LakeError
from .log_lines import MAX_LINE_CHARS, cut_line, line_array, newline_positions
from .spool import (STREAMS, SpoolError, SpoolFolders, SpoolUnreadableError, decode_event_lines, events_dir, folder_id,
                    logs_dir, validate_run_id)
from .statuses import TERMINAL, is_terminal, sql_list

log = logging.getLogger(__name__)

READ_CHUNK = 8 * 1024 * 1024  # bytes read from one file in one step
BATCH_LINES = 400_000  # log lines (or events) gathered before a commit
BATCH_BYTES = 64 * 1024 * 1024
#: Files' worth of log lines gathered before a commit: a catch-up of 20,000 run folders of one
#: line each in one batch took 61 s and 856 MB (each chunk an Arrow array then, the insert
#: superlinear). Since chunks are split together (Batch.split_log_lines), 10,000 gains nothing.
BATCH_LOG_CHUNKS = 2_000
#: A followed step reads at most about this much of one file; the rest is read at the next
#: wake, with the other files' changes (48 MB of junk in one file held them up for 3-7 s, 30 s at worst).
STEP_FILE_BYTES = 32 * 1024 * 1024
#: The watch loop wakes at least this often, so full scans start on time.
WAKE_MS = 500
#: After a failed step (the index's disk full, say) a full scan retries after this many seconds,
#: doubling while it fails, up to RETRY_MAX_SECONDS (it was the 30 s rescan period: a disk full
#: for a minute then took 34 s to recover).
RETRY_SECONDS = 2.0
RETRY_MAX_SECONDS = 5.0
#: A run folder changed this recently is listed again, even if its time looks the same.
FOLDER_SETTLED_NS = 2_000_000_000
#: The watcher watches events/, logs/ (for new run folders) and each run folder still open: its
#: run under way (not terminal in the index) or ended within this many seconds, or the folder made
#: or given a file within them (the newest WATCHED_FOLDERS_MAX at most); the others are read by the
#: rescans. Watching the whole spool took an inotify watch a folder: past the system's limit
#: (fs.inotify.max_user_watches, 8,192 on many systems) the watcher failed and the ingestor fell
#: back to a full rescan every 2 s (200,000 run folders: 64 % of a core, a line 4.3 s late).
OPEN_FOLDER_SECONDS = 15 * 60
WATCHED_FOLDERS_MAX = 4_096
#: A periodic rescan looks at events/, at every run folder open and at this many of the others, in
#: turn: a late line in a run folder closed long ago waits at most ceil(run folders / RESCAN_FOLDERS)
#: rescans. Looking at every folder cost a rescan time in proportion to the history (200,000 run
#: folders: 1.85 s of a core every 30 s, every live line held up meanwhile; 1M: about 9 s).
RESCAN_FOLDERS = 20_000
#: The whole index is read this often, so a damaged block is found even where no page looks
#: (DuckDB checks a block's checksum as it reads it).
CHECK_SECONDS = 600.0
#: A catch-up that read this many events rewrites the runs table in trigger order.
CLUSTER_AFTER_EVENTS = 200_000
#: Event lines handled in one read: a chunk of 8 MiB of `x` lines is 4M lines, and each costs
#: about 50 bytes of arrays while it is parsed (646 MB peak for 48 MB of them at 4M).
EVENT_LINES_MAX = 262_144
IGNORED = -1  # the offset of a file that breaks the contract: reported once, then left alone
#: A log's last line without its newline becomes a line once its run is terminal or its file
#: has been quiet this long (many real logs end so: `Done in 96.34s.`, curl's last progress line).
QUIET_SECONDS = 2.0

#: (byte offset, lines read, inside a cut over-long line, bytes of an unterminated last line
#: indexed as line `lines + 1`, which starts at the offset and is read again when the file grows)
Offset = tuple[int, int, bool, int]


@dataclass
class IngestHealth:
    """How the ingestor is doing, for the connection indicator and the CLI."""

    last_step: float | None = None
    failure: str | None = None
    errors_recorded: int = 0
    #: When (epoch seconds) the index last held all the spool had, and how many seconds reading
    #: it took then (close to 0 when nothing was new): what a page says it is current as of.
    current_at: float | None = None
    behind: float | None = None
    #: What the index is read from, as the indicator names it (a lake server's feed says "lake").
    source: str = "spool"

    def current(self, seen: float) -> None:
        """The index now holds everything the spool had at `seen`."""
        self.current_at, self.behind = seen, max(0.0, time.time() - seen)


@dataclass
class Committing:
    """A batch handed to the index, and what the ingestor takes as read once it is committed."""

    batch: Batch
    #: the files that could not be read, and why, which the batch records as ingest errors
    unreadable: dict[str, str]
    #: the inode of each file read since the batch before it was handed off
    inodes: dict[str, int]
    #: Index.apply's answer, to come (None: nothing to commit)
    applied: Future | None


def _called(function: Callable, *args) -> Future:
    """`function(*args)` called now, as a Future done with its result or its exception."""
    future = Future()
    try:
        future.set_result(function(*args))
    except BaseException as exc:
        future.set_exception(exc)
    return future


class Ingestor:
    """Reads a spool folder into an Index and tells the hub what changed."""

    def __init__(self, index: Index, spool: str | Path, hub: Hub | None = None,
                 rescan_seconds: float = 30.0, debounce_ms: int = 50, check_seconds: float = CHECK_SECONDS,
                 retention_days: float | None = None):
        self.index = index
        #: Runs whose last activity is older than this many days are dropped (None: kept for ever).
        self.retention_days = retention_days
        self.spool = Path(spool)
        self.hub = hub
        self.rescan_seconds = rescan_seconds
        self.debounce_ms = debounce_ms
        self.health = IngestHealth()
        self.check_seconds = check_seconds
        try:
            self._offsets: dict[str, Offset] = index.load_offsets()
        except duckdb.Error as exc:
            if not is_corruption(exc):
                raise
            index.rebuild()
            self._offsets = {}
        self._event_parser: event_lines.EventLineParser | None = None  # made on first big chunk
        self._step_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Set once a full scan of the spool has been indexed (the catch-up after a start).
        self.caught_up = threading.Event()
        #: The inode of each file as last read into a committed batch (in this process): a log
        #: rotated by renaming a new file into place has a new one, whatever its size.
        self._inodes: dict[str, int] = {}
        self._read_inodes: dict[str, int] = {}  # read in this step, not committed yet
        #: ... and of those, read since the last batch was handed off (a batch carries only these: all
        #: of them, 200,000 files' in a catch-up, were copied at each of its 100 batches)
        self._inodes_to_hand_off: dict[str, int] = {}
        self._committing: Committing | None = None  # the batch being committed while the next is read
        #: Log files whose last line waits for its newline: path -> run_id.
        self._pending_tails: dict[str, str] = {}
        self._bad_lines = bad_lines.BadLineLog()
        #: Files a followed step left unfinished (STEP_FILE_BYTES): read on at the next wake.
        self._backlog: set[str] = set()
        self._short_lines: dict[str, int] = {}  # file -> bytes to read next (see EVENT_LINES_MAX)
        #: Files and folders that cannot be read now, each said once while it lasts: rel -> why,
        #: until an ingest error says so, then None.
        self._unreadable: dict[str, str | None] = {}
        self._reopen_index = False  # DuckDB gave up on the database: the next step opens it again
        events_dir(self.spool).mkdir(parents=True, exist_ok=True)
        logs_dir(self.spool).mkdir(parents=True, exist_ok=True)
        self._spool_path = str(self.spool)
        #: Each run folder's files as last listed (paths relative to the spool), and its modification
        #: time then: name -> (ns, files).
        self._run_folders: dict[str, tuple[int, tuple[str, ...]]] = {}
        #: The run folders open (see OPEN_FOLDER_SECONDS) as of the last full scan, the newest of them
        #: that the watcher watches, and those made since.
        self._open_folders: set[str] = set()
        self._watched_folders: set[str] = set()
        self._added_folders: set[str] = set()
        self._rescan_turn = 0  # where in _run_folders the next rescan's share of closed folders starts
        #: Which folders events/ and logs/ are: either may be a link (logs on a bigger disk, say).
        self._folders = {"events": folder_id(events_dir(self.spool)), "logs": folder_id(logs_dir(self.spool))}
        self._spool_folders: SpoolFolders | None = None  # a step's, while it reads (see _read_files)

    # ---- one step ---------------------------------------------------------------------

    def catch_up(self, paths: Iterable[str] | None = None,
                 progress: Callable[[int], None] | None = None, limit: int | None = None,
                 looked_at: set[str] | None = None) -> dict[str, int]:
        """Ingest everything appended (to `paths`, or the whole spool); return what was added.

        With a `limit`, at most about that many bytes of each file: the rest waits in the backlog.
        With `looked_at` (a rescan's share of the run folders: see RESCAN_FOLDERS), the whole spool
        is events/, the run folders in it and new ones."""
        added = {"events": 0, "log_lines": 0, "errors": 0}
        with self._step_lock:
            self._read_inodes.clear()
            self._inodes_to_hand_off.clear()
            files = self.spool_files(looked_at) if paths is None else sorted(set(paths))
            self._backlog.difference_update(files)
            self._read_files(files, added, progress, limit)
            # A run that became terminal in this step ends its logs' unterminated last lines.
            if due := self.due_tails():
                self._read_files(due, added, progress)
            if added["events"] >= CLUSTER_AFTER_EVENTS:
                self.index.cluster_runs()
            self.health.last_step = time.time()
            self.health.failure = None
        return added

    def _read_files(self, files: list[str], added: dict[str, int],
                    progress: Callable[[int], None] | None, limit: int | None = None) -> None:
        # One chunk of each file in turn: a huge file (or megabytes of junk) does not hold up
        # the other files of the step until it is read to its end. A full batch is committed on
        # a thread of its own while the next one is read: reading and splitting the files keeps
        # one core busy and DuckDB's insert the other (20M log lines: 21.2 -> 18.1 s).
        batch, batch_bytes, taken = self._new_batch(), 0, dict.fromkeys(files, 0)
        with (SpoolFolders(self.spool, self._folders) as self._spool_folders,
              ThreadPoolExecutor(1, thread_name_prefix="taskdash-commit") as committer):
            try:
                while files:
                    unfinished = []
                    for rel in files:
                        read, more = self._read(rel, batch)
                        batch_bytes += read
                        taken[rel] += read
                        if more and limit is not None and taken[rel] >= limit:
                            self._backlog.add(rel)
                            more = False
                        if progress and read:
                            progress(read)
                        if (batch.log_line_count + batch.event_lines_read >= BATCH_LINES
                                or batch_bytes >= BATCH_BYTES or len(batch.log_chunks) >= BATCH_LOG_CHUNKS):
                            self._committed(added)
                            self._hand_off(batch, committer)
                            batch, batch_bytes = self._new_batch(), 0
                        if more:
                            unfinished.append(rel)
                    files = unfinished
                self._committed(added)
                self._hand_off(batch)  # the last one here: a step of one batch (a live step) needs no thread
            finally:  # (also when reading failed: what is in the index, the ingestor must know)
                self._committed(added)

    def _new_batch(self) -> Batch:
        self._bad_lines.new_batch()
        return Batch()

    def _bad_line(self, batch: Batch, rel: str, offset: int, reason: str, raw: bytes) -> None:
        self._bad_lines.add(batch.errors, rel, offset, reason, raw)

    def _unreadable_now(self, rel: str, reason: str) -> None:
        self._unreadable.setdefault(rel, reason)  # recorded by the next commit

    def due_tails(self) -> list[str]:
        """Log files whose unterminated last line should now be a line (see QUIET_SECONDS)."""
        if not self._pending_tails:
            return []
        ended = self._terminal_runs(set(self._pending_tails.values()))
        return sorted(rel for rel, run_id in list(self._pending_tails.items())
                      if run_id in ended or self._quiet(rel))

    def _tail_due(self, rel: str, run_id: str) -> bool:
        return self._quiet(rel) or bool(self._terminal_runs({run_id}))

    def _quiet(self, rel: str) -> bool:
        try:
            return time.time() - os.stat(self.spool / rel).st_mtime >= QUIET_SECONDS
        except OSError:  # gone, or replaced by a link to itself
            self._pending_tails.pop(rel, None)
            return False

    def _terminal_runs(self, run_ids: set[str]) -> set[str]:
        with self.index.cursor() as cur:
            rows = cur.execute("SELECT run_id, status FROM runs WHERE list_contains(?, run_id)",
                               [sorted(run_ids)]).fetchall()
        return {run_id for run_id, status in rows if is_terminal(status)}

    def _hand_off(self, batch: Batch, committer: ThreadPoolExecutor | None = None) -> None:
        """Start committing a batch read, on `committer` (or at once); the files' next chunks are
        read from where it ends."""
        batch.errors += self._bad_lines.summaries()
        self._bad_lines.hand_off()
        unreadable = {rel: reason for rel, reason in self._unreadable.items() if reason is not None}
        batch.errors += [(rel, self._offsets.get(rel, (0,))[0], reason, "") for rel, reason in unreadable.items()]
        applied = None
        if batch:
            applied = (committer.submit(self.index.apply, batch) if committer is not None
                       else _called(self.index.apply, batch))
        self._committing = Committing(batch, unreadable, self._inodes_to_hand_off, applied)
        self._inodes_to_hand_off = {}

    def _committed(self, added: dict[str, int]) -> None:
        """Wait for the batch handed off (if any) to be committed, then take what it read as read."""
        committing, self._committing = self._committing, None
        if committing is None:
            return
        try:
            touched = committing.applied.result() if committing.applied is not None else None
        except BaseException:
            self._bad_lines.committed(False)
            raise
        batch = committing.batch
        self._inodes.update(committing.inodes)
        self._bad_lines.committed(True)
        if committing.applied is None:  # the files looked at had nothing new: as committed
            return
        for rel, reason in committing.unreadable.items():  # said, while it lasts
            if self._unreadable.get(rel) == reason:
                self._unreadable[rel] = None
        self._offsets.update(batch.offsets)
        added["events"] += len(batch.tasks) + batch.transition_count
        added["log_lines"] += batch.log_line_count
        added["errors"] += len(batch.errors)
        self.health.errors_recorded += len(batch.errors)
        if self.hub is not None:
            self.hub.publish(Change(runs=touched or {}, many_runs=touched is None,
                                    log_lines=dict(batch.log_last_lines), tasks=bool(batch.tasks),
                                    errors=len(batch.errors)))

    def spool_files(self, looked_at: set[str] | None = None) -> list[str]:
        """Every file of the spool the contract knows of, as paths relative to the spool; with
        `looked_at`, of the run folders in it and of those not listed before alone (see RESCAN_FOLDERS).

        Anything but a folder is listed (a link, FIFO or socket too): reading it says why it is
        not read. A run folder that cannot be listed is an ingest error (once while it lasts).
        Run folders come oldest first (by when their last file was made) until the ingestor has
        caught up once: a catch-up of a spool's history then stores its logs in time order, as a
        live ingest does, and reads of recent runs' logs skip the older ones' row groups. After
        that only folders listed anew are sorted, after the others (whose files are mostly read
        to their end: sorting all of 18,000 folders cost a rescan 40 ms more, 76 -> 117 ms).
        """
        files = []
        with os.scandir(events_dir(self.spool)) as entries:
            files += sorted(f"events/{e.name}" for e in entries if e.name.endswith(".jsonl") and not _is_dir(e))
        now = time.time_ns()
        sort_all = not self.caught_up.is_set()
        by_age = []  # (when changed, their files)
        with os.scandir(logs_dir(self.spool)) as run_dirs:
            for run_dir in run_dirs:
                listed = self._run_folders.get(run_dir.name)
                if looked_at is not None and listed is not None and run_dir.name not in looked_at:
                    continue
                if not _is_dir(run_dir, follow_symlinks=True):
                    continue
                rel = f"logs/{run_dir.name}/"
                try:
                    changed = run_dir.stat().st_mtime_ns
                except OSError:
                    continue
                # A folder unchanged since it was listed (and not just now: a file created in the
                # same clock tick) has the same files: a stat instead of listing it again.
                if listed is not None and listed[0] == changed and now - changed > FOLDER_SETTLED_NS:
                    if sort_all:
                        by_age.append(listed)
                    else:
                        files += listed[1]
                    continue
                try:
                    with os.scandir(run_dir.path) as logs:
                        names = tuple(rel + e.name for e in logs if not _is_dir(e))
                except (FileNotFoundError, NotADirectoryError):  # removed or replaced while listed
                    continue
                except OSError as exc:  # no permission, say: the other runs flow on
                    self._unreadable_now(rel, f"run folder cannot be listed: {exc.strerror}")
                    continue
                self._unreadable.pop(rel, None)
                self._run_folders[run_dir.name] = (changed, names)
                by_age.append((changed, names))
        by_age.sort(key=lambda folder: folder[0])
        return files + [rel for _, folder in by_age for rel in folder]

    def _read(self, rel: str, batch: Batch) -> tuple[int, bool]:
        """Read one chunk of a file into the batch; return (bytes consumed, whether more is left)."""
        offset, lines, in_long_line, tail = (batch.offsets.get(rel) or self._committing_offsets().get(rel)
                                             or self._offsets.get(rel, (0, 0, False, 0)))
        if offset == IGNORED:
            return 0, False
        if self._unchanged(rel, offset + tail):
            return 0, False
        kind, run_id, stream = self._classify(rel)
        if kind is not None:
            try:  # the check is the open: a link swapped in after the listing is refused
                fd = self._spool_folders.open(rel)
            except FileNotFoundError:  # vanished since it was listed
                return 0, False
            except SpoolUnreadableError as exc:  # tried again at each step; said once while it lasts
                self._unreadable_now(rel, str(exc))
                return 0, False
            except SpoolError as exc:
                kind, run_id = None, str(exc)
            else:
                self._unreadable.pop(rel, None)
        if kind is None:
            batch.errors.append((rel, 0, run_id, ""))  # run_id holds the reason here
            batch.offsets[rel] = (IGNORED, 0, False, 0)
            return 0, False
        info = os.fstat(fd)
        size, known_inode = info.st_size, self._read_inodes.get(rel, self._inodes.get(rel))
        self._read_inodes[rel] = self._inodes_to_hand_off[rel] = info.st_ino
        if offset and known_inode not in (None, info.st_ino):
            batch.errors.append((rel, offset, "file replaced by a new file (rotated): reading the new one "
                                 "from its start", ""))
            offset, lines, in_long_line, tail = 0, lines + bool(tail), False, 0  # the old last line stays
        elif size < offset + tail:
            batch.errors.append((rel, offset + tail, f"file shrank from {offset + tail:,} to {size:,} bytes "
                                 "(truncated or replaced): reading it again from its start", ""))
            offset, lines, in_long_line, tail = 0, lines + bool(tail), False, 0
        try:
            if size == offset + tail:
                return 0, False
            if tail:  # the unterminated last line grew: it is read again, as line lines + 1
                batch.replace_lines_from(run_id, stream, lines + 1)
            # After a read cut at EVENT_LINES_MAX, read about that much again, not a whole chunk.
            data = os.pread(fd, min(size - offset, READ_CHUNK, self._short_lines.pop(rel, READ_CHUNK)), offset)
        finally:
            os.close(fd)
        start = 0
        if in_long_line:  # the rest of a line already cut: skip to its end
            newline = data.find(b"\n")
            if newline < 0:
                batch.offsets[rel] = (offset + len(data), lines, True, 0)
                return len(data), offset + len(data) < size
            start, in_long_line = newline + 1, False
        end = data.rfind(b"\n") + 1
        if end <= start and len(data) >= READ_CHUNK:
            # A line longer than a whole chunk: keep a log line's head, skip the rest.
            if kind == "logs":
                # Short enough that head and marker together are not cut a second time.
                head = data[start:start + MAX_LINE_CHARS * 4].decode("utf-8", "replace")[:MAX_LINE_CHARS - 100]
                cut = cut_line(head, length=f"over {READ_CHUNK:,} bytes")
                batch.add_log_lines(run_id, stream, lines + 1, (cut + "\n").encode())
                lines += 1
            else:
                self._bad_line(batch, rel, offset + start, f"event line longer than {READ_CHUNK:,} bytes",
                               data[start:start + bad_lines.EXCERPT_BYTES])
            batch.offsets[rel] = (offset + len(data), lines, True, 0)
            return len(data), True
        end = max(end, start)
        count = 0
        if end > start:
            if kind == "events" and data.count(b"\n", start, end) > EVENT_LINES_MAX:
                # A chunk of short lines: the rest is read next (memory goes by lines, not bytes).
                end = start + int(newline_positions(data[start:end])[EVENT_LINES_MAX - 1]) + 1
                self._add_events(rel, offset + start, data[start:end], batch)
                batch.offsets[rel] = (offset + end, 0, False, 0)
                self._short_lines[rel] = 2 * end
                return end, True
            chunk = data[start:end]
            if kind == "events":
                count = self._add_events(rel, offset + start, chunk, batch)
            else:
                count = batch.add_log_lines(run_id, stream, lines + 1, chunk)
        # What follows the last newline of the file waits for its newline, except a log's
        # last line once due (an event line always waits: the contract says so).
        rest = data[end:] if offset + len(data) == size else b""
        new_tail = 0
        if rest and kind == "logs" and (tail or self._tail_due(rel, run_id)):
            batch.add_log_lines(run_id, stream, lines + count + 1, rest + b"\n")
            new_tail = len(rest)
        if rest and kind == "logs" and not new_tail:
            self._pending_tails[rel] = run_id
        else:
            self._pending_tails.pop(rel, None)
        if end or new_tail or tail:
            batch.offsets[rel] = (offset + end, lines + count, False, new_tail)
        return end + new_tail, offset + len(data) < size

    def _committing_offsets(self) -> dict[str, Offset]:
        return self._committing.batch.offsets if self._committing is not None else {}

    def _unchanged(self, rel: str, size: int) -> bool:
        """Whether a file read to its end is as it was then: one lstat instead of the safe open
        (the periodic rescan of 100,000 run folders costs this much less)."""
        known = self._read_inodes.get(rel, self._inodes.get(rel))
        if known is None or rel in self._pending_tails:
            return False
        try:
            info = os.lstat(f"{self._spool_path}/{rel}")
        except OSError:
            return False
        return stat.S_ISREG(info.st_mode) and info.st_ino == known and info.st_size == size

    @staticmethod
    def _classify(rel: str) -> tuple[str | None, str, str]:
        """('events', '', '') or ('logs', run_id, stream), or (None, reason, '') for a stray file."""
        parts = rel.split("/")
        if parts[0] == "events":
            return "events", "", ""
        try:
            validate_run_id(parts[1])
        except SpoolError as exc:
            return None, f"log folder ignored: {exc}", ""
        stream = parts[-1].removesuffix(".log")
        if len(parts) != 3 or stream not in STREAMS or not parts[-1].endswith(".log"):
            return None, "not a log file of the contract: use logs/<run_id>/stdout.log or stderr.log", ""
        return "logs", parts[1], stream

    def _add_events(self, rel: str, offset: int, chunk: bytes, batch: Batch) -> int:
        """Add the complete event lines of `chunk` (read at `offset`); return how many there were."""
        newlines = newline_positions(chunk)
        starts = np.concatenate([[0], newlines[:-1] + 1])
        possible = bad_lines.possible_events(chunk, starts, newlines)
        candidates = np.flatnonzero(possible)
        by_python = candidates
        first = batch.event_lines_read  # the batch's events keep the order of their lines
        batch.event_sources.append((first, rel, offset, starts))
        if len(candidates) >= event_lines.MIN_LINES and is_utf8(chunk):
            if self._event_parser is None:
                self._event_parser = event_lines.EventLineParser()
            lines = line_array(chunk, newlines)
            try:  # only lines that may be events: junk never costs a query
                parsed, rejected = self._event_parser.parse(
                    lines if len(candidates) == len(newlines) else lines.filter(pa.array(possible)))
            except duckdb.Error:  # never seen; a line DuckDB cannot take must not stop the ingest
                log.exception("bulk parse of %s at %d failed: reading its lines one by one", rel, offset)
            else:
                lines_of = candidates[parsed.column("position").to_numpy()]
                parsed, lines_of = self._within_window(rel, offset, chunk, starts, newlines, parsed, lines_of, batch)
                position = parsed.schema.get_field_index("position")
                batch.transition_tables.append(parsed.set_column(position, "position", pa.array(lines_of + first)))
                by_python = candidates[rejected]
        batch.event_lines_read += len(newlines)
        junk = np.flatnonzero(~possible)
        for n in by_python:
            raw, line_offset = chunk[starts[n]:newlines[n]], offset + int(starts[n])
            if not raw.strip():
                continue
            try:
                events = decode_event_lines(raw)  # an OpenLineage line may stand for several
            except SpoolError as exc:
                self._bad_line(batch, rel, line_offset, str(exc), raw)
                continue
            except Exception as exc:  # a line no rule foresaw: one error, never a stuck ingest
                log.exception("event line %s at %d could not be read", rel, line_offset)
                self._bad_line(batch, rel, line_offset, f"could not be read ({type(exc).__name__})", raw)
                continue
            problem = next((problem for event in events if event["kind"] == "status"
                            and (problem := bad_lines.out_of_window(event["ts"], event["trigger_time"]))), None)
            if problem:  # the whole line is one error (an OpenLineage START is two events)
                self._bad_line(batch, rel, line_offset, problem, raw)
                continue
            for event in events:
                if event["kind"] == "task":
                    batch.tasks.append(event)
                else:
                    batch.transitions.append(event | {"position": first + int(n)})
        # Lines that cannot be events: the first few are decoded for their reason, the rest only counted.
        sampled, rest = np.split(junk, [self._bad_lines.room(rel)])
        for n in sampled:
            raw = chunk[starts[n]:newlines[n]]
            self._bad_line(batch, rel, offset + int(starts[n]), bad_lines.reason(raw), raw)
        if len(rest):
            self._bad_lines.count(rel, len(rest), offset + int(starts[rest[0]]), offset + int(starts[rest[-1]]),
                                  bad_lines.reason(chunk[starts[rest[0]]:newlines[rest[0]]]))
        return len(newlines)

    def _within_window(self, rel: str, offset: int, chunk: bytes, starts: np.ndarray, newlines: np.ndarray,
                       parsed: pa.Table, lines_of: np.ndarray, batch: Batch) -> tuple[pa.Table, np.ndarray]:
        """The bulk-parsed events whose times are believable; the others are ingest errors."""
        ts, trigger = parsed.column("ts").to_numpy(), parsed.column("trigger_time").to_numpy()
        bad = bad_lines.outside_window(ts, trigger)
        if not bad.any():
            return parsed, lines_of
        wrong = np.flatnonzero(bad)
        for n in wrong[np.argsort(lines_of[wrong])]:  # (the parser's events are not in line order)
            line = lines_of[n]
            self._bad_line(batch, rel, offset + int(starts[line]),
                           bad_lines.out_of_window(bad_lines.as_datetime(ts[n]), bad_lines.as_datetime(trigger[n])),
                           chunk[starts[line]:newlines[line]])
        return parsed.filter(pa.array(~bad)), lines_of[~bad]

    # ---- the background thread ----------------------------------------------------------

    def start(self) -> None:
        """Catch up in a background thread and follow the spool until stop()."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._follow, name="taskdash-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop following; a step under way (a big catch-up, say) finishes first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the ingest thread did not stop within %.0f s", timeout)
            self._thread = None

    def _step(self, paths: Iterable[str] | None, looked_at: set[str] | None = None) -> bool:
        """One catch-up (see catch_up); False if it failed (the failure is in the health)."""
        try:
            rebuilding = self.index.corruption is not None
            if rebuilding:
                self._rebuild()
                paths, started = None, time.monotonic()
            if self._reopen_index:
                self.index.reopen()
                # What the failed step committed (to the WAL, before its checkpoint failed) is there.
                self._offsets, self._inodes = self.index.load_offsets(), {}
                self._reopen_index = False
            # Past the first catch-up, a step reads a bounded part of each file, so the changes of
            # other files wait at most that long.
            added = self.catch_up(paths, limit=None if rebuilding or not self.caught_up.is_set() else STEP_FILE_BYTES,
                                  looked_at=None if rebuilding else looked_at)
            if paths is None:
                self.caught_up.set()
            if rebuilding:
                log.warning("the rebuilt index caught up with the spool in %.1f s: %s events, %s log lines",
                            time.monotonic() - started, f"{added['events']:,}", f"{added['log_lines']:,}")
            return True
        except Exception as exc:  # keep following: the next step may succeed
            lake_fault = self.index.lake is not None and isinstance(exc, (duckdb.Error, LakeError))
            if lake_fault:
                # the lake's catalog or data path (a restart, a changed password, a full disk): one
                # line, as `taskdash ship` prints it while it waits; a traceback would say nothing more
                log.warning("ingest step failed (the lake %s): %s", self.index.lake.safe_catalog,
                            str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__)
            else:
                log.exception("ingest step failed")
            self.health.failure = f"{type(exc).__name__}: {exc}"
            # A lake is attached anew before the next step: a new login, with the password read again.
            self._reopen_index = self._reopen_index or isinstance(exc, duckdb.FatalException) or lake_fault
            if is_corruption(exc):  # rebuilt at the next wake
                self.index.noticed_corruption(exc)
            if self.hub is not None:
                self.hub.publish(Change(errors=1))
            return False

    def _rebuild(self) -> None:
        """The index has a damaged block: move it aside and read the whole spool into a new one.
        Pages say so (the indicator's Error) until the new index has caught up."""
        self.health.failure = f"the index is damaged ({self.index.corruption}): rebuilding it from the spool"
        if self.hub is not None:
            self.hub.publish(Change(errors=1))
        self.index.rebuild()
        self._offsets, self._inodes, self._read_inodes, self._inodes_to_hand_off = {}, {}, {}, {}
        self._pending_tails.clear()
        self._bad_lines.clear()
        self._unreadable.clear()

    def apply_retention(self) -> int:
        """Drop the runs past the retention (with their events and logs); return how many went."""
        if self.retention_days is None:
            return 0
        with self._step_lock:
            dropped = self.index.drop_runs_older_than(self.retention_days)
        if dropped:
            log.info("retention: dropped %d runs inactive for more than %g days", dropped, self.retention_days)
            if self.hub is not None:
                self.hub.publish(Change(many_runs=True))
        return dropped

    def _retain(self) -> None:
        try:
            self.apply_retention()
        except duckdb.Error as exc:
            log.warning("dropping the runs past the retention failed: %s", exc)

    def _check_index(self) -> None:
        try:
            self.index.check()
        except duckdb.Error as exc:
            if is_corruption(exc):
                self.index.noticed_corruption(exc)
            else:
                log.warning("the periodic check of the index failed: %s", exc)

    def _follow(self) -> None:
        # The first full scan runs once the watcher is up (at its first yield, within
        # WAKE_MS): a file written between a scan and the watcher's start would otherwise
        # wait for the next rescan.
        # The files of a failed step are read again only by a full scan: after a failure it
        # comes within RETRY_SECONDS, not the whole rescan period.
        last_full_scan, retry_in, last_check = -math.inf, None, time.monotonic()
        last_retention = -math.inf
        spool = self.spool.resolve()
        logs_changed = None
        try:
            while not self._stop.is_set():
                # The watcher starts again whenever what it should watch changed (see
                # OPEN_FOLDER_SECONDS); its first step reads what changed while none watched.
                wanted = self._watch_paths(spool)
                watching = [path for path in wanted if os.path.isdir(path)]  # (a folder gone fails the watcher)
                restarted = True
                for changes in watchfiles.watch(
                        *watching, recursive=False, stop_event=self._stop, debounce=self.debounce_ms, step=10,
                        rust_timeout=WAKE_MS, yield_on_timeout=True):
                    # What was written up to a debounce before this yield is in `changes` (or was read).
                    seen = time.time() - self.debounce_ms / 1000
                    # logs/'s time at the last yield: a run folder made after it and before the next watcher
                    # watches is told of by no watcher (see _run_folders_made_meanwhile)
                    logs_changed_before, logs_changed = logs_changed, _changed_ns(logs_dir(spool))
                    if time.monotonic() - last_check >= self.check_seconds:
                        self._check_index()
                        last_check = time.monotonic()
                    if (self.retention_days is not None and self.caught_up.is_set()
                            and time.monotonic() - last_retention >= RETENTION_SECONDS):
                        self._retain()
                        last_retention = time.monotonic()
                    if (self.index.corruption is not None  # a page or the check met a damaged block
                            or time.monotonic() - last_full_scan >= (retry_in or self.rescan_seconds)):
                        if self._step(None, self._rescan_share(retrying=retry_in is not None)):
                            retry_in = None
                        else:
                            retry_in = next_retry(retry_in, self.rescan_seconds)
                        last_full_scan = time.monotonic()
                        self._open_folders, self._added_folders = self._open_run_folders(), set()
                        self._watched_folders = set(sorted(self._open_folders, key=lambda name: (
                            self._run_folders[name][0]))[-WATCHED_FOLDERS_MAX:])
                    elif changes or self._backlog or restarted:
                        paths = {Path(p).relative_to(spool).as_posix() for _, p in changes
                                 if os.path.isfile(p)} | self._new_run_folders(spool, changes)
                        if restarted:
                            paths |= _files_of(spool, ["events", *(f"logs/{Path(p).name}" for p in watching[2:])])
                            paths |= self._run_folders_made_meanwhile(spool, logs_changed_before)
                        if not self._step(self._relevant(paths) + sorted(self._backlog)):
                            retry_in = retry_in or RETRY_SECONDS
                    restarted = False
                    # Quiet files end their last line, even while other files keep changing.
                    if self._pending_tails and (due := self.due_tails()) and not self._step(due):
                        retry_in = retry_in or RETRY_SECONDS
                    if retry_in is None and not self._backlog and self.caught_up.is_set():  # all read
                        self.health.current(seen)
                    if self._watch_paths(spool) != wanted:  # (what it saw since this yield is lost)
                        break
        except Exception as exc:  # e.g. out of inotify watches: fall back to rescans alone
            if self._stop.is_set():
                return
            log.warning("watching %s failed (%s); rescanning every %.0f s instead", spool, exc, 2.0)
            failed = False
            while not self._stop.wait(2.0):
                seen = time.time()
                failed = not self._step(None, self._rescan_share(retrying=failed))
                self._open_folders = self._open_run_folders()
                if not failed:
                    self.health.current(seen)

    def _watch_paths(self, spool: Path) -> list[str]:
        """What the watcher watches, each folder alone (not the folders in it): events/, logs/ and
        the run folders open (see OPEN_FOLDER_SECONDS) or made since the last full scan."""
        folders = sorted(self._watched_folders | self._added_folders)
        return [str(events_dir(spool)), str(logs_dir(spool))] + [str(logs_dir(spool) / name) for name in folders]

    def _open_run_folders(self) -> set[str]:
        """The run folders listed by the last full scan whose run is under way (not terminal in the
        index) or ended lately, or that were made or had a file made lately (see OPEN_FOLDER_SECONDS)."""
        recent = time.time_ns() - int(OPEN_FOLDER_SECONDS * 1e9)
        open_folders = {name for name, (changed, _) in self._run_folders.items() if changed >= recent}
        try:
            with self.index.cursor() as cur:
                under_way = cur.execute(
                    f"SELECT run_id FROM runs WHERE status NOT IN ({sql_list(TERMINAL)}) OR updated >= ?",
                    [utcnow() - dt.timedelta(seconds=OPEN_FOLDER_SECONDS)]).fetchall()
        except duckdb.Error:  # the index failing: the step says so; the watcher keeps what it has
            return self._open_folders
        return open_folders | {run_id for (run_id,) in under_way if run_id in self._run_folders}

    def _rescan_share(self, retrying: bool) -> set[str] | None:
        """The run folders a rescan looks at (besides new ones): every one (None) until the ingestor
        has caught up once and after a failed step; else those open or made since the last rescan,
        and the next RESCAN_FOLDERS of the others, in turn."""
        if retrying or not self.caught_up.is_set():
            return None
        names = list(self._run_folders)
        start = self._rescan_turn if self._rescan_turn < len(names) else 0
        share = names[start:start + RESCAN_FOLDERS]
        self._rescan_turn = start + len(share)
        return self._open_folders | self._added_folders | set(share)

    def _new_run_folders(self, spool: Path, changes: set[tuple[watchfiles.Change, str]]) -> set[str]:
        """The files of run folders just created, which the watcher watches once it starts again: a
        file written into one at once would wait for the next rescan (a new run's first log line
        waited 30 s while the ingest was busy)."""
        new = [rel for change, path in changes if change == watchfiles.Change.added
               and (rel := Path(path).relative_to(spool).as_posix()).startswith("logs/") and rel.count("/") == 1]
        return self._added_run_folders(spool, new)

    def _run_folders_made_meanwhile(self, spool: Path, logs_changed: int | None) -> set[str]:
        """The files of run folders made after the last watcher's last yield, which no watcher told
        of: if logs/ changed since, those not listed yet (the first line of a run started then
        waited for the next rescan, 30 s)."""
        if logs_changed is None or _changed_ns(logs_dir(spool)) == logs_changed:
            return set()
        try:
            with os.scandir(logs_dir(spool)) as entries:
                new = [f"logs/{e.name}" for e in entries if e.name not in self._run_folders
                       and e.name not in self._added_folders and _is_dir(e, follow_symlinks=True)]
        except OSError:  # the rescan will tell
            return set()
        return self._added_run_folders(spool, new)

    def _added_run_folders(self, spool: Path, folders: list[str]) -> set[str]:
        """Watch these new run folders (logs/<run_id>) from the watcher's next start; their files."""
        self._added_folders.update(rel.removeprefix("logs/") for rel in folders)
        return _files_of(spool, folders)

    @staticmethod
    def _relevant(paths: Iterable[str]) -> list[str]:
        return [p for p in paths if p.startswith(("events/", "logs/")) and
                (p.endswith(".jsonl") if p.startswith("events/") else p.count("/") == 2)]


def _changed_ns(path: Path) -> int | None:
    """A folder's modification time (None if it cannot be looked at)."""
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _files_of(spool: Path, folders: Iterable[str]) -> set[str]:
    """The files of these folders of the spool, as paths relative to it (a folder gone: none)."""
    files = set()
    for rel in folders:
        try:
            with os.scandir(spool / rel) as entries:
                files.update(f"{rel}/{e.name}" for e in entries if not _is_dir(e))
        except OSError:  # gone again, or not a folder: the rescan will tell
            pass
    return files


def next_retry(retry_in: float | None, rescan_seconds: float) -> float:
    """How long after a failed full scan the next one comes: RETRY_SECONDS, doubling while they
    fail, up to RETRY_MAX_SECONDS (a disk full for minutes is retried as often as one full for
    seconds, so the ingest recovers within seconds of space coming back)."""
    return min(2 * retry_in, RETRY_MAX_SECONDS, rescan_seconds) if retry_in else min(RETRY_SECONDS, rescan_seconds)


def _is_dir(entry: os.DirEntry, follow_symlinks: bool = False) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow_symlinks)
    except OSError:  # a link to itself, say: not a folder
        return False


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
