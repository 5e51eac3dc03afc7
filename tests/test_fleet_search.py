"""Fleet log search (queries.fleet_search, `taskdash search`): which runs printed a text, over the
runs filter, with counts equal to `grep -c` over each file's visible text."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import subprocess
import sys

import pytest
from builders import ingest

from dashboard import queries
from dashboard.formatting import utcnow
from dashboard.queries import RunFilter
from dashboard.spool import SpoolWriter, log_path
from dashboard.terminal import visible

NEEDLE = "Deadlock detected"
LINES = ("loaded {n} rows", "retrying in {n} s", "\x1b[31mDEADLOCK DETECTED\x1b[0m on table t{n}",
         "warning: deadlock detected, {n} waiters", "dead\x1b[1mlock\x1b[0m detected? no: deadlocked {n}",
         "100% done, 50_% of_ it")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fleet")
    spool, rng, now = folder / "spool", random.Random(20), utcnow()
    writer = SpoolWriter(spool, "fleet")
    for i in range(40):
        run_id = f"r-{i:02d}"
        writer.status(run_id, f"Task_{i % 4}", "FAILED" if i % 3 == 0 else "SUCCESS",
                      trigger_time=now - dt.timedelta(hours=i), group="etl" if i % 2 else "billing")
        for stream in ("stdout", "stderr"):
            lines = [rng.choice(LINES).format(n=rng.randrange(1000)) for _ in range(rng.randrange(0, 60))]
            if lines:
                writer.append_log(run_id, stream, "\n".join(lines) + "\n")
    index = ingest(folder)
    yield folder, index, now
    index.close()


def grep_count(path, pattern: re.Pattern) -> int:
    """`grep -c` over the file's lines as a terminal shows them (escape sequences removed)."""
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if pattern.search(visible(line)))


def expected(folder, index, now, pattern: re.Pattern, run_filter: RunFilter) -> dict[str, tuple[int, int]]:
    """(stdout, stderr) matching line counts of each admitted run that has some, by grep."""
    admitted = set(queries.runs_page(index, run_filter, limit=1000, now=now)["run_id"])
    counts = {}
    for run_id in admitted:
        stdout, stderr = (grep_count(log_path(folder / "spool", run_id, s), pattern) for s in ("stdout", "stderr"))
        if stdout or stderr:
            counts[run_id] = (stdout, stderr)
    return counts


@pytest.mark.parametrize("text, regex, run_filter", [
    (NEEDLE, False, RunFilter()),
    (NEEDLE, False, RunFilter(statuses=("FAILED",), group="etl")),
    ("50_%", False, RunFilter(since=dt.timedelta(hours=12))),  # wildcards are literal
    (r"dead\w+ \d+", True, RunFilter(task_text="task_1")),
])
def test_matching_runs_and_counts_equal_grep_over_the_visible_text(fleet, text, regex, run_filter):
    folder, index, now = fleet
    pattern = re.compile(text if regex else re.escape(text), 0 if regex else re.IGNORECASE)
    want = expected(folder, index, now, pattern, run_filter)
    found = queries.fleet_search(index, text, run_filter, regex=regex, limit=1000, now=now)
    print(f"\n{text!r}: {len(found)} runs, {int(found['stdout_matches'].sum() + found['stderr_matches'].sum())} lines")
    assert want, "the case finds something"
    assert dict(zip(found["run_id"], zip(found["stdout_matches"], found["stderr_matches"]))) == want
    assert list(found["trigger_time"]) == sorted(found["trigger_time"], reverse=True)
    for row in found.itertuples():  # the first match: stdout's first, else stderr's
        stream = "stdout" if row.stdout_matches else "stderr"
        lines = log_path(folder / "spool", row.run_id, stream).read_text(encoding="utf-8").splitlines()
        first = next(n for n, line in enumerate(lines, 1) if pattern.search(visible(line)))
        assert (row.first_stream, row.first_line, row.first_text) == (stream, first, visible(lines[first - 1]))


