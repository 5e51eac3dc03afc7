function(cell) {
  const row = cell.getRow().getData()
  const name = document.createElement("span")
  name.className = "td-task"
  name.title = row.task
  const cut = Math.max(row.task.lastIndexOf("."), row.task.lastIndexOf("/")) + 1
  const at = cut > 0 && cut < row.task.length ? cut : Math.max(0, row.task.length - 12)
  const head = document.createElement("span")
  head.className = "td-task-head"
  head.textContent = row.task.slice(0, at)
  const tail = document.createElement("span")
  tail.className = "td-task-tail"
  tail.textContent = row.task.slice(at)
  name.append(head, tail)
  if (!row.adhoc) { return name }
  const badge = document.createElement("span")
  badge.className = "td-badge td-adhoc"
  badge.title = "Run from the Adhoc Tasks console"
  badge.textContent = "ADHOC"
  const both = document.createElement("span")
  both.className = "td-task-both"
  both.append(name, badge)
  return both
}
