"""A fleet on this machine: `count` hosts in network namespaces (harness.lab.netns), the fleet's broker on their
bridge, and the lab's agent `host1` .. `hostN` in each, all stopped and removed on exit whatever happened.

What `gil-lab netns --hosts N -- COMMAND` runs COMMAND in (HOSTS=host1,host2 then reaches them), and what the tests
use. The fleet's secret is a fresh random one in a mode-600 file of a private folder, removed with it; the broker's
password is in LAB_FLEET_BROKER of the command's environment only.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from harness.lab.fleet import AgentClient, agent_command, wait_answering
from harness.lab.netns import Namespaces
from harness.lab.processes import parent_death_signal, spawn, stop_tree
from harness.lab.services.redis_broker import RedisBroker

AGENT_READY_S = 60.0


class LocalFleet:
    """Hosts host1..hostN on this machine, each with its agent; `env` is what a run on them needs."""

    def __init__(self, count: int, allow: list[str] | None = None,
                 agent_env: dict[int, dict[str, str]] | None = None) -> None:
        self.count = count
        self.names = [f"host{i}" for i in range(1, count + 1)]
        self.allow = allow or []
        self.agent_env = agent_env or {}  # extra environment per host (1-based): a skewed clock (libfaketime)
        self.agents: list[subprocess.Popen] = []
        self._stack = ExitStack()
        self.folder: Path | None = None
        self.broker: RedisBroker | None = None
        self.namespaces: Namespaces | None = None

    def __enter__(self) -> LocalFleet:
        try:
            self.folder = Path(tempfile.mkdtemp(prefix="gil-lab-fleet-"))
            self._stack.callback(shutil.rmtree, self.folder, ignore_errors=True)
            self.secret = secrets.token_hex(32).encode()
            secret_file = self.folder / "secret"
            secret_file.touch(mode=0o600)
            secret_file.write_bytes(self.secret)
            self.secret_file = secret_file
            self.namespaces = self._stack.enter_context(Namespaces(self.count))
            self.broker = self._stack.enter_context(RedisBroker(bind=self.namespaces.address, private=True))
            assert self.broker.url is not None
            for i, name in enumerate(self.names, start=1):
                argv, env = agent_command(name, self.broker.url, secret_file, self.allow)
                env.update(self.agent_env.get(i, {}))
                agent = spawn(self.namespaces.command(i, argv), env=env, log_path=str(self.folder / f"{name}.log"))
                self.agents.append(agent)
                self._stack.callback(stop_tree, agent)
            for name in self.names:
                client = AgentClient(name, self.broker.url, self.secret)
                try:
                    wait_answering(client, AGENT_READY_S)
                finally:
                    client.close()
        except BaseException:
            self.__exit__()
            raise
        return self

    @property
    def env(self) -> dict[str, str]:
        """What a run on these hosts needs in its environment."""
        assert self.broker is not None and self.broker.url is not None
        return {"LAB_FLEET_BROKER": self.broker.url, "LAB_FLEET_SECRET_FILE": str(self.secret_file)}

    def log(self, name: str) -> str:
        assert self.folder is not None
        try:
            return (self.folder / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    def __exit__(self, *_: object) -> None:
        self._stack.close()


def run_in(count: int, command: list[str], allow: list[str] | None = None) -> int:
    """`gil-lab netns`: the lab's COMMAND (`python -m harness COMMAND`) run with a fleet of `count` hosts here, and
    waited for: Ctrl-C reaches it from the terminal and it cleans up as it always does (its partial results kept),
    a SIGTERM is passed on to it; then the fleet goes."""
    with LocalFleet(count, allow) as fleet:
        print(f"gil-lab netns: {count} hosts ({', '.join(fleet.names)}) in network namespaces, their broker on "
              f"{fleet.namespaces.address if fleet.namespaces else '?'}; running: {' '.join(command)}", flush=True)
        # In this terminal's process group (Ctrl-C reaches it), dying with this process (nothing outlives the fleet).
        child = subprocess.Popen([sys.executable, "-m", "harness", *command], env={**os.environ, **fleet.env},
                                 preexec_fn=parent_death_signal)
        handlers = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
                    signal.SIGTERM: signal.signal(signal.SIGTERM, lambda signum, _f: child.send_signal(signum))}
        try:
            return child.wait()
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            if child.poll() is None:
                stop_tree(child, grace_s=30)
