"""The dependency graph's logic on hand-built DAGs: layering, blocked tasks, the root cause
of a cascade, the critical path, bad definitions, and status colours."""

from __future__ import annotations

import networkx as nx

from dashboard.graph import (LISTED_CYCLES, NO_RUNS_COLOR, Hold, blocked_tasks, waiting_text, cascade_edges, critical_path, dependency_graph,
                             layered_layout, layers, neighbourhood, root_causes, status_color)
from dashboard.statuses import COLORS

# Fetch → Generate → Send, Fetch → Reconcile, Extract → Load → Report ← Generate
DEMO = [("Fetch", "billing", []), ("Generate", "billing", ["Fetch"]), ("Send", "billing", ["Generate"]),
        ("Reconcile", "billing", ["Fetch"]), ("Extract", "etl", []), ("Load", "etl", ["Extract"]),
        ("Report", "reporting", ["Load", "Generate"])]


def test_layers_put_every_upstream_left_of_its_downstreams():
    task_graph = dependency_graph(DEMO)
    layer = layers(task_graph)
    assert layer == {"Fetch": 0, "Extract": 0, "Generate": 1, "Reconcile": 1, "Load": 1, "Send": 2, "Report": 2}
    position = layered_layout(task_graph)
    for upstream, downstream in task_graph.graph.edges:
        assert position[upstream][0] < position[downstream][0]
    column_1 = sorted((y, n) for n, (x, y) in position.items() if x == 1)
    assert len({y for y, _ in column_1}) == 3, "no two tasks on one spot"


def test_the_layout_untangles_a_crossing():
    # a1 → b2 and a2 → b1 cross if each column keeps name order; one sweep uncrosses them.
    task_graph = dependency_graph([("a1", "g", []), ("a2", "g", []), ("b1", "g", ["a2"]), ("b2", "g", ["a1"])])
    y = {n: p[1] for n, p in layered_layout(task_graph).items()}
    assert (y["a1"] > y["a2"]) == (y["b2"] > y["b1"])


def test_tasks_seen_only_in_runs_are_drawn_without_dependencies_when_none_is_defined():
    task_graph = dependency_graph([], seen=[("Lone", None), ("Cron", "ops")], seen_total=5)
    graph = task_graph.graph
    assert [(n, graph.nodes[n]["defined"], graph.nodes[n]["group"]) for n in graph] == \
        [("Lone", False, None), ("Cron", False, "ops")]
    assert not graph.edges and not task_graph.problems
    assert (task_graph.undefined_with_runs, task_graph.undefined_total) == (["Lone", "Cron"], 5)


def test_beside_definitions_tasks_seen_only_in_runs_are_named_not_drawn():
    task_graph = dependency_graph([("D", "g", ["Ghost"])], seen=[("Ghost", "ops"), ("Lone", None)])
    graph = task_graph.graph
    assert set(graph) == {"D", "Ghost"} and graph.nodes["Ghost"]["group"] == "ops", "an upstream's runs give its group"
    assert task_graph.problems == ["'D' depends on 'Ghost', which is not defined"]
    assert (task_graph.undefined_with_runs, task_graph.undefined_total) == (["Ghost", "Lone"], 2)


def test_unknown_upstreams_and_cycles_are_named_not_raised():
    task_graph = dependency_graph([("A", "g", ["B"]), ("B", "g", ["C"]), ("C", "g", ["A"]), ("D", "g", ["Ghost"]),
                                   ("E", "g", ["E"])])
    assert "'D' depends on 'Ghost', which is not defined" in task_graph.problems
    cycles = [p for p in task_graph.problems if p.startswith("cycle: ")]
    assert len(cycles) == 2 and any(p == "cycle: E → E" for p in cycles)
    assert any(set(p.removeprefix("cycle: ").split(" → ")) == {"A", "B", "C"} for p in cycles)
    assert task_graph.graph.nodes["Ghost"]["defined"] is False
    assert set(layers(task_graph)) == set(task_graph.graph), "every task still gets a column"


