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
import secrets
import stat
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from harness.analysis.clock import ClockOffset, ClockSample, estimate
from harness.errors import LabError, UsageError
from harness.lab.client import client_app
from harness.lab.interpreters import project_env
from harness.lab.services.base import redact
from harness.lab.services.redis_broker import RedisBroker
from harness.model.hosts import check_name
from workloads.control import ControlRefused, Verifier, sign
from workloads.protocol import (
    AGENT_ALLOW_PATHS,
    AGENT_NAME,
    AGENT_SECRET_FILE,
    BROKER_URL,
    agent_here_key,
    agent_queue,
    agent_refused_key,
    agent_reply_key,
)

# How long the harness waits for an agent's answer (it answers at once; the broker is a network hop away).
ANSWER_TIMEOUT_S = 10.0


class AgentError(LabError):
    """An agent did not answer, or answered with what the fleet's secret does not vouch for."""


class AgentRefused(AgentError):
    """An agent answered that it would not or could not do what it was asked (its reason, in one line)."""


def read_private(path: str | Path, what: str, minimum: int) -> bytes:
    """A file that holds a secret: refused in one line when missing, shorter than `minimum` or readable by others."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        content = path.read_bytes().strip()
    except OSError as exc:
        raise UsageError(f"{what} {path}: {exc.strerror or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"{what} {path}: readable by others (mode {stat.filemode(mode)}); chmod 600 it")
    if len(content) < minimum:
        raise UsageError(f"{what} {path}: empty")
    return content


def read_secret(path: str | Path) -> bytes:
    """The fleet's secret from its file: refused in one line when missing, empty or readable by others."""
    path = Path(path)
    secret = read_private(path, "--secret-file", minimum=0)
    if len(secret) < 32:
        raise UsageError(f"--secret-file {path}: holds {len(secret)} bytes; a fleet's secret needs at least 32 "
                         "(make one: python -c 'import secrets; print(secrets.token_hex(32))')")
    return secret


def allowed_paths(paths: list[str] | None) -> list[str]:
    """--allow-path folders, each an existing directory, absolute."""
    out = []
    for path in paths or []:
        resolved = Path(path).expanduser().resolve()
        if not resolved.is_dir():
            raise UsageError(f"--allow-path {path}: not a directory")
        out.append(str(resolved))
    return out


def agent_command(name: str, broker_url: str, secret_file: str | Path, allow: list[str] | None = None,
                  python: str = sys.executable) -> tuple[list[str], dict[str, str]]:
    """The agent's worker command line and environment: the lab's own Celery command, validated settings, no shell.
    The broker's URL and the secret's path go in the environment, never in arguments (`ps` shows those)."""
    check_name(name)
    read_secret(secret_file)
    allowed = allowed_paths(allow)
    argv = [python, "-m", "celery", "-A", "workloads.agent", "worker", "-P", "solo", "-c", "1",
            "-Q", agent_queue(name), "-n", f"lab-agent-{name}@%h", "--without-heartbeat", "--without-gossip",
            "--without-mingle", "-l", "WARNING"]
    env = {**project_env(), AGENT_NAME: name, BROKER_URL: broker_url,
           AGENT_SECRET_FILE: str(Path(secret_file).resolve()), AGENT_ALLOW_PATHS: json.dumps(allowed)}
    return argv, env


