"""Failure signatures: failed and terminated runs grouped by what they last said went wrong.

A run's error line is the last line of its stderr that looks like an error (the log viewer's
`log_emphasis` patterns, over the visible text), else the last such line of its stdout, else
its status message. Its signature is that line with what changes from one failure to the next
masked: times, URLs, UUIDs, hexadecimal ids, paths, quoted values and numbers. Runs with one
signature are one group: "the same as last Tuesday".

The masks run inside DuckDB (RE2, linear in the line's length) over every failed run not yet
known, looking first at the last lines of its logs (TAIL_LINES); a process keeps each run's error
line and signature until its logs or message change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Callable, Iterator

import duckdb
import pandas as pd

from .emphasis import Emphasis
from .formatting import utcnow
from .queries import RunFilter
from .statuses import UNSUCCESSFUL

#: (RE2 pattern, replacement), applied in this order: a time is masked before its numbers are.
MASKS = (
    (r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+", "<url>"),
    (r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?", "<time>"),
    (r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b", "<time>"),
    (r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", "<id>"),
    (r"(^|[\s=(\[{:,])\"[^\"]*\"", "\\1\"…\""),
    (r"(^|[\s=(\[{:,])'[^'\n]*'", "\\1'…'"),
    (r"(^|[\s=(\[{:,])(?:~|\.{1,2})?(?:/[^\s/:,;'\"()\[\]{}]+)+/?", "\\1<path>"),
    (r"\b[A-Za-z]:\\[^\s:,;'\"]+", "<path>"),
    (r"\b0x[0-9a-fA-F]+\b", "<hex>"),
    (r"\b[0-9a-f]{8,}\b", "<hex>"),
    (r"\d+(?:\.\d+)*", "<n>"),
    (r"\s+", " "),
)
#: A signature keeps this many characters.
SIGNATURE_CHARS = 300
#: A signature's key (its MD5's first hexadecimal digits, in a URL) has this many characters.
KEY_CHARS = 12
#: A group lists at most this many of its runs, the latest first.
LISTED_RUNS = 100
NO_ERROR_LINE = "(no error line in its logs and no message)"
#: The error lines of this many runs are found by one statement (each of their streams is one
#: branch of a UNION ALL in it).
RUNS_PER_STATEMENT = 250
#: Reading one stream by a `log_id = ?` of its own costs about what scanning this many lines of the
#: whole index does (1M runs, 20M lines: 0.7 ms a stream, 1.7 s the scan; in memory, 2.4 GB).
SCAN_LINES_PER_STREAM = 8_000
#: Ranks every stderr line after every stdout line: the last error line of stderr wins.
_STDERR_RANK = 1 << 40


#: A run's error line is looked for first among the last this many lines of each of its streams:
#: what went wrong is nearly always among a failure's last words, and a log of millions of lines
#: then costs what a short one does. A run they do not settle is read whole.
TAIL_LINES = 200


def _find(cur, runs: list[tuple[str, str | None, int, list[dict]]], emphasis: Emphasis,
          keep: Callable[[str, list, bool], set[str]]) -> None:
    """Find the error line and signature of each of `runs` ((run_id, message, lines, streams as
    {'log_id', 'stream', 'lines'}) each): each SELECT of them (run_id, lines, message, line,
    signature) is handed to `keep`, which runs it and, when its third argument is true, returns the
    run ids it gave.

    A run whose streams all fit in TAIL_LINES is read whole at once. The others are read first from
    the last TAIL_LINES of each stream, which settle a run when its stderr's tail holds an error
    line, or its stderr was read whole and its stdout's tail holds one or was read whole too; the
    runs left are then read whole."""
    long = [run for run in runs if any(log["lines"] > TAIL_LINES for log in run[3])]
    settled: set[str] = set()
    for sql, params in _statements(cur, long, emphasis, TAIL_LINES):
        settled |= keep(sql, params, True)
    whole = [run for run in runs if run[0] not in settled]  # the short runs, and the long ones left
    for sql, params in _statements(cur, whole, emphasis, None):
        keep(sql, params, False)


def _statements(cur, runs: list[tuple[str, str | None, int, list[dict]]], emphasis: Emphasis,
                tail: int | None) -> Iterator[tuple[str, list]]:
    """_find's SELECTs of `runs`, reading the last `tail` lines of each stream (None: every line).

    A few streams among many lines are read each by a `log_id = ?` of its own (DuckDB skips the row
    groups and vectors of every other log: 591 failed runs' streams among 20M lines, 0.43 s and 0.57
    GB read, where a join read all 2.4 GB in 1.7 s); many, by one join that scans every line
    (120,000 failed runs' streams among 1M lines)."""
    if not runs:
        return
    streams = sum(len(run[3]) for run in runs)
    lines = cur.execute("SELECT coalesce(sum(lines), 0) FROM log_streams").fetchone()[0] if streams else 0
    if streams * SCAN_LINES_PER_STREAM > lines:
        yield _lines_and_signatures(runs, emphasis, tail, scan=True)
        return
    without_logs = [run for run in runs if not run[3]]
    with_logs = [run for run in runs if run[3]]
    if without_logs:
        yield _lines_and_signatures(without_logs, emphasis, tail, scan=False)
    for start in range(0, len(with_logs), RUNS_PER_STATEMENT):
        yield _lines_and_signatures(with_logs[start:start + RUNS_PER_STATEMENT], emphasis, tail, scan=False)


def _lines_and_signatures(runs: list[tuple[str, str | None, int, list[dict]]], emphasis: Emphasis,
                          tail: int | None, scan: bool) -> tuple[str, list]:
    """One of _statements' SELECTs: its runs' streams (with a `tail`, their last lines, and then
    only the runs they settle are given: see _find) read by one join (`scan`), or each on its own."""
    # With a tail, a stream is read from the line after `after` (lines are numbered from 1).
    streams = [(run_id, _STDERR_RANK if log["stream"] == "stderr" else 0, log["log_id"],
                *([max(0, log["lines"] - tail)] if tail is not None else []))
               for run_id, _message, _lines, logs in runs for log in logs]
    tailed = tail is not None
    if scan:
        source = ("SELECT s.run_id, s.rank, t.line_no, coalesce(t.visible, t.text) AS shown FROM log_text t "
                  "JOIN (SELECT unnest(?::VARCHAR[]) AS run_id, unnest(?::BIGINT[]) AS rank, "
                  f"unnest(?::INTEGER[]) AS log_id{', unnest(?::BIGINT[]) AS after' if tailed else ''}) s "
                  f"ON t.log_id = s.log_id{' AND t.line_no > s.after' if tailed else ''}")
        source_params = [list(column) for column in zip(*streams)] if streams else [[]] * (4 if tailed else 3)
    else:
        source = " UNION ALL ".join(
            ["SELECT ?::VARCHAR AS run_id, ?::BIGINT AS rank, line_no, coalesce(visible, text) AS shown "
             f"FROM log_text WHERE log_id = ?{' AND line_no > ?' if tailed else ''}"] * len(streams)) or \
            "SELECT NULL::VARCHAR AS run_id, 0::BIGINT AS rank, 0::BIGINT AS line_no, ''::VARCHAR AS shown WHERE false"
        source_params = [value for stream in streams for value in stream]
    if tailed:
        cut = {(run_id, log["stream"]) for run_id, _message, _lines, logs in runs for log in logs if log["lines"] > tail}
        cut_columns = ", unnest(?::BOOLEAN[]) AS cut_stderr, unnest(?::BOOLEAN[]) AS cut_stdout"
        cut_params = [[(run[0], "stderr") in cut for run in runs], [(run[0], "stdout") in cut for run in runs]]
        settled = (f"WHERE coalesce(e.found.at >= {_STDERR_RANK}, false) "
                   "OR (NOT f.cut_stderr AND (e.found IS NOT NULL OR NOT f.cut_stdout))")
    else:
        cut_columns, cut_params, settled = "", [], ""
    # The pattern is the aggregate's FILTER, not a WHERE: DuckDB would run a WHERE's on every line
    # it scans, before the join keeps the failed runs' (5.8 s against 0.3 s in the scan above).
    sql = f"""
        WITH failed AS (SELECT unnest(?::VARCHAR[]) AS run_id, unnest(?::VARCHAR[]) AS message,
                               unnest(?::BIGINT[]) AS lines{cut_columns}),
        error_lines AS (
            SELECT run_id, arg_max({{'line': shown, 'at': rank + line_no}}, rank + line_no)
                               FILTER (WHERE regexp_matches(shown, ?)) AS found
            FROM ({source}) GROUP BY run_id),
        lined AS (SELECT f.run_id, f.lines, f.message, coalesce(e.found.line, nullif(f.message, ''), ?) AS line
                  FROM failed f LEFT JOIN error_lines e USING (run_id) {settled})
        SELECT run_id, lines, message, line, {masked_sql("line")} AS signature FROM lined"""
    params = [[run[0] for run in runs], [run[1] for run in runs], [int(run[2]) for run in runs], *cut_params,
              emphasis.error_pattern, *source_params, NO_ERROR_LINE]
    return sql, params


def masked_sql(expression: str) -> str:
    """The SQL that masks the text `expression` evaluates to."""
    for pattern, replacement in MASKS:
        expression = f"regexp_replace({expression}, {_literal(pattern)}, {_literal(replacement)}, 'g')"
    return f"left(trim({expression}), {SIGNATURE_CHARS})"


def mask(lines: list[str]) -> list[str]:
    """The signature of each line: what changes from one failure to the next masked (the same SQL)."""
    with duckdb.connect() as conn:
        return [row[0] for row in conn.execute(
            f"SELECT {masked_sql('line')} FROM unnest(?) WITH ORDINALITY AS t(line, n) ORDER BY n", [lines]).fetchall()]


def signatures_of(index, run_ids, emphasis: Emphasis = Emphasis()) -> dict[str, tuple[str, str]]:
    """The error line and signature of each of `run_ids` (as failure_signatures groups them)."""
    run_ids = list(run_ids)
    if not run_ids:
        return {}
    with index.cursor() as cur:
        runs = cur.execute(f"""
            SELECT r.run_id, r.message, 0, {_STREAMS} FROM runs r LEFT JOIN log_streams s ON s.run_id = r.run_id
            WHERE r.run_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY r.run_id, r.message""", [run_ids]).fetchall()
        found = {}

        def keep(sql: str, params: list, report: bool) -> set[str]:
            rows = cur.execute(sql, params).fetchall()
            found.update((run_id, (line, signature)) for run_id, _lines, _message, line, signature in rows)
            return {row[0] for row in rows}

        _find(cur, runs, emphasis, keep)
    return found


#: A run's streams, in a query grouping runs joined with log_streams `s`.
_STREAMS = ("coalesce(list({'log_id': s.log_id, 'stream': s.stream, 'lines': s.lines}) "
            "FILTER (WHERE s.log_id IS NOT NULL), [])")


#: Each run's error line and signature as found, kept in memory beside the index (an attached
#: in-memory database of the index's own DuckDB instance: no data leaves DuckDB), stamped with
#: what they were found from (the run's log lines, its message, the error pattern). A failure's
#: error line changes only when its logs or its message do, and finding and masking it is nearly
#: all the cost (over 120,000 failures with stderr: 0.65 s to find the lines and 1.7 s to mask them,
#: against 0.2 s for the rest), so a process does it once a run (benchmarks: failures).
MEMO = "failure_memo"
_MEMO_TABLE = f"{MEMO}.signed"
_MEMO_SETUP = (f"ATTACH IF NOT EXISTS ':memory:' AS {MEMO}",
               f"CREATE TABLE IF NOT EXISTS {_MEMO_TABLE} (run_id VARCHAR, pattern BIGINT, lines BIGINT, "
               "message VARCHAR, line VARCHAR, signature VARCHAR, PRIMARY KEY (run_id, pattern))")
#: Past this many runs known, the memo starts again (a few hundred bytes a run).
KNOWN_RUNS = 1_000_000
#: An error line is kept (and shown as a group's example) up to this many characters.
LINE_CHARS = 2000
#: One writer of the memo at a time (two would conflict on the same runs).
_memo_lock = threading.Lock()


def forget(index) -> None:
    """Forget every run's known error line and signature (the next grouping finds them all again)."""
    with _memo_lock, index.cursor() as cur:
        for statement in _MEMO_SETUP:
            cur.execute(statement)
        cur.execute(f"DELETE FROM {_MEMO_TABLE}")


def _pattern_id(emphasis: Emphasis) -> int:
    """The error pattern as the memo keeps it: a number (the pattern is some 200 characters)."""
    return int.from_bytes(hashlib.blake2b(emphasis.error_pattern.encode("utf-8"), digest_size=7).digest(), "big")


def _failed_cte(run_filter: RunFilter, now: dt.datetime) -> tuple[str, list] | None:
    """The CTE `failed`: each failed or terminated run the filter admits, and those of the period just
    before its range (run_id, task, agent, message, ended, in_range), with its parameters; None if the
    filter admits no unsuccessful status."""
    statuses = tuple(s for s in run_filter.statuses if s in UNSUCCESSFUL) if run_filter.statuses \
        else UNSUCCESSFUL
    if not statuses:
        return None
    since = run_filter.since
    # The period before the range is read too, to tell which signatures are new.
    wider = RunFilter(statuses=statuses, task_text=run_filter.task_text, group=run_filter.group,
                      since=2 * since if since is not None else None, run_ids=run_filter.run_ids)
    where, params = wider.where(now)
    range_start = now - since if since is not None else dt.datetime.min
    return f"""failed AS (
            SELECT r.run_id, r.task, r.agent, r.message, coalesce(r.finished, r.updated) AS ended,
                   r.trigger_time >= ? AS in_range
            FROM runs r {where})""", [range_start, *params]


def _signed(cur, failed: tuple[str, list], emphasis: Emphasis) -> None:
    """Find and keep in the memo the error line and signature of each run of `failed` not known yet
    or changed since."""
    cte, params = failed
    pattern = _pattern_id(emphasis)
    for statement in _MEMO_SETUP:
        cur.execute(statement)
    # No transaction around the statements: a run whose logs grow between them is kept with the line
    # count read first, so the next grouping finds it changed and signs it again.
    with _memo_lock:
        if cur.execute(f"SELECT count(*) FROM {_MEMO_TABLE}").fetchone()[0] > KNOWN_RUNS:
            cur.execute(f"DELETE FROM {_MEMO_TABLE}")
        stale = cur.execute(f"""
            WITH {cte.replace("failed AS (", "candidates AS (", 1)},
            streams AS (SELECT s.run_id, sum(s.lines) AS lines, {_STREAMS} AS logs FROM log_streams s
                        WHERE s.run_id IN (SELECT run_id FROM candidates) GROUP BY s.run_id)
            SELECT c.run_id, c.message, coalesce(z.lines, 0), coalesce(z.logs, [])
            FROM candidates c LEFT JOIN streams z USING (run_id)
                 LEFT JOIN {_MEMO_TABLE} m ON m.run_id = c.run_id AND m.pattern = ?
            WHERE m.run_id IS NULL OR m.lines <> coalesce(z.lines, 0) OR m.message IS DISTINCT FROM c.message""",
                            [*params, pattern]).fetchall()
        def keep(sql: str, params: list, report: bool) -> set[str]:
            cur.execute(f"INSERT OR REPLACE INTO {_MEMO_TABLE} SELECT run_id, ?, lines, message, "
                        f"left(line, {LINE_CHARS}), signature FROM ({sql}){' RETURNING run_id' if report else ''}",
                        [pattern, *params])
            return {run_id for (run_id,) in cur.fetchall()} if report else set()

        _find(cur, stale, emphasis, keep)


def failure_signatures(index, run_filter: RunFilter = RunFilter(), emphasis: Emphasis = Emphasis(),
                       now: dt.datetime | None = None) -> pd.DataFrame:
    """The failed and terminated runs the filter admits, one row a signature, the largest first.

    Columns: signature, key (a short stable name of the signature, for a URL: failure_runs),
    runs (how many), first_seen and last_seen (when they ended), tasks and agents affected, new
    (no run of the signature in the period just before `run_filter.since`; None without a time
    range), example (one run's error line as it was), run_ids (the latest LISTED_RUNS).
    """
    failed = _failed_cte(run_filter, now or utcnow())
    if failed is None:
        return _empty()
    cte, params = failed
    sql = f"""
        WITH {cte}
        SELECT m.signature, left(md5(m.signature), {KEY_CHARS}) AS key,
               count(*) FILTER (WHERE in_range) AS runs,
               min(ended) FILTER (WHERE in_range) AS first_seen,
               max(ended) FILTER (WHERE in_range) AS last_seen,
               list(DISTINCT task ORDER BY task) FILTER (WHERE in_range) AS tasks,
               coalesce(list(DISTINCT agent ORDER BY agent) FILTER (WHERE in_range AND agent IS NOT NULL), [])
                   AS agents,
               count(*) FILTER (WHERE NOT in_range) = 0 AS new,
               arg_max(m.line, ended) FILTER (WHERE in_range) AS example,
               arg_max(f.run_id, ended, {LISTED_RUNS}) FILTER (WHERE in_range) AS run_ids
        FROM failed f JOIN {_MEMO_TABLE} m ON m.run_id = f.run_id AND m.pattern = ?
        GROUP BY m.signature HAVING count(*) FILTER (WHERE in_range) > 0
        ORDER BY runs DESC, last_seen DESC, m.signature"""
    with index.cursor() as cur:
        _signed(cur, failed, emphasis)
        frame = cur.execute(sql, [*params, _pattern_id(emphasis)]).df()
    frame["run_ids"] = frame["run_ids"].map(list)
    frame["tasks"] = frame["tasks"].map(list)
    frame["agents"] = frame["agents"].map(list)
    if run_filter.since is None:
        frame["new"] = None
    return frame


def failure_runs(index, run_filter: RunFilter, key: str, emphasis: Emphasis = Emphasis(),
                 now: dt.datetime | None = None) -> tuple[str | None, frozenset[str]]:
    """The signature whose key is `key` (failure_signatures' column) and every run the filter
    admits that failed with it (its signature is None when none did)."""
    failed = _failed_cte(run_filter, now or utcnow())
    if failed is None:
        return None, frozenset()
    cte, params = failed
    with index.cursor() as cur:
        _signed(cur, failed, emphasis)
        rows = cur.execute(
            f"WITH {cte} SELECT m.signature, f.run_id FROM failed f "
            f"JOIN {_MEMO_TABLE} m ON m.run_id = f.run_id AND m.pattern = ? "
            f"WHERE f.in_range AND left(md5(m.signature), {KEY_CHARS}) = ?",
            [*params, _pattern_id(emphasis), key]).fetchall()
    return (rows[0][0] if rows else None), frozenset(run_id for _, run_id in rows)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=["signature", "key", "runs", "first_seen", "last_seen", "tasks", "agents", "new",
                                 "example", "run_ids"])


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
