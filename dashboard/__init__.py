"""Task Runs Dashboard: live monitoring of a task scheduler's runs, logs and dependencies.

In a notebook: `from dashboard import open_store` (see `dashboard.embed`).
"""

__version__ = "0.1.0"
__all__ = ["Store", "open_store"]


def __getattr__(name: str):
    # Lazily, so the CLI and the spool writer do not import Panel to start.
    if name == "Store":
        from .store import Store

        return Store
    if name == "open_store":
        from .embed import open_store

        return open_store
    raise AttributeError(f"module 'dashboard' has no attribute {name!r}")
