"""/tasks in Chromium: the graph's nodes, live recolouring, recenter, clicking a task to its
runs, the docs' example (a task waiting on a running upstream), and bad definitions named."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process

from dashboard.graph import dependency_graph, layered_layout
from dashboard.spool import SpoolWriter
from dashboard.statuses import COLORS

DEFINITIONS = [("Fetch_Orders", "billing", []), ("Generate_Invoice", "billing", ["Fetch_Orders"]),
               ("Send_Email_Invoice", "billing", ["Generate_Invoice"]), ("Extract_Users", "etl", []),
               ("Load_Warehouse", "etl", ["Extract_Users"]), ("Daily_Report", "reporting", ["Load_Warehouse"]),
               ("Loop_A", "broken", ["Loop_B"]), ("Loop_B", "broken", ["Loop_A"]),
               ("Orphan", "broken", ["Ghost_Task"])]
NODES = len(DEFINITIONS) + 1  # and the undefined Ghost_Task


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasks")
    writer = SpoolWriter(folder / "spool", "test")
    # One cycle: without a trigger time a run's is its first event's millisecond, and a failed upstream
    # blocks only the runs of its own cycle.
    trigger = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    for task, group, depends_on in DEFINITIONS:
        writer.define_task(task, group, depends_on)
    for run_id, task, status in [("r-1", "Fetch_Orders", "SUCCESS"), ("r-2", "Generate_Invoice", "RUNNING"),
                                 ("r-3", "Send_Email_Invoice", "ACTIVE"), ("r-4", "Extract_Users", "FAILED"),
                                 ("r-5", "Load_Warehouse", "ACTIVE"), ("r-6", "Daily_Report", "ACTIVE")]:
        writer.status(run_id, task, "RUNNING" if status in ("SUCCESS", "FAILED") else status, agent="agent-1",
                      trigger_time=trigger)
        if status in ("SUCCESS", "FAILED"):
            writer.status(run_id, task, status, agent="agent-1", exit_code=0 if status == "SUCCESS" else 1,
                          trigger_time=trigger)
    with served_in_process(folder / "spool", folder / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["runs"] == 6, timeout=30, message="the spool indexed")
        yield url, writer


NODE_DATA = """() => {
  const points = Bokeh.index.query_one(v => v.model.data_source != null && v.model.data_source.data.fill != null)
  if (points == null) { return [] }
  const data = points.model.data_source.data
  return Array.from(data.name, (task, i) => ({task, x: data.x[i], y: data.y[i], fill: data.fill[i],
                                             role: data.role[i], group: data.group[i], alpha: data.alpha[i]}))
}"""

PLOT_RANGE = """() => {
  const plot = Bokeh.index.query_one(v => v.frame != null && v.frame.x_scale != null)
  return [plot.frame.x_range.start, plot.frame.x_range.end, plot.frame.y_range.start, plot.frame.y_range.end]
}"""

SCREEN_POINT = """([x, y]) => {
  const plot = Bokeh.index.query_one(v => v.frame != null && v.frame.x_scale != null)
  const rect = plot.canvas_view.el.getBoundingClientRect()
  return [rect.left + plot.frame.x_scale.compute(x), rect.top + plot.frame.y_scale.compute(y)]
}"""


def node_data(page: Page) -> dict[str, dict]:
    return {node["task"]: node for node in page.evaluate(NODE_DATA)}


@pytest.fixture
def tasks_page(served, page: Page) -> Page:
    url, _ = served
    page.set_viewport_size({"width": 1366, "height": 1200})  # the whole graph on screen, to click on it
    page.goto(f"{url}/tasks")
    expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=30_000)
    wait_until(lambda: node_data(page), timeout=30, message="the graph drawn")
    return page


def test_the_graph_shows_every_task_and_what_holds_them(tasks_page):
    wait_until(lambda: len(node_data(tasks_page)) == NODES, timeout=15, message=f"{NODES} nodes")
    nodes = node_data(tasks_page)
    assert nodes["Generate_Invoice"]["fill"] == COLORS["RUNNING"]
    assert nodes["Send_Email_Invoice"]["role"] == "waiting on Generate_Invoice", "the docs' example"
    assert nodes["Extract_Users"]["role"] == "ROOT CAUSE · blocks 2"
    # Its run waits in the cycle where Extract_Users failed: blocked, named by the head of the chain.
    assert nodes["Daily_Report"]["role"] == "⊘ BLOCKED · upstream Extract_Users failed (via Load_Warehouse)", \
        "the head of the chain, not the upstream that only waits itself"
    assert nodes["Ghost_Task"]["group"] == "not defined"
    assert nodes["Fetch_Orders"]["x"] < nodes["Generate_Invoice"]["x"] < nodes["Send_Email_Invoice"]["x"]
    problems = tasks_page.locator(".alert-warning")
    expect(problems).to_contain_text("'Orphan' depends on 'Ghost_Task', which is not defined")
    expect(problems).to_contain_text(re.compile(r"cycle: Loop_[AB] → Loop_[AB] → Loop_[AB]"))
    expect(tasks_page.get_by_text("root cause Extract_Users blocks 2")).to_be_visible()


def test_a_status_change_recolours_a_node_without_reload(tasks_page, served):
    _, writer = served
    tasks_page.evaluate("window.__no_reload_marker = true")
    writer.status("r-2", "Generate_Invoice", "FAILED", agent="agent-1", exit_code=2)
    wait_until(lambda: node_data(tasks_page)["Generate_Invoice"]["fill"] == COLORS["FAILED"], timeout=20,
               message="Generate_Invoice turns FAILED")
    assert node_data(tasks_page)["Generate_Invoice"]["role"].startswith("ROOT CAUSE")
    assert tasks_page.evaluate("window.__no_reload_marker === true")


def test_recenter_restores_the_view_after_zooming(tasks_page):
    initial = tasks_page.evaluate(PLOT_RANGE)
    x, y = tasks_page.evaluate(SCREEN_POINT, [1.0, -1.0])
    tasks_page.mouse.move(x, y)
    tasks_page.mouse.wheel(0, -600)
    wait_until(lambda: tasks_page.evaluate(PLOT_RANGE) != initial, timeout=10, message="the wheel to zoom")
    tasks_page.get_by_role("button", name="Recenter").click()
    wait_until(lambda: tasks_page.evaluate(PLOT_RANGE) == initial, timeout=15, message="the view fitted again")


def test_the_tasks_tables_titles_are_whole(tasks_page):
    """At 1366 px each column's title shows whole ("downstr…", "success…" and "median …" were cut)."""
    titles = tasks_page.locator(".tabulator-col-title")
    expect(titles.filter(has_text="median duration")).to_be_visible(timeout=30_000)
    cut = titles.evaluate_all("els => els.filter(e => e.textContent.trim() && e.scrollWidth > e.clientWidth)"
                              ".map(e => e.textContent)")
    assert cut == [], f"titles cut: {cut}"


