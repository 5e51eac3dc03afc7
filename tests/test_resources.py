"""The components' JavaScript and CSS live in files (dashboard/components/assets/), each read by
a component, with every placeholder filled before Panel gets it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dashboard.components.resources import ASSETS, resource

PACKAGE = Path(__file__).resolve().parents[1] / "dashboard"


def test_every_asset_is_read_by_a_module_and_none_is_missing():
    sources = "\n".join(path.read_text(encoding="utf-8") for path in PACKAGE.rglob("*.py"))
    named = set(re.findall(r'resource\("([\w.]+)"', sources))
    files = {path.name for path in ASSETS.iterdir()}
    assert files == named


def test_what_panel_gets_has_no_placeholder_left():
    import dashboard.components.badges as badges
    import dashboard.components.connection as connection
    import dashboard.components.graph_marks as graph_marks
    import dashboard.components.log_viewer as log_viewer
    import dashboard.components.runs_table as runs_grid

    texts = [badges.STYLESHEET, graph_marks.FIT_MARKS_JS, runs_grid._GRID_STYLE,
             runs_grid._lifecycle_formatter("/task-runs/").js_code, runs_grid._logs_formatter("/task-runs/").js_code,
             *connection.ConnectionIndicator._stylesheets, *connection.ConnectionIndicator._scripts.values(),
             *log_viewer.LogLines._stylesheets, *log_viewer.LogLines._scripts.values()]
    assert not [text for text in texts if re.search(r"__[A-Z_]+__", text)]
    assert '["IDLE", "ACTIVE"' in runs_grid._lifecycle_formatter("/task-runs/").js_code


def test_a_placeholder_the_file_lacks_is_an_error():
    with pytest.raises(KeyError, match="__NOT_THERE__"):
        resource("badges.css", NOT_THERE=1)
