"""The hub: what the ingestor publishes, merging changes, and leaving it (plain publish/subscribe,
no session: delivery onto a browser session is tests/test_session_delivery.py)."""

from __future__ import annotations

import logging

from dashboard import index_writes
from dashboard.changes import Change
from dashboard.hub import Hub
from dashboard.index import Index
from dashboard.index_schema import RunSummary
from dashboard.ingest import Ingestor
from dashboard.spool import SpoolWriter


def summary(status: str) -> RunSummary:
    return RunSummary("A", "g", status, None)


def test_the_ingestor_publishes_runs_touched_and_the_last_line_per_stream(tmp_path):
    hub, heard = Hub(), []
    hub.subscribe(heard.append)
    writer = SpoolWriter(tmp_path / "spool")
    writer.status("r-1", "A", "RUNNING")
    writer.append_log("r-1", "stdout", "a\nb\nc\n")
    writer.append_log("r-1", "stderr", "oops\n")
    ingestor = Ingestor(Index(tmp_path / "index.duckdb"), tmp_path / "spool", hub)

    ingestor.catch_up()
    assert len(heard) == 1
    assert heard[0].runs == {"r-1": RunSummary("A", None, "RUNNING", heard[0].runs["r-1"].trigger_time)}
    assert heard[0].log_lines == {("r-1", "stdout"): 3, ("r-1", "stderr"): 1}

    ingestor.catch_up()
    assert len(heard) == 1, "nothing new, nothing published"
    writer.append_log("r-1", "stdout", "d\n")
    ingestor.catch_up()
    assert heard[1].log_lines == {("r-1", "stdout"): 4} and not heard[1].runs


def test_changes_merge_and_a_closed_subscription_hears_nothing(tmp_path):
    hub, heard = Hub(), []
    subscription = hub.subscribe(heard.append)
    assert hub.subscriber_count == 1
    merged = Change(runs={"a": summary("RUNNING"), "b": summary("RUNNING")}, log_lines={("a", "stdout"): 3})
    merged.merge(Change(runs={"b": summary("FAILED")}, log_lines={("a", "stdout"): 9, ("b", "stderr"): 1}, errors=2))
    assert merged.runs == {"a": summary("RUNNING"), "b": summary("FAILED")}, "the newer summary wins"
    assert merged.errors == 2
    assert merged.log_lines == {("a", "stdout"): 9, ("b", "stderr"): 1}

    hub.publish(Change())  # empty: not delivered
    hub.publish(merged)
    subscription.close()
    hub.publish(Change(runs={"c": summary("IDLE")}))
    assert [set(c.runs) for c in heard] == [{"a", "b"}]
    assert hub.subscriber_count == 0


def test_a_failing_subscriber_does_not_stop_the_others(caplog):
    hub, heard = Hub(), []

    def broken(change):
        raise RuntimeError("page bug")

    hub.subscribe(broken)
    hub.subscribe(heard.append)
    with caplog.at_level(logging.ERROR, logger="dashboard.hub"):
        hub.publish(Change(runs={"r": summary("IDLE")}))
    assert [set(c.runs) for c in heard] == [{"r"}]
    assert "page bug" in caplog.text


def test_the_hub_knows_no_screen():
    """Publish/subscribe is plain Python: delivering onto a Panel session is the UI's job."""
    import ast
    from pathlib import Path

    import dashboard.changes
    import dashboard.hub

    for module in (dashboard.hub, dashboard.changes):
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not imported & {"panel", "bokeh", "param", "tornado"}, module.__name__


def test_a_batch_touching_more_runs_than_listed_says_many(tmp_path, monkeypatch):
    monkeypatch.setattr(index_writes, "LISTED_RUNS_MAX", 3)
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, name="many")
    for n in range(4):
        writer.status(f"r-{n}", "T", "RUNNING")
    writer.close()
    index = Index(tmp_path / "index.duckdb")
    hub, heard = Hub(), []
    hub.subscribe(heard.append)
    Ingestor(index, spool, hub).catch_up()
    assert [(change.runs, change.many_runs) for change in heard] == [({}, True)]
    assert heard[0].run_changed("anything")
    merged = Change(runs={"a": heard[0].runs.get("a")})
    merged.merge(heard[0])
    assert merged.many_runs and merged.runs == {}
    index.close()
