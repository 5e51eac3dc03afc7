"""Two runs side by side (issue 20, item 4): their details and lifecycle phases, and an aligned
diff of one log stream, a difference at a time.

The model is dashboard.compare (phases, and the diff as hunks of line numbers from line hashes);
this component reads only the lines of the difference it shows (a few queries by line range),
so two 100,000-line logs never reach the browser. Its view state is its own parameters (the two
runs, the stream, whether times and ids are ignored, which difference is shown), which the
/compare page keeps in its URL. It follows both runs live: a run still going on updates its
side, and new lines of the compared stream diff again.
"""

from __future__ import annotations

import difflib
import html

import panel as pn
import param
from panel.io.document import hold

from dashboard import queries, terminal
from dashboard.changes import Change
from dashboard.compare import Hunk, LogDiff, log_diff, phases
from dashboard.components import MAX_NUMBER
from dashboard.components.badges import STYLESHEET, adhoc_badge, status_badge
from dashboard.components.fleet_search import line_link
from dashboard.components.offload import off_the_loop
from dashboard.components.resources import resource
from dashboard.components.view_state import UrlState, word_for
from dashboard.formatting import clock, human_duration, plain
from dashboard.shared_answers import shared_per_version
from dashboard.spool import STREAMS, SpoolError, validate_run_id
from dashboard.store import Store

#: Equal lines shown before and after a difference, from both logs.
CONTEXT_LINES = 3
#: A difference longer than this shows its first lines of each log and says how many more it has.
SHOWN_LINES = 200
#: A line is shown up to this many visible characters (as the log viewer folds them).
SHOWN_CHARS = 2_000
#: Two lines in each other's place have what differs between them marked up to this length
#: (difflib over characters: longer lines cost too much for 200 pairs).
MARKED_CHARS = 500

_STYLE = STYLESHEET + resource("run_compare.css")

#: The diff, shared by the sessions comparing the same runs between two ingest steps.
_shared_diff = shared_per_version(log_diff)


class ComparePosition(UrlState):
    """What the /compare page's URL keeps: the two runs, the stream, masking, the difference shown."""

    a = param.String(default="", doc="The run compared with (the left side; its last success, say).")
    b = param.String(default="", doc="The run compared (the right side).")
    stream = param.Selector(default="stdout", objects=list(STREAMS), doc="The log stream diffed.")
    ignore_masked = param.Boolean(default=False, doc=(
        "Compare lines with their times, ids and other numbers masked (dashboard.compare.VARYING)."))
    difference = param.Integer(default=1, bounds=(1, MAX_NUMBER), doc=(
        "Which difference is shown, from 1 (the first differing lines); past the last: the last."))

    url_params = ("a", "b", "stream", "ignore_masked", "difference")
    url_texts = {"ignore_masked": word_for("yes", "no")}


def _line(raw) -> str:
    text = terminal.visible(plain(raw) or "")
    return html.escape(text[:SHOWN_CHARS]) + ("<span class='td-cut'> …</span>" if len(text) > SHOWN_CHARS else "")


def _marked_pair(raw_a, raw_b) -> tuple[str, str]:
    """Two lines that stand in each other's place, escaped, with what differs between them marked
    (nothing marked when they have little in common: then all of them differs)."""
    a, b = (terminal.visible(plain(raw) or "")[:SHOWN_CHARS] for raw in (raw_a, raw_b))
    if max(len(a), len(b)) > MARKED_CHARS:
        return _line(raw_a), _line(raw_b)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if matcher.ratio() < 0.4:
        return _line(raw_a), _line(raw_b)
    sides = ([], [])
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for side, text in ((0, a[i1:i2]), (1, b[j1:j2])):
            if text:
                sides[side].append(html.escape(text) if tag == "equal" else f"<mark>{html.escape(text)}</mark>")
    return "".join(sides[0]), "".join(sides[1])


def _lines(store: Store, run_id: str, stream: str, first: int, count: int) -> dict[int, str]:
    if count <= 0:
        return {}
    page = queries.log_page(store, run_id, stream, first, count)
    return dict(zip(page["line_no"].astype(int), page["text"]))


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _phase(run: dict, name: str, seconds: float | None) -> str:
    """A phase's duration, "so far" while it goes on."""
    if seconds is None:
        return "—"
    started, finished = plain(run["started"]), plain(run["finished"])
    going = finished is None and (started is None if name == "queue wait" else started is not None)
    return human_duration(seconds) + (" <span class='td-cmp-note'>so far</span>" if going else "")


