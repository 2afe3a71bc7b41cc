"""The lab's agents on other hosts, seen from the harness: starting one (`gil-lab agent`), and asking one.

An agent is a Celery worker of the lab's (workloads.agent) on its own control queue of the shared broker: Celery
carries the messages, so the lab has no remote-execution layer of its own. Every message is signed with the
fleet's shared secret and so is every answer (workloads.control); the secret is read from a file, never passed as an
argument or printed. What the harness asks now: an agent's host (`describe`) and its clock's offset from the
broker's (`clock_offset`, NTP-style over Redis TIME: harness.analysis.clock).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import stat
import sys
import time
from pathlib import Path
from typing import Any

import redis

from harness.analysis.clock import ClockOffset, ClockSample, estimate
from harness.errors import LabError, UsageError
from harness.lab.client import client_app
from harness.lab.interpreters import project_env
from harness.lab.services.base import redact
from workloads.control import ControlRefused, Verifier, sign
from workloads.protocol import agent_queue, agent_refused_key, agent_reply_key

AGENT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
# How long the harness waits for an agent's answer (it answers at once; the broker is a network hop away).
ANSWER_TIMEOUT_S = 10.0


class AgentError(LabError):
    """An agent did not answer, or answered with what the fleet's secret does not vouch for."""


def read_secret(path: str | Path) -> bytes:
    """The fleet's secret from its file: refused in one line when missing, empty or readable by others."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        secret = path.read_bytes().strip()
    except OSError as exc:
        raise UsageError(f"--secret-file {path}: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"--secret-file {path}: readable by others (mode {stat.filemode(mode)}); chmod 600 it")
    if len(secret) < 32:
        raise UsageError(f"--secret-file {path}: holds {len(secret)} bytes; a fleet's secret needs at least 32 "
                         "(make one: python -c 'import secrets; print(secrets.token_hex(32))')")
    return secret


def check_name(name: str) -> str:
    if not AGENT_NAME.match(name or ""):
        raise UsageError(f"agent name {name!r}: use 1-31 lower-case letters, digits or '-', starting with a letter "
                         "or digit")
    return name


def agent_command(name: str, broker_url: str, secret_file: str | Path,
                  python: str = sys.executable) -> tuple[list[str], dict[str, str]]:
    """The agent's worker command line and environment: the lab's own Celery command, validated settings, no shell.
    The broker's URL and the secret's path go in the environment, never in arguments (`ps` shows those)."""
    check_name(name)
    read_secret(secret_file)
    argv = [python, "-m", "celery", "-A", "workloads.agent", "worker", "-P", "solo", "-c", "1",
            "-Q", agent_queue(name), "-n", f"lab-agent-{name}@%h", "--without-heartbeat", "--without-gossip",
            "--without-mingle", "-l", "WARNING"]
    env = {**project_env(), "LAB_AGENT_NAME": name, "LAB_BROKER_URL": broker_url,
           "LAB_AGENT_SECRET_FILE": str(Path(secret_file).resolve())}
    return argv, env


def run_agent(name: str, broker_url: str, secret_file: str | Path) -> None:
    """`gil-lab agent`: become the agent's Celery worker (exec), after checking what it was given: its name and the
    secret's file first, then the broker."""
    check_name(name)
    read_secret(secret_file)
    if not broker_url:
        raise UsageError("gil-lab agent needs the fleet's broker: --broker redis://:PASSWORD@HOST:PORT/0 (or "
                         "rediss:// where the server has TLS)")
    argv, env = agent_command(name, broker_url, secret_file)
    try:
        redis.Redis.from_url(broker_url, socket_connect_timeout=5, socket_timeout=5).ping()
    except (redis.RedisError, ValueError) as exc:
        raise UsageError(f"--broker {redact(broker_url)}: {exc}") from None
    print(f"gil-lab agent {name}: answering on {agent_queue(name)} (Ctrl-C to stop)", flush=True)
    os.execvpe(argv[0], argv, env)


class AgentClient:
    """Asks one agent, through the broker, and checks that the answer is its."""

    def __init__(self, name: str, broker_url: str, secret: bytes, sender: str = "harness") -> None:
        self.name = check_name(name)
        self.broker_url = broker_url
        self._secret = secret
        self._verifier = Verifier(secret)
        self.sender = sender
        self._redis = redis.Redis.from_url(broker_url, socket_timeout=ANSWER_TIMEOUT_S + 5)
        self._app = client_app(broker_url, f"gil_lab_fleet_{secrets.token_hex(3)}", connect_timeout_s=5)

    def send(self, envelope: dict[str, Any]) -> None:
        """Put a control message on the agent's queue (as signed, or as anyone with broker access could)."""
        self._app.send_task("lab.agent.control", args=[envelope], queue=agent_queue(self.name))

    def ask(self, command: str, timeout_s: float = ANSWER_TIMEOUT_S, **args: Any) -> dict[str, Any]:
        """The agent's answer to a signed command, checked against the fleet's secret; AgentError when none comes."""
        reply_to = agent_reply_key(self.name, secrets.token_hex(8))
        envelope = sign(self._secret, self.sender, {"command": command, "reply_to": reply_to, **args})
        self.send(envelope)
        got = self._redis.blpop([reply_to], timeout=max(1, round(timeout_s)))
        if got is None:
            raise AgentError(f"agent {self.name} did not answer {command!r} within {timeout_s:g} s: is "
                             f"`gil-lab agent --name {self.name}` running against this broker, with this secret?")
        try:
            answer = self._verifier.verify(json.loads(got[1]))
        except (ControlRefused, ValueError) as exc:
            raise AgentError(f"agent {self.name}'s answer to {command!r} refused: {exc}") from None
        if answer.get("in_reply_to") != envelope["nonce"] or answer.get("command") != command:
            raise AgentError(f"agent {self.name} answered another message than {command!r}")
        return answer["answer"]

    def describe(self) -> dict[str, Any]:
        return self.ask("describe")

    def clock_offset(self, samples: int = 8) -> ClockOffset:
        """The agent's clock against the broker's: what to add to its timestamps, and within how much."""
        raw = self.ask("clock", samples=samples)["samples"]
        return estimate([ClockSample(*map(float, s)) for s in raw])

    def refusals(self) -> list[dict[str, Any]]:
        """What the agent refused lately, and why (as it reported them)."""
        return [json.loads(x) for x in self._redis.lrange(agent_refused_key(self.name), 0, -1)]


def own_clock_offset(broker_url: str, samples: int = 8) -> ClockOffset:
    """The harness's own clock against the broker's, the same way an agent measures its own."""
    client = redis.Redis.from_url(broker_url, socket_timeout=5)
    out = []
    for _ in range(samples):
        sent = time.time()
        seconds, micros = client.time()
        out.append(ClockSample(sent, seconds + micros / 1e6, time.time()))
    return estimate(out)
