"""Runs per hour of trigger time and status, kept between a local index's writes.

The Task Runs page asks, at every refresh, how many runs of its time range are in each status,
and where its page starts. Both come from these counts: whole hours are read once and kept; a
write says which hours its runs left or entered (`Index.apply`), and only those are read again.
The hour a range starts inside is kept as its runs' trigger times, sorted, per status: the part
of it from any moment on is counted without a statement (one cost 1.2-1.5 ms at 1M runs: DuckDB
decodes the statuses of the whole row group holding that hour).

A change the index cannot name the hours of (a catch-up of many runs, retention, a rebuild, a
lake's feed) forgets every hour. A lake index keeps none: its writes are other hosts'.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable

import numpy as np

from .statuses import STATUSES

HOUR = dt.timedelta(hours=1)
HOUR_MS = 3_600_000
_EPOCH = dt.datetime(1970, 1, 1)
#: How many writes' hours an index remembers (a page asking less often counts every hour anew).
REMEMBERED_WRITES = 256
#: How many hours' trigger times are kept for the ranges starting inside them (a page's time
#: ranges are a handful; the hour a range starts in moves on every hour).
KEPT_START_HOURS = 16
_COLUMN = {status: n for n, status in enumerate(STATUSES)}


def hour_of(moment: dt.datetime) -> int:
    """The hour (since the Unix epoch) a naive UTC time falls in."""
    return (moment - _EPOCH) // HOUR


def hour_start(hour: int) -> dt.datetime:
    return _EPOCH + hour * HOUR


class HourChanges:
    """Which hours of trigger time each write of an index changed the runs of, by index version."""

    def __init__(self):
        self._hours: dict[int, frozenset[int]] = {}

    def record(self, version: int, hours: Iterable[int] | None) -> None:
        """The write that makes `version` changed the runs of these hours (None: of hours unknown).
        Call before the index shows `version`: a reader seeing it unrecorded counts every hour anew."""
        if hours is None:
            self._hours.pop(version, None)
            return
        self._hours[version] = frozenset(hours)
        while len(self._hours) > REMEMBERED_WRITES:
            del self._hours[next(iter(self._hours))]

    def between(self, old: int, new: int) -> frozenset[int] | None:
        """The hours changed by the writes after `old` up to `new`; None when one is not known."""
        if new - old > REMEMBERED_WRITES:
            return None
        changed: set[int] = set()
        for version in range(old + 1, new + 1):
            hours = self._hours.get(version)
            if hours is None:
                return None
            changed |= hours
        return frozenset(changed)


class RunHours:
    """The runs of each hour from the earliest asked for on, per status (STATUSES' order)."""

    def __init__(self, index):
        self._index = index
        self._lock = threading.Lock()
        self._counts: dict[int, np.ndarray] = {}
        #: every hour from this one on is in _counts (None: none is)
        self._first: int | None = None
        #: hour -> its runs' trigger times per status (STATUSES' order), sorted, for a range starting in it
        self._times: dict[int, list[np.ndarray]] = {}
        self._version = -1

    def since(self, start: dt.datetime) -> list[tuple[int, np.ndarray]]:
        """(hour, runs per status) for each hour holding runs triggered at or after `start`, oldest
        first; the first hour's counts are of its runs from `start` on. Each array is shared: do
        not change it."""
        first_whole = hour_of(start) + (start != hour_start(hour_of(start)))
        with self._lock, self._index.cursor() as cur:
            version = self._index.version
            changed = self._index.hour_changes.between(self._version, version)
            if changed is None:
                self._counts, self._first, self._times = {}, None, {}
                changed = frozenset()
            if self._first is None or first_whole < self._first:
                earlier = _read(cur, hour_start(first_whole),
                                None if self._first is None else hour_start(self._first))
                self._counts.update(earlier)
                self._first = first_whole
            for hour in changed:
                self._times.pop(hour, None)
            stale = sorted(hour for hour in changed if hour >= self._first)
            if stale:
                for hour in stale:
                    self._counts.pop(hour, None)
                self._counts.update(_read(cur, hour_start(stale[0]), hour_start(stale[-1] + 1), stale))
            self._version = version
            found = sorted((hour, counts) for hour, counts in self._counts.items() if hour >= first_whole)
            if first_whole != hour_of(start):
                times = self._times.get(hour_of(start))
                if times is None:
                    times = self._times[hour_of(start)] = _trigger_times(cur, hour_of(start))
                    while len(self._times) > KEPT_START_HOURS:
                        del self._times[next(iter(self._times))]
                moment = np.datetime64(start, "us")
                found.insert(0, (hour_of(start), np.array([len(of_status) - np.searchsorted(of_status, moment)
                                                           for of_status in times], dtype=np.int64)))
        return found


def _trigger_times(cur, hour: int) -> list[np.ndarray]:
    """The trigger times of the runs of `hour`, per status (STATUSES' order), each sorted."""
    found = cur.execute("SELECT status, trigger_time FROM runs WHERE trigger_time >= ? AND trigger_time < ? "
                        "ORDER BY trigger_time", [hour_start(hour), hour_start(hour + 1)]).fetchnumpy()
    statuses, times = np.asarray(found["status"], dtype=object), np.asarray(found["trigger_time"], "datetime64[us]")
    return [times[statuses == status] for status in STATUSES]


def _read(cur, low: dt.datetime, high: dt.datetime | None, hours: list[int] | None = None) -> dict[int, np.ndarray]:
    """Runs per hour and status triggered from `low` up to `high` (None: no end), only of `hours`
    if given."""
    sql = "SELECT epoch_ms(trigger_time) // ? AS hour, status, count(*) FROM runs WHERE trigger_time >= ?"
    params: list = [HOUR_MS, low]
    if high is not None:
        sql += " AND trigger_time < ?"
        params.append(high)
    if hours is not None:
        sql += " AND list_contains(?, epoch_ms(trigger_time) // ?)"
        params += [hours, HOUR_MS]
    counts: dict[int, np.ndarray] = {}
    for hour, status, n in cur.execute(sql + " GROUP BY ALL", params).fetchall():
        counts.setdefault(hour, np.zeros(len(STATUSES), dtype=np.int64))[_COLUMN[status]] = n
    return counts
