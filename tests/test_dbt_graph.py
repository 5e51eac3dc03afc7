"""The graph's analysis on a dbt-shaped project of 1,000 tasks (folder groups, long dotted
names, four cycles with cascading failures and retries that keep their trigger time), through
the real spool and a real DuckDB index; every expectation is worked out here with networkx
from what was written, not from the code under test."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import networkx as nx
import pytest
from builders import ingest, write_dbt_spool

from dashboard import queries
from dashboard.graph_view import analyse
from dashboard.graph import HOLDING, PASSING, dependency_graph, layered_layout, wrap_rows
from dashboard.graph_groups import GROUP_MARK, group_path, overview

NOW = queries.utcnow().replace(microsecond=0)


@pytest.fixture(scope="module")
def dbt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dbt")
    project = write_dbt_spool(folder / "spool", now=NOW)
    index = ingest(folder)
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


def test_the_layout_puts_every_task_in_a_cell_of_its_own_upstream_left(dbt):
    project, _, graph = dbt
    task_graph = dependency_graph(project.definitions)
    position = layered_layout(task_graph)
    assert len(set(position.values())) == len(position) == 1000, "no two tasks share a spot"
    assert all(position[a][0] < position[b][0] for a, b in graph.edges)
    column_heights = Counter(x for x, _ in position.values())
    assert max(column_heights.values()) <= wrap_rows(1000) < 280, "the 300 sources wrap into several columns"


def test_the_overview_is_the_graph_of_groups(dbt):
    project, _, graph = dbt
    task_graph = dependency_graph(project.definitions)
    group = {task: g for task, g, _ in project.definitions}
    top = {task: g.split("/")[0] for task, g in group.items()}
    expected = nx.quotient_graph(graph, [{t for t in graph if top[t] == g} for g in set(top.values())])
    named = {frozenset(block): GROUP_MARK + top[next(iter(block))] for block in expected}
    expected_edges = {(named[a], named[b]) for a, b in expected.edges if a != b}

    view = overview(task_graph, set(graph), set())
    assert set(view.task_graph.graph) == set(named.values())
    assert set(view.task_graph.graph.edges) == expected_edges
    assert sum(len(m) for m in view.members.values()) == 1000

    opened = overview(task_graph, set(graph), {"marts"})
    marts = {GROUP_MARK + "/".join(group[t].split("/")[:2]) for t in graph if top[t] == "marts"}
    assert set(opened.task_graph.graph) == (set(named.values()) - {GROUP_MARK + "marts"}) | marts
    position = layered_layout(opened.task_graph)
    assert len(set(position.values())) == len(position)


def test_group_names_form_a_hierarchy_on_slashes_and_dots():
    assert group_path("marts/finance/core") == ["marts", "marts/finance", "marts/finance/core"]
    assert group_path("billing.v2") == ["billing", "billing.v2"]
    assert group_path("etl") == ["etl"] and group_path(None) == []
    # an OpenLineage namespace is often a URI: its scheme and host are one level
    assert group_path("postgres://db.example.com:5432") == ["postgres://db.example.com:5432"]
    assert group_path("airflow://prod.example.com/etl.daily") == \
        ["airflow://prod.example.com", "airflow://prod.example.com/etl", "airflow://prod.example.com/etl.daily"]


def test_no_edge_passes_over_a_task_it_does_not_join(dbt):
    """The whole graph drawn at once: every piece of every edge keeps clear of the marks of the
    tasks it does not join (a mark's radius is at most 0.3 of a cell)."""
    import numpy as np
    import pandas as pd

    from dashboard.components.graph_plot import edge_frames

    project, _, graph = dbt
    position = layered_layout(dependency_graph(project.definitions))
    assert all(x == int(x) and y == int(y) for x, y in position.values()), "tasks on whole columns and rows"
    nodes = pd.DataFrame([(task, x, y) for task, (x, y) in position.items()], columns=["task", "x", "y"])
    edges = pd.DataFrame(list(graph.edges), columns=["source", "target"]).assign(color="#94a3b8", width=1.0,
                                                                                  edge_alpha=1.0)
    lines, heads = edge_frames(nodes, edges)
    assert len(heads) == len(edges)
    centres = nodes[["x", "y"]].to_numpy(float)
    at = dict(zip(nodes["task"], map(tuple, centres)))
    grazed = []
    # Each piece belongs to the edge whose ends it shares: walk the pieces edge by edge, in order.
    pieces = iter(lines[["x0", "y0", "x1", "y1"]].to_numpy(float))
    for source, target in graph.edges:
        ends = {at[source], at[target]}
        point = at[source]
        while point != at[target]:
            x0, y0, x1, y1 = next(pieces)
            assert (x0, y0) == point, "an edge's pieces join up"
            a, b = np.array([x0, y0]), np.array([x1, y1])
            t = np.clip((centres - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
            near = np.hypot(*(a + t[:, None] * (b - a) - centres).T) < 0.35
            grazed += [(source, target, tuple(c)) for c in centres[near] if tuple(c) not in ends]
            point = (x1, y1)
    assert not grazed, f"{len(grazed)} edges pass over a task they do not join, e.g. {grazed[:3]}"
