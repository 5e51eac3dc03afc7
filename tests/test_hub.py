"""The hub: what the ingestor publishes, coalescing, and leaving it."""

from __future__ import annotations

import param
import pytest
from bokeh.document import Document

from dashboard import index_writes
from dashboard.hub import Change, Hub, Pace, Subscription
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


def test_a_view_followed_from_before_it_is_built_hears_what_was_published_meanwhile():
    hub, heard = Hub(), []

    class View:
        def __init__(self):
            hub.publish(Change(runs={"a": summary("RUNNING")}))  # after its first query, say
            hub.publish(Change(runs={"a": summary("FAILED")}, errors=1))
            assert heard == [], "nothing is delivered before the view exists"

        def changed(self, change):
            heard.append(change)

    view, subscription = hub.follow(View)
    assert [(change.runs, change.errors) for change in heard] == [({"a": summary("FAILED")}, 1)], "merged"
    hub.publish(Change(log_lines={("a", "stdout"): 2}))
    assert heard[-1].log_lines == {("a", "stdout"): 2}
    subscription.close()

    def broken():
        raise ValueError("bad query")

    with pytest.raises(ValueError, match="bad query"):
        hub.follow(broken)
    assert hub.subscriber_count == 0, "a view that could not be built leaves no subscription"


def test_a_failing_subscriber_does_not_stop_the_others(tmp_path, monkeypatch):
    hub, heard, reported = Hub(), [], []
    from panel.io.state import state

    monkeypatch.setattr(state, "_handle_exception", reported.append)

    def broken(change):
        raise RuntimeError("page bug")

    hub.subscribe(broken)
    hub.subscribe(heard.append)
    hub.publish(Change(runs={"r": summary("IDLE")}))
    assert [set(c.runs) for c in heard] == [{"r"}]
    assert "page bug" in str(reported[0])


def test_a_batch_touching_more_runs_than_listed_says_many(tmp_path, monkeypatch):
    monkeypatch.setattr(index_writes, "LISTED_RUNS_MAX", 3)
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool, name="many")
    for n in range(4):
        writer.status(f"r-{n}", "T", "RUNNING")
    writer.close()
    index = Index(tmp_path / "index.duckdb")
    hub, heard = Hub(), []
    hub.subscribe(heard.append, min_interval=0)
    Ingestor(index, spool, hub).catch_up()
    assert [(change.runs, change.many_runs) for change in heard] == [({}, True)]
    assert heard[0].run_changed("anything")
    merged = Change(runs={"a": heard[0].runs.get("a")})
    merged.merge(heard[0])
    assert merged.many_runs and merged.runs == {}
    index.close()


def test_a_session_whose_document_was_destroyed_leaves_the_hub_without_troubling_the_ingest():
    hub, heard = Hub(), []
    hub.subscribe(heard.append)
    document = Document()
    document.callbacks.destroy()  # as Document.destroy does when a session ends, maybe before telling the hub
    with hub._lock:
        hub._subscriptions.append(Subscription(hub, heard.append, document))
    hub.publish(Change(runs={"r": summary("IDLE")}))  # raised AttributeError in the ingest thread
    assert [set(c.runs) for c in heard] == [{"r"}]
    assert hub.subscriber_count == 1



class Receipt(param.Parameterized):
    """What a page's connection indicator is to the hub: two counters."""

    delivered = param.Integer(default=0)
    drawn = param.Integer(default=0)


def test_a_paced_session_waits_for_the_receipt_of_its_last_delivery():
    hub, receipt = Hub(), Receipt()
    pace = Pace(receipt)
    subscription = Subscription(hub, lambda change: None, Document())
    assert pace.hold_back(subscription) <= 0, "nothing sent yet: deliver now"
    pace.sent()
    pace.sent()  # a second delivery after the first's receipt timed out
    assert receipt.delivered == 2
    assert pace.hold_back(subscription) > 0
    wakeups = subscription._latest_wakeup
    receipt.drawn = 1  # the receipt of the earlier delivery: still waiting
    assert pace.hold_back(subscription) > 0 and subscription._latest_wakeup == wakeups
    receipt.drawn = 2
    assert subscription._latest_wakeup == wakeups + 1, "woken once the browser drew the last delivery"
    assert pace.hold_back(subscription) <= 0


def test_a_receipt_arriving_after_the_session_ended_closes_what_it_held_back():
    hub, receipt = Hub(), Receipt()
    pace = Pace(receipt)
    document = Document()
    subscription = Subscription(hub, lambda change: None, document)
    with hub._lock:
        hub._subscriptions.append(subscription)
    pace.sent()
    assert pace.hold_back(subscription) > 0
    document.callbacks.destroy()  # the session ended while the browser's receipt was on its way
    receipt.drawn = 1  # raised AttributeError on a Panel worker thread
    assert subscription.closed and hub.subscriber_count == 0
