"""Runs per hour of trigger time, group and status, kept between an index's writes.

The Task Runs page asks, at every refresh, how many runs of its time range (and group) are in
each status, and where its page starts. Both come from these counts: whole hours are read once
and kept; a write says which hours its runs left or entered (`Index.apply`, or a lake server's
feed into its mirror), and only those are read again. The hour a range starts inside is kept as
its runs' trigger times, statuses and groups, in trigger order: the part of it from any moment on
is counted without a statement (one took 1.2-1.5 ms at 1M runs: DuckDB decodes the statuses of
the whole row group holding that hour).

A change the index cannot name the hours of (a catch-up of many runs, a task moved to another
group, retention, a rebuild, a lake's feed before its mirror) forgets every hour. A lake index
that writes keeps none: other hosts' writes reach its pages unannounced.

The same counts are kept for the runs matching a condition (the tasks whose names hold a text
searched for) once it is asked for a second time, for the last KEPT_CONDITIONS asked. Reading them
costs more than counting once (at 1M runs, a text most tasks hold: 80 ms against 18), so a text
being typed, each letter a new one, is counted by its page as before.
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
#: How many conditions' runs per hour are kept besides every run's (see RunHours.matching).
KEPT_CONDITIONS = 8
#: How many conditions asked for once are remembered, to be kept if asked for again.
ASKED_ONCE_KEPT = 64
_COLUMN = {status: n for n, status in enumerate(STATUSES)}


def hour_of(moment: dt.datetime) -> int:
    """The hour (since the Unix epoch) a naive UTC time falls in."""
    return (moment - _EPOCH) // HOUR


def hour_start(hour: int) -> dt.datetime:
    return _EPOCH + hour * HOUR


def _keep_last(kept: dict, count: int) -> None:
    """Drop the first entries of `kept` (the oldest put in) until it holds `count`."""
    while len(kept) > count:
        del kept[next(iter(kept))]


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
    """The runs of each hour from the earliest asked for on, per group and status (STATUSES' order);
    only those matching `condition` (SQL over the runs as `r`, with its `params`) if given."""

    def __init__(self, index, condition: str = "TRUE", params: tuple = ()):
        self._index = index
        self._condition = (condition, list(params))
        self._lock = threading.Lock()
        #: (condition, params) -> the runs per hour of those matching it, the last asked for last
        self._matching: dict[tuple[str, tuple], RunHours] = {}
        #: the conditions asked for once, the last asked for last (apart: a word typed letter by
        #: letter asks for each of its beginnings once, and must not push out those kept)
        self._asked_once: dict[tuple[str, tuple], None] = {}
        self._matching_lock = threading.Lock()
        #: hour -> group (None: runs of no group) -> runs per status
        self._counts: dict[int, dict[str | None, np.ndarray]] = {}
        #: hour -> runs per status, whatever their group
        self._totals: dict[int, np.ndarray] = {}
        #: every hour from this one on is in _counts (None: none is)
        self._first: int | None = None
        #: hour -> its runs (trigger time, status, group), in trigger order, for a range starting in it
        self._starts: dict[int, _StartHour] = {}
        self._version = -1

    def matching(self, condition: str, params: tuple) -> RunHours | None:
        """The runs per hour of those matching an SQL condition over the runs as `r` (a text in the
        task's name), kept between writes as every run's are; None the first time it is asked for."""
        key = (condition, tuple(params))
        with self._matching_lock:
            kept = self._matching.pop(key, None)
            if kept is None and key not in self._asked_once:
                self._asked_once[key] = None
                _keep_last(self._asked_once, ASKED_ONCE_KEPT)
                return None
            self._asked_once.pop(key, None)
            self._matching[key] = kept if kept is not None else RunHours(self._index, condition, params)
            _keep_last(self._matching, KEPT_CONDITIONS)
            return self._matching[key]

    def since(self, start: dt.datetime, group: str | None = None) -> list[tuple[int, np.ndarray]]:
        """(hour, runs per status) for each hour holding runs triggered at or after `start` (only
        those of `group` if given), oldest first; the first hour's counts are of its runs from
        `start` on. Each array is shared: do not change it."""
        first_whole = hour_of(start) + (start != hour_start(hour_of(start)))
        with self._lock, self._index.cursor() as cur:
            self._catch_up(cur, first_whole)
            if group is None:
                found = sorted((hour, counts) for hour, counts in self._totals.items() if hour >= first_whole)
            else:
                found = sorted((hour, groups[group]) for hour, groups in self._counts.items()
                               if hour >= first_whole and group in groups)
            if first_whole != hour_of(start):
                found.insert(0, (hour_of(start), self._start_hour(cur, hour_of(start)).since(start, group)))
        return found

    def _catch_up(self, cur, first_whole: int) -> None:
        """Forget what the writes since the last look changed, and read it again with any hours from
        `first_whole` on not read yet."""
        version = self._index.version
        changed = self._index.hour_changes.between(self._version, version)
        if changed is None:
            self._counts, self._totals, self._first, self._starts = {}, {}, None, {}
            changed = frozenset()
        if self._first is None or first_whole < self._first:
            self._keep(_read(cur, self._condition, hour_start(first_whole),
                             None if self._first is None else hour_start(self._first)))
            self._first = first_whole
        for hour in changed:
            self._starts.pop(hour, None)
        stale = sorted(hour for hour in changed if hour >= self._first)
        if stale:
            for hour in stale:
                self._counts.pop(hour, None)
                self._totals.pop(hour, None)
            self._keep(_read(cur, self._condition, hour_start(stale[0]), hour_start(stale[-1] + 1), stale))
        self._version = version

    def _keep(self, counts: dict[int, dict[str | None, np.ndarray]]) -> None:
        self._counts.update(counts)
        self._totals.update((hour, sum(groups.values())) for hour, groups in counts.items())

    def _start_hour(self, cur, hour: int) -> _StartHour:
        kept = self._starts.get(hour)
        if kept is None:
            kept = self._starts[hour] = _StartHour.read(cur, self._condition, hour)
            _keep_last(self._starts, KEPT_START_HOURS)
        return kept


class _StartHour:
    """The runs of an hour a range starts inside, in trigger order: the part of it from any moment
    on is counted without a statement."""

    def __init__(self, times: np.ndarray, statuses: np.ndarray, groups: np.ndarray):
        self.times, self.statuses, self.groups = times, statuses, groups

    @classmethod
    def read(cls, cur, condition: tuple[str, list], hour: int) -> _StartHour:
        found = cur.execute(f"SELECT trigger_time, status, grp FROM runs r WHERE trigger_time >= ? AND trigger_time < ? "
                            f"AND {condition[0]} ORDER BY trigger_time",
                            [hour_start(hour), hour_start(hour + 1), *condition[1]]).fetchnumpy()
        statuses = np.array([_COLUMN[status] for status in found["status"]], dtype=np.int64)
        return cls(np.asarray(found["trigger_time"], "datetime64[us]"), statuses,
                   np.asarray(found["grp"], dtype=object))

    def since(self, start: dt.datetime, group: str | None = None) -> np.ndarray:
        """Runs per status triggered at or after `start` (only those of `group` if given)."""
        first = int(np.searchsorted(self.times, np.datetime64(start, "us")))
        statuses = self.statuses[first:] if group is None else self.statuses[first:][self.groups[first:] == group]
        return np.bincount(statuses, minlength=len(STATUSES))


def _read(cur, condition: tuple[str, list], low: dt.datetime, high: dt.datetime | None,
          hours: list[int] | None = None) -> dict[int, dict[str | None, np.ndarray]]:
    """Runs per hour, group and status matching the condition triggered from `low` up to `high`
    (None: no end), only of `hours` if given."""
    sql = (f"SELECT epoch_ms(trigger_time) // ? AS hour, grp, status, count(*) FROM runs r "
           f"WHERE {condition[0]} AND trigger_time >= ?")
    params: list = [HOUR_MS, *condition[1], low]
    if high is not None:
        sql += " AND trigger_time < ?"
        params.append(high)
    if hours is not None:
        sql += " AND list_contains(?, epoch_ms(trigger_time) // ?)"
        params += [hours, HOUR_MS]
    counts: dict[int, dict[str | None, np.ndarray]] = {}
    for hour, group, status, n in cur.execute(sql + " GROUP BY ALL", params).fetchall():
        of_hour = counts.setdefault(hour, {})
        of_hour.setdefault(group, np.zeros(len(STATUSES), dtype=np.int64))[_COLUMN[status]] = n
    return counts
