"""The run statuses, their lifecycle order and their colours: defined once for the whole product."""

LIFECYCLE = ("IDLE", "ACTIVE", "TRIGGER", "STARTED", "RUNNING")
TERMINAL = ("SUCCESS", "FAILED", "TERMINATED")
STATUSES = LIFECYCLE + TERMINAL

#: Not started yet: the run is only waiting or queued.
NOT_STARTED = ("IDLE", "ACTIVE", "TRIGGER")
#: Started and not ended: its command is going.
UNDER_WAY = ("STARTED", "RUNNING")
#: Ended without success: the downstream runs of the same cycle can no longer start (blocked).
UNSUCCESSFUL = ("FAILED", "TERMINATED")

#: Position of each status in the lifecycle; the three terminal ones share the last step.
ORDER = {status: i for i, status in enumerate(LIFECYCLE)} | {s: len(LIFECYCLE) for s in TERMINAL}

#: One colour per status, used by badges, chains, timelines and graph nodes alike; every two
#: differ by at least 20 in CIE76 (tests/test_statuses.py). FAILED and TERMINATED were two
#: reds 12 apart (#dc2626, #b91c1c) that merged side by side, STARTED and RUNNING two blues
#: 9 apart: TERMINATED is now dark grey and STARTED navy.
COLORS = {
    "IDLE": "#9ca3af",
    "ACTIVE": "#f59e0b",
    "TRIGGER": "#06b6d4",
    "STARTED": "#1e3a8a",
    "RUNNING": "#2563eb",
    "SUCCESS": "#16a34a",
    "FAILED": "#dc2626",
    "TERMINATED": "#3f3f46",
}

#: One shape per status, shown before its name on badges and chips, so no status is told
#: from another by colour alone (colour-blind users, greyscale prints).
SYMBOLS = {
    "IDLE": "○",
    "ACTIVE": "◌",
    "TRIGGER": "◇",
    "STARTED": "▷",
    "RUNNING": "▶",
    "SUCCESS": "✓",
    "FAILED": "✕",
    "TERMINATED": "■",
}

ADHOC_COLOR = "#7c3aed"


def sql_list(statuses) -> str:
    """Statuses as a list of SQL literals, for an IN (...): they are these constants, never user input."""
    return ", ".join(f"'{status}'" for status in statuses)


def is_terminal(status: str) -> bool:
    """Whether a run in this status has ended."""
    return status in TERMINAL
