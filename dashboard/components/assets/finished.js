function(cell) {
  // A running run's expected finish ("≈ 12:34:56") is grey, its range on hover.
  const row = cell.getRow().getData()
  const text = document.createElement("span")
  text.textContent = cell.getValue() || ""
  if (row.expected) {
    text.className = "td-expected"
    text.title = row.expected
  }
  return text
}
