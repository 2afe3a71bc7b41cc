"""The harness's own Celery app: sends tasks by name and control commands, JSON only, never retrying."""
from __future__ import annotations

from celery import Celery


def client_app(broker_url: str, name: str = "gil_lab_client", connect_timeout_s: float = 5) -> Celery:
    # The harness never imports workloads.app: that would set the harness's own switch interval
    # and load the worker's signal handlers. Tasks are sent by name.
    app = Celery(name, broker=broker_url)
    # Every wait on the broker is bounded: a frozen broker (SIGSTOP, a hung host) accepts the connection
    # and then answers nothing, and without a socket timeout a control command would wait forever.
    # The names differ by transport: redis-py's socket timeouts, py-amqp's read and write timeouts.
    options = ({"read_timeout": 5.0, "write_timeout": 5.0} if broker_url.startswith("amqp") else
               {"socket_timeout": 5.0, "socket_connect_timeout": connect_timeout_s})
    app.conf.update(task_serializer="json", accept_content=["json"], broker_connection_retry=False,
                    broker_connection_timeout=connect_timeout_s, broker_transport_options=options)
    return app


def warm(app: Celery, queue: str) -> None:
    """Pay the first publish's one-time costs before any task's submit time is taken: the connection, Celery's
    message machinery, the router, the queue's declaration. Sends nothing. Measured: a fresh process's first
    send_task took 100 ms (once 0.5 s in a slow second, counted in an I/O run's makespan), 5 ms after this."""
    import uuid

    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=1)
        app.amqp.create_task_message(str(uuid.uuid4()), "lab.warm", [], {})
        app.amqp.router.route({"queue": queue}, "lab.warm", [], {})
        producer.maybe_declare(app.amqp.queues[queue])
        app.AsyncResult(str(uuid.uuid4()))
