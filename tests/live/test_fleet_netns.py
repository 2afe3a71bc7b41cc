"""Several hosts on one machine with real network hops: a broker host (this namespace, the harness's) and two worker
hosts, each a network namespace joined to it by a veth pair on a bridge, each agent in its own namespace, every
message crossing the veth links. One agent's clock runs 2 s ahead (libfaketime); one is killed outright, then the
harness. As root (CI runs as root); elsewhere skipped with one line saying why."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest
import redis
from lab_process import harness, start

from harness.errors import BrokerError
from harness.lab.local_fleet import LocalFleet
from harness.lab.netns import namespaces, unavailable
from harness.lab.services.redis_broker import RedisBroker

if unavailable():
    if os.environ.get("CI"):
        raise RuntimeError("CI runs as root with iproute2 (.ci/run installs it): the namespace tests must run there")
    pytestmark = pytest.mark.skip(reason=f"{unavailable()} (CI runs as root): the several-hosts tests across veth "
                                         "links are skipped")
FAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))), None)


def _skewed(skew: str) -> dict[str, str]:
    """An agent's clock `skew` off (libfaketime), and its workers' with it (they inherit its environment)."""
    return {"LD_PRELOAD": str(FAKETIME), "FAKETIME": skew, "FAKETIME_DONT_RESET": "1"}


def _run_json(folder: Path) -> dict:
    return json.loads((folder / "run.json").read_text())


def test_the_broker_listens_only_where_it_is_told():
    with pytest.raises(BrokerError, match="does not listen on every interface"):
        RedisBroker(bind="0.0.0.0")
    with pytest.raises(BrokerError, match="give an IP address of this host"):
        RedisBroker(bind="every")


@pytest.mark.skipif(FAKETIME is None, reason="no libfaketime here (apt-get install libfaketime)")
def test_a_run_on_two_namespaces_has_both_hosts_lanes_and_samples_on_the_brokers_clock_and_a_killed_agent_fails_it(
        tmp_path):
    """HOSTS=host1,host2: each agent starts its worker in its namespace; the tasks cross the veth links both ways;
    host2's clock runs 2 s ahead, and its tasks' times are put on the broker's clock all the same (a task never starts
    before it was sent, nor 2 s after). Then an agent killed mid-run: the run fails in one line within seconds, its
    records kept, and nothing of the run is left in any namespace."""
    work = tmp_path / "work"
    work.mkdir()
    with LocalFleet(2, agent_env={2: _skewed("+2s")}) as here:
        assert here.namespaces is not None and here.broker is not None and here.broker.url is not None
        hosts, broker, fleet = here.namespaces, here.broker, here.env
        agents = here.agents
        try:
            out = harness("bench", "--pool", "threads", "--workload", "io_sleep", "--hosts", "host1,host2",
                          "--concurrency", "2", "--tasks", "16", "--duration", "0.2", env=fleet, cwd=work, timeout=180)
            assert out.returncode == 0, out.stderr[-3000:]
            password = urlparse(broker.url).password
            assert password and password not in out.stdout + out.stderr
            # The agents' connections to the broker come from their namespaces' addresses: across the veth links.
            peers = {c["addr"].rsplit(":", 1)[0] for c in redis.Redis.from_url(broker.url).client_list()}
            assert {hosts.host_address(1), hosts.host_address(2)} <= peers, peers
            folder = (work / "results" / "latest").resolve()
            run = _run_json(folder)
            fleet_record = run["settings"]["fleet"]
            clocks = {h: fleet_record["hosts"][h]["clock"] for h in ("host1", "host2")}
            harness_clock = fleet_record["harness_clock"]["offset_s"]
            assert clocks["host1"]["offset_s"] - harness_clock == pytest.approx(0.0, abs=0.005)
            assert clocks["host2"]["offset_s"] - harness_clock == pytest.approx(-2.0, abs=0.005)
            # One machine (the namespaces share its boot id): the ideal counts its cores once.
            assert run["environment"]["cpu_affinity"] == len(os.sched_getaffinity(0))
            assert run["summary"]["speedup"] > 0.7 * 4  # 4 slots over the hosts overlapped their waits
            hosts_said = [n for n in run["summary"]["notes"] if n.startswith("HOSTS: ")]
            assert hosts_said and "host1 ran 8 tasks" in hosts_said[0] and "host2 ran 8 tasks" in hosts_said[0]
            tasks = pd.read_csv(folder / "tasks.csv")
            assert {s.split(" worker")[0] for s in tasks["slot"]} == {"host1", "host2"}
            assert set(tasks["worker"]) == {1, 2}
            waited = tasks["started"] - tasks["submitted"]
            assert waited.min() >= 0 and waited.max() < 1.5, waited.describe()
            samples = pd.read_csv(folder / "samples.csv")
            workers = samples[samples["kind"] == "process"]
            assert set(workers["host"].dropna()) == {"host1", "host2"}
            assert set(samples.loc[samples["kind"] == "host_core", "host"]) == {"host1", "host2"}
            assert (folder / "timeline.png").exists() and (folder / "parallelism.png").exists()

            # An agent killed mid-run.
            proc = start(["bench", "--pool", "threads", "--workload", "io_sleep", "--hosts", "host1,host2",
                          "--concurrency", "2", "--tasks", "40", "--duration", "1"], cwd=work, env=fleet)
            client = redis.Redis.from_url(broker.url)
            deadline = time.monotonic() + 90
            while len(client.keys("lab:*:host:*:alive")) < 2:  # both hosts' workers started
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.1)
            time.sleep(3)  # 40 one-second tasks on 4 slots: about 10 s of run, killed in its first third
            os.kill(agents[0].pid, signal.SIGKILL)
            killed = time.monotonic()
            _, err = proc.communicate(timeout=90)
            assert proc.returncode == 1 and time.monotonic() - killed < 30, err
            said = [line for line in err.splitlines() if line.startswith("error:")]  # (beside the progress lines)
            assert len(said) == 1 and said[0].startswith("error: host host1: its agent is gone"), err
            assert "Traceback" not in err
            kept = said[0].rsplit("(partial results kept in ", 1)[1].rstrip(")")
            failed = _run_json(work / kept)
            assert failed["status"] == "failed" and failed["partial"]["tasks_recorded"] >= 4
            deadline = time.monotonic() + 20
            while hosts.pids(hosts.names[0]) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert hosts.pids(hosts.names[0]) == []
            # The other host's agent stopped its worker and goes on: only the agent is left in its namespace.
            assert hosts.pids(hosts.names[1]) == [agents[1].pid]
            assert not client.keys("lab:*:lease") and not client.keys("lab:*:alive")

            # The harness killed outright mid-run: its lease lapses, and the agent stops the run's worker by itself.
            proc = start(["bench", "--pool", "threads", "--workload", "io_sleep", "--hosts", "host2",
                          "--concurrency", "2", "--tasks", "40", "--duration", "1"], cwd=work, env=fleet)
            deadline = time.monotonic() + 90
            while not client.keys("lab:*:host:host2:alive"):
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.1)
            assert len(hosts.pids(hosts.names[1])) > 1  # the agent and its worker
            proc.kill()
            proc.communicate(timeout=10)
            killed = time.monotonic()
            while hosts.pids(hosts.names[1]) != [agents[1].pid] and time.monotonic() - killed < 30:
                time.sleep(0.2)
            assert hosts.pids(hosts.names[1]) == [agents[1].pid], "the agent did not stop the dead harness's worker"
            print(f"the dead harness's worker stopped {time.monotonic() - killed:.1f} s after the kill")
            assert time.monotonic() - killed < 15  # the lease's 5 s to expire, then 5 s of lapse at most
        finally:
            print(here.log("host1")[-3000:], here.log("host2")[-3000:])
        names = list(hosts.names)
    assert not set(names) & set(namespaces())
