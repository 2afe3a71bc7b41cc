"""The depth of a run's queue on the broker over time, sampled from the harness during an open-loop load: how many
tasks wait there, not yet handed to the worker (those it reserved are not in the list). A growing queue is a pool
that does not keep up with the arrivals (harness.analysis.load)."""
from __future__ import annotations

import time

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
        self._client = redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2)

    def sample(self) -> None:
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for queue in self.queues:
                    pipe.llen(queue)
                depth = sum(pipe.execute())
        except (redis.RedisError, OSError):  # a broker gone: the run fails on it elsewhere, in one line
            return
        self.rows.append((time.time(), int(depth)))

    def close(self) -> None:
        self._client.close()

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=COLUMNS)
