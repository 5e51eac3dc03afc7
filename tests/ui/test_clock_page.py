"""One clock in Chromium: the same URL with tz=Asia/Tokyo shows the same instants in browsers set to
different zones, tz=local follows each browser's own zone, and links keep the choice."""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo

import pytest
from helpers import wait_until
from playwright.sync_api import Browser, expect
from serving import served_in_process

from dashboard.spool import SpoolWriter

#: The run's trigger: an hour ago to the second, so it is in the grid's default range.
TRIGGER = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=1)
WRITTEN = TRIGGER.strftime("%Y-%m-%dT%H:%M:%SZ")  # as the log line writes it
SHOTS = os.environ.get("TASKDASH_SHOTS")  # a folder: save what the test saw (to look at it)


def in_zone(zone: str, fmt: str = "%Y-%m-%d %H:%M:%S %Z") -> str:
    return TRIGGER.astimezone(ZoneInfo(zone)).strftime(fmt)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clock")
    writer = SpoolWriter(folder / "spool", "test")
    writer.define_task("Generate_Invoice", "billing")
    for status in ("TRIGGER", "STARTED", "RUNNING", "SUCCESS"):
        writer.status("r-1", "Generate_Invoice", status, agent="agent-1", ts=TRIGGER.replace(tzinfo=None),
                      trigger_time=WRITTEN)
    writer.append_log("r-1", "stdout", f"batch opened at {WRITTEN} by the scheduler\n")
    with served_in_process(folder / "spool", folder / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["log_lines"] == 1, timeout=30, message="the log indexed")
        yield url


def test_one_url_shows_the_same_instants_in_browsers_of_two_zones(served, browser: Browser):
    tokyo = in_zone("Asia/Tokyo")
    for browser_zone in ("Europe/Berlin", "America/New_York"):
        context = browser.new_context(timezone_id=browser_zone, viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.goto(f"{served}/task-runs/r-1?tz=Asia/Tokyo")
            card = page.locator(".td-card")
            expect(card).to_contain_text(f"Trigger time{tokyo}", timeout=30_000)
            stamp = page.locator(".td-line .td-ts")
            shown = in_zone("Asia/Tokyo", "%Y-%m-%dT%H:%M:%S+09:00")
            expect(stamp).to_have_attribute("data-shown", shown, timeout=30_000)
            expect(stamp).to_have_text(WRITTEN)  # the text as written: what a copy copies
            expect(stamp).to_have_attribute("title", f"{WRITTEN} as written · {shown} in Asia/Tokyo")
            expect(page.get_by_role("link", name="Task Runs", exact=True).first).to_have_attribute(
                "href", "/task-runs?tz=Asia%2FTokyo")
            if SHOTS:
                page.screenshot(path=f"{SHOTS}/detail-tokyo-{browser_zone.replace('/', '-')}.png", full_page=True)

            page.goto(f"{served}/task-runs/r-1?tz=local")  # built in UTC until the browser said its zone
            expect(card).to_contain_text(f"Trigger time{in_zone(browser_zone)}", timeout=30_000)
            expect(page.locator(".td-clock input[type=text]")).to_have_value("local")
            expect(stamp).to_have_attribute("data-shown", in_zone(browser_zone, "%Y-%m-%dT%H:%M:%S")
                                            + in_zone(browser_zone, "%z")[:3] + ":" + in_zone(browser_zone, "%z")[3:])
        finally:
            context.close()
