"""The notebook API: open_store's components are the pages' own Viewers, live on the store."""

from __future__ import annotations

import panel as pn
import pytest
from helpers import wait_until

from dashboard import open_store
from dashboard.components.log_viewer import LogLines, LogViewer
from dashboard.components.run_card import RunCard
from dashboard.spool import SpoolWriter


def test_the_run_card_and_log_viewer_are_viewers_and_run_detail_composes_them(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.status("r-1", "Build", "RUNNING", agent="a")
    writer.append_log("r-1", "stderr", "first\n")
    with open_store(tmp_path / "spool") as store:
        wait_until(lambda: store.counts()["log_lines"] == 1, timeout=30, message="the spool indexed")
        card = store.run_card("r-1")
        logs = store.log_viewer("r-1", stream="stderr", search="first")
        assert isinstance(card, RunCard) and isinstance(logs, LogViewer)
        assert logs.view.find["total"] == 1 and logs.view.lines[0][1] == "first"
        detail = store.run_detail("r-1")  # a Column of the two Viewers' panels
        lines = detail.select(LogLines)[0]
        assert "Build" in detail.select(pn.pane.HTML)[1].object and lines.follow, "a running run's log follows"
        writer.append_log("r-1", "stdout", "second\n")  # delivered at once outside a kernel and a session
        wait_until(lambda: [row[1] for row in lines.appended] == ["second"], timeout=30,
                   message="the new line reached the followed log")
        with pytest.raises(KeyError, match="no run 'r-404'"):
            store.run_card("r-404")
