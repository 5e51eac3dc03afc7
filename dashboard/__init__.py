"""Task Runs Dashboard: live monitoring of a task scheduler's runs, logs and dependencies."""

__version__ = "0.1.0"
