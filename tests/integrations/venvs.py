"""The integrations' own virtual environments: real Airflow 3 and real dbt, each in
`.venv-integrations/<name>` at the repository's root, installed on demand from the pinned
extras of pyproject.toml (`airflow-test`, `dbt-test`). They never go into the dashboard's own
venv: Airflow's pins would fight ours.

`python tests/integrations/venvs.py airflow dbt` installs both (what `.ci/run` does before
pytest); the tests' fixtures call `ensure` too, which is a no-op once the pins are installed.
"""

from __future__ import annotations

import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / ".venv-integrations"
EXTRAS = {"airflow": "airflow-test", "dbt": "dbt-test"}


class IntegrationUnavailable(RuntimeError):
    """An integration's environment could not be installed (the message says why)."""


def requirements(name: str) -> list[str]:
    """The pinned requirements of an integration, as pyproject.toml's extra lists them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["optional-dependencies"][EXTRAS[name]]


def ensure(name: str) -> Path:
    """The bin folder of the integration's venv, installed first if its pins are not there."""
    venv = FOLDER / name
    stamp = venv / "taskdash-requirements.txt"
    wanted = "\n".join(requirements(name)) + "\n"
    if stamp.exists() and stamp.read_text(encoding="utf-8") == wanted:
        return venv / "bin"
    started = time.monotonic()
    print(f"installing {name} into {venv}: {' '.join(requirements(name))}", file=sys.stderr, flush=True)
    steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
             [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *requirements(name)]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode:
            raise IntegrationUnavailable(
                f"cannot install the {name} integration's environment ({' '.join(step[:4])} … exited "
                f"{done.returncode}); it needs the Python package index. Its last output:\n"
                + "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:]))
    stamp.write_text(wanted, encoding="utf-8")
    print(f"installed {name} in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return venv / "bin"


if __name__ == "__main__":
    for argument in sys.argv[1:] or list(EXTRAS):
        ensure(argument)
