function(cell) {
  const link = document.createElement("a")
  link.href = (__RUN_HREF__)(cell.getValue())
  link.className = "td-eye"
  link.title = "Open the run's details and logs"
  link.setAttribute("aria-label", "Open the run's details and logs")
  link.innerHTML = '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" fill="none" ' +
    'stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">' +
    '<path d="M1 12s4-8 11-8 11 8 11 8-4 8-11 8-11-8-11-8z"/><circle cx="12" cy="12" r="3"/></svg>'
  return link
}
