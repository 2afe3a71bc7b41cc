"""One run measured: broker, worker, samplers, submit, collect, and the run folder's raw records.

`measure` stores what was measured (tasks.csv, samples.csv, probe tables, worker.log, and run.json
with every setting and timing) and nothing else: the summary and the figures are computed from the
stored folder afterwards (harness.pipeline), so they can always be recomputed.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

import amqp.exceptions
import kombu.exceptions
import pandas as pd
import redis

from harness.errors import RunFailed, WorkerError
from harness.lab import environment, gilprobe, machine_load
from harness.lab.batches import Batch, batch, plan_batches, submit
from harness.lab.calibrate import Calibrations
from harness.lab.client import client_app, warm
from harness.lab.collect import Measurement, collect, forget_keys, take_leftovers
from harness.lab.fleet import FleetSettings, fleet_settings
from harness.lab.preflight import check_can_run, check_fleet_run
from harness.lab.queue_depth import QueueDepthSampler
from harness.lab.remote_workers import RemoteWorkers
from harness.lab.sampler import Sampler
from harness.lab.services.base import redact
from harness.lab.services.echo import EchoService
from harness.lab.services.http_service import HttpService
from harness.lab.services.postgres import SCHEMA, PostgresServer
from harness.lab.services.rabbitmq import TaskBroker, rabbit_broker
from harness.lab.services.redis_broker import RedisBroker
from harness.lab.warm import WarmWorkers
from harness.lab.worker import OVERRIDDEN, Worker
from harness.lab.worker_group import WorkerGroup
from harness.model.brokers import broker as broker_record
from harness.model.machine import usable_cores
from harness.model.spec import RunSpec
from harness.model.workloads import workload

if TYPE_CHECKING:
    from harness.present.live import Watch
from harness.results.files import check_writable, owner
from harness.results.paths import RESULTS_DIR
from harness.results.records import Environment, MachineLoad, Role, RunManifest, RunSettings, Status
from harness.results.run_folder import RunFolder, new_run_id
from workloads import loop_lag
from workloads.functions import HTTP_TOKEN, HTTP_URL, PG_URL
from workloads.protocol import contention_key, lag_key, queue_keys, queue_name, records_key, route_queue


def _planned(batches: list[Batch], role: Role) -> Batch:
    """A batch that plan_batches always makes for these settings: the measured tasks, the background ones (with
    BACKGROUND), the reference (for fixed work)."""
    found = batch(batches, role)
    assert found is not None, f"no {role} batch planned"
    return found


def _settings(spec: RunSpec, broker: RedisBroker, worker: Worker | WorkerGroup | RemoteWorkers, calibration: dict,
              bg_calibration: dict, batches: list[Batch], echo: EchoService | None,
              rabbit: TaskBroker | None = None) -> dict:
    """Every setting the run used, as recorded in run.json (timings and costs are added at the end)."""
    record = broker_record(spec.broker)
    return {
        # The tasks' broker, and what of its transport matters to a pool; the lab's records always on its Redis.
        "broker": {"kind": spec.broker, "url": rabbit.redacted_url if rabbit else broker.redacted_url,
                   "private": rabbit.private if rabbit else broker.private,
                   "version": rabbit.version if rabbit else broker.version, "delivery": record.delivery,
                   "prefetch_multiplier": spec.prefetch, "acks_late": True,
                   "visibility_timeout_s": 3600 if record.redis_transport else None,  # kombu's default, unchanged
                   "heartbeat": "none: workers run --without-heartbeat; the connection's own heartbeat is Celery's "
                                "default (broker_heartbeat 120 s)" if not record.redis_transport else None},
        "records_channel": {"url": broker.redacted_url, "private": broker.private,
                            "note": "the lab's Redis: task records, ready and done keys, whichever broker carries the "
                                    "tasks"},
        "queue": worker.queue,
        "prefetch_multiplier": spec.prefetch,
        "prefetch_is_pool_default": spec.prefetch == spec.pool_rules.default_prefetch,
        "task_acks_late": True,
        "serializer": "json",
        "calibration": calibration,
        "task_args": _planned(batches, Role.FOREGROUND).args,
        "task_kwargs": _planned(batches, Role.FOREGROUND).kwargs,
        # Tasks run alone: one before the batch and one after it, and one between the waves of a long batch
        # (counted once they ran: _write_records).
        "reference_tasks": 0,
        "background": {"workload": spec.background, "tasks": spec.background_tasks,
                       "duration": spec.background_duration, "calibration": bg_calibration,
                       "task_args": _planned(batches, Role.BACKGROUND).args} if spec.background else None,
        "echo_reply_delay_s": echo.reply_delay_s if echo else None,
        "worker_argv": worker.argv()[1:],
        "worker_start_to_ready_s": worker.start_to_ready_s,
        "worker_id": worker.run_id,
        "worker_ready": worker.ready_info,
        "sample_hz": spec.sample_hz,
        "deadline_s": spec.deadline_s(),
    }


def app_settings(spec: RunSpec, app: dict, worker: Worker | WorkerGroup | RemoteWorkers, broker: RedisBroker,
                 routes: dict[str, str]) -> dict:
    """What run.json records of the user's app: what the check found, the settings that matter to pools as the
    worker has them (the first worker's; every worker's under `worker_ready`), and what the lab overrode."""
    ready = worker.ready_info or {}
    effective = (ready.get("app") or {}).get("settings", {})
    lab_redis = f"the lab's {'private ' if broker.private else ''}Redis ({broker.redacted_url})"
    overridden: dict[str, str] = {setting: lab_redis + (" (never your database)" if setting == "result_backend" else "")
                                  for setting in OVERRIDDEN.values()}
    overridden.update({
                  "queue": f"the run's own: {worker.queue}" + (f", and {len(set(routes.values()))} routed" if routes
                                                               else ""),
                  "worker_options": "--without-gossip --without-mingle --without-heartbeat --loglevel WARNING"})
    if spec.prefetch is not None:
        overridden["worker_prefetch_multiplier"] = f"{spec.prefetch} (PREFETCH)"
    calls_sha256 = hashlib.sha256(Path(spec.calls).read_bytes()).hexdigest() if spec.calls else None
    return {"app": {**app, "effective": effective, "task_options": (ready.get("app") or {}).get("tasks", {}),
                    "overridden": overridden, "routes": routes or None, "calls_sha256": calls_sha256},
            # Each call has its own arguments: the folder keeps the replayed calls.jsonl, tasks.csv each task's name.
            "task_args": None, "task_kwargs": None,
            "prefetch_multiplier": effective.get("worker_prefetch_multiplier"),
            "prefetch_is_pool_default": None,
            "task_acks_late": effective.get("task_acks_late"),
            "serializer": effective.get("task_serializer")}


def _prepare(stack: ExitStack, spec: RunSpec, m: Measurement, python: str, workers: WarmWorkers | None,
             calibrations: Calibrations) -> tuple[dict, dict, list[Batch], EchoService | None]:
    """Size the fixed work from the rate measured on the worker's interpreter (a sweep's, a recent one of
    this machine's, or measured now, before the worker starts, so nothing competes) and plan the batches."""
    t0 = time.monotonic()
    calibration = calibrations.for_duration(workload(spec.workload), spec.duration, python, spec.gil)
    bg_calibration = (calibrations.for_duration(workload(spec.background), spec.background_duration, python, spec.gil)
                      if spec.background else {})
    m.timings["calibration_s"] = time.monotonic() - t0
    # The user's own task gets the echo service too: a task of theirs may call it (examples/ do).
    needs_echo = any(workload(w).needs_echo or workload(w).own for w in (spec.workload, spec.background) if w)
    needs_echo = needs_echo and not spec.hosts  # on other hosts it could not be reached (harness.model.hosts)
    echo = None
    if needs_echo:
        echo = workers.echo() if workers is not None else stack.enter_context(EchoService())
    if spec.workload_rules.needs_db:  # PG_URL's PostgreSQL or the run's own, seeded before the worker starts
        t0 = time.monotonic()
        database = stack.enter_context(PostgresServer())
        database.seed(DB_ROWS)
        if spec.db_query == "scan":  # the scans that take about DURATION alone, as the server times one
            scan_ms = database.scan_ms()
            calibration = {"query": "scan", "scans": max(1, round(spec.duration * 1000 / scan_ms)),
                           "scan_ms": scan_ms, "source": "measured on the server before the worker started"}
        m.database = database
        m.services[PG_URL] = database.worker_url
        m.timings["database_s"] = time.monotonic() - t0
    batches = plan_batches(spec, calibration, bg_calibration, echo.address if echo else None)
    if spec.workload_rules.needs_http:  # the run's own HTTP service
        web = stack.enter_context(HttpService())
        m.web = web
        m.services.update({HTTP_URL: f"http://{web.host}:{web.port}", HTTP_TOKEN: web.token})
    return calibration, bg_calibration, batches, echo


