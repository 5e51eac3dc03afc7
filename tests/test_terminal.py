"""What a terminal shows of real logs: visible lines, line counts, search counts and emphasis,
over committed fixtures (real tools captured under `script`, and hand-written sequences)."""

from __future__ import annotations

import random
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from builders import ingest

from dashboard import queries, terminal
from dashboard.components.log_viewer import FOLD_CHARS, _line_rows, log_row
from dashboard.emphasis import Emphasis
from dashboard.index import Index
from dashboard.spool import SpoolWriter

FIXTURES = Path(__file__).parent / "fixtures" / "real_logs"
CASES = json.loads((FIXTURES / "cases.json").read_text())
#: Real tools with colours under `script`, each beside the same command's output without colours.
CAPTURED = ["pytest_failed", "ls_color", "git_diff"]
#: CSI sequences, ESC = and ESC >, CRLF endings and what a carriage return overwrites (these captures' only ones)
SED_STRIP = shlex.quote(r"s/\x1b\[[0-?]*[ -\/]*[@-~]//g; s/\x1b[=>]//g; s/\r$//; s/.*\r//")
CAPTURED_SEARCHES = {"pytest_failed": ["FAILED", "1 failed, 15 passed", "assert", "[0m", "E "],
                     "ls_color": ["md", "build", "01;34"], "git_diff": ["diff", "three", "[m"]}


def ingested(tmp_path, logs: dict[str, bytes]) -> Index:
    """An index of a spool holding one finished run per log."""
    writer = SpoolWriter(tmp_path / "spool", name="fixtures")
    for run_id, raw in logs.items():
        writer.status(run_id, "Fixture", "RUNNING", agent="a")
        path = writer.log_path(run_id, "stdout")
        path.write_bytes(raw)
        writer.status(run_id, "Fixture", "FAILED", agent="a", exit_code=1)
    index = ingest(tmp_path)
    return index


def visible_lines(index: Index, run_id: str) -> list[str]:
    return [terminal.visible(text) for text in queries.log_page(index, run_id, "stdout", 1, 100_000)["text"]]


def stored_visible(index: Index, run_id: str) -> list[str]:
    """What ingest stored for search: the visible column, or the text where they are the same."""
    frame = index.query(
        "SELECT coalesce(t.visible, t.text) AS shown FROM log_text t JOIN log_streams s USING (log_id) "
        "WHERE s.run_id = ? ORDER BY t.line_no", [run_id])
    return frame["shown"].tolist()


def rows_of(index: Index, run_id: str) -> list[list]:
    """The viewer's rows of a whole (short) log, with the default emphasis."""
    return _line_rows(index, run_id, "stdout", 1, 100_000, Emphasis())


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    logs = {case["name"].replace("_", "-"): case["raw"].encode() for case in CASES}
    logs |= {name.replace("_", "-"): (FIXTURES / f"{name}.log").read_bytes() for name in CAPTURED}
    index = ingested(tmp_path_factory.mktemp("fixtures"), logs)
    yield index
    index.close()


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_hand_written_sequences_show_as_a_terminal_shows_them(index, case):
    run_id = case["name"].replace("_", "-")
    shown = stored_visible(index, run_id)
    assert shown == visible_lines(index, run_id), "search and drawing see the same text"
    if case["visible"] is not None:
        assert shown == case["visible"]
    assert queries.log_line_counts(index, run_id)["stdout"] == len(shown)
    for needle, count in case["searches"].items():
        assert len(queries.search_matches(index, run_id, "stdout", needle)) == count, needle
    levels = [row[3] for row in rows_of(index, run_id)]
    assert [n for n, level in enumerate(levels, 1) if level == "error"] == case.get("errors", [])
    assert [n for n, level in enumerate(levels, 1) if level == "warn"] == case.get("warnings", [])


