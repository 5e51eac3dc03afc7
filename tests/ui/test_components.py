"""Each component served alone over a small store (no pages, no server module): what it shows,
and that it follows the spool live."""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_component
from test_tasks_page import NODE_DATA

from dashboard import queries
from dashboard.components import live
from dashboard.components.connection import connection_indicator
from dashboard.components.dependency_graph import DependencyGraph
from dashboard.components.log_viewer import LogViewer
from dashboard.components.run_card import RunCard
from dashboard.components.runs_grid import RunsGrid
from dashboard.components.tasks_table import TasksTable
from dashboard.config import Config
from dashboard.services import Services
from dashboard.spool import SpoolWriter
from dashboard.store import Links


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A store over three runs of two tasks, with its own ingestor following the spool."""
    folder = tmp_path_factory.mktemp("components")
    writer = SpoolWriter(folder / "spool", "test")
    writer.define_task("Extract", "etl")
    writer.define_task("Load", "etl", depends_on=["Extract"])
    writer.status("r-1", "Extract", "RUNNING", agent="agent-1")
    writer.status("r-1", "Extract", "SUCCESS", agent="agent-1", exit_code=0)
    writer.status("r-2", "Load", "RUNNING", agent="agent-2")
    writer.append_log("r-2", "stdout", "loading <b>rows</b>\n")
    config = Config(spool=folder / "spool", index=folder / "index.duckdb")
    services = Services.start(config, Links(config.routes), catch_up=True)
    try:
        yield services.store, writer
    finally:
        services.stop()


def follow(store, build, min_interval=0.25):
    def served():
        view = live.follow(store, build, min_interval=min_interval)[0]
        return view.panel() if hasattr(view, "panel") else view
    return served


def test_the_runs_grid_alone_shows_its_runs_and_links_them(small, page: Page):
    store, _ = small
    with served_component(follow(store, lambda: RunsGrid(store=store))) as url:
        page.goto(url)
        cells = page.locator('.tabulator-row .tabulator-cell[tabulator-field="task"]')
        expect(cells).to_have_text(["Load", "Extract"], timeout=30_000)
        expect(page.locator("a.td-eye").first).to_have_attribute("href", "/task-runs/r-2")


def test_the_run_card_alone_shows_a_run_and_follows_its_status(small, page: Page):
    store, writer = small
    days_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)  # out of the grid's time range
    writer.status("r-card", "Extract", "RUNNING", agent="agent-3", ts=days_ago, trigger_time=days_ago.isoformat())
    wait_until(lambda: queries.run(store, "r-card") is not None, timeout=30, message="r-card indexed")
    with served_component(follow(store, lambda: RunCard(store=store, run_id="r-card"))) as url:
        page.goto(url)
        expect(page.locator(".td-card .td-title")).to_have_text("Extract", timeout=30_000)
        expect(page.locator(".td-timeline li.td-now")).to_have_attribute("data-status", "RUNNING")
        writer.status("r-card", "Extract", "FAILED", agent="agent-3", ts=days_ago + dt.timedelta(seconds=5),
                      exit_code=2, message="<b>disk</b> full")
        expect(page.locator(".td-timeline li.td-bad")).to_have_attribute("data-status", "FAILED", timeout=30_000)
        expect(page.locator(".td-card")).to_contain_text("<b>disk</b> full")  # text, not HTML
        expect(page.locator(".td-timeline li.td-now")).to_have_count(0)


def test_the_log_viewer_alone_follows_a_running_run_s_log(small, page: Page):
    store, writer = small
    with served_component(follow(store, lambda: LogViewer(store=store, run_id="r-2", follow=True))) as url:
        page.goto(url)
        expect(page.locator(".td-log")).to_contain_text("loading <b>rows</b>", timeout=30_000)  # text, not HTML
        writer.append_log("r-2", "stdout", "second line\n")
        expect(page.locator(".td-log")).to_contain_text("second line", timeout=30_000)


def test_the_log_viewer_alone_pages_a_finished_run(small, page: Page):
    store, writer = small
    writer.append_log("r-1", "stdout", "".join(f"line {n}\n" for n in range(1, 11)))
    wait_until(lambda: queries.log_line_counts(store, "r-1")["stdout"] == 10, timeout=30)
    with served_component(lambda: LogViewer(store=store, run_id="r-1")) as url:
        page.goto(url)
        expect(page.locator(".td-log")).to_contain_text("line 10", timeout=30_000)
        expect(page.locator("a.td-download")).to_have_attribute("href", "/task-runs/r-1/logs/stdout.log")


def test_the_dependency_graph_alone_draws_its_tasks_and_selects_one(small, page: Page):
    store, _ = small
    with served_component(follow(store, lambda: DependencyGraph(store=store, task="Load"), min_interval=1.0)) as url:
        page.goto(url)
        wait_until(lambda: len(page.evaluate(NODE_DATA)) == 2, timeout=30, message="the graph drawn")
        expect(page.locator("a.td-task-runs")).to_have_text("View runs of Load →")
        alpha = {node["task"]: node["alpha"] for node in page.evaluate(NODE_DATA)}
        assert alpha == {"Extract": 1.0, "Load": 1.0}  # the selected task and its upstream lit
        expect(page.get_by_text("Laying out")).to_be_hidden()


def test_the_tasks_table_alone_lists_its_tasks_and_a_click_selects_one(small, page: Page):
    store, _ = small
    tables = []

    def build():
        tables.append(TasksTable(store=store))
        return tables[-1]
    with served_component(follow(store, build, min_interval=1.0)) as url:
        page.goto(url)
        cells = page.locator('.tabulator-cell[tabulator-field="task"]')
        expect(cells).to_have_text(["Extract", "Load"], timeout=30_000)
        cells.nth(1).click()
        wait_until(lambda: tables[-1].task == "Load", timeout=30, message="the clicked task selected")


def test_the_connection_indicator_alone_is_live_and_reads_the_store_s_health(small, page: Page):
    store, _ = small
    with served_component(lambda: connection_indicator(store)) as url:
        page.goto(url)
        expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=30_000)


def test_a_running_duration_drawn_again_a_second_lower_never_counts_back(page: Page):
    """The server measures a running duration to its next whole second, so new data for a row
    can say up to a second less than the cell it replaces already counted to (here: more)."""
    import panel as pn

    from dashboard.components.runs_table import grid_rows, runs_table

    started = queries.utcnow() - dt.timedelta(seconds=100)

    def runs(duration: float, agent: str) -> pd.DataFrame:
        return grid_rows(pd.DataFrame({
            "run_id": ["r-1"], "task": ["Extract"], "adhoc": [False], "grp": ["etl"], "trigger_time": [started],
            "reached": ["PENDING,RUNNING"], "status": ["RUNNING"], "agent": [agent], "started": [started],
            "finished": [pd.NaT], "duration": [duration]}))

    def build():
        table = runs_table("/task-runs/", "trigger_time", True)
        table.value = runs(100.0, "agent-1")
        again = pn.widgets.Button(label="again")
        again.on_click(lambda _event: table.param.update(value=runs(100.0, "agent-2")))
        return pn.Column(again, table)

    with served_component(build) as url:
        page.goto(url)
        duration = page.locator('.tabulator-cell[tabulator-field="duration"]')
        expect(duration).to_have_text("1m 41s", timeout=30_000)  # counted on from 1m 40s
        page.get_by_role("button", name="again").click()
        # Read in the same moment as the new agent: the grid draws in its shadow root.
        shown = page.wait_for_function("""() => {
            const cell = (field, root = document) => root.querySelector(`.tabulator-cell[tabulator-field="${field}"]`) ||
                [...root.querySelectorAll("*")].filter(el => el.shadowRoot).map(el => cell(field, el.shadowRoot))
                    .find(Boolean)
            const agent = cell("agent")
            return agent && agent.textContent === "agent-2" && cell("duration").textContent
        }""").json_value()
        minutes, seconds = re.fullmatch(r"(\d+)m (\d+)s", shown).groups()
        assert int(minutes) * 60 + int(seconds) >= 101, f"counted back to {shown}"
        expect(duration).not_to_have_text(shown, timeout=5_000)  # and the new cell counts on
