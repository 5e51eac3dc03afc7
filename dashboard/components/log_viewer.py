"""The unified log viewer: a run's stdout and stderr, paged from the index, streamed live,
searched whole, followed and downloaded.

The server sends each line as what a terminal shows of it (dashboard.terminal: visible
text, styled runs, http(s) links, its error/warn emphasis, folded past FOLD_CHARS); the
browser draws them with `textContent` and element properties, never HTML, highlights search
matches, and says when the user scrolls away from the bottom so follow mode can stop.

- A finished run opens at page 1; pages of 500 lines are fetched by line range.
- A running run opens following its tail: only new lines are sent as they are ingested (and
  the last one again, in case it had no newline yet).
- Search runs over the whole stream's visible text in DuckDB; next and previous move across
  pages, and so do next / previous error.
"""

from __future__ import annotations

import html
import io
from contextlib import contextmanager

import numpy as np
import panel as pn
import param
from panel.reactive import ReactiveHTML

from dashboard import clock, queries, terminal
from dashboard.emphasis import Emphasis
from dashboard.changes import Change
from dashboard.components import MAX_NUMBER
from dashboard.components.resources import resource
from dashboard.components.view_state import UrlState
from dashboard.shared_answers import shared_per_version
from dashboard.spool import STREAMS
from dashboard.store import Store

PAGE_LINES = queries.LOG_PAGE_LINES
#: Lines the browser keeps while following; older ones leave the top.
FOLLOW_KEEP = 5000
#: A longer line is sent folded, with a control that asks for it whole: 500 such lines are
#: 1 M characters (a page of 60,000-character lines was 30 MB and took 24 s to first paint).
FOLD_CHARS = 2_000
#: Characters of a line read for its folded form: escape sequences may take several per visible one.
FOLD_HEAD = 4 * FOLD_CHARS



class LogLines(ReactiveHTML):
    """The browser side of the viewer: lines as text, colours, highlights, follow, search keys."""

    lines = param.List(default=[], doc=(
        "Rows replacing what is shown: [line number, visible text, styled runs [start, end, classes, colour, "
        "link], 'error' | 'warn' | '', full length of a folded line or 0] (see dashboard.terminal)."))
    appended = param.List(default=[], doc="Rows to add at the end (a row of the last shown line replaces it).")
    replaced = param.List(default=[], doc="Rows to draw again in place (a line unfolded).")
    unfold_request = param.Dict(default={}, doc="From the browser: {line, n}: show that folded line whole.")
    find = param.Dict(default={}, doc="text: what to highlight; current: the current match's line; "
                                      "index and total: for the counter; addressed: a line to mark.")
    follow = param.Boolean(default=False, doc="Keep the newest line in view; the browser turns it off on scroll up.")
    search_request = param.Dict(default={}, doc=(
        "From the browser: {text, moves}; moves counts +1 per Enter or Next and -1 per Shift+Enter or "
        "Prev since the page opened, so presses quicker than the server still all count."))
    error_request = param.Dict(default={}, doc=(
        "From the browser: {moves}, counted as search_request's: +1 per Next error, -1 per Previous error."))
    empty_text = param.List(default=["No output yet."], doc="What an empty view says (a one-item list).")
    zone = param.String(default="UTC", doc=(
        "The IANA zone the page's times are in: ISO 8601 times with a zone (Z or an offset) inside lines "
        "are shown in it, their text as written kept for hover, copy and download."))
    resync = param.Integer(default=0, doc=(
        "From the browser: raised when appended lines do not follow the last one it shows (it missed "
        "some); the server then sends the newest lines whole."))

    _template = """
<div class="td-find">
  <input id="query" type="search" placeholder="Search the whole log…" aria-label="Search the whole log"
         title="Enter: next match · Shift+Enter: previous match"/>
  <button id="previous" title="Previous match (Shift+Enter)">▲ Prev</button>
  <button id="next" title="Next match (Enter)">▼ Next</button>
  <span id="counter" class="td-counter" aria-live="polite"></span>
  <button id="previous_error" title="Previous error line, across pages">▲ Error</button>
  <button id="next_error" title="Next error line, across pages">▼ Error</button>
</div>
<div id="scroller" class="td-log" role="log" tabindex="0"></div>
"""

    _stylesheets = [resource("log_viewer.css")]

    _scripts = {
        "render": resource("log_viewer.js", FOLLOW_KEEP=FOLLOW_KEEP),
        "lines": """
state.rows = data.lines.slice()
state.draw()
if (!data.follow && !data.find.current && !data.find.addressed) { scroller.scrollTop = 0 }""",
        "appended": "state.take(data.appended)",
        "replaced": "state.replace(data.replaced)",
        "find": """
state.draw()
if (data.find.text != null && data.find.text !== state.asked && query.value !== data.find.text) {
  query.value = data.find.text
}""",
        "follow": "state.following(data.follow); if (data.follow) { state.pin() }",
    }


