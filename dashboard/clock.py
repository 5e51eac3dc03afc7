"""One clock: the time zone every time on a page is shown in, and whether times read as "5 min ago".

The index keeps times as naive UTC. A page shows them in one zone, chosen in its header and kept
in its URL: `tz=UTC` (the default unless panel_serve.yaml's `time_zone` says otherwise),
`tz=local` (the browser's own zone) or any IANA name (`tz=Asia/Tokyo`); `ago=1` shows times
relative to now (the absolute time in the zone on hover where a page has room for it). A `Clock`
says how; `format` turns a naive-UTC time into its text. A browser session's clock is kept for its
document (`use`), so `current()` (and dashboard.formatting.clock) answers in the session's zone
wherever the session's code runs; outside a session (the CLI, a notebook) it is UTC.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import sys
import weakref
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: The URL's names: the zone, and relative times.
TZ_ARG, AGO_ARG = "tz", "ago"
LOCAL = "local"
UTC = "UTC"
#: The cookie a page's header sets to the browser's zone, so a `tz=local` page is built in it.
BROWSER_ZONE_COOKIE = "taskdash_tz"
#: A zone name is at most this long (the longest IANA name is 32 characters).
MAX_ZONE_CHARS = 64


@lru_cache(maxsize=1)
def zone_names() -> tuple[str, ...]:
    """Every IANA zone this machine knows, sorted, UTC first."""
    return (UTC, *sorted(zoneinfo.available_timezones() - {UTC}))


def zone_info(name: str) -> zoneinfo.ZoneInfo | None:
    """The zone called `name` (an IANA name, exactly as spelled), or None when there is none."""
    if not name or len(name) > MAX_ZONE_CHARS or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        return _zone(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


@lru_cache(maxsize=256)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


@dataclass(frozen=True)
class Clock:
    """How a page shows times: in `zone` (an IANA name), `relative` to now or not. `local`: the zone
    is the browser's own (`browser_known` False while the page does not know it yet: then UTC)."""

    zone: str = UTC
    relative: bool = False
    local: bool = False
    browser_known: bool = True

    @property
    def tzinfo(self) -> zoneinfo.ZoneInfo:
        return zone_info(self.zone) or _zone(UTC)

    @property
    def name(self) -> str:
        """The zone as captions say it: 'Asia/Tokyo', or 'your zone, Europe/Paris' for tz=local."""
        if self.local:
            return f"your zone, {self.zone}" if self.browser_known else "UTC (your zone not known yet)"
        return self.zone

    @property
    def caption(self) -> str:
        """What a page says about its times: 'times in Asia/Tokyo' or 'times relative to now (…)'."""
        if self.relative:
            return f"times relative to now (zone {self.name})"
        return f"times in {self.name}"

    @property
    def absolute_caption(self) -> str:
        """'times in <zone>': for what is never relative (a time axis, a timestamp in a log line)."""
        return f"times in {self.name}"

    @property
    def tz_text(self) -> str:
        """The zone as the URL says it: 'local' or the IANA name."""
        return LOCAL if self.local else self.zone

    def at(self, value) -> dt.datetime | None:
        """A naive-UTC time as an aware time in the zone; None when unknown."""
        if value is None:
            return None
        if not isinstance(value, dt.datetime):  # a numpy datetime64, a text, NaN
            import pandas as pd  # here: the settings read this module, and `taskdash adhoc` loads no pandas
            if pd.api.types.is_scalar(value) and pd.isna(value):
                return None
            value = pd.Timestamp(value).to_pydatetime()
        elif value != value:  # pandas' NaT is a datetime too
            return None
        elif type(value) is not dt.datetime:  # a pandas Timestamp: its own conversions are the slow ones
            value = value.to_pydatetime()
        # Python's own conversion: 8 µs a value against pandas' 33 µs (a grid page formats about 200).
        moment = value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value
        return moment.astimezone(self.tzinfo)

    def absolute(self, value, day_of=None, missing: str = "", zone_abbreviation: bool = False) -> str:
        """'YYYY-MM-DD HH:MM:SS' in the zone (only 'HH:MM:SS' when on the same day there as `day_of`),
        with the zone's abbreviation ('JST', 'CET', '+05') if asked; `missing` when unknown."""
        moment = self.at(value)
        if moment is None:
            return missing
        same_day = self.at(day_of)
        text = moment.strftime("%H:%M:%S" if same_day is not None and same_day.date() == moment.date()
                               else "%Y-%m-%d %H:%M:%S")
        return f"{text} {moment.strftime('%Z')}" if zone_abbreviation else text

    def format(self, value, day_of=None, missing: str = "", now: dt.datetime | None = None,
               zone_abbreviation: bool = False) -> str:
        """A naive-UTC time as this clock shows it: absolute in the zone, or relative to `now`
        (naive UTC; the time now when not given)."""
        if self.relative:
            moment = self.at(value)
            if moment is None:
                return missing
            now = self.at(now if now is not None else dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
            return relative((moment - now).total_seconds())
        return self.absolute(value, day_of, missing, zone_abbreviation)

    def wall(self, times: pd.Series) -> pd.Series:
        """Naive-UTC times as naive wall-clock times of the zone (what a plot's time axis should
        read), each with its own offset (so across a change to or from summer time too)."""
        import pandas as pd
        times = pd.to_datetime(times)
        if times.dt.tz is None:
            times = times.dt.tz_localize("UTC")
        return times.dt.tz_convert(self.tzinfo).dt.tz_localize(None)

    def offset_seconds(self, value=None) -> float:
        """The zone's offset from UTC at the naive-UTC time `value` (now when not given), in seconds."""
        moment = self.at(value if value is not None else dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
        return moment.utcoffset().total_seconds()

    def url_args(self, default: Clock | None = None) -> dict[str, str]:
        """The clock as URL arguments: none for what equals `default` (UTC, absolute if not given)."""
        default = default or Clock()
        args = {}
        if self.tz_text != default.tz_text:
            args[TZ_ARG] = self.tz_text
        if self.relative != default.relative:
            args[AGO_ARG] = "1" if self.relative else "0"
        return args


def relative(seconds: float) -> str:
    """A difference from now as people say it: 'just now', '42 s ago', '5 min ago', 'in 3 h', '2 d ago'."""
    size = abs(seconds)
    if size < 1:
        return "just now"
    for unit, length in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if size >= length:
            amount = f"{int(size // length)} {unit}"
            break
    else:
        amount = f"{int(size)} s"
    return f"{amount} ago" if seconds < 0 else f"in {amount}"


def choose(tz: str | None, ago: str | None, default: Clock, browser_zone: str | None = None
           ) -> tuple[Clock, list[str]]:
    """The clock a page's URL asks for (`tz`, `ago`; None when not given: `default`'s), with the
    browser's zone for `tz=local` (None or a bad name: not known yet, UTC meanwhile). A bad zone
    name falls back to UTC with a message saying so."""
    problems = []
    relative_times = default.relative if ago is None else ago.strip().lower() in ("1", "true", "yes", "on")
    tz = default.tz_text if tz is None else tz.strip()
    if tz.lower() == LOCAL:
        known = browser_zone is not None and zone_info(browser_zone) is not None
        return Clock(browser_zone if known else UTC, relative_times, local=True, browser_known=known), problems
    if tz.upper() == UTC or tz == "":
        return Clock(UTC, relative_times), problems
    if zone_info(tz) is None:
        shown = tz[:40] + ("…" if len(tz) > 40 else "")
        problems.append(f"unknown time zone {shown!r}: times are in UTC (use a name such as Europe/Berlin, "
                        "UTC or local)")
        return Clock(UTC, relative_times), problems
    return Clock(tz, relative_times), problems


def default_clock(time_zone: str = UTC, relative_times: bool = False) -> Clock:
    """The clock of a page whose URL does not say (panel_serve.yaml's time_zone and relative_times)."""
    return choose(time_zone, "1" if relative_times else "0", Clock())[0]


# ---- a browser session's clock ---------------------------------------------------------------

#: document -> (its clock, the clock its URL is read against)
_sessions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: A clock set for a stretch of code (`fixed`): work a session hands to another thread, or an
#: answer shared between sessions that is computed for one clock.
_fixed: contextvars.ContextVar[Clock | None] = contextvars.ContextVar("taskdash_clock", default=None)


@contextlib.contextmanager
def fixed(clock: Clock) -> Iterator[Clock]:
    """`current()` is `clock` inside the with-block (on this thread), whatever the session."""
    token = _fixed.set(clock)
    try:
        yield clock
    finally:
        _fixed.reset(token)


def _document():
    state = sys.modules.get("panel.io.state")  # no Panel loaded (the CLI): no session either
    return state.state.curdoc if state is not None else None


def use(clock: Clock, default: Clock | None = None) -> None:
    """Make `clock` the current session's (nothing outside a session)."""
    doc = _document()
    if doc is not None:
        _sessions[doc] = (clock, default or Clock())


def current() -> Clock:
    """The clock of the session this code runs for (or the one `fixed` sets); UTC outside a session."""
    if (chosen := _fixed.get()) is not None:
        return chosen
    doc = _document()
    kept = _sessions.get(doc) if doc is not None else None
    return kept[0] if kept else Clock()


def current_default() -> Clock:
    """The clock of the session's pages whose URL does not say (the settings'); UTC outside a session."""
    doc = _document()
    kept = _sessions.get(doc) if doc is not None else None
    return kept[1] if kept else Clock()


def current_url_args() -> dict[str, str]:
    """The session's clock as the URL arguments every link of its page keeps."""
    doc = _document()
    kept = _sessions.get(doc) if doc is not None else None
    return kept[0].url_args(kept[1]) if kept else {}
