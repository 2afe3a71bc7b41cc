"""The db workload's PostgreSQL: the user's own (PG_URL), used only inside a schema of the lab's, or a private one
found, initialised, started on 127.0.0.1 with a fresh password, seeded, stopped and removed.

The server binaries come from PATH, the usual server folders (Debian's /usr/lib/postgresql/<version>/bin,
Homebrew's) or the pgserver wheel (CPython 3.10-3.12). `initdb` makes a cluster in a scratch folder (mode 0700) with
one role, `lab`, whose password (scram) is passed in a file only this user can read and removed once used; the server
listens on 127.0.0.1 at a free port and on no Unix socket, which other users of the machine could reach. PostgreSQL
refuses to run as root: as root, the cluster and the server belong to the unprivileged user `nobody` (setpriv), and
the folder is theirs. The watchdog kills the server's process group and removes the folder if the harness dies.

Either way the lab's table lives in the schema `gil_lab`, and every session the workers open has it first on its
search path (SESSION_OPTIONS, in the URL they get): on the user's server nothing is written outside it.
"""
from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import statistics
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from harness.errors import ServiceError
from harness.lab.services.base import (
    ServerProcess,
    ServerService,
    free_port,
    new_password,
    packaged_binary,
    redact,
)
from workloads.functions import SCAN_SQL

HOW_TO_GET = ("install PostgreSQL's server (apt-get install postgresql, brew install postgresql, or on Python "
              "3.10-3.12 pip install pgserver), or point PG_URL at one (e.g. PG_PASSWORD=<a password> docker "
              "compose up -d postgres, then PG_URL=postgresql://postgres:<it>@127.0.0.1:5432/postgres)")
# Where PostgreSQL's server binaries live when they are not on PATH: Debian's packages, then Homebrew's.
SERVER_FOLDERS = ("/usr/lib/postgresql/*/bin", "/opt/homebrew/opt/postgresql*/bin", "/usr/local/opt/postgresql*/bin")
NEEDED = ("initdb", "postgres", "pg_isready")
# The unprivileged user a root harness runs the server as.
UNPRIVILEGED = "nobody"
ROLE = "lab"
SETUP_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 5
# The lab's schema: its table is there, and on the user's server (PG_URL) nothing is written anywhere else.
SCHEMA = "gil_lab"
# Every session of the lab's: its schema first, and no parallel workers, so that a scan's CPU is one backend's
# whatever the concurrency (a parallel plan would spread one task's scan over cores the other tasks want).
SESSION_OPTIONS = f"-c search_path={SCHEMA} -c max_parallel_workers_per_gather=0"


class DatabaseError(ServiceError):
    """PostgreSQL cannot be had: not installed, unreachable, the password refused, or it did not start."""


def _version(folder: str) -> tuple[int, ...]:
    digits = "".join(c if c.isdigit() else " " for c in folder).split()
    return tuple(int(d) for d in digits) or (0,)


def find_postgres() -> Path | None:
    """The folder of a PostgreSQL server's binaries (all of NEEDED): PATH first, then the newest of the usual
    folders, then the pgserver wheel's; None when there is none."""
    on_path = shutil.which("initdb")
    candidates = [str(Path(on_path).parent)] if on_path else []
    candidates += sorted((f for pattern in SERVER_FOLDERS for f in glob.glob(pattern)), key=_version, reverse=True)
    wheel = packaged_binary("pgserver", "pginstall/bin/initdb")
    candidates += [str(Path(wheel).parent)] if wheel else []
    for folder in candidates:
        if all(os.access(Path(folder) / name, os.X_OK) for name in NEEDED):
            return Path(folder)
    return None


def check_available() -> None:
    """Before anything starts: PG_URL's server answers and takes its password, or, without PG_URL, there is a
    PostgreSQL to start; else one line saying how to get one."""
    if os.environ.get("PG_URL"):
        PostgresServer()._check_given()
    elif find_postgres() is None:
        raise DatabaseError(f"WORKLOAD=db needs PostgreSQL and none was found (initdb, postgres): {HOW_TO_GET}")


def with_session_options(url: str) -> str:
    """`url` with the lab's SESSION_OPTIONS added to its `options` (libpq reads them from the URL's query)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = " ".join(filter(None, [query.get("options", ""), SESSION_OPTIONS]))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))  # libpq reads %20, not +


def _why(exc: Exception, url: str) -> str:
    """psycopg's reason a connection failed, as one line without the password."""
    text = " ".join(str(exc).split())
    if "password authentication failed" in text:
        user = urlsplit(url).username or "the URL's user"
        return f"the server refused the password for user {user}"
    return redact(text.replace(urlsplit(url).password or "\0", "***")) or type(exc).__name__


