"""Lake mode's roles and bad set-ups (issue 18, items 6 and 7): a read-only PostgreSQL role serves and
reads the lake but cannot ship to it; a catalog that would trust a role without its password is
refused; a wrong password, missing extension files, a data path that cannot be written and a
catalog down when a server starts each give one message naming the setting
(no traceback, no password), and a server started without its catalog serves, says Error, and
catches up by itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from builders import write_host_spool
from helpers import wait_until
from serving import DashboardServer, free_port, responds, ship, stopped

from dashboard.changes import Change
from dashboard.components.runs_grid import RunsGrid
from dashboard.config import Config
from dashboard.hub import Hub
from dashboard.index import Index
from dashboard.lake import PASSWORD_ENV, LakeSettings
from dashboard.lake_feed import LakeFeed
from dashboard.store import Store

#: The roles of the README's "Roles" (Many machines): a writer that owns the catalog's database
#: and a reader with SELECT on its tables, also those the writer makes later.
ROLE_SQL = (
    "CREATE ROLE {writer} LOGIN PASSWORD '{writer_password}'",
    "CREATE ROLE {reader} LOGIN PASSWORD '{reader_password}'",
    "ALTER DATABASE {database} OWNER TO {writer}",  # the README's CREATE DATABASE … OWNER
    "REVOKE ALL ON DATABASE {database} FROM PUBLIC",
    "GRANT CONNECT ON DATABASE {database} TO {writer}, {reader}",
)
SCHEMA_SQL = (
    "GRANT USAGE ON SCHEMA public TO {reader}",
    "ALTER DEFAULT PRIVILEGES FOR ROLE {writer} IN SCHEMA public GRANT SELECT ON TABLES TO {reader}",
)


@dataclass
class Roles:
    writer: LakeSettings
    reader: LakeSettings
    reader_password: str
    writer_password: str
    runs: int


def cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 120):
    return subprocess.run([sys.executable, "-m", "dashboard.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, **(env or {})})


def lake_options(settings: LakeSettings) -> list[str]:
    options = ["--catalog", settings.catalog, "--data-path", settings.data_path]
    return options + (["--catalog-password-file", str(settings.password_file)] if settings.password_file else [])


@pytest.fixture(scope="module")
def roles(postgres, tmp_path_factory):
    """A lake whose catalog has the README's two roles, three runs shipped to it by the writer."""
    folder = tmp_path_factory.mktemp("roles")
    catalog = postgres.new_catalog()
    database = catalog.rsplit("/", 1)[1]
    names = {"writer": f"taskdash_writer_{database}", "reader": f"taskdash_reader_{database}",
             "writer_password": "w-" + os.urandom(8).hex(), "reader_password": "r-" + os.urandom(8).hex(),
             "database": database}
    postgres.execute("postgres", *(sql.format(**names) for sql in ROLE_SQL))
    postgres.execute(database, *(sql.format(**names) for sql in SCHEMA_SQL))
    settings = {}
    for role in ("writer", "reader"):
        secret = folder / f"{role}-password"
        secret.write_text(names[f"{role}_password"] + "\n")
        secret.chmod(0o600)
        settings[role] = LakeSettings(catalog.replace(f"{postgres.user}@", f"{names[role]}@"),
                                      str(folder / "lake-data"), secret)
    spool = folder / "spool"
    write_host_spool(spool, "a", range(3), lines=4)
    process = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "ship", "--spool", str(spool), "--host", "a",
                                *lake_options(settings["writer"])], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True, cwd=folder)
    try:
        reader = wait_until(lambda: _reader_or_none(settings["reader"]), timeout=60, interval=0.2,
                            message="the writer to make the lake")
        try:
            wait_until(lambda: reader.counts()["runs"] == 3, timeout=60, interval=0.2, message="three runs shipped")
        finally:
            reader.close()
    finally:
        output = stopped(process)
    assert "Traceback" not in output and names["writer_password"] not in output, output
    return Roles(settings["writer"], settings["reader"], names["reader_password"], names["writer_password"], 3)