# The db workload's table: large enough that a scan costs the server real milliseconds (43 ms for 200,000 rows here),
# small enough to seed in well under a second (0.37 s).
DB_ROWS = 200_000


# A batch expected to take longer than this (at its pool's best) also times one task alone between its
# waves: the machine's speed drifts by up to 2x within seconds (README, "How far to trust a number"), so
# a reference taken only at the ends would miss what happened in the middle.
BETWEEN_WAVES_AFTER_S = 4.0


# What sending a task raises when its broker stops answering: kombu's, redis-py's, py-amqp's, a socket's.
SEND_ERRORS = (kombu.exceptions.OperationalError, redis.RedisError, amqp.exceptions.AMQPError, OSError)


def _lost(m: Measurement, when: str, exc: BaseException, tail: str = "") -> RunFailed:
    """The one line for a broker that stopped answering while the harness sent to it: the Redis (then its keys are
    not cleaned up again: it does not answer) or the RabbitMQ node (the records, on the Redis, are still taken)."""
    rabbit = m.task_broker is not None
    if not rabbit:
        m.broker_lost = True
    trouble = m.task_broker.trouble() if m.task_broker is not None else None
    what = "RabbitMQ" if rabbit else "Redis"
    return RunFailed(f"lost the {what} broker {when} ({trouble or redact(str(exc)) or type(exc).__name__}){tail}")


