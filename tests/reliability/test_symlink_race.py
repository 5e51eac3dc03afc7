"""The symlink race (issue 13): a local user who can write the spool swaps a run's log folder (or
an events file) for a link to a file only the server may read, between the ingestor's check
and its open. Check and open are one step (spool.open_spool_file), so the swapped-in link is
refused, never read; the download route serves only what the index holds, so it cannot show it
either.

A real process swaps the paths back and forth as fast as it can while the real Ingestor reads
the spool again and again into fresh indexes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from dashboard import queries
from dashboard.store import log_file_chunks
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.spool import SpoolError, SpoolFolders, folder_id, open_spool_file

SECRET = "root-only-secret-9c1e"
RUNS = 40
SECONDS = 8

SWAPPER = textwrap.dedent("""
    import os, sys
    spool, outside, away, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    pairs = [(f"{spool}/logs/race-{i}", f"{outside}/race-{i}", f"{away}/race-{i}") for i in range(runs)]
    pairs.append((f"{spool}/events/race.jsonl", f"{outside}/events.jsonl", f"{away}/race.jsonl"))
    print("swapping", flush=True)
    while True:  # each path is the real one half the time, a link to the secret the other half
        for path, target, aside in pairs:
            os.rename(path, aside)        # the real one out of the way
            os.symlink(target, path)      # a link to the secret in its place
        for path, target, aside in pairs:
            os.unlink(path)
            os.rename(aside, path)        # and the real one back
""")


@pytest.fixture
def raced_spool(tmp_path):
    """A spool whose run folders and events file another process swaps for links to secrets."""
    spool, outside, away = tmp_path / "spool", tmp_path / "outside", tmp_path / "away"
    for folder in (spool / "events", spool / "logs", outside, away):
        folder.mkdir(parents=True)
    good = '{"kind":"status","run_id":"%s","task":"T","status":"RUNNING","ts":"2026-11-28T12:00:00Z"}\n'
    # The real files are longer than the secret ones: a read sized by a stat of the real file
    # and made through a swapped-in link takes the whole secret.
    (spool / "events" / "race.jsonl").write_text(good % "race-events" + "\n" * 200)
    (outside / "events.jsonl").write_text(good % "secret-run" + SECRET + "\n")
    for i in range(RUNS):
        (spool / "logs" / f"race-{i}").mkdir()
        (spool / "logs" / f"race-{i}" / "stdout.log").write_text("safe line\n" * 10)
        (outside / f"race-{i}").mkdir()
        (outside / f"race-{i}" / "stdout.log").write_text(f"{SECRET}\n")
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(spool), str(outside), str(away), str(RUNS)],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert swapper.stdout.readline().strip() == "swapping"
        yield spool
    finally:
        swapper.kill()
        swapper.wait()
        swapper.stdout.close()


def test_a_link_swapped_in_between_check_and_open_is_never_read(raced_spool):
    spool = raced_spool
    rounds = safe_lines = links_refused = 0
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        index = Index(None)
        try:
            Ingestor(index, spool).catch_up()
            secret_lines = index.query("SELECT count(*) AS n FROM log_text WHERE text LIKE ?",
                                       [f"%{SECRET}%"])["n"][0]
            assert secret_lines == 0, f"round {rounds}: a file outside the spool was read into the index"
            assert queries.run(index, "secret-run") is None, f"round {rounds}: a linked events file was read"
            safe_lines += index.counts()["log_lines"]
            links_refused += index.query("SELECT count(*) AS n FROM ingest_errors WHERE reason LIKE ?",
                                         ["%symbolic link%"])["n"][0]
        finally:
            index.close()
        rounds += 1
    print(f"\n{rounds} ingests of {RUNS} log folders and an events file swapped by another process: "
          f"{safe_lines:,} safe lines read, {links_refused:,} links refused at the open, the secret never read")
    assert rounds >= 5 and safe_lines > 0, "the race was not exercised"


def test_a_download_never_serves_a_link_swapped_in(raced_spool):
    reads = refused = 0
    deadline = time.monotonic() + SECONDS / 2
    while time.monotonic() < deadline:
        for i in range(RUNS):
            try:
                served = b"".join(log_file_chunks(raced_spool, f"race-{i}", "stdout"))
            except SpoolError:
                refused += 1
                continue
            assert SECRET.encode() not in served, f"race-{i}: the download served a file outside the spool"
            reads += served == b"safe line\n" * 10
    print(f"\n{reads:,} downloads served the run's own log, {refused:,} refused a link, the secret never served")
    assert reads > 0 and refused > 0, "the race was not exercised"


def test_only_regular_files_directly_in_the_folders_are_opened(tmp_path):
    spool = tmp_path / "spool"
    (spool / "logs" / "r-1").mkdir(parents=True)
    (spool / "events").mkdir()
    (tmp_path / "secret.txt").write_text(SECRET)
    os.mkfifo(spool / "logs" / "r-1" / "stdout.log")  # opening it for reading would block
    (spool / "logs" / "r-1" / "stderr.log").symlink_to(tmp_path / "secret.txt")
    (spool / "logs" / "r-2").symlink_to(tmp_path)
    (spool / "events" / "ok.jsonl").write_text("")
    folders = {"events": folder_id(spool / "events"), "logs": folder_id(spool / "logs")}
    for rel, reason in [("logs/r-1/stdout.log", "not a regular file"), ("logs/r-1/stderr.log", "symbolic link"),
                        ("logs/r-2/secret.txt", "symbolic link")]:
        with pytest.raises(SpoolError, match=reason):
            open_spool_file(spool, rel, folders)
    os.close(open_spool_file(spool, "events/ok.jsonl", folders))
    with SpoolFolders(spool, folders) as held:  # an ingest step's: events/ opened once, then held
        os.close(held.open("events/ok.jsonl"))
        (spool / "events").rename(tmp_path / "events-before")
        (spool / "events").symlink_to(tmp_path)  # the folder itself swapped for another
        os.close(held.open("events/ok.jsonl"))  # still the folder it checked
        with pytest.raises(FileNotFoundError):
            held.open("events/secret.txt")
    with pytest.raises(SpoolError, match="folder was replaced"):  # the next step's
        open_spool_file(spool, "events/secret.txt", folders)
