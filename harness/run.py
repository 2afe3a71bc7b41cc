"""One run, end to end: broker, worker, sampler, submit, collect, write the run folder."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

import pandas as pd
import redis
from celery import Celery
from tqdm import tqdm

from harness import analysis, environment, gilprobe, plots
from harness.broker import Broker, redact
from harness.calibrate import calibrate
from harness.echo import EchoServer
from harness.results import Run, RunFolder, load_run, new_run_id
from harness.sampler import Sampler
from harness.spec import RunSpec, SpecError, default_prefetch
from harness.worker import Worker
from workloads.gilprobe import contention_key
from workloads.record import records_key


class RunFailed(RuntimeError):
    """The run started but could not finish; partial results are kept and marked."""


def check_pool_importable(pool: str, timeout_s: float = 30.0) -> None:
    """gevent and eventlet must import in the interpreter the worker will use, or the run cannot start."""
    if pool not in ("gevent", "eventlet"):
        return
    try:
        out = subprocess.run([sys.executable, "-W", "ignore", "-c", f"import {pool}"],
                             capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SpecError(f"pool {pool!r}: importing {pool} took over {timeout_s:g} s") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise SpecError(f"pool {pool!r} needs the {pool} package, which does not import here ({last}); "
                        f"install it (pip install {pool}) or choose prefork, threads or solo")


def _check_gil_probe() -> None:
    try:
        gilprobe.check_available()
        import gilknocker  # noqa: F401  (the worker-side half of the probe)
    except (gilprobe.ProbeUnavailable, ImportError) as exc:
        raise SpecError(f"the GIL probe is not available here: {exc}") from None


def task_args(workload: str, duration: float, calibration: dict, echo: EchoServer | None) -> list:
    if workload == "cpu":
        return [calibration["iterations"]]
    if workload == "gil_release":
        return [calibration["rounds"]]
    if workload == "io_net":
        return [duration, echo.host, echo.port]
    return [duration]


def _forget_keys(client: redis.Redis, *keys: str) -> None:
    """Remove the run's queue and lists from a shared broker; a broker that is gone has nothing to remove."""
    try:
        client.delete(*keys)
    except (redis.RedisError, OSError):
        pass


def _client_app(broker_url: str) -> Celery:
    # The harness sends tasks by name with its own app: importing workloads.app here would set the
    # harness's own switch interval and load the worker's signal handlers.
    app = Celery("gil_lab_client", broker=broker_url)
    app.conf.update(task_serializer="json", accept_content=["json"], broker_connection_retry=False,
                    broker_connection_timeout=5)
    return app


class _Measurement:
    """State of a run in progress, kept so that a failure can still write what was measured."""

    def __init__(self) -> None:
        self.submitted: list[dict] = []
        self.records: list[dict] = []
        self.sampler: Sampler | None = None
        self.worker: Worker | None = None
        self.oncpu: gilprobe.OnCpuSampler | None = None
        self.contention: list = []
        self.timings: dict[str, float] = {}

    def tasks_frame(self) -> pd.DataFrame:
        sent = pd.DataFrame(self.submitted, columns=["task_id", "index", "role", "submitted"])
        got = pd.DataFrame(self.records)
        if got.empty:
            return sent.iloc[0:0]
        return sent.merge(got, on="task_id", how="inner").sort_values("index").reset_index(drop=True)


def _collect(client: redis.Redis, key: str, expected: int, worker: Worker, deadline_s: float,
             m: _Measurement, show_progress: bool) -> None:
    """Take records off the run's list until all arrived; fail fast on anything that means they won't."""
    deadline = time.monotonic() + deadline_s
    children = worker.children()
    with tqdm(total=expected, desc="tasks", unit="task", disable=not show_progress, leave=False) as bar:
        while len(m.records) < expected:
            try:
                item = client.blpop([key], timeout=0.25)
            except (redis.RedisError, OSError) as exc:
                raise RunFailed(f"lost the Redis broker mid-run ({redact(str(exc))}); "
                                f"{len(m.records)} of {expected} tasks had reported") from None
            if item is not None:
                m.records.append(json.loads(item[1]))
                bar.update(1)
                continue
            if not worker.alive():
                raise RunFailed(worker.died_message())
            lost = children - worker.children()
            if lost:
                # A prefork child that dies takes its task with it: Celery marks it failed
                # (WorkerLostError) and the task never reports. Waiting for the deadline would only delay.
                raise RunFailed(f"a prefork child process (pid {', '.join(map(str, sorted(lost)))}) died mid-run; "
                                f"its task was lost ({len(m.records)} of {expected} tasks had reported)")
            if time.monotonic() > deadline:
                raise RunFailed(f"{expected - len(m.records)} of {expected} tasks did not finish within "
                                f"{deadline_s:g} s (a task that never returns, or a stuck worker)")


