(() => {
  const human = (s) => {
    if (s == null || Number.isNaN(s)) { return "" }
    if (s < 10) { return s.toFixed(1) + "s" }
    s = Math.floor(s)
    const pad = (n) => String(n).padStart(2, "0")
    if (s < 60) { return s + "s" }
    if (s < 3600) { return Math.floor(s / 60) + "m " + pad(s % 60) + "s" }
    return Math.floor(s / 3600) + "h " + pad(Math.floor(s % 3600 / 60)) + "m"
  }
  const now = (item) => item.seconds + (Date.now() - item.since) / 1000
  const ticking = window.__taskdashTicking || (window.__taskdashTicking = new Set())
  // The count each running run reached on this page, by run id and start. The server measures a
  // running duration to its next whole second, so a row drawn again (new data for the run, or the
  // page redrawn) can say up to a second less than the cell it replaces: count on from the larger.
  // (A run started again has another start, and counts from the server's figure.)
  const counted = window.__taskdashCounted || (window.__taskdashCounted = new Map())
  if (!window.__taskdashTicker) {
    window.__taskdashTicker = setInterval(() => {
      for (const [run, item] of counted) {  // a run no longer drawn (finished, another page)
        if (!item.el.isConnected && Date.now() - (item.gone = item.gone || Date.now()) > 10000) { counted.delete(run) }
      }
      // While the link to the server is down what it measured may be over: stop counting.
      if (window.__taskdashLink && window.__taskdashLink !== "live") { return }
      for (const item of ticking) {
        if (!item.el.isConnected) { ticking.delete(item); continue }
        item.el.textContent = human(now(item))
      }
    }, 1000)
  }
  return function(cell, params, onRendered) {
    const row = cell.getRow().getData()
    const el = document.createElement("span")
    el.textContent = human(cell.getValue())
    if (row.running && cell.getValue() != null) {
      // The server measured `duration` when it sent the row; count on from then.
      row.__received = row.__received || Date.now()
      const item = {el, seconds: cell.getValue(), since: row.__received}
      const run = row.run_id + " " + row.started
      const before = counted.get(run)
      if (before && now(before) > now(item)) { item.seconds = now(before); item.since = Date.now() }
      counted.set(run, item)
      el.textContent = human(now(item))
      onRendered(() => ticking.add(item))
    }
    return el
  }
})()
