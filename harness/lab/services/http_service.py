"""A real HTTP service on 127.0.0.1 for a run's HTTP work (issue 24's second step; no workload uses it yet).

It runs as a process of its own (harness.lab.services.http_server), so its CPU is its own and never the harness's
GIL's, with a private folder (0700) holding its config: the port and a fresh token every request must carry. The
watchdog kills it and removes the folder if the harness dies.
"""
from __future__ import annotations

import http.client
import json
import sys

from harness.lab.services.base import ServerProcess, ServerService, free_port, new_password
from harness.lab.services.http_server import MAX_BYTES, MAX_WAIT_MS  # noqa: F401 (the service's bounds, said here)
from harness.project import PROJECT_ROOT


class HttpService(ServerService):
    """`with HttpService() as web:` serves GET /wait?ms=..&bytes=.. on web.host:web.port with web.token."""

    name = "HTTP service"

    def __init__(self) -> None:
        self.host, self.port = "127.0.0.1", 0
        self.token = new_password()
        self._server: ServerProcess | None = None

    def __enter__(self) -> HttpService:
        super().__enter__()
        return self

    def start(self) -> None:
        self._server = ServerProcess("http")
        self.port = free_port()
        config = self._server.private_file("config.json", json.dumps({"port": self.port, "token": self.token}))
        self._server.start([sys.executable, "-m", "harness.lab.services.http_server", str(config)],
                           env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"})

    def get(self, path: str, timeout_s: float = 5.0, token: str | None = None) -> tuple[int, bytes]:
        """One request (a new connection): its status and body."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {self.token if token is None else token}"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def ready(self) -> bool:
        try:
            return self.get("/stats", timeout_s=1.0)[0] == 200
        except OSError:
            return False
