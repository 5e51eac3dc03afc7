"""Lake mode: the index as one shared DuckLake (its catalog in PostgreSQL, its data as Parquet files
under a data path) instead of a DuckDB file per process.

This module knows how to reach the lake: its settings, the password (from the environment or a
file, never printed), DuckDB's extension files (loaded by path from their PyPI packages, never
downloaded) and the ATTACH: read-only for a process that only reads (a SELECT-only role will do),
with the role's rights and the data path checked for one that writes, and a failure told in words
that name the setting to look at. `Index` does the rest with the same SQL as in local mode.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

# DuckDB is imported where a lake is opened: the settings (config.py) are read by commands that
# never open one (`taskdash adhoc` starts in a fraction of the time without it).

#: The catalog's password, when no password file is set.
PASSWORD_ENV = "TASKDASH_CATALOG_PASSWORD"
#: What the lake is called in DuckDB (the index's tables are lake.main.<table>).
LAKE = "lake"
#: Rows per Parquet row group of the lake's log lines. A page of a log read from the lake reads
#: the row groups it falls in: with DuckLake's default, 122,880 rows, a page of 500 lines took
#: 17.4 ms; with this, 9.9 (and a search of a 200,000-line log 39 ms instead of 47). Set when a host
#: that ships attaches, so files written before keep theirs.
LOG_ROW_GROUP_ROWS = 16_384
#: DuckDB may neither download nor load by itself an extension it knows of: the only ones loaded
#: are the files of the lake extra's packages, which match the pinned DuckDB.
NO_DOWNLOADS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
#: The extension packages of the lake extra, and the name each file loads under.
EXTENSIONS = (("duckdb_extension_postgres_scanner", "postgres_scanner"), ("duckdb_extension_ducklake", "ducklake"))


#: How the catalog must check the role (libpq's require_auth): a password, by scram, never `trust`.
REQUIRED_AUTH = "scram-sha-256"
#: Attaching a new lake while another process creates its catalog is tried this many times.
INIT_RETRIES = 5
#: How often each `taskdash ship` offers to do the lake's upkeep (seconds; see lake_upkeep).
UPKEEP_SECONDS = 5.0
#: DuckLake's metadata database, as it attaches the catalog beside the lake.
CATALOG = f"__ducklake_metadata_{LAKE}"
#: PostgreSQL advisory locks of the catalog's database (one lake per database). UPKEEP_LOCK: one
#: process at a time does a round of upkeep. WRITES_LOCK: every commit of the lake holds it shared,
#: compaction exclusive. DuckLake let a compaction beside a commit that replaced a row keep both
#: rows (seen: one run twice, RUNNING and SUCCESS, within a minute of 4 updates a second).
UPKEEP_LOCK = int.from_bytes(b"taskdash", "big") >> 1  # "taskdash" in ASCII
WRITES_LOCK = UPKEEP_LOCK + 1


class LakeError(RuntimeError):
    """The lake cannot be reached or used; the message names the setting to look at."""


class LakeUnreachable(LakeError):
    """The catalog did not answer, refused the login or holds no lake yet, or (for a reader) the data
    path is not mounted: it may be fixed while a process waits."""


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

    @property
    def user(self) -> str:
        """The catalog's role (the user of its URL)."""
        return unquote(urlsplit(self.catalog).username or "")

    @property
    def password_source(self) -> str:
        """Where the password is read from, as a message names it."""
        if self.password_file is not None:
            return f"index.password_file {self.password_file}"
        return f"${PASSWORD_ENV}"

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
            raise LakeError(f"the package {package.replace('_', '-')} holds no {name} extension file "
                            f"(looked in {Path(module.__file__).parent}/extensions): install it again "
                            f"(pip install 'taskdash[lake]'), matching DuckDB {duckdb.__version__}")
        files.append((name, found[-1]))
    return files


