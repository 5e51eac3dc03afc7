"""/task-runs/<run_id> in Chromium: details, timeline, and the log viewer's pages, search,
download, live tail with follow, addressable lines, ANSI colours and text-only logs."""

from __future__ import annotations

import re

import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process

from dashboard.spool import SpoolWriter

STDOUT_LINES = 1200
STDERR_LINES = 14


def stdout_line(n: int) -> str:
    if n == 3:
        return "\x1b[31mred text\x1b[0m then plain"
    if n == 5:
        return "<script>alert('log')</script>"
    if n == 7:
        return "long " + "x" * 3000
    level = "ERROR" if n % 97 == 0 else "WARN" if n % 50 == 0 else "INFO"
    return f"{level} step {n}: processed batch {n * 7 % 1000}"


ERROR_LINES = [n for n in range(1, STDOUT_LINES + 1) if "ERROR" in stdout_line(n)]
WRAPPED_LINES = 1000


def wrapped_line(n: int) -> str:
    """Every other line wraps to a dozen rows in the log box (folded at 2,000 characters)."""
    return f"{n} " + "word " * 1000 if n % 2 else f"short {n}"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run-detail")
    writer = SpoolWriter(folder / "spool", "test")
    writer.define_task("Generate_Invoice", "billing")
    for status in ("IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING"):
        writer.status("r-done", "Generate_Invoice", status, agent="agent-2")
    writer.append_log("r-done", "stdout", "".join(stdout_line(n) + "\n" for n in range(1, STDOUT_LINES + 1)))
    writer.append_log("r-done", "stderr", "".join(f"warning {n}\n" for n in range(1, STDERR_LINES)) +
                      "ERROR: invoice 42 has no customer\n")
    writer.status("r-done", "Generate_Invoice", "FAILED", agent="agent-2", exit_code=3)
    for status in ("TRIGGER", "STARTED", "RUNNING"):
        writer.status("r-live", "Generate_Invoice", status, agent="agent-1", adhoc=True)
    writer.append_log("r-live", "stdout", "".join(f"starting {n}\n" for n in range(1, 31)))
    writer.status("r-wrapped", "Generate_Invoice", "RUNNING", agent="agent-1")
    writer.append_log("r-wrapped", "stdout", "".join(wrapped_line(n) + "\n" for n in range(1, WRAPPED_LINES + 1)))
    writer.status("r-wrapped", "Generate_Invoice", "SUCCESS", agent="agent-1", exit_code=0)
    writer.status("r-live-wrapped", "Generate_Invoice", "RUNNING", agent="agent-1")
    writer.append_log("r-live-wrapped", "stdout", "".join(wrapped_line(n) + "\n" for n in range(1, 31)))
    with served_in_process(folder / "spool", folder / "index.duckdb") as (url, services):
        lines = STDOUT_LINES + STDERR_LINES + 30 + WRAPPED_LINES + 30
        wait_until(lambda: services.index.counts()["log_lines"] == lines, timeout=30, message="the logs indexed")
        yield url, folder / "spool", writer


@pytest.fixture
def open_run(served, page: Page):
    url, _, _ = served
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))

    def open_(path: str) -> Page:
        page.goto(f"{url}/task-runs/{path}")
        expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=30_000)
        return page

    return open_


def shown_lines(page: Page) -> list[int]:
    return [int(n) for n in page.locator(".td-line").evaluate_all("lines => lines.map(l => l.dataset.line)")]


def test_details_timeline_and_the_first_pages(open_run):
    page = open_run("r-done")
    card = page.locator(".td-card")
    expect(card.locator(".td-title")).to_have_text("Generate_Invoice")
    expect(card).to_contain_text("agent-2")
    expect(card.locator(".td-badge")).to_have_text("FAILED")
    expect(card).to_contain_text("Exit code3")
    expect(page.locator(".td-timeline li.td-bad")).to_have_attribute("data-status", "FAILED")
    expect(page.locator(".td-timeline li.td-done")).to_have_count(5)

    expect(page.get_by_role("button", name="stdout · 1,200")).to_be_visible()
    expect(page.get_by_role("button", name="stderr · 14")).to_be_visible()
    expect(page.locator(".td-line").first).to_have_attribute("data-line", "1")
    assert shown_lines(page) == list(range(1, 501))
    page.get_by_role("button", name="Next ›").click()
    expect(page.locator(".td-line").first).to_have_attribute("data-line", "501")
    assert shown_lines(page) == list(range(501, 1001))
    expect(page.get_by_text("Lines 501–1,000 of 1,200")).to_be_visible()
    expect(page).to_have_url(re.compile(r"\?page=2$"))


