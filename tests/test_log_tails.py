"""A log's last line without its newline: a line once its run is terminal or its file is quiet,
and appended bytes end the index exactly as a fresh rebuild would."""

from __future__ import annotations

import os
import time

import pytest

from dashboard import queries
from dashboard.index import Index
from dashboard.ingest import QUIET_SECONDS, Ingestor
from dashboard.spool import SpoolWriter


def lines_of(index, run_id="r-1", stream="stdout"):
    return queries.log_page(index, run_id, stream, 1, 10_000)["text"].tolist()


def rebuilt(tmp_path, name):
    index = Index(tmp_path / name)
    Ingestor(index, tmp_path / "spool").catch_up()
    return index


def make_quiet(path):
    past = time.time() - QUIET_SECONDS - 1
    os.utime(path, (past, past))


def test_a_finished_runs_unterminated_last_line_is_a_line(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", name="w")
    writer.status("r-1", "Build", "RUNNING", agent="a")
    writer.append_log("r-1", "stdout", "compiling\nDone in 96.34s.")
    writer.status("r-1", "Build", "SUCCESS", agent="a", exit_code=0)
    index = rebuilt(tmp_path, "index.duckdb")
    try:
        assert lines_of(index) == ["compiling", "Done in 96.34s."]
        assert queries.log_line_counts(index, "r-1")["stdout"] == 2
        assert list(queries.search_matches(index, "r-1", "stdout", "96.34")) == [2]
    finally:
        index.close()


def test_a_running_runs_tail_waits_until_its_file_is_quiet(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", name="w")
    writer.status("r-1", "Build", "RUNNING", agent="a")
    writer.append_log("r-1", "stdout", "one\n 40% [====    ]")
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, tmp_path / "spool")
    try:
        ingestor.catch_up()
        assert lines_of(index) == ["one"], "a tail just written may still grow"
        assert ingestor.due_tails() == []
        make_quiet(tmp_path / "spool/logs/r-1/stdout.log")
        assert ingestor.due_tails() == ["logs/r-1/stdout.log"]
        ingestor.catch_up(ingestor.due_tails())
        assert lines_of(index) == ["one", " 40% [====    ]"]
    finally:
        index.close()


def test_bytes_appended_after_a_tail_end_as_a_fresh_rebuild_would(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", name="w")
    writer.status("r-1", "Build", "RUNNING", agent="a")
    log = tmp_path / "spool/logs/r-1/stdout.log"
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, tmp_path / "spool")
    try:
        for piece in ("a\nb", "c", "d\r", "\nnext\n", "x", "y\nlast"):
            writer.append_log("r-1", "stdout", piece)
            make_quiet(log)
            ingestor.catch_up()
        fresh = rebuilt(tmp_path, "fresh.duckdb")
        try:
            assert lines_of(index) == lines_of(fresh) == ["a", "bcd", "next", "xy", "last"]
            assert queries.log_line_counts(index, "r-1") == queries.log_line_counts(fresh, "r-1")
            assert index.load_offsets() == fresh.load_offsets()
        finally:
            fresh.close()
        # A restart reads the same offsets back and goes on from them.
        index.close()
        index = Index(tmp_path / "index.duckdb")
        writer.append_log("r-1", "stdout", " line\n")
        Ingestor(index, tmp_path / "spool").catch_up()
        assert lines_of(index) == ["a", "bcd", "next", "xy", "last line"]
    finally:
        index.close()


def test_event_lines_keep_waiting_for_their_newline(tmp_path):
    writer = SpoolWriter(tmp_path / "spool", name="w")
    writer.status("r-1", "Build", "RUNNING", agent="a")
    events = next((tmp_path / "spool/events").iterdir())
    with open(events, "ab") as handle:
        handle.write(b'{"kind": "status", "run_id": "r-1"')
    make_quiet(events)
    index = rebuilt(tmp_path, "index.duckdb")
    try:
        assert index.counts()["ingest_errors"] == 0
        assert index.load_offsets()[f"events/{events.name}"][3] == 0
    finally:
        index.close()


def test_a_download_is_the_bytes_written_and_never_a_file_outside_the_spool(tmp_path):
    from dashboard.store import log_file_chunks
    from dashboard.spool import SpoolError

    writer = SpoolWriter(tmp_path / "spool", name="w")
    raw = b"caf\xe9\r\nline two\r\n" + b"x" * 3_000_000 + b"\nno newline"
    writer.log_path("r-1", "stdout").write_bytes(raw)
    assert b"".join(log_file_chunks(tmp_path / "spool", "r-1", "stdout")) == raw
    assert list(log_file_chunks(tmp_path / "spool", "r-1", "stderr")) == []
    (tmp_path / "secret.txt").write_text("secret")
    writer.log_path("r-2", "stdout").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(SpoolError, match="symbolic link"):
        list(log_file_chunks(tmp_path / "spool", "r-2", "stdout"))


def test_a_following_ingestor_ends_a_quiet_tail_while_other_files_keep_changing(tmp_path):
    from helpers import wait_until

    writer = SpoolWriter(tmp_path / "spool", name="w")
    writer.status("r-1", "Build", "RUNNING", agent="a")
    writer.status("r-busy", "Build", "RUNNING", agent="a")
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, tmp_path / "spool")
    ingestor.start()
    try:
        writer.append_log("r-1", "stdout", "one\nlast words")
        written = 0

        def tail_shown() -> bool:
            nonlocal written
            written += 1
            writer.append_log("r-busy", "stdout", f"busy {written}\n")  # the spool never goes quiet
            return lines_of(index) == ["one", "last words"]

        wait_until(tail_shown, timeout=QUIET_SECONDS + 15, interval=0.1,
                   message="the quiet file's last line indexed")
        assert queries.log_line_counts(index, "r-busy")["stdout"] >= 1
    finally:
        ingestor.stop()
        index.close()


def test_the_viewers_own_download_under_plain_panel_serve_gives_the_bytes_written(tmp_path):
    from dashboard.config import Config
    from dashboard.hub import Hub
    from dashboard.components.log_viewer import LogViewer
    from dashboard.store import Store

    writer = SpoolWriter(tmp_path / "spool", name="w")
    writer.status("r-1", "Build", "RUNNING", agent="a")
    raw = b"caf\xe9\r\nDone in 96.34s."
    writer.log_path("r-1", "stdout").write_bytes(raw)
    writer.status("r-1", "Build", "SUCCESS", agent="a", exit_code=0)
    index = rebuilt(tmp_path, "index.duckdb")
    try:
        viewer = LogViewer(store=Store(index, Hub(), Config(spool=tmp_path / "spool")), run_id="r-1")
        assert viewer._download_file().getvalue() == raw
        assert [row[1] for row in viewer.view.lines] == ["caf\ufffd", "Done in 96.34s."]
    finally:
        index.close()
