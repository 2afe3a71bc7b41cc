"""HOSTS=a,b: a run's workers on other hosts, started, watched and stopped through the lab's agents there.

Presents what a run needs of its workers as harness.lab.worker_group does, so run.py measures either: the run's
queue, whether they are all alive, how one died, how they stopped. Each agent starts its host's share of the workers
(harness.lab.hosted), samples them there and sends the samples and the log back when they stop. Every host's clock is
measured against the broker's before and after (harness.analysis.clock), so that its timestamps can be put on one
clock. While the run goes the harness renews its lease on the run; an agent that sees it lapse (the harness died)
stops its workers. Every wait on an agent is bounded.
"""
from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import redis

from harness.analysis.clock import ClockOffset, across_run
from harness.errors import RunFailed, UsageError
from harness.lab.fleet import AgentClient, AgentError, AgentRefused, own_clock_offset
from harness.lab.processes import interrupts_deferred, start_watchdog, stop_watchdog
from harness.model.hosts import LEASE_TTL_S, fleet_cores, machine_of
from harness.model.machine import boot_id
from harness.model.spec import RunSpec
from workloads.protocol import AGENT_HERE_TTL_S, host_alive_key, host_died_key, queue_name, run_lease_key

# A host's start may make a worker environment for the run's interpreter there (once, up to minutes) before its
# workers' own start (up to a minute each).
START_TIMEOUT_S = 240.0
# A host's stop: its workers' warm shutdown (15 s at most), then its answer.
STOP_TIMEOUT_S = 45.0
# A host whose agent is gone is asked to stop all the same (it may be back), but only waited on this long.
GONE_TIMEOUT_S = 5.0
LEASE_RENEW_S = 1.0


