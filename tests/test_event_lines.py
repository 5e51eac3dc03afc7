"""The bulk parser of status events (DuckDB's JSON functions) against spool.decode_event_line, the authority.

It may hand any line back to Python, but a line it accepts must be valid and carry exactly
the values parse_event gives; the lines our own writers write must all be accepted.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pyarrow as pa
import pytest

from dashboard import bad_lines, event_lines
from dashboard.index import Index
from dashboard.ingest import Ingestor
from dashboard.spool import SpoolError, SpoolWriter, decode_event_line

VALID = {"kind": "status", "run_id": "r-0001", "task": "Generate_Invoice", "status": "RUNNING",
         "ts": "2026-11-28T12:00:03.120Z", "agent": "agent-1", "adhoc": False}

# (field, values to try): each replaces the field of VALID, or removes it (the marker).
MISSING = object()
VARIANTS = {
    "kind": [MISSING, None, "task", "Status", "status ", 1, ["status"]],
    "run_id": [MISSING, None, "", ".", "..", "a/b", "a b", "r" * 128, "r" * 129, "r-é", 7, "x.y_z-1"],
    "task": [MISSING, None, "", " ", "\u00a0", "\t", "T", " a ", "é" * 100, "é" * 200, "x" * 256, "x" * 257,
             "<script>alert(1)</script>", "'; DROP TABLE runs; --", 5, {"a": 1}, "line\nbreak", 'q"uote'],
    "status": [MISSING, None, "running", "RUNNING ", "UNKNOWN", "SUCCESS", "IDLE", 3],
    "ts": [MISSING, None, "", "2026-11-28T12:00:03Z", "2026-11-28T12:00:03", "2026-11-28T12:00:03.1Z",
           "2026-11-28T12:00:03.123456Z", "2026-11-28T12:00:03.1234567Z", "2026-11-28 12:00:03Z",
           "2026-11-28T12:00:03+02:00", "2026-11-28T12:00:03.5-05:30", "2026-02-30T12:00:00Z",
           "2026-11-28T24:00:00Z", "2026-11-28T23:59:60Z", "2026-11-28", " 2026-11-28T12:00:03Z",
           "yesterday", 1764331203, "2026-11-28T12:00Z", "20261128T120003Z"],
    "agent": [MISSING, None, "", "a" * 256, "a" * 257, 1, True, "<b>bold</b>"],
    "adhoc": [MISSING, None, True, False, "true", 1, 0],
    "group": [MISSING, None, "billing", "", "g" * 257, 1],
    "trigger_time": [MISSING, None, "2026-11-28T11:59:00Z", "2026-11-28T11:59:00+01:00", "soon", 5],
    "exit_code": [MISSING, None, 0, 1, -15, 2**31 - 1, 2**31, -2**31, -2**31 - 1, 1.0, 1e3, "1", True, 12345678901],
    "message": [MISSING, None, "", "m" * 4096, "m" * 4097, 3, "done\tok"],
}


def variant_lines() -> list[str]:
    lines = []
    for name, values in VARIANTS.items():
        for value in values:
            event = dict(VALID)
            if value is MISSING:
                event.pop(name, None)
            else:
                event[name] = value
            lines.append(json.dumps(event, ensure_ascii=False))
    return lines


ODD_LINES = [
    "", "   ", "not json", "[1, 2]", '"status"', "42", "null", "{}", "{" + json.dumps(VALID)[1:-1],
    json.dumps(VALID) + " trailing", "  " + json.dumps(VALID), json.dumps(VALID) + "  ", json.dumps(VALID) + "\r",
    json.dumps(VALID, ensure_ascii=True).replace("Generate", "G\\u00e9n\\u00e9rate"),
    json.dumps(VALID).replace("Generate", "G\\ud800"),  # an escaped lone surrogate
    json.dumps(VALID)[:-1] + ', "status": "FAILED"}',  # a field twice: Python takes the last
    json.dumps(VALID)[:-1] + ', "extra": {"nested": [1, 2]}}',
    json.dumps(VALID)[:-1] + ', "exit_code": NaN}',
    json.dumps({**VALID, "kind": "task", "depends_on": []}),
    json.dumps({"kind": "task", "task": "Fetch_Orders", "group": "billing", "depends_on": ["A"]}),
    json.dumps(VALID).replace(": ", ":"),
    json.dumps(VALID, indent=None, separators=(" , ", " : ")),
]


def python_result(line: str):
    """What the line-by-line parser makes of a line, or None when it rejects it."""
    try:
        return decode_event_line(line.encode("utf-8"))
    except SpoolError:
        return None


def test_every_line_the_bulk_parser_accepts_is_valid_with_the_values_python_gives():
    lines = variant_lines() + ODD_LINES
    parser = event_lines.EventLineParser()
    accepted, by_python = parser.parse(pa.array(lines, pa.large_string()))
    parser.close()
    accepted_positions = sorted(set(range(len(lines))) - set(by_python.tolist()))
    assert sorted(accepted.column("position").to_pylist()) == accepted_positions
    mismatches = []
    for row in accepted.to_pylist():
        position = row.pop("position")
        expected = python_result(lines[position])
        if expected is None or expected["kind"] != "status":
            mismatches.append((lines[position], "accepted, but Python rejects it"))
            continue
        expected = {name: expected["group" if name == "grp" else name] for name in row}
        if row != expected:
            mismatches.append((lines[position], row, expected))
    print(f"{len(lines)} lines: {len(accepted_positions)} accepted in bulk, {len(by_python)} left to Python")
    assert mismatches == []
    assert accepted_positions, "the ordinary variants are accepted in bulk"


# DuckDB's threads scan the lines' record batches in any order: each event keeps its line's position.
@pytest.mark.parametrize("scan_batch_lines", [event_lines.SCAN_BATCH_LINES, 7])
def test_every_line_our_own_writer_writes_is_accepted_in_bulk(tmp_path, monkeypatch, scan_batch_lines):
    monkeypatch.setattr(event_lines, "SCAN_BATCH_LINES", scan_batch_lines)
    writer = SpoolWriter(tmp_path / "spool", name="bulk")
    start = dt.datetime(2026, 11, 28, 12, 0, 0, 123000)
    for n, status in zip(range(300), itertools.cycle(("IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING",
                                                      "SUCCESS", "FAILED", "TERMINATED"))):
        writer.status(f"r-{n:04d}", f"Task_{n % 7}", status, agent=None if n % 3 else "agent-1", adhoc=n % 5 == 0,
                      ts=start + dt.timedelta(seconds=n), group="g" if n % 2 else None,
                      trigger_time=start if n % 4 == 0 else None, exit_code=n % 3 - 1 if n % 6 == 0 else None,
                      message="done" if n % 8 == 0 else None)
    writer.close()
    lines = writer.events_path.read_text(encoding="utf-8").split("\n")[:-1]
    parser = event_lines.EventLineParser()
    accepted, by_python = parser.parse(pa.array(lines, pa.large_string()))
    parser.close()
    assert by_python.tolist() == []
    assert accepted.sort_by("position").to_pylist() == [
        {name: (event | {"position": position})["group" if name == "grp" else name] for name in accepted.schema.names}
        for position, event in enumerate(map(python_result, lines))]


def index_state(index: Index) -> dict:
    return {
        "transitions": index.query("SELECT * FROM transitions ORDER BY ALL").to_dict("records"),
        "runs": index.query("SELECT * FROM runs ORDER BY run_id").to_dict("records"),
        "errors": index.query('SELECT file, "offset", reason, excerpt FROM ingest_errors ORDER BY ALL')
                       .to_dict("records"),
    }


def test_a_spool_ingested_in_bulk_gives_the_same_index_as_one_parsed_line_by_line(tmp_path, monkeypatch):
    spool = tmp_path / "spool"
    (spool / "events").mkdir(parents=True)
    lines = (variant_lines() + ODD_LINES) * 3  # duplicates count once, in either parser
    (spool / "events" / "mixed.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert len(lines) >= event_lines.MIN_LINES
    monkeypatch.setattr(bad_lines, "ERROR_SAMPLES", 10**6)  # every bad line listed, to compare them all
    states = []
    for min_lines in (event_lines.MIN_LINES, 10**9):  # bulk, then Python alone
        monkeypatch.setattr(event_lines, "MIN_LINES", min_lines)
        index = Index(tmp_path / f"index-{min_lines}.duckdb")
        added = Ingestor(index, spool).catch_up()
        states.append(index_state(index))
        index.close()
        print(f"MIN_LINES={min_lines}: {added}")
    bulk, by_python = states
    assert bulk["errors"] == by_python["errors"] and len(bulk["errors"]) > 50
    assert bulk["transitions"] == by_python["transitions"]
    assert bulk["runs"] == by_python["runs"]


@pytest.mark.parametrize("line", ["not json", json.dumps({**VALID, "status": "NOPE"})])
def test_a_bad_line_in_a_big_chunk_is_reported_at_its_own_offset(tmp_path, line):
    spool = tmp_path / "spool"
    (spool / "events").mkdir(parents=True)
    good = [json.dumps({**VALID, "run_id": f"r-{n}"}) for n in range(event_lines.MIN_LINES)]
    text = "\n".join(good[:100] + [line] + good[100:]) + "\n"
    (spool / "events" / "e.jsonl").write_text(text, encoding="utf-8")
    index = Index(tmp_path / "index.duckdb")
    Ingestor(index, spool).catch_up()
    errors = index.query('SELECT "offset", excerpt FROM ingest_errors')
    assert errors["offset"].tolist() == [len("\n".join(good[:100])) + 1]
    assert errors["excerpt"].tolist() == [line]
    assert index.counts()["runs"] == len(good)
    index.close()
