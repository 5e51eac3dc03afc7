"""Failure signatures: failed and terminated runs grouped by what they last said went wrong.

A run's error line is the last line of its stderr that looks like an error (the log viewer's
`log_emphasis` patterns, over the visible text), else the last such line of its stdout, else
its status message. Its signature is that line with what changes from one failure to the next
masked: times, URLs, UUIDs, hexadecimal ids, paths, quoted values and numbers. Runs with one
signature are one group: "the same as last Tuesday".

The masks run inside DuckDB (RE2, linear in the line's length) over every failed run at once.
"""

from __future__ import annotations

import datetime as dt

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
#: The error line of each run of a CTE `failed` (its run_id): the last line of its stderr matching
#: the error pattern (the one parameter), else of its stdout.
ERROR_LINES = """error_lines AS (
            SELECT s.run_id,
                   arg_max(coalesce(t.visible, t.text), (s.stream = 'stderr')::BIGINT * 1099511627776 + t.line_no)
                       AS line
            FROM log_streams s JOIN log_text t ON t.log_id = s.log_id
            WHERE s.run_id IN (SELECT run_id FROM failed) AND regexp_matches(coalesce(t.visible, t.text), ?)
            GROUP BY s.run_id)"""


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
    sql = f"""
        WITH failed AS (SELECT run_id, message FROM runs WHERE run_id IN ({', '.join('?' * len(run_ids))})),
        {ERROR_LINES},
        signed AS (SELECT f.run_id, coalesce(e.line, nullif(f.message, ''), ?) AS line
                   FROM failed f LEFT JOIN error_lines e USING (run_id))
        SELECT run_id, line, {masked_sql('line')} AS signature FROM signed"""
    with index.cursor() as cur:
        rows = cur.execute(sql, [*run_ids, emphasis.error_pattern, NO_ERROR_LINE]).fetchall()
    return {run_id: (line, signature) for run_id, line, signature in rows}


def _signed(run_filter: RunFilter, emphasis: Emphasis, now: dt.datetime) -> tuple[str, list] | None:
    """The CTEs up to `signed` (each failed or terminated run of the filter, and of the period just
    before its range, with its error line, signature, signature's key and whether it is in the
    range), and their parameters; None if the filter admits no unsuccessful status."""
    statuses = tuple(s for s in run_filter.statuses if s in UNSUCCESSFUL) if run_filter.statuses \
        else UNSUCCESSFUL
    if not statuses:
        return None
    since = run_filter.since
    # The period before the range is read too, to tell which signatures are new.
    wider = RunFilter(statuses=statuses, task_text=run_filter.task_text, group=run_filter.group,
                      since=2 * since if since is not None else None)
    where, params = wider.where(now)
    range_start = now - since if since is not None else dt.datetime.min
    sql = f"""
        WITH failed AS (
            SELECT r.run_id, r.task, r.agent, r.message, coalesce(r.finished, r.updated) AS ended,
                   r.trigger_time >= ? AS in_range
            FROM runs r {where}),
        {ERROR_LINES},
        lined AS (
            SELECT f.*, coalesce(e.line, nullif(f.message, ''), ?) AS line
            FROM failed f LEFT JOIN error_lines e USING (run_id)),
        signed AS (
            SELECT *, left(md5(signature), {KEY_CHARS}) AS key
            FROM (SELECT *, {masked_sql("line")} AS signature FROM lined))"""
    return sql, [range_start, *params, emphasis.error_pattern, NO_ERROR_LINE]


def failure_signatures(index, run_filter: RunFilter = RunFilter(), emphasis: Emphasis = Emphasis(),
                       now: dt.datetime | None = None) -> pd.DataFrame:
    """The failed and terminated runs the filter admits, one row a signature, the largest first.

    Columns: signature, key (a short stable name of the signature, for a URL: failure_runs),
    runs (how many), first_seen and last_seen (when they ended), tasks and agents affected, new
    (no run of the signature in the period just before `run_filter.since`; None without a time
    range), example (one run's error line as it was), run_ids (the latest LISTED_RUNS).
    """
    now = now or utcnow()
    signed = _signed(run_filter, emphasis, now)
    if signed is None:
        return _empty()
    ctes, params = signed
    sql = f"""{ctes}
        SELECT signature, any_value(key) AS key,
               count(*) FILTER (WHERE in_range) AS runs,
               min(ended) FILTER (WHERE in_range) AS first_seen,
               max(ended) FILTER (WHERE in_range) AS last_seen,
               list(DISTINCT task ORDER BY task) FILTER (WHERE in_range) AS tasks,
               coalesce(list(DISTINCT agent ORDER BY agent) FILTER (WHERE in_range AND agent IS NOT NULL), []) AS agents,
               count(*) FILTER (WHERE NOT in_range) = 0 AS new,
               arg_max(line, ended) FILTER (WHERE in_range) AS example,
               list(run_id ORDER BY ended DESC) FILTER (WHERE in_range) AS run_ids
        FROM signed GROUP BY signature HAVING count(*) FILTER (WHERE in_range) > 0
        ORDER BY runs DESC, last_seen DESC, signature"""
    with index.cursor() as cur:
        frame = cur.execute(sql, params).df()
    frame["run_ids"] = frame["run_ids"].map(lambda ids: list(ids[:LISTED_RUNS]))
    frame["tasks"] = frame["tasks"].map(list)
    frame["agents"] = frame["agents"].map(list)
    if run_filter.since is None:
        frame["new"] = None
    return frame


def failure_runs(index, run_filter: RunFilter, key: str, emphasis: Emphasis = Emphasis(),
                 now: dt.datetime | None = None) -> tuple[str | None, frozenset[str]]:
    """The signature whose key is `key` (failure_signatures' column) and every run the filter
    admits that failed with it (its signature is None when none did)."""
    now = now or utcnow()
    signed = _signed(run_filter, emphasis, now)
    if signed is None:
        return None, frozenset()
    ctes, params = signed
    with index.cursor() as cur:
        rows = cur.execute(f"{ctes} SELECT signature, run_id FROM signed WHERE in_range AND key = ?",
                           [*params, key]).fetchall()
    return (rows[0][0] if rows else None), frozenset(run_id for _, run_id in rows)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=["signature", "key", "runs", "first_seen", "last_seen", "tasks", "agents", "new",
                                 "example", "run_ids"])


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
