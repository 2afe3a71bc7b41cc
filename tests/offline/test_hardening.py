"""Hostile input, offline: names that would leave results/, damaged result files, sweeps without bounds.
Each is one line and exit 2 from the command line, with nothing written."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness import cli as commandline
from harness.errors import ExperimentError, ResultsError
from harness.model.experiment import MAX_REPEATS, MAX_RUNS, load_experiment
from harness.results import load_run
from harness.results.records import Status
from harness.results.sweep_folder import load_sweep_manifest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "v1"
GOOD = 'question = "q"\n[axes]\npool = ["solo"]\n'


@pytest.fixture
def cli(monkeypatch, capsys, tmp_path):
    """The command line in this process (its own function, without a new interpreter each time): exit code
    and stderr lines."""
    monkeypatch.setattr(commandline, "stop_in_order_on_signals", lambda: None)
    monkeypatch.chdir(tmp_path)

    def run(*args):
        code = commandline.main(list(args))
        return code, capsys.readouterr().err.strip().splitlines()
    return run


@pytest.mark.parametrize("name", ["x/../../../../tmp/escaped", "../up", ".hidden", "a/b", "", " ", "n" * 65,
                                  "-rf"])
def test_an_experiment_name_cannot_leave_results(tmp_path, name):
    path = tmp_path / "e.toml"
    path.write_text(f"name = {json.dumps(name)}\n" + GOOD)
    with pytest.raises(ExperimentError, match="name"):
        load_experiment(path)


def test_an_escaping_name_is_refused_by_the_command_before_anything_is_written(tmp_path, cli):
    path = tmp_path / "e.toml"
    path.write_text('name = "x/../../../../tmp/escaped-by-a-test"\n' + GOOD)
    code, err = cli("sweep", str(path))
    assert code == 2 and len(err) == 1 and "name" in err[0], err
    assert not (tmp_path / "results").exists() and not Path("/tmp/escaped-by-a-test").exists()


def test_a_sweep_has_bounds(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text(f'name = "big"\nrepeats = {MAX_REPEATS + 1}\n' + GOOD)
    with pytest.raises(ExperimentError, match=f"repeats must be a whole number >= 1 and at most {MAX_REPEATS}"):
        load_experiment(path)
    values = ", ".join(str(0.001 * (i + 1)) for i in range(MAX_RUNS + 1))
    path.write_text(f'name = "wide"\nquestion = "q"\n[axes]\nduration = [{values}]\n')
    with pytest.raises(ExperimentError, match=f"more than {MAX_RUNS}"):
        load_experiment(path)


@pytest.mark.parametrize("content, says", [
    (b"[1, 2, 3]", "no schema_version"),
    (b"\x00\xff\xfe binary", "not valid JSON"),
    (json.dumps({"schema_version": 2, "status": "complete"}).encode(), "is missing or not a"),
])
def test_a_damaged_sweep_json_is_one_line_everywhere(tmp_path, content, says, cli):
    folder = tmp_path / "sweep-damaged"
    shutil.copytree(DATA / "sweep-tiny", folder)
    (folder / "sweep.json").write_bytes(content)
    with pytest.raises(ResultsError, match=says):
        load_sweep_manifest(folder)
    for args in (["report", str(folder)], ["compare", str(folder), str(folder)], ["sweep", "--resume", str(folder)]):
        code, err = cli(*args)
        assert code == 2 and len(err) == 1 and "sweep.json" in err[0] and says in err[0], (args, err)


def test_a_tasks_csv_cut_mid_line_is_refused(tmp_path, cli):
    folder = tmp_path / "run"
    shutil.copytree(DATA / "run-prefork-io_net", folder)
    text = (folder / "tasks.csv").read_text()
    (folder / "tasks.csv").write_text(text[: len(text) - 25])  # the last row cut in the middle
    with pytest.raises(ResultsError, match="tasks.csv: cut off in its last row"):
        load_run(folder)
    code, err = cli("report", str(folder))
    assert code == 2 and len(err) == 1 and "cut off" in err[0], err


def test_a_quote_in_a_make_variable_stays_in_its_value(tmp_path):
    # Before, RUN='x'; touch PWNED; '' left its quotes, ran the touch, and make exited 0.
    import subprocess

    marker = tmp_path / "PWNED"
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "report", f"RUN=x'; touch {marker}; '"],
                         capture_output=True, text=True, timeout=120)
    assert not marker.exists()
    assert out.returncode != 0 and "run.json: missing" in out.stderr, out.stderr


@pytest.mark.parametrize("args, says", [
    (["--concurrency", "100000"], "concurrency must be at most 10000"),
    (["--tasks", "10000000"], "tasks must be at most 100000"),
    (["--switch-interval", "1e300"], "switch interval must be at most 100"),
    (["--sample-hz", "1e-300"], "sample rate (Hz) must be at least 1"),
    (["--duration", "1e9"], "duration must be at most 3600"),
    (["--timeout", "1e12"], "timeout must be at most 86400"),
])
def test_settings_have_physical_upper_bounds(tmp_path, cli, args, says):
    code, err = cli("bench", *args)
    assert code == 2 and len(err) == 1 and says in err[0], err
    assert not (tmp_path / "results").exists()


def test_results_that_are_a_file_are_refused_before_anything_starts(tmp_path, cli):
    (tmp_path / "results").write_text("not a folder")
    code, err = cli("bench", "--pool", "threads", "--workload", "io_sleep", "--tasks", "1")
    assert code == 2 and len(err) == 1 and "is a file, not a folder for results" in err[0], err
    experiment = tmp_path / "e.toml"
    experiment.write_text('name = "e"\n' + GOOD)
    code, err = cli("sweep", str(experiment))
    assert code == 2 and len(err) == 1 and "is a file, not a folder for results" in err[0], err


def test_one_process_at_a_time_runs_a_sweep_and_a_resume_checks_its_cells_first(tmp_path):
    from harness.errors import UsageError
    from harness.results.files import sweep_lock
    from harness.sweeps import run_sweep

    folder = tmp_path / "sweep"
    shutil.copytree(DATA / "sweep-tiny", folder)
    with sweep_lock(folder):  # as a first `sweep --resume` holds it
        with pytest.raises(UsageError, match=r"already being run by pid \d+"):
            run_sweep(folder, redis_url="redis://:x@127.0.0.1:1/0", show_progress=False)
    manifest = json.loads((folder / "sweep.json").read_text())
    manifest["cells"][0]["settings"]["pool"] = "nonesuch"
    (folder / "sweep.json").write_text(json.dumps(manifest))
    with pytest.raises(ResultsError, match="cell 'pool=threads' cannot run: unknown pool 'nonesuch'"):
        run_sweep(folder, redis_url="redis://:x@127.0.0.1:1/0", show_progress=False)
    assert json.loads((folder / "sweep.json").read_text())["status"] == manifest["status"]  # untouched


def test_a_unix_socket_broker_is_refused_in_one_line():
    # redis-py accepts unix://, but the worker's Celery transport cannot use it: refused before anything.
    from harness.errors import BrokerError
    from harness.lab.services.redis_broker import check_reachable

    with pytest.raises(BrokerError, match=r"the lab takes redis://host:port/db or rediss://\.\.\. \(TCP\)") as err:
        check_reachable("unix://:secret@/tmp/redis.sock")
    assert "secret" not in str(err.value) and BrokerError.exit_code == 2


# --- long sweeps: an estimate first, and a long one only when agreed ----------------------------

LONG = 'name = "long"\nquestion = "q"\nrepeats = 3\n[fixed]\nworkload = "cpu"\nduration = 60\ntasks = 20\n' \
       '[axes]\npool = ["solo", "threads"]\n'


def test_a_runs_estimate_follows_what_its_pool_can_run_at_once():
    from harness.model.estimate import estimate
    from harness.model.spec import RUN_OVERHEAD_S, build_spec

    def seconds(**settings):
        return estimate([build_spec(**settings)], cores=2).seconds - RUN_OVERHEAD_S

    # Python CPU work: one at a time under the GIL, on both cores in prefork, never more than the cores.
    assert seconds(pool="threads", workload="cpu", concurrency=4, tasks=8, duration=1) == pytest.approx(8)
    assert seconds(pool="prefork", workload="cpu", concurrency=2, tasks=8, duration=1) == pytest.approx(4)
    assert seconds(pool="prefork", workload="cpu", concurrency=8, tasks=8, duration=1) == pytest.approx(4)
    # Waits overlap up to the concurrency in every pool but solo.
    assert seconds(pool="threads", workload="io_sleep", concurrency=4, tasks=8, duration=1) == pytest.approx(2)
    assert seconds(pool="solo", workload="io_sleep", concurrency=1, tasks=8, duration=1) == pytest.approx(8)
    guessed = estimate([build_spec(task="json:dumps", pool="threads", tasks=4)], cores=2)
    assert guessed.guessed == 1 and "your own task" in guessed.line()


def test_a_long_sweep_in_a_script_is_refused_with_its_estimate_and_nothing_written(tmp_path, cli):
    path = tmp_path / "long.toml"
    path.write_text(LONG)
    code, err = cli("sweep", str(path))  # pytest's stdin is no terminal
    assert code == 2, err
    assert err[0].startswith("estimate: 6 run(s), about 2.0 h"), err  # 3 x (20 x 60 s + 20 x 60 s)
    assert len(err) == 2 and "--yes" in err[1] and "--max-hours" in err[1], err
    assert not (tmp_path / "results").exists()


def test_a_long_sweep_at_a_terminal_asks_and_no_means_nothing_starts(tmp_path, cli, monkeypatch):
    import builtins
    import sys

    asked = []
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(builtins, "input", lambda prompt: asked.append(prompt) or "n")
    path = tmp_path / "long.toml"
    path.write_text(LONG)
    code, err = cli("sweep", str(path))
    assert code == 2 and asked and "about 2.0 h" in asked[0] and "not started" in err[-1], (asked, err)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("hours", ["0", "-1", "abc", "nan", "inf", "1e9"])
def test_max_hours_is_a_sane_number(tmp_path, cli, hours):
    path = tmp_path / "long.toml"
    path.write_text(LONG)
    code, err = cli("sweep", str(path), "--max-hours", hours)
    assert code == 2 and len(err) == 1 and "--max-hours must be" in err[0], err
    assert not (tmp_path / "results").exists()


# --- a run or sweep whose harness died ----------------------------------------------------------

def test_a_running_manifest_whose_harness_died_reads_as_interrupted():
    import socket
    import subprocess

    import psutil

    from harness.results.files import owner, settle_running

    gone = subprocess.Popen(["sleep", "0"])
    started = psutil.Process(gone.pid).create_time()
    gone.wait()
    dead = {"status": "running", "owner": {"host": socket.gethostname(), "pid": gone.pid, "started": started}}
    settled = settle_running(dead, "run")
    assert settled["status"] == "interrupted" and "killed (SIGKILL) or the machine restarted" in settled["reason"]
    mine = {"status": "running", "owner": owner()}
    assert settle_running(mine, "run") == mine  # this process is alive: it is running
    elsewhere = {"status": "running", "owner": {**dead["owner"], "host": "another-host"}}
    assert settle_running(elsewhere, "run") == elsewhere  # cannot be judged from here
    reused = {"status": "running", "owner": {**owner(), "started": owner()["started"] - 100}}  # same pid, later
    assert settle_running(reused, "sweep")["status"] == "interrupted"
    assert settle_running({"status": "running"}, "run") == {"status": "running"}  # stored before owners


def test_summarize_completes_a_run_that_failed_only_while_being_drawn(tmp_path):
    from harness.pipeline import AFTER_MEASURING, summarize

    run = tmp_path / "run"
    shutil.copytree(DATA / "run-threads-cpu-gil", run)
    manifest = json.loads((run / "run.json").read_text())
    manifest.update(status="failed", reason=f"{AFTER_MEASURING}OSError: [Errno 28] No space left on device")
    (run / "run.json").write_text(json.dumps(manifest))
    lines = []
    summarize(run, log=lines.append)
    assert load_run(run).status == Status.COMPLETE and any("now complete" in line for line in lines), lines


def test_an_interrupt_lost_in_a_garbage_collector_callback_is_raised_again(monkeypatch):
    import signal
    import sys
    import time

    from harness.cli import catch_lost_interrupts

    class Collected:
        def __del__(self):
            raise KeyboardInterrupt  # as Ctrl-C landing while a callback runs: Python can only print it

    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)  # restored after the test
    monkeypatch.setattr(commandline, "_ended", False)  # as while a command runs
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        catch_lost_interrupts()
        with pytest.raises(KeyboardInterrupt):
            Collected()  # dropped at once: its __del__ runs and its interrupt is lost, then sent again
            time.sleep(2.0)
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def command_signals(monkeypatch):
    """The command's own handling of SIGINT, SIGTERM and SIGHUP in this process, as while a command runs; pytest's
    handlers and hook are put back after."""
    import signal
    import sys

    from harness import cli as commandline

    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)
    before = {s: signal.getsignal(s) for s in commandline.SIGNALS}
    monkeypatch.setattr(commandline, "_ended", False)
    commandline.stop_in_order_on_signals()
    try:
        yield commandline
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _interrupted_within(seconds: float) -> None:
    """Python code running (so a pending signal's handler runs) for up to `seconds`."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.005)


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_an_interrupt_inside_an_import_is_raised_once_the_import_is_done(tmp_path, monkeypatch, command_signals,
                                                                         signame):
    # Raised inside, it came out of scipy's pybind11 modules as "ImportError: initialization failed".
    import sys

    (tmp_path / "slow_to_import.py").write_text(
        "import os, signal, time\n"
        f"os.kill(os.getpid(), signal.{signame})\n"
        "deadline = time.monotonic() + 0.3\n"
        "while time.monotonic() < deadline:\n"
        "    time.sleep(0.005)  # Python code runs: the handler has its chances\n"
        "DONE = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "slow_to_import", raising=False)
    with pytest.raises(KeyboardInterrupt):
        import slow_to_import  # noqa: F401
        _interrupted_within(2.0)
    assert sys.modules["slow_to_import"].DONE


def test_a_second_interrupt_during_the_clean_up_of_the_first_changes_nothing(command_signals):
    import os
    import signal

    cleaned = []
    with pytest.raises(KeyboardInterrupt):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            _interrupted_within(2.0)
        finally:  # stopping in order: a second SIGTERM, then a Ctrl-C, land here
            for second in (signal.SIGTERM, signal.SIGINT):
                os.kill(os.getpid(), second)
                _interrupted_within(0.2)
            cleaned.append(True)
    assert cleaned == [True]
    with pytest.raises(KeyboardInterrupt):  # and the next one, outside any clean-up, interrupts again
        os.kill(os.getpid(), signal.SIGINT)
        _interrupted_within(2.0)


def test_a_signal_once_the_command_has_ended_changes_nothing(command_signals, monkeypatch):
    import os
    import signal

    monkeypatch.setattr(command_signals, "_ended", True)
    os.kill(os.getpid(), signal.SIGTERM)
    _interrupted_within(0.3)  # no KeyboardInterrupt: the exit code is the command's


def test_main_in_process_gives_the_callers_signal_handlers_back(tmp_path, monkeypatch, capsys):
    import signal
    import sys

    monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)
    monkeypatch.chdir(tmp_path)
    before = {s: signal.getsignal(s) for s in commandline.SIGNALS}
    code = commandline.main(["report", str(tmp_path / "nothing-here")])
    assert code == 2 and "error:" in capsys.readouterr().err
    assert {s: signal.getsignal(s) for s in commandline.SIGNALS} == before
