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
    (tmp_path / "nope-dir").write_text("")
    code, err = in_process(["agent", "--name", "a", "--secret-file", str(secret), "--allow-path",
                            str(tmp_path / "nope-dir"), "--broker", "redis://127.0.0.1:1/0"], tmp_path, monkeypatch,
                           capsys)
    assert code == 2 and err.strip() == f"error: --allow-path {tmp_path / 'nope-dir'}: not a directory", err


def test_hosts_make_the_runs_workers_and_what_cannot_run_there_is_refused_in_one_line():
    from harness.errors import SpecError
    from harness.model.spec import build_spec

    spec = build_spec(hosts="a, b", workers_per_host=2, pool="prefork", concurrency=2)
    assert (spec.hosts, spec.workers, spec.tasks) == ("a,b", 4, 4 * 2 * 4)
    assert [spec.host_of(i) for i in (1, 2, 3, 4)] == ["a", "a", "b", "b"]
    assert build_spec(hosts="a").workers == 1 and build_spec().host_of(1) is None
    for raw, message in [
        ({"hosts": "a,a"}, "names a host twice"),
        ({"hosts": "a,,b"}, "give agents' names separated by commas"),
        ({"hosts": "Host"}, "agent name 'Host'"),
        ({"hosts": ",".join(f"h{i}" for i in range(17))}, "at most 16"),
        ({"hosts": "a,b", "workers": 3}, r"WORKERS counts every host's workers \(2 here\)"),
        ({"workers_per_host": 2}, "WORKERS_PER_HOST applies to a run on several hosts"),
        ({"hosts": "a", "workload": "io_net"}, "listens on the harness's 127.0.0.1 only"),
        ({"hosts": "a", "workload": "db"}, "listens on the harness's 127.0.0.1 only"),
        ({"hosts": "a", "broker": "rabbitmq"}, "BROKER=rabbitmq does not run on HOSTS yet"),
        ({"hosts": "a", "gil_probe": True}, "leave GIL_PROBE out"),
    ]:
        with pytest.raises(SpecError, match=message):
            build_spec(**raw)
    assert build_spec(hosts="a,b", workers=2).workers == 2  # WORKERS that agrees is accepted


def test_a_fleets_cores_count_each_machine_once():
    from harness.model.hosts import fleet_cores

    # Two namespaces of one machine (one boot id) share its 2 cores; another machine adds its own.
    assert fleet_cores({"a": {"boot_id": "x", "cores": 2, "cpu_count_physical": 1},
                        "b": {"boot_id": "x", "cores": 2, "cpu_count_physical": 1}}) == (2, 1)
    assert fleet_cores({"a": {"boot_id": "x", "cores": 2, "cpu_count_physical": 1},
                        "b": {"boot_id": "y", "cores": 8, "cpu_count_physical": 4}}) == (10, 5)
    assert fleet_cores({"a": {"boot_id": "x", "cores": 2}, "b": {"boot_id": "y", "cores": 4}}) == (6, None)


def test_an_agent_imports_user_code_only_from_the_folders_it_allows(tmp_path):
    from harness.lab.hosted import Refused, check_paths
    from harness.model.spec import build_spec

    allowed = tmp_path / "projects"
    (allowed / "shop").mkdir(parents=True)
    check_paths(build_spec(workload="cpu"), [])  # the lab's own work needs no folder
    check_paths(build_spec(task="shop.tasks:f", task_path=str(allowed / "shop")), [allowed.resolve()])
    with pytest.raises(Refused, match=r"TASK_PATH .* is not under a folder this agent allows \(--allow-path: none\)"):
        check_paths(build_spec(task="shop.tasks:f", task_path=str(allowed / "shop")), [])
    with pytest.raises(Refused, match="not under a folder this agent allows"):
        check_paths(build_spec(task="shop.tasks:f", task_path=str(tmp_path)), [allowed.resolve()])


def test_an_agents_answer_is_bounded_and_plain_json():
    import json

    import numpy as np
    import pandas as pd

    from harness.lab.hosted import as_json, thin

    frame = pd.DataFrame({"t": np.repeat(np.arange(100.0), 3), "kind": ["process", "core", "core"] * 100,
                          "rss": [1.0, np.nan, np.nan] * 100})
    kept, step = thin(frame, max_rows=60)
    assert step == 5 and len(kept) == 60 and kept.groupby("t").size().eq(3).all()  # whole sampling instants
    assert thin(frame, max_rows=1000) == (frame, 1) or thin(frame, max_rows=1000)[1] == 1
    text = json.dumps(as_json(kept), allow_nan=False)  # no NaN: JSON has none
    assert json.loads(text)["data"][1] == [0.0, "core", None]


