"""A slow echo service on loopback: the far end of the `io_net` workload's round trips."""
from __future__ import annotations

import socketserver
import threading
import time

REPLY_DELAY_S = 0.005  # like a remote service: the task waits on its socket for this long


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            time.sleep(self.server.reply_delay_s)
            self.wfile.write(line)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class EchoServer:
    """Context manager: serves on 127.0.0.1 on a free port until closed."""

    def __init__(self, reply_delay_s: float = REPLY_DELAY_S) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.reply_delay_s = reply_delay_s
        self.reply_delay_s = reply_delay_s
        self.host, self.port = self._server.server_address
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="lab-echo", daemon=True)

    def __enter__(self) -> EchoServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
