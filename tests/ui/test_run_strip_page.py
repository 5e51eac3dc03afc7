"""The strip of runs over time on /task-runs, in Chromium: a click on a bar narrows the grid to that
bucket's runs and puts the window in the URL; the window's chip widens the grid again."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process

from dashboard import queries
from dashboard.spool import SpoolWriter

RUNS = 36
BUCKET = queries.strip_bucket(dt.timedelta(hours=24))  # the grid's default range
#: The view of the strip's bars (one renderer draws them all).
STRIP_BARS = ("Array.from(Bokeh.index.query(v => v.model.data_source != null "
              "&& v.model.data_source.data.window != null))")
#: Where on the page the middle of the strip's bar starting at `start` (ms) is, halfway up (on one
#: of its statuses' segments: each stands for the whole bar).
BAR_AT = """(start) => {
  const bars = STRIP_BARS[0]
  const plot = bars.parent
  const data = bars.model.data_source.data
  const i = Array.from(data.start).indexOf(start)
  const box = plot.canvas_view.el.getBoundingClientRect()
  return [box.left + plot.frame.x_scale.compute(data.mid[i]), box.top + plot.frame.y_scale.compute(data.runs[i] / 2)]
}""".replace("STRIP_BARS", STRIP_BARS)
#: The runs the strip counts, once it has counted them.
COUNTED = """() => {
  const bars = STRIP_BARS
  return bars.length ? Array.from(bars[0].model.data_source.data.count).reduce((a, b) => a + b, 0) : -1
}""".replace("STRIP_BARS", STRIP_BARS)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run-strip")
    writer = SpoolWriter(folder / "spool", "test")
    now = queries.utcnow().replace(microsecond=0)
    epoch = dt.datetime(1970, 1, 1)
    chosen = epoch + BUCKET * ((now - dt.timedelta(hours=5) - epoch) // BUCKET)  # a bucket five hours ago
    triggers = {f"r-{i:02d}": now - dt.timedelta(minutes=37 * i + 3) for i in range(RUNS - 3)}
    triggers |= {f"busy-{i}": chosen + dt.timedelta(minutes=2 + 5 * i) for i in range(3)}
    for n, (run_id, trigger) in enumerate(triggers.items()):
        status = "FAILED" if n % 5 == 0 else "SUCCESS"
        writer.status(run_id, f"Task_{n % 4}", status, agent="agent-1", ts=trigger + dt.timedelta(minutes=1),
                      trigger_time=trigger, exit_code=1 if status == "FAILED" else 0)
    in_bucket = {run_id for run_id, trigger in triggers.items() if chosen <= trigger < chosen + BUCKET}
    with served_in_process(folder / "spool", folder / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["runs"] == RUNS, timeout=30, message="the spool indexed")
        yield url, chosen, in_bucket


def grid_run_ids(page: Page) -> set[str]:
    hrefs = page.locator(".tabulator-row a.td-eye").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    return {href.rsplit("/", 1)[-1] for href in hrefs}


def test_a_click_on_a_bar_narrows_the_grid_to_its_window_and_the_chip_widens_it_again(served, page: Page):
    url, chosen, in_bucket = served
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{url}/task-runs")
    wait_until(lambda: page.evaluate(COUNTED) == RUNS, timeout=30, message="the strip counted every run")
    wait_until(lambda: len(grid_run_ids(page)) == RUNS, timeout=30, message="the grid shows every run")
    start_ms = (chosen - dt.datetime(1970, 1, 1)) // dt.timedelta(milliseconds=1)
    x, y = page.evaluate(BAR_AT, start_ms)
    page.mouse.click(x, y)
    window = f"start={chosen:%Y-%m-%dT%H}%3A{chosen:%M}%3A00Z&end="
    expect(page).to_have_url(re.compile(re.escape(window)), timeout=30_000)
    wait_until(lambda: grid_run_ids(page) == in_bucket, timeout=30, message="the grid narrowed to the bucket's runs")
    chip = page.locator(".td-window-chip button")
    label = f"{chosen:%H:%M}–{chosen + BUCKET:%H:%M} ×"
    expect(chip).to_have_text(label if chosen.date() == queries.utcnow().date() else re.compile(re.escape(label)))
    expect(page.get_by_text(f"Showing 1–{len(in_bucket)} of {len(in_bucket)} runs")).to_be_visible(timeout=30_000)
    chip.click()
    expect(page).to_have_url(f"{url}/task-runs", timeout=30_000)
    wait_until(lambda: len(grid_run_ids(page)) == RUNS, timeout=30, message="the grid shows every run again")
    expect(chip).to_be_hidden()
