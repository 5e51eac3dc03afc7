"""The header's clock choice: the zone every time on the page is shown in, and relative times.

The choice lives in the URL (tz=, ago=; see dashboard.clock): changing it loads the page again
with it, so the server formats every time of the new page in it and its links keep it. The
browser also tells the server its own zone (a cookie), which `tz=local` pages are built in.
"""

from __future__ import annotations

import param
from panel.reactive import ReactiveHTML

from dashboard import clock
from dashboard.components.resources import resource


class ClockChoice(ReactiveHTML):
    """A zone field (any IANA name, with suggestions, or 'local') and an 'ago' box, in the header."""

    tz = param.String(default=clock.UTC, doc="The zone as the URL says it: UTC, local or an IANA name.")
    zone = param.String(default=clock.UTC, doc="The IANA zone the page's times are shown in.")
    local = param.Boolean(default=False, doc="The zone is the browser's own (tz=local).")
    relative = param.Boolean(default=False, doc="Times read relative to now ('5 min ago').")
    default_relative = param.Boolean(default=False, doc="Whether relative times are the settings' default.")
    zones = param.List(default=[], doc="The zone names offered.")
    caption = param.String(default="", doc="What the page's times are, for the field's title.")

    _template = """
<span id="box" class="td-clock">
  <label class="td-clock-label" for="zone">Times in</label>
  <input id="zone" type="text" spellcheck="false" autocomplete="off" aria-label="Time zone"
   placeholder="UTC, local or Europe/Berlin"></input>
  <datalist id="zones"></datalist>
  <label class="td-clock-ago" title="Show times relative to now, such as 5 min ago"><input id="ago"
   type="checkbox"></input>ago</label>
</span>"""

    _stylesheets = [resource("clock_choice.css")]

    _scripts = {"render": resource("clock_choice.js", COOKIE=clock.BROWSER_ZONE_COOKIE, TZ_ARG=clock.TZ_ARG,
                                   AGO_ARG=clock.AGO_ARG)}


def clock_choice() -> ClockChoice:
    """The choice for this session's page, showing its clock (set from the URL by the page)."""
    current = clock.current()
    default = clock.current_default()
    return ClockChoice(tz=current.tz_text, zone=current.zone, local=current.local, relative=current.relative,
                       default_relative=default.relative, zones=list(clock.zone_names()),
                       caption=f"Every time on this page: {current.caption}. Type or pick a zone (an IANA "
                               "name, UTC, or local: your browser's), then Enter.", margin=(0, 6))
