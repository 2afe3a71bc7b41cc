"""The lab's agent on a host that takes part in a run: a small Celery worker (solo pool) on its own control queue of
the shared broker (`gil-lab agent --name NAME`, harness.lab.fleet).

It acts only on control messages signed with the fleet's shared secret (workloads.control), issued within a minute
of its clock, and never seen before; a refused one is logged and reported (why, not its content) to the broker's
refusals list of this agent, and gets no answer. Its answers are signed too, and pushed to the Redis list the
message names. What it answers: `describe` (its host: cores, memory, Python, load, the hypervisor's steal), `clock`
(samples of its clock against the broker's Redis TIME, for harness.analysis.clock), and `start` / `stop` of its host's
share of a run's workers (harness.lab.hosted), user code imported only from the folders it was started with
(LAB_AGENT_ALLOW_PATHS, from --allow-path).

Its settings come from its environment, set by `gil-lab agent` (harness.lab.fleet.agent_command): LAB_AGENT_NAME,
LAB_BROKER_URL, LAB_AGENT_SECRET_FILE (a file holding the secret: never in an argument or a log).
"""
from __future__ import annotations

import json
import logging
import os
import platform
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import redis
from celery import Celery

from harness.lab.fleet import read_secret
from harness.lab.hosted import HostedRun, Refused
from harness.model.machine import boot_id, usable_cores
from workloads.control import ControlRefused, Verifier, sign
from workloads.protocol import (
    AGENT_ALLOW_PATHS,
    AGENT_HERE_EVERY_S,
    AGENT_HERE_TTL_S,
    AGENT_NAME,
    AGENT_SECRET_FILE,
    agent_here_key,
    agent_queue,
    agent_refused_key,
)

NAME = os.environ.get(AGENT_NAME, "agent")
BROKER_URL = os.environ.get("LAB_BROKER_URL", "redis://127.0.0.1:6379/0")
# How long an answer or a refusal stays on the broker unread.
ANSWER_TTL_S = 300
log = logging.getLogger("gil_lab.agent")


if not os.environ.get(AGENT_SECRET_FILE):
    raise SystemExit(f"gil-lab agent: no secret file ({AGENT_SECRET_FILE})")
SECRET = read_secret(os.environ[AGENT_SECRET_FILE])  # checked as `gil-lab agent` checked it (mode, length)
verifier = Verifier(SECRET)
client = redis.Redis.from_url(BROKER_URL, socket_timeout=10)

app = Celery("gil_lab_agent", broker=BROKER_URL)
app.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json", task_ignore_result=True,
                task_default_queue=agent_queue(NAME), worker_prefetch_multiplier=1, task_acks_late=False,
                worker_hijack_root_logger=False, broker_connection_retry_on_startup=True,
                broker_transport_options={"polling_interval": 0.2})


def describe_host() -> dict[str, Any]:
    """This host as a run records it: its name, cores (those this process may use), memory, Python, load, steal."""
    times0 = psutil.cpu_times()
    time.sleep(0.5)
    times1 = psutil.cpu_times()
    total = sum(times1) - sum(times0)
    steal = getattr(times1, "steal", 0.0) - getattr(times0, "steal", 0.0)
    cores = usable_cores()
    return {"agent": NAME, "hostname": socket.gethostname(), "boot_id": boot_id(), "cores": cores,
            "cpu_count_logical": psutil.cpu_count(), "cpu_count_physical": psutil.cpu_count(logical=False),
            "memory_total": psutil.virtual_memory().total,
            "python": platform.python_version(), "implementation": platform.python_implementation(),
            "executable": sys.executable, "load": list(os.getloadavg()),
            "steal_cores": steal / total * (psutil.cpu_count() or 1) if total > 0 else 0.0, "time": time.time()}


