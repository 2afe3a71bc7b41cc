"""A real Celery worker for one run, started through the `celery` CLI and stopped with nothing left.

The CLI matters: gevent and eventlet monkey-patch only when `-P gevent|eventlet` is on the
`celery` command line (celery/__main__.py); `app.worker_main()` would run them unpatched.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import redis

from harness.errors import WorkerError
from harness.lab.client import client_app
from harness.lab.interpreters import project_env
from harness.lab.processes import interrupts_deferred, spawn, start_watchdog, stop_tree, stop_watchdog
from harness.model.spec import RunSpec
from harness.project import PROJECT_ROOT
from workloads.protocol import (
    AGENT_ONLY,
    ECHO_ADDR,
    ECHO_PASSWORD,
    HOST,
    QUEUE,
    WORKER_INDEX,
    done_key,
    env_name,
    queue_name,
    ready_key,
    worker_env,
)

if TYPE_CHECKING:
    import subprocess

    from harness.lab.services.echo import EchoService


# Celery's settings read these from the environment before the app's own values (celery/app/utils.py): the
# user's worker talks to the lab's private broker and stores results there, never in the user's database.
# The read and write URLs too, or a user's broker_read_url would win.
OVERRIDDEN = {"CELERY_BROKER_URL": "broker_url", "CELERY_BROKER_READ_URL": "broker_read_url",
              "CELERY_BROKER_WRITE_URL": "broker_write_url", "CELERY_RESULT_BACKEND": "result_backend"}


def app_overrides(broker_url: str, results_url: str | None = None) -> dict[str, str]:
    """The broker URLs the tasks' broker, the result backend the lab's Redis (Celery has no AMQP result backend)."""
    return {**dict.fromkeys(OVERRIDDEN, broker_url), "CELERY_RESULT_BACKEND": results_url or broker_url}


def _log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    tail = [line.strip() for line in text if line.strip()][-lines:]
    return " | ".join(tail) if tail else "empty log"


class Worker:
    def __init__(self, spec: RunSpec, broker_url: str, run_id: str, log_path: Path,
                 ready_timeout_s: float = 60.0, python: str | None = None,
                 echo: EchoService | None = None, index: int = 1, queue: str | None = None,
                 of_workers: int | None = None, services: dict[str, str] | None = None,
                 tasks_url: str | None = None) -> None:
        self.spec = spec
        self.index = index  # which of the run's workers (WORKERS=N): its node name, ready key, slot names
        self.of_workers = of_workers or spec.workers  # how many workers the run has (slots name theirs beyond 1)
        self.python = python or sys.executable  # the worker's interpreter (harness.lab.interpreters)
        self.broker_url = broker_url  # the lab's Redis: records, the ready and done keys
        self.tasks_url = tasks_url or broker_url  # Celery's broker (BROKER=rabbitmq: the run's RabbitMQ)
        self.run_id = run_id
        self.queue = queue or queue_name(run_id)  # ROUTES: a queue of its own
        self.log_path = log_path
        self.ready_timeout_s = ready_timeout_s
        self.echo = echo
        # Where the run's services are (the db workload's PostgreSQL, the http workload's service), their passwords
        # included: in the worker's environment only, which no other user reads.
        self.services = services or {}
        self.proc: subprocess.Popen | None = None  # from start() until stop()
        self.start_to_ready_s: float | None = None
        self.ready_info: dict | None = None
        self.clean_shutdown: bool | None = None
        self.stopped_by: str | None = None

    def argv(self) -> list[str]:
        # The user's app (APP=) is started as `celery -A` starts it, with the lab's recording included by Celery's
        # own mechanism; its prefetch is its own unless the run sets one.
        app = (["-A", self.spec.app, "worker", "--include", "workloads.app_hooks"] if self.spec.app
               else ["-A", "workloads.app", "worker"])
        prefetch = (["--prefetch-multiplier", str(self.spec.prefetch)]
                    if self.spec.app and self.spec.prefetch is not None else [])
        return [
            self.python, "-m", "celery", *app, *prefetch,
            "-P", self.spec.pool_rules.celery_pool, "-c", str(self.spec.concurrency), "-Q", self.queue,
            "-n", f"lab-{self.run_id}-{self.index}@%h",
            # No gossip, mingle or heartbeats: nothing else on the broker talks to this worker,
            # and they would add broker traffic and start-up time to what is measured.
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--loglevel", "WARNING",
        ]

    def env(self) -> dict[str, str]:
        # A custom pool's module is looked for in the current directory too, as the user's task is; the user's app
        # in their project's folder.
        also = ([self.spec.task_path] if self.spec.app and self.spec.task_path else []) + (
            [os.getcwd()] if self.spec.pool_rules.custom else [])
        env = project_env(also=also or None)
        env.update(worker_env(self.spec.to_dict(), self.tasks_url, self.run_id, records_url=self.broker_url))
        env[QUEUE] = self.queue
        env[env_name("workers")] = json.dumps(self.of_workers)
        env.pop("PYTHON_GIL", None)  # the harness's own setting is not the worker's
        for name in AGENT_ONLY:  # started by an agent (HOSTS): where its secret is stays with it
            env.pop(name, None)
        env[WORKER_INDEX] = str(self.index)
        env.pop(HOST, None)
        if self.spec.hosts:  # its host's name goes into its slots' names (lanes per host)
            env[HOST] = str(self.spec.host_of(self.index))
        if self.spec.app:
            env.update(app_overrides(self.tasks_url, self.broker_url))
        env.pop("CELERY_CUSTOM_WORKER_POOL", None)
        if self.spec.pool_rules.celery_class:  # Celery's custom pool reads the class from here
            env["CELERY_CUSTOM_WORKER_POOL"] = self.spec.pool_rules.celery_class
        env.update(self.services)
        if self.echo is not None:
            env[ECHO_ADDR] = f"{self.echo.host}:{self.echo.port}"
            env[ECHO_PASSWORD] = self.echo.password
        if self.spec.gil is not None:  # checked before: only a free-threaded worker gets it
            env["PYTHON_GIL"] = "1" if self.spec.gil == "on" else "0"
        env.update({
            "PYTHONUNBUFFERED": "1",
            # eventlet warns that it is deprecated on every import; the log should show real trouble.
            "PYTHONWARNINGS": "ignore::DeprecationWarning",
        })
        return env

    def __enter__(self) -> Worker:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop(warm=False)
            raise
        return self

    def start(self) -> None:
        self._started = time.monotonic()
        # The user's app starts in their project's folder, as `celery -A` would be run there.
        cwd = self.spec.task_path if self.spec.app and self.spec.task_path else str(PROJECT_ROOT)
        self.proc = spawn(self.argv(), env=self.env(), log_path=str(self.log_path), cwd=cwd)
        # The worker leads its own process group; its log's folder is a scratch folder of the lab's.
        scratch = Path(self.log_path).parent
        self._watchdog = start_watchdog(self.proc.pid, [str(scratch)] if scratch.name.startswith("gil-lab-") else [])

    def _running(self) -> subprocess.Popen:
        """The worker's process, which is there from start() until stop()."""
        assert self.proc is not None, "the worker is not started"
        return self.proc

    def wait_ready(self) -> None:
        started = self._started
        client = redis.Redis.from_url(self.broker_url, socket_timeout=5)
        try:
            while True:
                raw = client.get(ready_key(self.run_id, self.index))
                if raw is not None:
                    self.start_to_ready_s = time.monotonic() - started
                    self.ready_info = json.loads(raw)
                    return
                if self._running().poll() is not None:
                    raise WorkerError(f"the {self.spec.pool} worker exited at start "
                                      f"(code {self._running().returncode}): {_log_tail(self.log_path)}")
                if time.monotonic() - started > self.ready_timeout_s:
                    raise WorkerError(f"the {self.spec.pool} worker was not ready within "
                                      f"{self.ready_timeout_s:g} s: {_log_tail(self.log_path)}")
                time.sleep(0.02)
        finally:
            client.delete(ready_key(self.run_id, self.index))
            client.close()

    @property
    def pid(self) -> int:
        return self._running().pid

    @property
    def pids(self) -> list[int]:
        return [self._running().pid]

    def children(self) -> set[int]:
        """The worker's child processes now: prefork's pool processes (none for the other pools)."""
        if self.proc is None:  # not started, or stopped
            return set()
        try:
            return {p.pid for p in psutil.Process(self.proc.pid).children()}
        except (psutil.Error, AttributeError):
            return set()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def died_message(self) -> str:
        return (f"the {self.spec.pool} worker died (exit code {self._running().returncode}): "
                f"{_log_tail(self.log_path)}")

    def _control(self, command: str, queue: str, timeout_s: float = 10.0, attempt_s: float = 2.5) -> None:
        """A remote-control command to this worker alone, waiting for its answer (bounded).

        Sent again until answered: control commands travel by Redis pub/sub, which keeps nothing, and a
        worker just started may not have subscribed yet (seen: a gevent worker's first add_consumer lost).
        Both commands used here do nothing the second time.
        """
        node = (self.ready_info or {}).get("hostname")
        app = client_app(self.tasks_url, "gil_lab_control", connect_timeout_s=3)
        deadline = time.monotonic() + timeout_s
        answers: list = []
        try:
            while not answers and time.monotonic() < deadline:
                try:
                    replies = app.control.broadcast(command, arguments={"queue": queue}, destination=[node],
                                                    reply=True, timeout=attempt_s)
                except Exception as exc:  # the broker is gone
                    raise WorkerError(f"the {self.spec.pool} worker did not take `{command}` for {queue}: "
                                      f"{exc}") from None
                answers = [answer for reply in replies or [] for answer in reply.values()]
                if not answers and not self.alive():
                    raise WorkerError(self.died_message())
        finally:
            app.close()
        if not answers or any("error" in a for a in answers):
            raise WorkerError(f"the {self.spec.pool} worker did not take `{command}` for {queue} within "
                              f"{timeout_s:g} s: {answers or 'no answer'}")

    def consume(self, queue: str, timeout_s: float = 10.0) -> None:
        """Start taking tasks from another run's queue (a warm worker serving the next run of a sweep).

        Told to consume it, the worker only polls the new queue once its current wait for messages
        returns: up to kombu's 0.2 s polling interval, and up to 2 s in the green pools' `synloop`.
        That wait would land in the run's first tasks' queue wait (measured: gevent io_sleep makespan
        1.02 s fresh, 2.72 s warm). So an empty task goes through the queue first, and the run starts
        once it has run: the worker is then polling the queue, as a fresh one is from its start.
        """
        if queue == self.queue:
            return
        if self.tasks_url.startswith("amqp"):
            # On RabbitMQ a warm worker's first added queue delivered its first message 10.0 s after the worker
            # answered add_consumer (threads, Celery 5.7.0; later queues at once): before the run, so only waited.
            timeout_s = max(timeout_s, 30.0)
        self._control("add_consumer", queue)
        client = redis.Redis.from_url(self.broker_url, socket_timeout=5)
        app = client_app(self.tasks_url, "gil_lab_prime", connect_timeout_s=3)
        try:
            before = int(client.get(done_key(self.run_id)) or 0)
            app.send_task("noop", args=[False], queue=queue)
            deadline = time.monotonic() + timeout_s
            while int(client.get(done_key(self.run_id)) or 0) <= before:
                if not self.alive():
                    raise WorkerError(self.died_message())
                if time.monotonic() > deadline:
                    raise WorkerError(f"the warm {self.spec.pool} worker did not take a task from {queue} within "
                                      f"{timeout_s:g} s")
                time.sleep(0.005)
        finally:
            client.close()
            app.close()

    def stop_consuming(self, queue: str) -> None:
        if queue != self.queue and self.alive():
            self._control("cancel_consumer", queue)

    def _remote_shutdown(self, grace_s: float) -> bool:
        """Celery's own `shutdown` control command: a warm shutdown (WorkerShutdown).

        Preferred to SIGTERM because the green pools act on a signal only between the 2 s waits
        of Celery's synloop: SIGTERM took 5.1 s to stop a gevent worker, this 0.1 s.
        """
        node = (self.ready_info or {}).get("hostname")
        if not node:
            return False
        app = client_app(self.tasks_url, "gil_lab_control", connect_timeout_s=3)
        try:
            app.control.broadcast("shutdown", destination=[node])
            self._running().wait(timeout=grace_s)
            return True
        except Exception:  # broker gone, or the worker did not stop in time: fall back to signals
            return False
        finally:
            app.close()

    def stop(self, grace_s: float = 15.0, warm: bool = True) -> None:
        """Warm shutdown (finish running tasks, take no new ones), then SIGTERM, then SIGKILL. A second
        interrupt waits until it is done (bounded by the grace), so the worker never outlives it.

        Not `warm` (after a failure or an interrupt, when what its running tasks would report is not
        collected any more): SIGKILL to its process group at once. With the warm shutdown a run whose
        prefork child was killed ended 4.8 s after the kill; Celery 5.7's cold shutdown (SIGQUIT),
        which cancels the tasks and terminates the pool in order, still took over a second.
        """
        with interrupts_deferred():
            if self.proc is not None:
                was_running = self.proc.poll() is None
                if was_running and warm and self._remote_shutdown(grace_s):
                    self.stopped_by = "remote control shutdown"
                elif was_running:
                    self.stopped_by = "SIGTERM" if warm else "SIGKILL (after a failure or an interrupt)"
                else:
                    self.stopped_by = f"had exited (code {self.proc.returncode})"
                # True when the worker ended by itself, or on a warm request within the grace period.
                if warm:
                    self.clean_shutdown = stop_tree(self.proc, signal.SIGTERM, grace_s=grace_s)
                else:
                    stop_tree(self.proc, signal.SIGKILL, grace_s=1.0)
                    self.clean_shutdown = not was_running
                self.proc = None
            stop_watchdog(getattr(self, "_watchdog", None))
            self._watchdog = None

    def __exit__(self, exc_type, *_: object) -> None:
        # After a failure or an interrupt nothing waits for the running tasks: a cold stop.
        self.stop(warm=exc_type is None)

