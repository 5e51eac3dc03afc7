"""Queries that sessions share (dashboard.shared_answers): one answer per index version and
arguments, and only answers that can still be asked for are kept."""

from __future__ import annotations

import weakref

import pytest

from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.shared_answers import SHARED_ANSWERS_KEPT, shared_per_version
from dashboard.spool import SpoolWriter


@pytest.fixture
def followed(tmp_path):
    """A spool with one running run, its writer, and an index that follows it (its ingestor)."""
    writer = SpoolWriter(tmp_path / "spool", "test")
    writer.status("r-1", "Fetch_Orders", "RUNNING")
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, tmp_path / "spool")
    ingestor.catch_up()
    yield writer, index, ingestor
    index.close()


def test_a_shared_query_is_asked_once_per_index_version_and_arguments(followed):
    writer, index, ingestor = followed
    asked = []

    @shared_per_version
    def task_names(index, status):
        asked.append(status)
        return index.query("SELECT task FROM runs WHERE status = ? ORDER BY task", [status])["task"].tolist()

    assert task_names(index, "RUNNING") == ["Fetch_Orders"]
    assert task_names(index, "RUNNING") is task_names(index, "RUNNING"), "one answer, shared"
    assert task_names(index, "FAILED") == []
    assert asked == ["RUNNING", "FAILED"]

    writer.status("r-2", "Daily_Report", "RUNNING")
    ingestor.catch_up()  # a write: a new version, a new answer
    assert task_names(index, "RUNNING") == ["Daily_Report", "Fetch_Orders"]
    assert asked == ["RUNNING", "FAILED", "RUNNING"]
    ingestor.catch_up()  # nothing new: no write, the answer stands
    task_names(index, "RUNNING")
    assert asked == ["RUNNING", "FAILED", "RUNNING"]


def test_a_shared_query_keeps_only_answers_that_can_still_be_asked(followed):
    """A server asks with a new `now` every second and a new version every ingest step: answers of
    a version gone by are let go at once, and only the last few of the current one are kept."""
    writer, index, ingestor = followed
    asked = []

    @shared_per_version
    def runs_at(index, second):
        asked.append(second)
        return index.query("SELECT run_id, ? AS second FROM runs", [second])

    first = weakref.ref(runs_at(index, 0))
    writer.status("r-2", "Daily_Report", "RUNNING")
    ingestor.catch_up()
    runs_at(index, 1)
    assert first() is None, "the earlier version's answer is no longer held"

    for second in range(2, 2 + SHARED_ANSWERS_KEPT):
        runs_at(index, second)
    asked.clear()
    runs_at(index, 2 + SHARED_ANSWERS_KEPT - 1)
    assert asked == [], "the last ones asked are kept"
    runs_at(index, 1)
    assert asked == [1], "the one used longest ago is let go"
