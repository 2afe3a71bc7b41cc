"""What the lab starts is reachable from this machine only, needs a password, and runs JSON only."""
from __future__ import annotations

import re
import time
from pathlib import Path

import psutil
import pytest
import redis
from kombu import Connection, Exchange, Producer, Queue
from lab_process import is_broker

from harness.lab.services.redis_broker import RedisBroker
from harness.lab.worker import Worker
from harness.model.spec import build_spec
from harness.pipeline import report
from workloads.protocol import queue_name, records_key

ROOT = Path(__file__).resolve().parents[2]


def test_private_redis_listens_on_loopback_only_and_needs_its_password():
    with RedisBroker(url=None) as broker:
        port = int(broker.url.rsplit(":", 1)[1].split("/")[0])
        server = next(p for p in psutil.Process().children() if is_broker(p.name()))
        listening = [c.laddr for c in server.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port).ping()
        assert redis.Redis.from_url(broker.url).ping()
        # Its password is in a file only this user reads, not in /proc/<pid>/cmdline for every user.
        password = broker.url.split(":")[2].split("@")[0]
        assert password not in " ".join(server.cmdline())
        config = next(Path(a) for a in server.cmdline() if a.endswith(".conf")) if any(
            a.endswith(".conf") for a in server.cmdline()) else None
        if config is not None:
            assert config.stat().st_mode & 0o077 == 0


def test_worker_refuses_pickle_and_runs_json(redis_url, tmp_path):
    spec = build_spec(pool="threads", workload="io_sleep", concurrency=1, tasks=1, duration=0.01)
    run_id = "security-pickle"
    queue = queue_name(run_id)
    client = redis.Redis.from_url(redis_url)
    with Worker(spec, redis_url, run_id, tmp_path / "worker.log") as worker:
        with Connection(redis_url) as conn:
            producer = Producer(conn)
            target = Queue(queue, Exchange(queue), routing_key=queue)
            for serializer in ("pickle", "json"):
                producer.publish({"args": [0.01], "kwargs": {}}, serializer=serializer, exchange=target.exchange,
                                 routing_key=queue, declare=[target],
                                 headers={"task": "io_sleep", "id": f"{serializer}-task", "lang": "py"})
        record = client.blpop([records_key(run_id)], timeout=15)
        assert record is not None and b"json-task" in record[1]  # the JSON task ran
        time.sleep(0.5)
        assert client.llen(records_key(run_id)) == 0  # and the pickle one did not
        assert worker.alive()
    log = (tmp_path / "worker.log").read_text()
    assert re.search(r"disallowed|ContentDisallowed|Refusing to deserialize", log, re.I), log[-2000:]
    client.delete(queue, records_key(run_id))


def test_compose_publishes_redis_on_loopback_only():
    text = (ROOT / "docker-compose.yml").read_text()
    ports = re.findall(r'^\s*-\s*"([^"]+)"', text, re.M)
    assert ports and all(p.startswith("127.0.0.1:") for p in ports)


def test_a_password_in_the_broker_url_appears_nowhere(bench, redis_url):
    password = redis_url.split(":")[2].split("@")[0]
    assert len(password) >= 16
    run = bench(pool="threads", workload="io_sleep", concurrency=2, tasks=2, duration=0.05)
    report(run.path)
    for path in run.path.iterdir():
        assert password.encode() not in path.read_bytes(), path.name
