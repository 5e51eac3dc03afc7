"""A run's page in Chromium: the log header tells the truth while Follow is off, a failed run
opens on the stream with its error, the pager hides while following, and the details card
lines up with the timeline card."""

from __future__ import annotations

import re

import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process

from dashboard.spool import SpoolWriter

LIVE_LINES = 12


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("log-header")
    writer = SpoolWriter(folder / "spool", "test")
    for status in ("TRIGGER", "STARTED", "RUNNING"):
        writer.status("r-fail", "Load", status, agent="agent-1")
        writer.status("r-live", "Load", status, agent="agent-1")
    writer.append_log("r-fail", "stdout", "".join(f"loading part {n}\n" for n in range(1, 9)))
    writer.append_log("r-fail", "stderr", "Traceback (most recent call last):\nValueError: part 9 is empty\n")
    writer.status("r-fail", "Load", "FAILED", agent="agent-1", exit_code=1)
    writer.append_log("r-live", "stdout", "".join(f"step {n}\n" for n in range(1, LIVE_LINES + 1)))
    with served_in_process(folder / "spool", folder / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["log_lines"] == 10 + LIVE_LINES, timeout=30,
                   message="the logs indexed")
        yield url, writer


def open_run(page: Page, url: str, run_id: str) -> Page:
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{url}/task-runs/{run_id}")
    expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=30_000)
    return page


def test_a_failed_run_opens_on_the_stream_with_its_error(served, page: Page):
    url, _ = served
    open_run(page, url, "r-fail")
    expect(page.get_by_role("button", name="stderr · 2")).to_have_class(re.compile("bk-active"))
    expect(page.get_by_text("ValueError: part 9 is empty")).to_be_visible()
    log_box = page.locator(".td-log").bounding_box()
    assert log_box["height"] < 200, f"a 2-line log sits in a {log_box['height']} px box"


def test_the_details_card_lines_up_with_the_timeline_card(served, page: Page):
    url, _ = served
    open_run(page, url, "r-fail")
    card, timeline = page.locator(".td-card").bounding_box(), page.locator(".td-timeline").bounding_box()
    assert abs(card["y"] - timeline["y"]) <= 1, (card, timeline)


def test_the_header_says_what_is_shown_while_follow_is_off(served, page: Page):
    url, writer = served
    open_run(page, url, "r-live")
    header = page.get_by_text(re.compile("Following the newest of"))
    expect(header).to_have_text(f"Following the newest of {LIVE_LINES} lines")
    expect(page.get_by_role("button", name="‹ Previous")).to_be_hidden()
    page.get_by_role("button", name="Follow").click()
    expect(page.get_by_text(f"Lines 1–{LIVE_LINES} of {LIVE_LINES}")).to_be_visible()
    expect(page.get_by_role("button", name="‹ Previous")).to_be_visible()
    writer.append_log("r-live", "stdout", "".join(f"later {n}\n" for n in range(1, 6)))
    expect(page.get_by_text(re.compile(rf"Lines 1–{LIVE_LINES} of {LIVE_LINES + 5} · 5 new lines"))).to_be_visible(
        timeout=15_000)


def test_the_log_controls_line_up(served, page: Page):
    url, _ = served
    open_run(page, url, "r-fail")
    follow = page.get_by_role("button", name="Follow").bounding_box()
    download = page.get_by_role("link", name=re.compile("^Download")).bounding_box()
    assert abs(download["y"] - follow["y"]) <= 1 and abs(download["height"] - follow["height"]) <= 1, \
        (download, follow)
    label = page.get_by_role("link", name=re.compile("^Download")).evaluate(
        "a => { const r = document.createRange(); r.selectNodeContents(a); const b = r.getBoundingClientRect();"
        " return b.top + b.height / 2 }")
    assert abs(label - (download["y"] + download["height"] / 2)) <= 2, "the Download label is not centred"
    streams = page.get_by_role("button", name=re.compile("^stdout")).bounding_box()
    search = page.get_by_placeholder(re.compile("Search the whole log")).bounding_box()
    assert abs(search["x"] - streams["x"]) <= 1, "the search row sticks out past the controls above it"
    reload = page.get_by_role("button", name="Reload").bounding_box()
    box = page.locator(".td-line").first.bounding_box()
    assert box["x"] + box["width"] <= download["x"] + download["width"] + 1, "the log box sticks out on the right"
    assert reload["x"] < download["x"]
