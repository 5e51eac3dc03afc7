"""The tasks table below the graph: its rows follow the store, the selected task stays marked."""

from __future__ import annotations

from dashboard.components.tasks_table import TasksTable
from dashboard.config import Config
from dashboard.hub import Hub
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.spool import SpoolWriter
from dashboard.store import Store


def test_a_live_update_of_the_rows_keeps_the_selected_task(tmp_path):
    """Panel clears a remotely paged table's selection when its rows are replaced; the table took
    that for the user's and deselected the task, in the graph too (seen as a flaky Chromium test
    of /tasks?task=…, whose label went missing when a run arrived after the first rows)."""
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.define_task("extract", "etl")
    writer.define_task("load", "etl", depends_on=["extract"])
    writer.status("r-1", "extract", "SUCCESS", agent="agent-1", exit_code=0)
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, tmp_path / "spool")
    try:
        ingestor.catch_up()
        table = TasksTable(store=Store(index, Hub(), Config(spool=tmp_path / "spool")), task="load")
        row = table.table.value["task"].tolist().index("load")
        assert table.table.selection == [row]
        writer.status("r-2", "load", "RUNNING", agent="agent-1")
        ingestor.catch_up()
        table.refresh()  # what a hub delivery of that run does
        assert table.task == "load" and table.table.selection == [row]
        assert table.table.value.set_index("task").loc["load", "last status"] == "RUNNING"
        table.table.selection = []  # the user's own deselection still deselects
        assert table.task == ""
    finally:
        index.close()
