"""A server's live feed in lake mode: it ingests nothing, but follows the lake that the hosts'
`taskdash ship` write, and tells the hub what each new snapshot changed.

Looking for a new snapshot is one small query to the catalog; only a new one costs more: the
runs, log streams, tasks and ingest errors it changed, read from DuckLake's change feed
(`table_changes`), become the same `Change` the ingestor publishes in local mode.
"""

from __future__ import annotations

import logging
import math
import threading
import time

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from . import lake_mirror
from .changes import Change
from .hub import Hub
from .index import Index
from .index_schema import RunSummary
from .index_writes import LISTED_RUNS_MAX
from .ingest import IngestHealth
from .lake import CATALOG, LAKE, LakeError, LakeUnreachable, current_snapshot

log = logging.getLogger(__name__)

#: How often the catalog is asked for its latest snapshot (seconds): a new line waits half of it on
#: average before it is looked for; an idle server's looks cost 6.5 % of a core (0.05 s: 9 %).
POLL_SECONDS = 0.1
#: A server's mirror (see lake_mirror) is copied this long after its first look at the lake: not
#: while its first pages are built (at 1M runs the copy beside them put the first full page 0.7 s
#: later, past its 5 s target); they read the lake itself until then.
MIRROR_AFTER_SECONDS = 5.0
#: The mirror is compacted after this many changed rows (each ~230 bytes until then).
MIRROR_COMPACT_ROWS = 100_000
#: How often a lake that could not be attached is tried again (seconds).
ATTACH_RETRY_SECONDS = 2.0
#: A lake that cannot be read for this long is attached anew, with a new login (the password read
#: again: it may have been changed), and again every ATTACH_RETRY_SECONDS while it still fails.
REATTACH_AFTER_SECONDS = 5.0
#: The keys of a snapshot's list of changes that name tables whose rows it changed (by table id),
_ROW_CHANGES = frozenset({"tables_inserted_into", "tables_deleted_from", "inlined_insert", "inlined_delete"})
#: and those of the upkeep's snapshots, which move rows between files and change none (lake_upkeep).
#: A snapshot with any other key (a table created or altered) has every table read.
_FILE_CHANGES = frozenset({"flushed_inlined", "merge_adjacent", "rewrite_delete"})


