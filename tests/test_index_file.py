"""The index file: held by another process (a private index instead), left behind by a killed
process (removed by the next), and of an older schema (dropped and rebuilt from the spool)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from builders import DEFINED_TASKS, RUN_COUNT, all_ids

from dashboard.index import Index
from dashboard.index_schema import SCHEMA_VERSION
from dashboard.ingest import Ingestor
from dashboard.spool import SpoolWriter


@contextmanager
def held_open(path: Path, env: dict | None = None):
    """Another process holding the DuckDB file at `path` (DuckDB locks it) until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); sys.stdin.read()"),
        str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.stdin.close()  # it reads its standard input to the end, then ends
        holder.wait(10)
        holder.stdout.close()


def test_a_locked_index_falls_back_to_a_private_one(tmp_path):
    with held_open(tmp_path / "index.duckdb"):
        index = Index(tmp_path / "index.duckdb")
        assert index.is_private and "in use by another process" in index.private_reason
        assert index.path != tmp_path / "index.duckdb"
        SpoolWriter(tmp_path / "spool").status("r-1", "A", "RUNNING")
        Ingestor(index, tmp_path / "spool").catch_up()
        assert index.counts()["runs"] == 1
        index.close()


def private_index_of_a_killed_process(path: Path, env: dict) -> Path:
    """Start a process that opens a private index (the file at `path` being held), SIGKILL it,
    and return the folder of the private index it left."""
    process = subprocess.Popen([sys.executable, "-c", (
        "import sys; from dashboard.index import Index; i = Index(sys.argv[1]); print(i.path, flush=True); "
        "sys.stdin.read()"), str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        left = Path(process.stdout.readline().strip()).parent
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        process.stdin.close()
        process.stdout.close()
    return left


def test_a_private_index_left_by_a_killed_process_is_removed_by_the_next(tmp_path, monkeypatch):
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    env = os.environ | {"TMPDIR": str(temp)}
    with held_open(tmp_path / "index.duckdb", env):
        left = private_index_of_a_killed_process(tmp_path / "index.duckdb", env)
        assert left.parent == temp and left.exists(), "a killed process cannot clean up after itself"

        index = Index(tmp_path / "index.duckdb")  # the next process that needs a private index
        assert index.is_private
        assert not left.exists(), "the dead process's private index is still there"
        assert Path(index.path).parent.exists()
        index.close()
        assert list(temp.iterdir()) == []


def test_an_index_of_an_older_schema_is_dropped_and_rebuilt_from_the_spool(world, tmp_path):
    path = tmp_path / "old.duckdb"
    index = Index(path)
    Ingestor(index, world.spool).catch_up()
    assert index.counts()["runs"] == RUN_COUNT and index.rebuilt_reason is None
    with index.cursor() as cur:
        cur.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    index.close()

    rebuilt = Index(path)
    try:
        assert rebuilt.rebuilt_reason and "schema 1" in rebuilt.rebuilt_reason
        assert f"not {SCHEMA_VERSION}" in rebuilt.rebuilt_reason
        assert rebuilt.counts() == {"tasks": 0, "runs": 0, "log_lines": 0, "ingest_errors": 0}
        assert rebuilt.load_offsets() == {}
        assert rebuilt.query("SELECT value FROM meta WHERE key = 'schema'")["value"].tolist() == [SCHEMA_VERSION]
        Ingestor(rebuilt, world.spool).catch_up()
        assert rebuilt.counts()["runs"] == RUN_COUNT
        assert rebuilt.counts()["tasks"] == len(DEFINED_TASKS)
        assert set(all_ids(SimpleNamespace(index=rebuilt, now=world.now))) == {run.run_id for run in world.runs}
    finally:
        rebuilt.close()

    again = Index(path)
    try:
        assert again.rebuilt_reason is None, "a current index is kept"
        assert again.counts()["runs"] == RUN_COUNT
    finally:
        again.close()


def test_the_index_memory_setting_bounds_duckdb_and_a_bad_one_is_named(tmp_path):
    import pytest

    from dashboard.config import ConfigError, load_config
    from dashboard.index import duckdb_memory_limit

    settings = tmp_path / "panel_serve.yaml"
    settings.write_text("index:\n  path: taskruns.duckdb\n  memory: 300MiB\n")
    config = load_config(settings)
    assert config.index_memory == "300MiB"
    index = Index(config.index, memory=config.index_memory)
    try:
        with index.cursor() as cur:
            assert cur.execute("SELECT current_setting('memory_limit')").fetchone()[0] == "300.0 MiB"
    finally:
        index.close()
    settings.write_text("index_memory: 10%\n")
    machine = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert duckdb_memory_limit(load_config(settings).index_memory) == f"{int(machine / 10 / 2**20)}MiB"
    for bad in ("lots", "0GB", "150%", "2 apples"):
        settings.write_text(f"index_memory: {bad}\n")
        with pytest.raises(ConfigError, match=f"index_memory must be a share .* not '{bad}'"):
            load_config(settings)
