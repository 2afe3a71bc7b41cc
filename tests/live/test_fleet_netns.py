"""Several hosts on one machine with real network hops: a broker host (this namespace, the harness's) and two worker
hosts, each a network namespace joined to it by a veth pair on a bridge, each agent in its own namespace, every
message crossing the veth links. One agent's clock runs 2 s ahead (libfaketime); one is killed outright. As root
(CI runs as root); elsewhere skipped with one line saying why."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from lab_process import agent_ready

from harness.errors import BrokerError
from harness.lab.fleet import AgentClient, agent_command, own_clock_offset
from harness.lab.processes import spawn, stop_tree
from harness.lab.services.redis_broker import RedisBroker

if os.geteuid() != 0 or shutil.which("ip") is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI runs as root with iproute2 (.ci/run installs it): the namespace tests must run there")
    pytestmark = pytest.mark.skip(reason="network namespaces need root and iproute2's `ip` (CI runs as root): the "
                                         "several-hosts tests across veth links are skipped")
FAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))), None)
SECRET = b"netns-fleet-secret-" + b"7" * 40


def _ip(*args: str, netns: str | None = None) -> None:
    argv = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
    subprocess.run(argv, check=True, capture_output=True, timeout=10)


class Hosts:
    """A bridge in this namespace (the broker's host) and `count` namespaces on it, removed whatever happens."""

    def __init__(self, count: int) -> None:
        tag = f"{os.getpid() % 10000:04d}"
        self.bridge = f"glb{tag}"
        self.subnet = f"10.77.{os.getpid() % 250}"
        self.address = f"{self.subnet}.1"
        self.names = [f"gl{tag}h{i}" for i in range(1, count + 1)]
        self.links = [f"glv{tag}{i}" for i in range(1, count + 1)]

    def __enter__(self) -> Hosts:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.address}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i, (ns, link) in enumerate(zip(self.names, self.links, strict=True), start=1):
                _ip("netns", "add", ns)
                _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
                _ip("link", "set", link, "master", self.bridge, "up")
                _ip("addr", "add", f"{self.subnet}.{10 + i}/24", "dev", "eth0", netns=ns)
                _ip("link", "set", "eth0", "up", netns=ns)
                _ip("link", "set", "lo", "up", netns=ns)
        except BaseException:
            self.__exit__()
            raise
        return self

    def pids(self, ns: str) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10).stdout
        return [int(p) for p in out.split()]

    def __exit__(self, *_: object) -> None:
        for ns in self.names:
            for pid in self.pids(ns) if ns in _namespaces() else []:
                with _gone():
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=10)


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


class _gone:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, *_: object) -> bool:
        return kind is ProcessLookupError


def _agent(hosts: Hosts, i: int, broker_url: str, secret_file: Path, log: Path, skew: str | None = None):
    argv, env = agent_command(f"host{i}", broker_url, secret_file)
    if skew is not None and FAKETIME is not None:
        env.update(LD_PRELOAD=str(FAKETIME), FAKETIME=skew, FAKETIME_DONT_RESET="1")
    return spawn(["ip", "netns", "exec", hosts.names[i - 1], *argv], env=env, log_path=str(log))


def test_the_broker_listens_only_where_it_is_told():
    with pytest.raises(BrokerError, match="does not listen on every interface"):
        RedisBroker(bind="0.0.0.0")
    with pytest.raises(BrokerError, match="give an IP address of this host"):
        RedisBroker(bind="every")


@pytest.mark.skipif(FAKETIME is None, reason="no libfaketime here (apt-get install libfaketime)")
def test_agents_in_two_namespaces_answer_across_veth_links_their_clocks_corrected_and_a_killed_one_leaves_nothing(
        tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET)
    secret_file.chmod(0o600)
    with Hosts(2) as hosts, RedisBroker(bind=hosts.address) as broker:
        assert broker.url is not None and f"@{hosts.address}:" in broker.url
        agents = [_agent(hosts, 1, broker.url, secret_file, tmp_path / "host1.log"),
                  _agent(hosts, 2, broker.url, secret_file, tmp_path / "host2.log", skew="+2s")]
        try:
            clients = [AgentClient(f"host{i}", broker.url, SECRET) for i in (1, 2)]
            for client in clients:
                agent_ready(client)
            # Their connections to the broker come from their namespaces' addresses: across the veth links.
            peers = {c["addr"].rsplit(":", 1)[0] for c in redis.Redis.from_url(broker.url).client_list()}
            assert {f"{hosts.subnet}.11", f"{hosts.subnet}.12"} <= peers, peers
            harness = own_clock_offset(broker.url)
            offsets = [client.clock_offset(samples=16) for client in clients]
            assert all(o.uncertainty_s < 0.005 for o in (harness, *offsets))
            assert abs(offsets[0].offset_s - harness.offset_s) < 0.005
            assert offsets[1].offset_s - harness.offset_s == pytest.approx(-2.0, abs=0.005)
            # Killed outright: nothing of it is left in its namespace.
            os.kill(agents[0].pid, signal.SIGKILL)
            agents[0].wait(timeout=10)
            deadline = time.monotonic() + 10
            while hosts.pids(hosts.names[0]) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert hosts.pids(hosts.names[0]) == []
            assert clients[1].describe()["agent"] == "host2"  # the other host goes on
        finally:
            for proc in agents:
                stop_tree(proc)
        names = list(hosts.names)
    assert not set(names) & set(_namespaces())
    assert hosts.bridge not in subprocess.run(["ip", "link"], capture_output=True, text=True).stdout
