"""A dbt-shaped project of 1,000 tasks in Chromium: the graph opens on its groups, a click
opens a group (the rest stay collapsed), no two node marks overlap on screen, labels are
not clipped, and the runs grid shows long dotted names by their distinguishing end.

The graph's data is read from the page (Bokeh's data source and scales), as a user sees it.
"""

from __future__ import annotations

import itertools
import re

import pytest
from builders import write_dbt_spool
from helpers import wait_until
from playwright.sync_api import Page, expect
from serving import dashboard_server, served_in_process

from dashboard.graph_groups import GROUP_MARK, top_group
from dashboard.spool import SpoolWriter

NODES = "Bokeh.index.query_one(v => v.model.data_source != null && v.model.data_source.data.fill != null)"
PLOT = "Bokeh.index.query_one(v => v.frame != null && v.frame.x_scale != null)"
PLOT_RANGE = (f"() => {{ const f = {PLOT}.frame; "
              "return [f.x_range.start, f.x_range.end, f.y_range.start, f.y_range.end] }")
#: Every node as the screen shows it: its name, centre in pixels, mark size, and the frame.
SCREEN_NODES = f"""() => {{
  const view = {NODES}
  if (view == null) {{ return null }}
  const plot = Bokeh.index.query_one(v => v.frame != null && v.frame.x_scale != null)
  const rect = plot.canvas_view.el.getBoundingClientRect()
  const data = view.model.data_source.data
  const frame = plot.frame.bbox
  return {{
    size: view.model.glyph.size.value,
    frame: [rect.left + frame.left, rect.top + frame.top, rect.left + frame.right, rect.top + frame.bottom],
    nodes: Array.from(data.task, (task, i) => ({{task, always: data.always[i],
      x: rect.left + plot.frame.x_scale.compute(data.x[i]), y: rect.top + plot.frame.y_scale.compute(data.y[i])}})),
    labels: Array.from(Bokeh.index.query(v => v.model.glyph != null && v.model.glyph.text != null),
                       v => ({{visible: v.model.visible, offset: v.model.glyph.y_offset.value,
                              count: v.model.data_source.data.label.length}})),
  }}
}}"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dbt-ui")
    project = write_dbt_spool(folder / "spool")
    with served_in_process(folder / "spool", folder / "index.duckdb") as (url, services):
        wait_until(lambda: services.index.counts()["runs"] == len(project.runs), timeout=60,
                   message="the spool indexed")
        yield url, project


def screen(page: Page) -> dict:
    return page.evaluate(SCREEN_NODES)


def assert_no_marks_overlap(shown: dict) -> None:
    size = shown["size"]
    for a, b in itertools.combinations(shown["nodes"], 2):
        assert abs(a["x"] - b["x"]) >= size or abs(a["y"] - b["y"]) >= size, \
            f"{a['task']} and {b['task']} overlap ({size:.1f} px marks)"


def open_graph(page: Page, url: str) -> dict:
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.goto(url)
    expect(page.locator(".td-conn")).to_have_attribute("data-state", "Live", timeout=30_000)
    return wait_until(lambda: screen(page), timeout=30, message="the graph drawn")


def click_node(page: Page, task: str) -> None:
    node = next(n for n in screen(page)["nodes"] if n["task"] == task)
    page.mouse.click(node["x"], node["y"])


def test_the_graph_opens_on_its_groups_and_a_click_opens_one(served, page: Page):
    url, project = served
    shown = open_graph(page, f"{url}/tasks")
    tops = {top_group(group) for _, group, _ in project.definitions}
    assert {n["task"] for n in shown["nodes"]} == {GROUP_MARK + top for top in tops}
    assert_no_marks_overlap(shown)
    expect(page.get_by_text("5 top-level groups")).to_be_visible()

    page.evaluate(f"() => {{ {PLOT}.model.tags = ['first drawing'] }}")
    click_node(page, GROUP_MARK + "marts")
    folders = {group.split("/")[1] for _, group, _ in project.definitions if group.startswith("marts/")}
    expected = {GROUP_MARK + top for top in tops - {"marts"}} | {f"{GROUP_MARK}marts/{f}" for f in folders}
    wait_until(lambda: {n["task"] for n in screen(page)["nodes"]} == expected, timeout=30,
               message="marts opened into its folders, the other groups still collapsed")
    assert page.evaluate(f"() => {PLOT}.model.tags") == ["first drawing"], "drawn into the plot shown, not a new one"
    before = screen(page)
    assert_no_marks_overlap(before)
    left, top, right, bottom = before["frame"]
    assert all(left <= n["x"] <= right and top <= n["y"] <= bottom for n in before["nodes"]), "fitted to the view"
    fitted = page.evaluate(PLOT_RANGE)
    page.mouse.move((left + right) / 2, (top + bottom) / 2)
    page.mouse.wheel(0, 1500)  # zoom out: the marks shrink with the cells, still apart
    wait_until(lambda: screen(page)["size"] < before["size"], timeout=15, message="the marks to follow the zoom")
    assert_no_marks_overlap(screen(page))
    page.locator(".bk-tool-icon-reset").click()  # the toolbar's Reset: back to this layout's view
    wait_until(lambda: page.evaluate(PLOT_RANGE) == fitted, timeout=15,
               message=lambda: f"Reset to {fitted}, not {page.evaluate(PLOT_RANGE)}")

    # A folder with a subfolder: it opens into its own tasks and the subfolder, collapsed.
    folder = next(g for _, g, _ in project.definitions if g.count("/") == 2).rsplit("/", 1)[0]
    inside = {task for task, group, _ in project.definitions if group == folder}
    inside |= {GROUP_MARK + group for _, group, _ in project.definitions if group.startswith(folder + "/")}
    click_node(page, GROUP_MARK + folder)
    wait_until(lambda: inside <= {n["task"] for n in screen(page)["nodes"]}, timeout=30,
               message=f"{folder} opened into its tasks and subfolder")
    assert_no_marks_overlap(screen(page))
    node = screen(page)["nodes"][0]
    page.mouse.move(node["x"], node["y"])
    expect(page.locator(".bk-Tooltip").filter(visible=True)).to_have_count(1, timeout=10_000)  # one at a time
    page.get_by_role("button", name="Collapse groups").click()
    wait_until(lambda: {n["task"] for n in screen(page)["nodes"]} == {GROUP_MARK + t for t in tops}, timeout=30,
               message="every group collapsed again")


def test_every_task_drawn_at_once_does_not_overlap(served, page: Page):
    url, project = served
    staging = sum(1 for _, group, _ in project.definitions if group.startswith("staging/"))
    assert staging > 150
    # One top-level group of more than 150 tasks: its folders first; a name filter narrows below.
    shown = open_graph(page, f"{url}/tasks?search=stg_")
    assert len(shown["nodes"]) < staging, "opens on folders"
    shown = open_graph(page, f"{url}/tasks?search=stg_stripe")
    assert 0 < len(shown["nodes"]) <= 150 and not any(n["task"].startswith(GROUP_MARK) for n in shown["nodes"])
    assert_no_marks_overlap(shown)


def test_a_narrowed_graph_keeps_its_marks_small_and_its_labels_inside(served, page: Page):
    url, project = served
    task = next(task for task, _, upstream in project.definitions if len(upstream) == 1)
    shown = open_graph(page, f"{url}/tasks?search={task.rsplit('.', 1)[1]}")
    assert len(shown["nodes"]) <= 3
    assert shown["size"] <= 22, "marks in pixels, not grown with the zoom"
    assert all(label["visible"] and label["offset"] == 13 for label in shown["labels"] if label["count"]), shown
    left, top, right, bottom = shown["frame"]
    for node in shown["nodes"]:
        assert left + 40 <= node["x"] <= right - 40 and top <= node["y"] - 11 and node["y"] + 13 + 24 <= bottom, \
            f"{node['task']}'s mark and label are inside the plot"


def test_the_runs_grid_shows_a_long_name_by_its_end(served, page: Page):
    url, project = served
    task = max((task for task, _, _ in project.definitions if len(task.rsplit(".", 1)[1]) <= 24), key=len)
    assert len(task) >= 50
    # The task column has the room the other columns leave: ~150 px at 1280 px, ~280 px here,
    # less than the whole name and more than its end.
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{url}/task-runs?search={task}&since=24h")
    name = page.locator(".td-task").first
    expect(name).to_have_attribute("title", task, timeout=30_000)
    end = task.rsplit(".", 1)[1]
    expect(name.locator(".td-task-tail")).to_have_text(end)
    # Measured once the grid has sized its columns.
    wait_until(lambda: name.evaluate("""el => {
      const [head, tail] = el.children
      return tail.scrollWidth <= tail.clientWidth + 1 && head.scrollWidth > head.clientWidth + 20
    }"""), timeout=15, message="the end shown whole, the common start cut (an ellipsis in the middle)")


def test_the_legend_finds_a_group_in_a_long_list_and_a_click_shows_only_it(tmp_path, page: Page):
    groups = [f"team-{n:02d}" for n in range(1, 12)] + ["<img src=x onerror=alert(1)>"]
    writer = SpoolWriter(tmp_path / "spool", "test")
    for group in groups:
        writer.define_task(f"{group}_extract", group)
        writer.define_task(f"{group}_load", group, depends_on=[f"{group}_extract"])
    with dashboard_server(tmp_path) as server:  # its own process: this module's server is in this one
        page.goto(f"{server.url}/tasks")
        legend = page.locator(".td-legend")
        expect(legend.locator("summary")).to_have_text("12 top-level groups", timeout=30_000)
        items = legend.locator(".td-legend-item")
        expect(items.first).to_be_hidden()  # folded: the graph stays where it is
        legend.locator("summary").click()
        expect(items.filter(visible=True)).to_have_count(12)
        find = legend.get_by_role("searchbox", name="Find a group in the legend")
        find.fill("TEAM-1")
        expect(items.filter(visible=True)).to_have_text(["team-10 (2)", "team-11 (2)"])
        find.fill("nothing like it")
        expect(legend.get_by_text("No group matches")).to_be_visible()
        find.fill("<img")
        expect(items.filter(visible=True)).to_have_text(["<img src=x onerror=alert(1)> (2)"])  # a name is text, never HTML
        find.fill("team-07")
        items.filter(visible=True).click()
        expect(page).to_have_url(re.compile(r"[?&]group=team-07(&|$)"), timeout=15_000)
        expect(page.get_by_text("2 of 24 tasks shown")).to_be_visible(timeout=30_000)
        # A task search that leaves nothing shown empties the legend (it failed on the server).
        search = page.get_by_placeholder("Search task name, Enter")
        search.fill("no such task")
        search.press("Enter")
        expect(page.get_by_text("0 of 24 tasks shown")).to_be_visible(timeout=30_000)
        expect(legend.locator("summary")).to_have_text("0 top-level groups")
        search.fill("")
        search.press("Enter")
        expect(legend.locator("summary")).to_have_text("1 top-level group", timeout=30_000)
    assert "Traceback" not in "".join(server.output), "the server failed on a change of the page"


#: Each label as drawn: its text's extent in pixels on the page (measured with its own font) and
#: the plot's frame.
LABEL_EXTENTS = """() => {
  const plot = Bokeh.index.query_one(v => v.frame != null && v.frame.x_scale != null)
  const rect = plot.canvas_view.el.getBoundingClientRect()
  const frame = plot.frame.bbox
  const context = document.createElement("canvas").getContext("2d")
  const extents = []
  for (const view of Bokeh.index.query(v => v.model.glyph != null && v.model.glyph.text != null)) {
    if (!view.model.visible) { continue }
    const glyph = view.model.glyph, data = view.model.data_source.data
    context.font = `${glyph.text_font_size.value} ${glyph.text_font.value}`
    Array.from(data.label, (label, i) => {
      const width = Math.max(...label.split("\\n").map(line => context.measureText(line).width))
      const x = rect.left + plot.frame.x_scale.compute(data.x[i])
      const align = glyph.text_align.field ? data[glyph.text_align.field][i] : glyph.text_align.value
      const left = align === "left" ? x : align === "right" ? x - width : x - width / 2
      extents.push({label, left, right: left + width})
    })
  }
  return {frame: [rect.left + frame.left, rect.left + frame.right], extents}
}"""


def test_labels_in_the_first_and_last_columns_stay_inside_the_plot(tmp_path, page: Page):
    writer = SpoolWriter(tmp_path / "spool", "test")
    for chain in range(12):
        names = [f"chain_{chain:02d}.step_{step}_refresh_the_warehouse" for step in range(8)]
        for step, name in enumerate(names):
            writer.define_task(name, f"chain-{chain:02d}", depends_on=names[step - 1:step])
        writer.status(f"r-{chain}", names[0], "FAILED", agent="agent-1", exit_code=1)  # a root cause: labelled
    page.set_viewport_size({"width": 1280, "height": 1000})
    with dashboard_server(tmp_path) as server:
        # The selected task is labelled too: one in the last column.
        page.goto(f"{server.url}/tasks?task=chain_00.step_7_refresh_the_warehouse")
        expect(page.get_by_text("96 of 96 tasks shown")).to_be_visible(timeout=30_000)
        def outer_labels() -> list[dict]:
            return [e for e in page.evaluate(LABEL_EXTENTS)["extents"] if e["label"].startswith(("step_0", "step_7"))]

        # Until the browser has sized the plot, its ordinary labels are not yet hidden (level of detail).
        wait_until(lambda: len(outer_labels()) == 13, timeout=30,
                   message=lambda: f"13 labels in the outer columns, not {outer_labels()}")
        drawn = page.evaluate(LABEL_EXTENTS)
        left, right = drawn["frame"]
        for extent in drawn["extents"]:
            assert left <= extent["left"] and extent["right"] <= right, f"{extent} cut at the frame {left}–{right}"
