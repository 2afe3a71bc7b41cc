"""The work a task does: plain functions, no Celery, no instrumentation.

Each is importable and callable on its own, so the harness can calibrate them in its own process
and tests can run them directly.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

# The environment variable holding the lab's echo service's password, sent as a client's first line (declared here,
# not in workloads.protocol, because this module imports nothing of the lab's: subinterpreters load it alone).
ECHO_PASSWORD = "LAB_ECHO_PASSWORD"

# The tutorials' wall-clock spin, kept faithful: it stops at a wall-clock deadline, so two of
# them sharing one core under the GIL both finish "on time" while each did half the work.
# That flaw is a lesson the lab shows, not a bug to fix.


def busy_wait(duration: float) -> None:
    end = time.time() + duration
    while time.time() < end:
        x = 123456789 ** 5  # noqa: F841


def cpu(iterations: int) -> int:
    """A fixed amount of pure-Python work: the same work however the GIL slices it.

    Every object the loop touches is the running thread's own. The modulus is made per call: as a
    constant (`% 1000003`) it would be one int of the code object, shared by every thread running
    this function, and on a free-threaded build each iteration's reference count change on it makes
    the threads fight over one cache line (see cpu_shared). Small ints (31) are immortal: no count.
    """
    modulus = int("1000003")
    x = 0
    for i in range(iterations):
        x = (x * 31 + i) % modulus
    return x


# One object that every thread running cpu_shared reads and writes: the lesson that removing the
# GIL does not remove contention. On a GIL build it costs nothing extra.
SHARED = {"hits": 0}


def cpu_shared(iterations: int) -> int:
    """cpu's loop, done through objects every thread shares: the code object's constant, and a dict.

    The same work as cpu; on a free-threaded build the threads contend for the constant's reference
    count and the dict's per-object lock, so each task burns more CPU for it (work inflation).
    """
    x = 0
    shared = SHARED
    for i in range(iterations):
        x = (x * 31 + i) % 1000003
        shared["hits"] = x
    return x


def mixed(burst_iterations: int, wait_s: float, rounds: int) -> int:
    """Rounds of a CPU burst (cpu's loop, `burst_iterations`) then a blocking wait of `wait_s`.

    The shape of most real tasks, an API call then parsing: the CPU part needs the GIL, the wait
    does not. The harness sizes the bursts so that a given share of the task's time alone is CPU.
    """
    x = 0
    for _ in range(rounds):
        if burst_iterations:
            x ^= cpu(burst_iterations)
        if wait_s > 0:
            time.sleep(wait_s)
    return x


def noop() -> None:
    """Nothing: what is left of a task's cost is Celery's and the instrumentation's."""


def io_sleep(duration: float) -> None:
    time.sleep(duration)


# Where the lab's PostgreSQL is (a postgresql:// URL with its password) and which driver reaches it: the worker's
# environment (harness.lab.worker). A connection per slot, kept as an application's pool keeps them: a task takes a
# free one and gives it back when it ends, so a process holds at most as many as it runs tasks at once (a prefork
# child one, a threads or green worker CONCURRENCY). Not a thread-local: a green pool runs every task in a new
# greenlet, whose "local" connection would be opened by each task and never reused. The worker opens them at its
# start (open_slots), before the reference task, so no measured task pays for a connection.
PG_URL = "LAB_PG_URL"
# DB_QUERY=scan's query: a sequential scan of the whole table (no index serves a LIKE with a leading %), which costs
# the server's CPU in proportion to its rows while the task only waits. The harness times it on the server
# (harness.lab.services.postgres) to size a task's scans.
SCAN_SQL = "SELECT count(*) FROM items WHERE name LIKE '%ab%'"
DRIVER = "LAB_DRIVER"
_free: dict[str, list] = {}  # per kind ("db", "http"): the connections or clients no task holds now
_patched: set[str] = set()


@contextmanager
def _slot(kind: str, opener: Callable[[], Any]) -> Iterator[Any]:
    """A free connection of `kind` (one opened by `opener` when none is free), given back when the task ends well;
    one a task failed with is closed, as a pool discards a broken connection."""
    free = _free.setdefault(kind, [])
    try:
        conn = free.pop()  # atomic on every build (a list's own lock on a free-threaded one)
    except IndexError:
        conn = opener()
    try:
        yield conn
    except BaseException:
        close = getattr(conn, "close", None)
        if close is not None:
            with suppress(Exception):
                close()
        raise
    free.append(conn)


def open_slots(kind: str, count: int) -> None:
    """Open `count` connections (db) or clients (http) of the run's driver now, at the worker's start, so that the
    measured tasks find them open. urllib keeps none: it opens a connection per request."""
    driver = json.loads(os.environ.get(DRIVER, "null"))
    if kind == "db" and PG_URL in os.environ:
        _free.setdefault(kind, []).extend(_connect(driver) for _ in range(count))
    elif kind == "http" and HTTP_URL in os.environ and driver != "urllib":
        _free.setdefault(kind, []).extend(_client(driver) for _ in range(count))


def _green_hub() -> str | None:
    """The green library whose hub runs this worker's tasks, if its sockets are patched: gevent or eventlet."""
    if "gevent.monkey" in sys.modules and sys.modules["gevent.monkey"].is_module_patched("socket"):
        return "gevent"
    if "eventlet.patcher" in sys.modules and sys.modules["eventlet.patcher"].is_monkey_patched("socket"):
        return "eventlet"
    return None


def _connect(driver: str):
    url = os.environ[PG_URL]
    if driver == "psycopg":
        import psycopg

        return psycopg.connect(url, autocommit=True)
    import psycopg2

    if driver == "psycopg2+psycogreen" and driver not in _patched:
        hub = _green_hub()
        if hub == "gevent":
            from psycogreen.gevent import patch_psycopg
        else:
            from psycogreen.eventlet import patch_psycopg
        patch_psycopg()  # psycopg2's wait callback now yields to the hub
        _patched.add(driver)
    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


def db(duration: float, key: int = 0, query: str = "wait", scans: int = 0) -> dict:
    """Wait on the database for `duration` (pg_sleep), then an indexed read: what a query that waits looks like.
    With query="scan", `scans` sequential scans of the seeded table instead: the server computes, the task waits."""
    driver = json.loads(os.environ.get(DRIVER, '"psycopg"'))
    with _slot("db", lambda: _connect(driver)) as conn, conn.cursor() as cur:
        if query == "scan":
            for _ in range(scans):
                cur.execute(SCAN_SQL)  # no parameters: its % are LIKE's, not placeholders
                cur.fetchone()
            return {}
        cur.execute("SELECT pg_sleep(%s)", (duration,))
        cur.execute("SELECT name FROM items WHERE score = %s LIMIT 1", (key % 100_000,))
        cur.fetchone()
    return {}


# Where the lab's HTTP service is (http://127.0.0.1:port) and the token it wants: the worker's environment.
HTTP_URL = "LAB_HTTP_URL"
HTTP_TOKEN = "LAB_HTTP_TOKEN"


def _client(driver: str):
    """A client per slot, kept as a task keeps one: requests' Session, httpx's Client; urllib keeps none."""
    if driver == "requests":
        import requests

        return requests.Session()
    if driver == "httpx":
        import httpx

        # The service is plain http:// on 127.0.0.1: no certificate is ever checked, and the CA bundle httpx loads for
        # each client by default cost 23 ms of CPU apiece, paid by each slot's first task (8 of them one after another
        # on a green pool's one thread, inside the measured batch: httpx on gevent fell to 5.85-6.3x of 8).
        return httpx.Client(timeout=120, verify=False)
    if driver == "pycurl":
        import pycurl

        return pycurl.Curl()  # a handle keeps its connection between requests
    return None


def _curl_get(curl: Any, url: str, headers: dict[str, str]) -> bytes:
    """A GET through a pycurl handle: libcurl does the whole request in C (the GIL released, the OS thread blocked)."""
    import io

    import pycurl

    body = io.BytesIO()
    curl.setopt(pycurl.URL, url)
    curl.setopt(pycurl.HTTPHEADER, [f"{k}: {v}" for k, v in headers.items()])
    curl.setopt(pycurl.WRITEDATA, body)
    curl.setopt(pycurl.TIMEOUT, 120)
    curl.perform()
    status = curl.getinfo(pycurl.RESPONSE_CODE)
    if status != 200:
        raise ConnectionError(f"the HTTP service answered {status}")
    return body.getvalue()


def http(duration: float, size: int = 1000) -> dict:
    """GET the lab's HTTP service, which answers after `duration` with `size` bytes: a call to a slow API."""
    driver = json.loads(os.environ.get(DRIVER, '"requests"'))
    url = f"{os.environ[HTTP_URL]}/wait?ms={round(duration * 1000)}&bytes={size}"
    headers = {"Authorization": f"Bearer {os.environ[HTTP_TOKEN]}"}
    if driver == "urllib":
        import urllib.request

        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=120) as response:
            body = response.read()
    else:
        with _slot("http", lambda: _client(driver)) as client:
            if driver == "pycurl":
                body = _curl_get(client, url, headers)
            else:
                response = client.get(url, headers=headers, timeout=120)
                response.raise_for_status()
                body = response.content
    if len(body) != size:
        raise ConnectionError(f"the HTTP service answered {len(body)} bytes, not {size}")
    return {}