def test_several_hosts_pids_are_told_apart_in_the_cpu_figures():
    import pandas as pd

    from harness.analysis.cpu import cpu_seconds_between

    # The same pid on two hosts: two processes, each 1 CPU second over the second.
    rows = [{"t": t, "kind": "process", "pid": 100, "tid": None, "user_s": t, "system_s": 0.0, "host": h}
            for h in ("a", "b") for t in (0.0, 1.0)]
    assert cpu_seconds_between(pd.DataFrame(rows), 0.0, 1.0) == pytest.approx(2.0)


def test_a_worker_on_a_host_names_its_host_in_its_slots(monkeypatch):
    from harness.lab.worker import Worker
    from harness.model.spec import build_spec
    from workloads.record import Recorder

    spec = build_spec(hosts="a,b", workers_per_host=2)
    env = Worker(spec, "redis://127.0.0.1:1/0", "r1", __import__("pathlib").Path("/tmp/x.log"), index=3).env()
    assert env["LAB_HOST"] == "b" and env["LAB_WORKER_INDEX"] == "3"
    assert "LAB_HOST" not in Worker(build_spec(), "redis://127.0.0.1:1/0", "r1",
                                    __import__("pathlib").Path("/tmp/x.log")).env()
    assert Recorder("redis://127.0.0.1:1/0", "r1", "threads", worker_index=3, workers=4, host="b").slot_prefix == \
        "b worker 3: "


def test_lanes_are_grouped_by_host_and_worker_and_named_after_them():
    import pandas as pd

    from harness.analysis.timing import lane_labels, lanes

    tasks = pd.DataFrame({"slot": ["b worker 2: thread 9", "a worker 1: thread 7", "b worker 2: thread 8",
                                   "a worker 1: thread 6"], "started": [0.0, 0.1, 0.2, 0.3]})
    assert lane_labels(tasks, 4) == ["a worker 1: slot 1", "a worker 1: slot 2", "b worker 2: slot 1",
                                     "b worker 2: slot 2"]
    assert lanes(tasks, 4).tolist() == [2, 0, 3, 1]
    assert lane_labels(tasks.assign(slot=["thread 1", "thread 2", "thread 1", "thread 2"]), 2) == ["slot 1", "slot 2"]
    assert lane_labels(tasks, 2) is None  # more slots than lanes: packed, unnamed


def test_the_hosts_note_says_where_tasks_ran_on_how_many_cores_and_marks_a_loose_clock():
    import pandas as pd

    from harness.analysis.hosts import clock_note, hosts_note, per_host

    tasks = pd.DataFrame({"worker": [1, 1, 2, 2], "started": [0.0, 0.0, 0.0, 0.0], "finished": [1.0, 1.0, 1.0, 1.0]})
    samples = pd.DataFrame([{"t": t, "kind": "process", "pid": 10, "tid": None, "user_s": t * c, "system_s": 0.0,
                             "host": h} for h, c in (("a", 1.0), ("b", 0.5)) for t in (0.0, 1.0)])
    fleet = {"hosts": {"a": {"described": {"cores": 2, "boot_id": "m"}, "clock": {"offset_s": 0.0001,
                                                                                   "uncertainty_s": 0.00002}},
                       "b": {"described": {"cores": 2, "boot_id": "m"}, "clock": {"offset_s": -2.0,
                                                                                   "uncertainty_s": 0.004}}}}
    rows = per_host(tasks, samples, fleet, ["a", "b"], {1: "a", 2: "b"})
    assert [(r["host"], r["tasks"], round(r["cores_used"], 2)) for r in rows] == [("a", 2, 1.0), ("b", 2, 0.5)]
    note = hosts_note(rows, {"offset_s": 0.0}, 2)
    assert note.startswith("HOSTS: a ran 2 tasks on 1.00 cores of 2, clock +0.100 ms +- 0.020; b ran 2 tasks on 0.50 "
                           "cores of 2, clock -2000.000 ms +- 4.000; the hosts are 1 machine, whose 2 cores the ideal "
                           "counts once")
    assert clock_note(rows, shortest_task_s=1.0) is None
    said = clock_note(rows, shortest_task_s=0.05)  # 4 ms of 50 ms: above 5 %
    assert said is not None and said.startswith("CLOCKS: b's clock is known to +- 4.00 ms") and "a's" not in said