def test_many_cycles_are_counted_past_the_first_ten_and_leave_a_dag():
    # 1,500 tasks that each depend on themselves (issue 23: 30 s, one graph copy per cycle,
    # and 1,500 lines above the graph), and one cycle through 3,000 tasks.
    task_graph = dependency_graph([(f"t{i:04}", "g", [f"t{i:04}"]) for i in range(1500)])
    assert task_graph.problems == [f"cycle: t{i:04} → t{i:04}" for i in range(LISTED_CYCLES)] + [
        "… and 1,490 more cycles"]
    assert sorted(task_graph.cycle_edges) == [(f"t{i:04}", f"t{i:04}") for i in range(1500)]
    assert set(layers(task_graph)) == set(task_graph.graph)

    ring = dependency_graph([(f"r{i}", "g", [f"r{(i + 1) % 3000}"]) for i in range(3000)])
    assert ring.problems == ["cycle: r0 → r2999 → r2998 → r2997 → … 2,992 more … → r4 → r3 → r2 → r1 → r0"]
    assert len(ring.cycle_edges) == 1

    tangled = nx.gnm_random_graph(400, 2000, seed=7, directed=True)
    rows = [(str(n), "g", [str(up) for up in tangled.predecessors(n)]) for n in tangled]
    task_graph = dependency_graph(rows)
    dag = task_graph.graph.copy()
    dag.remove_edges_from(task_graph.cycle_edges)
    assert nx.is_directed_acyclic_graph(dag) and task_graph.cycle_edges
    assert all(nx.has_path(task_graph.graph, b, a) for a, b in task_graph.cycle_edges), "each closes a cycle"
    assert len([p for p in task_graph.problems if p.startswith("cycle: ")]) == LISTED_CYCLES


def test_a_task_waiting_on_a_running_or_failed_upstream_is_blocked():
    graph = dependency_graph(DEMO).graph
    status = {"Fetch": "SUCCESS", "Generate": "RUNNING", "Send": "ACTIVE", "Reconcile": "ACTIVE",
              "Extract": "FAILED", "Load": "ACTIVE", "Report": "ACTIVE"}
    blocked = blocked_tasks(graph, status)
    assert blocked == {"Send": [Hold("Generate")], "Load": [Hold("Extract")],
                       "Report": [Hold("Extract", via="Load"), Hold("Generate")]}, \
        "Reconcile waits on a success: nothing holds it; Report is held by Load's head, not by Load"
    assert waiting_text(blocked["Report"]) == "waiting on Extract, via Load; Generate"


def test_waiting_names_the_head_of_a_chain_of_waiting_or_queued_upstreams():
    graph = nx.DiGraph([("A", "B"), ("B", "C"), ("C", "D"), ("X", "D"), ("Q", "C")])
    status = {"A": "TERMINATED", "B": "ACTIVE", "C": "TRIGGER", "D": "ACTIVE", "X": "SUCCESS", "Q": "STARTED"}
    assert blocked_tasks(graph, status) == {"B": [Hold("A")], "D": [Hold("A", via="C"), Hold("Q", via="C")]}
    status["A"] = "SUCCESS"  # a chain whose head is done holds nothing: no label
    assert blocked_tasks(graph, status) == {"D": [Hold("Q", via="C")]}


def test_the_root_cause_of_a_cascade_is_the_earliest_failed_ancestor():
    graph = nx.DiGraph([("A", "B"), ("B", "C"), ("C", "D"), ("A", "E"), ("X", "Y")])
    status = {"A": "FAILED", "B": "TERMINATED", "C": "ACTIVE", "D": "IDLE", "E": "SUCCESS",
              "X": "TERMINATED", "Y": "ACTIVE"}
    assert root_causes(graph, status) == {"A": 3, "X": 1}, "B failed because of A; E had succeeded"
    assert sorted(cascade_edges(graph, status)) == [("A", "B"), ("B", "C"), ("C", "D"), ("X", "Y")]


def test_the_critical_path_is_the_longest_chain_of_median_durations():
    graph = dependency_graph(DEMO).graph
    seconds = {"Fetch": 5, "Generate": 30, "Send": 2, "Reconcile": 50, "Extract": 10, "Load": 20, "Report": 8}
    assert critical_path(graph, seconds) == (["Fetch", "Reconcile"], 55.0)
    seconds["Reconcile"] = 1
    assert critical_path(graph, seconds) == (["Fetch", "Generate", "Report"], 43.0)
    assert critical_path(nx.DiGraph(), {}) == ([], 0.0)


def test_a_neighbourhood_follows_dependencies_both_ways():
    graph = dependency_graph(DEMO).graph
    assert neighbourhood(graph, "Generate", 1) == {"Generate", "Fetch", "Send", "Report"}
    assert neighbourhood(graph, "Generate", 2) == {"Generate", "Fetch", "Send", "Report", "Reconcile", "Load"}


def test_nodes_take_the_status_colours():
    assert status_color("FAILED") == COLORS["FAILED"] and status_color("RUNNING") == COLORS["RUNNING"]
    assert status_color(None) == NO_RUNS_COLOR == status_color("")


