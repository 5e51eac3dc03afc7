"""/timeline in Chromium: one bar per run (and its queue wait) in a row per task or agent, live, a
click on a bar opens its run, and the view is in the URL."""

from __future__ import annotations

import datetime as dt

import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process

from dashboard import queries
from dashboard.spool import SpoolWriter

#: What the timeline draws: each part ("run" or "wait") with its bars' run ids and rows.
DRAWN = """() => {
  const found = {}
  for (const view of Bokeh.index.query(v => v.model.data_source != null && v.model.data_source.data.part != null)) {
    const data = view.model.data_source.data
    for (let i = 0; i < data.run_id.length; i++) {
      (found[data.part[i]] = found[data.part[i]] || []).push([data.run_id[i], data.task[i], data.agent[i]])
    }
  }
  return found
}"""
#: Where on the page the middle of a run's bar is.
BAR_AT = """(runId) => {
  const bars = Bokeh.index.query_one(v => v.model.data_source != null && v.model.data_source.data.part != null
                                          && v.model.data_source.data.part[0] === "run")
  const plot = Bokeh.index.query_one(v => v.frame != null && v.frame.x_scale != null)
  const data = bars.model.data_source.data
  const i = Array.from(data.run_id).indexOf(runId)
  const box = plot.canvas_view.el.getBoundingClientRect()
  return [box.left + plot.frame.x_scale.compute((data.x0[i] + data.x1[i]) / 2),
          box.top + plot.frame.y_scale.compute(data.y0[i])]
}"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("timeline")
    writer = SpoolWriter(folder / "spool", "test")
    for task in ("Extract", "Load", "<b>Report</b>"):
        writer.define_task(task, "etl")
    now = queries.utcnow()
    for n, (task, agent, ending) in enumerate([("Extract", "agent-1", "SUCCESS"), ("Load", "agent-2", "FAILED"),
                                               ("<b>Report</b>", "agent-1", None)]):
        trigger = now - dt.timedelta(minutes=30 - 5 * n)
        writer.status(f"r-{n}", task, "TRIGGER", ts=trigger, trigger_time=trigger)
        writer.status(f"r-{n}", task, "RUNNING", agent=agent, ts=trigger + dt.timedelta(minutes=1),
                      trigger_time=trigger)
        if ending:
            writer.status(f"r-{n}", task, ending, agent=agent, ts=trigger + dt.timedelta(minutes=4),
                          trigger_time=trigger)
    queued = now - dt.timedelta(minutes=2)
    writer.status("r-queued", "Load", "TRIGGER", ts=queued, trigger_time=queued)
    with served_in_process(folder / "spool", folder / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["runs"] == 4, timeout=30, message="the spool indexed")
        yield url, writer


def drawn(page: Page) -> dict:
    return {part: sorted(rows) for part, rows in page.evaluate(DRAWN).items()}


def test_the_timeline_draws_each_run_live_and_a_click_opens_it(served, page: Page):
    url, writer = served
    page.goto(f"{url}/timeline")
    expect(page.get_by_text("4 runs triggered in the last 6h, one row per task")).to_be_visible(timeout=30_000)
    shown = wait_until(lambda: drawn(page).get("run") and drawn(page), timeout=20, message="bars drawn")
    assert [run_id for run_id, *_ in shown["run"]] == ["r-0", "r-1", "r-2"], "only started runs have a run bar"
    assert [run_id for run_id, *_ in shown["wait"]] == ["r-0", "r-1", "r-2", "r-queued"]
    assert ["r-2", "<b>Report</b>", "agent-1"] in shown["run"]

    now = queries.utcnow()
    writer.status("r-new", "Extract", "RUNNING", agent="agent-3", ts=now, trigger_time=now - dt.timedelta(seconds=5))
    wait_until(lambda: "r-new" in [run_id for run_id, *_ in drawn(page).get("run", [])], timeout=20,
               message="a new run drawn live")
    expect(page.get_by_text("5 runs triggered")).to_be_visible(timeout=10_000)

    page.get_by_role("button", name="agent").click()
    expect(page).to_have_url(f"{url}/timeline?by=agent", timeout=10_000)
    expect(page.get_by_text("5 runs triggered in the last 6h, one row per agent")).to_be_visible(timeout=20_000)
    x, y = page.evaluate(BAR_AT, "r-1")
    page.mouse.click(x, y)
    expect(page).to_have_url(f"{url}/task-runs/r-1", timeout=20_000)
    expect(page.locator(".td-card")).to_contain_text("Load", timeout=30_000)
