"""The database drivers a db run can use (DRIVER=): every rule about a driver lives in its record here.

Whether a pool overlaps a task's waits depends on the driver as much as on the pool: a green pool (gevent,
eventlet) overlaps a query's wait only where the driver yields to its hub. psycopg2 is C code on libpq and blocks
the whole worker unless psycogreen installs a wait callback that yields; psycopg 3 waits through Python functions
that gevent's patched sockets serve. The lab measures which, and its summary says so (harness.analysis.summary);
nothing here is assumed about the result.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Driver:
    name: str
    kind: str                 # what it reaches: "db" (the lab's PostgreSQL) or "http" (the lab's HTTP service)
    module: str               # what must import on the worker's interpreter
    summary: str
    patch: str | None = None  # a package that patches the driver for a green pool's hub (psycogreen)
    package: str = ""         # what to pip install for it
    # An async client (its calls are awaited): the workload's coroutine twin runs it on a pool that awaits (asyncio),
    # a connection per slot opened on the pool's loop. Another pool would need a loop per task, and a connection
    # belongs to its loop: refused there.
    coroutine: bool = False


DRIVERS: dict[str, Driver] = {d.name: d for d in (
    Driver("psycopg", "db", "psycopg", "psycopg 3: waits in its own Python functions on the socket (gevent's patched "
           "selectors see them; measured here, eventlet's do not)", package="psycopg[binary]"),
    Driver("psycopg2", "db", "psycopg2", "psycopg2: C code on libpq, blocking the OS thread while it waits (eventlet's "
           "monkey_patch gives it a green wait callback of its own; gevent does not)", package="psycopg2-binary"),
    Driver("psycopg2+psycogreen", "db", "psycopg2", "psycopg2 with psycogreen's wait callback, which yields to the hub",
           patch="psycogreen", package="psycopg2-binary psycogreen"),
    Driver("requests", "http", "requests", "requests: a Session per slot, over urllib3's (patchable) sockets",
           package="requests"),
    Driver("httpx", "http", "httpx", "httpx: a Client per slot, its own sync transport over sockets", package="httpx"),
    Driver("urllib", "http", "urllib.request", "the standard library's urllib: a new connection per request"),
    Driver("pycurl", "http", "pycurl", "pycurl: libcurl in C, a handle per slot, blocking the OS thread while it waits",
           package="pycurl"),
    # Async clients, for the asyncio pool (POOL=asyncio): awaited on its loop.
    Driver("psycopg-async", "db", "psycopg", "psycopg 3's AsyncConnection, awaited on the asyncio pool's loop",
           package="psycopg[binary]", coroutine=True),
    Driver("asyncpg", "db", "asyncpg", "asyncpg: its own binary protocol in Cython, awaited on the asyncio pool's loop",
           package="asyncpg", coroutine=True),
    Driver("httpx-async", "http", "httpx", "httpx's AsyncClient, awaited on the asyncio pool's loop", package="httpx",
           coroutine=True),
    Driver("aiohttp", "http", "aiohttp", "aiohttp's ClientSession, awaited on the asyncio pool's loop",
           package="aiohttp", coroutine=True),
)}
DRIVER_NAMES = tuple(DRIVERS)
# Each kind's driver when DRIVER is not given.
DEFAULT_DRIVERS = {"db": "psycopg", "http": "requests"}


def driver(name: str) -> Driver:
    return DRIVERS[name]


def fits(name: str, workload_kind: str | None, green_pool: bool, awaits: bool = False) -> bool:
    """Whether a run can pair this driver with a workload whose driver kind is `workload_kind` (db, http) on a pool
    (green or not, awaiting or not): a client of the workload's kind, a green patch only on a green pool, an async
    client only on a pool that awaits. What the settings refuse (harness.model.spec), and what a sweep's driver axis
    leaves out (harness.model.experiment)."""
    rules = DRIVERS[name]
    return (rules.kind == workload_kind and (rules.patch is None or green_pool)
            and (not rules.coroutine or awaits))