@pytest.mark.parametrize("name", CAPTURED)
def test_a_coloured_capture_shows_what_the_same_command_prints_without_colours(index, name):
    run_id = name.replace("_", "-")
    lines = (FIXTURES / f"{name}.expected.txt").read_bytes().replace(b"\r\n", b"\n").decode().split("\n")
    lines = lines[:-1] if lines[-1] == "" else lines  # a last line without newline is a line (the run ended)
    expected = [terminal.visible(line) for line in lines]  # git's pager sets terminal modes even uncoloured
    assert stored_visible(index, run_id) == expected
    assert queries.log_line_counts(index, run_id)["stdout"] == len(expected)
    for needle in CAPTURED_SEARCHES[name]:
        # grep -c over the coloured capture with its escape sequences stripped by sed
        grep = subprocess.run(f"sed -E {SED_STRIP} {FIXTURES / (name + '.log')} | grep -ciF -- {shlex.quote(needle)}",
                              shell=True, capture_output=True, text=True)
        assert len(queries.search_matches(index, run_id, "stdout", needle)) == int(grep.stdout), needle


def test_pytests_failure_lines_stand_out(index):
    rows = rows_of(index, "pytest-failed")
    errors = [row[1] for row in rows if row[3] == "error"]
    assert errors[0].startswith("E       AssertionError")
    assert errors[-1].startswith("FAILED test_sample.py::test_broken")
    assert queries.next_line_matching(index, "pytest-failed", "stdout", Emphasis().error_pattern, 0) == \
        next(row[0] for row in rows if row[3] == "error")


def test_colours_and_links_become_runs_and_unsafe_links_text():
    text, runs = terminal.shown("\x1b[1;31mred\x1b[0m \x1b]8;;https://x.org/a\x07link\x1b]8;;\x07 "
                                "\x1b]8;;file:///etc/passwd\x07file\x1b]8;;\x07 \x1b[38;5;208mo\x1b[38;2;1;2;3mr")
    assert text == "red link file or"
    assert runs == [(0, 3, terminal.Style("td-fg-1 td-b")), (4, 8, terminal.Style(href="https://x.org/a")),
                    (14, 15, terminal.Style(color="rgb(255, 135, 0)")), (15, 16, terminal.Style(color="rgb(1, 2, 3)"))]


@pytest.mark.parametrize("raw, shown", [
    ("abc\rX", "Xbc"),  # a carriage return overwrites from the start, as a terminal does
    ("abcdef\r\x1b[Kxy", "xy"),  # erase to the end of the line
    ("abc\x08\x08Z", "aZc"),  # backspace moves back
    ("\x1b[31mab\rX\x1b[0m", "Xb"),
    ("tail\r", "tail"),
    ("unterminated \x1b]8;;https://x", "unterminated "),
    ("\x1b[?25l\x1b[2J\x1b[Hcleared\x1b[?25h", "cleared"),
    ("nul\x00 and \x9b c1", "nul and  c1"),
])
def test_the_visible_text_rules(raw, shown):
    assert terminal.visible(raw) == shown
    assert terminal.shown(raw)[0] == shown
    stored = terminal.visible_array(pa.array([raw], pa.large_string()))[0].as_py()
    assert (raw if stored is None else stored) == shown


def test_a_long_line_is_sent_folded_unless_asked_whole():
    raw = "\x1b[32m" + "x" * 60_000 + "\x1b[0m"
    number, text, runs, level, full = log_row(7, raw)
    assert (len(text), full, runs) == (FOLD_CHARS, 60_000, [[0, FOLD_CHARS, "td-fg-2", "", ""]])
    assert log_row(7, raw, whole=True)[1] == "x" * 60_000


