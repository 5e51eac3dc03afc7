"""The connection indicator: Live, Connecting, Error or Disconnected, and how current the page is.

The browser side listens to Bokeh's own connection events (the websocket Panel reconnects
when `reconnect=True`), so the indicator tells the truth even when the server cannot talk.
When a restarted server cannot take the old session back, the page reloads itself from
its URL once the server answers again.
The server side says whether the ingestor is healthy: Error when an ingest step failed or
new ingest errors were recorded since the page opened; and when the index last held all the
spool had ("as of 12:00:03 · 0.1 s behind"), which stays as it was while the link is down.
While it is down, running durations stop counting (duration.js) and the page is dimmed.
It is also the page's receipt for live updates: the browser says when it has drawn each one,
and the hub sends the next only then (see `dashboard.components.live.Pace`).
"""

from __future__ import annotations

import panel as pn
import param
from bokeh.core.property.descriptors import UnsetValueError
from panel.reactive import ReactiveHTML

from dashboard import clock
from dashboard.components import live
from dashboard.components.resources import resource
from dashboard.components.timers import every
from dashboard.store import Store


class ConnectionIndicator(ReactiveHTML):
    """A pill in the page header showing the real state of the link to the server."""

    ingest_failure = param.String(default="", doc="Why the last ingest step failed; empty when it did not.")
    new_errors = param.Integer(default=0, doc="Ingest errors recorded since the page opened.")
    delivered = param.Integer(default=0, doc="Live updates the server sent this page.")
    drawn = param.Integer(default=0, doc="From the browser: the live updates it has drawn.")
    current_at = param.Number(default=None, allow_None=True,
                              doc="When (epoch seconds) the index last held all the spool had.")
    behind = param.Number(default=None, allow_None=True, doc="How long reading the spool took then (seconds).")
    zone = param.String(default="UTC", doc="The IANA zone 'as of' is shown in (the page's clock).")
    source = param.String(default="spool", doc="What the index is read from: spool, or lake in lake mode.")

    _template = """
<span id="pill" class="td-conn td-conn-live" role="status" aria-live="polite" title="Connected to the server">
  <span class="td-dot"></span><span id="label" class="td-label">Live</span><span
   id="asof" class="td-asof" aria-hidden="true"></span>
</span>"""

    _stylesheets = [resource("connection.css")]

    # A receipt is bookkeeping, not work the user waits for.
    _busy__ignore = ["drawn"]

    _scripts = {
        "render": resource("connection.js"),
        "ingest_failure": "state.show()",
        "new_errors": "state.show()",
        "current_at": "state.show()",
        "delivered": "state.answer()",
    }

    def _process_events(self, events: dict) -> None:
        # A receipt can arrive as its tab closes, after Bokeh emptied the destroyed session's
        # models: Panel would fail applying it to them ("Callback failed …: UnsetValueError").
        if self._models and all(model.document is None for model, _ in self._models.values()):
            return
        super()._process_events(events)

    def _update_model(self, events, msg, root, model, doc, comm) -> None:
        # ... or while it is being destroyed, on another thread: the models empty under the update.
        try:
            super()._update_model(events, msg, root, model, doc, comm)
        except UnsetValueError:
            if model.document is not None:
                raise


def connection_indicator(store: Store, check_seconds: float = 5.0) -> ConnectionIndicator:
    """An indicator for this session, kept current with the ingest's health (from the store).

    Failures and new errors are published on the hub; a recovery is not, so the health is
    also looked at every few seconds (no query: it is a field of the ingestor).
    """
    indicator = ConnectionIndicator(zone=clock.current().zone)
    baseline = store.health.errors_recorded

    def update(_change=None) -> None:
        health = store.health
        indicator.param.update(ingest_failure=health.failure or "",
                               new_errors=max(0, health.errors_recorded - baseline),
                               current_at=health.current_at, behind=health.behind, source=health.source)

    live.subscribe(store, update)  # then look: a failure published in between is not missed
    update()
    live.pace_session(indicator)
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        every(check_seconds, update)
    return indicator
