"""BROKER=rabbitmq (issue 26): a private RabbitMQ node on loopback with a user of its own and no guest, every pool
measured through it with the records on the lab's Redis, a sweep's cells sharing one node, and nothing left behind:
no beam.smp, no epmd, no folder, also after SIGKILL of the harness that started it."""
from __future__ import annotations

import json
import os
from pathlib import Path

import amqp
import psutil
import pytest
from lab_process import harness, killed_outright

from harness.lab.services.rabbitmq import RabbitBroker, find_rabbitmq
from harness.model.spec import build_spec
from harness.pipeline import run_bench

if find_rabbitmq() is None:
    if os.environ.get("CI"):  # .ci/run installs it: in CI these tests run, never skipped
        raise RuntimeError("CI has no RabbitMQ: .ci/run should have installed rabbitmq-server")
    pytestmark = pytest.mark.skip(reason="no RabbitMQ here (apt-get install rabbitmq-server, brew install rabbitmq): "
                                         "the BROKER=rabbitmq tests are skipped")


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def test_a_private_node_listens_on_loopback_only_takes_its_own_user_and_leaves_nothing():
    with RabbitBroker() as rabbit:
        assert rabbit.url is not None and rabbit.url.startswith("amqp://lab:") and "***" in rabbit.redacted_url
        assert rabbit.pid is not None and rabbit._epmd is not None and rabbit._epmd.pid is not None
        processes = _tree(rabbit.pid) + [psutil.Process(rabbit._epmd.pid)]
        names = {p.name() for p in processes}
        assert "beam.smp" in names and "epmd" in names
        listening = [c for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN
                     and c.pid in {p.pid for p in processes}]
        assert len(listening) >= 3  # AMQP, Erlang distribution, epmd
        assert all(c.laddr.ip in ("127.0.0.1", "::1") for c in listening), listening
        for p in processes:  # the password is in the node's 0600 config file, never on a command line
            assert rabbit._password not in " ".join(p.cmdline())
        folder = rabbit._server.folder if rabbit._server is not None else None
        assert folder is not None and (folder.stat().st_mode & 0o777) == 0o700
        with pytest.raises(amqp.exceptions.AccessRefused):  # no guest user
            amqp.Connection(host=f"127.0.0.1:{rabbit.port}", userid="guest", password="guest",
                            connect_timeout=3).connect()
        assert "RabbitMQ 3" in (rabbit.version or "")
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)
    assert not folder.exists()


def test_sigkill_of_the_harness_leaves_no_node_no_epmd_and_no_folder():
    code = ("from harness.lab.services.rabbitmq import RabbitBroker\n"
            "import psutil, time\n"
            "b = RabbitBroker().__enter__()\n"
            "pids = [p.pid for p in psutil.Process(b.pid).children(recursive=True)] + [b.pid, b._epmd.pid]\n"
            "print(' '.join(map(str, pids)), b._server.folder, b._epmd.folder, flush=True)\n"
            "time.sleep(120)\n")

    def alive(line: str) -> bool:
        *pids, folder, epmd_folder = line.split()
        running = [int(p) for p in pids if psutil.pid_exists(int(p))
                   and psutil.Process(int(p)).status() != psutil.STATUS_ZOMBIE]
        return bool(running) or Path(folder).exists() or Path(epmd_folder).exists()

    assert killed_outright(code, alive, alive, timeout_s=20)


@pytest.fixture(scope="module")
def rabbit():
    with RabbitBroker() as node:
        yield node


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo", "gevent", "eventlet"])
def test_every_pool_overlaps_waits_through_rabbitmq_as_it_does_through_redis(pool, rabbit, redis_url, tmp_path):
    run = run_bench(build_spec(pool=pool, workload="io_sleep", broker="rabbitmq", concurrency=4, tasks=8,
                               duration=0.2), results_dir=tmp_path, redis_url=redis_url, log=lambda _l: None,
                    rabbit=rabbit)
    s = run.summary
    assert s is not None and s.tasks_done == 8
    ideal = 1 if pool == "solo" else 4
    assert 0.8 * ideal <= s.speedup <= 1.1 * ideal  # waits overlap on the slots, as on Redis
    broker = run.manifest.settings.extra["broker"]
    assert broker["kind"] == "rabbitmq" and broker["url"] == rabbit.redacted_url and "RabbitMQ" in broker["version"]
    assert run.manifest.settings.extra["records_channel"]["url"].startswith("redis://")


