"""One run's card: its task details and its lifecycle timeline, following the run live.

Its view state is one parameter, the run id; the card reads the run and its status changes
from the Store whenever the hub says the run changed (or Reload asks), and counts the
duration up once a second while the run goes on (`tick`).
"""

from __future__ import annotations

import html

import pandas as pd
import panel as pn
import param

from dashboard import clock as clocks
from dashboard import queries
from dashboard.changes import Change
from dashboard.components.badges import STYLESHEET, adhoc_badge, status_badge
from dashboard.components.resources import resource
from dashboard.formatting import clock, duration_seconds, human_duration, plain
from dashboard.statuses import COLORS, LIFECYCLE, TERMINAL, is_terminal
from dashboard.store import Links, Store

_CARD_STYLE = STYLESHEET + resource("run_card.css")

_ICONS = {
    "done": '<path d="M5 12l5 5L20 7"/>',
    "bad": '<path d="M6 6l12 12M18 6L6 18"/>',
    "now": '<circle cx="12" cy="12" r="4" fill="currentColor"/>',
    "future": '<circle cx="12" cy="12" r="3"/>',
}


def _icon(kind: str) -> str:
    return (f'<svg viewBox="0 0 24 24" width="16" height="16" fill="none" stroke="currentColor" stroke-width="3" '
            f'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">{_ICONS[kind]}</svg>')


def _when(value) -> str:
    """A time as the page's clock shows it, with its zone's abbreviation (and, relative, the time
    itself after it), as HTML."""
    if plain(value) is None:
        return "—"
    times = clocks.current()
    absolute = times.absolute(value, zone_abbreviation=True)
    shown = f"{times.format(value)} ({absolute})" if times.relative else absolute
    return f'<span class="td-when" title="{html.escape(times.name)}">{html.escape(shown)}</span>'


def root_cause_html(run: dict, root: dict | None, links: Links) -> str:
    """What a run's card says of blocking, or "": a blocked run is "blocked by <root task>, FAILED
    <time>" (linking to the root cause's run); a root cause "blocks N runs of its cycle"."""
    if plain(run.get("blocked")) and root is not None:
        href = html.escape(links.page("run_detail", root["run_id"]))
        ended = clock(root["finished"] if plain(root["finished"]) is not None else root["updated"], run["trigger_time"])
        return (f'blocked by <a class="td-root-cause" href="{href}">{html.escape(root["task"])}</a>, '
                f'{html.escape(root["status"])} {ended}')
    blocks = int(plain(run.get("blocks")) or 0)
    if blocks:
        return (f'<span class="td-blocks td-blocks-card">blocks {blocks:,}</span> '
                f"run{'s' if blocks > 1 else ''} of its cycle (same trigger time) can no longer start")
    return ""


def details_html(run: dict, root_cause: str = "", compare_url: str | None = None) -> str:
    """The task details card: every value escaped (`root_cause`: root_cause_html's, escaped there);
    with `compare_url`, a link to the comparison with the task's last success."""
    title = html.escape(run["task"]) + (adhoc_badge() if run["adhoc"] else "")
    exit_code = plain(run["exit_code"])
    rows = [
        ("Status", status_badge(run["status"])),
        ("Group", html.escape(plain(run["grp"]) or "—")),
        ("Agent", html.escape(plain(run["agent"]) or "—")),
        ("Exit code", "—" if exit_code is None else str(int(exit_code))),
        ("Duration", human_duration(duration_seconds(run["started"], run["finished"])) or "—"),
        ("Trigger time", _when(run["trigger_time"])),
        ("Started", _when(run["started"])),
        ("Finished", _when(run["finished"])),
    ]
    if plain(run.get("blocked")):
        rows.append(("Blocked", f'<span class="td-blocked">BLOCKED: {html.escape(run["blocked"])}</span>'
                                " (it can no longer start)"))
    if root_cause:
        rows.append(("Root cause", root_cause))
    if plain(run["message"]):
        rows.append(("Message", html.escape(run["message"])))
    rows.append(("Run id", html.escape(run["run_id"])))
    if compare_url:
        rows.append(("Compare", f'<a class="td-compare-link" href="{html.escape(compare_url)}">'
                                "Compare with the last success of this task</a>"))
    cells = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return f'<dl class="td-card"><div class="td-title">{title}</div>{cells}</dl>'


