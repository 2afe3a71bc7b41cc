"""The shape every service the lab starts has, and the private server process most of them run.

A `Service` is entered (found, started, checked ready) and exited (stopped, its traces removed). A failure at
any step stops what was started before the error goes on, so a refused or broken service leaves nothing.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.errors import ServiceError
from harness.lab.processes import interrupts_deferred, spawn, start_watchdog, stop_tree, stop_watchdog


def redact(url: str) -> str:
    """The URL (or a message holding one) with any password replaced, safe to print and to store.

    A password is what lies between the user's colon and the netloc's *last* '@' (as redis-py and
    urllib read it: an unencoded '@' belongs to the password), or a `password=` query parameter.
    """
    text = re.sub(r"(//[^:/@\s]*:)[^\s/]*@", r"\1***@", url)
    return re.sub(r"([?&]password=)[^&\s]*", r"\1***", text)


def new_password() -> str:
    """A fresh password for one service: 128 random bits, hex (safe in a URL and a config file)."""
    return secrets.token_hex(16)


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port free on `address` now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


class Service(ABC):
    """A service of the lab's: `with Kind(...) as service:` starts it and makes it ready, or refuses in one line."""

    name = "service"  # what messages call it
    error: type[ServiceError] = ServiceError  # what it raises when it cannot be had
    start_timeout_s = 15.0

    def __enter__(self) -> Service:
        try:
            self.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @abstractmethod
    def start(self) -> None:
        """Find what the service needs (or raise ServiceError saying how to get it) and start it."""

    @abstractmethod
    def ready(self) -> bool:
        """One quick check that the service answers."""

    @abstractmethod
    def stop(self) -> None:
        """Stop whatever was started and remove its traces; safe to call more than once, or before start."""

    def exited(self) -> str | None:
        """Why the service is gone while it should be starting (the end of its log), or None while it runs."""
        return None

    def wait_ready(self) -> None:
        """Until `ready()`, within start_timeout_s; a service that exits or never answers is refused in one line."""
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            gone = self.exited()
            if gone is not None:
                raise self.error(f"{self.name} exited at start: {gone}")
            if self.ready():
                return
            if time.monotonic() > deadline:
                raise self.error(f"{self.name} did not answer within {self.start_timeout_s:g} s")
            time.sleep(0.05)


class ServerProcess:
    """A server binary run privately: its own folder (mode 0700, removed on stop), its config in a file only
    this user can read (never on the command line, where any user reads /proc/<pid>/cmdline), its log, and a
    watchdog that kills it and removes the folder if the harness dies."""

    def __init__(self, prefix: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix=f"gil-lab-{prefix}-"))
        self.log_path = self.folder / "server.log"
        self._proc: subprocess.Popen | None = None
        self._watchdog: subprocess.Popen | None = None

    def private_file(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.touch(mode=0o600)
        path.write_text(text)
        return path

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self._proc = spawn(argv, log_path=str(self.log_path), env=env)
        # The server dies with the harness (its parent-death signal); the watchdog removes its folder then.
        self._watchdog = start_watchdog(self._proc.pid, [str(self.folder)])

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def exited(self) -> str | None:
        if self._proc is None or self._proc.poll() is None:
            return None
        lines = self.log_path.read_text(errors="replace").strip().splitlines() if self.log_path.exists() else []
        return lines[-1] if lines else "no log"

    def stop(self, grace_s: float = 5.0, sig: int = signal.SIGTERM) -> None:
        """`sig` first (the server's own way to stop), SIGKILL after `grace_s`; then the folder goes."""
        with interrupts_deferred():  # a second interrupt waits until the server is stopped (bounded)
            if self._proc is not None:
                stop_tree(self._proc, sig, grace_s=grace_s)
                self._proc = None
            stop_watchdog(self._watchdog)
            self._watchdog = None
            shutil.rmtree(self.folder, ignore_errors=True)


class ServerService(Service):
    """A service that runs a private ServerProcess (`self._server`, from start() on): why it exited is its log's last
    line, and stopping it stops the process with `stop_signal` and removes its folder."""

    stop_signal: int = signal.SIGTERM
    _server: ServerProcess | None = None

    def exited(self) -> str | None:
        return self._server.exited() if self._server is not None else None

    @property
    def pid(self) -> int | None:
        """The server's process (the root of its tree), for the sampler: its own CPU, apart from other processes'."""
        return self._server.pid if self._server is not None else None

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(sig=self.stop_signal)
            self._server = None


def first_found(names: Sequence[str], packaged: Sequence[Callable[[], str | None]] = ()) -> str | None:
    """The first of `names` on PATH, else the first binary a Python package ships."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    for find in packaged:
        found = find()
        if found:
            return found
    return None


def packaged_binary(package: str, relative: str) -> str | None:
    """The server binary a package ships, at `relative` to the package's folder, if installed and runnable."""
    import importlib

    try:
        module = importlib.import_module(package)
    except ImportError:
        return None
    if module.__file__ is None:
        return None
    binary = Path(module.__file__).parent / relative
    return str(binary) if binary.is_file() and os.access(binary, os.X_OK) else None