def _reader_or_none(settings: LakeSettings) -> Index | None:
    from dashboard.lake import LakeUnreachable

    try:
        return Index(None, lake=settings, read_only=True)
    except LakeUnreachable:  # no lake yet: the writer's first attach makes it
        return None


@pytest.mark.lake
def test_a_read_only_role_reads_the_lake_and_cannot_ship_to_it(roles, tmp_path):
    listed = cli("runs", "--json", "--spool", str(tmp_path), *lake_options(roles.reader), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert sorted(run["run_id"] for run in json.loads(listed.stdout)) == ["a-0000", "a-0001", "a-0002"]

    spool = tmp_path / "spool"
    write_host_spool(spool, "b", range(2), lines=2)
    refused = cli("ship", "--spool", str(spool), "--host", "b", *lake_options(roles.reader), cwd=tmp_path, timeout=60)
    output = refused.stdout + refused.stderr
    assert refused.returncode == 1, output
    assert f"the role {roles.reader.user} of the lake's catalog {roles.reader.catalog} may only read" in output
    assert "Traceback" not in output and roles.reader_password not in output
    # and the reader wrote nothing: the writer's runs alone are there
    index = Index(None, lake=roles.reader, read_only=True)
    try:
        assert index.counts()["runs"] == roles.runs
    finally:
        index.close()


@pytest.mark.lake
def test_a_wrong_password_is_named_and_never_printed(roles, tmp_path):
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    settings = LakeSettings(roles.reader.catalog, roles.reader.data_path, wrong)
    result = cli("runs", "--spool", str(tmp_path), *lake_options(settings), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"taskdash: the lake's catalog {roles.reader.catalog} refused the password of "
                                    f"the role {roles.reader.user}: check the password in index.password_file "
                                    f"{wrong}"), result.stderr
    assert "not-the-password" not in result.stderr + result.stdout and "Traceback" not in result.stderr


@pytest.mark.lake
def test_a_catalog_that_would_trust_a_role_without_its_password_is_refused(roles, postgres, tmp_path):
    database = roles.reader.catalog.rsplit("/", 1)[1]
    role = f"trusted_{database}"
    postgres.execute("postgres", f"CREATE ROLE {role} LOGIN", f"GRANT CONNECT ON DATABASE {database} TO {role}")
    postgres.hba_first(f"host {database} {role} 127.0.0.1/32 trust")
    settings = LakeSettings(roles.reader.catalog.replace(f"{roles.reader.user}@", f"{role}@"),
                            roles.reader.data_path, roles.reader.password_file)
    result = cli("runs", "--spool", str(tmp_path), *lake_options(settings), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(f"taskdash: the lake's catalog {settings.catalog} does not check the role {role}'s "
                                    "password by scram-sha-256"), result.stderr
    assert "never trust" in result.stderr and "Traceback" not in result.stderr


def test_missing_extension_files_and_a_data_path_that_cannot_be_written_are_named(tmp_path):
    catalog = f"postgresql://taskdash@127.0.0.1:{free_port()}/lake"  # never reached: each check comes first
    env = {PASSWORD_ENV: "hunter2-password"}
    # the lake extra's package present but empty (a broken install): what it would say without it too
    empty = tmp_path / "empty-site" / "duckdb_extension_ducklake"
    empty.mkdir(parents=True)
    (empty / "__init__.py").write_text("")
    result = cli("runs", "--spool", str(tmp_path), "--catalog", catalog, "--data-path", str(tmp_path / "data"),
                 env={**env, "PYTHONPATH": f"{empty.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
                 cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "the package duckdb-extension-ducklake holds no ducklake extension file" in result.stderr
    assert "pip install 'taskdash[lake]'" in result.stderr

    # a data path under a regular file: not even root can make it (the tests run as root in CI)
    (tmp_path / "a-file").write_text("")
    bad = tmp_path / "a-file" / "lake-data"
    (tmp_path / "spool").mkdir()
    result = cli("ship", "--spool", str(tmp_path / "spool"), "--catalog", catalog, "--data-path", str(bad),
                 env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 1, result.stderr
    assert f"taskdash: index.data_path {bad} (--data-path) cannot be written by this process (Not a directory)" \
        in result.stderr
    assert "Traceback" not in result.stderr and "hunter2-password" not in result.stderr


@pytest.mark.lake
@pytest.mark.timeout(300)
def test_a_server_started_while_its_catalog_is_down_serves_says_error_and_catches_up(roles, postgres, tmp_path):
    postgres.halt()
    try:
        # in this process: the feed's health (what the indicator shows) names the catalog
        index = Index(None, lake=roles.reader, read_only=True, wait_for_lake=True)
        hub = Hub()
        changes: list[Change] = []
        hub.subscribe(changes.append)
        feed = LakeFeed(index, hub, poll_seconds=0.05)
        assert index.counts()["runs"] == 0  # pages read an empty stand-in meanwhile
        assert feed.health.failure.startswith(f"the lake's catalog {roles.reader.catalog} (index.catalog) cannot be "
                                              "attached: Connection refused")
        store = Store(index, hub, Config(spool=tmp_path / "spool"), health_of=lambda: feed.health)
        empty = RunsGrid(store=store).empty.object  # /task-runs says why it is empty
        assert "the index cannot be read now" in empty and f"{roles.reader.catalog} (index.catalog)" in empty
        feed.start()
        # a `taskdash serve` with the reader's role: it starts, says why the lake is missing, serves pages
        server = DashboardServer(tmp_path, *lake_options(roles.reader))
        note = server.wait_for_output("note: the lake's catalog")
        assert roles.reader.catalog in note and "tried again every 2 s" in note
        with urllib.request.urlopen(f"{server.url}/task-runs", timeout=60) as response:
            assert response.status == 200
    finally:
        postgres.resume()
    try:
        caught_up = server.wait_for_output("index caught up with the lake", timeout=60)
        assert f"{roles.runs} runs" in caught_up
        wait_until(lambda: feed.health.failure is None and feed.caught_up.is_set(), timeout=60,
                   message="the feed to attach the lake")
        assert index.counts()["runs"] == roles.runs
        assert any(change.many_runs for change in changes)  # every page reads again
        assert len(RunsGrid(store=store).grid.value) == roles.runs
        assert responds(f"{server.url}/liveness")
    finally:
        feed.stop()
        index.close()
        server.stop()
    output = "".join(server.output)
    assert "Traceback" not in output and roles.reader_password not in output, output


@pytest.mark.lake
def test_a_password_changed_under_a_running_server_says_error_until_the_file_has_the_new_one(roles, postgres):
    index = Index(None, lake=roles.reader, read_only=True)
    feed = LakeFeed(index, None, poll_seconds=0.05)
    feed.start()
    password_file, old = roles.reader.password_file, roles.reader_password
    new = "n-" + os.urandom(8).hex()
    try:
        wait_until(feed.caught_up.is_set, timeout=30)
        postgres.execute("postgres", f"ALTER ROLE {roles.reader.user} PASSWORD '{new}'")
        postgres.halt()  # every connection is made anew, with the password the server was started with
        postgres.resume()
        failure = wait_until(lambda: feed.health.failure and "refused the password" in feed.health.failure
                             and feed.health.failure, timeout=60, message="the feed to name the refused password")
        assert f"check the password in index.password_file {password_file}" in failure
        assert old not in failure and new not in failure
        password_file.write_text(new + "\n")  # fixed where the setting says: read again at the next attach
        wait_until(lambda: feed.health.failure is None, timeout=60, message="the feed to recover")
        assert index.counts()["runs"] == roles.runs
    finally:
        feed.stop()
        index.close()
        postgres.execute("postgres", f"ALTER ROLE {roles.reader.user} PASSWORD '{old}'")
        password_file.write_text(old + "\n")