def test_back_and_forward_return_to_the_log_s_previous_place(open_run):
    page = open_run("r-done?page=2")
    expect(page.locator(".td-line").first).to_have_attribute("data-line", "501")
    page.get_by_role("button", name="stderr · 14").click()
    expect(page).to_have_url(re.compile(r"\?stream=stderr&page=1$"))
    expect(page.locator(".td-line .td-text").first).to_have_text("warning 1")
    page.go_back()
    expect(page).to_have_url(re.compile(r"\?page=2$"))
    expect(page.locator(".td-line").first).to_have_attribute("data-line", "501", timeout=30_000)
    expect(page.get_by_text("Lines 501–1,000 of 1,200")).to_be_visible()
    page.go_forward()
    expect(page.locator(".td-line .td-text").first).to_have_text("warning 1", timeout=30_000)
    expect(page.get_by_role("button", name="stderr · 14")).to_have_class(re.compile("bk-active"))


def test_log_text_is_text_colours_are_colours_and_errors_stand_out(open_run):
    page = open_run("r-done")
    script_line = page.locator('.td-line[data-line="5"] .td-text')
    expect(script_line).to_have_text("<script>alert('log')</script>")
    assert page.dialogs == []
    red = page.locator('.td-line[data-line="3"] .td-text')
    expect(red).to_have_text("red text then plain")
    expect(red.locator(".td-fg-1")).to_have_text("red text")
    expect(page.locator(f'.td-line[data-line="{ERROR_LINES[0]}"]')).to_have_class(re.compile("td-error"))
    expect(page.locator('.td-line[data-line="50"]')).to_have_class(re.compile("td-warn"))
    long_line = page.locator('.td-line[data-line="7"]')
    assert long_line.bounding_box()["height"] > 40, "a long line wraps"


def test_search_counts_the_whole_stream_and_moves_across_pages(open_run):
    page = open_run("r-done")
    box = page.get_by_label("Search the whole log")
    box.fill("error")  # any case
    box.press("Enter")
    counter = page.locator(".td-counter")
    expect(counter).to_have_text(f"1 / {len(ERROR_LINES)}")
    expect(page.locator(".td-line.td-current")).to_have_attribute("data-line", str(ERROR_LINES[0]))
    expect(page.locator(".td-line.td-match")).to_have_count(len([n for n in ERROR_LINES if n <= 500]))
    expect(page.locator(".td-line.td-current mark")).to_have_text("ERROR")
    on_page_1 = len([n for n in ERROR_LINES if n <= 500])
    for _ in range(on_page_1):
        box.press("Enter")
    expect(counter).to_have_text(f"{on_page_1 + 1} / {len(ERROR_LINES)}")
    expect(page.locator(".td-line.td-current")).to_have_attribute("data-line", str(ERROR_LINES[on_page_1]))
    expect(page.get_by_text("Lines 501–1,000 of 1,200")).to_be_visible()
    box.press("Shift+Enter")
    expect(counter).to_have_text(f"{on_page_1} / {len(ERROR_LINES)}")
    expect(page.get_by_text("Lines 1–500 of 1,200")).to_be_visible()


def test_a_search_with_no_match_says_so(open_run):
    page = open_run("r-done")
    box = page.get_by_label("Search the whole log")
    box.fill("%_' .*")
    box.press("Enter")
    expect(page.locator(".td-counter")).to_have_text("no matches")


def test_download_saves_the_whole_stream(open_run, served):
    _, spool, _ = served
    page = open_run("r-done")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download stdout").click()
    path = download.value.path()
    assert path.read_bytes() == (spool / "logs" / "r-done" / "stdout.log").read_bytes()
    assert download.value.suggested_filename == "r-done-stdout.log"


def test_a_line_is_addressable(open_run):
    page = open_run("r-done?stream=stderr&line=14")
    expect(page.get_by_role("button", name="stderr · 14")).to_have_class(re.compile("bk-active"))
    marked = page.locator(".td-line.td-addressed")
    expect(marked).to_have_attribute("data-line", "14")
    expect(marked).to_contain_text("ERROR: invoice 42 has no customer")
    page2 = open_run("r-done?line=777")
    expect(page2.locator(".td-line.td-addressed")).to_have_attribute("data-line", "777")
    expect(page2.get_by_text("Lines 501–1,000 of 1,200")).to_be_visible()


def centre_offset(page: Page) -> float:
    """How far the addressed line's middle is from the log box's, in pixels, two frames from now."""
    return page.locator(".td-log").evaluate("""async log => {
        await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))
        const box = log.getBoundingClientRect(), line = log.querySelector(".td-addressed").getBoundingClientRect()
        return (line.top + line.height / 2) - (box.top + box.height / 2)
    }""")


@pytest.mark.parametrize("line", [250, 498])
def test_an_addressed_line_among_wrapped_lines_is_brought_to_the_middle(open_run, line):
    """Lines out of sight are laid out only once near (a page of wrapped lines drew in half the
    time): those drawn as the line is brought near are taller than they were taken for, and it is
    brought to the middle again."""
    page = open_run(f"r-wrapped?line={line}")
    expect(page.locator(".td-line.td-addressed")).to_have_attribute("data-line", str(line))
    wait_until(lambda: abs(centre_offset(page)) <= 2, timeout=10,
               message=lambda: f"line {line} is {centre_offset(page):.0f} px from the log box's middle")