class LakeFeed:
    """Follows a lake's snapshots and publishes what changed; the ingestor's stand-in in lake mode
    (it has the same `health`, `caught_up`, `start` and `stop`)."""

    def __init__(self, index: Index, hub: Hub | None, poll_seconds: float = POLL_SECONDS,
                 mirror_after_seconds: float = MIRROR_AFTER_SECONDS):
        self.index = index
        self.hub = hub
        self.poll_seconds = poll_seconds
        self.mirror_after_seconds = mirror_after_seconds
        self._first_look: float | None = None  # (time.monotonic())
        self.health = IngestHealth(source="lake")
        #: Set once the lake's snapshot has been read: from then on pages show the lake as it is.
        self.caught_up = threading.Event()
        self.snapshot: int | None = None
        self._mirror_changes = 0  # rows the mirror took since it was last compacted
        self._copy: _MirrorCopy | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # A server started while the lake could not be attached: pages say why from their first look.
        self.health.failure = index.lake_failure

    def poll(self) -> Change | None:
        """Look at the lake's latest snapshot once; publish and return what changed since the last look."""
        if self.index.lake_failure is not None:
            raise LakeUnreachable(self.index.lake_failure)
        if (self.index.read_only and not self.index.mirrored and self._copy is None and self._first_look is not None
                and time.monotonic() - self._first_look >= self.mirror_after_seconds):
            self._copy = _MirrorCopy(self.index, self.snapshot)  # pages read the lake itself until it is there
        with self.index.cursor(lake=True) as cur:
            latest = current_snapshot(cur)
            if self._copy is not None and self._copy.done.is_set():
                self._use_copy(cur, latest)
            if self.snapshot is None or latest == self.snapshot:
                if self.snapshot is None:
                    self._first_look = time.monotonic()
                self.snapshot = latest
                self.caught_up.set()
                return None
            change, copied = changes_between(cur, self.snapshot + 1, latest)
            hours = self._mirror(cur, copied) if self.index.mirrored else None
        self.snapshot = latest
        if change.many_runs:  # runs may have been deleted (a host's retention): their log ids given again
            self.index.forget_log_ids()
        self.index.hour_changes.record(self.index.version + 1, hours)
        self.index.version += 1  # queries shared per version are asked again
        self.health.errors_recorded += change.errors
        if self.hub is not None:
            self.hub.publish(change)
        return change

    def _mirror(self, cur, copied: dict[str, pa.Table] | None) -> set[int] | None:
        """Apply the snapshots' changes to the index's mirror and return the hours of trigger time
        whose runs changed; have it copied anew when the snapshots did more than change rows or are
        expired (None): pages read the lake meanwhile."""
        if copied is None:
            log.info("the lake's new snapshots cannot be applied to the mirror: copying it anew")
            self.index.mirrored = False
            self.index.forget_log_copies()
            return None
        changed, hours = lake_mirror.apply(cur, copied)
        self._mirror_changes += changed
        if "log_streams" in copied:  # (a log's lines changed: its stream's row did too)
            self.index.forget_log_copies(copied["log_streams"]["log_id"].to_pylist())
        if self._mirror_changes >= MIRROR_COMPACT_ROWS:
            lake_mirror.compact(cur)
            self._mirror_changes = 0
        return hours

    def _use_copy(self, cur, latest: int) -> None:
        """A copy of the mirror has ended: bring it up to `latest` and have pages read it."""
        copy, self._copy = self._copy, None
        if copy.error is not None:
            log.warning("the lake's runs could not be copied into this server's mirror (its pages read the lake, "
                        "tried again in %.0f s): %s", self.mirror_after_seconds, self._described(copy.error))
            self._first_look = time.monotonic()
            return
        if latest > copy.since:  # (what the snapshots meanwhile changed: the copy read some of them)
            copied = changes_between(cur, copy.since + 1, latest)[1]
            if copied is None:
                return  # copied again at the next look
            lake_mirror.apply(cur, copied)
        self.index.use_mirror(copy.conn)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._follow, name="taskdash-lake-feed", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def attach(self) -> None:
        """Attach the lake anew (LakeError if it still cannot be). The first attach of a server
        started without it tells every page to read again: all of the lake is new to them."""
        late = self.index.lake_failure is not None
        try:
            self.index.attach_lake()
        except LakeError as exc:
            if late:
                self.index.lake_failure = str(exc)
            raise
        log.info("the lake %s is attached", self.index.lake.safe_catalog)
        if late:
            self.snapshot = None
            if self.hub is not None:
                self.hub.publish(Change(many_runs=True, tasks=True))

    def _follow(self) -> None:
        failing_since, last_attach = None, -math.inf
        while True:
            try:
                now = time.monotonic()
                failing = self.index.lake_failure is not None or (
                    failing_since is not None and now - failing_since >= REATTACH_AFTER_SECONDS)
                if failing and now - last_attach >= ATTACH_RETRY_SECONDS:
                    last_attach = now
                    self.attach()
                if self.index.lake_failure is None:
                    seen = time.time()
                    self.poll()
                    self.health.last_step, self.health.failure = time.time(), None
                    self.health.current(seen)
                    failing_since = None
            except Exception as exc:  # the catalog unreachable, say: pages keep what they show
                failing_since = failing_since or time.monotonic()
                failure = self._described(exc)
                if self.health.failure is None:
                    log.warning("%s", failure)
                    if self.hub is not None:
                        self.hub.publish(Change(errors=1))
                self.health.failure = failure
            if self._stop.wait(self.poll_seconds):
                return

    def _described(self, exc: Exception) -> str:
        """The indicator's words for a failure: naming the catalog, never its password."""
        if isinstance(exc, LakeError):
            return str(exc)
        text = str(exc).strip()
        text = text.splitlines()[0][:300] if text else ""
        try:
            password = self.index.lake.password()
        except LakeError:
            password = ""
        if password:
            text = text.replace(password, "***")
        return f"the lake cannot be read (index.catalog {self.index.lake.safe_catalog}): {type(exc).__name__}: {text}"


