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
    if (row.blocked) {
      // A link to the root cause's run when it is known (the run that failed or was terminated).
      const tag = document.createElement(row.blocked_by ? "a" : "span")
      tag.className = "td-blocked"
      tag.title = "Blocked: " + row.blocked + (row.blocked_by ? " (open the run that holds it)" : "")
      if (row.blocked_by) { tag.href = (__RUN_HREF__)(row.blocked_by) }
      tag.textContent = "BLOCKED: " + row.blocked
      chain.append(tag)
    }
    if (!(row.blocks > 0)) { return chain }
    // A root cause says how many runs of its cycle it holds, on a line of its own under its
    // chain (beside it, a full chain and the tag would not fit the column).
    const cell_ = document.createElement("div")
    const tag = document.createElement("span")
    tag.className = "td-blocks"
    tag.title = "Root cause: " + row.blocks + " run" + (row.blocks > 1 ? "s" : "") + " of its cycle can no longer start"
    tag.textContent = "blocks " + row.blocks
    cell_.append(chain, tag)
    return cell_
  }
})()