def _send(app, queue: str, batches: list[Batch], run_id: str, m: Measurement,
          stop: threading.Event | None = None) -> None:
    """Submit batches as the run's, each row into m.submitted as its task goes (an open-loop load's sender thread
    stops before its next send once `stop` is set); a broker that stops answering meanwhile (frozen, gone) ends the
    run in one line, as it does while records are collected (kombu's own error would come out as a traceback)."""
    try:
        submit(app, queue, batches, run_id, first_index=len(m.submitted), into=m.submitted, stop=stop)
    except SEND_ERRORS as exc:
        raise _lost(m, "while submitting tasks", exc, f"; {len(m.records)} tasks had reported") from None


def _warm(app, queue: str, m: Measurement) -> None:
    """The client's one-time costs paid before the first submit time is taken (harness.lab.client.warm), with a
    broker that stops answering meanwhile ending the run in one line, as in _send."""
    try:
        warm(app, queue)
    except SEND_ERRORS as exc:
        raise _lost(m, "before submitting tasks", exc) from None


def _alone(app, client: redis.Redis, queue: str, key: str, reference: Batch, run_id: str, spec: RunSpec,
           m: Measurement) -> float:
    """Run one reference task with nothing beside it and wait for it; returns how long it took."""
    _send(app, queue, [reference], run_id, m)
    m.alone_ids.add(m.submitted[-1]["task_id"])
    assert m.worker is not None  # taken (_take_worker) before any task is sent
    collect(client, key, len(m.submitted), m.worker, spec.deadline_s(), m, show_progress=False)
    alone = m.records[-1]
    return float(alone["finished"] - alone["started"])


