"""The run statuses, their lifecycle order and their colours: defined once for the whole product."""

LIFECYCLE = ("IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING")
TERMINAL = ("SUCCESS", "FAILED", "TERMINATED")
STATUSES = LIFECYCLE + TERMINAL

#: Position of each status in the lifecycle; the three terminal ones share the last step.
ORDER = {status: i for i, status in enumerate(LIFECYCLE)} | {s: len(LIFECYCLE) for s in TERMINAL}

#: One colour per status, used by badges, chains, timelines and graph nodes alike.
COLORS = {
    "IDLE": "#9ca3af",
    "ACTIVE": "#f59e0b",
    "TRIGGER": "#06b6d4",
    "STARTED": "#6366f1",
    "RUNNING": "#2563eb",
    "SUCCESS": "#16a34a",
    "FAILED": "#dc2626",
    "TERMINATED": "#b91c1c",
}

ADHOC_COLOR = "#7c3aed"


def is_terminal(status: str) -> bool:
    """Whether a run in this status has ended."""
    return status in TERMINAL
