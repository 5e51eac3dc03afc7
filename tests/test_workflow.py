"""Workflow files: YAML and TOML loading, schedules, validation messages, and the demo workflow."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from dashboard.workflow import (
    DEFAULT_AGENTS, WorkflowError, dependency_graph, load_workflow, parse_schedule, topological_order,
)

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo_workflow.yaml"

YAML = """\
name: nightly
schedule: every 2m
agents: {solo: 3}
tasks:
  Fetch:
    group: billing
    command: "{python} fetch.py --since '{yesterday}'"
    description: Fetches orders.
  Invoice:
    group: billing
    depends_on: [Fetch]
    command: echo invoice
"""

TOML = """\
name = "nightly"
schedule = 45

[tasks.Fetch]
group = "billing"
command = "echo fetch"

[tasks.Invoice]
depends_on = ["Fetch"]
command = "echo invoice"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_workflow_loads_with_python_substituted_and_other_braces_kept(tmp_path):
    workflow = load_workflow(write(tmp_path, "flow.yaml", YAML))
    assert workflow.name == "nightly"
    assert workflow.schedule_seconds == 120
    assert workflow.agents == {"solo": 3}
    assert workflow.base_dir == tmp_path.resolve()
    fetch, invoice = workflow.tasks["Fetch"], workflow.tasks["Invoice"]
    assert fetch.command == f"{shlex.quote(sys.executable)} fetch.py --since '{{yesterday}}'"
    assert (fetch.group, fetch.depends_on, fetch.description) == ("billing", (), "Fetches orders.")
    assert (invoice.group, invoice.depends_on, invoice.description) == ("billing", ("Fetch",), None)


def test_toml_workflow_loads_with_default_agents_and_name(tmp_path):
    workflow = load_workflow(write(tmp_path, "flow.toml", TOML))
    assert workflow.schedule_seconds == 45
    assert workflow.agents == DEFAULT_AGENTS == {"agent-1": 2, "agent-2": 2, "agent-3": 1}
    assert workflow.tasks["Invoice"].depends_on == ("Fetch",)
    assert workflow.tasks["Invoice"].group is None
    assert topological_order(workflow) == ["Fetch", "Invoice"]
    nameless = load_workflow(write(tmp_path, "my_flow.yml", "tasks: {A: {command: 'true'}}"))
    assert nameless.name == "my_flow"
    assert nameless.schedule_seconds == 30


@pytest.mark.parametrize("text, seconds", [
    ("every 30s", 30), ("every 30 s", 30), ("every 2m", 120), ("every 1h", 3600),
    ("every 1.5 minutes", 90), ("10", 10), (12, 12), (0.5, 0.5),
])
def test_schedule_parsing(text, seconds):
    assert parse_schedule(text) == seconds


@pytest.mark.parametrize("text", ["sometimes", "every", "every 0s", -5, "every 3 days", True])
def test_bad_schedules_are_refused(text):
    with pytest.raises(WorkflowError, match="bad schedule"):
        parse_schedule(text)


def test_unknown_dependency_names_both_tasks(tmp_path):
    path = write(tmp_path, "flow.yaml", "tasks:\n  A: {command: 'true'}\n  B: {command: 'true', depends_on: [X]}\n")
    with pytest.raises(WorkflowError) as error:
        load_workflow(path)
    assert "task 'B' depends on unknown task 'X'" in str(error.value)
    assert str(path) in str(error.value)


def test_cycle_error_names_the_cycle(tmp_path):
    text = ("tasks:\n  A: {command: 'true', depends_on: [C]}\n  B: {command: 'true', depends_on: [A]}\n"
            "  C: {command: 'true', depends_on: [B]}\n  D: {command: 'true', depends_on: [A]}\n")
    with pytest.raises(WorkflowError, match="dependency cycle: A -> B -> C -> A"):
        load_workflow(write(tmp_path, "flow.yaml", text))
    with pytest.raises(WorkflowError, match="dependency cycle: Self -> Self"):
        load_workflow(write(tmp_path, "self.yaml", "tasks: {Self: {command: 'true', depends_on: [Self]}}"))


@pytest.mark.parametrize("name, text, message", [
    ("missing.yaml", None, "workflow file not found"),
    ("broken.yaml", "tasks: [unclosed", "cannot parse workflow file .*broken.yaml"),
    ("broken.toml", "tasks = {", "cannot parse workflow file .*broken.toml"),
    ("flow.json", "{}", "unknown workflow format"),
    ("empty.yaml", "", "must be a mapping"),
    ("notasks.yaml", "schedule: every 1m", "'tasks' must map"),
    ("nocommand.yaml", "tasks: {A: {group: g}}", "task 'A' has no command"),
    ("blank.yaml", "tasks: {A: {command: '  '}}", "task 'A' has no command"),
    ("typo.yaml", "tasks: {A: {command: x, depends-on: [B]}}", "task 'A' has unknown key.*'depends-on'"),
    ("agents.yaml", "agents: {a: 0}\ntasks: {A: {command: x}}", "agent 'a' needs a whole number"),
])
def test_unusable_files_get_clear_messages(tmp_path, name, text, message):
    path = tmp_path / name if text is None else write(tmp_path, name, text)
    with pytest.raises(WorkflowError, match=message):
        load_workflow(path)


def test_demo_workflow_loads_acyclic_with_the_promised_shape():
    workflow = load_workflow(DEMO)
    assert workflow.schedule_seconds == 30
    assert workflow.agents == {"agent-1": 2, "agent-2": 2, "agent-3": 1}
    assert 12 <= len(workflow.tasks) <= 16
    groups = {task.group for task in workflow.tasks.values()}
    assert {"billing", "etl", "reporting"} <= groups
    graph = dependency_graph(workflow)
    for upstream, downstream in [("Fetch_Orders", "Generate_Invoice"), ("Generate_Invoice", "Send_Email_Invoice"),
                                 ("Extract_Events", "Clean_Events"), ("Extract_Users", "Clean_Events"),
                                 ("Clean_Events", "Load_Warehouse"), ("Load_Warehouse", "Build_Aggregates"),
                                 ("Build_Aggregates", "Daily_Report"), ("Generate_Invoice", "Daily_Report")]:
        assert graph.has_edge(upstream, downstream)
    order = topological_order(workflow)
    assert sorted(order) == sorted(workflow.tasks)
    assert all(order.index(up) < order.index(down) for up, down in graph.edges)
    for task in workflow.tasks.values():
        assert task.command.startswith(shlex.quote(sys.executable) + " demo_task.py")
    assert (workflow.base_dir / "demo_task.py").is_file()
