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
  if (data.follow && fromBottom > 40 && !state.pinning) { data.follow = false }
})
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
    } else { piece.textContent = text.slice(a, b) }
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
state.center = (target, tries) => {
  // Once the box is laid out, bring the line to its middle (and the box into the window).
  if (!target.isConnected || !scroller.clientHeight) {
    if (tries < 120) { requestAnimationFrame(() => state.center(target, tries + 1)) }
    return
  }
  const box = scroller.getBoundingClientRect(), at = target.getBoundingClientRect()
  scroller.scrollTop += at.top - box.top - (scroller.clientHeight - at.height) / 2
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
