"""Several hosts on this machine, with real network hops: network namespaces joined by veth pairs to a bridge.

The broker's host is this namespace (the bridge's address); each worker host is a namespace of its own, its agent
started in it, so every message between them crosses a veth link. For the tests, and for trying a run on several hosts
without several machines (`gil-lab netns --hosts 4 -- sweep experiments/hosts.toml`). Needs root and iproute2's `ip`.
Everything made is removed on exit, whatever happened: the namespaces (and any process left in them), the veth pairs,
the bridge.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Sequence

import psutil

from harness.errors import UsageError

IP_TIMEOUT_S = 10


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2's `ip` (apt-get install iproute2)"
    return None


def _ip(*args: str, netns: str | None = None) -> None:
    argv = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
    subprocess.run(argv, check=True, capture_output=True, timeout=IP_TIMEOUT_S)


def namespaces() -> list[str]:
    """The network namespaces on this machine now."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=IP_TIMEOUT_S).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


# What Namespaces makes, named after the process that made it (a namespace, its bridge): see remove_stale.
_OURS = re.compile(r"^gl(?:b|v)?(\d+)(?:h\d+)?$")


def remove_stale() -> None:
    """Namespaces and bridges of the lab's whose maker is gone (killed before it could remove them)."""
    for ns in namespaces():
        match = _OURS.match(ns)
        if match and "h" in ns and not psutil.pid_exists(int(match.group(1))):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=IP_TIMEOUT_S)
    links = subprocess.run(["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, text=True,
                           timeout=IP_TIMEOUT_S).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip() if line.count(":") >= 2 else ""
        match = _OURS.match(name)
        if match and name.startswith("glb") and not psutil.pid_exists(int(match.group(1))):
            subprocess.run(["ip", "link", "del", name], capture_output=True, timeout=IP_TIMEOUT_S)


def _free_subnet(first: int) -> str:
    """A 10.77.X subnet no interface here has an address in (two labs at once on one machine each get their own)."""
    used = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True,
                          timeout=IP_TIMEOUT_S).stdout
    for k in range(250):
        subnet = f"10.77.{(first + k) % 250}"
        if f" {subnet}." not in used:
            return subnet
    raise UsageError("several hosts on this machine: every 10.77.X subnet is taken")


class Namespaces:
    """A bridge in this namespace and `count` namespaces on it, host i at SUBNET.(10 + i); removed whatever happens.
    Names carry this process's id, so two runs of the lab on one machine do not meet."""

    def __init__(self, count: int) -> None:
        why = unavailable()
        if why:
            raise UsageError(f"several hosts on this machine: {why}")
        tag = str(os.getpid())  # interface names hold 15 characters: "glv" + a pid of 7 digits + a host's number
        self.bridge = f"glb{tag}"
        self.subnet = _free_subnet(os.getpid() % 250)
        self.address = f"{self.subnet}.1"
        self.names = [f"gl{tag}h{i}" for i in range(1, count + 1)]
        self.links = [f"glv{tag}{i}" for i in range(1, count + 1)]

    def __enter__(self) -> Namespaces:
        remove_stale()
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.address}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i, (ns, link) in enumerate(zip(self.names, self.links, strict=True), start=1):
                _ip("netns", "add", ns)
                _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
                _ip("link", "set", link, "master", self.bridge, "up")
                _ip("addr", "add", f"{self.host_address(i)}/24", "dev", "eth0", netns=ns)
                _ip("link", "set", "eth0", "up", netns=ns)
                _ip("link", "set", "lo", "up", netns=ns)
        except BaseException:
            self.__exit__()
            raise
        return self

    def host_address(self, i: int) -> str:
        return f"{self.subnet}.{10 + i}"

    def command(self, i: int, argv: Sequence[str]) -> list[str]:
        """`argv` run in host i's namespace (1-based)."""
        return ["ip", "netns", "exec", self.names[i - 1], *argv]

    def pids(self, ns: str) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=IP_TIMEOUT_S).stdout
        return [int(p) for p in out.split()]

    def __exit__(self, *_: object) -> None:
        present = namespaces()
        for ns in self.names:
            for pid in self.pids(ns) if ns in present else []:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=IP_TIMEOUT_S)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=IP_TIMEOUT_S)