def test_following_wrapped_lines_keeps_the_newest_in_view(open_run, served):
    _, _, writer = served
    page = open_run("r-live-wrapped")
    follow = page.get_by_role("button", name="Follow")
    expect(follow).to_have_class(re.compile("bk-active"))
    expect(page.locator(".td-line").last).to_have_attribute("data-line", "30")
    writer.append_log("r-live-wrapped", "stdout", "".join(wrapped_line(n) + "\n" for n in range(31, 61)))
    expect(page.locator(".td-line").last).to_have_attribute("data-line", "60", timeout=15_000)
    wait_until(lambda: page.locator(".td-log").evaluate("""log => {
        const last = log.lastElementChild.getBoundingClientRect(), box = log.getBoundingClientRect()
        return last.bottom <= box.bottom + 2 && last.bottom > box.top
    }"""), timeout=10, message="the newest line in view")
    expect(follow).to_have_class(re.compile("bk-active"))


def test_a_running_run_streams_new_lines_and_follows(open_run, served):
    _, _, writer = served
    page = open_run("r-live")
    expect(page.locator(".td-card .td-adhoc")).to_have_text("ADHOC")
    expect(page.locator(".td-timeline li.td-now")).to_have_attribute("data-status", "RUNNING")
    expect(page.get_by_role("button", name="Follow")).to_have_class(re.compile("bk-active"))
    expect(page.locator(".td-line").last).to_have_attribute("data-line", "30")
    page.evaluate("window.__no_reload_marker = true")
    writer.append_log("r-live", "stdout", "".join(f"more output {n}\n" for n in range(31, 131)))
    expect(page.locator(".td-line").last).to_have_attribute("data-line", "130", timeout=15_000)
    expect(page.get_by_role("button", name="stdout · 130")).to_be_visible()
    in_view = page.locator(".td-log").evaluate("""log => {
        const last = log.lastElementChild.getBoundingClientRect(), box = log.getBoundingClientRect()
        return last.bottom <= box.bottom + 2 && last.top >= box.top
    }""")
    assert in_view, "follow mode keeps the newest line in view"
    assert page.evaluate("window.__no_reload_marker === true")
    assert shown_lines(page) == list(range(1, 131)), "only the new lines were added"


def test_an_unknown_run_says_not_found_with_a_way_back(open_run, served):
    url, _, _ = served
    page = open_run("no-such-run")
    expect(page.get_by_text("Run not found")).to_be_visible()
    page.get_by_role("link", name="← Back to Task Runs").click()
    page.wait_for_url(f"{url}/task-runs")


def test_a_running_run_s_duration_counts_up(open_run):
    page = open_run("r-live")
    duration = page.locator(".td-card dt", has_text="Duration").locator("xpath=following-sibling::dd[1]")
    expect(duration).not_to_have_text("—", timeout=10_000)
    first = duration.text_content()
    expect(duration).not_to_have_text(first, timeout=5_000)  # the server's tick, once a second
    print(f"\nduration shown: {first} → {duration.text_content()}")


@pytest.mark.parametrize("appended, shown, resyncs", [
    ([[3, "three", [], "", 0]], [1, 2, 3], 0),  # appended before the page first drew: drawn after the lines
    ([[5, "five", [], "", 0]], [1, 2], 1),  # lines 3 and 4 never reached the page: it asks for the newest again
])
def test_lines_appended_before_the_page_draws_are_shown_or_asked_for_again(page: Page, appended, shown, resyncs):
    # A delivery can land between a session's creation and its first drawing: the page's first
    # state then holds `appended` beside `lines` (the demo lost such lines for good).
    import panel as pn
    from serving import free_port, responds

    from dashboard.components.log_viewer import LogLines

    views = []

    def app():
        views.append(LogLines(lines=[[1, "one", [], "", 0], [2, "two", [], "", 0]], appended=appended, follow=True))
        return views[-1]

    port = free_port()
    server = pn.serve(app, address="127.0.0.1", port=port, threaded=True, show=False, start=True, liveness=True)
    try:
        wait_until(lambda: responds(f"http://127.0.0.1:{port}/liveness"), timeout=30, message="the server to listen")
        page.goto(f"http://127.0.0.1:{port}")
        expect(page.locator(".td-line").first).to_be_attached(timeout=30_000)
        wait_until(lambda: views and views[-1].resync == resyncs, timeout=10, message=f"{resyncs} resync(s)")
        assert shown_lines(page) == shown
        print(f"\nlines [1, 2] + appended {[row[0] for row in appended]}: shown {shown_lines(page)}, "
              f"resync asked {views[-1].resync} time(s)")
    finally:
        server.stop()
        server.join(10)
