"""The longest finished runs of each hour of trigger time, kept between an index's writes.

The Task Runs page sorted by duration, longest first, shows the longest runs of its time range.
As one statement, DuckDB works out every run's duration and then reads the page's runs where they
lie, far apart in the table: at 1M runs over 7 days, 30 ms where the other views take 7-9. Here
each hour a page asked for keeps its KEPT_PER_HOUR longest finished runs, as the page's own rows,
longest first; a write says which hours it changed the runs of (run_hours.HourChanges), and only
those are read again. A page's longest runs are among those kept and the runs still going (their
durations grow with the clock), read at each ask from the hours the runs per hour say hold runs
not ended. Of the hour a range starts inside, the runs kept are those from the range's start on,
which is enough unless the hour's last kept run would make the page: then it is read as before.
"""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .run_hours import HOUR_MS, hour_of, hour_start
from .statuses import STATUSES, TERMINAL

#: How deep a page may reach (offset + limit) and be answered from the runs kept.
KEPT_PER_HOUR = 100
#: How many hours are kept at most (a month's: 744 x 100 runs), the least recently asked forgotten.
KEPT_HOURS = 744
_ORDER = [("duration", "descending"), ("run_id", "descending")]  # (no two runs share an id)
_NOT_ENDED = np.array([status not in TERMINAL for status in STATUSES])


class LongestRuns:
    """The longest finished runs of each hour asked for, by duration then run id, last first."""

    def __init__(self, index):
        self._index = index
        self._lock = threading.Lock()
        #: hour -> its longest finished runs as a page's rows, longest first (the least recently asked first)
        self._hours: dict[int, pa.Table] = {}
        self._version = -1

    def page(self, select: str, duration: str, params: list, hours: list[tuple[int, np.ndarray]],
             start: dt.datetime, limit: int, offset: int) -> pa.Table | None:
        """Runs `offset` up to `offset + limit` of those triggered at or after `start`, by duration
        (longest first), then run id (last first), as `select` (the SQL of a page's columns over the
        runs as `r`) reads them, with their `duration` (SQL, with `params`; null for a run not
        started). `hours` holds the range's runs per hour and status (run_hours.RunHours.since). None
        when the page reaches further than the runs kept, or into runs that have not started."""
        wanted = int(offset) + int(limit)
        if wanted > KEPT_PER_HOUR or not hours:
            return None
        select = f"{select}, {duration} AS duration"
        version = self._index.version  # (before reading: a write after it is read again next time)
        with self._lock:
            self._catch_up(version)
            kept = {hour: self._hours[hour] for hour, _ in hours if hour in self._hours}
        with self._index.cursor() as cur:
            missing = [hour for hour, _ in hours if hour not in kept]
            read = _read_hours(cur, select, duration, params, missing) if missing else {}
            going = _still_going(cur, select, params, hours, start, wanted)
        with self._lock:
            if self._version == version:  # (else another caller has moved on: these may be stale)
                for hour, _ in hours:  # (asked now: the last to be forgotten)
                    self._hours.pop(hour, None)
                    self._hours[hour] = kept[hour] if hour in kept else read[hour]
                while len(self._hours) > KEPT_HOURS:
                    del self._hours[next(iter(self._hours))]
        of_hour = kept | read
        first = hours[0][0]
        first_hour_runs = of_hour[first]
        starts_inside = first == hour_of(start) and start != hour_start(first)
        if starts_inside:
            of_hour[first] = first_hour_runs.filter(pc.greater_equal(first_hour_runs.column("trigger_time"), start))
        runs = pa.concat_tables([*of_hour.values(), *([going] if going is not None else [])])
        if len(runs) < wanted:
            return None
        page = runs.take(pc.select_k_unstable(runs, wanted, _ORDER)).sort_by(_ORDER)
        if (starts_inside and len(first_hour_runs) == KEPT_PER_HOUR
                and not _before(page.slice(wanted - 1), first_hour_runs.slice(KEPT_PER_HOUR - 1))):
            return None  # a run of that hour not kept could be in the page
        return page.slice(int(offset), int(limit))

    def _catch_up(self, version: int) -> None:
        changed = self._index.hour_changes.between(self._version, version)
        if changed is None:
            self._hours = {}
        else:
            for hour in changed:
                self._hours.pop(hour, None)
        self._version = version


def _before(run: pa.Table, other: pa.Table) -> bool:
    """Whether a run (a row) comes before another one, longest first, then by run id, last first."""
    (duration, run_id), (other_duration, other_id) = [(t["duration"][0].as_py(), t["run_id"][0].as_py())
                                                      for t in (run, other)]
    return duration > other_duration or (duration == other_duration and run_id > other_id)


def _still_going(cur, select: str, params: list, hours: list[tuple[int, np.ndarray]], start: dt.datetime,
                 wanted: int) -> pa.Table | None:
    """The `wanted` longest runs started and not ended from `start` on, as `select` reads them, from
    the hours whose counts hold runs not ended (None: no hour does)."""
    not_ended = np.stack([counts for _, counts in hours])[:, _NOT_ENDED].any(axis=1)
    going = [hour for (hour, _), any_not_ended in zip(hours, not_ended) if any_not_ended]
    if not going:
        return None
    # (OFFSET 0: read late by row id, the page's runs of one hour took 3.7 ms against 1.7)
    return cur.execute(
        f"SELECT * FROM ({select} FROM runs r WHERE r.trigger_time >= ? AND r.trigger_time < ? "
        "AND list_contains(?, epoch_ms(r.trigger_time) // ?) AND r.started IS NOT NULL AND r.finished IS NULL "
        "OFFSET 0) r ORDER BY duration DESC, r.run_id DESC LIMIT ?",
        [*params, max(start, hour_start(min(going))), hour_start(max(going) + 1), going, HOUR_MS, wanted]
    ).to_arrow_table()


def _read_hours(cur, select: str, duration: str, params: list, hours: list[int]) -> dict[int, pa.Table]:
    """Each hour's KEPT_PER_HOUR longest finished runs as `select` reads them, longest first. They
    are found by their durations and run ids alone, then read (a page's first ask of the week's 170
    hours at 1M runs: 255 ms, where numbering every run's row by its hour and duration took 643). By
    run id, not row id: a lake's tables are read the same way."""
    low, high = hour_start(min(hours)), hour_start(max(hours) + 1)
    found = cur.execute(
        f"""{select}, epoch_ms(r.trigger_time) // ? AS hour FROM runs r
            WHERE r.trigger_time >= ? AND r.trigger_time < ? AND r.run_id IN (
                SELECT unnest(arg_max(r.run_id, {{'duration': {duration}, 'run_id': r.run_id}}, ?)) FROM runs r
                WHERE r.trigger_time >= ? AND r.trigger_time < ? AND list_contains(?, epoch_ms(r.trigger_time) // ?)
                  AND r.started IS NOT NULL AND r.finished IS NOT NULL
                GROUP BY epoch_ms(r.trigger_time) // ?)""",
        [*params, HOUR_MS, low, high, *params, KEPT_PER_HOUR, low, high, hours, HOUR_MS, HOUR_MS]).to_arrow_table()
    found = found.sort_by([("hour", "ascending"), *_ORDER])
    of_hour = found.column("hour").to_numpy()
    rows = found.drop_columns(["hour"])
    firsts, ends = np.searchsorted(of_hour, hours), np.searchsorted(of_hour, hours, side="right")
    return {hour: rows.slice(int(first), int(end - first)) for hour, first, end in zip(hours, firsts, ends)}
