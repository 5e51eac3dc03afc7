"""The ingestor on real log files: invalid UTF-8, over-long lines, stray folders, a rotated log,
and the spool's folders as links to another disk."""

from __future__ import annotations

import random

import pytest
from builders import ingest

from dashboard import queries
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.log_lines import MAX_LINE_CHARS, split_lines
from dashboard.spool import SpoolWriter
from dashboard.terminal import visible_array


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


@pytest.mark.parametrize("split_bytes", [700, 1_000_000], ids=["a few files a split, big ones alone", "all at once"])
def test_the_lines_of_many_files_split_together_are_each_file_s_own(tmp_path, monkeypatch, split_bytes):
    """Many small logs are split into lines together (Batch.split_log_lines): each line, its number
    and its visible text are what its file alone gives, whatever its neighbours hold (invalid
    UTF-8, CRLF, colours, a progress bar's carriage returns, an over-long line)."""
    monkeypatch.setattr("dashboard.index_writes.SPLIT_BYTES", split_bytes)
    kinds = [b"plain %d\n", b"caf\xc3\xa9 \xff\xfe %d\r\n", b"\x1b[31mred %d\x1b[0m\n", b"10%%\r50%%\r100%% %d\n",
             b"\xe2\x82 %d\n", b"y" * (MAX_LINE_CHARS + 5) + b" %d\n"]
    rng, files = random.Random(5), {}
    for n in range(60):
        run_id, stream = f"r-{n:02d}", rng.choice(["stdout", "stderr"])
        files[(run_id, stream)] = b"".join(rng.choice(kinds[:-1] if n % 20 else kinds) % line
                                           for line in range(rng.randrange(1, 8)))
        path = tmp_path / "spool" / "logs" / run_id / f"{stream}.log"
        path.parent.mkdir(parents=True)
        path.write_bytes(files[(run_id, stream)])

    index = ingest(tmp_path)

    stored = index.query("SELECT s.run_id, s.stream, t.line_no, t.text, t.visible FROM log_text t "
                         "JOIN log_streams s USING (log_id) ORDER BY s.run_id, t.line_no")
    for (run_id, stream), data in files.items():
        texts, count = split_lines(data)
        lines = stored[stored["run_id"] == run_id]
        assert lines["stream"].eq(stream).all() and lines["line_no"].tolist() == list(range(1, count + 1))
        assert lines["text"].tolist() == texts.to_pylist(), run_id
        assert [None if v is None or v != v else v for v in lines["visible"]] == visible_array(texts).to_pylist()
    assert any(b"y" * MAX_LINE_CHARS in data for data in files.values()), "an over-long line among them"


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
