"""A page's view kept in its URL's query string: links reproduce it, back and forward return to it.

Each change of the view pushes a history entry; going back or forward reloads the page,
which rebuilds the view from the URL it lands on. What the values say is the component's
(dashboard.components.view_state: the one codec); this module is the session's and browser's
side: which arguments may reach a page at all, the address bar, and the notices.
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable
from urllib.parse import urlencode

import panel as pn
import param
from panel.reactive import ReactiveHTML

from dashboard import clock
from dashboard.components.view_state import UrlState

log = logging.getLogger(__name__)

#: A query value longer than this is refused before anything reads it: no value of ours needs
#: more (a task name or group is at most 256 characters).
MAX_VALUE_CHARS = 300


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


def keep_in_url(*views: UrlState) -> BrowserUrl:
    """A BrowserUrl (to place on the page) that follows every change of the parameters the `views`
    keep in the URL (their text: view.to_url; views on one page use distinct URL names)."""
    url = BrowserUrl(width=0, height=0, margin=0)
    kept = clock.current_url_args()  # the page's clock: chosen in the header, which reloads the page

    def write(*_events) -> None:
        url.query = kept | {name: text for view in views for name, text in view.to_url().items()}

    for view in views:
        view.param.watch(write, list(view.url_params))
    write()
    return url


def report_url_problems(problems: list[str]) -> None:
    """Tell the user, once the page is up, which URL values were left out and why.

    The messages quote what the URL said, and notifications show HTML: they are escaped.
    """
    if problems:
        pn.state.onload(lambda: [pn.state.notifications.warning(html.escape(problem), duration=10_000)
                                 for problem in problems])


def page_args(owned: Callable[[], object] | type, *more: str) -> Callable:
    """Decorate a page factory: only its own query arguments, bounded, reach Panel and the page.

    Panel reads some arguments of every page itself, before and after our code runs, and
    trusts them: `?theme=<unknown>` makes FastListTemplate raise a KeyError that Panel's
    server renders, traceback and all, as HTML (the value runs as script); a number of over
    4,300 digits in any argument makes Panel's Location raise ValueError (HTTP 500). So every
    argument but the page's own (the parameters of `owned`, a Parameterized class, and `more`)
    is removed from the session's request, and so is a value over MAX_VALUE_CHARS (with a
    notice), in both what Panel reads as arguments and the URI its Location parses. A page that
    still fails to build shows a plain message; the traceback goes to the server's log only.
    """
    names = {name for name in owned.param if name != "name"} | set(more) | {clock.TZ_ARG, clock.AGO_ARG}

    def decorate(factory: Callable) -> Callable:
        @functools.wraps(factory)
        def page(*args):
            problems = _keep_only(names)
            problems += choose_clock(getattr(args[0], "config", None) if args else None)
            try:
                built = factory(*args)
            except Exception:
                log.exception("the page %s could not be built", factory.__module__)
                return pn.pane.HTML("<h2>This page could not be shown</h2><p>The server's log says why.</p>",
                                    margin=32)
            report_url_problems(problems)
            return built
        return page
    return decorate


def choose_clock(config=None) -> list[str]:
    """Set the session's clock (dashboard.clock) from its URL (tz=, ago=), the settings' default
    and, for tz=local, the browser's zone as its last page said (a cookie: the zone is known in
    the browser only); return what the URL said wrong."""
    default = clock.default_clock(config.time_zone, config.relative_times) if config is not None else clock.Clock()
    args = url_args()
    chosen, problems = clock.choose(args.get(clock.TZ_ARG), args.get(clock.AGO_ARG), default,
                                    pn.state.cookies.get(clock.BROWSER_ZONE_COOKIE))
    clock.use(chosen, default)
    return problems


def _keep_only(names: set[str]) -> list[str]:
    """Remove every query argument not in `names`, and every over-long value; say what was refused."""
    context = pn.state.curdoc.session_context if pn.state.curdoc else None
    request = getattr(context, "request", None)
    if request is None:
        return []
    arguments, problems = request.arguments, []  # the dict Panel's session_args is
    for name in list(arguments):
        values = arguments[name]
        if name not in names:
            del arguments[name]
        elif values and len(values[0]) > MAX_VALUE_CHARS:
            del arguments[name]
            problems.append(f"ignored {name[:40]}=… from the URL: longer than {MAX_VALUE_CHARS} characters")
    http_request = getattr(request, "_request", None)  # what Panel's Location parses: request.uri
    if http_request is not None:
        kept = urlencode([(name, values[0]) for name, values in arguments.items() if values])
        http_request.uri = http_request.path + (f"?{kept}" if kept else "")
    return problems
