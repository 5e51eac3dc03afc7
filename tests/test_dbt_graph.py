"""The graph's analysis on a dbt-shaped project of 1,000 tasks (folder groups, long dotted
names, four cycles with cascading failures and retries that keep their trigger time), through
the real spool and a real DuckDB index; every expectation is worked out here with networkx
from what was written, not from the code under test."""

from __future__ import annotations

import datetime as dt

import networkx as nx
import pytest

from dashboard import queries
from dashboard.graph import HOLDING, PASSING, dependency_graph
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.pages.dependency_graph import analyse
from dashboard.synthetic import write_dbt_spool

NOW = queries.utcnow().replace(microsecond=0)


@pytest.fixture(scope="module")
def dbt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dbt")
    project = write_dbt_spool(folder / "spool", now=NOW)
    index = Index(folder / "index.duckdb")
    Ingestor(index, folder / "spool").catch_up()
    tasks = queries.tasks(index)
    task_graph = dependency_graph(zip(tasks["task"], tasks["grp"], tasks["depends_on"]))
    state = analyse(task_graph, queries.task_stats(index, dt.timedelta(hours=24), now=NOW))
    expected = nx.DiGraph([(up, task) for task, _, ups in project.definitions for up in ups])
    expected.add_nodes_from(task for task, _, _ in project.definitions)
    yield project, state, expected
    index.close()


def test_the_fixture_is_dbt_shaped(dbt):
    project, _, graph = dbt
    assert graph.number_of_nodes() == 1000 and graph.number_of_edges() > 1000
    assert len({group for _, group, _ in project.definitions}) > 100
    assert max(len(task) for task, _, _ in project.definitions) >= 70
    retried = [r for r in project.runs if sum(1 for o in project.runs if (o.task, o.trigger) == (r.task, r.trigger)) > 1]
    assert len(retried) >= 40, "retries that keep their first try's trigger time"


def test_every_task_shows_its_latest_run(dbt):
    project, state, _ = dbt
    assert state.status == project.latest_status()


def test_root_causes_and_what_they_block_match_networkx(dbt):
    project, state, graph = dbt
    status = project.latest_status()
    failed = {n for n in graph if status[n] in ("FAILED", "TERMINATED")}
    expected = {n: sum(1 for d in nx.descendants(graph, n) if status[d] != "SUCCESS")
                for n in failed if not failed & nx.ancestors(graph, n)}
    assert expected and state.causes == {n: c for n, c in expected.items() if c}


def test_waiting_names_the_running_or_failed_heads_of_each_chain(dbt):
    project, state, graph = dbt
    status = project.latest_status()
    expected = {}
    for task in graph:
        if status[task] != "ACTIVE":
            continue
        # the upstreams reached through tasks that only wait or are queued
        passing = graph.subgraph([n for n in graph if status[n] in PASSING] + [task]).reverse()
        reached = nx.descendants(passing, task) | {task}
        heads = {up for n in reached for up in graph.predecessors(n) if status[up] in HOLDING}
        if heads:
            expected[task] = heads
    assert expected and {task: {h.upstream for h in holds} for task, holds in state.blocked.items()} == expected
    chained = [(task, h) for task, holds in state.blocked.items() for h in holds if h.via]
    assert chained, "some tasks wait on a chain"
    for task, hold in chained:
        assert graph.has_edge(hold.via, task) and status[hold.via] in PASSING
        assert nx.has_path(graph, hold.upstream, hold.via)