def _waves(spec: RunSpec, foreground: Batch) -> list[Batch]:
    """The measured tasks in one part, or in two parts of whole waves (one task per slot each) when the
    batch is long enough for the machine's speed to drift within it: a task alone runs between them.
    Decided from the settings (DURATION, not the time measured alone), so every repeat of a cell is cut alike."""
    slots = spec.slots
    best = spec.pool_rules.ideal_speedup(spec.kind, spec.concurrency, spec.tasks, usable_cores(),
                                         cpu_fraction=spec.cpu_fraction, workers=spec.workers,
                                         coroutine=spec.coroutine) or 1.0
    waves = -(-spec.tasks // slots)
    if spec.duration * spec.tasks / max(best, 1.0) < BETWEEN_WAVES_AFTER_S or waves < 4 or spec.background:
        return [foreground]
    first = (waves // 2) * slots
    return [replace(foreground, count=first), replace(foreground, count=spec.tasks - first)]


def _send_and_collect(app, client: redis.Redis, queue: str, key: str, run_id: str, spec: RunSpec,
                      batches: list[Batch], parts: list[list[Batch]], reference: Batch | None, task_s: float | None,
                      m: Measurement, log: Callable[[str], None], show_progress: bool, watch: Watch | None,
                      first: int) -> None:
    """A closed batch: every task sent at once (background first), then collected; a long batch in parts, one task
    alone between them."""
    assert m.worker is not None  # taken (_take_worker) before the batches run
    t0 = time.monotonic()
    _send(app, queue, [b for b in batches if b.role == Role.BACKGROUND] + parts[0], run_id, m)
    m.timings["submit_s"] = time.monotonic() - t0
    log(f"submitted {spec.tasks} {spec.task or spec.workload} tasks" + (" after one alone" if reference else "")
        + (f" (in {len(parts)} parts, one alone between them)" if len(parts) > 1 else "")
        + (f", and {spec.background_tasks} {spec.background} tasks in the background" if spec.background else ""))
    t0 = time.monotonic()
    deadline = t0 + spec.deadline_s(task_s)  # one limit for the whole batch, however many parts
    for i, part in enumerate(parts):  # a long batch: one task alone between its waves, then the rest
        if i:
            assert reference is not None  # a batch is in parts (_waves) only when a task runs alone between them
            _alone(app, client, queue, key, reference, run_id, spec, m)
            _send(app, queue, part, run_id, m)
        left = spec.deadline_s(task_s) if not i else max(1.0, deadline - time.monotonic())  # (the limit as set, said)
        collect(client, key, len(m.submitted), m.worker, left, m, show_progress, watch, first)
    m.timings["collect_s"] = time.monotonic() - t0


def _offer(app, client: redis.Redis, queue: str, key: str, run_id: str, part: list[Batch], deadline_s: float,
           m: Measurement, show_progress: bool, watch: Watch | None, first: int) -> None:
    """An open-loop load: its tasks sent at their scheduled times from a thread of its own, each row kept in
    m.submitted as it is sent, while this thread collects the records and feeds the live view (tasks sent, the
    broker's queue). A sender that fails ends the run in one line; a run that fails stops the sender."""
    assert m.worker is not None  # taken (_take_worker) before the batches run
    failed: list[BaseException] = []
    stop = threading.Event()

    def send() -> None:
        try:
            _send(app, queue, part, run_id, m, stop)
        except BaseException as exc:  # kept for the collecting thread to raise  # noqa: BLE001
            failed.append(exc)

    def check() -> None:
        if failed:
            raise failed[0]

    expected = len(m.submitted) + sum(b.count for b in part)
    m.offered = (len(m.submitted), expected - len(m.submitted))
    sender = threading.Thread(target=send, name="lab-open-loop-sender", daemon=True)
    t0 = time.monotonic()
    sender.start()
    try:
        collect(client, key, expected, m.worker, deadline_s, m, show_progress, watch, first, check=check)
    finally:
        stop.set()  # a failed run: no task is sent after it (a complete one has sent them all)
        sender.join(timeout=5)
    check()
    m.timings["submit_s"] = m.timings["collect_s"] = time.monotonic() - t0


def _run_batches(stack: ExitStack, spec: RunSpec, tasks_url: str, client: redis.Redis, run_id: str,
                 batches: list[Batch], m: Measurement, log: Callable[[str], None], show_progress: bool,
                 watch: Watch | None = None) -> None:
    """Sample the worker, time one task alone, submit the batches, collect every record, time one task alone
    again, stop the worker.

    The reference (for fixed work) is one measured task run alone on the same worker, with nothing beside
    it: before the batch, after it, and between its waves when it is long. How long the work takes alone,
    on this interpreter, pool and machine, is their median; their spread is the machine's drift during the
    run (harness.analysis.trust: UNSTEADY). The speedup is measured against it, not inferred from the
    tasks' own CPU, which inflates when threads contend.
    """
    worker = m.worker
    assert worker is not None  # taken (_take_worker) before the batches run
    m.snapshot = machine_load.Snapshot()
    servers = [s.pid for s in (m.database, m.web) if s is not None and s.pid is not None]  # PG_URL's is not ours
    m.sampler = stack.enter_context(Sampler(worker.pids, spec.sample_hz, services=servers))
    if spec.gil_probe:
        m.oncpu = stack.enter_context(gilprobe.OnCpuSampler(worker.pid))
    app, queue, key = client_app(tasks_url), queue_name(run_id), records_key(run_id)
    _warm(app, queue, m)
    reference = batch(batches, Role.REFERENCE)
    task_s = None
    if reference is not None:
        t0 = time.monotonic()
        task_s = _alone(app, client, queue, key, reference, run_id, spec, m)
        m.timings["reference_s"] = time.monotonic() - t0
    foreground = _planned(batches, Role.FOREGROUND)
    # A batch of one workload (in two parts when it is long), or the user's app's calls, one batch each; an open-loop
    # load in one part, sent on its schedule.
    parts = ([[p] for p in _waves(spec, foreground)] if reference is not None and not spec.is_load else
             [[b for b in batches if b.role == Role.FOREGROUND]])
    if spec.is_load:  # the queue's depth on the broker while tasks arrive and drain
        routed = list(getattr(worker, "routes", {}).values())  # ROUTES: the routed groups' queues too
        m.queue_depth = stack.enter_context(QueueDepthSampler(tasks_url, [queue, *routed]))
    first = len(m.records)  # the live view shows the batch from here on, its parts together
    if spec.is_load:
        log(f"offering {spec.tasks} {spec.task or spec.workload} tasks at {spec.rate:g}/s for {spec.load_time:g} s "
            f"({spec.arrivals} arrivals), each sent at its time whatever the worker does")
    if spec.is_load:  # sent on its schedule from a thread while the records are collected (and shown) here
        _offer(app, client, queue, key, run_id, parts[0], spec.deadline_s(), m, show_progress, watch, first)
        log(f"submitted {spec.tasks} {spec.task or spec.workload} tasks on their schedule")
    else:
        _send_and_collect(app, client, queue, key, run_id, spec, batches, parts, reference, task_s, m, log,
                          show_progress, watch, first)
    if m.queue_depth is not None:
        m.queue_depth.stop()
    if reference is not None:
        _alone(app, client, queue, key, reference, run_id, spec, m)
    m.sampler.stop()
    m.machine_load = m.snapshot.report(exclude=machine_load.lab_pids())
    if m.oncpu is not None:
        m.oncpu.stop()
        m.contention = [json.loads(x) for x in client.lrange(contention_key(run_id), 0, -1)]
        client.delete(contention_key(run_id))
    if spec.pool_rules.loop is not None:  # its loop's lag, reported by the worker all along (the last window too)
        m.loop_lag = [json.loads(x) for x in client.lrange(lag_key(run_id), 0, -1)]
    if m.warm_runs_before is None:  # a worker of its own: stopped now (a warm one stays for the next run)
        t0 = time.monotonic()
        worker.stop()
        m.timings["worker_stop_s"] = time.monotonic() - t0


def measure(spec: RunSpec, results_dir: str | Path = RESULTS_DIR, redis_url: str | None = None,
            log: Callable[[str], None] = print, show_progress: bool = False,
            workers: WarmWorkers | None = None, live: Callable[[RunSpec], Watch] | None = None,
            calibrations: Calibrations | None = None, rabbit: TaskBroker | None = None) -> Path:
    """Measure one pool on one workload and store the raw records; returns the run folder.

    Nothing is written under `results_dir` until the broker and the worker are up, so a setting
    that cannot work leaves nothing behind. On failure the folder keeps what was measured under a
    run.json marked failed or interrupted, and the error is raised. Given `workers` (a sweep's warm
    workers), the run takes one with its settings and leaves it warm for the next run. `calibrations`: where
    the fixed work's size comes from (a sweep's rates; by default a rate this machine measured within the
    hour, harness.lab.calibrate). BROKER=rabbitmq: the tasks go through `rabbit` (a sweep's node, shared by its
    cells) or a private RabbitMQ node started for this run; the records stay on the Redis either way.
    """
    check_writable(Path(results_dir))  # before anything starts: a run whose results cannot be kept is not run
    fleet = fleet_settings() if spec.hosts else None  # HOSTS: the fleet's broker and secret, or a one-line refusal
    checked = check_fleet_run(spec, log, fleet) if spec.hosts else check_can_run(spec, log)
    interpreter = checked.interpreter
    m = Measurement()
    t_begin = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="gil-lab-run-"))
    folder: RunFolder | None = None
    manifest: RunManifest | None = None
    try:
        with ExitStack() as stack:
            broker = stack.enter_context(RedisBroker(fleet.broker_url if fleet else redis_url))
            log(f"broker: {'private redis-server at ' if broker.private else ''}{broker.redacted_url}"
                + (" (the lab's records)" if spec.broker != "redis" else ""))
            if spec.broker == "rabbitmq" and rabbit is None:
                t0 = time.monotonic()
                rabbit = cast("TaskBroker", stack.enter_context(rabbit_broker()))  # either kind enters as itself
                log(f"task broker: {'private ' if rabbit.private else ''}{rabbit.version or 'RabbitMQ'} at "
                    f"{rabbit.redacted_url}, ready in {time.monotonic() - t0:.1f} s")
            if spec.broker != "rabbitmq":
                rabbit = None
            if workers is not None and not WarmWorkers.shareable(spec):
                workers = None  # a worker of its own; the warm ones wait, idle, for the runs that alternate with it
            calibration, bg_calibration, batches, echo = _prepare(stack, spec, m, interpreter.python, workers,
                                                                  calibrations or Calibrations())
            run_id = new_run_id(spec.pool_rules.label, spec.workload)
            queue = queue_name(run_id)
            broker_url = broker.url
            assert broker_url is not None  # a started broker has its URL (RedisBroker.start)
            tasks_url = rabbit.url if rabbit is not None and rabbit.url else broker_url
            m.task_broker = rabbit
            client = redis.Redis.from_url(broker_url, socket_timeout=10)
            stack.callback(client.close)
            stack.callback(forget_keys, m, client, *queue_keys(queue), records_key(run_id), lag_key(run_id))
            # Run before the keys go, once the worker has stopped: records that reached Redis are kept.
            stack.callback(take_leftovers, m, client, records_key(run_id))
            if (spec.broker == "redis" and client.llen(queue)) or client.llen(records_key(run_id)):
                raise RunFailed(f"queue {queue} already holds messages; refusing to mix runs")
            # ROUTES: each routed group's queue, removed with the run's own (registered before its worker starts, so a
            # worker that fails to start leaves none of its keys behind either).
            for k in range(1, len(set(spec.routed.values())) + 1):
                stack.callback(forget_keys, m, client, *queue_keys(route_queue(run_id, k)))
            if spec.app:  # the results the user's worker stored in the lab's Redis, which a shared REDIS_URL would keep
                stack.callback(lambda: forget_keys(m, client, *(f"celery-task-meta-{r['task_id']}"
                                                                  for r in m.submitted)))
            worker = _take_worker(stack, spec, broker_url, run_id, scratch, interpreter.python, echo, workers, m, log,
                                  tasks_url, fleet)
            routes = getattr(worker, "routes", {})  # ROUTES: the queue of each routed task
            batches = [replace(b, queue=routes.get(b.workload)) for b in batches]
            settings = {**_settings(spec, broker, worker, calibration, bg_calibration, batches, echo, rabbit),
                        "worker_interpreter": {**interpreter.to_dict(), "PYTHON_GIL": worker.env().get("PYTHON_GIL")},
                        "own_task": checked.own_task, "pool_check": checked.pool,
                        "database": {"url": m.database.redacted_url, "rows": DB_ROWS, "private": m.database.private,
                                     "schema": SCHEMA, "query": spec.db_query}
                        if m.database is not None else None,
                        "http_service": {"url": f"http://{m.web.host}:{m.web.port}", "pid": m.web.pid}
                        if m.web is not None else None}
            if spec.app:
                settings.update(app_settings(spec, checked.app or {}, worker, broker, routes))
            machine = environment.collect()
            if isinstance(worker, RemoteWorkers):  # the hosts' cores, each machine once, not the harness's
                machine = worker.environment(machine)
            manifest = RunManifest(run_id=run_id, status=Status.RUNNING, owner=owner(), reason=None, spec=spec,
                                   settings=RunSettings.from_dict(settings), environment=Environment.from_dict(machine))
            folder = RunFolder(Path(results_dir), run_id)
            folder.write_manifest(manifest)
            if spec.calls:  # the sample replayed, kept with what it measured
                shutil.copy(spec.calls, folder.file("calls.jsonl"))
            watch = live(spec) if live is not None else None
            if watch is not None:
                stack.callback(watch.close)
            _run_batches(stack, spec, tasks_url, client, run_id, batches, m, log, show_progress, watch)
        _write_records(folder, manifest, m, scratch, t_begin)
    except BaseException as exc:
        if workers is not None:
            workers.discard(failed=True)  # the next run starts on a fresh worker, not on one that just failed
        if folder is not None and manifest is not None:
            status = Status.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else Status.FAILED
            reason = ("interrupted (Ctrl-C or SIGTERM)" if status == Status.INTERRUPTED else
                      f"the run's records could not be written ({exc.strerror or exc})" if isinstance(exc, OSError)
                      else str(exc))
            _write_partial(folder, manifest, m, scratch, status, reason)
            if isinstance(exc, RunFailed):
                raise type(exc)(f"{exc} (partial results kept in {folder.path})") from None
            if isinstance(exc, OSError):  # a full disk, a folder gone read-only: the records could not be kept
                raise RunFailed(f"could not write the run's records in {folder.path}: "
                                f"{exc.strerror or exc} (run.json marked failed)") from None
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # the worker log was moved into the folder, if there is one
    return folder.path