class PostgresServer(ServerService):
    """`with PostgresServer() as pg:` gives pg.url, a PostgreSQL for the run: PG_URL's (checked reachable, with its
    password), else a private server of the run's own (postgresql://lab:<password>@127.0.0.1:<port>/postgres),
    stopped and its folder removed on exit whatever happened. Workers get pg.worker_url."""

    name = "private PostgreSQL"
    error = DatabaseError
    start_timeout_s = 30.0
    stop_signal = signal.SIGINT  # PostgreSQL's fast shutdown: it ends its sessions, where SIGTERM would wait for them

    def __init__(self, url: str | None = None) -> None:
        self.url: str | None = url if url is not None else os.environ.get("PG_URL") or None
        self.private = self.url is None
        self.port: int | None = None
        self._password: str | None = None
        self._bin: Path | None = None
        self._server: ServerProcess | None = None

    def __enter__(self) -> PostgresServer:
        super().__enter__()
        return self

    @property
    def redacted_url(self) -> str:
        return redact(self.url or "")

    @property
    def worker_url(self) -> str:
        """What the workers connect to: the URL with the lab's schema first on the path (SESSION_OPTIONS)."""
        return with_session_options(str(self.url))

    @property
    def folder(self) -> Path | None:
        return self._server.folder if self._server is not None else None

    def _as_server_user(self) -> list[str]:
        """The prefix that runs a command as the server's user: nothing, or setpriv to `nobody` under root."""
        if os.geteuid() != 0:
            return []
        user = pwd.getpwnam(UNPRIVILEGED)
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--"]

    def start(self) -> None:
        if not self.private:
            self._check_given()
            return
        self._bin = find_postgres()
        if self._bin is None:
            raise DatabaseError(f"no PostgreSQL server found (initdb, postgres): {HOW_TO_GET}")
        self._server = ServerProcess("postgres")
        self._password, self.port = new_password(), free_port()
        password_file = self._server.private_file("password", self._password + "\n")
        data = self._server.folder / "data"
        prefix = self._as_server_user()
        if prefix:  # root: the folder and the password file become the server user's, still mode 0700 and 0600
            user = pwd.getpwnam(UNPRIVILEGED)
            for path in (self._server.folder, password_file):
                os.chown(path, user.pw_uid, user.pw_gid)
        try:
            made = subprocess.run([*prefix, str(self._bin / "initdb"), "-D", str(data), "-U", ROLE,
                                   f"--pwfile={password_file}", "--auth=scram-sha-256", "--encoding=UTF8",
                                   "--no-sync"], capture_output=True, text=True, timeout=SETUP_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise DatabaseError(f"initdb took over {SETUP_TIMEOUT_S:g} s") from None
        finally:
            password_file.unlink(missing_ok=True)
        if made.returncode != 0:
            last = (made.stderr.strip().splitlines() or ["no output"])[-1]
            raise DatabaseError(f"initdb failed: {last}")
        # Options on the command line are no secret (no password among them); the server logs to the folder's log.
        self._server.start([*prefix, str(self._bin / "postgres"), "-D", str(data), "-p", str(self.port),
                            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
        self.url = f"postgresql://{ROLE}:{self._password}@127.0.0.1:{self.port}/postgres"

    def _check_given(self) -> None:
        """Refuse, in one line and without its password, a PG_URL that is not PostgreSQL's or does not answer."""
        url = str(self.url)
        if not url.startswith(("postgresql://", "postgres://")):
            raise DatabaseError(f"PG_URL {redact(url)!r}: the lab takes postgresql://user:password@host:port/database;"
                                " unset it to use a private PostgreSQL")
        self.execute("SELECT 1")

    def ready(self) -> bool:
        if not self.private:  # checked in start(), with its own timeout
            return True
        assert self._bin is not None and self.port is not None
        done = subprocess.run([str(self._bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
                              capture_output=True, timeout=10)
        return done.returncode == 0

    def execute(self, statement: str, timeout_s: float = 120.0) -> list[tuple]:
        """Run SQL in a session of the lab's (its schema first, SESSION_OPTIONS) through psycopg; returns the rows of
        the last statement that had any. A failure is one line, with no password in it."""
        import psycopg

        where = f"PG_URL {self.redacted_url}" if not self.private else "the private PostgreSQL"
        try:
            conn = psycopg.connect(self.worker_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            hint = "; check PG_URL or unset it to use a private PostgreSQL" if not self.private else ""
            raise DatabaseError(f"{where}: {_why(exc, str(self.url))}{hint}") from None
        try:
            with conn, conn.cursor() as cur:
                cur.execute(f"SET statement_timeout = {int(timeout_s * 1000)}")
                cur.execute(statement.encode())  # bytes: psycopg takes a composed statement as it is
                return cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            raise DatabaseError(f"{where}: {_why(exc, str(self.url))}") from None

    def seed(self, rows: int) -> None:
        """A table of `rows` rows in the lab's schema, the same for every run (no randomness), indexed on `score`: a
        scan of it costs the server real milliseconds, an indexed read does not. On the user's server a table that
        is already the one asked for is kept (and nothing outside the schema is touched)."""
        rows = int(rows)
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        if not self.private:
            made = self.execute(f"SELECT to_regclass('{SCHEMA}.items') IS NOT NULL "
                                f"AND to_regclass('{SCHEMA}.items_score') IS NOT NULL")[0][0]
            if made and self.execute(f"SELECT count(*) FROM {SCHEMA}.items")[0][0] == rows:
                return
        self.execute(f"DROP TABLE IF EXISTS {SCHEMA}.items; "
                     f"CREATE TABLE {SCHEMA}.items AS SELECT g AS id, md5(g::text) AS name, "
                     f"(g * 7919) % 100000 AS score FROM generate_series(1, {rows}) AS g; "
                     f"CREATE INDEX items_score ON {SCHEMA}.items (score); ANALYZE {SCHEMA}.items;")

    def scan_ms(self, repeats: int = 5) -> float:
        """How long SCAN_SQL takes the server alone, in ms: the median of `repeats` (after one that warms the cache),
        as the server itself times it (EXPLAIN ANALYZE), so no round trip is in it."""
        times = []
        for _ in range(repeats + 1):
            plan = self.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + SCAN_SQL)[0][0]
            plan = json.loads(plan) if isinstance(plan, str) else plan
            times.append(float(plan[0]["Execution Time"]))
        return statistics.median(times[1:])
