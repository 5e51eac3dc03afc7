"""The index's tables: their DuckDB layout, the Arrow form of a transition, and the row a write reports.

The index owns these: the event parser produces rows of TRANSITION_SCHEMA, the writes put them
in, and the reads name the same columns. A change of the layout raises SCHEMA_VERSION, and an
index of another version is dropped and rebuilt from the spool.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import NamedTuple

import pyarrow as pa

from .statuses import STATUSES

SCHEMA_VERSION = "9"  # 9: runs.reached is a set of bits (8: ingest_offsets has the spool's host)

# Log text is stored uncompressed: three times the disk, but a search scans it twice as fast
# and an append costs half (measured on 2M realistic lines: 274 against 91 MB, ILIKE 138
# against 250 ms, 2.3M against 1.1M lines/s).
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR, value VARCHAR);
CREATE TABLE IF NOT EXISTS tasks (
    task VARCHAR, grp VARCHAR, depends_on VARCHAR[], description VARCHAR, defined_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS transitions (
    run_id VARCHAR, task VARCHAR, status VARCHAR, ts TIMESTAMP, agent VARCHAR, adhoc BOOLEAN,
    grp VARCHAR, trigger_time TIMESTAMP, exit_code INTEGER, message VARCHAR);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR, task VARCHAR, grp VARCHAR, status VARCHAR, agent VARCHAR, adhoc BOOLEAN,
    trigger_time TIMESTAMP, started TIMESTAMP, finished TIMESTAMP, exit_code INTEGER,
    message VARCHAR, updated TIMESTAMP, reached UTINYINT, own_grp BOOLEAN);
CREATE TABLE IF NOT EXISTS log_streams (log_id INTEGER, run_id VARCHAR, stream VARCHAR, lines BIGINT);
CREATE TABLE IF NOT EXISTS log_text (log_id INTEGER, line_no BIGINT, text VARCHAR USING COMPRESSION uncompressed,
    visible VARCHAR USING COMPRESSION uncompressed);  -- what a terminal shows, if not the text itself
CREATE VIEW IF NOT EXISTS log_lines AS
    SELECT s.run_id, s.stream, t.line_no, t.text FROM log_text t JOIN log_streams s USING (log_id);
CREATE TABLE IF NOT EXISTS ingest_offsets (
    host VARCHAR, path VARCHAR, "offset" BIGINT, lines BIGINT, in_long_line BOOLEAN, tail BIGINT);
CREATE TABLE IF NOT EXISTS ingest_errors (
    file VARCHAR, "offset" BIGINT, reason VARCHAR, excerpt VARCHAR, recorded TIMESTAMP);
"""

#: The statuses a run went through are stored as one bit each, in this order (runs.reached). As a
#: list they were the costly column of a page of runs scattered over the table: at 1M runs, the
#: week's longest 52 took 84 ms to read, 36 ms with the bits. They are named once the page is read:
#: named in its statement, each of the thousands of runs it was cut from was named (+1.7 ms).
REACHED_BITS = tuple(sorted(STATUSES))
_REACHED_NAMES = pa.array([",".join(status for bit, status in enumerate(REACHED_BITS) if code >> bit & 1)
                           for code in range(1 << len(REACHED_BITS))])


def reached_names(bits: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The statuses of each run's `reached` bits, in name order, joined by commas."""
    return _REACHED_NAMES.take(bits)


# DuckLake stores columns as Parquet and takes no compression per column: the same tables without it.
LAKE_SCHEMA = re.sub(r"\s+USING COMPRESSION \w+", "", SCHEMA)

TABLES = ("meta", "tasks", "transitions", "runs", "log_streams", "log_text", "ingest_offsets", "ingest_errors")

#: The transitions table's columns, in the order of both parsers' output.
TRANSITION_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("task", pa.string()), ("status", pa.string()), ("ts", pa.timestamp("us")),
    ("agent", pa.string()), ("adhoc", pa.bool_()), ("grp", pa.string()), ("trigger_time", pa.timestamp("us")),
    ("exit_code", pa.int32()), ("message", pa.string())])
#: A transition and where its line is: the first of two events of the same run, status and
#: time wins, so which one that is must not depend on how the lines were parsed.
POSITIONED_SCHEMA = TRANSITION_SCHEMA.append(pa.field("position", pa.int64()))

TRANSITION_COLUMNS = TRANSITION_SCHEMA.names


class RunSummary(NamedTuple):
    """What a live page needs to know of a changed run to tell whether its view is affected."""

    task: str
    grp: str | None
    status: str
    trigger_time: dt.datetime | None
