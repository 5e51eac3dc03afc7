// The page's clock (dashboard.clock): choosing another zone, or relative times, loads the page
// again with tz= / ago= in its URL, so every time on it (and every page it links to) follows.
const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"
// The server knows the browser's zone only from the browser: tz=local pages are built in this one.
document.cookie = `__COOKIE__=${browserZone}; path=/; max-age=31536000; SameSite=Lax`
box.title = data.caption
zone.value = data.tz
ago.checked = data.relative
zone.setAttribute("list", zones.id)
if (!zones.childElementCount) {
  for (const name of ["local", ...data.zones]) {
    const option = document.createElement("option")
    option.value = name
    zones.append(option)
  }
}
const go = () => {
  const query = new URLSearchParams(window.location.search)
  query.set("__TZ_ARG__", zone.value.trim() || "UTC")
  if (ago.checked === data.default_relative) { query.delete("__AGO_ARG__") }
  else { query.set("__AGO_ARG__", ago.checked ? "1" : "0") }
  window.location.search = query.toString()
}
zone.addEventListener("change", () => { if (zone.value.trim() !== data.tz) { go() } })
zone.addEventListener("input", (event) => {  // an option picked from the list
  if (event.inputType === "insertReplacementText" || !(event instanceof InputEvent)) { go() }
})
zone.addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); go() } })
zone.addEventListener("focus", () => zone.select())
ago.addEventListener("change", go)
// tz=local: a page built before the server knew this browser's zone (a first visit) or in
// another one (the machine moved) loads again, once, now that the cookie says it.
if (data.local && data.zone !== browserZone) {
  const key = "taskdash-tz-reloaded:" + browserZone
  if (!window.sessionStorage.getItem(key)) {
    window.sessionStorage.setItem(key, "1")
    window.location.reload()
  }
}
