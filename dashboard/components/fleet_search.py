"""Fleet log search: which runs printed a text, over the runs grid's filters (issue 20).

A search box under the grid's filters: the runs whose logs have lines matching the text (literal
and any case, or a regular expression), newest first, a page at a time, each with its matching
line counts and first matching line, linking to the run's log at that line. Its view state is
its own parameters; it searches again when the grid's filters change and, while it shows
results, when new lines arrive (at most every LIVE_SECONDS: a search reads every run's logs).

The search never holds the page up: it reads the logs on the offload worker, newest runs first
(queries.fleet_search_progress), and the page shows the runs found so far with "Searching… N of M
runs" until the page of results is complete. Its text, regex flag and page are in the page's URL
as `q`, `q_regex` and `q_page` (SearchQuery), beside the grid's own.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from urllib.parse import urlencode

import panel as pn
import param

from dashboard import queries
from dashboard.changes import Change
from dashboard.components import MAX_NUMBER
from dashboard.components.badges import STYLESHEET, status_badge
from dashboard.components.offload import stream_off_the_loop
from dashboard.components.view_state import UrlState, word_for
from dashboard.formatting import clock
from dashboard.store import Links, Store

#: A live search looks again at most this often.
LIVE_SECONDS = 5.0
#: A first matching line is shown up to this many characters.
SHOWN_CHARS = 240


def line_link(links: Links, run_id: str, stream: str, line: int) -> str:
    """The run page, opened on `stream` at `line`."""
    page = links.page("run_detail", run_id)
    return page + ("&" if "?" in page else "?") + urlencode({"stream": stream, "line": int(line)})


class SearchQuery(UrlState):
    """What the fleet search is asked: its view state, every parameter also in the page's URL."""

    url_params = ("text", "regex", "page")
    # `search` and `page` are the grid's: q=Deadlock&q_regex=true&q_page=2.
    url_names = {"text": "q", "regex": "q_regex", "page": "q_page"}
    url_texts = {"regex": word_for("true", "false")}

    text = param.String(default="", doc="What the logs are searched for; empty: no search.")
    regex = param.Boolean(default=False, doc="The text is a regular expression (RE2, case-sensitive).")
    page = param.Integer(default=1, bounds=(1, MAX_NUMBER), doc="The page of matching runs shown.")


