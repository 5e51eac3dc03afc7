"""Which log lines stand out as errors or warnings: patterns over the visible text of a line.

The patterns are a setting (`log_emphasis` in panel_serve.yaml), regular expressions in
DuckDB's (RE2) syntax: DuckDB marks a page's lines and finds the next error in the whole
stream, so both agree (and RE2 is linear: a 60,000-character line costs 10 µs, not the
15 ms Python's re took for these alternations).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

#: Real failing logs' error lines: GitHub Actions, buildah/rustc/gcc, pytest, Python (the traceback
#: and its last line, `KeyError: …`), Java (`Exception in thread …`), Go, npm.
DEFAULT_ERROR = (
    r"##\[error\]",
    r"\b(ERROR|FATAL|CRITICAL)\b",
    r"\bError:",
    r"\berror(\[E\d+\])?:",
    r"\bFAILED\b",
    r"^E   ",
    r"^Traceback \(most recent call last\)",
    r"^[\w.]*(Error|Exception)\b",
    r"\bpanic:",
    r"\bnpm ERR!",
)
DEFAULT_WARNING = (
    r"##\[warning\]",
    r"\bWARN(ING)?\b",
    r"\b[Ww]arning:",
)


def pattern_problem(exc: duckdb.Error) -> str:
    """What RE2 (through DuckDB) says is wrong with a pattern, such as "missing ): dead(lock",
    without DuckDB's kind of error before it."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return first.removeprefix("Invalid Input Error: ")[:200]


@dataclass(frozen=True)
class Emphasis:
    """Error and warning patterns; a line matching an error pattern is an error, else maybe a warning."""

    error: tuple[str, ...] = DEFAULT_ERROR
    warning: tuple[str, ...] = DEFAULT_WARNING

    def __post_init__(self):
        for kind in ("error", "warning"):
            patterns = getattr(self, kind)
            if isinstance(patterns, str) or not all(isinstance(p, str) and p for p in patterns):
                raise ValueError(f"log_emphasis.{kind} must be a list of regular expressions, not {patterns!r}")
            object.__setattr__(self, kind, tuple(patterns))
            with duckdb.connect() as conn:
                for pattern in patterns:
                    try:
                        # A literal, its quotes doubled (nothing else escapes in a plain SQL string), not a
                        # parameter: DuckDB 1.5.5 imports pandas (1.3 s) for any parameter, and every command
                        # reads these settings (`taskdash adhoc` must start without pandas).
                        conn.execute("SELECT regexp_matches('', '{}')".format(pattern.replace("'", "''")))
                    except duckdb.Error as exc:
                        raise ValueError(f"log_emphasis.{kind}: {pattern!r} is not a regular expression "
                                         f"({pattern_problem(exc)})") from None

    @property
    def error_pattern(self) -> str:
        """All error patterns as one regular expression."""
        return _joined(self.error)

    @property
    def warning_pattern(self) -> str | None:
        """All warning patterns as one regular expression; None if there are none."""
        return _joined(self.warning) if self.warning else None


def _joined(patterns: tuple[str, ...]) -> str:
    return "|".join(f"(?:{p})" for p in patterns)