class _MirrorCopy:
    """A copy of the lake's small tables into the mirror, in a thread of its own (0.8 s at 1M runs
    on an idle machine), while the feed goes on publishing: made in the feed, it held a new log
    line up to 4 s."""

    def __init__(self, index: Index, since: int):
        #: The feed's snapshot when the copy began: the copy read it or a later one.
        self.since = since
        self.conn: duckdb.DuckDBPyConnection | None = None
        self.error: Exception | None = None
        self.done = threading.Event()
        threading.Thread(target=self._copy, args=(index,), name="taskdash-lake-mirror", daemon=True).start()

    def _copy(self, index: Index) -> None:
        try:
            self.conn = index.copy_mirror()
        except Exception as exc:  # the catalog gone away, say: the feed says so and tries again
            self.error = exc
        finally:
            self.done.set()


def changes_between(cur, first: int, last: int) -> tuple[Change, dict[str, pa.Table] | None]:
    """What the lake's snapshots `first` .. `last` changed, as the hub's message, and the change
    feed of the tables a mirror copies (lake_mirror.latest_changes), None when the snapshots did
    more than change rows. Runs deleted (by retention), or snapshots already expired (a feed that
    fell behind the lake's upkeep, see lake_upkeep): every page reads again."""
    try:
        tables = changed_tables(cur, first, last)
        change, copied = _changes_between(cur, first, last, tables)
        return change, copied if tables is not None else None
    except duckdb.InvalidInputException as exc:
        if "No snapshot found" not in str(exc):
            raise
        log.info("the lake's snapshots since %d are expired: every page reads again", first)
        return Change(many_runs=True, tasks=True), None


def changed_tables(cur, first: int, last: int) -> set[str] | None:
    """The names of the tables whose rows the snapshots `first` .. `last` changed, read from the
    snapshots' own lists of changes (two small catalog queries), so that the change feed is asked
    only of those (each table_changes costs 20-40 ms; a host's new log line changes no run, task or
    error). None when the snapshots did more than change rows, or some are gone: read every table."""
    snapshots = cur.execute(f"SELECT changes FROM {LAKE}.snapshots() WHERE snapshot_id BETWEEN ? AND ?",
                            [first, last]).fetchall()
    if len(snapshots) != last - first + 1 or any(not changes.keys() <= _ROW_CHANGES | _FILE_CHANGES
                                                 for (changes,) in snapshots):
        return None
    ids = {table_id for (changes,) in snapshots for key, table_ids in changes.items() if key in _ROW_CHANGES
           for table_id in table_ids}
    if not ids:
        return set()
    names = dict(cur.execute(f"SELECT table_id::VARCHAR, table_name FROM {CATALOG}.ducklake_table "
                             "WHERE end_snapshot IS NULL").fetchall())
    return {names[table_id] for table_id in ids} if ids <= names.keys() else None


def _changes_between(cur, first: int, last: int, tables: set[str] | None) -> tuple[Change, dict[str, pa.Table]]:
    """The change feed of the tables the hub hears of, of those in `tables` (None: all of them):
    each copied table's read once, for the message and for the mirror."""
    copied = {table: lake_mirror.latest_changes(cur, table, first, last) for table in lake_mirror.COPIED
              if tables is None or table in tables}
    runs, many = {}, False
    if "runs" in copied:
        new = lake_mirror.new_rows(copied["runs"])
        # A run whose last change is a delete alone is gone (retention): its log ids may be given again.
        many = (new.num_rows > LISTED_RUNS_MAX
                or pc.count_distinct(copied["runs"]["run_id"]).as_py() > pc.count_distinct(new["run_id"]).as_py())
        if not many:
            runs = {run["run_id"]: RunSummary(run["task"], run["grp"], run["status"], run["trigger_time"])
                    for run in new.select(["run_id", "task", "grp", "status", "trigger_time"]).to_pylist()}
    streams = lake_mirror.new_rows(copied["log_streams"]).select(["run_id", "stream", "lines"]).to_pylist() \
        if "log_streams" in copied else []
    errors = cur.execute("SELECT count(*) FROM table_changes('ingest_errors', ?, ?) WHERE change_type = 'insert'",
                         [first, last]).fetchone()[0] if tables is None or "ingest_errors" in tables else 0
    change = Change(runs=runs, many_runs=many,
                    log_lines={(row["run_id"], row["stream"]): row["lines"] for row in streams},
                    tasks="tasks" in copied and lake_mirror.new_rows(copied["tasks"]).num_rows > 0, errors=errors)
    return change, copied