def _take_worker(stack: ExitStack, spec: RunSpec, broker_url: str, run_id: str, scratch: Path, python: str,
                 echo: EchoService | None, workers: WarmWorkers | None, m: Measurement,
                 log: Callable[[str], None], tasks_url: str | None = None,
                 fleet: FleetSettings | None = None) -> Worker | WorkerGroup | RemoteWorkers:
    """m.worker (returned too): a fresh worker (or WORKERS=N of them) stopped with the stack, a sweep's warm one
    consuming the run's queue until the stack closes, or (HOSTS) the workers the hosts' agents started."""
    if fleet is not None:
        m.worker = stack.enter_context(RemoteWorkers(spec, broker_url, fleet.secret, run_id, scratch / "worker.log"))
        where = ", ".join(f"{h} ({len(i)})" for h, i in m.worker.indexes.items())
        log(f"workers: {spec.workers} x {spec.pool} pool, concurrency {spec.concurrency}, on hosts {where}, ready in "
            f"{m.worker.start_to_ready_s:.2f} s")
        return m.worker
    if workers is None or m.services:  # a warm worker has not the run's own database or HTTP service in its environment
        kind: type[Worker] | type[WorkerGroup] = WorkerGroup if spec.workers > 1 or spec.routes else Worker
        # Either kind's __enter__ returns the worker itself (mypy joins the two context managers to object).
        m.worker = cast("Worker | WorkerGroup", stack.enter_context(
            kind(spec, broker_url, run_id, scratch / "worker.log", python=python, echo=echo, services=m.services,
                 tasks_url=tasks_url)))
        log(f"worker{'s' if spec.workers > 1 else ''}: {f'{spec.workers} x ' if spec.workers > 1 else ''}"
            f"{spec.pool} pool, concurrency {spec.concurrency}, ready in {m.worker.start_to_ready_s:.2f} s")
        return m.worker
    queue = queue_name(run_id)
    m.worker, m.warm_runs_before = workers.worker_for(spec, broker_url, python, tasks_url)
    m.worker.consume(queue)
    stack.callback(_release, workers, m.worker, queue)
    log(f"worker: {spec.pool} pool, concurrency {spec.concurrency}, warm (run {m.warm_runs_before + 1} on it)")
    return m.worker


