"""The live path end to end: a real command's output reaches the index while it still runs."""

from __future__ import annotations

import sys
import threading

from helpers import wait_until

from dashboard import queries
from dashboard.hub import Hub
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.runner import run_adhoc

COMMAND = """
import os, sys, time
print("first out", flush=True)
print("first err", file=sys.stderr, flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
print("second out", flush=True)
"""


def test_lines_reach_the_index_and_the_hub_while_the_command_runs(tmp_path):
    spool, gate = tmp_path / "spool", tmp_path / "gate"
    hub, heard = Hub(), []
    hub.subscribe(heard.append)
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, spool, hub, rescan_seconds=60)
    ingestor.start()
    command = threading.Thread(target=run_adhoc, args=(spool, [sys.executable, "-c", COMMAND, str(gate)]),
                               kwargs={"task": "Live"})
    command.start()
    try:
        def running_run_id():
            runs = queries.runs_page(index, queries.RunFilter(statuses=("RUNNING",), task_text="Live"))
            return None if runs.empty else runs["run_id"].iloc[0]

        run_id = wait_until(running_run_id, timeout=30, message="the run to show as RUNNING")

        def lines(stream):
            return queries.log_page(index, run_id, stream, 1)["text"].tolist()

        wait_until(lambda: lines("stdout") == ["first out"] and lines("stderr") == ["first err"], timeout=30,
                   message="the first lines in the index")
        assert command.is_alive(), "the lines arrived while the command was still running"
        # The hub hears of them just after the index has them (the ingest thread publishes after its commit).
        wait_until(lambda: any(change.log_lines.get((run_id, "stdout")) == 1 for change in list(heard)), timeout=30,
                   message="the hub to publish the first stdout line")
        assert command.is_alive(), "published while the command was still running"

        gate.touch()
        wait_until(lambda: queries.run(index, run_id)["status"] == "SUCCESS", timeout=30,
                   message="the run to finish")
        wait_until(lambda: lines("stdout") == ["first out", "second out"], timeout=30)
    finally:
        gate.touch()
        command.join(30)
        ingestor.stop()
        index.close()
