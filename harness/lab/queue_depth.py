"""The depth of a run's queue on the broker (Redis or RabbitMQ) over time, sampled from the harness during an
open-loop load: how many tasks wait there, not yet handed to the worker (those it reserved are not in the list). A
growing queue is a pool that does not keep up with the arrivals (harness.analysis.load)."""
from __future__ import annotations

import time
from typing import Any

import pandas as pd
import redis

from harness.lab.periodic import PeriodicSampler

COLUMNS = ["t", "depth"]


class QueueDepthSampler(PeriodicSampler):
    """LLEN of the run's queues (kombu's Redis transport keeps each as a list of that name) every 1/hz s, summed: the
    run's own and, with ROUTES, each routed group's."""

    thread_name = "lab-queue-depth"

    def __init__(self, broker_url: str, queues: list[str], hz: float = 10.0) -> None:
        super().__init__(0, hz)
        self.queues = list(dict.fromkeys(queues))
        self._amqp = broker_url.startswith("amqp")
        self._url = broker_url
        self._client = (None if self._amqp else
                        redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2))
        self._connection: Any = None  # AMQP (an amqp.Connection): opened by the first sample, in the sampler's thread

    def sample(self) -> None:
        try:
            depth = self._amqp_depth() if self._amqp else self._redis_depth()
        except Exception:  # noqa: BLE001 - a broker gone or stalled: the run fails on it elsewhere, in one line
            self._connection = None
            return
        self.rows.append((time.time(), int(depth)))

    def _redis_depth(self) -> int:
        assert self._client is not None
        with self._client.pipeline(transaction=False) as pipe:
            for queue in self.queues:
                pipe.llen(queue)
            return int(sum(pipe.execute()))

    def _amqp_depth(self) -> int:
        """RabbitMQ: the messages ready in each queue (a passive declare; those delivered to the worker and not
        yet acknowledged are not counted, as a Redis list no longer holds what the worker took)."""
        import amqp
        from kombu.utils.url import url_to_parts

        if self._connection is None:
            _, host, port, user, password, _, _ = url_to_parts(self._url)
            self._connection = amqp.Connection(host=f"{host}:{port}", userid=user, password=password,
                                               connect_timeout=2, read_timeout=2, write_timeout=2)
            self._connection.connect()
        total = 0
        for queue in self.queues:
            channel = self._connection.channel()
            try:
                total += channel.queue_declare(queue, passive=True).message_count
            except amqp.exceptions.NotFound:  # not declared yet (the worker declares it as it starts)
                continue
            finally:
                if channel.is_open:
                    channel.close()
        return total

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # noqa: BLE001 - closing a connection to a broker that is gone
                pass

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=COLUMNS)
