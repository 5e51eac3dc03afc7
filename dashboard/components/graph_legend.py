"""The dependency graph's legend: each top-level group's tile colour and how many of its tasks
are shown, folded away under one line so it never pushes the graph down; a box finds a group in
a long list, and a click on one shows only that group.

Names are set as text in the browser (never as HTML): a group name is whatever a spool wrote.
"""

from __future__ import annotations

import param
from panel.reactive import ReactiveHTML

from dashboard.components.resources import resource


class GraphLegend(ReactiveHTML):
    """A folded list of the top-level groups shown, each with its tile colour and task count."""

    #: A tuple, not a list: Panel (1.9) takes an empty list for a list of models, and failed on the
    #: lists the legend held before ("unhashable type: 'list'") when a search left no task shown.
    entries = param.Parameter(default=(), doc="(group, tile colour, tasks shown) per top-level group, "
                                              "a tuple of tuples; '' is no group.")
    picked = param.String(default="", doc="From the browser: the group clicked last (emptied once taken).")

    _template = """
<details id="legend" class="td-legend">
  <summary id="summary" class="td-legend-summary"></summary>
  <input id="find" class="td-legend-find" type="search" placeholder="Find a group"
   aria-label="Find a group in the legend"/>
  <div id="items" class="td-legend-items" role="list"></div>
  <div id="none" class="td-legend-none" hidden>No group matches</div>
</details>"""

    _stylesheets = [resource("graph_legend.css")]

    _scripts = {
        "render": resource("graph_legend.js"),
        "entries": "state.fill()",
    }
