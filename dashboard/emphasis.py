"""Which log lines stand out as errors or warnings: patterns over the visible text of a line.

The patterns are a setting (`log_emphasis` in panel_serve.yaml). Each is a regular expression
in the syntax Python's `re` and DuckDB's RE2 share: the viewer marks the lines of a page
with `re`, and "next error" finds the next one in the whole stream with DuckDB.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

#: Real failing logs' error lines: GitHub Actions, buildah/rustc/gcc, pytest, Python, Go, npm.
DEFAULT_ERROR = (
    r"##\[error\]",
    r"\b(ERROR|FATAL|CRITICAL)\b",
    r"\bError:",
    r"\berror(\[E\d+\])?:",
    r"\bFAILED\b",
    r"^E   ",
    r"^Traceback \(most recent call last\)",
    r"\bpanic:",
    r"\bnpm ERR!",
)
DEFAULT_WARNING = (
    r"##\[warning\]",
    r"\bWARN(ING)?\b",
    r"\b[Ww]arning:",
)


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
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"log_emphasis.{kind}: {pattern!r} is not a regular expression ({exc})") from None

    @property
    def error_pattern(self) -> str:
        """All error patterns as one regular expression (for DuckDB's regexp_matches too)."""
        return _joined(self.error)

    def level(self, text: str) -> str:
        """'error', 'warn' or '' for one line's visible text."""
        if _compiled(self.error_pattern).search(text):
            return "error"
        if self.warning and _compiled(_joined(self.warning)).search(text):
            return "warn"
        return ""


_compiled = functools.lru_cache(maxsize=32)(re.compile)


def _joined(patterns: tuple[str, ...]) -> str:
    return "|".join(f"(?:{p})" for p in patterns)
