state.rows = []
state.moves = 0
state.ask = (direction) => {
  state.moves += direction
  state.asked = query.value  // its answer must not put it back: the user may have typed on
  data.search_request = {text: query.value, moves: state.moves}
}
query.addEventListener("keydown", (event) => {
  if (event.key === "Enter") { event.preventDefault(); state.ask(event.shiftKey ? -1 : 1) }
})
previous.addEventListener("click", () => state.ask(-1))
state.errorMoves = 0
const askError = (direction) => {
  state.errorMoves += direction
  data.error_request = {moves: state.errorMoves}
}
previous_error.addEventListener("click", () => askError(-1))
next_error.addEventListener("click", () => askError(1))
next.addEventListener("click", () => state.ask(1))
scroller.addEventListener("scroll", () => {
  const fromBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight
  if (data.follow && fromBottom > 40 && !state.pinning) { data.follow = false; state.following(false) }
})
// While following, every line is laid out (log_viewer.css): the last lines' heights keep the box pinned.
state.following = (on) => { scroller.classList.toggle("td-following", Boolean(on)) }
state.pin = () => {
  state.pinning = true
  scroller.scrollTop = scroller.scrollHeight
  setTimeout(() => { state.pinning = false }, 50)
}
state.segments = (text, spans, needle) => {
  // [start, end, span or null, whether inside a search match] pieces of the visible text
  const cuts = new Set([0, text.length])
  for (const span of spans) { cuts.add(span[0]); cuts.add(span[1]) }
  const matches = []
  const lower = text.toLowerCase()
  if (needle && lower.length === text.length) {
    let at = 0
    while ((at = lower.indexOf(needle, at)) !== -1) {
      matches.push([at, at + needle.length]); cuts.add(at); cuts.add(at + needle.length); at += needle.length
    }
  }
  const points = [...cuts].sort((a, b) => a - b)
  const pieces = []
  let s = 0, m = 0
  for (let i = 0; i + 1 < points.length; i++) {
    const [a, b] = [points[i], points[i + 1]]
    while (s < spans.length && spans[s][1] <= a) { s++ }
    while (m < matches.length && matches[m][1] <= a) { m++ }
    const span = s < spans.length && spans[s][0] <= a ? spans[s] : null
    pieces.push([a, b, span, m < matches.length && matches[m][0] <= a])
  }
  return pieces
}
// ISO 8601 times with a zone (2026-12-02T10:00:03Z, 2026-12-02 12:00:03.120+02:00) are shown in the
// page's zone: the element keeps the text as written (copying it copies that), and CSS shows the
// converted time in its place (log_viewer.css: .td-ts); the hover says both.
state.stamp = /\b(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})(?![\d:])/g
state.inZone = new Intl.DateTimeFormat("en-CA", {
  timeZone: data.zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  second: "2-digit", hourCycle: "h23",
})
state.convert = (written, date, time, fraction, zone) => {
  const offset = zone === "Z" || zone.length === 6 ? zone : zone.slice(0, 3) + ":" + zone.slice(3)
  const instant = Date.parse(`${date}T${time}${fraction ? fraction.slice(0, 4) : ""}${offset}`)
  if (Number.isNaN(instant)) { return null }
  const part = Object.fromEntries(state.inZone.formatToParts(new Date(instant)).map(p => [p.type, p.value]))
  const wall = `${part.year}-${part.month}-${part.day}T${part.hour}:${part.minute}:${part.second}`
  const minutes = Math.round((Date.parse(wall + "Z") - Math.floor(instant / 1000) * 1000) / 60000)
  const size = Math.abs(minutes)
  const utc = data.zone === "UTC"
  const shown = utc ? "Z" :
    `${minutes < 0 ? "-" : "+"}${String(Math.floor(size / 60)).padStart(2, "0")}:${String(size % 60).padStart(2, "0")}`
  const converted = wall.replace("T", written[10]) + (fraction || "") + shown
  const already = written.slice(0, written.length - zone.length) + (zone === "Z" && !utc ? "+00:00" : offset)
  return converted === already || (utc && converted === written) ? null : converted  // null: already in the zone
}
state.fill = (piece, text) => {
  let at = 0, found
  state.stamp.lastIndex = 0
  while ((found = state.stamp.exec(text)) !== null) {
    const shown = state.convert(...found)
    if (!shown) { continue }
    if (found.index > at) { piece.append(text.slice(at, found.index)) }
    const stamp = document.createElement("span")
    stamp.className = "td-ts"
    stamp.textContent = found[0]
    stamp.dataset.shown = shown
    stamp.title = `${found[0]} as written · ${shown} in ${data.zone}`
    piece.append(stamp)
    at = found.index + found[0].length
  }
  if (at === 0) { piece.textContent = text } else if (at < text.length) { piece.append(text.slice(at)) }
}
state.line = (row, needle) => {
  const [number, text, spans, level, full] = row
  const line = document.createElement("div")
  line.className = "td-line"
  line.dataset.line = number
  const no = document.createElement("span")
  no.className = "td-no"
  no.textContent = number
  const body = document.createElement("span")
  body.className = "td-text"
  for (const [a, b, span, matched] of state.segments(text, spans, needle)) {
    const href = span && span[4]
    const piece = document.createElement(href ? "a" : "span")
    if (href) { piece.href = href; piece.target = "_blank"; piece.rel = "noopener noreferrer" }
    if (span && span[2]) { piece.className = span[2] }
    if (span && span[3]) { piece.style.color = span[3] }
    if (matched) {
      const mark = document.createElement("mark")
      mark.textContent = text.slice(a, b)
      piece.append(mark)
    } else { state.fill(piece, text.slice(a, b)) }
    body.append(piece)
  }
  if (full) {
    const unfold = document.createElement("button")
    unfold.className = "td-unfold"
    unfold.textContent = `… show all ${full.toLocaleString()} characters`
    unfold.addEventListener("click", () => {
      state.unfolds = (state.unfolds || 0) + 1
      data.unfold_request = {line: number, n: state.unfolds}
    })
    body.append(unfold)
  }
  if (level === "error") { line.classList.add("td-error") }
  else if (level === "warn") { line.classList.add("td-warn") }
  if (needle && text.toLowerCase().includes(needle)) { line.classList.add("td-match") }
  if (number === data.find.current) { line.classList.add("td-current") }
  if (number === data.find.addressed) { line.classList.add("td-addressed") }
  line.append(no, body)
  return line
}
state.center = (target, tries, settling = 0) => {
  // Once the box is laid out, bring the line to its middle (and the box into the window).
  if (!target.isConnected || !scroller.clientHeight) {
    if (tries < 120) { requestAnimationFrame(() => state.center(target, tries + 1)) }
    return
  }
  const before = scroller.scrollTop
  const box = scroller.getBoundingClientRect(), at = target.getBoundingClientRect()
  scroller.scrollTop += at.top - box.top - (scroller.clientHeight - at.height) / 2
  if (scroller.scrollTop !== before && settling < 8) {
    // The lines brought near are drawn only now (log_viewer.css), maybe taller than they were taken for.
    requestAnimationFrame(() => state.center(target, tries, settling + 1))
  }
  const shown = target.getBoundingClientRect()
  if (shown.top < 0 || shown.bottom > window.innerHeight) { target.scrollIntoView({block: "center"}) }
}
state.replace = (rows) => {
  const needle = (data.find.text || "").toLowerCase()
  for (const row of rows) {
    const i = state.rows.findIndex(r => r[0] === row[0])
    if (i < 0) { continue }
    state.rows[i] = row
    const old = scroller.querySelector(`.td-line[data-line="${row[0]}"]`)
    if (old) { old.replaceWith(state.line(row, needle)) }
  }
}
state.take = (rows) => {
  // Add the appended rows newer than the last shown; a gap means some were missed: ask again.
  const last = state.rows.length ? state.rows[state.rows.length - 1][0] : 0
  state.replace(rows.filter(row => row[0] === last))  // a last line that had no newline yet
  const fresh = rows.filter(row => row[0] > last)
  if (!fresh.length) { return }
  if (fresh[0][0] !== last + 1) { data.resync = data.resync + 1; return }
  const needle = (data.find.text || "").toLowerCase()
  if (!state.rows.length) { scroller.replaceChildren() }
  for (const row of fresh) { state.rows.push(row); scroller.append(state.line(row, needle)) }
  const extra = state.rows.length - __FOLLOW_KEEP__
  if (extra > 0) {
    state.rows.splice(0, extra)
    for (let i = 0; i < extra; i++) { scroller.firstElementChild.remove() }
  }
  if (data.follow) { state.pin() }
}
state.draw = () => {
  const needle = (data.find.text || "").toLowerCase()
  state.following(data.follow)
  scroller.replaceChildren(...state.rows.map(row => state.line(row, needle)))
  if (!state.rows.length) {
    const empty = document.createElement("div")
    empty.className = "td-empty"
    empty.textContent = data.empty_text[0] || ""
    scroller.append(empty)
  }
  const counter_text = data.find.note ? data.find.note : data.find.total == null ? "" :
    (data.find.total ? `${data.find.index} / ${data.find.total.toLocaleString()}` : "no matches")
  counter.textContent = counter_text
  const target = scroller.querySelector(".td-current, .td-addressed")
  if (data.follow) { state.pin() }
  else if (target) { state.center(target, 0) }
}
state.rows = data.lines.slice()
state.draw()
if (data.follow) { state.take(data.appended) }  // lines appended before the page first drew
if (data.find.text) { query.value = data.find.text }