def test_make_bench_with_broker_rabbitmq_starts_its_own_node_and_says_so(tmp_path):
    done = harness("bench", "--broker", "rabbitmq", "--pool", "threads", "--workload", "io_sleep", "--tasks", "4",
                   "--duration", "0.1", "--results-dir", "results", cwd=tmp_path, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "task broker: private RabbitMQ 3" in done.stderr and "(the lab's records)" in done.stderr
    (run,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir() and not p.is_symlink()]
    text = (run / "run.json").read_text()
    assert json.loads(text)["settings"]["broker"]["kind"] == "rabbitmq"
    assert "lab:***@" in text and not any(p.name() == "beam.smp" and str(tmp_path) in " ".join(p.cmdline())
                                          for p in psutil.process_iter())


def test_an_open_loop_load_reads_the_queue_depth_from_rabbitmq(rabbit, redis_url, tmp_path):
    # Python CPU work on one thread slot at three times what it finishes: the queue on the node grows.
    run = run_bench(build_spec(pool="threads", workload="cpu", broker="rabbitmq", concurrency=1, duration=0.05,
                               rate=60, load_time=3), results_dir=tmp_path, redis_url=redis_url,
                    log=lambda _l: None, rabbit=rabbit)
    load = run.summary.load
    assert load is not None and load.saturated and load.queue_depth_max is not None and load.queue_depth_max > 20


LONG_ON_RABBITMQ = ["bench", "--broker", "rabbitmq", "--pool", "threads", "--workload", "io_sleep", "--concurrency",
                    "2", "--tasks", "4", "--duration", "20"]


def _node_of(harness_pid: int) -> tuple[psutil.Process, list[psutil.Process]]:
    """The run's Erlang VM (beam.smp) and every process of its node, epmd included."""
    tree = psutil.Process(harness_pid).children(recursive=True)
    beam = next(p for p in tree if p.name() == "beam.smp")
    return beam, [p for p in tree if p.name() in ("beam.smp", "epmd", "erl_child_setup", "inet_gethost")]


@pytest.mark.parametrize("fault", ["killed", "stopped"])
def test_a_node_killed_or_stopped_mid_run_fails_the_run_in_one_bounded_line_and_leaves_nothing(fault, tmp_path):
    import signal
    import time

    from lab_process import Watched, wait_for

    proc = Watched(LONG_ON_RABBITMQ, tmp_path)
    proc.wait_for_line("submitted", timeout_s=90)  # the node is up, the worker has its tasks (20 s each)
    beam, node = _node_of(proc.proc.pid)
    time.sleep(0.5)
    started = time.monotonic()
    beam.send_signal(signal.SIGKILL if fault == "killed" else signal.SIGSTOP)
    code, err = proc.finish(timeout=60)
    assert code == 1 and "Traceback" not in err
    said = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(said) == 1 and ("RabbitMQ node exited" in said[0] or "Erlang VM is gone" in said[0]
                               if fault == "killed" else "RabbitMQ node is stopped" in said[0]), err
    assert time.monotonic() - started < 20  # not the tasks' 20 s, nor the run's deadline
    (folder,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir() and not p.is_symlink()]
    manifest = json.loads((folder / "run.json").read_text())
    assert manifest["status"] == "failed" and "RabbitMQ" in manifest["reason"]
    wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in node), timeout_s=15,
             what="the node's processes to go")


def test_amqp_url_runs_in_a_vhost_of_the_labs_that_is_gone_afterwards_and_a_refused_user_is_one_line(tmp_path):
    """A second node, with its management plugin asked for (on loopback only), stands in for the user's broker."""
    import requests

    with RabbitBroker(management=True) as users:
        assert users.api_url is not None and users.api_url.startswith("http://127.0.0.1:")
        api_port = int(users.api_url.rsplit(":", 1)[1])
        assert all(c.laddr.ip in ("127.0.0.1", "::1") for c in psutil.net_connections("tcp")
                   if c.status == psutil.CONN_LISTEN and c.laddr.port == api_port)
        env = {"AMQP_URL": users.url, "RABBITMQ_API_URL": users.api_url}
        done = harness("bench", "--broker", "rabbitmq", "--pool", "threads", "--workload", "io_sleep", "--tasks",
                       "4", "--duration", "0.1", "--results-dir", "results", env=env, cwd=tmp_path, timeout=180)
        assert done.returncode == 0, done.stderr
        (run,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir() and not p.is_symlink()]
        broker = json.loads((run / "run.json").read_text())["settings"]["broker"]
        assert broker["private"] is False and "/gil-lab-" in broker["url"] and "***" in broker["url"]
        vhosts = [v["name"] for v in requests.get(f"{users.api_url}/api/vhosts", timeout=10,
                                                  auth=("lab", users._password)).json()]
        assert vhosts == ["/"]  # the run's vhost went with it, and nothing was made elsewhere
        wrong = users.url.replace(users._password, "not-the-password")
        refused = harness("bench", "--broker", "rabbitmq", "--results-dir", "results2", cwd=tmp_path, timeout=60,
                          env={"AMQP_URL": wrong, "RABBITMQ_API_URL": users.api_url})
        assert refused.returncode == 2 and "refused user 'lab'" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and "not-the-password" not in refused.stderr
        assert not (tmp_path / "results2").exists()
