"""Hostile spool content (issue 23, ingest side): floods of bad lines, files that cannot be read,
events dated far away. Real spool files in temporary folders, a real DuckDB index."""

from __future__ import annotations

import datetime as dt
import json
import re

from dashboard import ingest
from dashboard.index import Index
from dashboard.ingest import ERROR_SAMPLES, EVENT_LINES_MAX, Ingestor
from dashboard.spool import format_timestamp

T0 = dt.datetime(2026, 11, 28, 12, 0, 0)


def event(run_id: str, status: str = "RUNNING", ts: dt.datetime = T0) -> bytes:
    return json.dumps({"kind": "status", "run_id": run_id, "task": "Generate_Invoice", "status": status,
                       "ts": format_timestamp(ts), "agent": "agent-1"}).encode() + b"\n"


def bad_lines_listed(index: Index) -> int:
    """How many bad lines the ingest errors account for: one a row, or N of a 'N more like this' row."""
    total = 0
    for reason in index.query("SELECT reason FROM ingest_errors")["reason"]:
        more = re.match(r"([\d,]+) more bad lines like this", reason)
        total += int(more[1].replace(",", "")) if more else 1
    return total


JUNK = [b"x", b"{", b"[1, 2]", b"\xff\xfe not utf-8", b'"text"', b"{}", b"12"]


def test_a_flood_of_bad_lines_costs_a_few_errors_and_keeps_every_good_line_between(tmp_path):
    spool = tmp_path / "spool"
    (spool / "events").mkdir(parents=True)
    good, bad = 0, 0
    with open(spool / "events" / "flood.jsonl", "wb") as out:
        for n in range(60_000):
            if n % 1_000 == 0:
                out.write(event(f"r-{n}"))
                good += 1
            else:
                out.write(JUNK[n % len(JUNK)] + b"\n")
                bad += 1
    index = Index(tmp_path / "index.duckdb")
    try:
        added = Ingestor(index, spool).catch_up()
        rows = index.query('SELECT "offset", reason, excerpt FROM ingest_errors ORDER BY "offset"')
        print(f"\n{bad:,} bad lines, {good} good: {len(rows)} ingest errors; the last: {rows['reason'].iloc[-1]!r}")
        assert index.counts()["runs"] == good, "every good line between the bad ones"
        assert len(rows) == added["errors"] == ERROR_SAMPLES + 1, "20 listed, the rest one count"
        assert bad_lines_listed(index) == bad
        assert all(len(excerpt) <= ingest.EXCERPT_BYTES for excerpt in rows["excerpt"])
        content = (spool / "events" / "flood.jsonl").read_bytes()
        assert all(content[offset - 1:offset] in (b"", b"\n") for offset in rows["offset"]), "offsets of lines"
    finally:
        index.close()


def test_one_file_of_junk_does_not_hold_up_the_runs_of_another(tmp_path, monkeypatch):
    spool = tmp_path / "spool"
    (spool / "events").mkdir(parents=True)
    (spool / "events" / "a-junk.jsonl").write_bytes(b"x\n" * (3 * EVENT_LINES_MAX))
    (spool / "events" / "b-good.jsonl").write_bytes(event("r-good"))
    index = Index(tmp_path / "index.duckdb")
    commits = []
    apply = index.apply

    def recorded(batch):
        touched = apply(batch)
        commits.append((dict(batch.offsets), set(touched or ())))
        return touched
    monkeypatch.setattr(index, "apply", recorded)
    try:
        Ingestor(index, spool).catch_up()
        junk_size = (spool / "events" / "a-junk.jsonl").stat().st_size
        first_with_good = next(n for n, (_, runs) in enumerate(commits) if "r-good" in runs)
        junk_read = commits[first_with_good][0].get("events/a-junk.jsonl", (0,))[0]
        print(f"\n{len(commits)} commits; r-good went in commit {first_with_good + 1}, with "
              f"{junk_read:,} of the junk file's {junk_size:,} bytes read")
        assert junk_read < junk_size, "the good file waited for the whole junk file"
        assert bad_lines_listed(index) == 3 * EVENT_LINES_MAX
    finally:
        index.close()
