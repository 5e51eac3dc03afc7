"""How statuses look on every page: badges, the ADHOC badge and the lifecycle chain.

The colours come from `dashboard.statuses.COLORS`; this module turns them into the one
stylesheet the pages share, so a status reads the same in the grid, the detail page and
the graph. Anything built here from user text goes through `html.escape`.
"""

from __future__ import annotations

import html

from dashboard.components.resources import resource
from dashboard.statuses import ADHOC_COLOR, COLORS, STATUSES, SYMBOLS

_STATUS_RULES = "\n".join(
    f".td-s-{status} {{ --td-status: {color}; }}\n.td-badge.td-s-{status}::before {{ content: '{SYMBOLS[status]}'; }}"
    for status, color in COLORS.items())

STYLESHEET = "\n" + _STATUS_RULES + "\n" + resource("badges.css", ADHOC=ADHOC_COLOR, FAILED=COLORS["FAILED"], ACTIVE=COLORS["ACTIVE"],
                                                      RUNNING=COLORS["RUNNING"])


def status_badge(status: str) -> str:
    """A status as an escaped HTML badge in its colour."""
    css = f"td-s-{status}" if status in STATUSES else ""
    return f'<span class="td-badge {css}">{html.escape(status)}</span>'


def adhoc_badge() -> str:
    return '<span class="td-badge td-adhoc" title="Run from the Adhoc Tasks console">ADHOC</span>'
