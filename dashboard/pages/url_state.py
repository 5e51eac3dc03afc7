"""A page's view kept in its URL's query string: links reproduce it, back and forward return to it.

Each change of the view pushes a history entry; going back or forward reloads the page,
which rebuilds the view from the URL it lands on.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import panel as pn
import param
from panel.reactive import ReactiveHTML


class BrowserUrl(ReactiveHTML):
    """Writes `query` into the address bar as a new history entry; back and forward reload."""

    query = param.Dict(default={}, doc="The query string's names and values.")

    _template = '<span id="anchor"></span>'
    _scripts = {
        "render": """
if (!window.__taskdashHistory) {
  window.__taskdashHistory = true
  window.addEventListener("popstate", () => window.location.reload())
}
self.query()
""",
        "query": """
const text = new URLSearchParams(data.query).toString()
const search = text ? "?" + text : ""
if (search !== window.location.search) {
  window.history.pushState({}, "", window.location.pathname + search + window.location.hash)
}""",
    }


def url_args() -> dict[str, str]:
    """The session's query-string arguments as text (the first value of each)."""
    return {name: values[0].decode("utf-8", "replace")
            for name, values in (pn.state.session_args or {}).items() if values}


def keep_in_url(view: param.Parameterized, to_url: Callable[[], dict[str, str]]) -> BrowserUrl:
    """A BrowserUrl (to place on the page) that follows every change of `view`'s parameters."""
    url = BrowserUrl(width=0, height=0, margin=0)

    def write(*_events) -> None:
        url.query = to_url()

    view.param.watch(write, [name for name in view.param if name != "name"])
    write()
    return url


def report_url_problems(problems: list[str]) -> None:
    """Tell the user, once the page is up, which URL values were left out and why.

    The messages quote what the URL said, and notifications show HTML: they are escaped.
    """
    if problems:
        pn.state.onload(lambda: [pn.state.notifications.warning(html.escape(problem), duration=10_000)
                                 for problem in problems])