def test_clicking_a_task_selects_it_and_leads_to_its_runs(tasks_page, served):
    url, _ = served
    task_graph = dependency_graph(DEFINITIONS)
    x, y = layered_layout(task_graph)["Load_Warehouse"]
    assert node_data(tasks_page)["Load_Warehouse"]["x"] == x, "the page lays out like the graph module"
    tasks_page.mouse.click(*tasks_page.evaluate(SCREEN_POINT, [x, y]))
    link = tasks_page.get_by_role("link", name="View runs of Load_Warehouse →")
    expect(link).to_be_visible(timeout=15_000)
    expect(tasks_page.get_by_text("1 direct upstream · 1 direct downstream")).to_be_visible()
    nodes = node_data(tasks_page)
    assert nodes["Extract_Users"]["alpha"] == 1.0 and nodes["Daily_Report"]["alpha"] == 1.0
    assert nodes["Fetch_Orders"]["alpha"] < 1.0, "unrelated tasks fade"
    link.click()
    tasks_page.wait_for_url(re.compile(re.escape(f"{url}/task-runs?search=Load_Warehouse")))
    expect(tasks_page.locator('.tabulator-row .tabulator-cell[tabulator-field="task"]')).to_have_text(
        ["Load_Warehouse"], timeout=30_000)

