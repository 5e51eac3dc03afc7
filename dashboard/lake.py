"""Lake mode: the index as one shared DuckLake (its catalog in PostgreSQL, its data as Parquet files
under a data path) instead of a DuckDB file per process.

This module knows how to reach the lake: its settings, the password (from the environment or a
file, never printed), DuckDB's extension files (loaded by path from their PyPI packages, never
downloaded) and the ATTACH. `Index` does the rest with the same SQL as in local mode.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    import duckdb

# DuckDB is imported where a lake is opened: the settings (config.py) are read by commands that
# never open one (`taskdash adhoc` starts in a fraction of the time without it).

#: The catalog's password, when no password file is set.
PASSWORD_ENV = "TASKDASH_CATALOG_PASSWORD"
#: What the lake is called in DuckDB (the index's tables are lake.main.<table>).
LAKE = "lake"
#: DuckDB may neither download nor load by itself an extension it knows of: the only ones loaded
#: are the files of the lake extra's packages, which match the pinned DuckDB.
NO_DOWNLOADS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
#: The extension packages of the lake extra, and the name each file loads under.
EXTENSIONS = (("duckdb_extension_postgres_scanner", "postgres_scanner"), ("duckdb_extension_ducklake", "ducklake"))


#: Attaching a new lake while another process creates its catalog is tried this many times.
INIT_RETRIES = 5
#: How often each `taskdash ship` offers to do the lake's upkeep (seconds; see lake_upkeep).
UPKEEP_SECONDS = 5.0


class LakeError(RuntimeError):
    """The lake cannot be reached or used; the message names the setting to look at."""


class LakeUnreachable(LakeError):
    """The catalog did not answer, or refused the login: it may be fixed while a process waits."""


@dataclass(frozen=True)
class LakeSettings:
    """Where the lake is: `catalog` a PostgreSQL URL without its password, `data_path` the folder
    (shared by every host and server) that holds its Parquet files."""

    catalog: str
    data_path: str
    #: A file holding the catalog's password; else $TASKDASH_CATALOG_PASSWORD.
    password_file: Path | None = None

    def __post_init__(self):
        parts = urlsplit(self.catalog)
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not parts.username:
            raise LakeError(f"index.catalog must be a PostgreSQL URL such as postgresql://user@host:5432/database, "
                            f"not {self.safe_catalog!r}")
        if parts.password is not None:
            raise LakeError(f"index.catalog must not hold the password (a command line or a settings file shows it): "
                            f"put it in ${PASSWORD_ENV} or in a file named by index.password_file "
                            f"(--catalog-password-file); the catalog given was {self.safe_catalog}")
        if not self.data_path:
            raise LakeError("index.data_path is required in lake mode: the folder of the lake's Parquet files")

    @property
    def safe_catalog(self) -> str:
        """The catalog URL with any password masked: what messages show."""
        parts = urlsplit(self.catalog)
        if parts.password is None:
            return self.catalog
        return self.catalog.replace(f":{parts.password}@", ":***@", 1)

    def password(self) -> str:
        """The catalog's password: the password file's first line, else $TASKDASH_CATALOG_PASSWORD."""
        if self.password_file is not None:
            try:
                return self.password_file.read_text(encoding="utf-8").splitlines()[0]
            except (OSError, IndexError) as exc:
                reason = getattr(exc, "strerror", None) or "it is empty"
                raise LakeError(f"index.password_file {self.password_file} cannot be read: {reason}") from None
        if os.environ.get(PASSWORD_ENV):
            return os.environ[PASSWORD_ENV]
        raise LakeError(f"the catalog's password is not set: put it in ${PASSWORD_ENV} or in a file named by "
                        "index.password_file (--catalog-password-file)")


def extension_files() -> list[tuple[str, Path]]:
    """(name, file) of each extension lake mode loads, from the installed packages."""
    import importlib

    import duckdb

    files = []
    for package, name in EXTENSIONS:
        try:
            module = importlib.import_module(package)
        except ImportError:
            raise LakeError(f"lake mode needs the package {package.replace('_', '-')} (pip install "
                            f"'taskdash[lake]'), matching DuckDB {duckdb.__version__}") from None
        found = sorted(Path(module.__file__).parent.glob(f"extensions/*/{name}.duckdb_extension"))
        if not found:
            raise LakeError(f"the package {package.replace('_', '-')} holds no {name} extension file")
        files.append((name, found[-1]))
    return files


def connect(settings: LakeSettings) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the lake attached and in use (its tables answer by their plain names;
    temporary tables stay in the connection's own memory)."""
    import duckdb

    conn = duckdb.connect(":memory:", config=dict(NO_DOWNLOADS))
    try:
        for name, path in extension_files():
            try:
                conn.execute(f"LOAD '{_literal(str(path))}'")
            except duckdb.Error as exc:
                raise LakeError(f"the {name} extension file {path} does not load into DuckDB "
                                f"{duckdb.__version__}: {str(exc).splitlines()[0][:200]}") from None
        parts = urlsplit(settings.catalog)
        secret = {"HOST": parts.hostname, "PORT": str(parts.port or 5432),
                  "DATABASE": unquote(parts.path.lstrip("/")) or unquote(parts.username),
                  "USER": unquote(parts.username), "PASSWORD": settings.password()}
        # A secret, not a connection string: the password is in no ATTACH text an error could echo.
        conn.execute("CREATE TEMPORARY SECRET taskdash_catalog (TYPE postgres, "
                     + ", ".join(f"{key} '{_literal(value)}'" for key, value in secret.items()) + ")")
        data_path = settings.data_path
        if "://" not in data_path:
            Path(data_path).mkdir(parents=True, exist_ok=True)
        # The path is the libpq connection string (without the password); the secret adds the rest.
        # LOAD, CREATE SECRET and ATTACH take no parameters: their values are quoted literals.
        conninfo = "dbname='{}'".format(secret["DATABASE"].replace("\\", "\\\\").replace("'", "\\'"))
        attach = (f"ATTACH 'ducklake:{_literal(conninfo)}' AS {LAKE} (DATA_PATH "
                  f"'{_literal(data_path)}', METADATA_PARAMETERS MAP {{'TYPE': 'postgres', 'SECRET': 'taskdash_catalog'}})")
        for attempt in range(INIT_RETRIES):
            try:
                conn.execute(attach)
                break
            except duckdb.Error as exc:
                # Two processes attaching a new lake at once both create its catalog's tables: the
                # loser fails ("Failed to initialize DuckLake ... duplicate key") and finds them made.
                if "Failed to initialize DuckLake" in str(exc) and attempt < INIT_RETRIES - 1:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                raise LakeUnreachable(f"the lake's catalog {settings.safe_catalog} cannot be attached: "
                                      f"{_without(str(exc), secret['PASSWORD'])}") from None
        conn.execute(f"USE {LAKE}")
    except BaseException:
        conn.close()
        raise
    return conn


def current_snapshot(cur) -> int:
    """The lake's latest committed snapshot: a cheap look at the catalog (one small query)."""
    return cur.execute(f"SELECT id FROM {LAKE}.current_snapshot()").fetchone()[0]


def is_conflict(exc: BaseException) -> bool:
    """Whether a failed commit lost a race with another writer of the lake (retry it)."""
    import duckdb

    text = str(exc)
    return isinstance(exc, duckdb.Error) and ("conflict" in text.lower() or "Failed to commit" in text)


def _literal(text: str) -> str:
    return text.replace("'", "''")


def _without(text: str, secret: str) -> str:
    first = text.strip().splitlines()[0][:300] if text.strip() else text
    return first.replace(secret, "***") if secret else first
