"""Status event lines parsed in bulk by DuckDB's JSON functions: the ingest hot path.

A chunk of event lines goes to DuckDB as one Arrow column. SQL keeps the status events it
can prove valid under the spool contract, already typed as transitions. Every other line
(task definitions, anything unusual, anything invalid) is handed back, and the ingestor
gives it to `spool.decode_event_line`, which stays the authority on what a valid event is
and says why a line is rejected. So the SQL only has to be right about what it accepts: a
narrower set of lines (ISO timestamps without a zone or with Z, no \\u escapes, limits
counted in bytes), with exactly the values `decode_event_line` gives them.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from .index_schema import POSITIONED_SCHEMA
from .spool import MAX_NESTING
from .statuses import STATUSES, sql_list

#: Below this many lines a chunk is parsed in Python: a DuckDB query costs milliseconds.
MIN_LINES = 256
#: Lines per Arrow record batch handed to DuckDB, which scans a registered table one batch per
#: thread: 54,000 lines as one batch kept a core idle (0.29 s; as batches of 4,096, 0.17 s).
SCAN_BATCH_LINES = 4_096

_FIELDS = ("kind", "run_id", "task", "status", "ts", "agent", "adhoc", "group", "trigger_time", "exit_code",
           "message")
# Each line is parsed once, into the raw JSON text of each field (j): its first character
# tells the JSON type, and a string without escapes is that text without its quotes.
_AS_JSON = "{" + ", ".join(f'"{name}": "JSON"' for name in _FIELDS) + "}"
# The one timestamp form the fast path accepts: what SpoolWriter writes, Z optional.
_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?Z?$"


def _is_text(name: str) -> str:
    return f"starts_with(j.{name}, '\"')"


def _absent(name: str) -> str:  # missing, or JSON null
    return f"j.{name} IS NULL"


def _value(name: str) -> str:
    return f"CASE WHEN strpos(j.{name}, '\\') = 0 THEN (j.{name}::VARCHAR)[2:-2] ELSE j.{name} ->> '$' END"


def _text(name: str, limit: int) -> str:
    # strlen counts bytes, never fewer than Python's characters: within it, within the limit.
    return f"({_absent(name)} OR ({_is_text(name)} AND strlen(v.{name}) <= {limit}))"


def _timestamp(name: str) -> str:  # (its value cast once, as `<name>_value`: see PARSE_SQL)
    return f"({_is_text(name)} AND regexp_matches(v.{name}, '{_TIMESTAMP}') AND {name}_value IS NOT NULL)"


def _cast_time(name: str) -> str:
    # The cast reads a trailing Z as UTC, the one zone _TIMESTAMP lets through: trimming it first
    # copied every time (45 of 870 ms, one thread, 388,000 lines).
    return f"try_cast(v.{name} AS TIMESTAMP) AS {name}_value"


_STATUS_LIST = sql_list(STATUSES)
_PROVEN_VALID = f"""
    v.kind = 'status' AND {_is_text('kind')}
    AND {_is_text('status')} AND v.status IN ({_STATUS_LIST})
    AND {_is_text('run_id')} AND regexp_full_match(v.run_id, '[A-Za-z0-9._-]{{1,128}}')
    AND v.run_id NOT IN ('.', '..')
    AND {_is_text('task')} AND strlen(v.task) <= 256 AND regexp_matches(v.task, '[!-~]')
    AND {_text('agent', 256)} AND {_text('"group"', 256)} AND {_text('message', 4096)}
    AND {_timestamp('ts')} AND ({_absent('trigger_time')} OR {_timestamp('trigger_time')})
    AND (j.adhoc IN ('true', 'false') OR NOT has_adhoc)  -- null is not false
    AND ({_absent('exit_code')} OR (regexp_full_match(j.exit_code, '-?[0-9]{{1,10}}')
                                    AND try_cast(j.exit_code AS INTEGER) IS NOT NULL))
