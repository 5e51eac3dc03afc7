"""The log viewer's view state is its own parameters: setting one shows what it says, with one
query, and what the browser says (it scrolled up, it searched) comes back into them."""

from __future__ import annotations

import os
import time

import pytest

from dashboard import queries
from dashboard.changes import Change
from dashboard.components.log_viewer import PAGE_LINES, LogViewer
from dashboard.config import Config
from dashboard.hub import Hub
from dashboard.index import Index
from dashboard.ingest import QUIET_SECONDS, Ingestor
from dashboard.spool import SpoolWriter
from dashboard.store import Store

STDOUT_LINES = 1200


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("log-viewer")
    writer = SpoolWriter(folder / "spool", name="w")
    writer.status("r-1", "Build", "RUNNING", agent="a")
    writer.append_log("r-1", "stdout", "".join(
        f"{'ERROR' if n % 400 == 0 else 'INFO'} line {n}\n" for n in range(1, STDOUT_LINES + 1)))
    writer.append_log("r-1", "stderr", "".join(f"warning {n}\n" for n in range(1, 15)))
    writer.status("r-1", "Build", "FAILED", agent="a", exit_code=1)
    index = Index(folder / "index.duckdb")
    Ingestor(index, folder / "spool").catch_up()
    try:
        yield Store(index, Hub(), Config(spool=folder / "spool"))
    finally:
        index.close()


@pytest.fixture
def viewer(store, monkeypatch):
    """A viewer of r-1 that counts the pages of lines it reads (viewer.reads)."""
    view = LogViewer(store=store, run_id="r-1")
    view.reads = []
    rows = view._rows
    monkeypatch.setattr(view, "_rows", lambda first, count, whole=(): view.reads.append(first) or rows(first, count,
                                                                                                         whole))
    return view


def make_quiet(path) -> None:
    """As a file nobody wrote to for a while: its last line without newline is a line."""
    past = time.time() - QUIET_SECONDS - 1
    os.utime(path, (past, past))


def shown(view) -> tuple[int, int]:
    return view.view.lines[0][0], view.view.lines[-1][0]


def test_it_opens_on_page_1_of_stdout(viewer):
    assert (viewer.stream, viewer.page, viewer.line, viewer.follow) == ("stdout", 1, None, False)
    assert shown(viewer) == (1, PAGE_LINES)


def test_setting_the_page_shows_it_with_one_read(viewer):
    viewer.page = 2
    assert shown(viewer) == (PAGE_LINES + 1, 2 * PAGE_LINES) and viewer.reads == [PAGE_LINES + 1]
    viewer.page = 10**9  # past the last: the last
    assert viewer.page == 3 and shown(viewer) == (2 * PAGE_LINES + 1, STDOUT_LINES)


def test_a_line_is_shown_on_its_page_marked_and_stands_for_the_page(viewer):
    viewer.line = 777
    assert shown(viewer) == (501, 1000) and viewer.view.find["addressed"] == 777
    assert (viewer.page, viewer.line) == (None, 777) and viewer.to_url() == {"line": "777"}


def test_a_page_asked_for_after_a_line_replaces_it(viewer):
    viewer.line = 777
    viewer.page = 3
    assert (viewer.page, viewer.line) == (3, None) and shown(viewer) == (1001, STDOUT_LINES)
    assert "addressed" not in viewer.view.find


def test_another_stream_opens_at_its_first_page_and_forgets_the_search(viewer):
    viewer.param.update(page=2, search="ERROR")
    viewer.reads.clear()
    viewer.stream = "stderr"
    assert viewer.view.lines[0][1] == "warning 1" and viewer.reads == [1]
    assert (viewer.page, viewer.search, viewer.to_url()) == (1, "", {"stream": "stderr", "page": "1"})


def test_a_search_asked_with_another_stream_searches_that_stream(viewer):
    viewer.param.update(stream="stderr", search="warning 9")
    assert viewer.view.find == {"text": "warning 9", "current": 9, "index": 1, "total": 1}


def test_stream_and_line_set_together_are_one_read(viewer):
    viewer.param.update(stream="stderr", line=14)
    assert viewer.reads == [1] and viewer.view.find["addressed"] == 14


def test_follow_shows_the_newest_lines_and_scrolling_up_in_the_browser_stops_it(viewer):
    viewer.follow = True
    assert viewer.view.follow and shown(viewer) == (STDOUT_LINES - PAGE_LINES + 1, STDOUT_LINES)
    assert viewer.page is None and viewer.follow_button.value
    reads = len(viewer.reads)
    viewer.view.follow = False  # what the browser says when the user scrolls up
    assert not viewer.follow and not viewer.follow_button.value
    assert len(viewer.reads) == reads, "the lines stay where the user scrolled"
    viewer.page = 1
    assert shown(viewer) == (1, PAGE_LINES)


def test_a_search_moves_to_its_first_match_and_counts_them_all(viewer):
    viewer.search = "error"
    assert viewer.view.find == {"text": "error", "current": 400, "index": 1, "total": 3}
    viewer.view.search_request = {"text": "error", "moves": 2}  # Enter twice in the browser
    assert viewer.view.find["current"] == 1200 and viewer.page == 3 and viewer.search == "error"


def test_the_stream_tabs_and_follow_button_are_the_parameters(viewer):
    viewer.streams.value = "stderr"
    assert viewer.stream == "stderr"
    viewer.follow_button.value = True
    assert viewer.follow and viewer.view.follow


def test_a_search_stepped_on_after_the_stream_grew_reads_only_its_new_lines(tmp_path, monkeypatch):
    """Enter in a followed 2M-line log searched the whole stream again whenever lines had come
    (125 ms): now only from the last line searched, which a tail made quiet may have grown."""
    writer = SpoolWriter(tmp_path / "spool", name="w")
    writer.status("r-1", "Build", "RUNNING", agent="a")
    writer.append_log("r-1", "stdout", "".join(f"{'ERROR' if n % 400 == 0 else 'INFO'} line {n}\n"
                                               for n in range(1, STDOUT_LINES + 1)) + "last: err")
    log = tmp_path / "spool/logs/r-1/stdout.log"
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, tmp_path / "spool")
    try:
        make_quiet(log)
        ingestor.catch_up()
        view = LogViewer(store=Store(index, Hub(), Config(spool=tmp_path / "spool")), run_id="r-1")
        asked = []
        search = queries.search_matches
        monkeypatch.setattr(queries, "search_matches", lambda *args, **kwargs: asked.append(
            kwargs.get("from_line", 1)) or search(*args, **kwargs))
        view.search = "error"
        assert view.view.find["total"] == 3 and asked == [1]
        writer.append_log("r-1", "stdout", "or, at last\n" + "".join(f"error again {n}\n" for n in range(4)))
        ingestor.catch_up()
        view.changed(Change(log_lines={("r-1", "stdout"): STDOUT_LINES + 5}))
        view.view.search_request = {"text": "error", "moves": 1}  # Enter in the browser
        assert asked == [1, STDOUT_LINES + 1], "from the line that was the tail"
        assert view.matches.tolist() == search(index, "r-1", "stdout", "error").tolist() == [
            400, 800, 1200, *range(STDOUT_LINES + 1, STDOUT_LINES + 6)]
        assert view.view.find == {"text": "error", "current": 800, "index": 2, "total": 8}
    finally:
        index.close()
