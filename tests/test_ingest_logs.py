"""The ingestor on real log files: invalid UTF-8, over-long lines, stray folders, a rotated log,
and the spool's folders as links to another disk."""

from __future__ import annotations

from builders import ingest

from dashboard import queries
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.log_lines import MAX_LINE_CHARS
from dashboard.spool import SpoolWriter


def test_log_lines_keep_invalid_utf8_replaced_and_cut_an_over_long_line(tmp_path):
    log = tmp_path / "spool" / "logs" / "r-1" / "stdout.log"
    log.parent.mkdir(parents=True)
    huge = b"x" * (5 * 1024 * 1024)
    log.write_bytes(b"caf\xc3\xa9 ok\nbad \xff\xfe bytes\r\n" + huge + b"\nafter\n")

    index = ingest(tmp_path)

    lines = queries.log_page(index, "r-1", "stdout", 1)["text"].tolist()
    assert lines[0] == "café ok"
    assert lines[1] == "bad \ufffd\ufffd bytes"
    assert lines[2].startswith("x" * MAX_LINE_CHARS) and "cut at" in lines[2]
    assert len(lines[2]) < MAX_LINE_CHARS + 100
    assert lines[3] == "after"
    assert queries.log_line_counts(index, "r-1") == {"stdout": 4, "stderr": 0}


def test_a_line_longer_than_a_read_chunk_is_cut_and_the_rest_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr("dashboard.ingest.READ_CHUNK", 64 * 1024 + 10)
    log = tmp_path / "spool" / "logs" / "r-1" / "stderr.log"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"before\n" + b"y" * 300_000 + b"\nafter\n")

    index = ingest(tmp_path)

    lines = queries.log_page(index, "r-1", "stderr", 1)["text"].tolist()
    assert lines[0] == "before"
    assert lines[1].startswith("y" * 1000) and "cut at" in lines[1]
    assert lines[2:] == ["after"]


def test_log_folders_that_are_not_run_ids_are_reported_once(tmp_path):
    bad = tmp_path / "spool" / "logs" / "bad name" / "stdout.log"
    bad.parent.mkdir(parents=True)
    bad.write_text("secret\n")
    stray = tmp_path / "spool" / "logs" / "r-1" / "notes.txt"
    stray.parent.mkdir(parents=True)
    stray.write_text("hello\n")
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, tmp_path / "spool")
    ingestor.catch_up()
    ingestor.catch_up()

    errors = index.query("SELECT file, reason FROM ingest_errors ORDER BY file")
    assert errors["file"].tolist() == ["logs/bad name/stdout.log", "logs/r-1/notes.txt"]
    assert "bad run_id" in errors["reason"][0]
    assert index.counts()["log_lines"] == 0


def test_a_truncated_log_is_reported_and_its_new_lines_numbered_on(tmp_path):
    log = tmp_path / "spool" / "logs" / "r-1" / "stdout.log"
    log.parent.mkdir(parents=True)
    log.write_text("one\ntwo\nthree\n")
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, tmp_path / "spool")
    ingestor.catch_up()
    log.write_text("four\n")  # rotated: replaced by a shorter file
    ingestor.catch_up()
    assert queries.log_page(index, "r-1", "stdout", 1)["text"].tolist() == ["one", "two", "three", "four"]
    assert "shrank" in queries.ingest_errors(index)["reason"][0]


def test_the_spool_s_logs_and_events_folders_may_be_links_to_another_disk(tmp_path):
    elsewhere = tmp_path / "bigger-disk"
    writer = SpoolWriter(elsewhere, "test")
    writer.status("r-1", "Fetch_Orders", "RUNNING")
    writer.append_log("r-1", "stdout", "one\ntwo\n")
    writer.close()
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "events").symlink_to(elsewhere / "events")
    (spool / "logs").symlink_to(elsewhere / "logs")
    index = Index(tmp_path / "index.duckdb")
    try:
        added = Ingestor(index, spool).catch_up()
        assert added == {"events": 1, "log_lines": 2, "errors": 0}
        assert queries.log_page(index, "r-1", "stdout", 1)["text"].tolist() == ["one", "two"]
    finally:
        index.close()
