"""Integration tests with the real things: Airflow 3 and dbt, each in its own venv (see
venvs.py). Every test here carries the `integrations` marker; one that cannot install its
integration fails with the reason (CI has the package index), it is never skipped."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integrations/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integrations)
            # Their module fixtures install a venv when it is missing (135 s for Airflow on the
            # loaded 2-core machine) and start Airflow (75-140 s): more than the default 300 s.
            item.add_marker(pytest.mark.timeout(900))
