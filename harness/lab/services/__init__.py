"""The services the lab starts for a run, each in one module and of one shape (harness.lab.services.base):

  redis_broker  the broker: the Redis in REDIS_URL, or a private Redis-protocol server started for the run
  echo          a slow echo service: the far end of the io_net workload's round trips and of examples/ tasks

Each is a context manager that finds what it needs or refuses in one line (a ServiceError that says how to get
it), starts on 127.0.0.1 with a fresh password, is checked ready within a bounded wait, and is stopped (with
its private folder removed) on exit, on error, on Ctrl-C, and, for a server process, by the watchdog
(harness.lab.processes) when the harness itself dies. A new service (PostgreSQL, RabbitMQ) is one more module.
"""
from harness.lab.services.base import ServerProcess, Service, redact
from harness.lab.services.echo import EchoService
from harness.lab.services.redis_broker import RedisBroker

__all__ = ["EchoService", "RedisBroker", "ServerProcess", "Service", "redact"]
