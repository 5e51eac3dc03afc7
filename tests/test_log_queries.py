"""Log queries on a real index: page boundaries, counts per stream, whole-stream search with
match positions, search text taken literally, and the download chunks."""

from __future__ import annotations

import pytest
from builders import ingest
from helpers import wait_until

from dashboard import queries
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.spool import SpoolWriter

LINES = 1500
SPECIAL = {700: "100% done", 701: "a_b c", 702: "it's here", 703: "regex .* [x] (y)+ ^$", 704: "back\\slash",
           705: "10 percent: 100 done", 706: "axb c"}


def line(n: int) -> str:
    return SPECIAL.get(n) or (f"ERROR at step {n}" if n % 250 == 0 else f"info step {n}")


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    folder = tmp_path_factory.mktemp("logs")
    writer = SpoolWriter(folder / "spool", "test")
    writer.status("r-1", "Task", "RUNNING")
    writer.append_log("r-1", "stdout", "".join(line(n) + "\n" for n in range(1, LINES + 1)))
    writer.append_log("r-1", "stderr", "Error: one\nwarning\n")
    writer.status("r-2", "Task", "RUNNING")
    writer.append_log("r-2", "stdout", "ERROR elsewhere\n")
    index = ingest(folder)
    yield index
    index.close()


def test_counts_per_stream(index):
    assert queries.log_line_counts(index, "r-1") == {"stdout": LINES, "stderr": 2}
    assert queries.log_line_counts(index, "no-run") == {"stdout": 0, "stderr": 0}


def test_pages_end_at_line_500_and_start_at_501(index):
    first = queries.log_page(index, "r-1", "stdout", 1)
    second = queries.log_page(index, "r-1", "stdout", 501)
    assert first["line_no"].tolist() == list(range(1, 501)) and first["text"].iloc[-1] == line(500)
    assert second["line_no"].tolist() == list(range(501, 1001)) and second["text"].iloc[0] == line(501)
    last = queries.log_page(index, "r-1", "stdout", 1001)
    assert last["line_no"].tolist() == list(range(1001, LINES + 1))
    assert queries.log_page(index, "r-1", "stdout", LINES + 1).empty


def test_a_page_marks_each_line_by_either_pattern_as_each_alone_would(tmp_path):
    """Error and warning are read from one scan for either pattern: a line matching both is both,
    one matching neither is neither, and with no warning pattern nothing is a warning."""
    lines = ["ERROR and WARNING", "only an ERROR", "only a WARNING", "neither", "", "x" * 60_000 + " WARNING"]
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.status("r-1", "Task", "RUNNING")
    writer.append_log("r-1", "stdout", "".join(text + "\n" for text in lines))
    index = ingest(tmp_path)
    try:
        page = queries.log_page(index, "r-1", "stdout", 1, emphasis=(r"\bERROR\b", r"\bWARNING\b"), head=10)
        assert page["error"].tolist() == [True, True, False, False, False, False]
        assert page["warn"].tolist() == [True, False, True, False, False, True]
        assert page["shown_length"].tolist() == [len(text) for text in lines]
        assert page["text"].tolist() == [text[:10] for text in lines]
        alone = queries.log_page(index, "r-1", "stdout", 1, emphasis=(r"\bERROR\b", None))
        assert alone["error"].tolist() == [True, True, False, False, False, False]
        assert not alone["warn"].any()
    finally:
        index.close()


