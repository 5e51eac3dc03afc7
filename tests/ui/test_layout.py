"""The pages at a laptop's 1280x800 and a desktop's 1920x1080, in Chromium: headers whole,
lifecycle chains whole and readable, no stray header column, no page wider than the window,
and every status told apart by more than colour."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process

from dashboard import queries
from dashboard.components.runs_table import MIN_NAME_WIDTH
from dashboard.spool import SpoolWriter
from dashboard.statuses import LIFECYCLE, STATUSES

SIZES = [(1280, 800), (1920, 1080)]
LONG_IDS = ("r-20261125T134227272-40c292", "r-20261125T134257276-ee8b89")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("layout")
    writer = SpoolWriter(folder / "spool", "test")
    writer.define_task("Extract_Customer_Records", "etl")
    writer.define_task("Load_Warehouse", "etl", depends_on=["Extract_Customer_Records"])
    now = queries.utcnow()
    for i, status in enumerate(STATUSES):  # one run ending in each status, plus one blocked
        trigger = now - dt.timedelta(minutes=10 * i + 1)
        steps = list(LIFECYCLE[:LIFECYCLE.index(status) + 1]) if status in LIFECYCLE else [*LIFECYCLE, status]
        for step, each in enumerate(steps):
            writer.status(f"r-{status.lower()}", "Extract_Customer_Records", each, agent="agent-12",
                          ts=trigger + dt.timedelta(seconds=step), trigger_time=trigger)
        if status == "TERMINATED":
            writer.status("r-blocked", "Load_Warehouse", "ACTIVE", ts=trigger, trigger_time=trigger)
    # Two runs of ten days ago, with run ids as long as the runner's, for a comparison of both.
    for run_id, status in ((LONG_IDS[0], "SUCCESS"), (LONG_IDS[1], "FAILED")):
        trigger = now - dt.timedelta(days=10)
        for step, each in enumerate([*LIFECYCLE, status]):
            writer.status(run_id, "Extract_Customer_Records", each, agent="agent-12",
                          ts=trigger + dt.timedelta(seconds=step), trigger_time=trigger)
    with served_in_process(folder / "spool", folder / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["runs"] == len(STATUSES) + 3, timeout=30,
                   message="the spool indexed")
        yield url


def cut(page: Page, selector: str) -> list[str]:
    """The texts of the visible elements matching `selector` that do not fit their box.

    (Panel's Tabulator ends with a 1 px column of its own, titled with a space: not ours to fit.)
    """
    return page.locator(selector).evaluate_all(
        "els => els.filter(e => e.offsetParent !== null && e.textContent.trim() && e.scrollWidth > e.clientWidth + 1)"
        ".map(e => e.textContent)")


@pytest.mark.parametrize("width,height", SIZES)
def test_the_runs_grid_fits_the_window(served, page: Page, width, height):
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{served}/task-runs")
    expect(page.locator(".tabulator-row")).to_have_count(len(STATUSES) + 1, timeout=30_000)
    assert cut(page, ".tabulator-col-title") == [], "headers cut"
    assert cut(page, ".tabulator-cell[tabulator-field=lifecycle]") == [], "lifecycle chains cut"
    header = page.locator(".tabulator-headers").bounding_box()
    row = page.locator(".tabulator-row").first.bounding_box()
    assert abs(header["width"] - row["width"]) <= 2, "an empty header column sticks out past the rows"
    # Size and colour read in one call: the grid redraws its rows as the running run's
    # duration ticks, and a step read between two calls could be detached (no style at all).
    size, grey = wait_until(lambda: unreached_step_style(page), timeout=10, message="an unreached step drawn")
    assert size >= 11
    assert contrast(grey) >= 3, f"an unreached step {grey} is too pale to read"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_a_narrow_window_keeps_task_names_readable_and_scrolls_the_grid_not_the_page(served, page: Page):
    page.set_viewport_size({"width": 800, "height": 800})
    page.goto(f"{served}/task-runs")
    expect(page.locator(".tabulator-row")).to_have_count(len(STATUSES) + 1, timeout=30_000)
    name = page.locator(".tabulator-cell[tabulator-field=task]").first
    expect(name).to_contain_text("Extract_Customer_Records")
    # (Tabulator may redraw its rows as the page settles: a cell between two drawings has no box.)
    width = wait_until(lambda: (name.bounding_box() or {}).get("width"), timeout=30, message="the name cell's box")
    assert width >= MIN_NAME_WIDTH - 1, f"the task name column is {width:.0f} px wide"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways"
    assert cut(page, ".tabulator-col-title") == [], "headers cut"


@pytest.mark.parametrize("width,height", SIZES)
@pytest.mark.parametrize("path", ["/task-runs/r-running", "/tasks"])
def test_other_pages_fit_the_window(served, page: Page, path, width, height):
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{served}{path}")
    expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=30_000)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")



#: A half screen (1520 px split in two) and a phone (390 CSS px, laid out at its own width).
NARROW = [pytest.param(760, 900, False, id="half-screen"), pytest.param(390, 844, True, id="phone")]


def beyond_the_window(page: Page, selector: str) -> list[str]:
    """The texts (or tags) of the shown elements matching `selector` that end past the window's right edge."""
    return page.locator(selector).evaluate_all(
        "els => els.filter(e => e.getClientRects().length && e.getBoundingClientRect().right > window.innerWidth + 1)"
        ".map(e => e.textContent.trim().slice(0, 40) || e.tagName)")


@pytest.mark.parametrize("width,height,phone", NARROW)
def test_a_narrow_window_or_a_phone_shows_every_control_whole(served, browser, width, height, phone):
    """Below the header's one line the title, the links and the indicator take lines of their own;
    status chips, filters, the run's card and lifecycle, the log's buttons, the graph's controls and
    a comparison's two sides wrap onto more lines, none cut or past the edge; only the grid and the
    log scroll sideways."""
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=phone, has_touch=phone)
    try:
        page = context.new_page()
        page.goto(f"{served}/task-runs")
        expect(page.locator(".tabulator-row")).to_have_count(len(STATUSES) + 1, timeout=30_000)
        # Without the page's viewport a phone lays it out 980 px wide, shrunk to a third.
        assert page.evaluate("window.innerWidth") == width
        chips = page.locator(".bk-btn", has_text=re.compile(f"^({'|'.join(STATUSES)}|LATE) "))
        expect(chips).to_have_count(len(STATUSES) + 1)
        frame = "#header a, .td-conn, .bk-btn"  # the header's links and indicator, and every button
        checks = {"/task-runs": f"{frame}, input, select",
                  "/task-runs/r-failed": f"{frame}, .td-card, .td-timeline, .td-find button, input",
                  "/tasks": f"{frame}, input, select",
                  "/timeline": f"{frame}, select",
                  f"/compare?a={LONG_IDS[0]}&b={LONG_IDS[1]}": f"{frame}, .td-cmp-sides th, .td-cmp-sides td"}
        for path, selector in checks.items():
            if path != "/task-runs":
                page.goto(f"{served}{path}")
            expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=30_000)
            if path == "/task-runs/r-failed":
                expect(page.get_by_placeholder("Search the whole log…")).to_be_visible(timeout=30_000)
                widths = page.locator(".td-card, .td-timeline").evaluate_all(
                    "els => els.map(e => e.getBoundingClientRect().width)")
                assert min(widths) >= 300, f"the card and the lifecycle squeezed: {widths}"
            if path == "/tasks":
                plot = page.locator(".bk-Canvas").first
                expect(plot).to_be_visible(timeout=30_000)
                assert plot.bounding_box()["width"] >= 320, "the graph squeezed"
            assert beyond_the_window(page, selector) == [], f"{path}: past the right edge"
            assert cut(page, ".bk-btn") == [], f"{path}: button labels cut"
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), \
                f"{path}: the page scrolls sideways"
    finally:
        context.close()


