"""A slow echo service on loopback: the far end of the `io_net` workload's round trips (and of examples/ tasks).

It runs in a thread of the harness, so it ends with the harness whatever happens: nothing for the watchdog to
clean. A client's first line must be the service's password (workers get it as LAB_ECHO_PASSWORD); a
connection that does not send it is closed unanswered.
"""
from __future__ import annotations

import hmac
import socket
import socketserver
import threading
import time

from harness.lab.services.base import Service, new_password

REPLY_DELAY_S = 0.005  # like a remote service: the task waits on its socket for this long
# A connection that sends nothing for this long, or a line longer than this, is closed: one local client cannot
# hold a thread or fill memory. A task's round trips follow each other within milliseconds.
READ_TIMEOUT_S = 60.0
MAX_LINE = 4096


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.request.settimeout(READ_TIMEOUT_S)
        try:
            given = self.rfile.readline(MAX_LINE).rstrip(b"\r\n")
            if not hmac.compare_digest(given, self.server.password.encode()):
                return  # closed unanswered
            while line := self.rfile.readline(MAX_LINE):
                time.sleep(self.server.reply_delay_s)
                self.wfile.write(line)
        except OSError:  # a timeout, or the client gone
            return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    password: str
    reply_delay_s: float


class EchoService(Service):
    """`with EchoService() as echo:` serves on echo.host:echo.port (127.0.0.1, a free port) until exit."""

    name = "echo service"

    def __init__(self, reply_delay_s: float = REPLY_DELAY_S) -> None:
        self.reply_delay_s = reply_delay_s
        self.password = new_password()
        self.host, self.port = "127.0.0.1", 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> EchoService:
        super().__enter__()
        return self

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def start(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.password = self.password
        self._server.reply_delay_s = self.reply_delay_s
        host, port = self._server.server_address[:2]
        self.host, self.port = str(host), int(port)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="lab-echo", daemon=True)
        self._thread.start()

    def ready(self) -> bool:
        try:
            with socket.create_connection(self.address, timeout=1.0) as conn:
                conn.sendall(self.password.encode() + b"\nready\n")
                return conn.makefile("rb").readline() == b"ready\n"
        except OSError:
            return False

    def exited(self) -> str | None:
        return "its thread ended" if self._thread is not None and not self._thread.is_alive() else None

    def stop(self) -> None:
        if self._server is not None:
            if self._thread is not None and self._thread.is_alive():  # shutdown() waits for serve_forever to end
                self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