def run_fleet_broker(bind: str, url_file: str | Path, port: int | None = None) -> None:
    """`gil-lab fleet-broker`: the fleet's Redis on the one address named, with a fresh password, its URL written to a
    new mode-600 file (never printed), until Ctrl-C; then the server stops and the file goes."""
    import signal

    url_path = Path(url_file)
    if url_path.exists():
        raise UsageError(f"--url-file {url_path}: already exists (a fleet's broker is running, or remove it)")
    with RedisBroker(bind=bind, port=port, private=True) as broker:
        assert broker.url is not None
        try:
            with open(os.open(url_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
                f.write(broker.url + "\n")
            print(f"gil-lab fleet-broker: {broker.redacted_url}, its URL in {url_path} (copy it to each host, mode "
                  "600); Ctrl-C stops it", flush=True)
            while True:
                signal.pause()
        finally:
            url_path.unlink(missing_ok=True)


def run_agent(name: str, broker_url: str, secret_file: str | Path, allow: list[str] | None = None) -> None:
    """`gil-lab agent`: become the agent's Celery worker (exec), after checking what it was given: its name and the
    secret's file first, then the broker."""
    check_name(name)
    read_secret(secret_file)
    if not broker_url:
        raise UsageError("gil-lab agent needs the fleet's broker: --broker-file FILE, or --broker "
                         "redis://:PASSWORD@HOST:PORT/0 (or rediss:// where the server has TLS)")
    argv, env = agent_command(name, broker_url, secret_file, allow)
    try:
        redis.Redis.from_url(broker_url, socket_connect_timeout=5, socket_timeout=5).ping()
    except (redis.RedisError, ValueError) as exc:
        raise UsageError(f"--broker {redact(broker_url)}: {exc}") from None
    allowed = json.loads(env[AGENT_ALLOW_PATHS])
    print(f"gil-lab agent {name}: answering on {agent_queue(name)}; your tasks may be imported from "
          f"{', '.join(allowed) if allowed else 'no folder (--allow-path)'} (Ctrl-C to stop)", flush=True)
    os.execvpe(argv[0], argv, env)


@dataclass(frozen=True)
class FleetSettings:
    """What a run on several hosts needs of the fleet: its broker (where the agents listen) and its secret."""

    broker_url: str
    secret: bytes = field(repr=False)


def read_url_file(path: str | Path) -> str:
    """The fleet's broker URL from the file `gil-lab fleet-broker --url-file` wrote (mode 600: it holds a password)."""
    return read_private(path, "--broker-file", minimum=1).decode().strip()


def fleet_settings(environ: Mapping[str, str] = os.environ) -> FleetSettings:
    """The fleet the agents were started on, from LAB_FLEET_BROKER (or the file LAB_FLEET_BROKER_FILE names) and
    LAB_FLEET_SECRET_FILE (never arguments, which `ps` shows); refused in one line when either is missing."""
    url, secret_file = environ.get("LAB_FLEET_BROKER", ""), environ.get("LAB_FLEET_SECRET_FILE", "")
    if not url and environ.get("LAB_FLEET_BROKER_FILE"):
        url = read_url_file(environ["LAB_FLEET_BROKER_FILE"])
    if not url or not secret_file:
        missing = " and ".join(n for n, v in (("LAB_FLEET_BROKER", url), ("LAB_FLEET_SECRET_FILE", secret_file))
                               if not v)
        raise UsageError(f"HOSTS runs on the fleet's agents: set {missing} (the broker and secret file the agents were "
                         "started with: README, 'Several hosts')")
    if not url.startswith(("redis://", "rediss://")):
        raise UsageError(f"LAB_FLEET_BROKER {redact(url)}: give redis://:PASSWORD@HOST:PORT/0 (rediss:// for TLS)")
    return FleetSettings(url, read_secret(secret_file))


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

    def close(self) -> None:
        self._redis.close()
        self._app.close()

    def here(self) -> bool:
        """Whether the agent is there now (it says so every second): one that was killed is not, within seconds."""
        try:
            return bool(self._redis.exists(agent_here_key(self.name)))
        except (redis.RedisError, OSError):
            return False

    def ask(self, command: str, timeout_s: float = ANSWER_TIMEOUT_S, while_here: bool = False,
            **args: Any) -> dict[str, Any]:
        """The agent's answer to a signed command, checked against the fleet's secret; AgentError when none comes
        within `timeout_s` (or, `while_here`, as soon as the agent is gone), or when the broker fails meanwhile."""
        reply_to = agent_reply_key(self.name, secrets.token_hex(8))
        envelope = sign(self._secret, self.sender, {"command": command, "reply_to": reply_to, **args})
        deadline = time.monotonic() + timeout_s
        # A connection of its own whose socket waits longer than each pop: the client's own gives up after 15 s.
        waiting = redis.Redis.from_url(self.broker_url, socket_timeout=15, socket_connect_timeout=10)
        got = None
        try:
            self.send(envelope)
            while got is None and time.monotonic() < deadline:
                got = waiting.blpop([reply_to], timeout=max(1, min(5, round(deadline - time.monotonic()))))
                if got is None and while_here and not self.here():
                    raise AgentError(f"agent {self.name} is gone (it stopped saying it is there) before it answered "
                                     f"{command!r}")
        except AgentError:
            raise
        except Exception as exc:  # kombu's, redis-py's, a socket's: the broker, not the agent
            raise AgentError(f"agent {self.name}: the broker failed while asking {command!r} "
                             f"({redact(str(exc)) or type(exc).__name__})") from None
        finally:
            waiting.close()
        if got is None:
            refused = self.refusals()[-1:]  # it may have refused the message: said why (a clock over a minute off)
            raise AgentError(f"agent {self.name} did not answer {command!r} within {timeout_s:g} s" + (
                f": it refused a message lately ({refused[0].get('why')})" if refused else
                f": is `gil-lab agent --name {self.name}` running against this broker, with this secret?"))
        try:
            answer = self._verifier.verify(json.loads(got[1]))
        except (ControlRefused, ValueError) as exc:
            raise AgentError(f"agent {self.name}'s answer to {command!r} refused: {exc}") from None
        if answer.get("in_reply_to") != envelope["nonce"] or answer.get("command") != command:
            raise AgentError(f"agent {self.name} answered another message than {command!r}")
        if "error" in answer:  # refused or failed there, said in one line
            raise AgentRefused(f"host {self.name}: {answer['error']}")
        return answer["answer"]

    def describe(self) -> dict[str, Any]:
        return self.ask("describe")

    def clock_offset(self, samples: int = 8) -> ClockOffset:
        """The agent's clock against the broker's: what to add to its timestamps, and within how much."""
        raw = self.ask("clock", samples=samples)["samples"]
        try:
            return estimate([ClockSample(*map(float, s)) for s in raw])
        except (ValueError, TypeError) as exc:  # its clock ran backwards in every sample, or a malformed answer
            raise AgentError(f"agent {self.name}'s clock: {exc}") from None

    def refusals(self) -> list[dict[str, Any]]:
        """What the agent refused lately, and why (as it reported them)."""
        try:
            return [json.loads(x) for x in self._redis.lrange(agent_refused_key(self.name), 0, -1)]
        except (redis.RedisError, OSError, ValueError):
            return []


def wait_answering(client: AgentClient, timeout_s: float = 30.0) -> dict[str, Any]:
    """A just-started agent's description, asked again until it answers (a Celery worker takes seconds to start)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.ask("describe", timeout_s=min(ANSWER_TIMEOUT_S, max(1.0, deadline - time.monotonic())))
        except AgentRefused:
            raise
        except AgentError:
            if time.monotonic() > deadline:
                raise


def own_clock_offset(broker_url: str, samples: int = 8) -> ClockOffset:
    """The harness's own clock against the broker's, the same way an agent measures its own."""
    client = redis.Redis.from_url(broker_url, socket_timeout=5)
    out = []
    try:
        for _ in range(samples):
            sent = time.time()
            seconds, micros = client.time()
            out.append(ClockSample(sent, seconds + micros / 1e6, time.time()))
    finally:
        client.close()
    return estimate(out)
