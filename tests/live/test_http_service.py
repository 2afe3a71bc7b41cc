"""The lab's HTTP service (issue 24's second step): a process of its own on 127.0.0.1, a token on every request,
a set latency and size, waits that overlap across connections, and nothing left when it stops or the harness
that started it is killed."""
from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path

import psutil
from lab_process import killed_outright

from harness.lab.services.http_service import HttpService


def test_it_answers_with_the_token_only_at_the_set_size_and_overlaps_waits():
    with HttpService() as web:
        status, body = web.get("/wait?ms=20&bytes=1500")
        assert status == 200 and body == b"x" * 1500
        assert web.get("/wait?ms=20", token="not-the-token")[0] == 401
        server = psutil.Process(web.pid)
        assert {c.laddr.ip for c in server.net_connections(kind="inet") if c.status == "LISTEN"} == {"127.0.0.1"}
        assert web.token not in " ".join(server.cmdline())  # in its private config file, not on its command line

        def client() -> None:  # one keep-alive connection, as a task's slot keeps one
            conn = http.client.HTTPConnection(web.host, web.port, timeout=30)
            for _ in range(3):
                conn.request("GET", "/wait?ms=300&bytes=100", headers={"Authorization": f"Bearer {web.token}"})
                assert conn.getresponse().read() == b"x" * 100
            conn.close()

        threads = [threading.Thread(target=client) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        stats = json.loads(web.get("/stats")[1])
        # 20 connections each waiting 300 ms three times: the service held many at once (a thread per connection).
        assert stats["served"] == 61 and stats["max_in_flight"] >= 10
        folder = web._server.folder
    assert not folder.exists() and not psutil.pid_exists(server.pid)  # stopped and reaped, its folder removed


def test_a_harness_killed_outright_leaves_no_http_service():
    code = ("import time; from harness.lab.services.http_service import HttpService; "
            "web = HttpService().__enter__(); print(web.pid, web._server.folder, flush=True); time.sleep(120)")

    def server_and_folder(line: str) -> tuple[bool, bool]:
        pid, folder = line.split()
        return psutil.pid_exists(int(pid)), Path(folder).exists()

    assert killed_outright(code, lambda line: all(server_and_folder(line)), lambda line: any(server_and_folder(line)))
