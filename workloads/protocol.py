"""The harness <-> worker protocol, imported by both sides: environment, Redis keys, queues, records.

The harness starts a worker with LAB_* environment variables (`worker_env`); the worker reads them
back (`WorkerConfig.from_env`). The worker pushes one JSON record per task (RECORD_FIELDS) to the
run's Redis list, and announces itself ready under `ready_key`. Nothing else names these.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from harness.model.settings import SETTINGS
from workloads.functions import ECHO_PASSWORD as ECHO_PASSWORD  # its password's variable, beside ECHO_ADDR

PREFIX = "LAB_"
BROKER_URL = "LAB_BROKER_URL"    # Celery's broker: the tasks
RECORDS_URL = "LAB_RECORDS_URL"  # the lab's Redis: records, ready and done keys (the broker's URL when it is Redis)
RUN_ID = "LAB_RUN_ID"
QUEUE = "LAB_QUEUE"
# Fault injection for the reliability tests: LAB_FAULT=raise makes every task raise after its work.
FAULT = "LAB_FAULT"
# Which of the run's worker processes this is (WORKERS=N starts N, numbered from 1).
WORKER_INDEX = "LAB_WORKER_INDEX"
HOST = "LAB_HOST"  # HOSTS: the agent's name of the host the worker runs on
# An agent's own settings (harness.lab.fleet.agent_command sets them, workloads.agent reads them), never passed on to
# the workers it starts: its name, its secret's file, the folders user code may come from (a JSON list).
AGENT_NAME, AGENT_SECRET_FILE, AGENT_ALLOW_PATHS = "LAB_AGENT_NAME", "LAB_AGENT_SECRET_FILE", "LAB_AGENT_ALLOW_PATHS"
AGENT_ONLY = (AGENT_NAME, AGENT_SECRET_FILE, AGENT_ALLOW_PATHS)
# Where the lab's echo service listens (host:port), for the user's own task: examples/ use it. A client's first
# line to it is its password (a connection without it is closed unanswered).
ECHO_ADDR = "LAB_ECHO_ADDR"
# The message header naming the run a task belongs to: its record goes to that run's list. A warm
# worker serves several runs of a sweep in turn, each on its own queue (harness.lab.warm).
RUN_HEADER = "lab_run"
# The run settings the worker needs, each as LAB_<NAME>, JSON-encoded.
WORKER_SETTINGS = tuple(name for name, s in SETTINGS.items() if s.to_worker)



@dataclass(frozen=True)
class TaskRecord:
    """What the worker reports for one task; a workload's function may add fields (io_net: ops, rtt_*)."""

    task_id: str
    name: str
    started: float        # epoch seconds, read in the process that ran the task
    finished: float
    pid: int
    thread_id: int        # the OS thread's native id
    greenlet_id: int | None  # gevent/eventlet: a small number per greenlet
    cpu_s: float          # the task's own CPU: its thread's CPU clock, or greenlet-switch accounting
    switch_interval: float  # sys.getswitchinterval() as the task saw it
    gil_enabled: bool | None  # sys._is_gil_enabled() where it exists (3.13+)
    error: str | None
    slot: str             # the execution slot, named by the pool's rule (and its worker, with WORKERS > 1)
    worker: int           # which of the run's worker processes ran it, from 1


RECORD_FIELDS = tuple(f.name for f in fields(TaskRecord))


def env_name(setting: str) -> str:
    return PREFIX + setting.upper()


def queue_name(run_id: str) -> str:
    """Every run has its own queue, so no earlier run's message is consumed."""
    return f"lab.{run_id}"


def route_queue(run_id: str, group: int) -> str:
    """The queue of a run's routed group of tasks (ROUTES): one per pool and concurrency, numbered from 1."""
    return f"{queue_name(run_id)}.{group}"


def queue_keys(queue: str) -> list[str]:
    """Every key kombu's Redis transport keeps for a queue bound to an exchange of its own name (Celery's
    default): the queue's list, its binding table, and (kombu 5.7) the set that keeps the table from the
    transport's sweep, which never expires. The lab removes them all when a run ends."""
    return [queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]


def records_key(run_id: str) -> str:
    """The Redis list a run's task records go to; the harness reads it."""
    return f"lab:{run_id}:records"


def ready_key(run_id: str, worker_index: int = 1) -> str:
    return f"lab:{run_id}:ready:{worker_index}"


def contention_key(run_id: str) -> str:
    """The Redis list the worker's GIL probe reports contention to."""
    return f"lab:{run_id}:gil"


def lag_key(run_id: str) -> str:
    """The Redis list the worker's event-loop lag probe reports to (workloads.loop_lag)."""
    return f"lab:{run_id}:lag"


