"""The notebook API: open_store's components are the pages' own Viewers, live on the store."""

from __future__ import annotations

import panel as pn
import pytest
from helpers import wait_until

from dashboard import open_store
from dashboard.components.log_viewer import LogLines, LogViewer
from dashboard.components.run_card import RunCard
from dashboard.config import Config, ConfigError, load_config
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


def test_compare_is_the_pages_view_and_diffs_again_as_a_run_writes(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", "test")
    for run_id in ("r-1", "r-2"):
        writer.status(run_id, "Build", "RUNNING", agent="a")
        writer.append_log(run_id, "stdout", "same\n")
    with open_store(tmp_path / "spool") as store:
        wait_until(lambda: store.counts()["log_lines"] == 2, timeout=30, message="the spool indexed")
        view = store.compare("r-1", "r-2")
        assert "The stdout logs are the same" in view.position.object
        writer.append_log("r-2", "stdout", "<b>extra</b>\n")
        wait_until(lambda: "Difference 1 of 1" in view.position.object, timeout=30, message="the diff again")
        assert "&lt;b&gt;extra&lt;/b&gt;" in view.lines.object
        later = store.compare("r-1", "r-3")  # a run not ingested yet: said, then shown once it is
        assert "The index has no run 'r-3'" in later.problem and not later.diff_area.visible
        writer.status("r-3", "Build", "RUNNING", agent="b")
        wait_until(lambda: "Difference 1 of 1</b>: A&#x27;s line 1 is not in B" in later.position.object, timeout=30,
                   message="r-3 compared")  # r-3 has no lines yet
        assert later.problem is None and later.diff_area.visible


def test_a_followed_log_is_delivered_more_often_than_other_views_each_as_set(tmp_path, monkeypatch):
    settings = tmp_path / "panel_serve.yaml"
    settings.write_text("spool: spool\nrefresh:\n  push_min_interval_seconds: 0.5\n  log_push_min_interval_seconds: 0.05\n")
    assert Config().log_push_min_interval_seconds < Config().push_min_interval_seconds  # a log's tail is livelier
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.status("r-1", "Build", "RUNNING", agent="a")
    writer.append_log("r-1", "stdout", "first\n")
    monkeypatch.chdir(tmp_path)
    with open_store() as store:
        wait_until(lambda: store.counts()["log_lines"] == 1, timeout=30, message="the spool indexed")
        store.runs_grid()
        store.log_viewer("r-1")
        assert [delivery.min_interval for delivery in store._subscriptions] == [0.5, 0.05]
    settings.write_text("refresh:\n  log_push_min_interval_seconds: soon\n")
    with pytest.raises(ConfigError, match="refresh.log_push_min_interval_seconds must be a number of seconds"):
        load_config(settings)
