(() => {
  const lifecycle = __LIFECYCLE__
  const terminal = __TERMINAL__
  return function(cell) {
    const row = cell.getRow().getData()
    const reached = new Set((cell.getValue() || "").split(",").filter(Boolean))
    const end = terminal.includes(row.status) ? row.status : "…"
    const chain = document.createElement("span")
    chain.className = "td-chain"
    chain.title = "Lifecycle: " + [...lifecycle, end].filter(s => reached.has(s)).join(" → ")
    // A blocked run will never reach the steps ahead: show only those it went through.
    const steps = [...lifecycle, end].filter(s => !row.blocked || reached.has(s) || s === row.status)
    for (const [i, step] of steps.entries()) {
      if (i) {
        const sep = document.createElement("span")
        sep.className = "td-sep"
        sep.textContent = "›"
        chain.append(sep)
      }
      const item = document.createElement("span")
      item.className = "td-step td-s-" + step + (reached.has(step) ? " td-reached" : "") +
                       (step === row.status ? " td-current" : "")
      item.textContent = step
      chain.append(item)
      if (step === row.status && step === "RUNNING") {
        const dot = document.createElement("span")
        dot.className = "td-pulse"
        dot.title = "running"
        chain.append(dot)
      }
      if (step === row.status && row.late) {
        const tag = document.createElement("span")
        tag.className = "td-late"
        tag.title = "Late: running longer than 90% of its task's recent successful runs" +
                    (row.expected ? "; " + row.expected : "")
        tag.textContent = "LATE"
        chain.append(tag)
      }
    }
    // What holds the run, and how many runs a root cause holds, each on a line of its own under
    // the chain: beside it, a chain and a tag did not fit the column and the cell's ellipsis hid
    // the tag whole.
    const lines = []
    if (row.blocked) {
      // A link to the root cause's run when it is known (the run that failed or was terminated).
      const tag = document.createElement(row.blocked_by ? "a" : "span")
      tag.className = "td-blocked"
      tag.title = "Blocked: " + row.blocked + (row.blocked_by ? " (open the run that holds it)" : "")
      if (row.blocked_by) { tag.href = (__RUN_HREF__)(row.blocked_by) }
      tag.textContent = "BLOCKED: " + row.blocked
      lines.push(tag)
    }
    if (row.blocks > 0) {
      const tag = document.createElement("span")
      tag.className = "td-blocks"
      tag.title = "Root cause: " + row.blocks + " run" + (row.blocks > 1 ? "s" : "") + " of its cycle can no longer start"
      tag.textContent = "blocks " + row.blocks
      lines.push(tag)
    }
    if (lines.length === 0) { return chain }
    const cell_ = document.createElement("div")
    cell_.append(chain, ...lines)
    return cell_
  }
})()