def test_root_causes_are_the_failed_tasks_without_a_failed_ancestor_on_random_graphs_with_cycles():
    # Found in one pass over the strongly connected components; checked against the definition.
    import random

    for seed in range(300):
        pick = random.Random(seed)
        graph = nx.gnm_random_graph(pick.randint(1, 60), pick.randint(0, 150), seed=seed, directed=True)
        graph.add_edges_from((n, n) for n in graph if pick.random() < 0.1)
        status = {n: pick.choice(["FAILED", "SUCCESS", "ACTIVE", "TERMINATED", "RUNNING"]) for n in graph}
        failed = {n for n in graph if status[n] in ("FAILED", "TERMINATED")}
        expected = {n: sum(1 for d in nx.descendants(graph, n) if status[d] != "SUCCESS")
                    for n in failed if not failed & nx.ancestors(graph, n)}
        assert root_causes(graph, status) == expected, f"seed {seed}"


def demo_stats(tmp_path):
    """The task stats of DEMO's definitions, ingested from a spool of their own."""
    from builders import ingest

    from dashboard import queries
    from dashboard.spool import SpoolWriter

    writer = SpoolWriter(tmp_path / "spool", "test")
    for task, group, upstream in DEMO:
        writer.define_task(task, group, depends_on=upstream)
    index = ingest(tmp_path)
    try:
        return queries.task_stats(index)
    finally:
        index.close()


def test_each_arrowhead_sent_to_the_browser_points_downstream(tmp_path):
    """Read from the Bokeh model the page gets (HoloViews takes a Points angle in degrees)."""
    import math

    from dashboard.components.graph_marks import renderer_of
    from dashboard.components.graph_plot import render
    from dashboard.graph_view import shown_graph

    stats = demo_stats(tmp_path)
    shown = shown_graph(dependency_graph(DEMO), stats, task="", hops=0, group="", search="", expanded=set())
    nodes, edges = shown.frames(None)
    plot = render((nodes, edges)).plot
    arrows = renderer_of(plot, "Points", "Arrows").data_source.data
    at = nodes.set_index("task")
    assert len(arrows["angle"]) == len(edges) == 6
    for (_, edge), angle in zip(edges.iterrows(), arrows["angle"]):
        pointing = (-math.sin(angle), math.cos(angle))  # Bokeh's triangle points up at angle 0
        towards = (at.loc[edge["target"], "x"] - at.loc[edge["source"], "x"],
                   at.loc[edge["target"], "y"] - at.loc[edge["source"], "y"])
        assert pointing[0] * towards[0] + pointing[1] * towards[1] > 0.5 * math.hypot(*towards), \
            f"{edge['source']} → {edge['target']}: the arrowhead points {pointing}"


def test_a_new_layout_goes_into_the_drawn_plot_fitted_to_the_view(tmp_path):
    """Only the first drawing builds a plot: a group or filter chosen later is sent into it, its
    view (and Reset's) fitted to the new nodes; the browser's tap selection of the old nodes is
    cleared without counting as a click; new colours keep the user's zoom."""
    from dashboard.components.graph_marks import renderer_of
    from dashboard.components.graph_plot import GraphPlot, fitted, render
    from dashboard.graph_view import shown_graph

    stats = demo_stats(tmp_path)
    view = dict(task="", hops=0, search="", expanded=set())
    everything = shown_graph(dependency_graph(DEMO), stats, group="", **view).frames(None)
    billing = shown_graph(dependency_graph(DEMO), stats, group="billing", **view).frames(None)
    clicks = []
    plot = GraphPlot(on_select=clicks.append)
    plot.show(render(everything))
    figure = plot.rendered.plot.state
    points = renderer_of(plot.rendered.plot, "Points", "Points").data_source
    points.selected.indices = [1]  # as a tap in the browser sets it
    assert clicks == [everything[0]["task"].iloc[1]]

    plot.update(billing, fit=True)
    assert plot.rendered.plot.state is figure, "the plot drawn, not a new one"
    assert sorted(points.data["task"]) == sorted(billing[0]["task"]) == ["Fetch", "Generate", "Reconcile", "Send"]
    (x0, x1), (y0, y1) = fitted(billing[0])
    assert (figure.x_range.start, figure.x_range.end, figure.y_range.start, figure.y_range.end) == (x0, x1, y0, y1)
    assert (figure.x_range.reset_start, figure.x_range.reset_end) == (x0, x1), "Reset returns to the new view"
    assert (figure.y_range.reset_start, figure.y_range.reset_end) == (y0, y1)
    assert points.selected.indices == [] and len(clicks) == 1, "cleared, not a click on nothing"

    figure.x_range.update(start=0.5, end=1.5)  # the user zooms in
    plot.update(billing)  # new colours
    assert (figure.x_range.start, figure.x_range.end) == (0.5, 1.5), "the zoom stays"
