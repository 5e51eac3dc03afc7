"""How statuses look on every page: badges, the ADHOC badge and the lifecycle chain.

The colours come from `dashboard.statuses.COLORS`; this module turns them into the one
stylesheet the pages share, so a status reads the same in the grid, the detail page and
the graph. Anything built here from user text goes through `html.escape`.
"""

from __future__ import annotations

import html

from dashboard.statuses import ADHOC_COLOR, COLORS, STATUSES, SYMBOLS

_STATUS_RULES = "\n".join(
    f".td-s-{status} {{ --td-status: {color}; }}\n.td-badge.td-s-{status}::before {{ content: '{SYMBOLS[status]}'; }}"
    for status, color in COLORS.items())

STYLESHEET = f"""
{_STATUS_RULES}
.td-badge {{
  display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 11px;
  font-weight: 600; letter-spacing: .03em; line-height: 18px; color: white;
  background: var(--td-status, #6b7280); white-space: nowrap;
}}
.td-badge::before {{ margin-right: 4px; }}
.td-adhoc {{ background: {ADHOC_COLOR}; margin-left: 6px; font-size: 10px; padding: 0 6px; }}
.td-task {{ font-weight: 600; }}
.td-chain {{ font-size: 11px; white-space: nowrap; color: #6b7280; letter-spacing: -.02em; }}
.td-chain .td-step {{ color: #8a919c; }}
.td-chain .td-step.td-reached {{ color: #1f2937; }}
.td-chain .td-step.td-current {{ font-weight: 700; color: var(--td-status); }}
.td-chain .td-sep {{ margin: 0 1px; color: #9ca3af; }}
.td-blocked {{
  display: inline-block; max-width: 190px; overflow: hidden; text-overflow: ellipsis; vertical-align: bottom;
  margin-left: 6px; padding: 0 5px; border: 1px dashed {COLORS["FAILED"]}; border-radius: 4px;
  color: {COLORS["FAILED"]}; font-weight: 600; letter-spacing: 0;
}}
.td-pulse {{
  display: inline-block; width: 7px; height: 7px; border-radius: 50%; margin-left: 3px;
  vertical-align: 1px; background: {COLORS["RUNNING"]}; animation: td-pulse 1.2s ease-in-out infinite;
}}
@keyframes td-pulse {{
  0% {{ box-shadow: 0 0 0 0 {COLORS["RUNNING"]}aa; opacity: 1; }}
  70% {{ box-shadow: 0 0 0 6px {COLORS["RUNNING"]}00; opacity: .6; }}
  100% {{ box-shadow: 0 0 0 0 {COLORS["RUNNING"]}00; opacity: 1; }}
}}
@media (prefers-reduced-motion: reduce) {{ .td-pulse {{ animation: none; }} }}
"""


def status_badge(status: str) -> str:
    """A status as an escaped HTML badge in its colour."""
    css = f"td-s-{status}" if status in STATUSES else ""
    return f'<span class="td-badge {css}">{html.escape(status)}</span>'


def adhoc_badge() -> str:
    return '<span class="td-badge td-adhoc" title="Run from the Adhoc Tasks console">ADHOC</span>'
