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

from dashboard.components.badges import STYLESHEET
from dashboard.components.resources import resource
from dashboard.formatting import clock, plain
from dashboard.statuses import LIFECYCLE, TERMINAL
from dashboard.store import RESERVED_RUN_IDS

#: Grid field -> the query's sort column, for the sortable columns.
SORT_COLUMNS = {"task": "task", "grp": "grp", "trigger": "trigger_time", "status": "status",
                "agent": "agent", "started": "started", "finished": "finished", "duration": "duration"}
TITLES = {"task": "Task name", "grp": "Group", "trigger": "Trigger Time", "lifecycle": "Lifecycle",
          "status": "Status", "agent": "Agent", "started": "Started", "finished": "Finished",
          "duration": "Duration", "logs": "Logs"}
HIDDEN = ["run_id", "adhoc", "running", "blocked", "blocked_by", "blocks", "late", "expected"]
MIN_NAME_WIDTH = 140

# A long name is cut in its middle: dbt's `model.project.int_orders` differ at their end.
# The end (after the last `.` or `/`, else the last 12 characters) keeps its place while the
# start gives way; the whole name is the tooltip.
TASK_FORMATTER = JSCode(resource("task_name.js").strip())

STATUS_FORMATTER = JSCode(resource("status_badge.js").strip())



def run_href_js(detail_prefix: str) -> str:
    """A JavaScript function: a run id -> its detail page (`detail_prefix` + the id as
    dashboard.store.run_segment writes it: a reserved id has its first letter percent-encoded;
    a query string after the prefix, such as the page's clock, goes after the id)."""
    prefix, mark, query = detail_prefix.partition("?")
    return (f"id => {json.dumps(prefix)} + ({json.dumps(list(RESERVED_RUN_IDS))}.includes(id)"
            ' ? "%" + id.charCodeAt(0).toString(16).toUpperCase() + id.slice(1) : encodeURIComponent(id))'
            f" + {json.dumps(mark + query)}")


def _lifecycle_formatter(detail_prefix: str) -> JSCode:
    """A run that can no longer start (an upstream of its cycle failed) says so after its chain, so a
    blocked ACTIVE run never reads as one still waiting, linking to its root cause's run; a root
    cause says how many it blocks."""
    return JSCode(resource("lifecycle.js", LIFECYCLE=json.dumps(list(LIFECYCLE)), TERMINAL=json.dumps(list(TERMINAL)),
                           RUN_HREF=run_href_js(detail_prefix)).strip())

FINISHED_FORMATTER = JSCode(resource("finished.js").strip())

# Same wording as dashboard.formatting.human_duration, which the CLI uses.
_DURATION_FORMATTER = JSCode(resource("duration.js").strip())


def _logs_formatter(detail_prefix: str) -> JSCode:
    return JSCode(resource("eye_link.js", RUN_HREF=run_href_js(detail_prefix)).strip())


#: The look of TASK_FORMATTER's cells (the tasks table uses both too).
# The name is a block-level flex box as wide as its cell, so the tail's max width is a share of
# the cell: as an inline box sized by its own content, that share was circular, and a short
# name lost its last letters ("Extract_U…") or was pushed right by an empty head.
TASK_NAME_STYLE = resource("task_name.css")

_GRID_STYLE = STYLESHEET + TASK_NAME_STYLE + resource("runs_grid.css")


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
        "trigger": texts(clock(t) for t in runs["trigger_time"]),
        "lifecycle": texts(runs["reached"].fillna("")),
        "status": texts(runs["status"]),
        "agent": texts(runs["agent"].fillna("")),
        "started": texts(clock(s, t) for s, t in zip(runs["started"], runs["trigger_time"])),
        # A running run's expected finish, with its range on hover (dashboard.estimates).
        "finished": texts(clock(f, t) or (f"≈ {clock(e, t)}" if plain(e) is not None else "")
                          for f, e, t in zip(runs["finished"], _column(runs, "expected_finish"), runs["trigger_time"])),
        "expected": texts(f"expected to finish between {clock(low, t)} and {clock(high, t)}"
                          if plain(low) is not None else ""
                          for low, high, t in zip(_column(runs, "finish_low"), _column(runs, "finish_high"),
                                                  runs["trigger_time"])),
        "duration": runs["duration"].astype(float).to_numpy(),
        "running": running.astype(bool).to_numpy(),
        "blocked": texts(_column(runs, "blocked", "").fillna("")),
        "blocked_by": texts(_column(runs, "blocked_by", "").fillna("")),
        "blocks": _column(runs, "blocks", 0).astype(int).to_numpy(),
        "late": _column(runs, "late", False).fillna(False).astype(bool).to_numpy(),
        "logs": texts(runs["run_id"]),
    })


def _column(runs: pd.DataFrame, name: str, missing=None) -> pd.Series:
    """A column of the runs page, or `missing` in each row of a frame without it."""
    return runs[name] if name in runs else pd.Series([missing] * len(runs), index=runs.index, dtype=object)


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


#: A sort that finds every pair of rows equal: Tabulator keeps the order the query gave.
_KEEP_ORDER = JSCode("() => 0")


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
        formatters={"task": TASK_FORMATTER, "lifecycle": _lifecycle_formatter(detail_prefix), "status": STATUS_FORMATTER,
                    "duration": _DURATION_FORMATTER, "finished": FINISHED_FORMATTER,
                    "logs": _logs_formatter(detail_prefix)},
        sortable={"lifecycle": False, "logs": False},
        sorters=[{"field": sort_field, "dir": "desc" if descending else "asc"}],
        # Fixed widths that fit each header and value (the chain's longest, TERMINATED reached
        # through every step, is 305 px: a root cause's "blocks N" goes on a line of its own), and
        # the task name takes the rest: with percentages Tabulator left a 27 px empty header column
        # at 1280 px and cut "Finished" and "Duration" to "Finis…" and "Durat…". A long dotted name
        # keeps its distinguishing end, cut in its middle; at 1280 px about 150 px are left for
        # it, at 1920 px about 800.
        widths={"grp": 86, "trigger": 146, "lifecycle": 320, "status": 110, "agent": 80, "started": 88,
                "finished": 94, "duration": 94, "logs": 56},
        header_align={"logs": "center"},
        text_align={"logs": "center", "duration": "right"},
        # Tabulator keeps the query's order (a sort that finds every pair equal); the header
        # click still reaches the server as `sorters`, which asks DuckDB for that order.
        # The task name takes what the fixed columns leave, but never less than MIN_NAME_WIDTH:
        # at 800 px it was left 40 px ("S..m."); then the grid scrolls sideways instead. (Given
        # columns, Tabulator shows those, in this order, with what Panel makes of each.)
        # Each column names its sorter: Panel gives a column without one the "string" sorter over
        # the default, which put relative times ("43 min ago" before "3 min ago") out of order.
        configuration={"columnDefaults": {"sorter": _KEEP_ORDER},
                       "columns": [{"field": "task", "minWidth": MIN_NAME_WIDTH, "sorter": _KEEP_ORDER},
                                   *({"field": field, "sorter": _KEEP_ORDER} for field in TITLES if field != "task")]},
        stylesheets=[_GRID_STYLE],
        theme="simple",
    )