def test_pages_of_runs_and_a_bad_regular_expression(fleet):
    folder, index, now = fleet
    everything = queries.fleet_search(index, NEEDLE, limit=1000, now=now)
    pages = [queries.fleet_search(index, NEEDLE, limit=7, offset=offset, now=now) for offset in range(0, 1000, 7)]
    assert sum((list(page["run_id"]) for page in pages), []) == list(everything["run_id"])
    with pytest.raises(ValueError) as bad:
        queries.fleet_search(index, "dead(lock", regex=True, now=now)
    assert str(bad.value) == "not a regular expression: 'dead(lock' (missing ): dead(lock)", "RE2's words, not DuckDB's"


def test_the_command_line_prints_the_same_runs(fleet, tmp_path):
    folder, index, now = fleet
    found = queries.fleet_search(index, NEEDLE, RunFilter(statuses=("FAILED",)), now=now)
    # A second index of the same spool: the fixture's is open in this process.
    command = [sys.executable, "-m", "dashboard.cli", "search", NEEDLE, "--status", "failed", "--json",
               "--spool", str(folder / "spool"), "--index", str(tmp_path / "index.duckdb")]
    printed = json.loads(subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout)
    assert [(r["run_id"], r["stdout_matches"], r["stderr_matches"], r["first_match"]["line"]) for r in printed] == \
        list(zip(found["run_id"], found["stdout_matches"], found["stderr_matches"], found["first_line"]))
    bad = subprocess.run(command[:4] + ["(", "--regex"] + command[7:], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "not a regular expression" in bad.stderr


@pytest.mark.parametrize("first_lines, max_lines, max_runs", [(100, 200, 5_000), (10_000, 10_000, 3)],
                         ids=["chunks of lines", "chunks of at most 3 runs"])
def test_the_page_is_found_newest_runs_first_in_chunks_and_stops_once_complete(fleet, monkeypatch, first_lines,
                                                                               max_lines, max_runs):
    """What the runs page shows while a search reads on: rows found stay where they are, each state
    says how far it got, the last is fleet_search's page; a page found early ends the search early.
    A chunk holds so many lines, and so many runs at most (many runs of a few lines each)."""
    folder, index, now = fleet
    monkeypatch.setattr(queries, "SEARCH_FIRST_CHUNK_LINES", first_lines)
    monkeypatch.setattr(queries, "SEARCH_CHUNK_MAX_LINES", max_lines)
    monkeypatch.setattr(queries, "SEARCH_CHUNK_MAX_RUNS", max_runs)
    monkeypatch.setattr(queries, "_sweep", lambda *args: None)  # chunks of runs only (a sweep: below)
    states = list(queries.fleet_search_progress(index, NEEDLE, limit=1000, now=now))
    assert len(states) > 3 and states[0].runs_searched == 0 and states[0].found.empty
    for before, after in zip(states, states[1:]):
        assert list(after.found["run_id"][:len(before.found)]) == list(before.found["run_id"])
        assert before.runs_searched < after.runs_searched and before.lines_searched < after.lines_searched
        assert after.runs_searched - before.runs_searched <= max_runs
    assert [state.done for state in states] == [False] * (len(states) - 1) + [True]
    last = states[-1]
    assert (last.runs_searched, last.lines_searched) == (last.runs_total, last.lines_total)
    assert last.lines_total == index.counts()["log_lines"]
    whole = queries.fleet_search(index, NEEDLE, limit=1000, now=now)
    assert last.found.equals(whole)
    first_three = list(queries.fleet_search_progress(index, NEEDLE, limit=3, now=now))[-1]
    assert first_three.done and first_three.runs_searched < first_three.runs_total
    assert list(first_three.found["run_id"]) == list(whole["run_id"][:3])


def test_the_search_component_says_how_far_it_got_and_shows_text_as_text(fleet, monkeypatch):
    """Outside a server session the search runs at once: its last state is shown; a partial one
    (as the page shows it while the worker reads on) says it is still searching."""
    from dashboard.components.fleet_search import FleetSearch
    from dashboard.config import Config
    from dashboard.hub import Hub
    from dashboard.store import Store

    folder, index, now = fleet
    store = Store(index, Hub(), Config())
    search = FleetSearch(store, RunFilter, text="deadlock <b>")
    assert search.progress.done and "No run printed “deadlock &lt;b&gt;”" in search.results.object
    search.text = NEEDLE
    assert search.progress.done and "Searching" not in search.results.object
    assert search.results.object.count("<tr>") == queries.SEARCH_PAGE_RUNS // 50 + len(search.progress.found.head(50))
    monkeypatch.setattr(queries, "SEARCH_FIRST_CHUNK_LINES", 100)
    states = list(queries.fleet_search_progress(index, NEEDLE, limit=51))
    partial = next(state for state in states if not state.done and len(state.found))
    search._show(search._asked_number, partial)
    assert f"Searching… {partial.runs_searched:,} of {partial.runs_total:,} runs' logs so far" in search.results.object
    assert "so far, newest first" in search.results.object
    search._show(search._asked_number - 1, states[-1])  # an older search's answer is not shown
    assert "Searching…" in search.results.object


@pytest.mark.parametrize("ingested", ["oldest runs first", "newest runs first"])
def test_a_sweep_of_the_index_finds_what_chunks_of_runs_find_whatever_the_ingest_order(tmp_path, monkeypatch,
                                                                                      ingested):
    """Once the runs left fill most of the index's stretch their logs lie in, the search sweeps it
    by ranges of log ids instead of reading chunks of runs: the same page, the same counts (grep's),
    rows that stay where they are, and a search that still stops once it has its page."""
    spool, rng, now = tmp_path / "spool", random.Random(7), utcnow()
    writer = SpoolWriter(spool, "sweep")
    hours = range(59, -1, -1) if ingested == "oldest runs first" else range(60)
    age = {}
    for k, i in enumerate(hours):  # runs' logs are read (and numbered) in the order of their ids
        run_id, age[f"s-{k:02d}"] = f"s-{k:02d}", i
        writer.status(run_id, f"Task_{i % 3}", "SUCCESS", trigger_time=now - dt.timedelta(hours=i))
        for stream in ("stdout", "stderr"):
            writer.append_log(run_id, stream, "".join(rng.choice(LINES).format(n=rng.randrange(1000)) + "\n"
                                                      for _ in range(rng.randrange(1, 40))))
    index = ingest(tmp_path)
    try:
        monkeypatch.setattr(queries, "SEARCH_FIRST_CHUNK_LINES", 50)
        monkeypatch.setattr(queries, "SEARCH_CHUNK_MAX_LINES", 120)
        swept = []
        sweep = queries._sweep
        monkeypatch.setattr(queries, "_sweep", lambda *args: swept.append(sweep(*args)) or swept[-1])
        states = list(queries.fleet_search_progress(index, NEEDLE, limit=1000, now=now))
        assert any(s is not None for s in swept), "the search never swept"
        for before, after in zip(states, states[1:]):
            assert list(after.found["run_id"][:len(before.found)]) == list(before.found["run_id"])
            assert before.runs_searched < after.runs_searched and before.lines_searched < after.lines_searched
        assert [state.done for state in states] == [False] * (len(states) - 1) + [True]
        assert (states[-1].runs_searched, states[-1].lines_searched) == (states[-1].runs_total,
                                                                          states[-1].lines_total)
        pattern = re.compile(re.escape(NEEDLE), re.IGNORECASE)
        by_grep = expected(tmp_path, index, now, pattern, RunFilter())
        found = states[-1].found
        assert dict(zip(found["run_id"], zip(found["stdout_matches"], found["stderr_matches"]))) == by_grep
        assert list(found["run_id"]) == sorted(by_grep, key=age.get)  # newest first
        monkeypatch.setattr(queries, "_sweep", lambda *args: None)  # chunks of runs only
        assert queries.fleet_search(index, NEEDLE, limit=1000, now=now).equals(found)
        monkeypatch.setattr(queries, "_sweep", sweep)
        for offset in (0, 5):
            page = queries.fleet_search(index, NEEDLE, limit=5, offset=offset, now=now)
            assert list(page["run_id"]) == list(found["run_id"][offset:offset + 5])
        first_five = list(queries.fleet_search_progress(index, NEEDLE, limit=5, now=now))[-1]
        assert first_five.done and first_five.runs_searched < first_five.runs_total
    finally:
        index.close()