"""

# A candidate is a JSON object without \u escapes (left to Python, which tells a lone
# surrogate from a character). A field given twice counts the first time, in both parsers.
# DuckDB's json_valid also takes NaN, Infinity (any case) and trailing commas, which are not
# JSON, and any depth: a line that might hold those (or more brackets than MAX_NESTING) is
# left to Python, which says why it is rejected. One pattern for each character a lax value
# can follow, each led by that literal character: 78 ms for 300,000 lines where one pattern
# led by a class of the three took 150-225 ms (json_valid itself: 29-64 ms).
_LAX_JSON = (r":\s*-?[NnIi][AaNn]", r",\s*(?:[\]}]|-?[NnIi][AaNn])", r"\[\s*-?[NnIi][AaNn]")
_STRICT_JSON = " AND ".join(f"NOT regexp_matches(line, '{pattern}')" for pattern in _LAX_JSON)
# More brackets than MAX_NESTING, as one pattern: 53 ms for 194,000 lines, where counting them as
# the length the line loses with them replaced took 125 ms (a quarter of the whole parse).
_TOO_MANY_BRACKETS = r"regexp_matches(line, '^(?:[^\[{]*[\[{]){" + str(MAX_NESTING + 1) + "}')"
# A line whose one bracket is its first character (an event's usual line) needs no count: two
# searches for a character cost half the pattern (44 against 96 ms for 388,000 lines).
_ONE_BRACKET = "(strpos(line, '[') = 0 AND strpos(right(line, -1), '{') = 0)"
_TEXT_FIELDS = ("kind", "run_id", "task", "status", "ts", "agent", "group", "trigger_time", "message")
# try_cast where a line is proven valid (ok), which the casts then always pass: DuckDB 1.5.5 casts
# ahead of the CASE, and one exit_code of 12345678901 in a chunk failed the whole query. The times
# are cast once, for the proof and the result (cast in each, 48 of 507 ms for 388,000 lines).
PARSE_SQL = f"""
SELECT position, ok,
       v.run_id, v.task, v.status, CASE WHEN ok THEN ts_value END AS ts, v.agent,
       coalesce(j.adhoc = 'true', false) AS adhoc, v."group" AS grp,
       CASE WHEN ok THEN trigger_time_value END AS trigger_time,
       CASE WHEN ok THEN try_cast(j.exit_code AS INTEGER) END AS exit_code, v.message
FROM (SELECT position, j, v, ts_value, trigger_time_value, coalesce({_PROVEN_VALID}, false) AS ok
      FROM (SELECT position, j, has_adhoc, v, {_cast_time('ts')}, {_cast_time('trigger_time')}
            FROM (SELECT position, j, has_adhoc,
                         {{{", ".join(f"'{n}': {_value(chr(34) + n + chr(34))}" for n in _TEXT_FIELDS)}}} AS v
                  FROM (SELECT position, json_transform(line, '{_AS_JSON}') AS j,
                               strpos(line, '"adhoc"') > 0 AS has_adhoc
                        FROM (SELECT position, CASE WHEN starts_with(line, '{{') AND strpos(line, '\\u') = 0
                                                         AND ({_ONE_BRACKET} OR NOT {_TOO_MANY_BRACKETS})
                                                         AND {_STRICT_JSON}
                                                         AND json_valid(line) THEN line END AS line
                              FROM event_lines)))))
"""


class EventLineParser:
    """Parses chunks of event lines with a private in-memory DuckDB."""

    def __init__(self):
        self._conn = duckdb.connect()

    def parse(self, lines: pa.Array) -> tuple[pa.Table, np.ndarray]:
        """(the proven-valid status events as transitions, each with its line's position, in the
        order DuckDB's threads gave them; the positions of every other line, in line order)."""
        event_lines = pa.table({"position": pa.array(np.arange(len(lines), dtype=np.int64)), "line": lines})
        self._conn.register("event_lines", pa.Table.from_batches(event_lines.to_batches(SCAN_BATCH_LINES)))
        try:
            result = self._conn.sql(PARSE_SQL).to_arrow_table()
        finally:
            self._conn.unregister("event_lines")
        # Not put back in line order: the insert orders the events by position anyway, and taking
        # every column in order cost 0.3 of the 2.7 s that 1.5M lines took to parse.
        ok = result.column("ok").to_numpy(zero_copy_only=False)
        accepted = result.filter(pa.array(ok)).select(POSITIONED_SCHEMA.names).cast(POSITIONED_SCHEMA)
        return accepted, np.sort(result.column("position").to_numpy()[~ok])

    def close(self) -> None:
        self._conn.close()
