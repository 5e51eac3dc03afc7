// The entries, drawn as text; the find box filters them as the user types.
state.fill = () => {
  const entries = data.entries
  summary.textContent = `${entries.length.toLocaleString("en-US")} top-level group${entries.length === 1 ? "" : "s"}`
  find.hidden = entries.length < 8  // a short list is read at a glance
  items.replaceChildren(...entries.map(([group, colour, count]) => {
    const item = document.createElement(group ? "button" : "span")
    item.className = "td-legend-item"
    item.setAttribute("role", "listitem")
    item.dataset.group = group
    const tile = document.createElement("span")
    tile.className = "td-legend-tile"
    tile.style.background = colour
    item.append(tile, `${group || "no group"} (${Number(count).toLocaleString("en-US")})`)
    if (group) { item.title = `Show only ${group}` }
    return item
  }))
  state.filter()
}
state.filter = () => {
  const wanted = find.value.trim().toLowerCase()
  let shown = 0
  for (const item of items.children) {
    item.hidden = wanted !== "" && !(item.dataset.group || "no group").toLowerCase().includes(wanted)
    shown += item.hidden ? 0 : 1
  }
  none.hidden = shown > 0 || items.children.length === 0
}
find.addEventListener("input", state.filter)
items.addEventListener("click", (event) => {
  const item = event.target.closest("button.td-legend-item")
  if (item) { data.picked = item.dataset.group }
})
state.fill()
