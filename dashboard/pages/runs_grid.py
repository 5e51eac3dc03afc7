"""The runs grid: a Tabulator of one page of runs, drawn in the browser from plain values.

The server sends each row as plain fields (task, status, the statuses it reached, seconds
run so far...). Small JavaScript formatters draw the badges, the lifecycle chain and the
eye link with `textContent`, so a task name is always text, never HTML. Durations of
running runs tick in the browser, so a second passing costs the server nothing.

Rows arrive sorted by the query; a header click only tells the server which sort to ask
DuckDB for.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import panel as pn
from panel.io.model import JSCode

from dashboard.app import RESERVED_RUN_IDS
from dashboard.formatting import plain
from dashboard.pages.badges import STYLESHEET
from dashboard.statuses import LIFECYCLE, TERMINAL

#: Grid field -> the query's sort column, for the sortable columns.
SORT_COLUMNS = {"task": "task", "grp": "grp", "trigger": "trigger_time", "status": "status",
                "agent": "agent", "started": "started", "finished": "finished", "duration": "duration"}
TITLES = {"task": "Task name", "grp": "Group", "trigger": "Trigger Time", "lifecycle": "Lifecycle",
          "status": "Status", "agent": "Agent", "started": "Started", "finished": "Finished",
          "duration": "Duration", "logs": "Logs"}
HIDDEN = ["run_id", "adhoc", "running", "blocked"]

# A long name is cut in its middle: dbt's `model.project.int_orders` differ at their end.
# The end (after the last `.` or `/`, else the last 12 characters) keeps its place while the
# start gives way; the whole name is the tooltip.
TASK_FORMATTER = JSCode("""function(cell) {
  const row = cell.getRow().getData()
  const name = document.createElement("span")
  name.className = "td-task"
  name.title = row.task
  const cut = Math.max(row.task.lastIndexOf("."), row.task.lastIndexOf("/")) + 1
  const at = cut > 0 && cut < row.task.length ? cut : Math.max(0, row.task.length - 12)
  const head = document.createElement("span")
  head.className = "td-task-head"
  head.textContent = row.task.slice(0, at)
  const tail = document.createElement("span")
  tail.className = "td-task-tail"
  tail.textContent = row.task.slice(at)
  name.append(head, tail)
  if (!row.adhoc) { return name }
  const badge = document.createElement("span")
  badge.className = "td-badge td-adhoc"
  badge.title = "Run from the Adhoc Tasks console"
  badge.textContent = "ADHOC"
  const both = document.createElement("span")
  both.className = "td-task-both"
  both.append(name, badge)
  return both
}""")

STATUS_FORMATTER = JSCode("""function(cell) {
  const badge = document.createElement("span")
  badge.className = "td-badge td-s-" + cell.getValue()
  badge.textContent = cell.getValue()
  return badge
}""")

# A run that can no longer start (an upstream of its cycle failed) says so after its chain,
# so a blocked ACTIVE run never reads as one still waiting.
_BLOCKED_TAG = """
    if (row.blocked) {
      const tag = document.createElement("span")
      tag.className = "td-blocked"
      tag.title = "Blocked: " + row.blocked
      tag.textContent = "BLOCKED: " + row.blocked
      chain.append(tag)
    }"""

_LIFECYCLE_FORMATTER = JSCode(f"""(() => {{
  const lifecycle = {json.dumps(list(LIFECYCLE))}
  const terminal = {json.dumps(list(TERMINAL))}
  return function(cell) {{
    const row = cell.getRow().getData()
    const reached = new Set((cell.getValue() || "").split(",").filter(Boolean))
    const end = terminal.includes(row.status) ? row.status : "…"
    const chain = document.createElement("span")
    chain.className = "td-chain"
    chain.title = "Lifecycle: " + [...lifecycle, end].filter(s => reached.has(s)).join(" → ")
    // A blocked run will never reach the steps ahead: show only those it went through.
    const steps = [...lifecycle, end].filter(s => !row.blocked || reached.has(s) || s === row.status)
    for (const [i, step] of steps.entries()) {{
      if (i) {{
        const sep = document.createElement("span")
        sep.className = "td-sep"
        sep.textContent = "›"
        chain.append(sep)
      }}
      const item = document.createElement("span")
      item.className = "td-step td-s-" + step + (reached.has(step) ? " td-reached" : "") +
                       (step === row.status ? " td-current" : "")
      item.textContent = step
      chain.append(item)
      if (step === row.status && step === "RUNNING") {{
        const dot = document.createElement("span")
        dot.className = "td-pulse"
        dot.title = "running"
        chain.append(dot)
      }}
    }}{_BLOCKED_TAG}
    return chain
  }}
}})()""")

# Same wording as dashboard.formatting.human_duration, which the CLI uses.
_DURATION_FORMATTER = JSCode("""(() => {
  const human = (s) => {
    if (s == null || Number.isNaN(s)) { return "" }
    if (s < 10) { return s.toFixed(1) + "s" }
    s = Math.floor(s)
    const pad = (n) => String(n).padStart(2, "0")
    if (s < 60) { return s + "s" }
    if (s < 3600) { return Math.floor(s / 60) + "m " + pad(s % 60) + "s" }
    return Math.floor(s / 3600) + "h " + pad(Math.floor(s % 3600 / 60)) + "m"
  }
  const ticking = window.__taskdashTicking || (window.__taskdashTicking = new Set())
  if (!window.__taskdashTicker) {
    window.__taskdashTicker = setInterval(() => {
      for (const item of ticking) {
        if (!item.el.isConnected) { ticking.delete(item); continue }
        item.el.textContent = human(item.seconds + (Date.now() - item.since) / 1000)
      }
    }, 1000)
  }
  return function(cell, params, onRendered) {
    const row = cell.getRow().getData()
    const el = document.createElement("span")
    el.textContent = human(cell.getValue())
    if (row.running && cell.getValue() != null) {
      // The server measured `duration` when it sent the row; count on from then.
      row.__received = row.__received || Date.now()
      const item = {el, seconds: cell.getValue(), since: row.__received}
      el.textContent = human(item.seconds + (Date.now() - item.since) / 1000)
      onRendered(() => ticking.add(item))
    }
    return el
  }
})()""")


def _logs_formatter(detail_prefix: str) -> JSCode:
    return JSCode(f"""function(cell) {{
  const link = document.createElement("a")
  const id = cell.getValue()  // a reserved id as dashboard.app.run_segment links it
  link.href = {json.dumps(detail_prefix)} + ({json.dumps(list(RESERVED_RUN_IDS))}.includes(id)
    ? "%" + id.charCodeAt(0).toString(16).toUpperCase() + id.slice(1) : encodeURIComponent(id))
  link.className = "td-eye"
  link.title = "Open the run's details and logs"
  link.setAttribute("aria-label", "Open the run's details and logs")
  link.innerHTML = '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" fill="none" ' +
    'stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">' +
    '<path d="M1 12s4-8 11-8 11 8 11 8-4 8-11 8-11-8-11-8z"/><circle cx="12" cy="12" r="3"/></svg>'
  return link
}}""")


#: The look of TASK_FORMATTER's cells (the tasks table uses both too).
# The name is a block-level flex box as wide as its cell, so the tail's max width is a share of
# the cell: as an inline box sized by its own content, that share was circular, and a short
# name lost its last letters ("Extract_U…") or was pushed right by an empty head.
TASK_NAME_STYLE = """
.td-task { display: flex; min-width: 0; white-space: nowrap; }
.td-task-head { overflow: hidden; text-overflow: ellipsis; min-width: 0; flex: 0 1 auto; }
.td-task-tail { overflow: hidden; text-overflow: ellipsis; flex: 0 0 auto; max-width: calc(100% - 1.2em); }
.td-task-both { display: flex; align-items: baseline; }
.td-task-both .td-badge { flex: none; }
"""

_GRID_STYLE = STYLESHEET + TASK_NAME_STYLE + """
.td-eye { color: #2563eb; display: inline-flex; padding: 2px; border-radius: 4px; }
.td-eye:hover { background: #dbeafe; }
.tabulator .tabulator-cell { padding: 6px 8px; }
.tabulator-row.tabulator-row-even { background-color: #f9fafb; }
"""


def _clock(value, day_of=None) -> str:
    """A UTC timestamp as 'YYYY-MM-DD HH:MM:SS', or only the time when on the day of `day_of`."""
    value = plain(value)
    if value is None:
        return ""
    value = pd.Timestamp(value)
    if day_of is not None and plain(day_of) is not None and pd.Timestamp(day_of).date() == value.date():
        return value.strftime("%H:%M:%S")
    return value.strftime("%Y-%m-%d %H:%M:%S")


def grid_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """A page of runs from `queries.runs_page` as the plain fields the grid draws.

    Text columns stay text even when the page is empty: the grid picks each column's
    formatter from its first value's types, and an empty page of floats would show every
    later time as NaN (a fresh demo opened before its first run).
    """
    running = runs["started"].notna() & runs["finished"].isna()

    def texts(values) -> np.ndarray:
        return np.array(list(values), dtype=object)

    return pd.DataFrame({
        "run_id": texts(runs["run_id"]),
        "task": texts(runs["task"]),
        "adhoc": runs["adhoc"].fillna(False).astype(bool).to_numpy(),
        "grp": texts(runs["grp"].fillna("")),
        "trigger": texts(_clock(t) for t in runs["trigger_time"]),
        "lifecycle": texts(runs["reached"].fillna("")),
        "status": texts(runs["status"]),
        "agent": texts(runs["agent"].fillna("")),
        "started": texts(_clock(s, t) for s, t in zip(runs["started"], runs["trigger_time"])),
        "finished": texts(_clock(f, t) for f, t in zip(runs["finished"], runs["trigger_time"])),
        "duration": runs["duration"].astype(float).to_numpy(),
        "running": running.astype(bool).to_numpy(),
        "blocked": texts(runs["blocked"].fillna("") if "blocked" in runs else [""] * len(runs)),
        "logs": texts(runs["run_id"]),
    })


def same_rows(shown: pd.DataFrame, new: pd.DataFrame) -> bool:
    """Whether a page would look the same: durations of running runs tick on their own."""
    if len(shown) != len(new) or not shown["run_id"].equals(new["run_id"]):
        return False
    fixed = [column for column in new.columns if column != "duration"]
    if not shown[fixed].equals(new[fixed]):
        return False
    finished = ~new["running"].to_numpy()
    return np.array_equal(shown["duration"].to_numpy()[finished], new["duration"].to_numpy()[finished],
                          equal_nan=True)


class QuerySortedTabulator(pn.widgets.Tabulator):
    """A Tabulator whose rows come sorted by the query: the header only picks the sort."""

    def _sort_df(self, df: pd.DataFrame) -> pd.DataFrame:
        return df


def runs_table(detail_prefix: str, sort_field: str, descending: bool) -> QuerySortedTabulator:
    """An empty grid with the runs columns; `detail_prefix` + run id is a run's detail URL."""
    empty = grid_rows(pd.DataFrame({column: pd.Series(dtype=object) for column in (
        "run_id", "task", "adhoc", "grp", "trigger_time", "reached", "status", "agent", "started",
        "finished", "duration")}))
    return QuerySortedTabulator(
        empty,
        show_index=False,
        disabled=True,
        selectable=False,
        sizing_mode="stretch_width",
        layout="fit_columns",
        titles=TITLES,
        hidden_columns=HIDDEN,
        formatters={"task": TASK_FORMATTER, "lifecycle": _LIFECYCLE_FORMATTER, "status": STATUS_FORMATTER,
                    "duration": _DURATION_FORMATTER, "logs": _logs_formatter(detail_prefix)},
        sortable={"lifecycle": False, "logs": False},
        sorters=[{"field": sort_field, "dir": "desc" if descending else "asc"}],
        # Fixed widths that fit each header and value (the chain's longest, TERMINATED reached
        # through every step, is 305 px), and the task name takes the rest: with percentages
        # Tabulator left a 27 px empty header column at 1280 px and cut "Finished" and "Duration"
        # to "Finis…" and "Durat…". A long dotted name keeps its distinguishing end, cut in its
        # middle; at 1280 px about 150 px are left for it, at 1920 px about 800.
        widths={"grp": 86, "trigger": 146, "lifecycle": 320, "status": 110, "agent": 80, "started": 88,
                "finished": 94, "duration": 94, "logs": 56},
        header_align={"logs": "center"},
        text_align={"logs": "center", "duration": "right"},
        # Tabulator keeps the query's order (a sort that finds every pair equal); the header
        # click still reaches the server as `sorters`, which asks DuckDB for that order.
        configuration={"columnDefaults": {"sorter": JSCode("() => 0")}},
        stylesheets=[_GRID_STYLE],
        theme="simple",
    )