class FleetSearch(SearchQuery, pn.viewable.Viewer):
    """Search every run's logs over the filters `run_filter` gives (the grid's)."""

    def __init__(self, store: Store, run_filter: Callable[[], queries.RunFilter], **params):
        super().__init__(**params)
        self.store, self.run_filter = store, run_filter
        self.input = pn.widgets.TextInput.from_param(
            self.param.text, name="", placeholder="Which runs printed… (search every run's logs)", width=360)
        self.regex_box = pn.widgets.Checkbox.from_param(self.param.regex, name="regular expression",
                                                        margin=(18, 10))
        self.previous = pn.widgets.Button(label="‹ Previous", width=100, color="primary", variant="outline")
        self.next = pn.widgets.Button(label="Next ›", width=100, color="primary", variant="outline")
        self.previous.on_click(lambda _: self.param.update(page=max(1, self.page - 1)))
        self.next.on_click(lambda _: self.param.update(page=self.page + 1))
        self.results = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[STYLESHEET + _STYLE])
        self.pager = pn.Row(self.previous, self.next, visible=False)
        #: The newest search asked for: an older one still reading stops at its next chunk.
        self._asked_number = 0
        #: The last progress shown (None: no search, or it failed).
        self.progress: queries.SearchProgress | None = None
        self.param.watch(self._asked, ["text", "regex", "page"])
        box = pn.Row(self.input, self.regex_box, styles={"flex-wrap": "wrap"})  # the checkbox under it on a phone
        self._layout = pn.Column(box, self.results, self.pager, sizing_mode="stretch_width")
        self.search()

    def __panel__(self) -> pn.Column:
        return self._layout

    def _asked(self, *events) -> None:
        if any(event.name != "page" for event in events) and self.page != 1:
            self.page = 1  # a new search starts at its first page (and searches again)
            return
        self.search()

    def changed(self, change: Change) -> None:
        """Live: new runs or lines may match (called at most every LIVE_SECONDS). The results shown
        stay until the new ones are complete."""
        if self.text and (change.runs or change.many_runs or change.log_lines):
            self.search(quiet=True)

    def search(self, quiet: bool = False) -> None:
        """Ask the index for the page of matching runs, showing them as they are found (`quiet`:
        only once complete). The reading happens off the session's event loop."""
        self._asked_number += 1
        number = self._asked_number
        if not self.text:
            self.progress = None
            self.results.object, self.pager.visible = "", False
            return
        size = queries.SEARCH_PAGE_RUNS
        text, regex, page, run_filter = self.text, self.regex, self.page, self.run_filter()

        def steps():
            for progress in queries.fleet_search_progress(self.store, text, run_filter, regex=regex,
                                                          limit=size + 1, offset=(page - 1) * size):
                if number != self._asked_number:
                    return  # a newer search took over
                if progress.done or not quiet:
                    yield progress

        stream_off_the_loop(steps, lambda progress: self._show(number, progress),
                            lambda exc: self._failed(number, exc))

    def _failed(self, number: int, exc: BaseException) -> None:
        if number != self._asked_number:
            return
        if not isinstance(exc, ValueError):
            raise exc
        self.progress = None
        self.results.object, self.pager.visible = f'<p class="td-search-note">{html.escape(str(exc))}</p>', False

    def _show(self, number: int, progress: queries.SearchProgress) -> None:
        """Put a search's progress on the page (unless a newer search was asked meanwhile)."""
        if number != self._asked_number:
            return
        self.progress = progress
        size = queries.SEARCH_PAGE_RUNS
        more, found = len(progress.found) > size, progress.found.head(size)
        self.previous.disabled, self.next.disabled = self.page == 1, not more
        self.pager.visible = self.page > 1 or more
        note = "" if progress.done else (
            f'<p class="td-search-progress" role="status">Searching… {progress.runs_searched:,} of '
            f"{progress.runs_total:,} runs' logs so far ({progress.lines_searched:,} of "
            f"{progress.lines_total:,} lines)</p>")
        self.results.object = note + (self._table(found, more, progress.done) if progress.done or len(found) else "")

    def _table(self, found, more: bool, done: bool = True) -> str:
        asked = html.escape(self.text)
        if found.empty:
            where = "on this page" if self.page > 1 else "in the runs the filters show"
            return f'<p class="td-search-note">No run printed “{asked}” {where}.</p>'
        first = (self.page - 1) * queries.SEARCH_PAGE_RUNS + 1
        rows = "".join(
            f'<tr><td class="td-search-task">{html.escape(r.task)}</td><td>{status_badge(r.status)}</td>'
            f"<td>{clock(r.trigger_time)}</td><td class=\"td-num\">{r.stdout_matches:,}</td>"
            f'<td class="td-num">{r.stderr_matches:,}</td>'
            f'<td><a href="{html.escape(line_link(self.store.links, r.run_id, r.first_stream, r.first_line))}">'
            f"{r.first_stream}:{r.first_line:,}</a> <code>{html.escape(r.first_text[:SHOWN_CHARS])}</code></td></tr>"
            for r in found.itertuples())
        caption = (f"Runs {first:,}–{first + len(found) - 1:,} that printed “{asked}”"
                   + (" (and more)" if more else "" if done else " so far") + ", newest first, over the grid's filters")
        return (f'<table class="td-search"><caption>{caption}</caption><thead><tr><th>Task</th><th>Status</th>'
                "<th>Trigger time</th><th>stdout lines</th><th>stderr lines</th><th>First match</th></tr></thead>"
                f"<tbody>{rows}</tbody></table>")


_STYLE = """
.td-search { border-collapse: collapse; width: 100%; font-size: 13px; }
.td-search caption { text-align: left; padding: 4px 0; color: #374151; }
.td-search th { text-align: left; border-bottom: 2px solid #2563eb; padding: 4px 8px; }
.td-search td { border-bottom: 1px solid #e5e7eb; padding: 4px 8px; vertical-align: top; }
.td-search .td-num { text-align: right; }
.td-search code { white-space: pre-wrap; overflow-wrap: anywhere; color: #111827; }
.td-search-note { color: #6b7280; }
.td-search-progress { color: #1d4ed8; font-style: italic; margin: 4px 0; }
"""