def clock_samples(count: int) -> list[list[float]]:
    """`count` readings of this host's clock around the broker's (Redis TIME): [sent, server, received] each."""
    out = []
    for _ in range(max(1, min(int(count), 64))):
        sent = time.time()
        seconds, micros = client.time()
        received = time.time()
        out.append([sent, seconds + micros / 1e6, received])
    return out


def _say_here() -> None:
    here = redis.Redis.from_url(BROKER_URL, socket_timeout=5)
    while True:
        try:
            here.set(agent_here_key(NAME), "1", ex=AGENT_HERE_TTL_S)
        except (redis.RedisError, OSError):
            pass
        time.sleep(AGENT_HERE_EVERY_S)


threading.Thread(target=_say_here, name="lab-agent-here", daemon=True).start()

# The runs whose workers this agent has running now, by run id (harness.lab.hosted).
RUNS: dict[str, Any] = {}
# The folders user code (TASK, APP) may be imported from: `gil-lab agent --allow-path`, none by default.
ALLOWED = [Path(p) for p in json.loads(os.environ.get(AGENT_ALLOW_PATHS, "[]"))]


def start_run(body: dict[str, Any]) -> dict[str, Any]:
    """Start this host's share of a run's workers (the run's settings, checked here as the harness checks them)."""
    for done in [r for r, run in RUNS.items() if run.lapsed]:  # stopped by their watcher: the harness is gone
        RUNS.pop(done)
    run_id = str(body.get("run_id"))
    if run_id in RUNS:
        raise Refused(f"run {run_id[:80]} already has workers on this host")
    run = HostedRun(NAME, BROKER_URL, body, ALLOWED)
    answer = run.start()
    RUNS[run_id] = run
    return answer


def stop_run(body: dict[str, Any]) -> dict[str, Any]:
    """Stop a run's workers here and answer with their samples and log (nothing to stop: an empty answer)."""
    run = RUNS.pop(str(body.get("run_id")), None)
    if run is None:
        return {"samples": None, "log": "", "stopped_by": "no workers of this run on this host"}
    return run.stop(warm=bool(body.get("warm", True)))


COMMANDS = {"describe": lambda body: describe_host(),
            "clock": lambda body: {"samples": clock_samples(body.get("samples", 8))},
            "start": start_run, "stop": stop_run}


@app.task(name="lab.agent.control")
def control(envelope: Any) -> None:
    try:
        body = verifier.verify(envelope)
        command = body.get("command")
        if command not in COMMANDS or not isinstance(body.get("reply_to"), str):
            raise ControlRefused(f"unknown command {str(command)[:40]!r}; this agent answers "
                                 f"{', '.join(COMMANDS)}")
    except ControlRefused as exc:
        log.warning("refused a control message: %s", exc)
        client.rpush(agent_refused_key(NAME), json.dumps({"time": time.time(), "why": str(exc)}))
        client.expire(agent_refused_key(NAME), ANSWER_TTL_S)
        return
    try:
        result: dict[str, Any] = {"answer": COMMANDS[command](body)}
    except Refused as exc:  # a start this host will not or cannot do: said to the harness in one line
        log.warning("%s refused: %s", command, exc)
        result = {"error": str(exc)}
    except Exception as exc:  # a fault of the agent's own: the harness hears of it at once, not at its timeout
        log.exception("%s failed", command)
        result = {"error": f"{command} failed on this host: {type(exc).__name__}: {exc}"}
    try:
        answer = sign(SECRET, NAME, {"command": command, **result, "in_reply_to": envelope["nonce"]})
    except ValueError as exc:  # not JSON (a NaN in what a user's app reported): the harness hears so, not nothing
        log.exception("%s: the answer is not JSON", command)
        answer = sign(SECRET, NAME, {"command": command, "error": f"{command}: its answer is not JSON ({exc})",
                                     "in_reply_to": envelope["nonce"]})
    client.rpush(body["reply_to"], json.dumps(answer))
    client.expire(body["reply_to"], ANSWER_TTL_S)
