"""How times and durations read, the same in the CLI and on the pages."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd


def iso_utc(value) -> str | None:
    """A naive-UTC timestamp as ISO 8601 with a Z, or None when unknown."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if pd.isna(value):
        return None
    return pd.Timestamp(value).to_pydatetime().isoformat(timespec="milliseconds") + "Z"


def duration_seconds(started, finished, now: dt.datetime | None = None) -> float | None:
    """Seconds from start to finish, or to now while still going; None if it never started."""
    if started is None or pd.isna(started):
        return None
    end = finished if finished is not None and not pd.isna(finished) else (
        now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    return max(0.0, (pd.Timestamp(end) - pd.Timestamp(started)).total_seconds())


def human_duration(seconds: float | None) -> str:
    """Seconds as '0.4s', '12s', '3m 05s' or '2h 01m'; empty when unknown."""
    if seconds is None or pd.isna(seconds):
        return ""
    if seconds < 10:
        return f"{seconds:.1f}s"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
