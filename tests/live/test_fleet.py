"""Several hosts, first part: the lab's agents as real Celery workers on their own control queues of a real broker.
Each answers only messages signed with the fleet's secret; one runs with its clock 2 s ahead (Debian's libfaketime),
which the lab measures against the broker's clock and corrects to within a few milliseconds."""
from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from harness.lab.fleet import AgentClient, AgentError, agent_command, own_clock_offset, wait_answering
from harness.lab.processes import spawn, stop_tree
from workloads.control import sign

FAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))), None)
if FAKETIME is None and os.environ.get("CI"):
    raise RuntimeError("CI has no libfaketime: .ci/run should have installed it")
SECRET = b"fleet-secret-" + b"9" * 40


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(SECRET)
    path.chmod(0o600)
    return path


def _start(name: str, redis_url: str, secret_file: Path, log: Path, skew: str | None = None):
    argv, env = agent_command(name, redis_url, secret_file)
    if skew is not None:
        env.update(LD_PRELOAD=str(FAKETIME), FAKETIME=skew, FAKETIME_DONT_RESET="1")
    return spawn(argv, env=env, log_path=str(log))


def test_an_agent_describes_its_host_and_refuses_forged_and_replayed_messages(redis_url, secret_file, tmp_path):
    agent = _start("host-a", redis_url, secret_file, tmp_path / "agent.log")
    try:
        client = AgentClient("host-a", redis_url, SECRET)
        host = wait_answering(client)
        assert host["agent"] == "host-a" and host["cores"] >= 1 and host["memory_total"] > 0
        assert host["python"].count(".") == 2 and len(host["load"]) == 3 and host["steal_cores"] >= 0
        # Anyone with the broker's password can queue a message: signed with another secret, it is refused.
        forger = AgentClient("host-a", redis_url, b"not-the-fleet-secret-" + b"0" * 20)
        with pytest.raises(AgentError, match="did not answer 'describe'"):
            forger.ask("describe", timeout_s=2)
        # A message replayed from the broker: the first copy is answered, the second refused.
        envelope = sign(SECRET, "harness", {"command": "describe", "reply_to": "lab:agent:host-a:reply:replayed"})
        client.send(envelope)
        client.send(envelope)
        deadline = time.monotonic() + 10
        while len(client.refusals()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        reasons = [r["why"] for r in client.refusals()]
        assert any("bad signature" in r for r in reasons) and any("replayed" in r for r in reasons), reasons
        assert "refused a control message" in (tmp_path / "agent.log").read_text()
        assert SECRET.decode() not in (tmp_path / "agent.log").read_text()
    finally:
        stop_tree(agent)
    assert not psutil.pid_exists(agent.pid) or psutil.Process(agent.pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.skipif(FAKETIME is None, reason="no libfaketime here (apt-get install libfaketime): the skew test is "
                                             "skipped")
def test_a_clock_2_s_ahead_is_measured_against_the_brokers_and_corrected_within_milliseconds(
        redis_url, secret_file, tmp_path):
    plain = _start("plain", redis_url, secret_file, tmp_path / "plain.log")
    ahead = _start("ahead", redis_url, secret_file, tmp_path / "ahead.log", skew="+2s")
    try:
        clients = {name: AgentClient(name, redis_url, SECRET) for name in ("plain", "ahead")}
        for client in clients.values():
            wait_answering(client)
        assert clients["ahead"].describe()["time"] - time.time() == pytest.approx(2.0, abs=0.5)  # it is skewed
        harness = own_clock_offset(redis_url)
        offsets = {name: client.clock_offset(samples=16) for name, client in clients.items()}
        # Every clock onto the broker's: the plain agent and the harness agree with it within milliseconds, and the
        # agent 2 s ahead is measured 2 s ahead, so its timestamps corrected land within milliseconds of the others.
        for offset in (harness, *offsets.values()):
            assert offset.uncertainty_s < 0.005
        assert abs(offsets["plain"].offset_s - harness.offset_s) < 0.005
        assert offsets["ahead"].offset_s - harness.offset_s == pytest.approx(-2.0, abs=0.005)
    finally:
        for proc in (plain, ahead):
            stop_tree(proc)
    assert not any(p.info["environ"] and p.info["environ"].get("LAB_AGENT_NAME") in ("plain", "ahead")
                   for p in psutil.process_iter(["environ"]) if p.pid != os.getpid())