def io_net(duration: float, host: str, port: int) -> dict:
    """Blocking request/reply round trips to the lab's echo server for about `duration` seconds.

    The server holds each reply for a fixed delay, like a remote service would, so the task
    spends its time waiting on a socket, not in the kernel's loopback path. Returns the number of
    round trips and their latency, which is what the GIL's convoy effect inflates.
    """
    rtts = []
    end = time.perf_counter() + duration
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(os.environ.get(ECHO_PASSWORD, "").encode() + b"\n")  # the service's first line: no reply
        reader = conn.makefile("rb")
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            conn.sendall(b"ping\n")
            if not reader.readline():
                raise ConnectionError("echo server closed the connection")
            rtts.append(time.perf_counter() - t0)
    return _rtt_fields(rtts)


def _rtt_fields(rtts: list[float]) -> dict:
    """What io_net's record adds: the round trips' count and latency."""
    rtts.sort()
    return {
        "ops": len(rtts),
        "rtt_mean_s": sum(rtts) / len(rtts) if rtts else None,
        "rtt_p95_s": rtts[int(0.95 * (len(rtts) - 1))] if rtts else None,
        "rtt_max_s": rtts[-1] if rtts else None,
    }


# hashlib drops the GIL while it hashes a buffer larger than 2 KiB, so this is C work that
# threads can run in parallel. The buffer is made once per process: allocating it is not the work.
GIL_RELEASE_CHUNK = 4 * 1024 * 1024
_buffer: bytes | None = None


