state.link = "live"
state.show = () => {
  let look = state.link, text = "Live", title = "Connected; updates arrive as they happen"
  if (state.link === "connecting") {
    text = "Connecting…"; title = "Lost the connection to the server; reconnecting"
  } else if (state.link === "disconnected") {
    text = "Disconnected"; title = "Not connected to the server. Click to try again."
  } else if (data.ingest_failure) {
    look = "error"; text = "Error"; title = "Reading the " + data.source + " failed: " + data.ingest_failure
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
  // How current the page is: when the index last held all the spool had, as its last update said.
  if (data.current_at != null) {
    // In the page's zone (dashboard.clock), as every other time on the page.
    const at = new Intl.DateTimeFormat("en-GB", {
      timeZone: data.zone, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    }).format(new Date(data.current_at * 1000))
    const behind = data.behind == null ? "" : ` · ${data.behind.toFixed(1)} s behind`
    asof.textContent = "as of " + at + behind
    title += `. The index held all the ${data.source} had at ${at} ${data.zone}` +
      (data.behind == null ? "" : `; reading it took ${data.behind.toFixed(1)} s`) +
      (state.link === "live" ? "" : " (the last this page heard)")
  }
  window.__taskdashLink = state.link  // running durations count only while live (duration.js)
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
