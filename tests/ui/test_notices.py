"""Notices never cover the data, and a page whose link is down dims what it shows (Chromium, 1280x800)."""

from __future__ import annotations

import datetime as dt
import re

from playwright.sync_api import Page, expect
from serving import DashboardServer

from dashboard import queries
from dashboard.spool import SpoolWriter


def overlaps(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and \
        a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


def test_url_notices_sit_off_the_rows_and_a_lost_link_dims_the_page(tmp_path, page: Page):
    writer = SpoolWriter(tmp_path / "spool", "test")
    now = queries.utcnow()
    for i in range(30):
        writer.status(f"r-{i:02d}", "Fetch_Orders", "SUCCESS", agent="agent-1", exit_code=0,
                      ts=now - dt.timedelta(minutes=i), trigger_time=now - dt.timedelta(minutes=i))
    server = DashboardServer(tmp_path)
    try:
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(f"{server.url}/task-runs?since=2y&page_size=7&sort=nope")
        expect(page.locator(".notyf__toast")).to_have_count(3, timeout=30_000)
        expect(page.locator(".tabulator-row").first).to_be_visible(timeout=30_000)  # the rows come after the notices
        rows = [page.locator(".tabulator-row").nth(i).bounding_box() for i in range(page.locator(".tabulator-row").count())]
        rows.append(page.locator(".tabulator-headers").bounding_box())
        for toast in page.locator(".notyf__toast").all():
            box = toast.bounding_box()
            assert not any(overlaps(box, row) for row in rows if row), f"a notice covers rows: {box}"
            # Its colour on the whole notice, under its white text (Notyf's 400 px ripple left
            # the rest of a wide notice transparent: white text on the page).
            expect(toast).to_have_css("background-color", "rgb(180, 83, 9)")
            expect(toast.locator(".notyf__ripple")).to_have_count(0)

        server.stop()
        expect(page.locator(".td-conn")).to_have_attribute("data-state", re.compile("Connecting|Disconnected"),
                                                           timeout=30_000)
        expect(page.locator("#main")).to_have_css("opacity", "0.45")
        lost = page.locator(".notyf__toast", has_text="connection lost")
        expect(lost).to_be_visible()
        assert not any(overlaps(lost.bounding_box(), row) for row in rows if row), "the notice covers rows"
    except BaseException:
        print("---- server output ----\n" + "".join(server.output))
        raise
    finally:
        server.stop()