def agent_queue(name: str) -> str:
    """The control queue of the lab's agent `name` on another host (workloads.agent)."""
    return f"lab.agent.{name}"


def agent_reply_key(name: str, nonce: str) -> str:
    """The Redis list an agent pushes its signed answer to one control message to."""
    return f"lab:agent:{name}:reply:{nonce}"


def agent_refused_key(name: str) -> str:
    """The Redis list an agent reports the control messages it refused to (why, never their content)."""
    return f"lab:agent:{name}:refused"


# An agent says it is there every AGENT_HERE_EVERY_S, for AGENT_HERE_TTL_S: one that is gone is known within that.
AGENT_HERE_EVERY_S, AGENT_HERE_TTL_S = 1.0, 3


def agent_here_key(name: str) -> str:
    """Renewed by agent `name` every second of its life (a short expiry): gone within seconds of the agent."""
    return f"lab:agent:{name}:here"


def host_alive_key(run_id: str, name: str) -> str:
    """Set by agent `name` while every worker it runs for the run is alive (a short expiry: an agent that dies stops
    renewing it); the harness's check that a host's workers still run (harness.lab.remote_workers)."""
    return f"lab:{run_id}:host:{name}:alive"


def host_died_key(run_id: str, name: str) -> str:
    """Why agent `name`'s workers for the run died, in one line (its worker's exit and log tail)."""
    return f"lab:{run_id}:host:{name}:died"


def run_lease_key(run_id: str) -> str:
    """Renewed by the harness while its run on several hosts goes on: an agent that sees it expire stops the run's
    workers (the harness died), so nothing is left running on any host."""
    return f"lab:{run_id}:lease"


def done_key(run_id: str) -> str:
    """A counter the benchmark's no-op tasks increment when they run without recording."""
    return f"lab:{run_id}:done"


def worker_key(settings: Mapping[str, Any], python: str) -> tuple:
    """What a worker process is started with: runs that agree on it can share one warm worker."""
    return (python, settings.get("gil"), *(json.dumps(settings[name]) for name in WORKER_SETTINGS))


def worker_env(settings: Mapping[str, Any], broker_url: str, run_id: str, records_url: str | None = None
               ) -> dict[str, str]:
    """The LAB_* variables a worker for this run is started with: the tasks' broker, and the Redis its records go to
    (the same URL when the broker is Redis)."""
    env = {BROKER_URL: broker_url, RECORDS_URL: records_url or broker_url, RUN_ID: run_id, QUEUE: queue_name(run_id)}
    env.update({env_name(name): json.dumps(settings[name]) for name in WORKER_SETTINGS})
    return env


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker process knows about its run, read from its environment."""

    broker_url: str
    records_url: str
    run_id: str
    queue: str
    pool: str
    app: str | None        # the user's Celery app (APP=): its worker loads workloads.app_hooks, not workloads.app
    concurrency: int
    workers: int
    switch_interval: float
    prefetch: int | None   # the lab's own app's; the user's app (APP=) gets PREFETCH on its command line instead
    broker: str            # BROKER: redis or rabbitmq (harness.model.brokers); broker_url is its URL
    gil_probe: bool
    events: bool           # EVENTS=1: send Celery's task events (for Flower)
    task: str | None       # the user's own task, package.module:function (workloads.own); with APP, task names
    task_path: str | None  # where it is imported from
    driver: str | None     # the db workload's driver (harness.model.drivers)
    fault: str
    worker_index: int
    host: str | None = None  # HOSTS: which host (agent) this worker runs on

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WorkerConfig:
        """Read by the worker; a variable not set (a worker started by hand) gets the setting's default."""
        from harness.model.spec import build_spec

        given = {name: json.loads(environ[env_name(name)]) for name in WORKER_SETTINGS if env_name(name) in environ}
        # The user's app and its task names, and the db workload's driver, were checked by the harness with settings
        # the worker is not given (CALLS, WORKLOAD): kept as given, the rest validated again.
        app_given = {name: given.pop(name, None) for name in ("app", "task", "task_path")} if given.get("app") else {}
        app_given["driver"] = given.pop("driver", None)
        spec = build_spec(**given)
        run_id = environ.get(RUN_ID, "adhoc")
        values = {name: getattr(spec, name) for name in WORKER_SETTINGS}
        values.update(app_given)
        broker_url = environ.get(BROKER_URL, "redis://127.0.0.1:6379/0")
        return cls(broker_url=broker_url, records_url=environ.get(RECORDS_URL, broker_url), run_id=run_id,
                   queue=environ.get(QUEUE, queue_name(run_id)),
                   fault=environ.get(FAULT, ""), worker_index=int(environ.get(WORKER_INDEX, "1")),
                   host=environ.get(HOST) or None, **values)
