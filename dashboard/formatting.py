"""Times: the index's "now", and how times and durations read, the same in the CLI and on the pages."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from . import clock as _clock


def utcnow() -> dt.datetime:
    """The time now as the index keeps times: UTC without a zone."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def plain(value):
    """A value from a DataFrame with pandas' missing markers (NA, NaT, NaN) as None."""
    return None if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)) else value


def iso_utc(value) -> str | None:
    """A naive-UTC timestamp as ISO 8601 with a Z, or None when unknown."""
    if plain(value) is None:
        return None
    return pd.Timestamp(value).to_pydatetime().isoformat(timespec="milliseconds") + "Z"


def clock(value, day_of=None, missing: str = "") -> str:
    """A naive-UTC timestamp as the current page's clock shows it (dashboard.clock: its zone, or
    relative to now): 'YYYY-MM-DD HH:MM:SS' (only 'HH:MM:SS' when on the day of `day_of`), or
    `missing` when unknown. Outside a page (the CLI, a notebook): in UTC."""
    return _clock.current().format(value, day_of, missing)


def duration_seconds(started, finished, now: dt.datetime | None = None) -> float | None:
    """Seconds from start to finish, or to now while still going; None if it never started."""
    if plain(started) is None:
        return None
    end = finished if plain(finished) is not None else (now or utcnow())
    return max(0.0, (pd.Timestamp(end) - pd.Timestamp(started)).total_seconds())


def human_duration(seconds: float | None) -> str:
    """Seconds as '0.4s', '12s', '3m 05s' or '2h 01m'; empty when unknown."""
    if plain(seconds) is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f}s"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
