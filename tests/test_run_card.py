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
