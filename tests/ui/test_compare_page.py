"""/compare in Chromium: a run against its task's last success, from the run's page; the first
difference at its line, next / previous, live, times and ids ignored when asked, bad input."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process

from dashboard import queries
from dashboard.spool import SpoolWriter

LINES = 300
INSERTED = "ERROR: <b>orders</b> deadlock"


def stamped(n: int, moment: dt.datetime, job: str) -> str:
    return f"{(moment + dt.timedelta(milliseconds=n)).isoformat()} job {job} step {n} took {n * 7} ms"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare-page")
    writer = SpoolWriter(folder / "spool", "test")
    now = queries.utcnow()
    good = [f"step {n}" for n in range(1, LINES + 1)]
    bad = list(good)
    bad.insert(150, INSERTED)  # line 151 of the failing run
    bad[250] = "step 250 retried"  # its line 251, the success's 250
    for run_id, status, lines, minutes in (("good", "SUCCESS", good, 30), ("bad", "RUNNING", bad, 10)):
        trigger = now - dt.timedelta(minutes=minutes)
        writer.status(run_id, "Nightly", "RUNNING", trigger_time=trigger, ts=trigger + dt.timedelta(seconds=2),
                      agent=f"agent-{run_id}")
        writer.append_log(run_id, "stdout", "".join(line + "\n" for line in lines))
        if status == "SUCCESS":
            writer.status(run_id, "Nightly", status, trigger_time=trigger, ts=trigger + dt.timedelta(seconds=62),
                          exit_code=0)
    for run_id, job, minutes in (("stamp-1", "0a1b2c3d", 50), ("stamp-2", "9f8e7d6c", 40)):
        trigger = now - dt.timedelta(minutes=minutes)
        writer.status(run_id, "Stamp", "SUCCESS", trigger_time=trigger, ts=trigger, exit_code=0)
        writer.append_log(run_id, "stdout", "".join(stamped(n, trigger, job) + "\n" for n in range(1, 21)))
    with served_in_process(folder / "spool", folder / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["log_lines"] == 2 * LINES + 1 + 40, timeout=30,
                   message="the spool indexed")
        yield url, writer


def live(page: Page) -> Page:
    expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=30_000)
    return page


def changed_lines(page: Page, side: str) -> list[str]:
    return page.locator(f'td[data-side="{side}"].td-cmp-{"del" if side == "a" else "ins"}').evaluate_all(
        "cells => cells.map(c => c.dataset.line + ':' + c.textContent)")


def shows_changed(page: Page, a: list[str], b: list[str]) -> None:
    """The changed lines shown, as 'line:text', on each side."""
    wait_until(lambda: changed_lines(page, "a") == a and changed_lines(page, "b") == b, timeout=10,
               message=f"changed lines {a} and {b} (shown: {changed_lines(page, 'a')}, {changed_lines(page, 'b')})")


def test_a_run_against_its_last_success_from_its_page_difference_by_difference_live(served, page: Page):
    url, writer = served
    page.goto(f"{url}/task-runs/bad")
    link = page.get_by_role("link", name="Compare with the last success of this task")
    expect(link).to_have_attribute("href", "/compare?a=good&b=bad", timeout=30_000)
    link.click()
    live(page)
    expect(page.locator(".td-cmp-position")).to_contain_text("Difference 1 of 2: B has 1 more line at line 151")
    shows_changed(page, [], [f"151:{INSERTED}"])  # shown as text
    context = page.locator('td[data-side="a"].td-cmp-same').evaluate_all("cells => cells.map(c => c.dataset.line)")
    assert context == ["148", "149", "150", "151", "152", "153"]  # 3 equal lines either side, aligned
    expect(page.get_by_title("Open bad at this line").get_by_text("151", exact=True)).to_have_attribute(
        "href", "/task-runs/bad?stream=stdout&line=151")
    sides = page.locator(".td-cmp-sides")
    expect(sides.locator("tr.td-differs th")).to_have_text(["Status", "Agent", "Exit code", "Run time", "stdout lines"])

    page.get_by_role("button", name="Next ›").click()
    expect(page.locator(".td-cmp-position")).to_contain_text("Difference 2 of 2: A's line 250 became B's line 251")
    shows_changed(page, ["250:step 250"], ["251:step 250 retried"])
    expect(page.get_by_role("button", name="Next ›")).to_be_disabled()
    wait_until(lambda: "difference=2" in page.url, timeout=10, message="the difference in the URL")
    page.get_by_role("button", name="‹ Previous").click()
    expect(page.locator(".td-cmp-position")).to_contain_text("Difference 1 of 2")

    # Live: the running run writes a line the success never did, and ends.
    writer.append_log("bad", "stdout", "one more line\n")
    expect(page.locator(".td-cmp-position")).to_contain_text("Difference 1 of 3", timeout=30_000)
    writer.status("bad", "Nightly", "FAILED", exit_code=3)
    expect(sides.locator("tbody tr", has_text="Status")).to_contain_text("FAILED", timeout=30_000)
    expect(sides.locator("tbody tr", has_text="Exit code")).to_contain_text("3")


def test_times_and_ids_ignored_when_asked_and_bad_input_named(served, page: Page):
    url, _ = served
    page.goto(f"{url}/compare?a=stamp-1&b=stamp-2")
    live(page)
    position = page.locator(".td-cmp-position")
    expect(position).to_contain_text("Difference 1 of 1: A's lines 1–20 became B's lines 1–20")
    expect(page.get_by_text("ignore times and ids")).to_be_visible()
    page.locator(".bk-Checkbox input[type=checkbox]").check()  # not the header's "ago"; Bokeh ties no label to it
    expect(position).to_have_text("The stdout logs are the same (times and ids ignored): A 20 lines, B 20 lines.")
    wait_until(lambda: "ignore_masked=yes" in page.url, timeout=10, message="masking in the URL")

    for query, message in (("a=good&b=good", "a and b are the same run (good): name two different runs."),
                           ("a=nope&b=good", "The index has no run 'nope'."),
                           ("", "Name two runs to compare: /compare?a=RUN&b=RUN")):
        page.goto(f"{url}/compare?{query}")
        expect(page.locator(".td-cmp-problem")).to_contain_text(message, timeout=30_000)
        expect(page.locator(".td-cmp-diff")).to_have_count(0)
    assert re.search("Traceback", page.content()) is None
