"""The run card's view state is its run id: it reads that run, follows its changes, and shows
every value as text."""

from __future__ import annotations

from dashboard.changes import Change
from dashboard.components.run_card import RunCard
from dashboard.config import Config
from dashboard.hub import Hub
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.spool import SpoolWriter
from dashboard.store import Store


def test_the_card_shows_its_run_follows_it_and_shows_another_when_asked(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", name="w")
    writer.status("r-1", "<b>Build</b>", "RUNNING", agent="a")
    writer.status("r-2", "Deploy", "SUCCESS", agent="b", exit_code=0)
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, tmp_path / "spool")
    ingestor.catch_up()
    try:
        card = RunCard(store=Store(index, Hub(), Config(spool=tmp_path / "spool")), run_id="r-1")
        assert card.running and "&lt;b&gt;Build&lt;/b&gt;" in card.details.object
        assert 'class="td-now" data-status="RUNNING"' in card.timeline.object
        writer.status("r-1", "<b>Build</b>", "FAILED", agent="a", exit_code=3)
        ingestor.catch_up()
        card.changed(Change(runs={"r-2": None}))  # another run changed: nothing to read
        assert card.running
        card.changed(Change(runs={"r-1": None}))
        assert not card.running and 'class="td-bad" data-status="FAILED"' in card.timeline.object
        card.run_id = "r-2"
        assert card.run["task"] == "Deploy" and "Deploy" in card.details.object
        card.run_id = "r-404"
        assert card.run is None and card.details.object == ""
    finally:
        index.close()


def test_a_blocked_run_names_its_root_cause_with_a_link_and_the_root_says_how_many_it_blocks(tmp_path):
    """'blocked by <root task>, FAILED <time>' linking to the root's run, through a blocked
    upstream; the root cause 'blocks N'; task names escaped."""
    import datetime as dt

    from dashboard.formatting import utcnow
    from dashboard.store import Links

    writer = SpoolWriter(tmp_path / "spool", name="w")
    writer.define_task("<i>Extract</i>", "etl")
    writer.define_task("Load", "etl", depends_on=["<i>Extract</i>"])
    writer.define_task("Report", "etl", depends_on=["Load"])
    trigger = (utcnow() - dt.timedelta(minutes=5)).replace(microsecond=0)
    for run_id, task, statuses in [("x-1", "<i>Extract</i>", ("ACTIVE", "STARTED", "RUNNING", "FAILED")),
                                   ("l-1", "Load", ("ACTIVE",)), ("p-1", "Report", ("ACTIVE",))]:
        for step, status in enumerate(statuses):
            writer.status(run_id, task, status, ts=trigger + dt.timedelta(seconds=step), trigger_time=trigger)
    index = Index(tmp_path / "index.duckdb")
    Ingestor(index, tmp_path / "spool").catch_up()
    try:
        store = Store(index, Hub(), Config(spool=tmp_path / "spool"), Links({"run_detail": "/task-runs/{run_id}"}))
        card = RunCard(store=store, run_id="p-1")
        failed_at = (trigger + dt.timedelta(seconds=3)).strftime("%H:%M:%S")
        assert ('blocked by <a class="td-root-cause" href="/task-runs/x-1">&lt;i&gt;Extract&lt;/i&gt;</a>, '
                f"FAILED {failed_at}") in card.details.object
        card.run_id = "x-1"
        assert '<span class="td-blocks td-blocks-card">blocks 2</span> runs of its cycle' in card.details.object
        assert "blocked by" not in card.details.object
    finally:
        index.close()
