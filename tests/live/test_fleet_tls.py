"""Several hosts through a TLS broker (rediss://): the agent, the harness and the measured worker all reach the
broker only through TLS, checked against the broker's certificate. The TLS end is a small front of Python's own ssl
before the lab's Redis (as a TLS-terminating proxy or a Redis built with TLS would be): real TLS, real Redis."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from lab_process import ROOT, harness

from harness.lab.fleet import AgentClient, agent_command, wait_answering
from harness.lab.processes import spawn, stop_tree
from harness.lab.services.redis_broker import RedisBroker

if shutil.which("openssl") is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI has openssl (.ci/run installs it): the TLS broker test must run there")
    pytestmark = pytest.mark.skip(reason="no openssl here to make the TLS broker's certificate")
SECRET = b"tls-fleet-secret-" + b"5" * 40


class TlsFront:
    """A TLS listener on 127.0.0.1 that forwards each connection to a plain TCP server, in a thread of its own."""

    def __init__(self, cert: Path, key: Path, target: tuple[str, int]) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.target = target
        self.loop = asyncio.new_event_loop()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError, OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=self.context))
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            server.close()

    def __enter__(self) -> TlsFront:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    async def _shutdown(self) -> None:
        """Every connection's pipes cancelled and awaited, then the loop stopped: nothing left to run on it."""
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        self.loop.stop()

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        self.thread.join(timeout=10)
        self.loop.close()


def test_a_run_on_a_host_through_a_tls_broker_and_a_task_from_a_folder_the_agent_does_not_allow_refused(tmp_path):
    cert, key = tmp_path / "broker.pem", tmp_path / "broker.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET)
    secret_file.chmod(0o600)
    work = tmp_path / "work"
    work.mkdir()
    with RedisBroker() as plain:
        assert plain.url is not None
        password = plain.url.split(":", 2)[2].split("@", 1)[0]
        port = int(plain.url.rsplit(":", 1)[1].split("/", 1)[0])
        with TlsFront(cert, key, ("127.0.0.1", port)) as front:
            url = (f"rediss://:{password}@127.0.0.1:{front.port}/0?ssl_cert_reqs=required&ssl_ca_certs={cert}")
            argv, env = agent_command("tls-a", url, secret_file)
            agent = spawn(argv, env=env, log_path=str(tmp_path / "agent.log"))
            try:
                assert wait_answering(AgentClient("tls-a", url, SECRET))["agent"] == "tls-a"
                out = harness("bench", "--hosts", "tls-a", "--workload", "io_sleep", "--concurrency", "2",
                              "--tasks", "8", "--duration", "0.1", cwd=work, timeout=120,
                              env={"LAB_FLEET_BROKER": url, "LAB_FLEET_SECRET_FILE": str(secret_file)})
                assert out.returncode == 0, out.stderr[-3000:]
                run = json.loads((work / "results" / "latest" / "run.json").read_text())
                assert run["summary"]["tasks_done"] == 8
                assert run["settings"]["broker"]["url"].startswith("rediss://:***@127.0.0.1:")
                assert password not in out.stdout + out.stderr + (work / "results" / "latest" / "run.json").read_text()
                # The agent was given no --allow-path: your task is not imported there, said in one line, exit 2.
                refused = harness("bench", "--hosts", "tls-a", "--task", "examples.tasks:wait_in_c", "--args",
                                  "[0.01]", "--task-path", str(ROOT), cwd=work, timeout=120,
                                  env={"LAB_FLEET_BROKER": url, "LAB_FLEET_SECRET_FILE": str(secret_file)})
                said = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
                assert refused.returncode == 2 and len(said) == 1, refused.stderr[-2000:]
                assert "host tls-a: TASK_PATH" in said[0] and "--allow-path: none" in said[0], said
                # An agent allowed the folder runs it.
                argv, env = agent_command("tls-b", url, secret_file, allow=[str(ROOT)])
                allowed = spawn(argv, env=env, log_path=str(tmp_path / "agent-b.log"))
                try:
                    wait_answering(AgentClient("tls-b", url, SECRET))
                    ran = harness("bench", "--hosts", "tls-b", "--task", "examples.tasks:wait_in_c", "--args",
                                  "[0.01]", "--tasks", "4", "--task-path", str(ROOT), cwd=work, timeout=120,
                                  env={"LAB_FLEET_BROKER": url, "LAB_FLEET_SECRET_FILE": str(secret_file)})
                    assert ran.returncode == 0, ran.stderr[-2000:]
                    assert "runs for real on tls-b" in ran.stdout + ran.stderr
                finally:
                    stop_tree(allowed)
                # Refused without the broker's certificate: TLS is checked, not only spoken.
                unchecked = url.split("&ssl_ca_certs=")[0]
                with pytest.raises(Exception, match="(?i)certificate"):
                    AgentClient("tls-a", unchecked, SECRET).ask("describe", timeout_s=3)
            finally:
                stop_tree(agent)
