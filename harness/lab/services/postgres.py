"""A private PostgreSQL for a run's database work (issue 24's first step): found, initialised, started on
127.0.0.1 with a fresh password, seeded, stopped and removed.

The server binaries come from PATH or the usual server folders (Debian's /usr/lib/postgresql/<version>/bin,
Homebrew's). `initdb` makes a cluster in a scratch folder (mode 0700) with one role, `lab`, whose password (scram)
is passed in a file only this user can read and removed once used; the server listens on 127.0.0.1 at a free port
and on no Unix socket, which other users of the machine could reach. PostgreSQL refuses to run as root: as root, the
cluster and the server belong to the unprivileged user `nobody` (setpriv), and the folder is theirs. The watchdog
kills the server's process group and removes the folder if the harness dies.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from harness.errors import ServiceError
from harness.lab.services.base import ServerProcess, ServerService, free_port, new_password, redact

HOW_TO_GET = "install PostgreSQL's server (apt-get install postgresql, or brew install postgresql)"
# Where PostgreSQL's server binaries live when they are not on PATH: Debian's packages, then Homebrew's.
SERVER_FOLDERS = ("/usr/lib/postgresql/*/bin", "/opt/homebrew/opt/postgresql*/bin", "/usr/local/opt/postgresql*/bin")
NEEDED = ("initdb", "postgres", "pg_isready", "psql")
# The unprivileged user a root harness runs the server as.
UNPRIVILEGED = "nobody"
ROLE = "lab"
SETUP_TIMEOUT_S = 120.0


class DatabaseError(ServiceError):
    """PostgreSQL cannot be had: not installed, or it did not start."""


def _version(folder: str) -> tuple[int, ...]:
    digits = "".join(c if c.isdigit() else " " for c in folder).split()
    return tuple(int(d) for d in digits) or (0,)


def find_postgres() -> Path | None:
    """The folder of a PostgreSQL server's binaries (all of NEEDED): PATH first, then the newest of the usual
    folders; None when there is none."""
    on_path = shutil.which("initdb")
    candidates = [str(Path(on_path).parent)] if on_path else []
    candidates += sorted((f for pattern in SERVER_FOLDERS for f in glob.glob(pattern)), key=_version, reverse=True)
    for folder in candidates:
        if all(os.access(Path(folder) / name, os.X_OK) for name in NEEDED):
            return Path(folder)
    return None


class PostgresServer(ServerService):
    """`with PostgresServer() as pg:` gives pg.url (postgresql://lab:<password>@127.0.0.1:<port>/postgres), a server
    of the run's own, stopped and its folder removed on exit whatever happened."""

    name = "private PostgreSQL"
    error = DatabaseError
    start_timeout_s = 30.0
    stop_signal = signal.SIGINT  # PostgreSQL's fast shutdown: it ends its sessions, where SIGTERM would wait for them

    def __init__(self) -> None:
        self.url: str | None = None
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
    def folder(self) -> Path | None:
        return self._server.folder if self._server is not None else None

    def _as_server_user(self) -> list[str]:
        """The prefix that runs a command as the server's user: nothing, or setpriv to `nobody` under root."""
        if os.geteuid() != 0:
            return []
        user = pwd.getpwnam(UNPRIVILEGED)
        return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--"]

    def start(self) -> None:
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

    def ready(self) -> bool:
        assert self._bin is not None and self.port is not None
        done = subprocess.run([str(self._bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
                              capture_output=True, timeout=10)
        return done.returncode == 0

    def sql(self, statement: str, timeout_s: float = 120.0) -> str:
        """Run SQL as the lab's role through psql (the password in its environment, never on a command line);
        returns psql's unaligned output."""
        assert self._bin is not None and self.port is not None and self._password is not None
        env = {**os.environ, "PGPASSWORD": self._password, "PGCONNECT_TIMEOUT": "5"}
        try:
            done = subprocess.run([str(self._bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", ROLE,
                                   "-d", "postgres", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", statement],
                                  capture_output=True, text=True, timeout=timeout_s, env=env,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise DatabaseError(f"a query took over {timeout_s:g} s") from None
        if done.returncode != 0:
            raise DatabaseError(f"the query failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
        return done.stdout.strip()

    def seed(self, rows: int) -> None:
        """A table of `rows` rows, the same for every run (no randomness), indexed on `score`: a scan of it costs the
        server real milliseconds, an indexed read does not."""
        self.sql(f"CREATE TABLE items AS SELECT g AS id, md5(g::text) AS name, (g * 7919) % 100000 AS score "
                 f"FROM generate_series(1, {int(rows)}) AS g; CREATE INDEX items_score ON items (score); "
                 "ANALYZE items;")