def _write_records(folder: RunFolder, manifest: RunManifest, m: Measurement, scratch: Path, t_begin: float) -> None:
    """The raw records of a run that measured everything it asked for; its status is decided later."""
    onto_broker_clock(m, manifest)
    folder.write_frame("tasks.csv", m.tasks_frame())
    assert m.sampler is not None  # started once the batches ran (_run_batches)
    folder.write_frame("samples.csv", all_samples(m))
    if m.queue_depth is not None:
        folder.write_frame("queue.csv", m.queue_depth.frame())
    if m.oncpu is not None:
        folder.write_frame("gil_oncpu.csv", m.oncpu.frame())
        folder.write_frame("gil_contention.csv", pd.DataFrame(m.contention, columns=["t", "pid", "contention"]))
    if m.loop_lag:
        folder.write_frame("loop_lag.csv", pd.DataFrame(m.loop_lag, columns=list(loop_lag.COLUMNS)))
    _keep_worker_log(folder, m, scratch)
    m.timings["total_s"] = time.monotonic() - t_begin
    warm = m.warm_runs_before is not None
    settings = manifest.settings
    settings.reference_tasks = _reference_tasks(m)
    settings.harness_timings = m.timings
    settings.gil_probe_cost = m.oncpu.own_cost() if m.oncpu is not None else None
    assert m.worker is not None  # taken before the batches ran (_take_worker)
    settings.extra.update({"worker_clean_shutdown": None if warm else m.worker.clean_shutdown,
                           "worker_stopped_by": "kept warm for the next run" if warm else m.worker.stopped_by,
                           "warm_runs_before": m.warm_runs_before, "sampler": m.sampler.own_cost()})
    settings.machine_load = MachineLoad.from_dict(m.machine_load) if m.machine_load else None
    folder.write_manifest(manifest)


