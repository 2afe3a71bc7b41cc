"""The task brokers a run can use (BROKER=), one record each: what carries Celery's messages between the harness's
client and the workers. The lab's own records travel on its private Redis whichever broker carries the tasks
(harness.lab.run), so that a record's path is the same on both and only the task's path changes."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Broker:
    name: str
    summary: str
    scheme: str              # the URL scheme Celery's worker is given
    delivery: str            # how a message reaches a worker, in a phrase (for run.json and the README)
    redis_transport: bool    # kombu's Redis transport: polling and connection-pool options apply, queues are lists

    @property
    def pushes(self) -> bool:
        """The broker pushes messages to consumers (AMQP's basic.consume): no polling wait between tasks."""
        return not self.redis_transport


BROKERS = {
    "redis": Broker("redis", "a private Redis (or REDIS_URL)", "redis",
                    "the worker polls its queue with BRPOP; unacknowledged messages return after a visibility timeout",
                    redis_transport=True),
    "rabbitmq": Broker("rabbitmq", "a private RabbitMQ node", "amqp",
                       "AMQP 0-9-1: the node pushes messages to the consumer under basic.qos (the prefetch)",
                       redis_transport=False),
}
BROKER_NAMES = tuple(BROKERS)


def broker(name: str) -> Broker:
    return BROKERS[name]