def gil_release(rounds: int) -> str:
    global _buffer
    if _buffer is None:
        _buffer = bytes(GIL_RELEASE_CHUNK)
    digest = b""
    for _ in range(rounds):
        digest = hashlib.sha256(_buffer).digest()
    return digest.hex()


# --- coroutine twins: the same work written with async/await, run by a pool that awaits (the asyncio pool) ---
# Each does what its plain twin does, through asyncio: the waits are awaited, so other tasks on the loop run
# meanwhile; the CPU is the same loop, which holds the loop (and every other task on it) while it computes.
# asyncio is imported by each (not by this module, which a subinterpreter of the interpreters pool loads alone).

async def cpu_async(iterations: int) -> int:
    """cpu's loop in a coroutine that never awaits: the loop runs nothing else until it ends (its lag shows it)."""
    return cpu(iterations)


async def io_sleep_async(duration: float) -> None:
    import asyncio

    await asyncio.sleep(duration)


async def mixed_async(burst_iterations: int, wait_s: float, rounds: int) -> int:
    """mixed's rounds with the waits awaited: a burst holds the loop, a wait lets the others run."""
    import asyncio

    x = 0
    for _ in range(rounds):
        if burst_iterations:
            x ^= cpu(burst_iterations)
        if wait_s > 0:
            await asyncio.sleep(wait_s)
    return x


async def _within(awaitable: Any, seconds: float) -> Any:
    """`awaitable` with a time limit, awaited in this task: asyncio.timeout where it exists (3.11+). wait_for runs its
    coroutine as a task of its own before 3.12, whose steps the asyncio pool would not count as this task's CPU."""
    import asyncio

    if hasattr(asyncio, "timeout"):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, timeout=seconds)


async def io_net_async(duration: float, host: str, port: int) -> dict:
    """io_net's round trips to the echo service through asyncio's streams."""
    import asyncio

    rtts = []
    end = time.perf_counter() + duration
    reader, writer = await _within(asyncio.open_connection(host, port), 30)
    try:
        writer.write(os.environ.get(ECHO_PASSWORD, "").encode() + b"\n")
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            writer.write(b"ping\n")
            await writer.drain()
            if not await _within(reader.readline(), 30):
                raise ConnectionError("echo server closed the connection")
            rtts.append(time.perf_counter() - t0)
    finally:
        writer.close()
        with suppress(Exception):
            await writer.wait_closed()
    return _rtt_fields(rtts)


# --- the db and http workloads through async drivers (DRIVER=psycopg-async, asyncpg, httpx-async, aiohttp) ---
# A connection or client per slot as for the sync drivers (`_free`), opened on the asyncio pool's loop at the
# worker's start (open_slots_async): a connection belongs to the loop it was opened on.