def onto_broker_clock(m: Measurement, manifest: RunManifest) -> None:
    """HOSTS: every timestamp onto the broker's clock, each host's by its own offset measured before and after the run
    (the harness's sending times by its own), and what was measured of the hosts into run.json. Done once."""
    workers = m.worker
    if not isinstance(workers, RemoteWorkers) or m.on_one_clock:
        return
    m.on_one_clock = True
    spec = manifest.spec
    mine = workers.offset(None)
    for row in m.submitted:
        for key in ("submitted", "scheduled"):
            if row.get(key) is not None:
                row[key] += mine
    for record in m.records:
        shift = workers.offset(spec.host_of(int(record.get("worker") or 1)))
        record["started"] += shift
        record["finished"] += shift
    if m.queue_depth is not None:  # read by the harness, on its clock
        m.queue_depth.rows = [(row[0] + mine, *row[1:]) for row in m.queue_depth.rows]
    # The lag probe's rows name the worker's process: a pid its agent gave at start (an unknown one stays on the
    # harness's clock, which for hosts on one machine is theirs).
    by_pid = workers.host_of_pid()
    m.loop_lag = [[row[0] + workers.offset(by_pid.get(row[1])), *row[1:]] for row in m.loop_lag]
    manifest.settings.extra["fleet"] = workers.record()