@shared_per_version
def _line_rows(index: Store, run_id: str, stream: str, first: int, count: int, emphasis: Emphasis,
               whole: tuple[int, ...] = ()) -> list[list]:
    """Lines of a stream as the browser's rows (shared by the sessions following it); the lines
    numbered in `whole` are not folded."""
    levels = (emphasis.error_pattern, emphasis.warning_pattern)
    # Only the head of a long line is read: a page of 60,000-character lines was 18 MB to fetch.
    lines = queries.log_page(index, run_id, stream, first, count, levels, head=FOLD_HEAD)
    rows = [log_row(int(number), text, "error" if error else "warn" if warn else "", shown_length=int(length))
            for number, text, length, error, warn in zip(lines["line_no"], lines["text"], lines["shown_length"],
                                                          lines["error"], lines["warn"])]
    for number in whole:
        if first <= number < first + len(rows) and rows[number - first][4]:  # folded: read it whole
            line = queries.log_page(index, run_id, stream, number, 1)
            rows[number - first] = log_row(number, line["text"].iloc[0], rows[number - first][3], whole=True)
    return rows


def log_row(number: int, raw: str, level: str = "", whole: bool = False, shown_length: int | None = None) -> list:
    """One line as the browser draws it: what a terminal shows, its styled runs and links, its
    emphasis ('error', 'warn' or ''), folded to FOLD_CHARS unless `whole` (so a page of 500
    lines stays under ~1 MB). `raw` may be the head of a line whose visible text is
    `shown_length` characters long."""
    text, runs = terminal.shown(raw)
    full = 0
    length = max(len(text), shown_length or 0)
    if length > FOLD_CHARS and not whole:
        full, text = length, text[:FOLD_CHARS]
        runs = [(start, min(end, FOLD_CHARS), style) for start, end, style in runs if start < FOLD_CHARS]
    return [number, text, [[start, end, style.classes, style.color, style.href] for start, end, style in runs],
            level, full]


class LogPosition(UrlState):
    """Where the viewer is, as the run page's URL keeps it: the stream, and a page or a marked line."""

    stream = param.Selector(default="stdout", objects=list(STREAMS), doc="The stream shown.")
    page = param.Integer(default=None, allow_None=True, bounds=(1, MAX_NUMBER), doc=(
        f"The page of {PAGE_LINES} lines shown, from 1 (past the last: the last); None while following "
        "or showing `line`."))
    line = param.Integer(default=None, allow_None=True, bounds=(1, MAX_NUMBER), doc=(
        "A line marked and scrolled to the middle of the log box, on its page: a line's address."))

    url_params = ("stream", "page", "line")


def opening_stream(store: Store, run: dict) -> str:
    """The stream a run's log opens on: for a failed run, the one holding its error lines
    (stdout first, where both do), so a failure written to stderr is what the user sees first."""
    if run["status"] != "FAILED":
        return "stdout"
    pattern = store.config.log_emphasis.error_pattern
    for stream in ("stdout", "stderr"):
        if queries.next_line_matching(store, run["run_id"], stream, pattern, 0) is not None:
            return stream
    return "stdout"


