"""The lab's HTTP service, as its own process: `python -m harness.lab.services.http_server CONFIG`.

Standard library only (ThreadingHTTPServer, a thread per connection, HTTP/1.1 keep-alive so a client keeps one
connection per slot). CONFIG is a JSON file in the service's private folder: the port and the token every request
must carry (`Authorization: Bearer <token>`); a request without it gets 401 and no wait. Endpoints:
  GET /wait?ms=50&bytes=1000   answers after `ms` milliseconds with `bytes` bytes
  GET /stats                   {"served": n, "in_flight": n, "max_in_flight": n} (what the service itself saw)
It binds 127.0.0.1 only.
"""
from __future__ import annotations

import hmac
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

MAX_WAIT_MS = 60_000
MAX_BYTES = 16 * 1024 * 1024
# A connection silent this long is closed: a client cannot hold a thread for ever.
IDLE_TIMEOUT_S = 60.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's listen backlog is 5: 300 clients connecting at once overflowed it, and connections retried
    # after 1, 3, 7 s (some past a 10 s timeout). Room for a thousand slots connecting together.
    request_queue_size = 1024
    token: str
    lock: threading.Lock
    served = 0
    in_flight = 0
    max_in_flight = 0


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: with Nagle's algorithm the second waits for the client's delayed
        # ACK, 40 ms a request (measured: 10 keep-alive clients of 50 ms requests ran at 112 a second, not 200).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # one line per request would cost more than the request

    def _send(self, status: int, body: bytes, kind: str = "application/octet-stream") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        given = self.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.server.token}".encode()):
            self._send(401, b"a token is needed\n", "text/plain")
            return
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/stats":
            with self.server.lock:
                stats = {"served": self.server.served, "in_flight": self.server.in_flight,
                         "max_in_flight": self.server.max_in_flight}
            self._send(200, json.dumps(stats).encode(), "application/json")
            return
        if url.path != "/wait":
            self._send(404, b"GET /wait?ms=50&bytes=1000 or /stats\n", "text/plain")
            return
        try:
            wait_ms = min(max(int(query.get("ms", ["0"])[0]), 0), MAX_WAIT_MS)
            size = min(max(int(query.get("bytes", ["0"])[0]), 0), MAX_BYTES)
        except ValueError:
            self._send(400, b"ms and bytes are whole numbers\n", "text/plain")
            return
        with self.server.lock:
            self.server.in_flight += 1
            self.server.max_in_flight = max(self.server.max_in_flight, self.server.in_flight)
        try:
            time.sleep(wait_ms / 1000)
            self._send(200, b"x" * size)
        finally:
            with self.server.lock:
                self.server.in_flight -= 1
                self.server.served += 1


def serve(config_path: str) -> None:
    with open(config_path) as f:
        config = json.load(f)
    server = _Server(("127.0.0.1", int(config["port"])), _Handler)
    server.token = str(config["token"])
    server.lock = threading.Lock()
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    serve(sys.argv[1])