def test_search_covers_the_whole_stream_over_three_pages(index):
    matches = queries.search_matches(index, "r-1", "stdout", "error")
    assert matches.tolist() == [250, 500, 750, 1000, 1250, 1500], "any case, every page, in order"
    pages = {(n - 1) // queries.LOG_PAGE_LINES + 1 for n in matches.tolist()}
    assert pages == {1, 2, 3}
    assert queries.search_matches(index, "r-1", "stderr", "ERROR").tolist() == [1]
    assert queries.search_matches(index, "r-2", "stdout", "error").tolist() == [1], "only that run"


@pytest.mark.parametrize(("text", "expected"), [
    ("100%", [700]), ("%", [700]), ("a_b", [701]), ("_", [701]), ("it's", [702]), ("'", [702]),
    (".*", [703]), ("[x] (y)+", [703]), ("^$", [703]), ("\\", [704]), ("back\\s", [704]),
    ("100 done", [705]), ("zzz", []),
])
def test_search_text_is_literal(index, text, expected):
    assert queries.search_matches(index, "r-1", "stdout", text).tolist() == expected


def searched_in_copy(index: Index, run_id: str) -> bool:
    """Whether a search of the run's stdout reads the index's folded copy of it (see log_copies)."""
    with index.cursor() as cur:
        return index.log_source(cur, run_id, "stdout", search=True)[0] == index.log_copies.table


def test_a_finished_logs_first_page_has_its_copy_made_for_the_first_search(tmp_path):
    spool = tmp_path / "spool"
    with SpoolWriter(spool, "t") as writer:
        writer.status("r-1", "Task", "RUNNING")
        writer.append_log("r-1", "stdout", "".join(f"line {n} \x1b[1mBold\x1b[0m\n" for n in range(1, 101)))
        writer.status("r-1", "Task", "SUCCESS", exit_code=0)
    index = Index(tmp_path / "index.duckdb")
    index.log_copies.min_lines = 0  # (a log this short is searched where it is)
    try:
        Ingestor(index, spool).catch_up()
        with index.cursor() as cur:
            log_id = index.log_id(cur, "r-1", "stdout")
        assert not index.log_copies.held(log_id)
        page = queries.log_page(index, "r-1", "stdout", 1, 10)
        assert page["line_no"].tolist() == list(range(1, 11))
        wait_until(lambda: index.log_copies.held(log_id), message="the opened log to be copied")
        with index.cursor() as cur:  # pages still read the index; the first search reads the copy
            assert index.log_source(cur, "r-1", "stdout")[0] == "log_text"
        assert searched_in_copy(index, "r-1")
        assert queries.search_matches(index, "r-1", "stdout", "1 BOLD").tolist() == [1, 11, 21, 31, 41, 51, 61, 71, 81, 91]
    finally:
        index.close()


def test_a_finished_logs_searches_read_its_folded_copy_which_is_forgotten_as_its_lines_change(tmp_path):
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, "t")
    coloured = [f"Line {n} \x1b[31mRED\x1b[0m alert" if n % 3 == 0 else f"line {n} plain" for n in range(1, 301)]
    writer.status("r-done", "Task", "RUNNING")
    writer.append_log("r-done", "stdout", "".join(text + "\n" for text in coloured))
    writer.status("r-done", "Task", "SUCCESS", exit_code=0)
    writer.status("r-live", "Task", "RUNNING")
    writer.append_log("r-live", "stdout", "still RED\n")
    index = Index(tmp_path / "index.duckdb")
    assert index.log_copies.min_lines > len(coloured)  # a short log is searched where it is:
    index.log_copies.min_lines = 0  # this one is copied all the same
    ingestor = Ingestor(index, spool)
    ingestor.catch_up()

    def expected(lines: list[str]) -> dict[str, list[int]]:
        seen = [text.replace("\x1b[31m", "").replace("\x1b[0m", "") for text in lines]  # what a terminal shows
        return {needle: [n for n, text in enumerate(seen, 1) if needle.lower() in text.lower()]
                for needle in ("red ALERT", "line 1", "[31m", "0 ", "zzz")}

    def searches(run_id: str) -> dict[str, list[int]]:
        return {needle: queries.search_matches(index, run_id, "stdout", needle).tolist()
                for needle in ("red ALERT", "line 1", "[31m", "0 ", "zzz")}

    try:
        assert searches("r-live") == {"red ALERT": [], "line 1": [], "[31m": [], "0 ": [], "zzz": []}
        assert searches("r-done") == expected(coloured)  # read from the index, and a copy made
        wait_until(lambda: searched_in_copy(index, "r-done"), message="r-done's log to be copied")
        assert searches("r-done") == expected(coloured)
        assert not searched_in_copy(index, "r-live")  # a running run's log (looked at before r-done's)
        assert queries.log_page(index, "r-done", "stdout", 1)["text"].tolist() == coloured  # pages read the index
        # lines after the run's end: the copy is forgotten as they are written
        writer.append_log("r-done", "stdout", "a late RED alert\n")
        ingestor.catch_up()
        assert not searched_in_copy(index, "r-done")
        assert searches("r-done") == expected([*coloured, "a late RED alert"])
        wait_until(lambda: searched_in_copy(index, "r-done"), message="r-done's log to be copied again")
        assert searches("r-done") == expected([*coloured, "a late RED alert"])
    finally:
        writer.close()
        index.close()


def test_a_search_first_asks_for_the_needles_end_from_its_least_common_character(tmp_path):
    """A literal search looks first for the end of the text from its least common character (a line
    is passed over faster), then for the whole text: lines holding only that end never match, in
    the index and in a finished log's folded copy."""
    assert queries.text_match("Deadlock Detected")[1] == ["k detected", "deadlock detected"]
    assert queries.text_match("kernel panic")[1] == ["kernel panic"]  # its rarest character leads it
    assert queries.folded_match("folded", "Grüße")[1] == ["Grüße"]  # lowered by DuckDB, as the lines are
    lines = ["k detected", "a Deadlock Detected here", "deadlock detected", "DEADLOCK DETECTED!",
             "deadlock  detected", "by peer", "connection reset BY PEER", "Straße GRÜSSE", "viele Grüße"]
    spool = tmp_path / "spool"
    with SpoolWriter(spool, "t") as writer:
        writer.status("r-1", "Task", "RUNNING")
        writer.append_log("r-1", "stdout", "".join(text + "\n" for text in lines))
        writer.status("r-1", "Task", "SUCCESS", exit_code=0)
    index = Index(tmp_path / "index.duckdb")
    index.log_copies.min_lines = 0  # (a log this short is searched where it is)
    expected = {"Deadlock Detected": [2, 3, 4], "CONNECTION reset by peer": [7], "by peer": [6, 7],
                "k detected": [1, 2, 3, 4], "grüße": [9]}
    try:
        Ingestor(index, spool).catch_up()
        for where in ("the index", "the copy"):
            found = {text: queries.search_matches(index, "r-1", "stdout", text).tolist() for text in expected}
            assert found == expected, where
            wait_until(lambda: searched_in_copy(index, "r-1"), message="the log to be copied")
    finally:
        index.close()
