"""What one or more ingest steps changed in the index: the message the hub carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .index_schema import RunSummary


@dataclass
class Change:
    """What one or more ingest steps changed in the index."""

    #: run_id -> the run as it now stands (the newest summary wins when changes merge)
    runs: dict[str, RunSummary] = field(default_factory=dict)
    #: more runs changed than were listed (a catch-up): any run may have changed
    many_runs: bool = False
    #: (run_id, stream) -> the highest line number now in the index
    log_lines: dict[tuple[str, str], int] = field(default_factory=dict)
    tasks: bool = False
    errors: int = 0

    def run_changed(self, run_id: str) -> bool:
        return self.many_runs or run_id in self.runs

    def merge(self, other: Change) -> None:
        self.many_runs = self.many_runs or other.many_runs
        self.runs = {} if self.many_runs else self.runs | other.runs
        for key, last in other.log_lines.items():
            self.log_lines[key] = max(last, self.log_lines.get(key, 0))
        self.tasks = self.tasks or other.tasks
        self.errors += other.errors

    def __bool__(self) -> bool:
        return bool(self.runs or self.many_runs or self.log_lines or self.tasks or self.errors)