class RemoteWorkers:
    """The run's workers on HOSTS, through their agents; a context manager like WorkerGroup."""

    def __init__(self, spec: RunSpec, broker_url: str, secret: bytes, run_id: str, log_path: Path) -> None:
        self.spec, self.broker_url, self.run_id, self.log_path = spec, broker_url, run_id, log_path
        self.tasks_url = broker_url
        self.queue = queue_name(run_id)
        self.routes: dict[str, str] = {}
        self.clients = {h: AgentClient(h, broker_url, secret) for h in spec.host_names}
        self.indexes = {h: spec.workers_on(h) for h in spec.host_names}
        self.hosts: dict[str, dict[str, Any]] = {h: {"workers": self.indexes[h]} for h in spec.host_names}
        self.started: dict[str, dict[str, Any]] = {}
        self.stopped: dict[str, dict[str, Any]] = {}
        self._clock_before: dict[str, ClockOffset] = {}
        self.clocks: dict[str, ClockOffset] = {}  # each host's, and the harness's ("harness"), across the run
        self.start_to_ready_s: float | None = None
        self.clean_shutdown: bool | None = None
        self.stopped_by: str | None = None
        self._redis = redis.Redis.from_url(broker_url, socket_timeout=5)
        self._lease_stop = threading.Event()
        self._lease: threading.Thread | None = None
        self._stopped = False
        self._watchdog: subprocess.Popen | None = None

    # -- starting ---------------------------------------------------------------------------------------------------

    def __enter__(self) -> RemoteWorkers:
        started = time.monotonic()
        # Workers on other hosts stop by themselves when the harness dies (the lease lapses); here, its scratch folder
        # is removed then, as a local worker's watchdog removes it.
        scratch = Path(self.log_path).parent
        self._watchdog = start_watchdog(0, [str(scratch)]) if scratch.name.startswith("gil-lab-") else None
        try:
            self._renew()
            self._lease = threading.Thread(target=self._keep_lease, name="lab-run-lease", daemon=True)
            self._lease.start()
            self._clock_before["harness"] = own_clock_offset(self.broker_url)
            self._each(self._start_host)
        except BaseException:
            try:
                self.stop(warm=False)
            finally:
                self.close()
            raise
        self.start_to_ready_s = time.monotonic() - started
        return self

    def _start_host(self, host: str) -> dict[str, Any]:
        client = self.clients[host]
        try:
            self.hosts[host]["described"] = client.describe()
            self._clock_before[host] = client.clock_offset()
            answer = client.ask("start", timeout_s=START_TIMEOUT_S, while_here=True, run_id=self.run_id,
                                spec=self.spec.to_dict(), indexes=self.indexes[host])
            self.hosts[host]["pids"] = answer.get("pids")
            self.started[host] = answer  # (a dict's item set at once: safe beside the other hosts' threads)
            return answer
        except AgentRefused as exc:  # the host will not run these settings: the user's to change
            raise UsageError(str(exc)) from None
        except AgentError as exc:  # an agent gone quiet mid-sweep fails this run, not the sweep
            raise RunFailed(str(exc)) from None

    def _each(self, fn: Any) -> dict[str, Any]:
        """fn(host) on every host at once; the first error (by host order) raised once all have answered. In daemon
        threads: a Ctrl-C meanwhile ends the run at once, not after the slowest host's answer (bounded, but long)."""
        out: dict[str, Any] = {}
        errors: dict[str, BaseException] = {}

        def one(host: str) -> None:
            try:
                out[host] = fn(host)
            except BaseException as exc:  # noqa: BLE001 (raised below, after every host answered)
                errors[host] = exc

        threads = [threading.Thread(target=one, args=(h,), daemon=True) for h in self.clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        first = next((errors[h] for h in self.clients if h in errors), None)
        if first is not None:
            raise first
        return out

    # -- while the run goes -----------------------------------------------------------------------------------------

    def _renew(self) -> None:
        self._redis.set(run_lease_key(self.run_id), "1", ex=LEASE_TTL_S)

    def _keep_lease(self) -> None:
        while not self._lease_stop.wait(LEASE_RENEW_S):
            try:
                self._renew()
            except (redis.RedisError, OSError):
                pass  # the run sees a lost broker itself; the agents stop their workers when the lease lapses

    def alive(self) -> bool:
        """Every host's workers alive: each agent renews its host's key while they are (one look at the broker)."""
        keys = [host_alive_key(self.run_id, h) for h in self.clients]
        try:
            return int(self._redis.exists(*keys)) == len(keys)
        except (redis.RedisError, OSError):
            return True  # the broker itself: the run's own checks say so

    def died_message(self) -> str:
        """Which host's workers died, and why, in one line: a host whose agent is gone first (its run key may outlive
        it by seconds), else one whose agent said why its workers died."""
        for host, client in self.clients.items():
            if not client.here():
                return (f"host {host}: its agent is gone (no word from it for {AGENT_HERE_TTL_S} s: killed, or its "
                        "host or network down); its workers stop with it")
        for host in self.clients:
            if not self._redis.exists(host_alive_key(self.run_id, host)):
                why = self._redis.get(host_died_key(self.run_id, host))
                return f"host {host}: " + (why.decode(errors="replace") if why else "its workers stopped reporting")
        return "no host's workers died"

    def children(self) -> set[int]:
        return set()  # a prefork child that dies on another host shows as its worker's death there

    @property
    def pids(self) -> list[int]:
        return []  # sampled by their agents, on their hosts

    @property
    def pid(self) -> int:
        raise RunFailed("the run's workers are on other hosts: no local process to probe")

    @property
    def ready_info(self) -> dict | None:
        if not self.started:
            return None
        workers = [w for h in self.clients for w in (self.started[h].get("ready") or {}).get("workers", [])]
        return {**(workers[0] if workers else {}), "workers": workers,
                "hosts": {h: {"python": a.get("python"), "pids": a.get("pids"), "said": a.get("said")}
                          for h, a in self.started.items()}}

    def argv(self) -> list[str]:
        first = next(iter(self.started.values()), {})
        return ["python", *first.get("argv", [])]

    def env(self) -> dict[str, str]:
        return {}

    # -- stopping ---------------------------------------------------------------------------------------------------

    def stop(self, grace_s: float = 15.0, warm: bool = True) -> None:
        """Every host's workers stopped (warm: running tasks finish), their samples and logs taken, clocks read again.
        A host that does not answer is said in the log and in stopped_by; nothing waits longer than STOP_TIMEOUT_S."""
        with interrupts_deferred():
            self._stop_hosts(warm)

    def _stop_hosts(self, warm: bool) -> None:
        if self._stopped:
            return
        self._stopped = True

        def stop_host(host: str) -> dict[str, Any]:
            client = self.clients[host]
            # A host whose run never started there is asked briefly; one whose agent is gone (killed, its host down)
            # is not waited on once it is known gone.
            try:
                answer = client.ask("stop", timeout_s=STOP_TIMEOUT_S if host in self.started else GONE_TIMEOUT_S,
                                    while_here=True, run_id=self.run_id, warm=warm)
            except Exception as exc:  # noqa: BLE001 (every host is stopped whatever one of them does)
                return {"stopped_by": f"no answer ({exc})", "clean_shutdown": False, "log": ""}
            try:
                self.clocks[host] = across_run(self._clock_before[host], client.clock_offset())
            except (AgentError, KeyError):
                pass  # its clock as measured before the run stands (offset())
            return answer

        try:
            answers = self._each(stop_host)
        finally:
            self.started.clear()
            self._lease_stop.set()
            if self._lease is not None:
                self._lease.join(timeout=LEASE_RENEW_S + 5)
            try:
                if "harness" in self._clock_before:
                    self.clocks["harness"] = across_run(self._clock_before["harness"],
                                                        own_clock_offset(self.broker_url))
                self._redis.delete(run_lease_key(self.run_id),
                                   *(k for h in self.clients for k in (host_alive_key(self.run_id, h),
                                                                        host_died_key(self.run_id, h))))
            except (redis.RedisError, OSError, ValueError):
                pass
        self.stopped.update(answers)
        with open(self.log_path, "a", encoding="utf-8") as log:
            for host, answer in answers.items():
                log.write(f"=== host {host} (workers {', '.join(map(str, self.indexes[host]))}) ===\n")
                log.write(answer.get("log") or "")
        states = [a.get("clean_shutdown") for a in answers.values()]
        self.clean_shutdown = None if None in states else all(states)
        self.stopped_by = "; ".join(f"{h}: {a.get('stopped_by')}" for h, a in answers.items())

    def __exit__(self, exc_type, *_: object) -> None:
        try:
            self.stop(warm=exc_type is None)
        finally:
            self.close()

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self._redis.close()
        stop_watchdog(self._watchdog)
        self._watchdog = None

    # -- what was measured there ------------------------------------------------------------------------------------

    def environment(self, harness: dict[str, Any]) -> dict[str, Any]:
        """The run's environment (harness.lab.environment's, taken here) with the hosts' cores in place of this
        machine's: its ideal is counted over every host, each machine once (harness.model.hosts.fleet_cores)."""
        described = {h: self.hosts[h].get("described") or {} for h in self.clients}
        logical, physical = fleet_cores(described)
        return {**harness, "cpu_affinity": logical, "cpu_count_logical": logical, "cpu_count_physical": physical,
                "harness_hostname": harness.get("hostname"), "hosts": described}

    def on_this_machine(self) -> bool:
        """Whether every host is this machine (network namespaces here, as the tests have them): then this machine's
        cores are the workers' too."""
        here = boot_id()
        return here is not None and all(machine_of(h, self.hosts[h].get("described") or {}) == here
                                        for h in self.clients)

    def host_of_pid(self) -> dict[int, str]:
        """Which host each worker's main process runs on (as its agent said at start)."""
        return {int(pid): h for h in self.clients for pid in (self.hosts[h].get("pids") or [])}

    def offset(self, host: str | None) -> float:
        """What to add to a timestamp of `host` (None: the harness) to read the broker's clock."""
        clock = self.clocks.get(host or "harness") or self._clock_before.get(host or "harness")  # before: if not after
        return clock.offset_s if clock is not None else 0.0

    def samples(self) -> pd.DataFrame:
        """Every host's samples on the broker's clock, with a `host` column; a host's cores as kind `host_core`
        (the harness's own machine keeps `core`)."""
        frames = []
        for host, answer in self.stopped.items():
            raw = answer.get("samples")
            if not raw:
                continue
            frame = pd.DataFrame(raw["data"], columns=raw["columns"])
            frame["t"] = frame["t"].astype(float) + self.offset(host)
            frame["kind"] = frame["kind"].replace({"core": "host_core"})
            frames.append(frame.assign(host=host))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def record(self) -> dict[str, Any]:
        """What run.json keeps of the hosts: each one's machine, workers, clock and how its workers stopped."""
        out = {}
        for host in self.clients:
            answer = self.stopped.get(host, {})
            clock = self.clocks.get(host)
            out[host] = {**self.hosts[host], "clock": clock.to_dict() if clock else None,
                         "stopped_by": answer.get("stopped_by"), "clean_shutdown": answer.get("clean_shutdown"),
                         "samples_thinned_by": answer.get("samples_thinned_by")}
        harness = self.clocks.get("harness")
        return {"hosts": out, "harness_clock": harness.to_dict() if harness else None}
