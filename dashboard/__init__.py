"""Task Runs Dashboard: live monitoring of a task scheduler's runs, logs and dependencies.

In a notebook: `from dashboard import open_store` (see `dashboard.embed`).
"""

__version__ = "0.1.0"
__all__ = ["Store", "open_store"]


def __getattr__(name: str):
    # Lazily, so the CLI and the spool writer do not import Panel to start.
    if name in __all__:
        from . import embed

        return getattr(embed, name)
    raise AttributeError(f"module 'dashboard' has no attribute {name!r}")
