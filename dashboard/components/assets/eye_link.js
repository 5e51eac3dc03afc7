function(cell) {
  const link = document.createElement("a")
  const id = cell.getValue()  // a reserved id has its first letter percent-encoded, as dashboard.store.run_segment
  link.href = __DETAIL_PREFIX__ + (__RESERVED_RUN_IDS__.includes(id)
    ? "%" + id.charCodeAt(0).toString(16).toUpperCase() + id.slice(1) : encodeURIComponent(id))
  link.className = "td-eye"
  link.title = "Open the run's details and logs"
  link.setAttribute("aria-label", "Open the run's details and logs")
  link.innerHTML = '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" fill="none" ' +
    'stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">' +
    '<path d="M1 12s4-8 11-8 11 8 11 8-4 8-11 8-11-8-11-8z"/><circle cx="12" cy="12" r="3"/></svg>'
  return link
}
