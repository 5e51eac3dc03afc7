"""Delivering the hub's changes to a view: gathered while it is built, coalesced on its session,
paced by the browser's receipt, and ended with the session (dashboard.components.live)."""

from __future__ import annotations

import param
import pytest
from bokeh.document import Document

from dashboard.changes import Change
from dashboard.components.connection import ConnectionIndicator
from dashboard.components.live import Delivery, Pace, follow, subscribe
from dashboard.hub import Hub
from dashboard.index_schema import RunSummary


def summary(status: str) -> RunSummary:
    return RunSummary("A", "g", status, None)


def test_a_view_followed_from_before_it_is_built_hears_what_was_published_meanwhile():
    hub, heard = Hub(), []

    class View:
        def __init__(self):
            hub.publish(Change(runs={"a": summary("RUNNING")}))  # after its first query, say
            hub.publish(Change(runs={"a": summary("FAILED")}, errors=1))
            assert heard == [], "nothing is delivered before the view exists"

        def changed(self, change):
            heard.append(change)

    view, subscription = follow(hub, View)
    assert [(change.runs, change.errors) for change in heard] == [({"a": summary("FAILED")}, 1)], "merged"
    hub.publish(Change(log_lines={("a", "stdout"): 2}))
    assert heard[-1].log_lines == {("a", "stdout"): 2}
    subscription.close()

    def broken():
        raise ValueError("bad query")

    with pytest.raises(ValueError, match="bad query"):
        follow(hub, broken)
    assert hub.subscriber_count == 0, "a view that could not be built leaves no subscription"


def test_a_failing_view_does_not_stop_the_others(monkeypatch):
    hub, heard, reported = Hub(), [], []
    from panel.io.state import state

    monkeypatch.setattr(state, "_handle_exception", reported.append)

    def broken(change):
        raise RuntimeError("page bug")

    subscribe(hub, broken)
    subscribe(hub, heard.append)
    hub.publish(Change(runs={"r": summary("IDLE")}))
    assert [set(c.runs) for c in heard] == [{"r"}]
    assert "page bug" in str(reported[0])


def test_a_session_whose_document_was_destroyed_leaves_the_hub_without_troubling_the_ingest():
    hub, heard = Hub(), []
    hub.subscribe(heard.append)
    document = Document()
    document.callbacks.destroy()  # as Document.destroy does when a session ends, maybe before telling the hub
    on_the_session = Delivery(heard.append, document)
    on_the_session.subscription = hub.subscribe(on_the_session.offer)
    hub.publish(Change(runs={"r": summary("IDLE")}))  # raised AttributeError in the ingest thread
    assert [set(c.runs) for c in heard] == [{"r"}]
    assert hub.subscriber_count == 1


class Receipt(param.Parameterized):
    """What a page's connection indicator is to the hub: two counters."""

    delivered = param.Integer(default=0)
    drawn = param.Integer(default=0)


def test_a_paced_session_waits_for_the_receipt_of_its_last_delivery():
    receipt = Receipt()
    pace = Pace(receipt)
    subscription = Delivery(lambda change: None, Document())
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
    subscription = Delivery(lambda change: None, document)
    subscription.subscription = hub.subscribe(subscription.offer)
    pace.sent()
    assert pace.hold_back(subscription) > 0
    document.callbacks.destroy()  # the session ended while the browser's receipt was on its way
    receipt.drawn = 1  # raised AttributeError on a Panel worker thread
    assert subscription.closed and hub.subscriber_count == 0


def test_a_receipt_arriving_as_its_session_is_destroyed_is_dropped_without_an_error():
    doc, indicator = Document(), ConnectionIndicator()
    doc.add_root(indicator.get_root(doc))
    indicator._process_events({"drawn": 1})  # a live session's receipt is applied
    assert indicator.drawn == 1
    doc.callbacks.destroy()  # what Bokeh does to a closed tab's session (Document.destroy)
    doc.models.destroy()
    indicator._process_events({"drawn": 2})  # Panel logged "Callback failed …" and raised here
    assert indicator.drawn == 1
