function(cell) {
  const badge = document.createElement("span")
  badge.className = "td-badge td-s-" + cell.getValue()
  badge.textContent = cell.getValue()
  return badge
}
