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
  const ticking = window.__taskdashTicking || (window.__taskdashTicking = new Set())
  if (!window.__taskdashTicker) {
    window.__taskdashTicker = setInterval(() => {
      // While the link to the server is down what it measured may be over: stop counting.
      if (window.__taskdashLink && window.__taskdashLink !== "live") { return }
      for (const item of ticking) {
        if (!item.el.isConnected) { ticking.delete(item); continue }
        item.el.textContent = human(item.seconds + (Date.now() - item.since) / 1000)
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
      el.textContent = human(item.seconds + (Date.now() - item.since) / 1000)
      onRendered(() => ticking.add(item))
    }
    return el
  }
})()
