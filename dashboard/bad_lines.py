"""Bad event lines at a bounded cost: which lines cannot be events (told in bulk), which events
are dated beyond belief, and how a flood of them is recorded (a few of a file one by one, the
rest counted). No DuckDB, no Panel: the ingestor calls these."""

from __future__ import annotations

import datetime as dt

import numpy as np

from .spool import SpoolError, decode_event_line

#: Of each file's bad event lines this many are recorded one by one, with an excerpt of
#: EXCERPT_BYTES; the rest of a commit's are one ingest error, "N more like this". One row a bad
#: line cost 8.7 GB for 48 MB of `x` lines (24M rows); a count costs nothing.
ERROR_SAMPLES = 20
EXCERPT_BYTES = 200
#: Event times must lie in this window around the ingest's clock: a status dated 9999 would
#: stay the newest run for ever. The future allows for skewed clocks; the past for imports.
MAX_FUTURE = dt.timedelta(days=1)
MAX_PAST = dt.timedelta(days=3653)

#: An ingest error as the index stores it: (file, byte offset, reason, excerpt).
Error = tuple[str, int, str, str]


class BadLineLog:
    """The bad event lines of one ingestor, per file: listed up to ERROR_SAMPLES, then counted."""

    def __init__(self):
        self._listed: dict[str, int] = {}  # committed
        self._handed: dict[str, int] = {}  # in the batch being committed
        self._batch_listed: dict[str, int] = {}  # in the batch being read
        #: The batch's bad lines beyond the samples: file -> [count, first offset, last offset, first reason].
        self._omitted: dict[str, list] = {}

    def room(self, rel: str) -> int:
        """How many more of a file's bad lines are listed one by one."""
        return max(0, ERROR_SAMPLES - self._listed.get(rel, 0) - self._handed.get(rel, 0) - self._batch_listed.get(rel, 0))

    def add(self, errors: list[Error], rel: str, offset: int, reason: str, raw: bytes) -> None:
        """Record one bad line: listed with its excerpt while there is room, else counted."""
        if self.room(rel):
            self._batch_listed[rel] = self._batch_listed.get(rel, 0) + 1
            errors.append((rel, offset, reason, raw[:EXCERPT_BYTES].decode("utf-8", "replace")))
        else:
            self.count(rel, 1, offset, offset, reason)

    def count(self, rel: str, count: int, first: int, last: int, reason: str) -> None:
        """Count bad lines between byte offsets `first` and `last` without listing them."""
        omitted = self._omitted.setdefault(rel, [0, first, last, reason])
        omitted[0] += count
        omitted[1], omitted[2] = min(omitted[1], first), max(omitted[2], last)

    def summaries(self) -> list[Error]:
        """The batch's counted lines, as one ingest error a file."""
        return [(rel, first, f"{count:,} more bad lines like this, from byte {first:,} to {last:,} (only the first "
                 f"{ERROR_SAMPLES} of a file are listed one by one; the first of these: {reason})", "")
                for rel, (count, first, last, reason) in self._omitted.items()]

    def new_batch(self) -> None:
        """Forget what the batch being read listed and counted (it was not committed)."""
        self._batch_listed, self._omitted = {}, {}

    def hand_off(self) -> None:
        """The batch read goes to be committed (its summaries taken): what it listed keeps its room
        until it is, while the next batch is read."""
        self._handed = self._batch_listed
        self.new_batch()

    def committed(self, done: bool) -> None:
        """The batch handed off was committed (`done`), or was not: its lines are read again."""
        for rel, count in self._handed.items() if done else ():
            self._listed[rel] = self._listed.get(rel, 0) + count
        self._handed = {}

    def clear(self) -> None:
        self._listed.clear()
        self._handed = {}
        self.new_batch()


def possible_events(chunk: bytes, starts: np.ndarray, newlines: np.ndarray) -> np.ndarray:
    """Which lines of `chunk` may be events (or are blank): the others are not JSON objects, their
    first or last byte being other than a brace or whitespace (a byte order mark allowed first).
    Told in bulk, so a line of junk costs no Python call and no query."""
    data = np.frombuffer(chunk, np.uint8)
    nonempty = newlines > starts
    first = np.where(nonempty, data[np.minimum(starts, len(data) - 1)], ord("{"))
    last = np.where(nonempty, data[np.maximum(newlines - 1, 0)], ord("}"))
    return (np.isin(first, np.frombuffer(b"{ \t\r\x0b\x0c\xef", np.uint8))
            & np.isin(last, np.frombuffer(b"} \t\r\x0b\x0c", np.uint8)))


def reason(raw: bytes) -> str:
    """Why a line that cannot be an event is not one, in decode_event_line's words."""
    try:
        decode_event_line(raw)
    except SpoolError as exc:
        return str(exc)
    except Exception as exc:
        return f"could not be read ({type(exc).__name__})"
    return "not an event"  # never: a line sorted out by possible_events does not decode


def window() -> tuple[dt.datetime, dt.datetime]:
    """The earliest and latest believable event time, now (naive UTC)."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return now - MAX_PAST, now + MAX_FUTURE


def out_of_window(ts: dt.datetime | None, trigger_time: dt.datetime | None) -> str | None:
    """Why an event's times are not believable, or None."""
    earliest, latest = window()
    for name, moment in (("ts", ts), ("trigger_time", trigger_time)):
        if moment is not None and not earliest <= moment <= latest:
            how = "over a day ahead of" if moment > latest else "over ten years before"
            return f"{name!r} {moment.isoformat()} is {how} the ingest's clock: the event is skipped"
    return None


def outside_window(ts: np.ndarray, trigger_time: np.ndarray) -> np.ndarray:
    """Which of the events (times as datetime64, NaT for none) are not believable."""
    earliest, latest = (np.datetime64(moment, "us") for moment in window())
    return ((ts < earliest) | (ts > latest)
            | (~np.isnat(trigger_time) & ((trigger_time < earliest) | (trigger_time > latest))))


def as_datetime(moment: np.datetime64) -> dt.datetime | None:
    return None if np.isnat(moment) else moment.astype("datetime64[us]").astype(dt.datetime)
