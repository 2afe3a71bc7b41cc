"""Several hosts, offline: control messages signed and checked (forged, altered, stale, replayed refused), clocks
brought onto the broker's from hand-made samples, and an agent's settings checked before it starts."""
from __future__ import annotations

import pytest

from harness.analysis.clock import ClockOffset, ClockSample, across_run, estimate, too_uncertain
from harness.errors import UsageError
from harness.lab.fleet import agent_command, check_name, read_secret
from workloads.control import ControlRefused, Verifier, sign

SECRET = b"0123456789abcdef0123456789abcdef"


def test_a_signed_message_is_read_once_and_every_forgery_is_refused_saying_why():
    verifier = Verifier(SECRET)
    envelope = sign(SECRET, "harness", {"command": "describe"}, now=1000.0)
    assert verifier.verify(envelope, now=1001.0) == {"command": "describe"}
    with pytest.raises(ControlRefused, match="replayed"):
        verifier.verify(envelope, now=1002.0)
    with pytest.raises(ControlRefused, match="bad signature"):
        Verifier(SECRET).verify(sign(b"another secret of thirty-two bytes", "x", {"command": "describe"}, 1000.0),
                                now=1000.0)
    altered = {**sign(SECRET, "harness", {"command": "describe"}, now=1000.0), "body": {"command": "clock"}}
    with pytest.raises(ControlRefused, match="bad signature"):
        Verifier(SECRET).verify(altered, now=1000.0)
    with pytest.raises(ControlRefused, match="stale message .* issued \\+120.0 s from now"):
        Verifier(SECRET).verify(sign(SECRET, "harness", {}, now=1000.0), now=1120.0)
    for junk in (None, [], {"body": {}}, "text"):
        with pytest.raises(ControlRefused, match="not a control envelope"):
            Verifier(SECRET).verify(junk)
    assert SECRET.decode() not in str(envelope)  # the secret never travels


def test_the_offset_comes_from_the_shortest_round_trip_and_a_run_is_marked_when_it_is_too_uncertain():
    # A host 2 s ahead of the broker: its readings are 2 s later than the broker's.
    samples = [ClockSample(sent=102.000, server=100.0105, received=102.030),  # a slow round trip
               ClockSample(sent=103.000, server=101.0010, received=103.002),  # the best: 2 ms
               ClockSample(sent=104.000, server=102.0040, received=104.010)]
    best = estimate(samples)
    assert best.offset_s == pytest.approx(-2.0, abs=1e-9) and best.uncertainty_s == pytest.approx(0.001)
    assert best.samples == 3
    with pytest.raises(ValueError, match="ran backwards"):
        estimate([ClockSample(5.0, 3.0, 4.0)])
    run = across_run(best, ClockOffset(-2.004, 0.001, 3))  # drifted 4 ms during the run
    assert run.offset_s == pytest.approx(-2.002) and run.uncertainty_s == pytest.approx(0.003)
    assert not too_uncertain(run, shortest_task_s=0.25) and too_uncertain(run, shortest_task_s=0.01)


def test_an_agents_settings_are_checked_before_it_starts(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("f" * 64)
    secret.chmod(0o600)
    argv, env = agent_command("host-a", "redis://:pw@10.0.0.1:6379/0", secret)
    assert argv[argv.index("-Q") + 1] == "lab.agent.host-a" and argv[argv.index("-P") + 1] == "solo"
    assert "pw" not in " ".join(argv) and "f" * 64 not in " ".join(argv) + " ".join(env.values())
    assert env["LAB_AGENT_SECRET_FILE"] == str(secret.resolve())
    with pytest.raises(UsageError, match="agent name 'Host A'"):
        check_name("Host A")
    secret.chmod(0o644)
    with pytest.raises(UsageError, match="readable by others .* chmod 600"):
        read_secret(secret)
    short = tmp_path / "short"
    short.write_text("abc")
    short.chmod(0o600)
    with pytest.raises(UsageError, match="holds 3 bytes; a fleet's secret needs at least 32"):
        read_secret(short)
    with pytest.raises(UsageError, match="No such file"):
        read_secret(tmp_path / "missing")


def test_gil_lab_agent_refuses_bad_input_in_one_line_before_it_starts(tmp_path, monkeypatch, capsys):
    from tests.offline.test_cli_input import in_process

    secret = tmp_path / "secret"
    secret.write_text("e" * 64)
    secret.chmod(0o600)
    monkeypatch.delenv("LAB_FLEET_BROKER", raising=False)
    for args, message in [
        (["--name", "a", "--secret-file", str(tmp_path / "nope")], "No such file or directory"),
        (["--name", "A_1", "--secret-file", str(secret), "--broker", "redis://127.0.0.1:1/0"], "agent name 'A_1'"),
        (["--name", "a", "--secret-file", str(secret)], "gil-lab agent needs the fleet's broker"),
        (["--name", "a", "--secret-file", str(secret), "--broker", "redis://:hunter2@127.0.0.1:1/0"],
         "--broker redis://:***@127.0.0.1:1/0"),
    ]:
        code, err = in_process(["agent", *args], tmp_path, monkeypatch, capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0], (args, err)
        assert "hunter2" not in err and "e" * 64 not in err
