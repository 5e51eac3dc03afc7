"""Workflow files for the built-in runner: tasks, groups, commands, dependencies and a schedule.

A workflow is a YAML (.yaml, .yml) or TOML (.toml) file::

    name: demo
    schedule: every 30s          # or "every 2m", "every 1h", or a number of seconds
    agents: {agent-1: 2}         # agent name -> concurrent slots
    tasks:
      Fetch_Orders:
        group: billing
        command: "{python} demo_task.py --name Fetch_Orders"
      Generate_Invoice:
        group: billing
        depends_on: [Fetch_Orders]
        command: "{python} demo_task.py --name Generate_Invoice"
        description: Turns the fetched orders into invoices.

Commands are shell commands run in the workflow file's folder; ``{python}`` stands for the
interpreter running the runner, so scripts beside the workflow need no install.
"""

from __future__ import annotations

import re
import shlex
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import yaml

DEFAULT_AGENTS = {"agent-1": 2, "agent-2": 2, "agent-3": 1}
TASK_KEYS = {"group", "command", "depends_on", "description"}
WORKFLOW_KEYS = {"name", "schedule", "agents", "tasks"}
_SCHEDULE = re.compile(r"(?:every\s+)?(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)?")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


class WorkflowError(ValueError):
    """A workflow file that cannot be used; the message says which file and what is wrong."""


@dataclass(frozen=True)
class TaskSpec:
    """One task of a workflow: what to run, where it belongs and what it waits for."""

    name: str
    group: str | None
    command: str  # a shell command, {python} already replaced
    depends_on: tuple[str, ...] = ()
    description: str | None = None


@dataclass(frozen=True)
class Workflow:
    """A loaded, validated workflow: its tasks form a DAG and every dependency exists."""

    name: str
    schedule_seconds: float
    agents: dict[str, int]  # agent name -> concurrent slots
    tasks: dict[str, TaskSpec]
    base_dir: Path  # commands run here: the workflow file's folder


def parse_schedule(value: object) -> float:
    """Seconds between cycles from ``every 30s``, ``every 2m``, ``every 1h`` or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _SCHEDULE.fullmatch(str(value).strip().lower())
        if not match:
            raise WorkflowError(f"bad schedule {value!r}: write it like 'every 30s', 'every 2m' or 'every 1h'")
        seconds = float(match[1]) * _UNIT_SECONDS[(match[2] or "s")[0]]
    if seconds <= 0:
        raise WorkflowError(f"bad schedule {value!r}: the interval must be positive")
    return seconds


def load_workflow(path: str | Path) -> Workflow:
    """Read, validate and return the workflow in a YAML or TOML file; raise WorkflowError if unusable."""
    path = Path(path)
    if not path.is_file():
        raise WorkflowError(f"workflow file not found: {path}")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        elif path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        else:
            raise WorkflowError(f"{path}: unknown workflow format {path.suffix!r}: use .yaml, .yml or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise WorkflowError(f"cannot parse workflow file {path}: {exc}") from None
    try:
        return _build(data, path)
    except WorkflowError as exc:
        raise WorkflowError(f"{path}: {exc}") from None


def _build(data: object, path: Path) -> Workflow:
    if not isinstance(data, dict):
        raise WorkflowError("the workflow must be a mapping with a 'tasks' section")
    _reject_unknown_keys(data, WORKFLOW_KEYS, "the workflow")
    tasks_data = data.get("tasks")
    if not isinstance(tasks_data, dict) or not tasks_data:
        raise WorkflowError("'tasks' must map task names to their settings")
    tasks = {str(name): _task(str(name), spec) for name, spec in tasks_data.items()}
    workflow = Workflow(
        name=str(data.get("name") or path.stem),
        schedule_seconds=parse_schedule(data.get("schedule", "every 30s")),
        agents=_agents(data.get("agents")),
        tasks=tasks,
        base_dir=path.resolve().parent,
    )
    graph = dependency_graph(workflow)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return workflow
    names = [upstream for upstream, _ in cycle]
    start = names.index(min(names))  # start at the smallest name so the message is stable
    names = names[start:] + names[:start]
    raise WorkflowError("dependency cycle: " + " -> ".join([*names, names[0]]))


def _task(name: str, spec: object) -> TaskSpec:
    if not name.strip() or len(name) > 256:  # the spool's limit for task names
        raise WorkflowError(f"task name {name[:60]!r} must be 1-256 characters")
    if not isinstance(spec, dict):
        raise WorkflowError(f"task {name!r} must be a mapping with at least a 'command'")
    _reject_unknown_keys(spec, TASK_KEYS, f"task {name!r}")
    command = spec.get("command")
    if not isinstance(command, str) or not command.strip():
        raise WorkflowError(f"task {name!r} has no command")
    depends_on = spec.get("depends_on") or []
    if isinstance(depends_on, str):
        depends_on = [depends_on]
    if not isinstance(depends_on, list) or not all(isinstance(d, str) and d for d in depends_on):
        raise WorkflowError(f"task {name!r}: 'depends_on' must be a list of task names")
    group, description = spec.get("group"), spec.get("description")
    return TaskSpec(
        name=name,
        group=None if group is None else str(group),
        # str.replace, not str.format: shell commands often contain braces of their own.
        command=command.replace("{python}", shlex.quote(sys.executable)),
        depends_on=tuple(dict.fromkeys(depends_on)),
        description=None if description is None else str(description),
    )


def _agents(value: object) -> dict[str, int]:
    if value is None:
        return dict(DEFAULT_AGENTS)
    if not isinstance(value, dict) or not value:
        raise WorkflowError("'agents' must map agent names to their number of slots")
    for name, slots in value.items():
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise WorkflowError(f"agent {name!r} needs a whole number of slots of at least 1, not {slots!r}")
    return {str(name): slots for name, slots in value.items()}


def _reject_unknown_keys(mapping: dict, allowed: set[str], where: str) -> None:
    # A typo such as "depends-on" would otherwise silently drop a dependency.
    unknown = sorted(str(key) for key in mapping if key not in allowed)
    if unknown:
        raise WorkflowError(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; "
                            f"known: {', '.join(sorted(allowed))}")


def dependency_graph(workflow: Workflow) -> nx.DiGraph:
    """The tasks as a directed graph with an edge from each upstream to its downstream."""
    graph = nx.DiGraph()
    graph.add_nodes_from(workflow.tasks)
    for task in workflow.tasks.values():
        for upstream in task.depends_on:
            if upstream not in workflow.tasks:
                raise WorkflowError(f"task {task.name!r} depends on unknown task {upstream!r}")
            graph.add_edge(upstream, task.name)
    return graph


def topological_order(workflow: Workflow) -> list[str]:
    """Task names with every upstream before its downstreams; ties broken by name, so stable."""
    return list(nx.lexicographical_topological_sort(dependency_graph(workflow)))
