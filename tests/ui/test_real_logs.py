"""Real logs in Chromium: escape sequences drawn as a terminal shows them (colours, links, nothing
else), a linked line scrolled to the middle of the box, long lines folded, error lines reached
across pages, and downloads that give back the bytes the process wrote."""

from __future__ import annotations

import re

import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process

from dashboard import queries
from dashboard.spool import SpoolWriter

E = "\x1b"
LONG_LINES = 4000
WIDE = 60_000
#: What the escapes run writes: every kind of sequence a real log holds, then a line without newline.
ESCAPES = (f"{E}[1;31mFAILED{E}[0m tests/test_a.py\n"
           f"see {E}]8;;https://example.com/docs{E}\\the docs{E}]8;;{E}\\ and "
           f"{E}]8;;javascript:alert(1){E}\\this{E}]8;;{E}\\\n"
           f"{E}_bk;t=1725000000000\x07~~~ Running tests\n"
           f"{E}[1mbold{E}(B{E}[m {E}7saved{E}8 {E}=keypad{E}> bell\x07 bacx\x08k\n"
           "Downloading\r 10% |#         |\r 50% |#####     |\r100% |##########|\n"
           "Done in 96.34s.")


def long_line(n: int) -> str:
    if n in (700, 2600):
        return f"Traceback (most recent call last): failure {n}"
    return f"step {n}: ok"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real-logs")
    writer = SpoolWriter(folder / "spool", "test")
    for run_id, text in (("r-escapes", ESCAPES),
                         ("r-long", "".join(long_line(n) + "\n" for n in range(1, LONG_LINES + 1))),
                         ("r-wide", "".join(f"{n} " + "w" * WIDE + f" end {n}\n" for n in range(1, 4)))):
        writer.status(run_id, "Real", "RUNNING", agent="agent-1")
        writer.append_log(run_id, "stdout", text)
        writer.status(run_id, "Real", "FAILED", agent="agent-1", exit_code=1)
    writer.status("r-bytes", "Real", "RUNNING", agent="agent-1")
    writer.log_path("r-bytes", "stdout").write_bytes(b"caf\xe9 latin-1\r\nwindows line\r\nno newline at the end")
    writer.status("r-bytes", "Real", "SUCCESS", agent="agent-1", exit_code=0)
    with served_in_process(folder / "spool", folder / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["log_lines"] == 6 + LONG_LINES + 3 + 3, timeout=30,
                   message="the logs indexed, last lines without newline included")
        yield url, folder / "spool", services


@pytest.fixture
def open_run(served, page: Page):
    url, _, _ = served
    page.set_viewport_size({"width": 1280, "height": 800})

    def open_(path: str) -> Page:
        page.goto(f"{url}/task-runs/{path}")
        expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=30_000)
        return page

    return open_


def test_escape_sequences_show_as_a_terminal_shows_them(open_run, tmp_path):
    page = open_run("r-escapes")
    text = page.locator(".td-line .td-text")
    expect(text).to_have_text(["FAILED tests/test_a.py", "see the docs and this", "~~~ Running tests",
                               "bold saved keypad bell back", "100% |##########|", "Done in 96.34s."])
    expect(page.locator('.td-line[data-line="1"] .td-fg-1.td-b')).to_have_text("FAILED")
    expect(page.locator('.td-line[data-line="1"]')).to_have_class(re.compile("td-error"))
    link = page.locator('.td-line[data-line="2"] a')
    expect(link).to_have_count(1)
    expect(link).to_have_text("the docs")
    expect(link).to_have_attribute("href", "https://example.com/docs")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(page.get_by_role("button", name="stdout · 6")).to_be_visible()
    box = page.get_by_label("Search the whole log")
    # Each search waits for its answer: a late answer would put its text back into the box.
    box.fill("10%")  # on the line before pip's bar reached 100%
    box.press("Enter")
    expect(page.locator(".td-counter")).to_have_text("no matches")
    box.fill("the docs and")  # across a link's end
    box.press("Enter")
    expect(page.locator(".td-counter")).to_have_text("1 / 1")
    expect(page.locator(".td-line.td-current mark")).to_have_text(["the docs", " and"])
    box.fill("[0m")
    box.press("Enter")
    expect(page.locator(".td-counter")).to_have_text("no matches")
    page.locator(".td-log").screenshot(path=tmp_path / "escapes.png")
    print(f"\nscreenshot: {tmp_path / 'escapes.png'}")


def test_a_late_search_answer_leaves_what_the_user_typed_since(open_run):
    page = open_run("r-long")
    box = page.get_by_label("Search the whole log")
    box.fill("Traceback")
    # Enter, then more typed in the same task: the answer to "Traceback" surely comes after it.
    box.evaluate("""(box) => {
      box.dispatchEvent(new KeyboardEvent("keydown", {key: "Enter", bubbles: true}))
      box.value += " (most"
    }""")
    expect(page.locator(".td-counter")).to_have_text("1 / 2")
    expect(page.locator(".td-line.td-current")).to_have_attribute("data-line", "700")
    expect(box).to_have_value("Traceback (most")