@pytest.mark.parametrize("path", ["/task-runs", "/tasks"])
def test_the_group_select_lines_up_with_the_task_name_box(served, page: Page, path):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{served}{path}")
    task_name = page.get_by_placeholder(re.compile("^Search task name"))
    expect(task_name).to_be_visible(timeout=30_000)
    group = page.locator("select").filter(has=page.locator("option", has_text="All groups"))
    top_and_height = "e => [Math.round(e.getBoundingClientRect().top), Math.round(e.getBoundingClientRect().height)]"
    assert task_name.evaluate(top_and_height) == group.evaluate(top_and_height)

def test_failed_and_terminated_differ_in_colour_and_shape(served, page: Page):
    page.goto(f"{served}/task-runs?status=FAILED,TERMINATED")
    failed = page.locator(".bk-btn.bk-active", has_text=re.compile("^FAILED"))
    terminated = page.locator(".bk-btn.bk-active", has_text=re.compile("^TERMINATED"))
    expect(failed).to_be_visible(timeout=30_000)
    background = "e => getComputedStyle(e).backgroundColor"
    assert failed.evaluate(background) != terminated.evaluate(background)
    shape = "e => getComputedStyle(e, '::before').content"
    badges = {status: page.locator(f".tabulator-row .td-badge.td-s-{status}").first.evaluate(shape)
              for status in ("FAILED", "TERMINATED")}
    assert badges["FAILED"] != badges["TERMINATED"] and "none" not in badges.values(), badges
    assert failed.evaluate(shape) != terminated.evaluate(shape)


def unreached_step_style(page: Page) -> tuple[float, str] | None:
    """Font size and colour of the grid's first lifecycle step not reached, or None."""
    styles = page.locator(".tabulator-row .td-step:not(.td-reached)").evaluate_all(
        "els => els.filter(e => e.isConnected)"
        ".map(e => [parseFloat(getComputedStyle(e).fontSize), getComputedStyle(e).color])")
    return tuple(styles[0]) if styles and styles[0][1] else None


def contrast(css_rgb: str) -> float:
    """Contrast ratio of an 'rgb(r, g, b)' colour against white (WCAG)."""
    channels = [int(c) / 255 for c in re.findall(r"\d+", css_rgb)[:3]]
    r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 1.05 / (0.2126 * r + 0.7152 * g + 0.0722 * b + 0.05)
