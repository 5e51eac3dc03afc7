"""Shared by every test folder: the browser tests drive Debian's Chromium through Playwright; the
query tests share one index of the planned runs."""

from __future__ import annotations

import os

import pytest
from serving import CHROMIUM, CHROMIUM_ARGS

#: Fixtures that put a real Chromium under a test.
BROWSER_FIXTURES = {"page", "context", "browser"}
#: How often a test that drives a real Chromium runs again after failing: on a busy 2-core machine
#: a page can race its server (every CI failure of the last three hand-ins was one such race, each
#: in another test). A rerun is printed ("RERUN <test>") and counted in the summary line, so a
#: flaky test stays in sight; a test that fails every time still fails. A long test (a timeout
#: over pytest's 300 s) runs again once at most, to keep CI well inside its time.
#: TASKDASH_TEST_RERUNS=0 shows a flake's first failure.
RERUNS = int(os.environ.get("TASKDASH_TEST_RERUNS", "2"))


def pytest_collection_modifyitems(items):
    for item in items:
        if not RERUNS:  # also over a test's own flaky mark
            item.add_marker(pytest.mark.flaky(reruns=0), append=False)
        elif BROWSER_FIXTURES & set(item.fixturenames) and not item.get_closest_marker("flaky"):
            timeout = item.get_closest_marker("timeout")
            long = timeout is not None and timeout.args and timeout.args[0] > 300
            item.add_marker(pytest.mark.flaky(reruns=1 if long else RERUNS))


#: The run's configuration: its terminal is where a rerun says why (pytest_runtest_logreport is
#: given no config, and the terminal is not there yet when pytest_configure runs).
_config = None


def pytest_configure(config):
    global _config
    _config = config


def pytest_runtest_logreport(report):
    """Say why a test is run again, in one line where CI's output shows it (the summary names the
    test only)."""
    terminal = _config.pluginmanager.get_plugin("terminalreporter") if _config is not None else None
    if report.outcome == "rerun" and terminal is not None:
        crash = getattr(report.longrepr, "reprcrash", None)
        why = (" | ".join(line.strip() for line in crash.message.splitlines()[:4] if line.strip())[:400]
               if crash is not None and crash.message else str(report.longrepr)[-300:])
        terminal.write("\n")  # off the line of progress dots
        terminal.write_line(f"RERUN {report.nodeid} ({report.when}) after: {why}{_where(report)}")


def _where(report) -> str:
    """' (at tests/…py:LINE)': the line of the test's own file that failed, when the report has it."""
    entries = getattr(getattr(report.longrepr, "reprtraceback", None), "reprentries", None) or []
    test_file = report.nodeid.split("::")[0]
    lines = [entry.reprfileloc.lineno for entry in entries
             if getattr(entry, "reprfileloc", None) is not None and entry.reprfileloc.path.endswith(test_file)]
    return f" (at {test_file}:{lines[-1]})" if lines else ""


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The planned runs of tests/builders.py ingested into a real index: the index, the plan of its
    runs, the spool, and the "now" every query is asked at. Once a module: a query asked without a
    `now` is relative to the clock, and the plan's margins are minutes wide, while a full run of the
    suite puts half an hour of browser tests between two query modules."""
    from builders import planned_world

    world = planned_world(tmp_path_factory.mktemp("queries"))
    yield world
    world.index.close()


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL 15 (tests/postgres.py), shared by the lake tests of one run."""
    from postgres import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def lake(postgres, tmp_path, monkeypatch):
    """A new empty lake: its own catalog database and data folder; the catalog's password in the
    environment, where `taskdash` processes started by the test find it."""
    from dashboard.lake import PASSWORD_ENV, LakeSettings

    monkeypatch.setenv(PASSWORD_ENV, postgres.password)
    return LakeSettings(postgres.new_catalog(), str(tmp_path / "lake-data"))


@pytest.fixture
def live(tmp_path):
    """A spool writer, an index and its ingestor, stepped by the test; `now` on the half hour, so
    every range starts inside an hour."""
    import datetime as dt

    from dashboard.formatting import utcnow
    from dashboard.index import Index
    from dashboard.ingest import Ingestor
    from dashboard.spool import SpoolWriter

    writer = SpoolWriter(tmp_path / "spool", "test")
    index = Index(tmp_path / "index.duckdb")
    ingestor = Ingestor(index, tmp_path / "spool")
    now = utcnow().replace(minute=30, second=0, microsecond=0) - dt.timedelta(hours=1)
    yield writer, index, ingestor, now
    writer.close()
    index.close()
