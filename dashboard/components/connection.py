"""The connection indicator: Live, Connecting, Error or Disconnected.

The browser side listens to Bokeh's own connection events (the websocket Panel reconnects
when `reconnect=True`), so the indicator tells the truth even when the server cannot talk.
When a restarted server cannot take the old session back, the page reloads itself from
its URL once the server answers again.
The server side says whether the ingestor is healthy: Error when an ingest step failed or
new ingest errors were recorded since the page opened.
It is also the page's receipt for live updates: the browser says when it has drawn each one,
and the hub sends the next only then (see `dashboard.components.live.Pace`).
"""

from __future__ import annotations

import panel as pn
import param
from panel.reactive import ReactiveHTML

from dashboard.components import live
from dashboard.components.timers import every
from dashboard.store import Store

_STYLE = """
.td-conn { display: inline-flex; align-items: center; gap: 6px; padding: 3px 10px; border-radius: 999px;
           font: 600 12px system-ui, sans-serif; background: rgba(255,255,255,.92); color: #111827;
           cursor: default; white-space: nowrap; }
.td-conn .td-dot { width: 8px; height: 8px; border-radius: 50%; background: #9ca3af; }
.td-conn-live .td-dot { background: #16a34a; box-shadow: 0 0 0 3px #16a34a33; }
.td-conn-connecting .td-dot { background: #f59e0b; animation: td-blink 1s steps(2) infinite; }
.td-conn-error .td-dot { background: #dc2626; }
.td-conn-disconnected { cursor: pointer; }
.td-conn-disconnected .td-dot { background: #6b7280; }
@keyframes td-blink { 50% { opacity: .2; } }
"""


class ConnectionIndicator(ReactiveHTML):
    """A pill in the page header showing the real state of the link to the server."""

    ingest_failure = param.String(default="", doc="Why the last ingest step failed; empty when it did not.")
    new_errors = param.Integer(default=0, doc="Ingest errors recorded since the page opened.")
    delivered = param.Integer(default=0, doc="Live updates the server sent this page.")
    drawn = param.Integer(default=0, doc="From the browser: the live updates it has drawn.")

    _template = """
<span id="pill" class="td-conn td-conn-live" role="status" aria-live="polite" title="Connected to the server">
  <span class="td-dot"></span><span id="label">Live</span>
</span>"""

    _stylesheets = [_STYLE]

    # A receipt is bookkeeping, not work the user waits for.
    _busy__ignore = ["drawn"]

    _scripts = {
        "render": """
state.link = "live"
state.show = () => {
  let look = state.link, text = "Live", title = "Connected; updates arrive as they happen"
  if (state.link === "connecting") {
    text = "Connecting…"; title = "Lost the connection to the server; reconnecting"
  } else if (state.link === "disconnected") {
    text = "Disconnected"; title = "Not connected to the server. Click to try again."
  } else if (data.ingest_failure) {
    look = "error"; text = "Error"; title = "Reading the spool failed: " + data.ingest_failure
  } else if (data.new_errors > 0) {
    look = "error"; text = "Error · " + data.new_errors
    title = data.new_errors + " new ingest error(s) since this page opened: see `taskdash errors`"
  }
  // What the page shows while the link is down may be stale: dim it until it is live again.
  const main = document.getElementById("main")
  if (main) {
    main.style.transition = "opacity .3s"
    main.style.opacity = state.link === "live" ? "" : "0.45"
    main.dataset.stale = state.link === "live" ? "" : "stale"
  }
  pill.className = "td-conn td-conn-" + look
  pill.dataset.state = text.split(" ")[0].replace("…", "")
  pill.title = title
  label.textContent = text
}
// Bokeh reconnects its websocket by itself, but a restarted server does not know the old
// session and the reconnect can fail. So while the link is down, ask the server whether it
// is back; if it is and the link still is not, reload: the URL holds the page's view, so the
// view comes back with it. It asks with a HEAD of the page's own Bokeh script, a static file
// (a page answers HEAD with 405, which the server logged as a warning every second).
state.probe = (document.querySelector('script[src*="static/js/bokeh"]') || {}).src || window.location.href
state.watch = () => {
  if (state.watching) { return }
  state.watching = setInterval(async () => {
    if (state.link === "live") { clearInterval(state.watching); state.watching = null; return }
    try {
      const answer = await fetch(state.probe, {method: "HEAD", cache: "no-store"})
      if (!answer.ok) { throw new Error(answer.status) }
      state.back_since = state.back_since || Date.now()
      if (Date.now() - state.back_since > 3000) { window.location.reload() }
    } catch (error) {
      state.back_since = null
    }
  }, 1000)
}
data.document.on_event("connection_lost", (_, event) => {
  state.link = event.timeout != null ? "connecting" : "disconnected"
  state.reconnect = event.reconnect
  state.show()
  state.watch()
})
data.document.on_event("client_reconnected", () => { state.link = "live"; state.back_since = null; state.show() })
pill.addEventListener("click", () => {
  if (state.link === "disconnected" && state.reconnect) { state.link = "connecting"; state.show(); state.reconnect() }
})
// The receipt: drawn once the frame after an update is painted. A hidden tab paints no
// frames, so there it answers from a timer (which the browser slows down for hidden tabs).
state.answer = () => {
  const delivered = data.delivered
  const done = () => { if (data.drawn < delivered) { data.drawn = delivered } }
  if (document.hidden) { setTimeout(done) } else { requestAnimationFrame(() => setTimeout(done)) }
}
state.show()
// Updates delivered before the page first drew are part of this first drawing.
if (data.drawn < data.delivered) { state.answer() }
""",
        "ingest_failure": "state.show()",
        "new_errors": "state.show()",
        "delivered": "state.answer()",
    }


def connection_indicator(store: Store, check_seconds: float = 5.0) -> ConnectionIndicator:
    """An indicator for this session, kept current with the ingest's health (from the store).

    Failures and new errors are published on the hub; a recovery is not, so the health is
    also looked at every few seconds (no query: it is a field of the ingestor).
    """
    indicator = ConnectionIndicator()
    baseline = store.health.errors_recorded

    def update(_change=None) -> None:
        health = store.health
        indicator.param.update(ingest_failure=health.failure or "",
                               new_errors=max(0, health.errors_recorded - baseline))

    live.subscribe(store, update)  # then look: a failure published in between is not missed
    update()
    live.pace_session(indicator)
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        every(check_seconds, update)
    return indicator
