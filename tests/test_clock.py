"""One clock: times in the chosen zone (summer time included), bad names falling back to UTC with a
message, relative times, the URL's arguments, and the session's clock reaching every formatted time."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from dashboard import clock
from dashboard.clock import Clock, choose, relative
from dashboard.config import ConfigError, load_config
from dashboard.formatting import clock as formatted
from dashboard.store import Links

NOON = dt.datetime(2026, 12, 2, 12, 0, 3)  # naive UTC, as the index keeps times


def test_a_time_reads_in_the_chosen_zone():
    assert Clock().format(NOON) == "2026-12-02 12:00:03"
    assert Clock("Asia/Tokyo").format(NOON) == "2026-12-02 21:00:03"
    assert Clock("America/New_York").format(NOON) == "2026-12-02 07:00:03"
    assert Clock("Asia/Kolkata").format(NOON, zone_abbreviation=True) == "2026-12-02 17:30:03 IST"


def test_the_same_day_is_the_zones_day():
    # 20:00 UTC is the next day in Tokyo: the date is left out only when both are on one day there.
    evening = dt.datetime(2026, 12, 2, 20, 0)
    assert Clock("Asia/Tokyo").format(evening, day_of=dt.datetime(2026, 12, 2, 16, 0)) == "05:00:00"
    assert Clock("Asia/Tokyo").format(evening, day_of=dt.datetime(2026, 12, 2, 14, 0)) == "2026-12-03 05:00:00"
    assert Clock().format(evening, day_of=dt.datetime(2026, 12, 2, 14, 0)) == "20:00:00"


def test_summer_time_changes_the_offset_on_its_day():
    berlin = Clock("Europe/Berlin")
    # 2026-03-29 01:00 UTC: Berlin's clocks go from 02:00 CET to 03:00 CEST.
    assert berlin.format(dt.datetime(2026, 3, 29, 0, 59, 59), zone_abbreviation=True) == "2026-03-29 01:59:59 CET"
    assert berlin.format(dt.datetime(2026, 3, 29, 1, 0, 0), zone_abbreviation=True) == "2026-03-29 03:00:00 CEST"
    # 2026-10-25 01:00 UTC: back from 03:00 CEST to 02:00 CET; 02:30 happens twice, an hour apart.
    assert berlin.format(dt.datetime(2026, 10, 25, 0, 30)) == berlin.format(dt.datetime(2026, 10, 25, 1, 30))
    assert berlin.offset_seconds(dt.datetime(2026, 7, 1)) == 7200 and berlin.offset_seconds(NOON) == 3600
    times = pd.Series(pd.to_datetime(["2026-03-29 00:30", "2026-03-29 01:30"]))
    assert list(berlin.wall(times)) == [pd.Timestamp("2026-03-29 01:30"), pd.Timestamp("2026-03-29 03:30")]


def test_unknown_times_stay_missing():
    for value in (None, pd.NaT, float("nan")):
        assert Clock("Asia/Tokyo").format(value, missing="—") == "—"
        assert Clock(relative=True).format(value) == ""


@pytest.mark.parametrize("asked, zone", [("Asia/Tokyo", "Asia/Tokyo"), ("utc", "UTC"), ("", "UTC"),
                                         (" Europe/Berlin ", "Europe/Berlin")])
def test_a_url_names_a_zone(asked, zone):
    chosen, problems = choose(asked, None, Clock())
    assert (chosen.zone, chosen.local, problems) == (zone, False, [])


@pytest.mark.parametrize("bad", ["Mars/Olympus", "asia/tokyo", "../../etc/passwd", "/etc/localtime", "x" * 200,
                                 "Europe/Berlin\x00", "<script>"])
def test_a_bad_zone_name_falls_back_to_utc_and_says_so(bad):
    chosen, problems = choose(bad, None, Clock("Asia/Tokyo"))
    assert chosen == Clock()
    assert len(problems) == 1 and "unknown time zone" in problems[0] and "UTC" in problems[0]
    assert len(problems[0]) < 200


def test_local_is_the_browsers_zone_once_it_is_known():
    known, _ = choose("local", None, Clock(), browser_zone="Asia/Tokyo")
    assert (known.zone, known.local, known.browser_known, known.tz_text) == ("Asia/Tokyo", True, True, "local")
    assert "your zone, Asia/Tokyo" in known.caption
    for unknown_zone in (None, "Not/AZone"):
        unknown, problems = choose("LOCAL", None, Clock(), browser_zone=unknown_zone)
        assert (unknown.zone, unknown.local, unknown.browser_known, problems) == ("UTC", True, False, [])


def test_relative_times_read_as_people_say_them():
    assert [relative(s) for s in (0.4, -42, -300, -7200, -3 * 86_400, 90)] == [
        "just now", "42 s ago", "5 min ago", "2 h ago", "3 d ago", "in 1 min"]
    ago = Clock("Asia/Tokyo", relative=True)
    assert ago.format(NOON, now=NOON + dt.timedelta(minutes=5, seconds=10)) == "5 min ago"
    assert ago.absolute(NOON) == "2026-12-02 21:00:03" and "relative" in ago.caption


def test_the_url_keeps_only_what_differs_from_the_default():
    tokyo = Clock("Asia/Tokyo")
    assert Clock().url_args() == {} and tokyo.url_args(tokyo) == {}
    assert tokyo.url_args() == {"tz": "Asia/Tokyo"}
    assert Clock().url_args(tokyo) == {"tz": "UTC"}
    assert Clock("Asia/Tokyo", relative=True, local=True).url_args() == {"tz": "local", "ago": "1"}
    assert choose(None, None, tokyo)[0] == tokyo and choose(None, "1", tokyo)[0].relative


def test_the_settings_default_zone_is_checked(tmp_path):
    settings = tmp_path / "panel_serve.yaml"
    settings.write_text("time_zone: Asia/Tokyo\nrelative_times: true\n")
    config = load_config(settings)
    assert clock.default_clock(config.time_zone, config.relative_times) == Clock("Asia/Tokyo", relative=True)
    settings.write_text("time_zone: Mars/Olympus\n")
    with pytest.raises(ConfigError, match="time_zone"):
        load_config(settings)


def test_formatted_times_and_links_follow_the_clock_in_force():
    links = Links(routes={"task_runs": "/task-runs", "run_detail": "/task-runs/{run_id}"})
    assert formatted(NOON) == "2026-12-02 12:00:03"  # outside a page: UTC, as the CLI shows
    with clock.fixed(Clock("Asia/Tokyo")):
        assert formatted(NOON) == "2026-12-02 21:00:03"
        assert clock.current().zone == "Asia/Tokyo"
    assert formatted(NOON) == "2026-12-02 12:00:03"
    assert links.page("task_runs", search="a b") == "/task-runs?search=a+b"
    assert links.download("r-1", "stdout") == "/task-runs/r-1/logs/stdout.log"


def test_a_sessions_clock_reaches_its_times_and_its_links():
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    links = Links(routes={"task_runs": "/task-runs", "run_detail": "/task-runs/{run_id}"})
    with set_curdoc(Document()):
        clock.use(Clock("Asia/Tokyo"), default=Clock())
        assert formatted(NOON) == "2026-12-02 21:00:03"
        assert links.page("run_detail", "r-1") == "/task-runs/r-1?tz=Asia%2FTokyo"
        assert links.page("task_runs", search="x") == "/task-runs?search=x&tz=Asia%2FTokyo"
        assert links.download("r-1", "stdout") == "/task-runs/r-1/logs/stdout.log"
    with set_curdoc(Document()):  # another session, its own clock (none chosen: UTC)
        assert formatted(NOON) == "2026-12-02 12:00:03" and links.page("task_runs") == "/task-runs"