def run_bench(spec: RunSpec, results_dir: str | Path = "results", redis_url: str | None = None,
              log: Callable[[str], None] = print, show_progress: bool = False, mark_latest: bool = True) -> Run:
    """Measure one pool on one workload; returns the run as read back from its folder.

    Nothing is written under `results_dir` until the broker and the worker are up, so a setting
    that cannot work leaves nothing behind.
    """
    check_pool_importable(spec.pool)
    if spec.gil_probe:
        _check_gil_probe()
    m = _Measurement()
    t_begin = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="gil-lab-run-"))
    folder: RunFolder | None = None
    manifest: dict = {}
    try:
        with ExitStack() as stack:
            broker = stack.enter_context(Broker(redis_url))
            log(f"broker: {'private redis-server at ' if broker.private else ''}{broker.redacted_url}")
            t0 = time.monotonic()
            calibration = calibrate(spec.workload, spec.duration)
            bg_calibration = calibrate(spec.background, spec.background_duration) if spec.background else {}
            m.timings["calibration_s"] = time.monotonic() - t0
            echo = stack.enter_context(EchoServer()) if spec.workload == "io_net" else None
            # Background tasks go first, so they are already running when the measured ones start.
            batches = [("background", spec.background, spec.background_tasks,
                        task_args(spec.background, spec.background_duration, bg_calibration, echo))
                       if spec.background else None,
                       ("foreground", spec.workload, spec.tasks,
                        task_args(spec.workload, spec.duration, calibration, echo))]
            batches = [b for b in batches if b]
            expected = sum(b[2] for b in batches)

            run_id = new_run_id(spec.pool, spec.workload)
            queue = f"lab.{run_id}"
            client = redis.Redis.from_url(broker.url, socket_timeout=10)
            stack.callback(client.close)
            stack.callback(_forget_keys, client, queue, records_key(run_id), f"_kombu.binding.{queue}")
            if client.llen(queue) or client.llen(records_key(run_id)):
                raise RunFailed(f"queue {queue} already holds messages; refusing to mix runs")

            m.worker = Worker(spec, broker.url, run_id, queue, scratch / "worker.log")
            stack.enter_context(m.worker)
            log(f"worker: {spec.pool} pool, concurrency {spec.concurrency}, ready in "
                f"{m.worker.start_to_ready_s:.2f} s")

            folder = RunFolder(Path(results_dir), run_id)
            manifest = {
                "status": "running",
                "reason": None,
                "spec": spec.to_dict(),
                "settings": {
                    "broker": {"url": broker.redacted_url, "private": broker.private},
                    "queue": queue,
                    "prefetch_multiplier": spec.prefetch,
                    "prefetch_is_pool_default": spec.prefetch == default_prefetch(spec.pool),
                    "task_acks_late": True,
                    "serializer": "json",
                    "calibration": calibration,
                    "task_args": batches[-1][3],
                    "background": {"workload": spec.background, "tasks": spec.background_tasks,
                                   "duration": spec.background_duration, "calibration": bg_calibration,
                                   "task_args": batches[0][3]} if spec.background else None,
                    "echo_reply_delay_s": echo.reply_delay_s if echo else None,
                    "worker_argv": m.worker.argv()[1:],
                    "worker_start_to_ready_s": m.worker.start_to_ready_s,
                    "worker_ready": m.worker.ready_info,
                    "sample_hz": spec.sample_hz,
                    "deadline_s": spec.deadline_s(),
                },
                "environment": environment.collect(),
                "summary": None,
            }
            folder.write_manifest(manifest)

            m.sampler = stack.enter_context(Sampler(m.worker.pid, spec.sample_hz))
            if spec.gil_probe:
                m.oncpu = stack.enter_context(gilprobe.OnCpuSampler(m.worker.pid))
            app = _client_app(broker.url)
            t0 = time.monotonic()
            with app.producer_or_acquire() as producer:
                for role, workload, count, args in batches:
                    for _ in range(count):
                        submitted = time.time()
                        result = app.send_task(workload, args=args, queue=queue, producer=producer)
                        m.submitted.append({"task_id": result.id, "index": len(m.submitted), "role": role,
                                            "submitted": submitted})
            m.timings["submit_s"] = time.monotonic() - t0
            log(f"submitted {spec.tasks} {spec.workload} tasks"
                + (f" after {spec.background_tasks} {spec.background} tasks in the background" if spec.background else ""))

            t0 = time.monotonic()
            _collect(client, records_key(run_id), expected, m.worker, spec.deadline_s(), m, show_progress)
            m.timings["collect_s"] = time.monotonic() - t0
            m.sampler.stop()
            if m.oncpu is not None:
                m.oncpu.stop()
                m.contention = [json.loads(x) for x in client.lrange(contention_key(run_id), 0, -1)]
                client.delete(contention_key(run_id))
            t0 = time.monotonic()
            m.worker.stop()
            m.timings["worker_stop_s"] = time.monotonic() - t0
    except BaseException as exc:
        if folder is not None:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            reason = "interrupted (Ctrl-C or SIGTERM)" if status == "interrupted" else str(exc)
            _write_partial(folder, manifest, m, scratch, status, reason)
            if isinstance(exc, RunFailed):
                raise RunFailed(f"{exc} (partial results kept in {folder.path})") from None
        raise
    finally:
        if folder is None:  # nothing was kept: the scratch space (worker log) goes too
            shutil.rmtree(scratch, ignore_errors=True)

    tasks = m.tasks_frame()
    samples = m.sampler.frame()
    ctx = analysis.RunContext(pool=spec.pool, workload=spec.workload, kind=spec.kind,
                              concurrency=spec.concurrency, tasks=spec.tasks, duration=spec.duration,
                              switch_interval=spec.switch_interval, cores=environment.usable_cores())
    summary = analysis.summarize(tasks[tasks["role"] == "foreground"], samples, ctx)
    folder.write_frame("tasks.csv", tasks)
    folder.write_frame("samples.csv", samples)
    shutil.move(str(scratch / "worker.log"), folder.file("worker.log"))
    shutil.rmtree(scratch, ignore_errors=True)
    plots.timeline(tasks, manifest["spec"], folder.file("timeline.png"))
    plots.parallelism(tasks, samples, manifest["spec"], ctx.cores, folder.file("parallelism.png"))
    files = ["run.json", "tasks.csv", "samples.csv", "worker.log", "timeline.png", "parallelism.png"]
    if m.oncpu is not None:
        oncpu = m.oncpu.frame()
        contention = pd.DataFrame(m.contention, columns=["t", "pid", "contention"])
        bands = analysis.gil_holder_bands(oncpu)
        fg = tasks[tasks["role"] == "foreground"]
        summary["gil_probe"] = {
            **analysis.gil_handoffs(bands, float(fg["started"].min()), float(fg["finished"].max())),
            "contention_mean": float(contention["contention"].mean()) if len(contention) else None,
            **m.oncpu.own_cost(),
        }
        folder.write_frame("gil_oncpu.csv", oncpu)
        folder.write_frame("gil_contention.csv", contention)
        plots.gil_timeline(tasks, bands, contention, manifest["spec"], folder.file("gil.png"))
        files += ["gil_oncpu.csv", "gil_contention.csv", "gil.png"]
    m.timings["total_s"] = time.monotonic() - t_begin
    manifest["settings"].update({"worker_clean_shutdown": m.worker.clean_shutdown,
                                 "worker_stopped_by": m.worker.stopped_by,
                                 "harness_timings": m.timings, "sampler": m.sampler.own_cost()})
    errors = tasks["error"].dropna() if "error" in tasks else pd.Series(dtype=object)
    status, reason = "complete", None
    if len(errors):
        # Every record is kept, but a run whose tasks raised measured something else than asked.
        status = "failed"
        reason = f"{len(errors)} of {len(tasks)} tasks raised an error, e.g. {errors.iloc[0]}"
    manifest.update(status=status, reason=reason, summary=summary, files=files)
    folder.write_manifest(manifest)
    if reason:
        raise RunFailed(f"{reason} (results kept in {folder.path}, marked failed)")
    if mark_latest:
        folder.mark_latest()
    return load_run(folder.path)


def _write_partial(folder: RunFolder, manifest: dict, m: _Measurement, scratch: Path,
                   status: str, reason: str) -> None:
    """Keep what was measured before a failure, under a manifest that says the run is not complete."""
    if m.sampler is not None:
        m.sampler.stop()
        folder.write_frame("samples.csv", m.sampler.frame())
    folder.write_frame("tasks.csv", m.tasks_frame())
    if (scratch / "worker.log").exists():
        shutil.move(str(scratch / "worker.log"), folder.file("worker.log"))
    shutil.rmtree(scratch, ignore_errors=True)
    manifest.update(status=status, reason=reason,
                    partial={"tasks_submitted": len(m.submitted), "tasks_recorded": len(m.records)})
    folder.write_manifest(manifest)
