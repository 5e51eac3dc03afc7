const w = fig.inner_width, h = fig.inner_height
if (!(w > 0 && h > 0)) { return }
const col = w / Math.abs(xr.end - xr.start), row = h / Math.abs(yr.end - yr.start)
const size = Math.max(__MARK_MIN__, Math.min(__MARK_MAX__, __MARK_SHARE__ * Math.min(col, row)))
for (const [renderer, share] of [[nodes, 1], [arrows, 0.5]]) {
  for (const glyph of [renderer.glyph, renderer.selection_glyph, renderer.nonselection_glyph,
                       renderer.hover_glyph, renderer.muted_glyph]) {
    // A size set from Python arrives as a value spec ({value: 22}); setting an equal size
    // again would still paint the plot once more.
    const now = glyph == null ? null : (typeof glyph.size === "object" ? glyph.size.value : glyph.size)
    if (glyph != null && now !== size * share) { glyph.size = size * share }
  }
}
const show = col >= __COLUMN_PX__ && row >= __ROW_PX__
if (detail.visible !== show) { detail.visible = show }