def connect(settings: LakeSettings, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the lake attached and in use (its tables answer by their plain names;
    temporary tables stay in the connection's own memory).

    `read_only` (a server that ships nothing, a command that only reads): the lake is attached
    READ_ONLY, so a PostgreSQL role with SELECT alone will do, and its data path only needs to be
    readable. Otherwise the data path must be writable and the role must be allowed to write the
    catalog (checked here, so a host shipping with a reader's role is told at once)."""
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
        if "://" not in data_path and not read_only:  # (a reader's is looked at once the catalog answers)
            check_data_path(data_path, writable=True)
        # The path is the libpq connection string (without the password); the secret adds the rest.
        # LOAD, CREATE SECRET and ATTACH take no parameters: their values are quoted literals.
        # libpq itself refuses a server that does not ask for a scram-sha-256 password (trust, md5).
        conninfo = "dbname='{}' require_auth={}".format(
            secret["DATABASE"].replace("\\", "\\\\").replace("'", "\\'"), REQUIRED_AUTH)
        attach = (f"ATTACH 'ducklake:{_literal(conninfo)}' AS {LAKE} ({'READ_ONLY, ' if read_only else ''}DATA_PATH "
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
                raise attach_failure(settings, exc, secret["PASSWORD"]) from None
        if read_only and "://" not in data_path:
            check_data_path(data_path, writable=False)
        if not read_only:
            check_write_rights(conn, settings)
        conn.execute(f"USE {LAKE}")
    except BaseException:
        conn.close()
        raise
    return conn


def check_data_path(data_path: str, writable: bool) -> None:
    """LakeError (naming index.data_path) unless the local data path is a folder this process can
    write (a host that ships: made if missing), or for a reader one it can read."""
    folder = Path(data_path)
    if not writable:
        if not folder.is_dir():
            raise LakeUnreachable(f"index.data_path {data_path} (--data-path) is not a folder on this machine: "
                                  "mount the lake's data folder there, as on the hosts that ship to it")
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".taskdash-write-check-"):
            pass
    except OSError as exc:
        raise LakeError(f"index.data_path {data_path} (--data-path) cannot be written by this process "
                        f"({exc.strerror or exc}): a host that ships writes the lake's Parquet files "
                        "there") from None


def check_write_rights(conn, settings: LakeSettings) -> None:
    """LakeError unless the catalog's role may write the lake (every commit inserts a snapshot row)."""
    import duckdb

    try:
        (allowed,) = conn.execute(f"SELECT * FROM postgres_query('__ducklake_metadata_{LAKE}', "
                                  "'SELECT has_table_privilege(''ducklake_snapshot'', ''INSERT'')')").fetchone()
    except duckdb.Error as exc:  # the check itself could not run: the first commit will tell
        log.info("could not check the catalog role's rights: %s", str(exc).splitlines()[0][:200])
        return
    if not allowed:
        raise LakeError(f"the role {settings.user} of the lake's catalog {settings.safe_catalog} may only read the "
                        "lake: writing it (taskdash ship) needs a role with INSERT, UPDATE and DELETE on the "
                        "catalog's tables (README: Many machines, Roles); a server that ships nothing can "
                        "use a read-only role")


def attach_failure(settings: LakeSettings, exc: BaseException, password: str) -> LakeError:
    """What a failed ATTACH means, in words naming the setting to look at (never the password)."""
    # The whole first line is classified (libpq's reason comes last, after a connection string of
    # any length); only the detail a message quotes is cut short.
    text = _without(str(exc), password)
    detail = (text.split("failed: ")[-1].strip() if "Unable to connect to Postgres" in text else text)[:300]
    catalog = settings.safe_catalog
    if "password authentication failed" in text:
        return LakeUnreachable(f"the lake's catalog {catalog} refused the password of the role {settings.user}: "
                               f"check the password in {settings.password_source} (index.catalog names the role)")
    if "authentication method requirement" in text:
        return LakeUnreachable(f"the lake's catalog {catalog} does not check the role {settings.user}'s password "
                               f"by {REQUIRED_AUTH} ({detail}): give the role a {REQUIRED_AUTH} password and a "
                               f"{REQUIRED_AUTH} line in the server's pg_hba.conf (never trust: anyone reaching the "
                               "server could act as the role)")
    if "creating a new DuckLake is explicitly disabled" in text:
        return LakeUnreachable(f"the lake's catalog {catalog} holds no lake yet: the first host's `taskdash ship` "
                               "creates it (a server that ships nothing only reads it)")
    if "permission denied" in text:
        return LakeError(f"the role {settings.user} of the lake's catalog {catalog} lacks a right the lake needs: "
                         f"{detail} (README: Many machines, Roles)")
    return LakeUnreachable(f"the lake's catalog {catalog} (index.catalog) cannot be attached: {detail}")


def current_snapshot(cur) -> int:
    """The lake's latest committed snapshot: a cheap look at the catalog (one small query)."""
    return cur.execute(f"SELECT id FROM {LAKE}.current_snapshot()").fetchone()[0]


def try_advisory_lock(cur, key: int) -> bool:
    """Take an advisory lock of the catalog's database for the transaction open on `cur`; False if
    another session holds it. PostgreSQL frees it when the transaction ends, or the session (a
    process killed with `kill -9` leaves none behind)."""
    return cur.execute(f"SELECT * FROM postgres_query('{CATALOG}', "
                       f"'SELECT pg_try_advisory_xact_lock({int(key)})')").fetchone()[0]


@contextmanager
def lock_transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor of its own on `conn` (a connection with the lake attached), in a transaction that is
    rolled back when the block ends: advisory locks taken through it last that long."""
    import duckdb

    cur = conn.cursor()
    try:
        cur.execute("BEGIN")
        yield cur
    finally:
        try:
            cur.execute("ROLLBACK")  # ends the transaction: PostgreSQL releases its locks
        except duckdb.Error:
            pass
        cur.close()


@contextmanager
def holding_writes_lock(conn: duckdb.DuckDBPyConnection, exclusive: bool = False) -> Iterator[None]:
    """The lake's WRITES_LOCK, shared (a commit) or exclusive (compaction), until the block ends,
    waiting while the other kind holds it."""
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with lock_transaction(conn) as cur:
        cur.execute(f"SELECT * FROM postgres_query('{CATALOG}', "
                    f"'SELECT 1 FROM {function}({WRITES_LOCK})')").fetchall()
        yield


def is_conflict(exc: BaseException) -> bool:
    """Whether a failed write lost a race with another writer of the lake (retry it): DuckLake's
    conflict at commit, or the catalog's serialization failure on a row another session changed
    since this one's snapshot (hosts starting at once each setting the lake's options, or upkeep
    flushing rows a commit deletes)."""
    import duckdb

    text = str(exc)
    return isinstance(exc, duckdb.Error) and ("conflict" in text.lower() or "Failed to commit" in text
                                              or "could not serialize access" in text)


def _literal(text: str) -> str:
    return text.replace("'", "''")


def _without(text: str, secret: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else text
    return first.replace(secret, "***") if secret else first
