"""The notebooks in notebooks/ run top to bottom in a fresh kernel and show what they promise."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from dashboard.workflow import load_workflow

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PANEL_OUTPUT = "application/vnd.holoviews_exec.v0+json"


def execute(name: str) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        f"{name} is committed with outputs"
    NotebookClient(notebook, timeout=240, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if output.output_type == "error"]
    assert not errors, "\n".join(f"{e.ename}: {e.evalue}" for e in errors)
    return notebook


def outputs_of(cell) -> str:
    return json.dumps(cell.get("outputs", []))


def cell_with(notebook, source: str):
    return next(cell for cell in notebook.cells if cell.cell_type == "code" and source in cell.source)


@pytest.mark.timeout(600)
def test_the_quick_start_shows_live_components():
    notebook = execute("quickstart.ipynb")
    for source in ("store.runs_grid()", "store.run_detail(run_id)", "store.dependency_graph()"):
        assert PANEL_OUTPUT in outputs_of(cell_with(notebook, source)), f"{source} displays a Panel component"
    table = outputs_of(cell_with(notebook, 'store.runs()[["task"'))
    demo_tasks = load_workflow(NOTEBOOKS.parent / "data" / "demo_workflow.yaml").tasks
    assert sum(task in table for task in demo_tasks) >= 3, "demo runs appear in the table"
    assert "NaN" not in table and "grp" not in table and "group" in table
    removed = re.search(r"removed (\S+?)(\\n|\")", outputs_of(cell_with(notebook, "shutil.rmtree(spool.parent)")))
    assert removed and not Path(removed[1]).exists(), "the quick start leaves its temporary spool behind"


@pytest.mark.timeout(600)
def test_the_analysis_produces_its_tables_and_figures():
    notebook = execute("analysis.ipynb")
    assert "1,200 runs" in outputs_of(cell_with(notebook, "write_sample_spool(spool)"))
    for source in ("hv.Bars(per_task", "hv.BoxWhisker(", "hv.Bars(failures"):
        assert PANEL_OUTPUT in outputs_of(cell_with(notebook, source)) or "bokeh" in outputs_of(
            cell_with(notebook, source)), f"{source} draws a figure"
    failures = outputs_of(cell_with(notebook, "failures = failure_signatures(store)"))
    # Each of the sample's four error lines is one signature, numbers and quoted values masked.
    for signature in ("ERROR: connection to db-&lt;n&gt; timed out", "KeyError: '…'",
                      "ERROR: disk full on &lt;path&gt;", "PermissionError: [Errno &lt;n&gt;] &lt;path&gt;"):
        assert json.dumps(signature)[1:-1] in failures, signature
    assert "queue_wait_s" in outputs_of(cell_with(notebook, 'phases.groupby("agent")'))
