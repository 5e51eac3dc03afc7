(value, count) => {
  const header = document.createElement("span")
  header.textContent = value
  const items = document.createElement("span")
  items.textContent = `(${count} item${count === 1 ? "" : "s"})`
  header.append(items)
  return header
}