@pytest.mark.parametrize("line", [2750, 3000])
def test_a_linked_line_is_in_view_near_the_middle(open_run, tmp_path, line):
    page = open_run(f"r-long?line={line}")
    marked = page.locator(".td-line.td-addressed")
    expect(marked).to_have_attribute("data-line", str(line))

    def where() -> dict:
        return marked.evaluate("""line => {
            const box = line.closest('.td-log').getBoundingClientRect(), at = line.getBoundingClientRect()
            return {offset: (at.top + at.bottom) / 2 - (box.top + box.bottom) / 2, height: box.height,
                    inWindow: at.top >= 0 && at.bottom <= window.innerHeight}
        }""")

    # Near the middle, or at the bottom for the last line of its page (nothing below it to scroll).
    near = where()["height"] / 4 if line % 500 else where()["height"] / 2
    wait_until(lambda: abs(where()["offset"]) < near, timeout=10, message="the marked line near the middle of the log box")
    assert where()["inWindow"], "and the box itself in the window"
    page.screenshot(path=tmp_path / "linked.png")
    print(f"\nline {line} at {where()['offset']:.0f} px from the middle of a {where()['height']:.0f} px box; "
          f"screenshot {tmp_path / 'linked.png'}")


def test_next_error_jumps_across_pages(open_run):
    page = open_run("r-long")
    next_error = page.get_by_role("button", name="▼ Error")
    next_error.click()
    expect(page.locator(".td-line.td-addressed")).to_have_attribute("data-line", "700")
    expect(page.get_by_text("Lines 501–1,000 of 4,000")).to_be_visible()
    next_error.click()
    expect(page.locator(".td-line.td-addressed")).to_have_attribute("data-line", "2600")
    next_error.click()  # wraps around
    expect(page.locator(".td-line.td-addressed")).to_have_attribute("data-line", "700")
    page.get_by_role("button", name="▲ Error").click()
    expect(page.locator(".td-line.td-addressed")).to_have_attribute("data-line", "2600")


def test_wide_lines_fold_and_expand(open_run, tmp_path):
    page = open_run("r-wide")
    line = page.locator('.td-line[data-line="2"]')
    expect(line.locator(".td-unfold")).to_have_text("… show all 60,008 characters")
    assert len(line.locator(".td-text").text_content()) < 2_100
    sent = page.evaluate("""() => [...document.querySelectorAll('.td-line .td-text')]
                            .reduce((n, l) => n + l.textContent.length, 0)""")
    assert sent < 3 * 2_100, "folded lines only"
    page.locator(".td-log").screenshot(path=tmp_path / "folded.png")
    line.locator(".td-unfold").click()
    expect(line.locator(".td-text")).to_contain_text(" end 2")
    expect(line.locator(".td-unfold")).to_have_count(0)
    assert len(line.locator(".td-text").text_content()) == 60_008
    expect(page.locator('.td-line[data-line="3"] .td-unfold')).to_have_count(1)
    print(f"\nscreenshot of folded lines: {tmp_path / 'folded.png'}")


def test_a_followed_runs_last_line_shows_before_its_newline_and_is_completed_in_place(open_run, served):
    _, spool, services = served
    writer = SpoolWriter(spool, "test-tail")
    writer.status("r-tail", "Real", "RUNNING", agent="agent-1")
    writer.append_log("r-tail", "stdout", "compiling\nDownloading 40%")
    wait_until(lambda: queries.log_line_counts(services.index, "r-tail")["stdout"] >= 1, timeout=30,
               message="the run and its first line indexed")
    page = open_run("r-tail")
    # once the file has been quiet for 2 s
    expect(page.locator(".td-line .td-text")).to_have_text(["compiling", "Downloading 40%"], timeout=20_000)
    writer.append_log("r-tail", "stdout", " 100%\ndone\n")
    expect(page.locator(".td-line .td-text")).to_have_text(["compiling", "Downloading 40% 100%", "done"],
                                                           timeout=20_000)
    assert shown_numbers(page) == [1, 2, 3]


def shown_numbers(page: Page) -> list[int]:
    return [int(n) for n in page.locator(".td-line").evaluate_all("lines => lines.map(l => l.dataset.line)")]


def test_download_gives_back_the_bytes_written(open_run, served):
    _, spool, _ = served
    page = open_run("r-bytes")
    expect(page.locator(".td-line").last).to_have_text(re.compile("no newline at the end"))
    with page.expect_download() as download:
        page.get_by_role("link", name="Download stdout").click()
    assert download.value.path().read_bytes() == (spool / "logs/r-bytes/stdout.log").read_bytes()
