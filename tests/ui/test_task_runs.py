"""/task-runs in Chromium: columns, badges, filters, chips, pages, sort, URL state, live rows.

One server (in this process) serves a prepared spool: 120 runs over the last 18 hours
(every tenth FAILED, every tenth RUNNING), one started two minutes ago, an adhoc run, a run
of a task whose name is HTML, and five runs from three days ago.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import dashboard_server, served_in_process

from dashboard import queries
from dashboard.spool import SpoolWriter

TASKS = {"Fetch_Orders": "billing", "Generate_Invoice": "billing", "Send_Email_Invoice": "billing",
         "Extract_Users": "etl", "Load_Warehouse": "etl", "Daily_Report": "reporting"}
XSS_TASK = "<img src=x onerror=alert(1)>"
XSS_AGENT = "<script>alert(2)</script>"
RECENT = 120
HEADERS = ["Task name", "Group", "Trigger Time", "Lifecycle", "Status", "Agent", "Started", "Finished",
           "Duration", "Logs"]


def recent_status(i: int) -> str:
    return {3: "FAILED", 7: "RUNNING"}.get(i % 10, "SUCCESS")


def write_run(writer: SpoolWriter, run_id: str, task: str, trigger: dt.datetime, final: str, **options) -> None:
    for step, status in enumerate(("TRIGGER", "STARTED", "RUNNING")):
        writer.status(run_id, task, status, ts=trigger + dt.timedelta(seconds=step), trigger_time=trigger, **options)
    if final != "RUNNING":
        writer.status(run_id, task, final, ts=trigger + dt.timedelta(seconds=9), trigger_time=trigger,
                      exit_code=0 if final == "SUCCESS" else 1, **options)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("task-runs")
    writer = SpoolWriter(folder / "spool", "test")
    for task, group in TASKS.items():
        writer.define_task(task, group)
    writer.define_task(XSS_TASK, "<b>html-group</b>")
    now = queries.utcnow()
    names = list(TASKS)
    for i in range(RECENT):  # r-000 is the newest
        write_run(writer, f"r-{i:03d}", names[i % len(names)], now - dt.timedelta(minutes=9 * i + 1),
                  recent_status(i), agent=f"agent-{i % 3 + 1}")
    write_run(writer, "r-live", "Load_Warehouse", now - dt.timedelta(minutes=2), "RUNNING", agent="agent-3")
    write_run(writer, "r-adhoc", "Fetch_Orders", now - dt.timedelta(minutes=95), "SUCCESS", agent="agent-1",
              adhoc=True)
    write_run(writer, "r-xss", XSS_TASK, now - dt.timedelta(minutes=50), "FAILED", agent=XSS_AGENT)
    for i in range(5):
        write_run(writer, f"r-old-{i}", "Daily_Report", now - dt.timedelta(days=3, minutes=i), "SUCCESS",
                  agent="agent-1")
    with served_in_process(folder / "spool", folder / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["runs"] == RECENT + 8, timeout=30, message="the spool indexed")
        yield url, services, writer


@pytest.fixture
def runs_page(served, page: Page):
    url, _, _ = served
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs

    def open_(query: str = "") -> Page:
        page.goto(f"{url}/task-runs{query}")
        expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=30_000)
        return page

    return open_


def column(page: Page, field: str) -> list[str]:
    return page.locator(f'.tabulator-row .tabulator-cell[tabulator-field="{field}"]').all_inner_texts()


def run_ids(page: Page) -> list[str]:
    return [href.rsplit("/", 1)[-1] for href in
            page.locator(".tabulator-row a.td-eye").evaluate_all("links => links.map(a => a.getAttribute('href'))")]


def summary(page: Page):
    return page.locator("text=/Showing|No runs/").first


def test_columns_badges_and_html_shown_as_text(runs_page):
    page = runs_page()
    titles = page.locator(".tabulator-col .tabulator-col-title").filter(visible=True, has_text=re.compile(r"\S"))
    expect(titles).to_have_text(HEADERS)

    adhoc_row = page.locator(".tabulator-row", has=page.locator('a.td-eye[href$="/r-adhoc"]'))
    expect(adhoc_row.locator(".td-adhoc")).to_have_text("ADHOC")
    assert page.locator(".td-adhoc").count() == 1, "only the adhoc run carries the badge"

    xss_row = page.locator(".tabulator-row", has=page.locator('a.td-eye[href$="/r-xss"]'))
    expect(xss_row.locator('[tabulator-field="task"]')).to_have_text(XSS_TASK)
    expect(xss_row.locator('[tabulator-field="agent"]')).to_have_text(XSS_AGENT)
    expect(xss_row.locator('[tabulator-field="grp"]')).to_have_text("<b>html-group</b>")
    assert page.locator(".tabulator img, .tabulator-cell b, .tabulator-cell script").count() == 0
    assert page.dialogs == [], "a task name ran as HTML"

    running = page.locator(".tabulator-row", has=page.locator('a.td-eye[href$="/r-007"]'))
    expect(running.locator(".td-step.td-current")).to_have_text("RUNNING")
    expect(running.locator(".td-pulse")).to_be_visible()
    failed = page.locator(".tabulator-row", has=page.locator('a.td-eye[href$="/r-003"]'))
    expect(failed.locator(".td-step.td-current")).to_have_text("FAILED")
    expect(failed.locator(".td-badge")).to_have_text("FAILED")


def test_a_running_duration_ticks_in_the_browser(runs_page):
    page = runs_page()
    cell = page.locator(".tabulator-row", has=page.locator('a.td-eye[href$="/r-live"]')).locator(
        '[tabulator-field="duration"]')
    first = cell.inner_text()
    expect(cell).not_to_have_text(first, timeout=5_000)


def test_the_failed_chip_shows_only_failed_runs(runs_page, served):
    _, services, _ = served
    page = runs_page()
    failed_in_day = queries.status_counts(services.index, queries.RunFilter(since=dt.timedelta(hours=24)))["FAILED"]
    chip = page.locator(".bk-btn", has_text=re.compile(r"^FAILED"))
    expect(chip).to_have_text(f"FAILED {failed_in_day}")
    chip.click()
    expect(summary(page)).to_contain_text(f"of {failed_in_day} runs")
    assert set(column(page, "status")) == {"FAILED"}
    assert len(column(page, "status")) == failed_in_day
    assert "status=FAILED" in page.url


def test_back_and_forward_return_to_the_previous_filters(runs_page, served):
    _, services, _ = served
    page = runs_page()
    in_day = queries.status_counts(services.index, queries.RunFilter(since=dt.timedelta(hours=24)))
    page.locator(".bk-btn", has_text=re.compile(r"^FAILED")).click()
    expect(summary(page)).to_contain_text(f"of {in_day['FAILED']} runs")
    page.get_by_role("button", name="7d", exact=True).click()
    expect(page).to_have_url(re.compile(r"/task-runs\?status=FAILED&since=7d$"))
    page.go_back()
    expect(page).to_have_url(re.compile(r"/task-runs\?status=FAILED$"))
    expect(summary(page)).to_contain_text(f"of {in_day['FAILED']} runs triggered in the last 24h", timeout=30_000)
    page.go_back()
    expect(summary(page)).to_contain_text(f"of {sum(in_day.values())} runs triggered in the last 24h",
                                          timeout=30_000)
    assert set(column(page, "status")) != {"FAILED"}
    page.go_forward()
    expect(summary(page)).to_contain_text(f"of {in_day['FAILED']} runs triggered in the last 24h", timeout=30_000)


def test_typing_part_of_a_name_narrows_the_rows(runs_page):
    page = runs_page()
    page.get_by_placeholder("Search task name…").press_sequentially("iNvOiCe", delay=30)
    expect(summary(page)).to_contain_text("of 40 runs")  # Generate_Invoice and Send_Email_Invoice
    assert all("invoice" in task.lower() for task in column(page, "task"))


def test_the_time_range_changes_the_count(runs_page):
    page = runs_page()
    page.get_by_role("button", name="6h", exact=True).click()
    expect(summary(page)).to_contain_text("of 43 runs")  # 40 regular runs, the live, the adhoc and the html one
    page.get_by_role("button", name="7d", exact=True).click()
    expect(summary(page)).to_contain_text(f"of {RECENT + 8} runs")


def test_next_page_and_the_eye_icon(runs_page, served):
    url, _, _ = served
    page = runs_page()
    expect(page.get_by_text("Page 1 of 3")).to_be_visible()
    first_page = run_ids(page)
    assert first_page[:2] == ["r-000", "r-live"] and len(first_page) == 50
    page.get_by_role("button", name="Next ›").click()
    expect(page.get_by_text("Page 2 of 3")).to_be_visible()
    expect(summary(page)).to_contain_text("Showing 51–100 of 123 runs")
    second_page = run_ids(page)
    assert len(second_page) == 50 and not set(first_page) & set(second_page)
    page.locator(".tabulator-row a.td-eye").first.click()
    page.wait_for_url(f"{url}/task-runs/{second_page[0]}")


def test_sorting_by_a_header_asks_the_query(runs_page, served):
    _, services, _ = served
    page = runs_page()
    page.locator('.tabulator-col[tabulator-field="task"] .tabulator-col-title').click()
    expect(page).to_have_url(re.compile(r"sort=task"))
    expected = queries.runs_page(services.index, queries.RunFilter(since=dt.timedelta(hours=24)), limit=50,
                                 sort="task", descending="descending=asc" not in page.url)
    wait_until(lambda: run_ids(page) == expected["run_id"].tolist(), timeout=10, message="rows in query order")


def test_a_url_restores_filters_and_sort_and_a_page_past_the_end_shows_the_last(runs_page):
    page = runs_page("?status=FAILED,SUCCESS&search=fetch&since=7d&page_size=25&sort=task&descending=asc&page=2")
    expect(page.get_by_placeholder("Search task name…")).to_have_value("fetch")
    expect(page.locator(".bk-btn.bk-active", has_text=re.compile(r"^(FAILED|SUCCESS)"))).to_have_count(2)
    expect(page.get_by_role("button", name="7d", exact=True)).to_have_class(re.compile("bk-active"))
    # 20 regular Fetch_Orders runs and the adhoc one, all SUCCESS: page 2 does not exist, page 1 is shown.
    expect(page.get_by_text("Page 1 of 1")).to_be_visible()
    expect(summary(page)).to_contain_text("Showing 1–21 of 21 runs")
    expect(page).to_have_url(re.compile(r"page_size=25"))
    assert "page=2" not in page.url
    assert set(column(page, "status")) <= {"FAILED", "SUCCESS"}
    assert all("fetch" in task.lower() for task in column(page, "task"))


def test_a_bad_url_value_is_reported_and_the_rest_kept(runs_page):
    page = runs_page("?since=2y&search=report")
    expect(page.locator(".notyf__message")).to_have_text(
        "ignored since='2y' from the URL: use one of 6h, 12h, 24h, 3d, 7d")
    expect(page.get_by_placeholder("Search task name…")).to_have_value("report")
    expect(page.get_by_role("button", name="24h", exact=True)).to_have_class(re.compile("bk-active"))


def test_no_match_says_what_to_do_and_clear_filters_restores(runs_page):
    page = runs_page("?search=no-such-task")
    expect(page.get_by_text("No runs match these filters in the last 24h.")).to_be_visible()
    expect(page.get_by_text("No matching runs triggered in the last 24h")).to_be_visible()  # not "No runs"
    page.get_by_role("button", name="Clear filters").click()
    expect(summary(page)).to_contain_text("of 123 runs")
    expect(page.locator(".tabulator-row").first).to_be_visible()


def test_a_status_event_changes_the_row_live_on_page_2(runs_page, served):
    _, _, writer = served
    page = runs_page("?page=2")
    page.evaluate("window.__no_reload_marker = true")
    row = page.locator(".tabulator-row", has=page.locator('a.td-eye[href$="/r-057"]'))
    expect(row.locator('[tabulator-field="status"]')).to_have_text("RUNNING")
    writer.status("r-057", list(TASKS)[57 % len(TASKS)], "SUCCESS", exit_code=0, agent="agent-2")
    expect(row.locator('[tabulator-field="status"]')).to_have_text("SUCCESS", timeout=15_000)
    expect(row.locator(".td-pulse")).to_have_count(0)
    expect(page.get_by_text("Page 2 of 3")).to_be_visible()
    assert page.evaluate("window.__no_reload_marker === true"), "the page was reloaded"


def test_a_grid_opened_before_the_first_run_shows_its_times_as_times(tmp_path, page: Page):
    # The grid picks each column's formatter from the first data it gets: an empty page must
    # not make the time columns numbers (a fresh demo showed NaN and 0.0 in them).
    # Its own server process: this module's in-process server holds other runs.
    with dashboard_server(tmp_path) as server:
        writer = SpoolWriter(server.spool, "test")
        page.goto(f"{server.url}/task-runs")
        expect(page.get_by_text("No runs in the last 24h.")).to_be_visible(timeout=30_000)
        for status in ("IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING"):
            writer.status("r-1", "Fetch_Orders", status, agent="agent-1")
        writer.status("r-1", "Fetch_Orders", "SUCCESS", agent="agent-1", exit_code=0)
        row = page.locator(".tabulator-row").first
        cell = lambda field: row.locator(f'.tabulator-cell[tabulator-field="{field}"]')  # noqa: E731
        expect(cell("status")).to_have_text("SUCCESS", timeout=30_000)
        expect(cell("trigger")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
        for field in ("started", "finished"):
            expect(cell(field)).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
        expect(cell("duration")).to_have_text(re.compile(r"^\d+\.\ds$"))
        print(f"\nfirst row after an empty page: {row.inner_text()!r}")
