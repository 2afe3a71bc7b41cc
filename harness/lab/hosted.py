"""The measured workers an agent runs on its host for a run on several hosts (HOSTS=): workloads.agent's `start` and
`stop` commands.

The agent starts its share of the run's workers as the harness starts its own (harness.lab.worker_group: the lab's
Celery command line, the lab's recording, validated settings, no shell), samples them from outside with the lab's
sampler, and answers `stop` with what it measured: the samples (its host's cores too), the workers' log, how they
stopped. Every answer is bounded in size. While they run, a watcher renews the host's alive key on the broker (the
harness's check that they still run) and stops them at once if the harness's lease on the run lapses: a harness that
died leaves nothing running on any host. A worker dies with its agent (its parent-death signal), so an agent killed
mid-run leaves nothing either.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis

from harness.errors import LabError, SpecError
from harness.lab import consent
from harness.lab.interpreters import resolve
from harness.lab.periodic import pause
from harness.lab.preflight import check_can_run
from harness.lab.sampler import Sampler
from harness.lab.worker_group import WorkerGroup
from harness.model.hosts import LEASE_LAPSE_S
from harness.model.settings import SETTINGS
from harness.model.spec import RunSpec
from workloads.protocol import (
    host_alive_key,
    host_died_key,
    lag_key,
    queue_keys,
    queue_name,
    records_key,
    run_lease_key,
)

# The alive key's expiry, and how often it is renewed: a host whose agent died is known within ALIVE_TTL_S.
ALIVE_TTL_S = 3
RENEW_S = 0.5
# How long the harness's lease may be missing before the run's workers are stopped (it renews it every second).
# Bounds on a `stop` answer, which travels through the broker: samples beyond this many rows are thinned (every
# k-th sampling instant kept, whole); the log keeps its last LOG_BYTES.
MAX_SAMPLE_ROWS = 60_000
LOG_BYTES = 256 * 1024


class Refused(LabError):
    """A start the agent will not do: a setting it refuses, a path it was not allowed, a check that failed."""


def check_paths(spec: RunSpec, allowed: list[Path]) -> None:
    """User code (TASK's package, APP's project) is imported only from a folder the agent was started with
    (--allow-path) or one inside it."""
    if not (spec.task or spec.app):
        return
    where = Path(spec.task_path or ".").resolve()
    if not under(where, allowed):
        names = ", ".join(str(a) for a in allowed) or "none"
        raise Refused(f"TASK_PATH {where} is not under a folder this agent allows (--allow-path: {names})")


def thin(frame: Any, max_rows: int = MAX_SAMPLE_ROWS) -> tuple[Any, int]:
    """The samples within max_rows: every k-th sampling instant, whole (all its rows), and k."""
    if len(frame) <= max_rows:
        return frame, 1
    instants = frame["t"].drop_duplicates().sort_values()
    step = -(-len(frame) // max_rows)
    kept = set(instants.iloc[::step])
    return frame[frame["t"].isin(kept)], step


def spec_from_message(data: Any) -> RunSpec:
    """The run's settings as the harness built them (build_spec, there), each one checked again here on its own (its
    type, range, a pool or task name's form, TASK_PATH a folder of this host). Not build_spec's rules across settings:
    they apply to what a user gives, and these are their results (TASKS derived from RATE, WORKERS from HOSTS). CALLS
    stays with the harness, which replays it."""
    if not isinstance(data, dict):
        raise Refused("the run's settings: missing")
    unknown = sorted(set(data) - set(SETTINGS))
    if unknown:  # a harness of another version of the lab
        raise Refused(f"the run's settings: {', '.join(unknown)[:200]} unknown to this agent's lab (update it)")
    values: dict[str, Any] = {}
    for name, setting in SETTINGS.items():
        raw = None if name == "calls" else data.get(name)
        try:
            values[name] = setting.validate(raw) if raw is not None else (None if setting.derive else setting.default)
        except SpecError as exc:
            raise Refused(f"the run's settings: {exc}") from None
    return RunSpec(**values)


def as_json(frame: Any) -> dict[str, Any]:
    """A table as plain JSON (columns, rows), a missing or infinite value as null: JSON has neither NaN nor inf."""
    clean = frame.replace([float("inf"), float("-inf")], None)
    rows = clean.astype(object).where(clean.notna(), None).values.tolist()
    return {"columns": [str(c) for c in frame.columns], "data": rows}


def under(path: str | Path, allowed: list[Path], follow: bool = True) -> bool:
    """Whether `path` is one of the `allowed` folders or inside one; `follow`: its links resolved (not for an
    interpreter: a virtual environment's python links out of it, and what runs is the environment)."""
    where = Path(path).resolve() if follow else Path(os.path.abspath(path))
    return any(where == a or a in where.parents for a in allowed)


def check_code(spec: RunSpec, found: dict[str, Any], allowed: list[Path]) -> None:
    """The user's task or app, as the worker's interpreter resolved it, comes from an allowed folder (--allow-path): its
    source file, not only TASK_PATH (a module of site-packages would resolve from anywhere)."""
    names = ", ".join(str(a) for a in allowed) or "none"
    sources = [v for v in _values(found, "source_file")]
    if (spec.task or spec.app) and (not sources or not all(s and under(s, allowed) for s in sources)):
        where = next((s for s in sources if not s or not under(s, allowed)), None)
        raise Refused(f"your task's code ({where or 'its source file unknown'}) is not under a folder this agent "
                      f"allows (--allow-path: {names})")


def check_before_running(spec: RunSpec, allowed: list[Path]) -> None:
    """What is refused before anything of the run's is executed here: an interpreter outside the allowed folders (it is
    run to be checked), a custom pool (its module would be imported from wherever the agent runs)."""
    names = ", ".join(str(a) for a in allowed) or "none"
    if spec.interpreter:
        found = resolve(spec.interpreter)  # as the worker's interpreter is found (PATH, then pyenv's and uv's)
        if not under(found, allowed, follow=False):
            raise Refused(f"INTERPRETER {spec.interpreter} is not under a folder this agent allows (--allow-path: "
                          f"{names})")
    if spec.pool_rules.custom:
        raise Refused(f"pool {spec.pool}: a custom pool's module is not run by an agent; give one of the lab's pools")


def _values(tree: Any, key: str) -> list[Any]:
    """Every value of `key` anywhere in a nested dict or list (the app check's tasks' source files)."""
    if isinstance(tree, dict):
        return [v for k, v in tree.items() if k == key] + [x for v in tree.values() for x in _values(v, key)]
    if isinstance(tree, list):
        return [x for v in tree for x in _values(v, key)]
    return []


class HostedRun:
    """One run's workers on this host: started by `start`, watched, stopped by `stop` (or by the lease lapsing)."""

    def __init__(self, agent: str, broker_url: str, body: dict[str, Any], allowed: list[Path]) -> None:
        self.agent, self.broker_url, self.allowed = agent, broker_url, allowed
        self.run_id = str(body.get("run_id", ""))
        if not self.run_id or len(self.run_id) > 80 or not self.run_id.isprintable():
            raise Refused("start needs the run's id")
        self.spec = spec_from_message(body.get("spec"))
        if self.agent not in self.spec.host_names:
            raise Refused(f"this agent ({self.agent}) is not among the run's HOSTS ({self.spec.hosts})")
        mine = self.spec.workers_on(self.agent)
        if body.get("indexes") != mine:
            raise Refused(f"the workers asked of this host are not its share of the run's ({mine})")
        check_paths(self.spec, allowed)
        self.indexes = mine
        self.group: WorkerGroup | None = None
        self.sampler: Sampler | None = None
        self._stop = threading.Event()
        self._stopping = threading.Lock()
        self._watcher: threading.Thread | None = None
        self.said: list[str] = []
        self.lapsed = False
        self.scratch = Path(tempfile.mkdtemp(prefix="gil-lab-agent-run-"))

    def start(self) -> dict[str, Any]:
        """Check the run can run here (its interpreter, pool, task), start this host's workers, wait until ready. On any
        failure nothing of the run is left: no worker, no folder."""
        try:
            return self._start()
        except BaseException as exc:
            self.stop(warm=False)
            if isinstance(exc, LabError) and not isinstance(exc, Refused):
                raise Refused(str(exc)) from None
            raise

    def _start(self) -> dict[str, Any]:
        consent.begin(True)  # the harness said, before asking any host, that the user's tasks run for real
        check_before_running(self.spec, self.allowed)
        checked = check_can_run(self.spec, self.said.append)
        check_code(self.spec, {"task": checked.own_task, "app": checked.app}, self.allowed)
        self.group = WorkerGroup(self.spec, self.broker_url, self.run_id, self.scratch / "worker.log",
                                 python=checked.interpreter.python, indexes=self.indexes)
        self.group.__enter__()
        self.sampler = Sampler(self.group.pids, self.spec.sample_hz)
        self.sampler.__enter__()
        # Alive from the first answer on, not from the watcher's first turn: the harness may look at once.
        client = redis.Redis.from_url(self.broker_url, socket_timeout=5)
        try:
            client.set(host_alive_key(self.run_id, self.agent), "1", ex=ALIVE_TTL_S)
        finally:
            client.close()
        self._watcher = threading.Thread(target=self._watch, name="lab-agent-watch", daemon=True)
        self._watcher.start()
        return {"ready": self.group.ready_info, "start_to_ready_s": self.group.start_to_ready_s,
                "argv": self.group.argv()[1:], "python": checked.interpreter.python, "pids": self.group.pids,
                "said": self.said}

    def _watch(self) -> None:
        """Renew this host's alive key while its workers run; say why when one died; stop them if the lease lapses."""
        client = redis.Redis.from_url(self.broker_url, socket_timeout=5)
        seen_lease = time.monotonic()
        try:
            while not pause(self._stop, RENEW_S):
                try:
                    group = self.group
                    if group is None:
                        return
                    if group.alive():
                        client.set(host_alive_key(self.run_id, self.agent), "1", ex=ALIVE_TTL_S)
                    else:
                        client.set(host_died_key(self.run_id, self.agent), group.died_message()[:2000], ex=300)
                        client.delete(host_alive_key(self.run_id, self.agent))
                    if client.exists(run_lease_key(self.run_id)):
                        seen_lease = time.monotonic()
                except (redis.RedisError, OSError):
                    pass  # the broker gone: nobody will stop these workers but the lease's lapse
                if time.monotonic() - seen_lease > LEASE_LAPSE_S:
                    self._lapse(client)
                    return
        finally:
            client.close()

    def _lapse(self, client: redis.Redis) -> None:
        """The harness is gone: the workers stopped, and the run's queue and lists, which nobody will read, removed
        from the broker. Unless the harness's own stop is under way (it holds the lock: it stops them)."""
        if not self._stopping.acquire(blocking=False):
            return
        try:
            self.lapsed = True
            self._stop_once(warm=False)
        finally:
            self._stopping.release()
        try:
            client.delete(*queue_keys(queue_name(self.run_id)), records_key(self.run_id), lag_key(self.run_id),
                          run_lease_key(self.run_id))
        except (redis.RedisError, OSError):
            pass

    def stop(self, warm: bool = True) -> dict[str, Any]:
        """Stop the workers (warm: let running tasks finish), and answer with what was measured, bounded. Once: the
        watcher (a lapsed lease) and the harness's `stop` may both ask."""
        with self._stopping:
            return self._stop_once(warm)

    def _stop_once(self, warm: bool) -> dict[str, Any]:
        self._stop.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=RENEW_S + 6)
        samples, step = None, 1
        if self.sampler is not None:
            self.sampler.stop()
            samples, step = thin(self.sampler.frame())  # (the sampler closed what it opened as it stopped)
            self.sampler = None
        group, self.group = self.group, None
        stopped: dict[str, Any] = {"stopped_by": "already stopped" + (" (the run's lease lapsed)" if self.lapsed
                                                                     else "")}
        if group is not None:
            group.stop(warm=warm)
            stopped = {"clean_shutdown": group.clean_shutdown, "stopped_by": group.stopped_by}
        log = self._log_tail()
        self.close()
        return {**stopped, "samples": as_json(samples) if samples is not None else None, "samples_thinned_by": step,
                "log": log}

    def _log_tail(self) -> str:
        path = self.scratch / "worker.log"
        try:
            with open(path, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - LOG_BYTES))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
