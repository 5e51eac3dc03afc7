"""The frame every page shares: title, navigation between the pages, the clock choice (the zone the
page's times are in) and the connection indicator."""

from __future__ import annotations

import html

import panel as pn
from panel.theme import Fast

from dashboard.components.alert_notices import alert_toggle
from dashboard.components.clock_choice import clock_choice
from dashboard.components.connection import connection_indicator
from dashboard.components.resources import resource
from dashboard.store import Store


class OfflineFast(Fast):
    """Panel's Fast design without its web font: Fast asks fonts.googleapis.com for Open Sans
    on every page (two console errors a page offline). The pages load nothing from other hosts."""

    _resources = {**Fast._resources, "font": {}}


# Panel finds a design's own files by its class name in lower case ("fast/js/fast_design.js").
OfflineFast.__name__ = "Fast"


#: The system's own interface font, as the pages' inline styles already use.
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


# One line a notice, wide enough for a URL problem's message (three of them then end above
# the grid at 1280x800; Notyf's default 300 px wrapped each to 154 px high).
_NOTICE_CSS = resource("notices.css")
#: The header's lines when the window is too narrow for one (a half screen, a phone).
_HEADER_CSS = resource("header.css")
#: Each notice's colour on the notice itself: Notyf paints it on a 400 px "ripple" circle, which
#: left the rest of a wider notice transparent (white text on the page). Dark enough for white text.
NOTICE_TYPES = [
    {"type": kind, "background": colour, "ripple": False,
     "icon": {"className": f"fas fa-{icon}", "tagName": "i", "color": "white"}}
    for kind, colour, icon in (("warning", "#b45309", "exclamation-triangle"), ("info", "#1d4ed8", "info-circle"),
                               ("error", "#b91c1c", "times-circle"), ("success", "#15803d", "check-circle"))]


def navigation(store: Store, current: str) -> pn.pane.HTML:
    links = [("Task Runs", store.links.page("task_runs")), ("Timeline", store.links.page("timeline")),
             ("Tasks & Groups", store.links.page("tasks"))]
    items = " ".join(
        f'<a href="{html.escape(url)}" style="color:white;margin-right:1.2em;'
        f'{"font-weight:bold;text-decoration:underline" if name == current else "text-decoration:none"}">'
        f"{html.escape(name)}</a>" for name, url in links)
    return pn.pane.HTML(items, margin=(12, 10))


def page_template(store: Store, title: str, current: str, *main) -> pn.template.FastListTemplate:
    """A FastListTemplate with the navigation in its header and `main` as its body."""
    pn.extension("tabulator", reconnect=True, notifications=True)
    template = pn.template.FastListTemplate(
        title="Task Runs Dashboard",
        # The links, then the clock and the indicator at the right end: on a line of their own
        # under the links when the window is too narrow for both (see header.css).
        header=[pn.FlexBox(navigation(store, current), pn.Row(
                    clock_choice(), *filter(None, [alert_toggle(store)]), connection_indicator(store), align="center"),
                    justify_content="space-between", align_items="center", flex_wrap="wrap",
                    sizing_mode="stretch_width")],
        # A phone lays the page out at its own width (else at 980 px, shrunk to a third).
        meta_viewport="width=device-width, initial-scale=1",
        main=list(main),
        theme_toggle=False,
        # Panel's busy state is one for the whole process: every session's spinner would turn
        # whenever any session runs a callback (each run page ticks every second), each turn
        # a locked callback on every session, and a closed session waits for its queue to
        # empty before it can end: with many sessions the server never catches up.
        busy_indicator=None,
        accent="#2563eb",
        design=OfflineFast,
        font=FONT,
        main_layout=None,
    )
    if pn.state.notifications is not None:
        # Notices stack from the top, over the title bar and filters, never over the rows
        # (at the bottom right they covered the Finished, Duration and eye columns).
        pn.state.notifications.position = "top-center"
        pn.state.notifications.types = NOTICE_TYPES
    template.config.raw_css.extend([_NOTICE_CSS, _HEADER_CSS])
    if store.rebuilt_reason:  # notifications show HTML: the reason (paths, DuckDB's words) is escaped
        when = "while the server ran" if store.rebuilt_while_running else "when the server started"
        notice = f"The index was rebuilt {when}: {store.rebuilt_reason}"
        pn.state.onload(lambda: pn.state.notifications.warning(html.escape(notice), duration=15_000))
    return template
