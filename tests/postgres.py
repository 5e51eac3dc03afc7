"""A throwaway PostgreSQL for the lake tests: initdb in a temporary folder, password (scram) auth,
127.0.0.1 on a free port, run as `nobody` when the tests run as root (PostgreSQL refuses root).

`PostgresServer.start()` returns once the server accepts connections; `stop()` ends it and
removes its folder. tests/conftest.py shares one per test session (the `postgres` fixture).
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

#: Where Debian's packages and this machine's image put PostgreSQL's programs.
SEARCHED = ("/usr/local/bin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))


def postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else under SEARCHED; None if there is none."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    for folder in SEARCHED:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in its own temporary folder."""

    user: str = "taskdash"
    database: str = "postgres"  # initdb's own: no createdb needed (not every install has it)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    port: int = field(default_factory=free_port)
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="taskdash-pg-")))
    #: Empty databases made before the server starts (one lake each: a lake's catalog is a database).
    databases: int = 20  # every lake test takes one, and a rerun another
    _handed_out: int = 0

    def url(self, database: str | None = None) -> str:
        """A catalog URL as the dashboard takes it (the password goes in $TASKDASH_CATALOG_PASSWORD)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database or self.database}"

    def new_catalog(self) -> str:
        """The URL of an empty database no test has had: a new lake's catalog."""
        if self._handed_out == self.databases:
            raise RuntimeError(f"all {self.databases} databases are handed out: raise PostgresServer.databases")
        self._handed_out += 1
        return self.url(f"lake_{self._handed_out}")

    def execute(self, database: str, *statements: str) -> None:
        """Run SQL statements as the superuser on one database (through DuckDB's postgres extension:
        not every install has psql), each in its own transaction."""
        import duckdb

        from dashboard.lake import NO_DOWNLOADS, extension_files

        conn = duckdb.connect(config=dict(NO_DOWNLOADS))
        try:
            for name, path in extension_files():
                conn.execute(f"LOAD '{path}'")
            conn.execute("CREATE TEMPORARY SECRET superuser (TYPE postgres, HOST '127.0.0.1', PORT ?, DATABASE ?, "
                         "USER ?, PASSWORD ?)".replace("?", "'{}'").format(self.port, database, self.user,
                                                                            self.password))
            conn.execute("ATTACH '' AS pg (TYPE postgres, SECRET superuser)")
            for statement in statements:
                conn.execute("CALL postgres_execute('pg', ?)", [statement])
        finally:
            conn.close()

    def hba_first(self, line: str) -> None:
        """Put a line first in pg_hba.conf (it wins for what it matches) and have the server read it."""
        hba = self.folder / "data" / "pg_hba.conf"
        hba.write_text(line + "\n" + hba.read_text())
        self._run(str(postgres_bin() / "pg_ctl"), "-D", str(self.folder / "data"), "reload", cwd=self.folder)

    def _run(self, *command: str, **kwargs) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:  # PostgreSQL will not run as root: as nobody, who owns the folder
            command = ("runuser", "-u", "nobody", "--", *command)
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120, **kwargs)

    def start(self) -> PostgresServer:
        programs = postgres_bin()
        if programs is None:
            raise RuntimeError("PostgreSQL's initdb is not installed (bash .ci/run installs Debian's postgresql)")
        pwfile = self.folder / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.folder, "nobody")
            shutil.chown(pwfile, "nobody")
        data = self.folder / "data"
        try:
            self._run(str(programs / "initdb"), "-D", str(data), "-U", self.user, "-E", "UTF8",
                      "--auth=scram-sha-256", f"--pwfile={pwfile}", "--no-sync", cwd=self.folder)
            pwfile.unlink()
            # CREATE DATABASE cannot run in a transaction (as DuckDB's postgres_execute sends it) and
            # not every install has createdb or psql: the single-user backend makes them before the start.
            script = "".join(f"CREATE DATABASE lake_{n};\n\n" for n in range(1, self.databases + 1))
            self._run(str(programs / "postgres"), "--single", "-F", "-D", str(data), "-j", "postgres", input=script,
                      cwd=self.folder)
            self.resume()
        except subprocess.CalledProcessError as exc:
            log = self.folder / "server.log"
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}\n"
                               f"{log.read_text() if log.exists() else ''}") from None
        return self

    def resume(self) -> None:
        """Start the server (again, after halt()) on its port; return once it accepts connections."""
        self._run(str(postgres_bin() / "pg_ctl"), "-D", str(self.folder / "data"), "-l",
                  str(self.folder / "server.log"), "-w", "-t", "60", "-o",
                  f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off -c max_connections=200", "start",
                  cwd=self.folder)

    def halt(self) -> None:
        """Stop the server (fast shutdown: its connections are cut), keeping its data for resume()."""
        self._run(str(postgres_bin() / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop",
                  cwd=self.folder)

    def stop(self) -> None:
        programs = postgres_bin()
        if (self.folder / "data" / "postmaster.pid").exists() and programs is not None:
            try:
                self._run(str(programs / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop",
                          cwd=self.folder)
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)