def timeline_html(run: dict, transitions: pd.DataFrame) -> str:
    """One step per status the run went through, in time order, then the steps still ahead."""
    seen: dict[str, tuple[pd.Timestamp, str | None]] = {}
    for status, ts, message in zip(transitions["status"], transitions["ts"], transitions["message"]):
        seen.setdefault(status, (ts, plain(message)))
    steps, previous = [], None
    current = run["status"]
    blocked = plain(run.get("blocked"))
    for status, (ts, message) in seen.items():
        if status == current and is_terminal(status):
            kind = "done" if status == "SUCCESS" else "bad"
        elif status == current and not blocked:
            kind = "now"
        else:
            kind = "done"
        gap = "" if previous is None else f" · +{human_duration((ts - previous).total_seconds())}"
        note = f'<div class="td-step-note">{html.escape(message)}</div>' if message else ""
        steps.append((kind, status, f'<div class="td-step-time">{_when(ts)}<span class="td-step-gap">{gap}</span>'
                                    f"</div>{note}"))
        previous = ts
    if blocked and not is_terminal(current):
        steps.append(("bad", "BLOCKED", f'<div class="td-step-note">{html.escape(blocked)}: '
                                        "this run can no longer start</div>"))
    elif not is_terminal(current):
        ahead = [s for s in LIFECYCLE if s not in seen and LIFECYCLE.index(s) > LIFECYCLE.index(current)]
        steps += [("future", status, "") for status in ahead]
        steps.append(("future", " | ".join(TERMINAL), ""))
    items = "".join(
        f'<li class="td-{kind}{" td-future" if kind == "future" else ""}" data-status="{html.escape(status)}">'
        f'<span class="td-icon">{_icon(kind)}</span><div><div class="td-step-name" '
        f'style="color:{COLORS.get(status, "inherit") if kind != "future" else "inherit"}">{html.escape(status)}'
        f"</div>{detail}</div></li>" for kind, status, detail in steps)
    return f'<ol class="td-timeline" aria-label="Lifecycle timeline">{items}</ol>'


class RunCard(pn.viewable.Viewer):
    """A run's task details and lifecycle timeline (the top of /task-runs/<run_id>, and a
    notebook's `store.run_card(run_id)`), live. Its view state is `run_id`: setting it shows
    another run."""

    store = param.ClassSelector(class_=Store, doc="What the run is read from.")
    run_id = param.String(default="", doc="The run shown.")
    run = param.Dict(default=None, allow_None=True, constant=True,
                     doc="The run as the index last answered (None: no such run).")
    last_success = param.String(default=None, allow_None=True, constant=True, doc=(
        "The task's last successful run but this one, which the card links to compare with (None: none)."))

    def __init__(self, **params):
        super().__init__(**params)
        self.details = pn.pane.HTML("", stylesheets=[_CARD_STYLE], max_width=420, sizing_mode="stretch_width")
        self.timeline = pn.pane.HTML("", stylesheets=[_CARD_STYLE], sizing_mode="stretch_width")
        self._root_cause = ""
        self.param.watch(lambda _event: self.refresh(), "run_id")
        self.refresh()

    def __panel__(self) -> pn.FlexBox:
        # The lifecycle beside the details, or under them in a window too narrow for both (a phone).
        return pn.FlexBox(pn.Column(pn.pane.HTML("<h3 style='margin:0'>Task details</h3>"), self.details,
                                    styles={"flex": "0 1 440px", "min-width": "0"}),
                          pn.Column(pn.pane.HTML("<h3 style='margin:0'>Lifecycle</h3>"), self.timeline,
                                    styles={"flex": "1 1 300px"}),
                          flex_wrap="wrap", sizing_mode="stretch_width")

    @property
    def running(self) -> bool:
        """Whether the run may still write lines: neither ended nor blocked."""
        return self.run is not None and not (is_terminal(self.run["status"]) or self.run["blocked"])

    def refresh(self) -> None:
        """The one query: read the run and its status changes again."""
        run = queries.run(self.store, self.run_id) if self.run_id else None
        if run is None and self.run is not None and self.run["run_id"] == self.run_id:
            return  # the same run, missing for a moment (the index being rebuilt): keep what is shown
        with param.edit_constant(self):
            self.run = run
        if run is None:
            self.details.object = self.timeline.object = ""
            return
        with param.edit_constant(self):
            self.last_success = queries.last_success(self.store, run["task"], self.run_id)
        root = queries.run(self.store, run["blocked_by"]) if plain(run.get("blocked_by")) else None
        self._root_cause = root_cause_html(run, root, self.store.links)
        self.details.object = details_html(run, self._root_cause, self._compare_url())
        self.timeline.object = timeline_html(run, queries.transitions(self.store, self.run_id))

    def changed(self, change: Change) -> None:
        """Hub delivery: read the run again if it changed, or if its task has a new success to compare with."""
        task = self.run["task"] if self.run is not None else None
        if change.run_changed(self.run_id) or any(
                summary is not None and summary.task == task and summary.status == "SUCCESS"
                for summary in change.runs.values()):
            self.refresh()

    def tick(self) -> None:
        """While the run goes on, its duration counts up."""
        if self.run is not None and plain(self.run["started"]) is not None and plain(self.run["finished"]) is None:
            self.details.object = details_html(self.run, self._root_cause, self._compare_url())

    def _compare_url(self) -> str | None:
        if self.last_success is None:
            return None
        return self.store.links.compare(self.last_success, self.run_id)