def all_samples(m: Measurement) -> pd.DataFrame:
    """The samples taken here and, on several hosts, those their agents took (on the broker's clock, a `host` column
    saying whose)."""
    assert m.sampler is not None
    local = m.sampler.frame()
    if not isinstance(m.worker, RemoteWorkers):
        return local
    local = local.assign(t=local["t"] + m.worker.offset(None), host=None)
    if not m.worker.on_this_machine():  # this machine's cores are not the workers': kept, apart
        local["kind"] = local["kind"].replace({"core": "harness_core"})
    return pd.concat([local, m.worker.samples()], ignore_index=True)


def _reference_tasks(m: Measurement) -> int:
    """How many tasks ran alone, as submitted so far."""
    return sum(r["role"] == Role.REFERENCE for r in m.submitted)


def _release(workers: WarmWorkers, worker: Worker, queue: str) -> None:
    """A warm worker stops taking from this run's queue; one that cannot say so is not kept."""
    try:
        worker.stop_consuming(queue)
    except WorkerError:
        workers.discard()


def _keep_worker_log(folder: RunFolder, m: Measurement, scratch: Path) -> None:
    """The worker's log into the run folder: moved, or for a warm worker copied as it stands (its
    earlier runs' lines included: the worker is the same)."""
    if m.warm_runs_before is not None:
        if m.worker is not None and Path(m.worker.log_path).exists():
            shutil.copy(m.worker.log_path, folder.file("worker.log"))
    elif (scratch / "worker.log").exists():
        shutil.move(str(scratch / "worker.log"), folder.file("worker.log"))


def _write_partial(folder: RunFolder, manifest: RunManifest, m: Measurement, scratch: Path,
                   status: Status, reason: str) -> None:
    """Keep what was measured before a failure, under a manifest that says the run is not complete.

    The manifest is written last and whatever happened to the records (a full disk): a run.json left
    saying "running" would claim a run that no longer is.
    """
    try:
        onto_broker_clock(m, manifest)  # HOSTS: stopped with the run's stack already, their samples taken
        if m.sampler is not None:
            m.sampler.stop()
            folder.write_frame("samples.csv", all_samples(m))
        folder.write_frame("tasks.csv", m.tasks_frame())
        _keep_worker_log(folder, m, scratch)
    except OSError as exc:
        reason = f"{reason}; its records could not all be written ({exc.strerror or exc})"
    finally:
        manifest.settings.reference_tasks = _reference_tasks(m)
        manifest.status, manifest.reason = status, reason
        # How far the run got: harness.pipeline refuses to summarize a run that says it.
        manifest.partial = {"tasks_submitted": len(m.submitted), "tasks_recorded": len(m.records)}
        folder.write_manifest(manifest)
