"""Task names in the runs grid, in Chromium: a name that fits is drawn as one word, whatever
the two parts the middle ellipsis splits it into, and whole; a long dotted name keeps its end."""

from __future__ import annotations

import pytest
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import served_in_process

from dashboard.spool import SpoolWriter

NAMES = ["Extract_Users", "Lo", "reporting/Daily_Report", "model.analytics.int_orders"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("names")
    writer = SpoolWriter(folder / "spool", "test")
    for i, name in enumerate(NAMES):
        writer.status(f"r-{i}", name, "SUCCESS", agent="agent-1")
    with served_in_process(folder / "spool", folder / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["runs"] == len(NAMES), timeout=30, message="the spool indexed")
        yield url


def test_a_name_that_fits_is_drawn_without_a_gap(served, page: Page):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{served}/task-runs")
    names = page.locator(".td-task")
    expect(names).to_have_count(len(NAMES), timeout=30_000)
    # The two parts touch, and the name is as wide as its text (the head once kept 1.2em for
    # its ellipsis even when whole: "E  xtract_Users").
    gaps = names.evaluate_all("""els => els.map(el => {
      const [head, tail] = el.children
      const text = document.createRange(); text.selectNodeContents(head.firstChild || head)
      return [el.title, Math.round(tail.getBoundingClientRect().left - head.getBoundingClientRect().right),
              Math.round(head.getBoundingClientRect().width - text.getBoundingClientRect().width)]
    })""")
    assert sorted(title for title, _, _ in gaps) == sorted(NAMES)
    # (A head narrower than its text is a cut name: its ellipsis shows.)
    assert [(title, gap, extra) for title, gap, extra in gaps if gap or extra > 1] == [], "a gap inside a name"
    assert sorted(names.all_text_contents()) == sorted(NAMES)
    # The short names fit the column whole (at 1280 px it is ~150 px wide): nothing cut.
    cut = names.evaluate_all("""els => els.filter(el => [...el.children].some(
      part => part.scrollWidth > part.clientWidth + 1)).map(el => el.title)""")
    assert not set(cut) & {"Extract_Users", "Lo"}, f"short names cut: {cut}"
    assert "model.analytics.int_orders" in cut, "a long name is cut (in its start)"
    long = page.locator('.td-task[title="model.analytics.int_orders"] .td-task-tail')
    expect(long).to_have_text("int_orders")
    assert long.evaluate("el => el.scrollWidth <= el.clientWidth + 1"), "its end whole"
