"""The private PostgreSQL (issue 24's first step): started on 127.0.0.1 with a fresh password, seeded, reached with
it, and gone with its folder when it stops, also after SIGKILL of the harness that started it."""
from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest
from lab_process import killed_outright

from harness.lab.services.postgres import PostgresServer, find_postgres

if find_postgres() is None:
    if os.environ.get("CI"):  # .ci/run installs it: in CI these tests run, never skipped
        raise RuntimeError("CI has no PostgreSQL server: .ci/run should have installed it")
    pytestmark = pytest.mark.skip(reason="no PostgreSQL server here (apt-get install postgresql, brew install "
                                         "postgresql): the private-database tests are skipped")


def _servers_in(folder: Path) -> list[psutil.Process]:
    """Processes whose command line names the server's folder (the postmaster names its data directory)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(folder) in part for part in p.info["cmdline"] or []):
                found.append(p)
        except psutil.Error:
            continue
    return found


def test_a_private_postgres_serves_its_seeded_table_on_loopback_and_leaves_nothing():
    with PostgresServer() as pg:
        folder = pg.folder
        assert folder is not None and pg.url is not None and pg.url.startswith("postgresql://lab:")
        assert "127.0.0.1" in pg.url and "***" in pg.redacted_url and pg._password not in pg.redacted_url
        pg.seed(50_000)
        assert pg.execute("SELECT count(*) FROM items") == [(50000,)]
        servers = _servers_in(folder)
        assert servers, "the server runs from its own folder"
        for p in servers:  # the password is on no command line
            assert pg._password not in " ".join(p.cmdline())
        listening = {c.laddr.ip for p in servers for c in p.net_connections(kind="inet") if c.status == "LISTEN"}
        assert listening == {"127.0.0.1"}
        assert not list(Path("/tmp").glob(f".s.PGSQL.{pg.port}*"))  # no Unix socket for other users to reach
        if os.geteuid() == 0:  # PostgreSQL refuses root: the server (not its watchdog) runs as the unprivileged user
            postmasters = [p for p in servers if p.cmdline()[0].endswith("postgres")]
            assert postmasters and {p.username() for p in postmasters} == {"nobody"}
    assert not folder.exists() and _servers_in(folder) == []


def test_a_harness_killed_outright_leaves_no_server_and_no_folder():
    code = ("import time; from harness.lab.services.postgres import PostgresServer; "
            "pg = PostgresServer().__enter__(); print(pg.folder, flush=True); time.sleep(120)")
    def folder_and_server(folder: str) -> tuple[bool, bool]:
        return Path(folder).exists(), bool(_servers_in(Path(folder)))

    assert killed_outright(code, lambda f: all(folder_and_server(f)), lambda f: any(folder_and_server(f)))