def describe(hunk: Hunk) -> str:
    """A difference in words, by the line numbers of each side."""
    def span(first: int, count: int) -> str:
        return f"line {first:,}" if count == 1 else f"lines {first:,}–{first + count - 1:,}"

    if hunk.kind == "inserted":
        return f"B has {_plural(hunk.b_count, 'more line')} at {span(hunk.b_first, hunk.b_count)}"
    if hunk.kind == "deleted":
        return f"A's {span(hunk.a_first, hunk.a_count)} {'is' if hunk.a_count == 1 else 'are'} not in B"
    return f"A's {span(hunk.a_first, hunk.a_count)} became B's {span(hunk.b_first, hunk.b_count)}"


class RunCompare(ComparePosition, pn.viewable.Viewer):
    """Run `a` against run `b` (the body of /compare, and usable in a notebook): a side-by-side
    table of their details and phases, differing values marked, and the diff of a log stream
    with "difference k of N" and previous / next."""

    store = param.ClassSelector(class_=Store, doc="What the runs and their logs are read from.")

    def __init__(self, **params):
        super().__init__(**params)
        self.runs: dict[str, dict | None] = {}
        self.diff: LogDiff | None = None
        self.problem: str | None = None
        self.sides = pn.pane.HTML("", stylesheets=[_STYLE], sizing_mode="stretch_width")
        self.streams = pn.widgets.RadioButtonGroup.from_param(self.param.stream, color="primary",
                                                             variant="outline", margin=(5, 10))
        self.ignore_box = pn.widgets.Checkbox.from_param(self.param.ignore_masked, name="ignore times and ids",
                                                         margin=(14, 10))
        look = {"color": "primary", "variant": "outline"}
        self.previous = pn.widgets.Button(label="‹ Previous", width=110, **look)
        self.next = pn.widgets.Button(label="Next ›", width=90, **look)
        self.previous.on_click(lambda _: self.param.update(difference=max(1, self.shown - 1)))
        self.next.on_click(lambda _: self.param.update(difference=self.shown + 1))
        self.position = pn.pane.HTML("", stylesheets=[_STYLE], margin=(5, 10), sizing_mode="stretch_width")
        self.lines = pn.pane.HTML("", stylesheets=[_STYLE], sizing_mode="stretch_width")
        self.diff_area = pn.Column(
            pn.pane.HTML("<h3 style='margin:8px 0 0 0'>Logs</h3>"),
            pn.FlexBox(self.streams, self.ignore_box, self.previous, self.next, flex_wrap="wrap",
                       align_items="center", sizing_mode="stretch_width"),  # wraps on a narrow screen
            self.position, self.lines, sizing_mode="stretch_width")
        self.param.watch(self._runs_asked, ["a", "b"])
        self.param.watch(self._diff_asked, ["stream", "ignore_masked"])
        self.param.watch(lambda _e: self.show_difference(), "difference")
        self.refresh()

    def __panel__(self) -> pn.Column:
        return pn.Column(self.sides, self.diff_area, sizing_mode="stretch_width")

    # ---- reading ---------------------------------------------------------------------

    @property
    def shown(self) -> int:
        """The difference shown (1-based; 0 when there is none)."""
        hunks = self.diff.hunks if self.diff is not None else []
        return min(self.difference, len(hunks))

    def _check(self) -> str | None:
        """Why the two runs cannot be compared, or None; reads the runs (`self.runs`) once their ids are usable."""
        if not self.a or not self.b:
            return ("Name two runs to compare: /compare?a=RUN&b=RUN (a run's page links to the comparison "
                    "with its task's last success).")
        for run_id in (self.a, self.b):
            try:
                validate_run_id(run_id)
            except SpoolError as exc:
                return str(exc)
        if self.a == self.b:
            return f"a and b are the same run ({self.a}): name two different runs."
        self.runs = {run_id: queries.run(self.store, run_id) for run_id in (self.a, self.b)}
        missing = [run_id for run_id, run in self.runs.items() if run is None]
        if missing:
            return (f"The index has no run {missing[0]!r}. It may not have been ingested yet (this page "
                    "shows the comparison as soon as it is), or the id is mistyped.")
        return None

    def refresh(self) -> None:
        """Read both runs again, and diff their logs."""
        self.runs = {}
        self.problem = self._check()
        self.diff_area.visible = self.problem is None
        if self.problem is not None:
            self.diff = None
            self.sides.object = f'<div class="td-cmp-problem">{html.escape(self.problem)}</div>'
            return
        self._show_sides()
        self.rediff()

    def rediff(self) -> None:
        """Diff the chosen stream again (new lines, another stream, masking turned on or off), off
        the server's event loop: two 100,000-line logs take up to a second, which every other
        session would wait for."""
        if self.problem is not None:
            return
        asked = (self.a, self.b, self.stream, self.ignore_masked)
        if self.diff is None:
            self.position.object = f'<div class="td-cmp-position">Comparing the {self.stream} logs…</div>'
            self.lines.object = ""

        def show(diff: LogDiff) -> None:
            if asked == (self.a, self.b, self.stream, self.ignore_masked) and self.problem is None:
                self.diff = diff  # (a later request's result follows this one's: one worker, in order)
                self.show_difference()

        off_the_loop(lambda: _shared_diff(self.store, *asked), show)

    def _runs_asked(self, *_events) -> None:
        self.diff = None  # the other runs' diff: gone until theirs
        self.refresh()

    def _diff_asked(self, *_events) -> None:
        self.diff = None  # what is shown belongs to the other stream or masking: gone until the new diff
        self.difference = 1  # another stream, or masking turned on or off, opens at its first difference
        self.rediff()

    # ---- the two runs side by side ----------------------------------------------------

    def _show_sides(self) -> None:
        a, b = self.runs[self.a], self.runs[self.b]
        counts = {run_id: queries.log_line_counts(self.store, run_id) for run_id in (self.a, self.b)}
        rows = []

        def row(label: str, values: tuple, shown: tuple[str, str], note: str = "") -> None:
            differs = values[0] != values[1]
            rows.append(f'<tr class="{"td-differs" if differs else ""}"><th>{label}</th>'
                        f"<td>{shown[0]}</td><td>{shown[1]}{note}</td></tr>")

        def text(run: dict, key: str) -> str:
            return html.escape(str(plain(run[key]))) if plain(run[key]) is not None else "—"

        for label, key in (("Task", "task"), ("Status", "status"), ("Agent", "agent"), ("Exit code", "exit_code"),
                           ("Message", "message")):
            values = (plain(a[key]), plain(b[key]))
            if key == "status":
                shown = (status_badge(a[key]), status_badge(b[key]))
            elif key == "task":
                shown = tuple(html.escape(run["task"]) + (adhoc_badge() if run["adhoc"] else "") for run in (a, b))
            elif key == "exit_code":
                shown = tuple("—" if v is None else str(int(v)) for v in values)
                values = tuple(None if v is None else int(v) for v in values)
            else:
                shown = (text(a, key), text(b, key))
            row(label, values, shown)
        row("Trigger time", (None, None), tuple(clock(run["trigger_time"], missing="—") for run in (a, b)))
        phase_a, phase_b = phases(a), phases(b)
        for name in ("queue wait", "run time"):
            first, second = phase_a[name], phase_b[name]
            delta = ""
            if first is not None and second is not None and round(first, 1) != round(second, 1):
                sign = "+" if second > first else "−"
                delta = f" <span class='td-cmp-delta'>{sign}{human_duration(abs(second - first))}</span>"
            row(name.capitalize(), tuple(None if v is None else round(v, 1) for v in (first, second)),
                (_phase(a, name, first), _phase(b, name, second)), delta)
        for stream in STREAMS:
            values = (counts[self.a][stream], counts[self.b][stream])
            row(f"{stream} lines", values, tuple(f"{n:,}" for n in values))
        links = tuple(f'<a href="{html.escape(self.store.links.page("run_detail", run_id))}">{html.escape(run_id)}</a>'
                      for run_id in (self.a, self.b))
        self.sides.object = (
            '<table class="td-cmp-sides"><thead><tr><th></th>'
            f'<th>A · {links[0]}</th><th>B · {links[1]}</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            '<p class="td-cmp-note">Rows that differ are marked ≠.</p>')

    # ---- the diff, a difference at a time ---------------------------------------------

    def show_difference(self) -> None:
        """Show the lines of the chosen difference (and a few equal ones around it) from both logs."""
        if self.problem is not None or self.diff is None:
            return
        with hold():  # its position and its lines reach the browser together
            self._show_difference()

    def _show_difference(self) -> None:
        diff, hunks = self.diff, self.diff.hunks
        k = self.shown
        self.previous.disabled = k <= 1
        self.next.disabled = k >= len(hunks)
        masked = " (times and ids ignored)" if self.ignore_masked else ""
        sizes = f"A {diff.a_lines:,} lines, B {diff.b_lines:,} lines" + (
            " (compared up to the first 2,000,000)" if diff.cut else "")
        if not hunks:
            self.lines.object = ""
            self.position.object = (f'<div class="td-cmp-position">The {self.stream} logs are the same{masked}: '
                                    f"{sizes}.</div>")
            return
        hunk = hunks[k - 1]
        # The lines first: a reader (a notebook, a test) that sees the position sees its lines.
        self.lines.object = self._hunk_table(hunk, hunks[k - 2] if k > 1 else None,
                                             hunks[k] if k < len(hunks) else None)
        self.position.object = (
            f'<div class="td-cmp-position"><b>Difference {k:,} of {len(hunks):,}</b>{masked}: '
            f"{html.escape(describe(hunk))} <span class='td-cmp-note'>· {sizes}</span></div>")

    def _hunk_table(self, hunk: Hunk, before_it: Hunk | None, after_it: Hunk | None) -> str:
        diff = self.diff
        # Equal lines around the difference: up to CONTEXT_LINES, not into the next difference.
        a_end, b_end = hunk.a_first + hunk.a_count, hunk.b_first + hunk.b_count
        before = min(CONTEXT_LINES, hunk.a_first - 1, hunk.b_first - 1)
        if before_it is not None:
            before = min(before, hunk.a_first - (before_it.a_first + before_it.a_count),
                         hunk.b_first - (before_it.b_first + before_it.b_count))
        after = min(CONTEXT_LINES, diff.a_lines - a_end + 1, diff.b_lines - b_end + 1)
        if after_it is not None:
            after = min(after, after_it.a_first - a_end, after_it.b_first - b_end)
        shown_a, shown_b = min(hunk.a_count, SHOWN_LINES), min(hunk.b_count, SHOWN_LINES)
        texts = {}
        for side, run_id, first, shown, end in (("a", self.a, hunk.a_first, shown_a, a_end),
                                                ("b", self.b, hunk.b_first, shown_b, b_end)):
            texts[side] = _lines(self.store, run_id, self.stream, first - before, before + shown) | \
                _lines(self.store, run_id, self.stream, end, after)
        rows = []

        def cell(side: str, run_id: str, number: int | None, kind: str, shown: str | None) -> str:
            if number is None:
                return '<td class="td-cmp-no"></td><td class="td-cmp-text td-cmp-none"></td>'
            link = html.escape(line_link(self.store.links, run_id, self.stream, number))
            return (f'<td class="td-cmp-no"><a href="{link}" title="Open {html.escape(run_id)} at this line">'
                    f'{number:,}</a></td><td class="td-cmp-text td-cmp-{kind}" data-side="{side}" data-line="{number}">'
                    f"{_line(texts[side].get(number)) if shown is None else shown}</td>")

        def pair(a_line: int | None, b_line: int | None, kind: str) -> None:
            shown = (None, None)
            if kind == "change" and a_line is not None and b_line is not None:
                shown = _marked_pair(texts["a"].get(a_line), texts["b"].get(b_line))
            rows.append(f'<tr class="td-cmp-{kind}">'
                        f'{cell("a", self.a, a_line, "del" if kind == "change" else kind, shown[0])}'
                        f'{cell("b", self.b, b_line, "ins" if kind == "change" else kind, shown[1])}</tr>')

        for i in range(before):
            pair(hunk.a_first - before + i, hunk.b_first - before + i, "same")
        for i in range(max(shown_a, shown_b)):
            pair(hunk.a_first + i if i < shown_a else None, hunk.b_first + i if i < shown_b else None, "change")
        if hunk.a_count > shown_a or hunk.b_count > shown_b:
            rows.append(f'<tr><td colspan="4" class="td-cmp-more">… this difference goes on: '
                        f"{hunk.a_count - shown_a:,} more lines of A, {hunk.b_count - shown_b:,} of B (open a run's "
                        "log at its line for the rest)</td></tr>")
        for i in range(after):
            pair(a_end + i, b_end + i, "same")
        return ('<table class="td-cmp-diff"><colgroup><col class="td-cmp-nocol"><col><col class="td-cmp-nocol"><col>'
                f'</colgroup><thead><tr><th colspan="2">A · {html.escape(self.a)}</th>'
                f'<th colspan="2">B · {html.escape(self.b)}</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')

    # ---- live --------------------------------------------------------------------------

    def changed(self, change: Change) -> None:
        """Hub delivery: a compared run changed, or its logs grew."""
        runs = change.run_changed(self.a) or change.run_changed(self.b)
        grown = {run_id for run_id, _stream in change.log_lines} & {self.a, self.b}
        if runs or (grown and self.problem is not None):
            self.refresh()
        elif grown:
            self._show_sides()  # the line counts
            if any((run_id, self.stream) in change.log_lines for run_id in (self.a, self.b)):
                self.rediff()

    def tick(self) -> None:
        """While a run goes on, its run time counts up."""
        if self.problem is None and any(plain(run["finished"]) is None for run in self.runs.values()):
            self._show_sides()