def test_taskdash_logs_search_counts_what_is_seen(tmp_path):
    case = next(case for case in CASES if case["name"] == "npm_warn_in_colour")
    ingested(tmp_path, {"r-npm": case["raw"].encode()}).close()
    result = subprocess.run([sys.executable, "-m", "dashboard.cli", "logs", "r-npm", "--search", "npm WARN",
                             "--spool", str(tmp_path / "spool"), "--index", str(tmp_path / "index.duckdb")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["1", "2", "3"]
    assert "3 matching lines of 4" in result.stderr


def test_an_emphasis_pattern_that_is_not_a_regular_expression_is_named():
    with pytest.raises(ValueError, match=r"log_emphasis.error: '\(unclosed' is not a regular expression"):
        Emphasis(error=("(unclosed",))


def test_log_emphasis_is_a_setting_of_panel_serve_yaml(tmp_path):
    from dashboard.config import ConfigError, load_config

    settings = tmp_path / "panel_serve.yaml"
    settings.write_text("log_emphasis:\n  error: ['^boom']\n", encoding="utf-8")
    emphasis = load_config(settings).log_emphasis
    assert emphasis.error == ("^boom",) and emphasis.warning == Emphasis().warning
    settings.write_text("log_emphasis:\n  error: ['(unclosed']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"log_emphasis.error: '\(unclosed' is not a regular expression"):
        load_config(settings)
    assert load_config(Path(__file__).parents[1] / "panel_serve.yaml").log_emphasis == Emphasis()


def test_the_visible_text_of_many_lines_at_once_is_each_line_s():
    """visible_array (the ingest's, over a chunk of lines) looks closer only at lines that are not
    printable ASCII: whatever the mix, each line comes out as `visible` says, null when unchanged."""
    pieces = ["plain words", "\ttabbed", "naïve café", "\x1b[1;31mred\x1b[0m", "del\x7f", "c1\x9b here",
              "bar 10%\rbar 100%", "back\x08\x08ck", "\x1b]8;;https://x.example\x1b\\link\x1b]8;;\x1b\\", "  "]
    rng = random.Random(3)
    lines = ["".join(rng.choice(pieces) for _ in range(rng.randrange(1, 4))) for _ in range(2000)]
    lines[::7] = ["only printable ascii"] * len(lines[::7])
    stored = terminal.visible_array(pa.array(lines, pa.large_string())).to_pylist()
    for raw, kept in zip(lines, stored):
        assert (raw if kept is None else kept) == terminal.visible(raw)
        assert (kept is None) == (terminal._SPECIAL.search(raw) is None)
    plain = terminal.visible_array(pa.array(["a", "b\tc", "é"], pa.large_string()))
    assert plain.null_count == 3


def test_a_long_chunk_is_stripped_in_pieces_that_join_back_in_order(monkeypatch):
    """visible_array cuts a chunk longer than PIECE_LINES into pieces stripped on several cores:
    every line comes back where it was, the plain ones null."""
    monkeypatch.setattr(terminal, "PIECE_LINES", 8)
    monkeypatch.setattr(terminal, "_CORES", 3)  # three pieces, whatever the machine
    lines = [f"\x1b[3{n % 8}mline {n}\x1b[0m" if n % 3 else f"plain {n}" for n in range(100)]
    stored = terminal.visible_array(pa.array(lines, pa.large_string())).to_pylist()
    assert stored == [f"line {n}" if n % 3 else None for n in range(100)]


def test_overwrites_are_found_in_a_piece_of_a_chunk():
    """The lines holding a carriage return or a backspace are found in the bytes of the piece of a
    chunk visible_array strips (a slice: its offsets do not start at 0), each resolved as `visible`
    resolves it, whatever else the line holds."""
    pieces = ["\r", "\x08", "\x1b[1m", "\x1b[0m", "x", "é", "中", " ", "\x00", "\x9b", "\x1b]8;;u\x1b\\"]
    rng = random.Random(11)
    lines = ["".join(rng.choice(pieces) for _ in range(rng.randrange(0, 8))) for _ in range(3_000)]
    chunk = pa.array(["\x1b[1mbefore\r"] * 500 + lines, pa.large_string())
    stored = terminal.visible_array(chunk[500:]).to_pylist()
    assert [raw if kept is None else kept for raw, kept in zip(lines, stored)] \
        == [terminal.visible(raw) for raw in lines]