@asynccontextmanager
async def _aslot(kind: str, opener: Callable[[], Any]) -> AsyncIterator[Any]:
    """_slot for async connections: a free one (or one opened now, awaited), given back when the task ends well."""
    free = _free.setdefault(kind, [])
    conn = free.pop() if free else await opener()
    try:
        yield conn
    except BaseException:
        await _aclose(conn)
        raise
    free.append(conn)


async def _aclose(conn: Any) -> None:
    """Close an async connection or client, whichever close it has (aclose, or a close that may be awaited)."""
    close = getattr(conn, "aclose", None) or getattr(conn, "close", None)
    if close is not None:
        with suppress(Exception):
            closing = close()
            if hasattr(closing, "__await__"):
                await closing


async def open_slots_async(kind: str, count: int) -> None:
    """Open `count` async connections (db) or clients (http) of the run's driver, on the running loop."""
    driver = json.loads(os.environ.get(DRIVER, "null"))
    if kind == "db" and PG_URL in os.environ:
        _free.setdefault(kind, []).extend([await _aconnect(driver) for _ in range(count)])
    elif kind == "http" and HTTP_URL in os.environ:
        _free.setdefault(kind, []).extend([await _aclient(driver) for _ in range(count)])


async def close_slots_async(kind: str) -> None:
    """Close the async connections or clients no task holds, on the loop they belong to (the pool's, as it stops)."""
    while _free.get(kind):
        await _aclose(_free[kind].pop())


def _asyncpg_args(url: str) -> tuple[str, dict[str, str]]:
    """asyncpg takes no libpq `options` in its URL: the lab's session options (-c name=value) as its server_settings."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    settings = {}
    words = shlex.split(query.pop("options", ""))  # libpq's options: -c name=value, or -cname=value
    for i, word in enumerate(words):
        setting = words[i + 1] if word == "-c" and i + 1 < len(words) else word[2:] if word.startswith("-c") else ""
        name, _, value = setting.partition("=")
        if name:
            settings[name] = value
    return urlunsplit(parts._replace(query=urlencode(query))), settings


async def _aconnect(driver: str) -> Any:
    url = os.environ[PG_URL]
    if driver == "asyncpg":
        import asyncpg

        dsn, settings = _asyncpg_args(url)
        return await asyncpg.connect(dsn, server_settings=settings)
    import psycopg

    return await psycopg.AsyncConnection.connect(url, autocommit=True)


async def _aclient(driver: str) -> Any:
    if driver == "aiohttp":
        import aiohttp

        # A connector per slot, like a Client per slot elsewhere: each keeps its connection to the service.
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120),
                                     connector=aiohttp.TCPConnector(limit=1))
    import httpx

    return httpx.AsyncClient(timeout=120, verify=False)  # plain http on 127.0.0.1: no CA bundle to load (see _client)


async def db_async(duration: float, key: int = 0, query: str = "wait", scans: int = 0) -> dict:
    """db's query through an async driver, awaited: the loop runs other tasks while the server works."""
    driver = json.loads(os.environ.get(DRIVER, '"psycopg-async"'))
    async with _aslot("db", lambda: _aconnect(driver)) as conn:
        if driver == "asyncpg":
            if query == "scan":
                for _ in range(scans):
                    await conn.fetchval(SCAN_SQL)
                return {}
            await conn.execute("SELECT pg_sleep($1)", float(duration))
            await conn.fetchval("SELECT name FROM items WHERE score = $1 LIMIT 1", key % 100_000)
            return {}
        async with conn.cursor() as cur:
            if query == "scan":
                for _ in range(scans):
                    await cur.execute(SCAN_SQL)
                    await cur.fetchone()
                return {}
            await cur.execute("SELECT pg_sleep(%s)", (duration,))
            await cur.execute("SELECT name FROM items WHERE score = %s LIMIT 1", (key % 100_000,))
            await cur.fetchone()
    return {}


async def http_async(duration: float, size: int = 1000) -> dict:
    """http's GET through an async client, awaited."""
    driver = json.loads(os.environ.get(DRIVER, '"httpx-async"'))
    url = f"{os.environ[HTTP_URL]}/wait?ms={round(duration * 1000)}&bytes={size}"
    headers = {"Authorization": f"Bearer {os.environ[HTTP_TOKEN]}"}
    async with _aslot("http", lambda: _aclient(driver)) as client:
        if driver == "aiohttp":
            async with client.get(url, headers=headers) as response:
                response.raise_for_status()
                body = await response.read()
        else:
            response = await client.get(url, headers=headers)
            response.raise_for_status()
            body = response.content
    if len(body) != size:
        raise ConnectionError(f"the HTTP service answered {len(body)} bytes, not {size}")
    return {}
