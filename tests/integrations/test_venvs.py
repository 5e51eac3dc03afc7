"""An integration whose venv cannot be installed fails with the reason; it is never skipped."""

from __future__ import annotations

import pytest
import venvs


def test_an_install_without_the_package_index_fails_saying_so(tmp_path, monkeypatch):
    monkeypatch.setattr(venvs, "FOLDER", tmp_path)
    monkeypatch.setattr(venvs, "requirements", lambda name: ["apache-airflow==3.3.2"])
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # as on a machine without the package index

    with pytest.raises(venvs.IntegrationUnavailable) as failure:
        venvs.ensure("airflow")

    message = str(failure.value)
    assert "cannot install the airflow integration's environment" in message
    assert "it needs the Python package index" in message
    assert "apache-airflow==3.3.2" in message, "pip's own last words name what it could not find"
    assert not (tmp_path / "airflow" / "taskdash-requirements.txt").exists(), "nothing half-installed counts as done"
