"""Tasks shaped like real ones, to measure under every pool and to try the advisor on.

    make advise TASK=examples.tasks:parse_logs       # CPU: parsing text in pure Python
    make advise TASK=examples.tasks:call_service     # I/O: blocking calls to a slow service
    make advise TASK=examples.tasks:fetch_and_parse  # both: a call, then parsing its answer
    make advise TASK=examples.tasks:wait_in_c        # I/O that a green pool cannot overlap: a wait inside C

The service is the lab's echo server, which holds every reply for 5 ms like a remote API would;
the lab gives its address to your task's worker as LAB_ECHO_ADDR (host:port) and its password as
LAB_ECHO_PASSWORD, which a client sends as its first line. `resize` shows that
a Celery task object works too: its body is what the lab runs.
"""
from __future__ import annotations

import ctypes
import os
import re
import socket
import time

from celery import Celery

LINE = re.compile(r"(?P<ip>\d+\.\d+\.\d+\.\d+) - - \[(?P<when>[^\]]+)\] \"(?P<method>\w+) (?P<path>\S+) "
                  r"HTTP/1\.1\" (?P<status>\d{3}) (?P<size>\d+)")


def _log_lines(n: int) -> list[str]:
    return [f"10.0.{i % 256}.{i % 7} - - [22/Nov/2026:10:{i % 60:02d}:00 +0000] \"GET /api/items/{i % 97}?page={i % 5} "
            f"HTTP/1.1\" {200 if i % 11 else 404} {1000 + i % 3000}" for i in range(n)]


def parse_logs(lines: int = 30000) -> dict:
    """Parse `lines` access-log lines and count statuses and bytes per path: pure-Python CPU work."""
    per_path: dict[str, list[int]] = {}
    statuses: dict[str, int] = {}
    for line in _log_lines(lines):
        m = LINE.match(line)
        if m is None:
            continue
        path = m["path"].split("?", 1)[0]
        entry = per_path.setdefault(path, [0, 0])
        entry[0] += 1
        entry[1] += int(m["size"])
        statuses[m["status"]] = statuses.get(m["status"], 0) + 1
    return {"paths": len(per_path), "statuses": statuses}


def _service() -> tuple[tuple[str, int], str]:
    """The lab's echo service: its address and its password."""
    address, password = os.environ.get("LAB_ECHO_ADDR"), os.environ.get("LAB_ECHO_PASSWORD")
    if not address or not password:
        raise RuntimeError("LAB_ECHO_ADDR or LAB_ECHO_PASSWORD is not set: this task calls the lab's echo service, "
                           "which the lab starts")
    host, port = address.rsplit(":", 1)
    return (host, int(port)), password


def call_service(calls: int = 20) -> int:
    """`calls` blocking request/reply round trips to a service that answers in about 5 ms: I/O work."""
    answered = 0
    address, password = _service()
    with socket.create_connection(address, timeout=30) as conn:
        conn.sendall(password.encode() + b"\n")  # the service's first line: its password
        reader = conn.makefile("rb")
        for _ in range(calls):
            conn.sendall(b"GET /item\n")
            if not reader.readline():
                raise ConnectionError("the echo service closed the connection (a wrong LAB_ECHO_PASSWORD?)")
            answered += 1
    return answered


def fetch_and_parse(calls: int = 20, lines: int = 30000) -> dict:
    """A call to the service, then parsing: half waiting, half CPU (with the default arguments)."""
    call_service(calls)
    return parse_logs(lines)


_LIBC = ctypes.CDLL(None)  # the process's own symbols: libc's among them, found without a child process


def wait_in_c(seconds: float = 0.2) -> None:
    """A wait inside a C library, as a C database or HTTP driver waits (psycopg2 without psycogreen, pycurl): it
    releases the GIL, so threads overlap it, but gevent's and eventlet's hub never hears of it, so a green pool
    runs such tasks one at a time. Here the C call is libc's usleep, through ctypes.

    The wait is the same in every cell: a signal cuts usleep short (EINTR), so it is resumed until its deadline, as
    time.sleep does (PEP 475). Once it was not, and a batch on gevent did less waiting than its tasks alone: the
    SIGCHLD of another task's find_library child (it runs ldconfig) ended usleeps early, a 1.5x "speedup" of a pool
    that ran the waits one at a time. libc is found once, without a child: in the process's own symbols."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        _LIBC.usleep(int(left * 1_000_000))


app = Celery("examples", set_as_current=False)


@app.task
def resize(width: int = 300, height: int = 300) -> int:
    """A Celery task: a nearest-neighbour 2x upscale of a width x height greyscale image, in pure Python."""
    image = [[(x * y) % 256 for x in range(width)] for y in range(height)]
    scaled = [[image[y // 2][x // 2] for x in range(2 * width)] for y in range(2 * height)]
    return sum(map(sum, scaled)) % 65521
