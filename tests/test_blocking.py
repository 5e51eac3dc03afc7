"""Root causes and blast radius within a cycle (dashboard.blocking): the runs page's `blocked`,
`blocked_by` and `blocks`, and `taskdash why`."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import networkx as nx
import pytest
from builders import ingest

from dashboard import queries
from dashboard.blocking import Cycle, CycleRun
from dashboard.spool import SpoolWriter

CYCLE = dt.datetime(2026, 11, 28, 12, 0)


def fixture_dag() -> tuple[nx.DiGraph, dict[str, str]]:
    """Two independent failures, each holding its own subtree (20 tasks each, some through two
    paths), a task held by both, runs still going or done beside them, and what each run is."""
    graph, status = nx.DiGraph(), {}
    for root in ("Extract_A", "Extract_B"):
        status[root] = "FAILED"
        previous = [root]
        for level in range(5):  # four tasks a level, each depending on one or two of the level above
            names = [f"{root}_L{level}_{i}" for i in range(4)]
            for i, name in enumerate(names):
                graph.add_edge(previous[i % len(previous)], name)
                if i % 2 and len(previous) > 1:
                    graph.add_edge(previous[(i + 1) % len(previous)], name)
                status[name] = "ACTIVE" if i % 3 else "TERMINATED"  # left waiting, or ended unstarted
            previous = names
    graph.add_edge("Extract_A_L4_0", "Join_AB")
    graph.add_edge("Extract_B_L4_0", "Join_AB")
    status["Join_AB"] = "ACTIVE"
    for name, upstream, state in [("Clean", None, "SUCCESS"), ("Report", "Clean", "RUNNING"),
                                  ("Audit", "Report", "ACTIVE")]:  # waiting on a run still going
        graph.add_node(name)
        if upstream:
            graph.add_edge(upstream, name)
        status[name] = state
    return graph, status


@pytest.fixture(scope="module")
def blocked_world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blocking")
    graph, status = fixture_dag()
    writer = SpoolWriter(folder / "spool", "test")
    for task in graph:
        writer.define_task(task, "etl", depends_on=sorted(graph.predecessors(task)))
    for task, state in status.items():
        started = state in ("FAILED", "SUCCESS", "RUNNING")
        writer.status(f"run-{task}", task, "RUNNING" if started else "ACTIVE", trigger_time=CYCLE, ts=CYCLE)
        if state != "ACTIVE":
            writer.status(f"run-{task}", task, state, trigger_time=CYCLE, ts=CYCLE + dt.timedelta(minutes=3))
    index = ingest(folder)
    yield folder, index, graph, status
    index.close()


def test_every_blocked_run_names_its_right_root_and_each_root_counts_what_it_blocks(blocked_world):
    folder, index, graph, status = blocked_world
    page = queries.runs_page(index, limit=1000).set_index("run_id")
    expected_roots = {task: {root for root in ("Extract_A", "Extract_B") if task in nx.descendants(graph, root)}
                      for task in graph}
    blocked = {task for task, roots in expected_roots.items() if roots}
    assert len(blocked) == 41, "40 tasks under the two failures, and the one under both"
    for task in graph:
        row = page.loc[f"run-{task}"]
        roots = expected_roots[task]
        if not roots:
            assert row["blocked"] is None and row["blocked_by"] is None, task
            continue
        first = min(roots)
        assert row["blocked_by"] == f"run-{first}", task
        direct = first in graph.predecessors(task)
        assert row["blocked"].startswith(f"upstream {first} failed"), (task, row["blocked"])
        assert ("and 1 more" in row["blocked"]) == (len(roots) == 2), task
        assert ("(via " in row["blocked"]) == (not direct), task
    assert page.loc["run-Extract_A", "blocks"] == 21 and page.loc["run-Extract_B", "blocks"] == 21
    assert page["blocks"].sum() == 42 and page.loc["run-Audit", "blocked"] is None


def test_why_prints_the_chain_up_to_the_root(blocked_world, tmp_path):
    folder, index, graph, status = blocked_world
    why = subprocess.run([sys.executable, "-m", "dashboard.cli", "why", "run-Extract_A_L3_2",
                          "--spool", str(folder / "spool"), "--index", str(tmp_path / "index.duckdb")],
                         capture_output=True, text=True, timeout=120, check=True).stdout.splitlines()
    print("\n" + "\n".join(why))
    path = nx.shortest_path(graph, "Extract_A", "Extract_A_L3_2")
    assert len(why) == len(path) + 1
    assert why[0].startswith("Extract_A_L3_2  run-Extract_A_L3_2  ")
    assert why[-2].startswith("  ← Extract_A  run-Extract_A  FAILED (started ")
    assert why[-1] == "root cause: Extract_A (run-Extract_A), which blocks 21 runs of this cycle"


def test_a_chain_of_thousands_of_failed_and_blocked_tasks_costs_no_recursion():
    tasks = [f"T{i}" for i in range(5_000)]
    runs = [CycleRun(f"r{i}", task, "FAILED" if i == 0 else "ACTIVE", None if i else CYCLE, None, None)
            for i, task in enumerate(tasks)]
    cycle = Cycle(runs, {task: [tasks[i - 1]] for i, task in enumerate(tasks) if i})
    assert cycle.blocked("T4999").reason == "upstream T0 failed (via T4998)"
    assert cycle.blocks("T0") == 4_999 and len(cycle.chain("T4999")) == 5_000
    looped = Cycle(runs[:3], {"T0": ["T2"], "T1": ["T0"], "T2": ["T1"]})  # a loop in the definitions
    assert looped.blocked("T2") is not None or looped.blocked("T1") is not None


def test_a_cycle_where_no_run_waits_holds_nothing_and_each_failure_is_its_own_root():
    runs = [CycleRun("r-a", "A", "FAILED", CYCLE, CYCLE, "boom"), CycleRun("r-b", "B", "SUCCESS", CYCLE, CYCLE, None),
            CycleRun("r-c", "C", "TERMINATED", CYCLE, CYCLE, None), CycleRun("r-e", "E", "RUNNING", CYCLE, None, None)]
    depends_on = {"B": ["A"], "C": ["B"], "D": ["A"], "E": ["C"]}
    settled = Cycle(runs, depends_on)
    assert [settled.blocked(run.task) for run in runs] == [None] * 4
    assert [settled.blocks(run.task) for run in runs] == [0] * 4
    assert [[step.run_id for step in settled.chain(run.task)] for run in runs] == [["r-a"], ["r-b"], ["r-c"], ["r-e"]]
    waiting = Cycle([*runs, CycleRun("r-d", "D", "ACTIVE", None, None, None)], depends_on)  # now one run waits
    assert waiting.blocked("D").reason == "upstream A failed" and waiting.blocks("A") == 1
    assert [step.run_id for step in waiting.chain("D")] == ["r-d", "r-a"] and waiting.blocked("E") is None


def test_kept_cycles_are_read_again_only_when_a_write_changes_their_hour_or_the_dependencies(tmp_path, monkeypatch):
    """A page's cycles are kept between writes (blocking.KeptCycles): after each write, what the
    page says of every run equals what a fresh read of its cycles says, and only the cycles of
    the hours the write changed were read again."""
    from dashboard import blocking
    from dashboard.formatting import utcnow
    from dashboard.index import Index
    from dashboard.ingest import Ingestor

    writer = SpoolWriter(tmp_path / "spool", "test")
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, tmp_path / "spool")
    now = utcnow().replace(minute=30, second=0, microsecond=0)
    cycles = [now - dt.timedelta(hours=hours) for hours in (5, 3, 1)]  # one a hour, hours apart
    writer.define_task("Extract", "etl")
    writer.define_task("Load", "etl", depends_on=["Extract"])
    for n, cycle in enumerate(cycles):
        writer.status(f"extract-{n}", "Extract", "RUNNING", trigger_time=cycle, ts=cycle)
        writer.status(f"extract-{n}", "Extract", "FAILED", trigger_time=cycle, ts=cycle + dt.timedelta(minutes=1))
        writer.status(f"load-{n}", "Load", "ACTIVE", trigger_time=cycle, ts=cycle)
    ingestor.catch_up()
    asked: list[list[dt.datetime]] = []
    real_read = blocking._read_cycles
    monkeypatch.setattr(blocking, "_read_cycles", lambda index, times, deps: asked.append(times) or real_read(
        index, times, deps))

    def page() -> dict[str, tuple]:
        runs = queries.runs_page(index, limit=100, now=now + dt.timedelta(hours=1))
        return {run_id: (blocked, blocks) for run_id, blocked, blocks in zip(runs["run_id"], runs["blocked"],
                                                                              runs["blocks"])}

    def fresh() -> dict[str, tuple]:
        """The same page with no cycle kept (as a lake index that writes reads it)."""
        kept, index.kept_cycles = index.kept_cycles, None
        try:
            return page()
        finally:
            index.kept_cycles = kept

    assert page() == fresh() and all(page()[f"load-{n}"][0] == "upstream Extract failed" for n in range(3))
    assert len(asked) == 2 and len(asked[0]) == 3, "read once, then kept (the fresh read is the second)"
    asked.clear()
    page()
    assert asked == [], "no write: nothing read again"

    # A retry of the middle cycle's Extract succeeds: only that cycle is read again.
    writer.status("extract-1b", "Extract", "RUNNING", trigger_time=cycles[1], ts=now)
    writer.status("extract-1b", "Extract", "SUCCESS", trigger_time=cycles[1], ts=now + dt.timedelta(minutes=1))
    ingestor.catch_up()
    got = page()
    assert asked == [[cycles[1]]]
    assert got == fresh() and got["load-1"] == (None, 0) and got["load-0"][0] == "upstream Extract failed"

    # New dependencies (Load depends on nothing now): every cycle is read again.
    asked.clear()
    writer.define_task("Load", "etl", depends_on=[])
    writer.define_task("Report", "etl", depends_on=["Extract"])
    ingestor.catch_up()
    got = page()
    assert len(asked) == 1 and sorted(asked[0]) == cycles and got == fresh()
    assert all(blocked is None for blocked, _ in got.values())
    writer.close()
    index.close()