# Tabler's icons as inline SVG: by name, Bokeh fetches their font from cdn.jsdelivr.net.
_FOLLOW_ICON = '<path d="M4 20h16"/><path d="M12 14V4"/><path d="M12 14l4-4"/><path d="M12 14l-4-4"/>'
_RELOAD_ICON = '<path d="M20 11a8.1 8.1 0 0 0-15.5-2m-.5-4v4h4"/><path d="M4 13a8.1 8.1 0 0 0 15.5 2m.5 4v-4h-4"/>'


def _icon(paths: str) -> str:
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="18" height="18" viewBox="0 0 24 24" fill="none" '
            f'stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">{paths}</svg>')


class LogViewer(LogPosition, pn.viewable.Viewer):
    """One run's logs (the body of /task-runs/<run_id>'s log, and a notebook's
    `store.log_viewer(run_id)`): tabs per stream, pages, follow, search, download. Its view
    state is its own parameters (LogPosition's, `follow` and `search`); the stream tabs and
    the Follow button follow them both ways, and one watcher turns a change of them into one
    query. Given together, a line wins over a page, and either over following."""

    store = param.ClassSelector(class_=Store, doc="What the lines are read from.")
    run_id = param.String(default="", doc="The run whose logs are shown.")
    follow = param.Boolean(default=False, doc=(
        "Keep the newest lines in view, adding them as they arrive (scrolling up turns it off)."))
    search = param.String(default="", doc=(
        "Text searched for in the whole stream (any case): its matches are counted and highlighted, "
        "and the view moves to the first one from the page shown."))

    def __init__(self, **params):
        super().__init__(**params)
        self.index = self.store  # what queries read
        self.emphasis: Emphasis = self.store.config.log_emphasis
        self.counts = queries.log_line_counts(self.store, self.run_id)
        self.shown_page = 1  # the page the browser shows (the last while following)
        self.first_sent = 1  # the first line number the browser holds
        self.showed_the_end = False  # whether the lines held were the stream's newest when sent
        self.last_sent = 0  # the last line number the browser holds
        self.matches = np.empty(0, np.int64)
        self.match_text = ""
        self.matches_upto = 0  # lines the match list covers
        self.match_index = -1
        self._moves_seen = 0
        self._error_moves_seen = 0
        self._settling = False  # the viewer is writing its own parameters: no query for them
        # In line with the controls above; times in lines shown in the page's zone.
        self.view = LogLines(sizing_mode="stretch_width", margin=(5, 10), zone=clock.current().zone)
        self.streams = pn.widgets.RadioButtonGroup(options=self._stream_options(), value=self.stream,
                                                   color="primary", variant="outline", margin=(5, 10))
        self.streams.link(self, value="stream", bidirectional=True)  # options carry counts: linked
        look = {"color": "primary", "variant": "outline"}
        self.first = pn.widgets.Button(label="«", width=42, description="First page", **look)
        self.previous = pn.widgets.Button(label="‹ Previous", width=100, **look)
        self.next = pn.widgets.Button(label="Next ›", width=90, **look)
        self.last = pn.widgets.Button(label="»", width=42, description="Last page", **look)
        self.page_input = pn.widgets.IntInput(value=1, start=1, width=90, margin=(5, 5),
                                              description="Go to page")
        self.pages_label = pn.pane.HTML("", margin=(12, 5))
        self.follow_button = pn.widgets.Toggle.from_param(self.param.follow, label="Follow",
                                                          icon=_icon(_FOLLOW_ICON), width=100, **look)
        self.reload_button = pn.widgets.Button(label="Reload", icon=_icon(_RELOAD_ICON), width=100, **look)
        self.lines_label = pn.pane.HTML("", margin=(8, 10), sizing_mode="stretch_width")
        self.download = self._download()
        self._wire()
        self._show(follow_first=False)
        if self.search:
            self.find(self.search)

    # ---- layout ----------------------------------------------------------------------

    def __panel__(self) -> pn.Column:
        # Each wraps in a window too narrow for its one line (a phone): the buttons under the streams.
        toolbar = pn.FlexBox(self.streams, pn.Row(self.follow_button, self.reload_button, self.download,
                                                    styles={"flex-wrap": "wrap"}),
                             justify_content="space-between", flex_wrap="wrap", sizing_mode="stretch_width")
        pager = pn.FlexBox(self.first, self.previous, self.page_input, self.pages_label, self.next, self.last,
                           self.lines_label, flex_wrap="wrap", sizing_mode="stretch_width")
        return pn.Column(toolbar, pager, self.view, sizing_mode="stretch_width")

    def _download(self):
        if self.store.links.download(self.run_id, self.stream) is not None:  # served by taskdash: a streamed route
            return pn.pane.HTML(self._download_link(), margin=(5, 10))
        # Under plain `panel serve` there is no route: the file is built in the session.
        return pn.widgets.FileDownload(callback=self._download_file, filename=f"{self.run_id}-{self.stream}.log",
                                       label="Download", width=120, margin=(5, 10))

    def _download_link(self) -> str:
        url = html.escape(self.store.links.download(self.run_id, self.stream))
        # 34 px high, as the Follow and Reload buttons beside it.
        return (f'<a href="{url}" download class="td-download" style="display:inline-block;padding:0 14px;'
                f'box-sizing:border-box;height:34px;white-space:nowrap;'
                f'border:1px solid #2563eb;border-radius:6px;color:#2563eb;text-decoration:none;'
                f'font:14px/32px system-ui,sans-serif">Download {html.escape(self.stream)}</a>')

    def _download_file(self) -> io.BytesIO:
        return io.BytesIO(b"".join(self.store.log_chunks(self.run_id, self.stream)))

    # ---- user actions ----------------------------------------------------------------

    def _wire(self) -> None:
        self.first.on_click(lambda _: self.param.update(page=1))
        self.previous.on_click(lambda _: self.param.update(page=max(1, self.shown_page - 1)))
        self.next.on_click(lambda _: self.param.update(page=self.shown_page + 1))
        self.last.on_click(lambda _: self.param.update(page=self.pages))
        # Not made from `page`: it shows the page on screen, also when a line or following chose it.
        self.page_input.param.watch(lambda e: e.new != self.shown_page and self.param.update(page=e.new), "value")
        self.view.param.watch(lambda e: self.param.update(follow=e.new), "follow")  # the browser scrolled up
        self.view.param.watch(self._search_requested, "search_request")
        self.view.param.watch(self._unfold_requested, "unfold_request")
        self.view.param.watch(self._error_requested, "error_request")
        self.view.param.watch(lambda _e: self.view.follow and self.start_following(), "resync")
        self.reload_button.on_click(lambda _: self.reload())
        self.param.watch(self._view_changed, ["stream", "page", "line", "follow", "search"])

    def _view_changed(self, *events) -> None:
        """The one watcher: a change of the view state becomes one query."""
        if self._settling:
            return
        changed, text = {event.name for event in events}, self.search
        if "stream" in changed:
            self._stream_switched()
        if "page" in changed and "line" not in changed and self.page is not None:
            self._settle(line=None)  # a page asked for alone: the line marked gives way
        if changed & {"stream", "page", "line"} or ("follow" in changed and self.follow):
            # Another stream alone opens at its start (or its newest lines, following).
            from_start = "stream" in changed and not changed & {"page", "line"}
            self._show(follow_first="follow" in changed, from_start=from_start)
        elif "follow" in changed:  # turned off: the lines shown stay where the user scrolled
            self.view.follow = False
            self._show_position()
        if "search" in changed and text != self.match_text:
            self.find(text)

    @contextmanager
    def _showing(self):
        """What runs inside shows the view state and writes it as shown: no query for those writes."""
        settling, self._settling = self._settling, True
        try:
            yield
        finally:
            self._settling = settling

    def _settle(self, **values) -> None:
        """Write the view state as the viewer now shows it (no query for it)."""
        with self._showing():
            self.param.update(values)

    def _show(self, follow_first: bool, from_start: bool = False) -> None:
        """Show what the view state asks: a line's page, a page, or the newest lines (or, `from_start`,
        the first page unless following)."""
        if self.follow and (follow_first or from_start or (self.line is None and self.page is None)):
            self.start_following()
        elif from_start:
            self.show_page(1)
        elif self.line is not None:
            self.show_page((min(self.line, max(1, self.total)) - 1) // PAGE_LINES + 1, addressed=self.line)
        else:
            self.show_page(self.page or 1)

    @property
    def total(self) -> int:
        return self.counts[self.stream]

    @property
    def pages(self) -> int:
        return queries.page_count(self.total, PAGE_LINES)

    def _stream_switched(self) -> None:
        self.matches, self.match_text, self.matches_upto, self.match_index = np.empty(0, np.int64), "", 0, -1
        self._settle(search="")
        if isinstance(self.download, pn.widgets.FileDownload):
            self.download.filename = f"{self.run_id}-{self.stream}.log"
        else:
            self.download.object = self._download_link()

    def show_page(self, page: int, current: int | None = None, addressed: int | None = None) -> None:
        """Fetch one page by line range and show it (follow mode ends)."""
        self.shown_page = min(max(1, int(page)), self.pages)
        first = (self.shown_page - 1) * PAGE_LINES + 1
        rows = self._rows(first, PAGE_LINES, tuple(n for n in (current, addressed) if n is not None))
        self.first_sent, self.last_sent = first, first + len(rows) - 1
        self.showed_the_end = self.last_sent >= self.total
        with self._showing():
            with param.parameterized.batch_call_watchers(self.view):
                self.view.follow = False
                self.view.find = self._find(current, addressed)
                self.view.lines = rows
            self.param.update(page=None if addressed is not None else self.shown_page, line=addressed, follow=False)
        self._show_position()

    def start_following(self) -> None:
        """Show the newest lines and keep adding them as they arrive."""
        first = max(1, self.total - PAGE_LINES + 1)
        rows = self._rows(first, PAGE_LINES)
        self.first_sent, self.showed_the_end = first, True
        self.last_sent = first + len(rows) - 1 if rows else self.total
        self.shown_page = self.pages
        with self._showing():
            with param.parameterized.batch_call_watchers(self.view):
                self.view.follow = True
                self.view.find = self._find(None, None)
                self.view.lines = rows
            self.param.update(page=None, line=None, follow=True)
        self._show_position()

    def _search_requested(self, event) -> None:
        text, moves = event.new.get("text", ""), int(event.new.get("moves", 0))
        steps, self._moves_seen = moves - self._moves_seen, moves
        self.find(text, steps or 1)

    def find(self, text: str, steps: int = 1) -> None:
        """Move `steps` matches of `text` on (back when negative) in the whole stream, across pages."""
        self._settle(search=text)
        if not text:
            self.matches, self.match_text, self.match_index = np.empty(0, np.int64), "", -1
            self.view.find = {}
            return
        if text != self.match_text or self.matches_upto < self.total:
            if text == self.match_text and self.matches_upto:
                # The stream grew: only its new lines are searched, from the last one searched
                # (a last line without newline then may have grown since).
                self.matches = np.concatenate([self.matches[self.matches < self.matches_upto], queries.search_matches(
                    self.index, self.run_id, self.stream, text, from_line=self.matches_upto)])
            else:
                self.matches = queries.search_matches(self.index, self.run_id, self.stream, text)
            self.matches_upto = self.total
            if text != self.match_text:  # a new search starts from what is on screen
                anchor = (self.shown_page - 1) * PAGE_LINES + 1
                self.match_index = int(np.searchsorted(self.matches, anchor)) - (1 if steps > 0 else 0)
            self.match_text = text
        if not len(self.matches):
            self.match_index = -1
            self.view.find = {"text": text, "total": 0}
            return
        self.match_index = (self.match_index + steps) % len(self.matches)
        line = int(self.matches[self.match_index])
        page = (line - 1) // PAGE_LINES + 1
        if page != self.shown_page or self.view.follow:
            self.show_page(page, current=line)
        else:
            with param.parameterized.batch_call_watchers(self.view):
                self.view.find = self._find(line, None)
                self.view.replaced = self._rows(line, 1, (line,))  # whole, if it was folded

    def _unfold_requested(self, event) -> None:
        line = int(event.new.get("line", 0))
        if line >= 1:
            self.view.replaced = self._rows(line, 1, (line,))

    def _error_requested(self, event) -> None:
        moves = int(event.new.get("moves", 0))
        steps, self._error_moves_seen = moves - self._error_moves_seen, moves
        self.next_error(1 if steps >= 0 else -1)

    def next_error(self, direction: int = 1) -> int | None:
        """Show the next (or previous) line emphasised as an error, across pages; wraps around."""
        here = self.view.find.get("addressed") or self.view.find.get("current")
        if here is None:
            here = (self.shown_page - 1) * PAGE_LINES + (0 if direction > 0 else 1)
        line = queries.next_line_matching(self.index, self.run_id, self.stream, self.emphasis.error_pattern,
                                          here, direction)
        if line is None:
            self.view.find = self._find(None, None) | {"note": "no error lines"}
            return None
        self.show_page((line - 1) // PAGE_LINES + 1, addressed=line)
        return line

    def reload(self) -> None:
        """Read the counts and the shown lines again from the index."""
        self.counts = queries.log_line_counts(self.index, self.run_id)
        self.streams.options = self._stream_options()
        self.matches_upto = 0  # the next search step queries again
        if self.view.follow:
            self.start_following()
        else:
            self.show_page(self.shown_page, current=self.view.find.get("current"))

    # ---- live updates ----------------------------------------------------------------

    def changed(self, change: Change) -> None:
        """Hub delivery: new lines of this run; only lines the browser lacks are sent."""
        grown = {stream: last for (run_id, stream), last in change.log_lines.items() if run_id == self.run_id}
        if not grown:
            return
        for stream, last in grown.items():
            self.counts[stream] = max(self.counts[stream], last)
        self.streams.options = self._stream_options()
        if self.view.follow and self.stream in grown and self.total > self.last_sent:
            if self.total - self.last_sent > FOLLOW_KEEP:
                self.start_following()
            else:
                # From the last line shown: it may have been a last line without newline, since grown.
                rows = self._rows(max(1, self.last_sent), self.total - self.last_sent + 1)
                if rows:
                    self.last_sent = rows[-1][0]
                    self.first_sent = max(self.first_sent, self.last_sent - FOLLOW_KEEP + 1)  # the browser's window
                    self.view.appended = rows
        self.shown_page = self.pages if self.view.follow else self.shown_page
        self._show_position()

    # ---- helpers ---------------------------------------------------------------------

    def _rows(self, first: int, count: int, whole: tuple[int, ...] = ()) -> list[list]:
        return _line_rows(self.index, self.run_id, self.stream, first, count, self.emphasis, whole)

    def _find(self, current: int | None, addressed: int | None) -> dict:
        find = {"text": self.match_text} if self.match_text else {}
        if current is not None and len(self.matches):
            find |= {"current": current, "index": self.match_index + 1, "total": len(self.matches)}
        if addressed is not None:
            find["addressed"] = addressed
        return find

    def _stream_options(self) -> dict[str, str]:
        return {f"{stream} · {self.counts[stream]:,}": stream for stream in STREAMS}

    def _show_position(self) -> None:
        total, follow = self.total, self.view.follow
        self.page_input.param.update(value=self.shown_page, end=self.pages)
        self.pages_label.object = f"of {self.pages:,}"
        self.first.disabled = self.previous.disabled = self.shown_page <= 1 and not follow
        self.next.disabled = self.last.disabled = self.shown_page >= self.pages and not follow
        for control in (self.first, self.previous, self.page_input, self.pages_label, self.next, self.last):
            control.visible = not follow  # following shows the newest lines: there is no page to pick
        if follow:
            text = f"Following the newest of <b>{total:,}</b> lines"
        elif total and self.last_sent >= self.first_sent:
            # What the browser really shows, which lines arriving meanwhile do not change.
            text = f"Lines <b>{self.first_sent:,}–{self.last_sent:,}</b> of <b>{total:,}</b>"
            if total > self.last_sent and self.showed_the_end:
                new = total - self.last_sent
                text += (f" · <span class='td-new-lines'>{new:,} new line{'s' if new > 1 else ''}: "
                         "Follow or Reload to see them</span>")
        elif total:
            text = f"<b>{total:,}</b> lines: Reload to see them"
        else:
            text = "No lines yet"
        self.lines_label.object = text
