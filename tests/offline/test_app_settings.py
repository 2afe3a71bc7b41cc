"""The user's own Celery app (APP): the calls sample (harness.model.calls), the settings that go with APP
(harness.model.settings) and the rules that join them (harness.model.spec), all checked before anything starts."""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest
from lab_process import harness

from harness.errors import SpecError
from harness.model.calls import MAX_CALL_LINES, MAX_COUNT, Call, apportion, load_calls, parse_calls, replay
from harness.model.spec import build_spec

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "shop/calls.jsonl"
GOOD = '{"task": "orders.tasks.render_invoice", "args": [17]}'


def write_calls(tmp_path: Path, *lines: str, name: str = "calls.jsonl") -> Path:
    """A calls file of these lines."""
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sample(*shares: float, weights: bool = False) -> list[Call]:
    """One call a share, named t0, t1, ...: each with that count, or that weight."""
    return [Call(f"orders.tasks.t{i}", [i], {}, None if weights else int(s), float(s) if weights else None, i + 1)
            for i, s in enumerate(shares)]


# ---------------------------------------------------------------------------------------------- parse_calls


def test_a_valid_sample_gives_each_call_with_its_line():
    """Every field is read, defaults are filled in, blank lines are skipped but still counted for line numbers."""
    text = "\n".join([
        '{"task": "orders.tasks.render_invoice", "args": [17], "kwargs": {}, "count": 8}',
        "",
        "   ",
        '{"task": " orders.tasks.ship ", "kwargs": {"fast": true}, "weight": 2}',
        '{"task": "orders.tasks.noop"}',
        "",
    ])
    calls = parse_calls(text, SOURCE)
    assert calls == [
        Call("orders.tasks.render_invoice", [17], {}, 8, None, 1),
        Call("orders.tasks.ship", [], {"fast": True}, None, 2.0, 4),
        Call("orders.tasks.noop", [], {}, None, None, 5),
    ]
    assert isinstance(calls[1].weight, float)
    assert [c.share for c in calls] == [8.0, 2.0, 1.0]


BAD_LINES = [
    ("{not json", "is not JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('"orders.tasks.a"', "must be a JSON object"),
    ('{"task": "a.b", "retries": 3}', "unknown key 'retries'; allowed: task, args, kwargs, count, weight"),
    ('{"args": [1]}', "'task' must name a registered task"),
    ('{"task": "  "}', "'task' must name a registered task"),
    ('{"task": 7}', "'task' must name a registered task"),
    ('{"task": "a.b", "args": {"n": 1}}', "'args' must be a JSON list"),
    ('{"task": "a.b", "args": "1"}', "'args' must be a JSON list"),
    ('{"task": "a.b", "kwargs": [1]}', "'kwargs' must be a JSON object"),
    ('{"task": "a.b", "count": 0}', f"'count' must be a whole number from 1 to {MAX_COUNT}, got 0"),
    ('{"task": "a.b", "count": -2}', "'count' must be a whole number"),
    ('{"task": "a.b", "count": true}', "'count' must be a whole number"),
    ('{"task": "a.b", "count": 2.5}', "'count' must be a whole number"),
    (f'{{"task": "a.b", "count": {MAX_COUNT + 1}}}', f"got {MAX_COUNT + 1}"),
    ('{"task": "a.b", "weight": 0}', "'weight' must be a number > 0 and at most 1e+06, got 0"),
    ('{"task": "a.b", "weight": -1.5}', "'weight' must be a number > 0"),
    ('{"task": "a.b", "weight": NaN}', "'weight' must be a number > 0 and at most 1e+06, got NaN"),
    ('{"task": "a.b", "weight": Infinity}', "'weight' must be a number > 0 and at most 1e+06, got Infinity"),
    ('{"task": "a.b", "weight": 1' + "0" * 400 + "}", "'weight' must be a number > 0 and at most 1e+06"),
    ('{"task": "a.b", "weight": 1e308}', "'weight' must be a number > 0 and at most 1e+06"),
    ('{"task": "a.b", "args": ' + "[" * 100_000 + "]" * 100_000 + "}", "nests too deep"),
    ('{"task": "a.b", "weight": "2"}', "'weight' must be a number > 0"),
    ('{"task": "a.b", "weight": true}', "'weight' must be a number > 0"),
    ('{"task": "a.b", "count": 2, "weight": 1}', "give 'count' or 'weight', not both"),
]


@pytest.mark.parametrize("bad,message", BAD_LINES, ids=[b for b, _ in BAD_LINES])
def test_a_bad_line_is_refused_naming_the_file_and_its_line(bad, message):
    """A line that is not a call is one SpecError line naming the source and the 1-based line (blank ones count)."""
    with pytest.raises(SpecError, match=re.escape(f"CALLS {SOURCE} line 3")) as err:
        parse_calls(f"{GOOD}\n\n{bad}\n{GOOD}\n", SOURCE)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["", "\n", "  \n\t\n"])
def test_an_empty_sample_is_refused(text):
    """A file without a single call is an error, not a run of nothing."""
    with pytest.raises(SpecError, match=re.escape(f"CALLS {SOURCE} holds no call")):
        parse_calls(text, SOURCE)


def test_a_sample_has_a_bounded_number_of_lines():
    """MAX_CALL_LINES calls are read; the next line is refused by its number."""
    assert len(parse_calls("\n".join([GOOD] * MAX_CALL_LINES), SOURCE)) == MAX_CALL_LINES
    with pytest.raises(SpecError, match=f"line {MAX_CALL_LINES + 1}: a sample holds at most {MAX_CALL_LINES} calls"):
        parse_calls("\n".join([GOOD] * (MAX_CALL_LINES + 1)), SOURCE)


# ---------------------------------------------------------------------------------------------- apportion


def test_apportion_of_the_sample_size_gives_the_counts_themselves():
    """A run as large as the sample runs each line exactly its count."""
    counts = [3, 1, 4, 1, 5]
    assert apportion(sample(*counts), sum(counts)) == counts


def test_apportion_follows_the_weights():
    """Weights 3:1 share 8 tasks 6 and 2; counts scale the same way when TASKS differs from the sample."""
    assert apportion(sample(3, 1, weights=True), 8) == [6, 2]
    assert apportion(sample(3, 1), 16) == [12, 4]


@pytest.mark.parametrize("shares,weights,tasks", [
    ((1, 1, 1), False, 10),
    ((1, 1, 1), False, 2),
    ((3, 1), True, 7),
    ((0.5, 2.5, 7), True, 1),
    ((1,) * 7, False, 3),
    ((5, 0.001), True, 100),
    ((2, 3, 5, 7, 11, 13), False, 99_991),
    ((0.1, 0.2, 0.3, 0.4), True, 1000),
])
def test_apportion_sums_to_the_tasks_and_stays_within_one_of_each_share(shares, weights, tasks):
    """Largest remainders: the counts add up to TASKS exactly, each is its exact share rounded down or up."""
    counts = apportion(sample(*shares, weights=weights), tasks)
    assert sum(counts) == tasks
    total = sum(shares)
    for n, share in zip(counts, shares, strict=True):
        exact = tasks * share / total
        assert 0 <= n and int(exact) <= n <= int(exact) + 1, (n, exact)


# ---------------------------------------------------------------------------------------------- replay


def test_replay_is_the_same_for_the_same_seed_and_differs_for_another():
    """The seed fixes the order (every pool does the same work in the same order); another seed shuffles anew."""
    calls = sample(*[1] * 20)
    first = replay(calls, 20, seed=7, in_order=False)
    assert replay(calls, 20, seed=7, in_order=False) == first
    assert replay(calls, 20, seed=8, in_order=False) != first
    assert first != calls  # shuffled, not the file's order
    assert sorted(first, key=lambda c: c.line) == calls  # the same calls, each once


def test_in_order_keeps_the_file_order_with_each_lines_copies_together():
    """IN_ORDER: line by line, each line's copies one after another, whatever the seed."""
    calls = sample(3, 1, 2)
    names = ["orders.tasks.t0"] * 3 + ["orders.tasks.t1"] + ["orders.tasks.t2"] * 2
    assert [c.task for c in replay(calls, 6, seed=0, in_order=True)] == names
    assert replay(calls, 6, seed=5, in_order=True) == replay(calls, 6, seed=0, in_order=True)
    doubled = [c.task for c in replay(calls, 12, seed=0, in_order=True)]
    assert doubled == ["orders.tasks.t0"] * 6 + ["orders.tasks.t1"] * 2 + ["orders.tasks.t2"] * 4


@pytest.mark.parametrize("seed,in_order", [(0, False), (1, False), (12345, False), (0, True)])
@pytest.mark.parametrize("tasks", [1, 9, 50])
def test_replay_runs_each_call_as_often_as_apportioned(seed, in_order, tasks):
    """The run submits exactly TASKS calls, each line as often as apportion says, shuffled or not."""
    calls = sample(5, 1, 2.5, 0.5, weights=True)
    sequence = replay(calls, tasks, seed=seed, in_order=in_order)
    assert len(sequence) == tasks
    assert Counter(c.line for c in sequence) == Counter(
        {c.line: n for c, n in zip(calls, apportion(calls, tasks), strict=True) if n})


# ---------------------------------------------------------------------------------------------- load_calls


def test_load_calls_reads_a_file_and_names_it_in_errors(tmp_path):
    """A file's calls are its text's calls; a bad line's message names the file's path."""
    path = write_calls(tmp_path, GOOD, '{"task": "orders.tasks.ship", "count": 2}')
    assert load_calls(str(path)) == parse_calls(path.read_text(), str(path))
    bad = write_calls(tmp_path, GOOD, "{oops", name="bad.jsonl")
    with pytest.raises(SpecError, match=re.escape(f"CALLS {bad} line 2 is not JSON")):
        load_calls(str(bad))


def test_a_missing_calls_file_is_refused(tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    with pytest.raises(SpecError, match=re.escape(f"CALLS {missing}: no such file")):
        load_calls(str(missing))


def test_a_calls_file_that_is_not_utf8_or_not_a_file_is_refused(tmp_path):
    """Bytes that are not UTF-8, or a folder, are one SpecError line, not a traceback."""
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes(b'{"task": "orders.tasks.caf\xe9"}\n')
    with pytest.raises(SpecError, match=re.escape(f"CALLS {latin} cannot be read")):
        load_calls(str(latin))
    with pytest.raises(SpecError, match=re.escape(f"CALLS {tmp_path} cannot be read")):
        load_calls(str(tmp_path))


# ---------------------------------------------------------------------------------------------- build_spec


def test_app_with_calls_runs_one_pass_of_the_sample(tmp_path, monkeypatch):
    """APP with CALLS: the app's mix as the workload, one pass of the sample (its counts), the app's own prefetch,
    the current folder as its project, the calls file kept as an absolute path."""
    monkeypatch.chdir(tmp_path)
    write_calls(tmp_path, '{"task": "orders.tasks.a", "count": 3}', "", '{"task": "orders.tasks.b"}',
                '{"task": "orders.tasks.a", "args": [2], "count": 4}')
    spec = build_spec(app="shop", calls="calls.jsonl")
    assert spec.workload == "app"
    assert spec.tasks == 8
    assert spec.prefetch is None
    assert spec.task_path == os.getcwd()
    assert os.path.isabs(spec.calls) and spec.calls == str(Path(os.getcwd()) / "calls.jsonl")
    assert spec.args is None and spec.kwargs is None  # each call has its own
    assert spec.app_tasks == [] and spec.routed == {}


def test_tasks_given_overrides_the_sample_size(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_calls(tmp_path, '{"task": "orders.tasks.a", "count": 3}', '{"task": "orders.tasks.b", "count": 9}')
    assert build_spec(app="shop", calls="calls.jsonl", tasks="5").tasks == 5
    assert build_spec(app="shop", calls="calls.jsonl", tasks=5).tasks == 5


def test_a_weighted_sample_without_tasks_runs_four_tasks_a_slot(tmp_path, monkeypatch):
    """Weights give only shares: the size is the usual default, 4 x concurrency x workers."""
    monkeypatch.chdir(tmp_path)
    write_calls(tmp_path, '{"task": "orders.tasks.a", "weight": 3}', '{"task": "orders.tasks.b", "weight": 1}')
    assert build_spec(app="shop", calls="calls.jsonl", concurrency=3, workers=2).tasks == 24
    spec = build_spec(app="shop", calls="calls.jsonl")
    assert spec.tasks == 4 * spec.concurrency * spec.workers


def test_app_with_task_names_runs_those_tasks_without_arguments():
    """TASK with APP: registered names, comma-separated, each once in order; empty ARGS and KWARGS by default."""
    spec = build_spec(app="shop", task="orders.tasks.a,orders.tasks.b")
    assert spec.workload == "app"
    assert spec.app_tasks == ["orders.tasks.a", "orders.tasks.b"]
    assert spec.args == "[]" and spec.kwargs == "{}"
    assert spec.calls is None and spec.prefetch is None
    assert build_spec(app="shop", task=" orders.tasks.a , orders.tasks.a ").app_tasks == ["orders.tasks.a"]


def test_one_task_name_may_have_arguments():
    """ARGS and KWARGS give the arguments of a single TASK name."""
    spec = build_spec(app="proj.celery:app", task="orders.tasks.a", args="[1, 2]", kwargs='{"n": 3}')
    assert spec.task_args == [1, 2] and spec.task_kwargs == {"n": 3}


def test_seed_and_in_order_go_with_app(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_calls(tmp_path, GOOD)
    spec = build_spec(app="shop", calls="calls.jsonl", in_order="yes", seed="42")
    assert spec.in_order is True and spec.seed == 42


@pytest.mark.parametrize("routes", [
    "orders.tasks.a=prefork:2; orders.tasks.b=gevent:100",
    "orders.tasks.a=prefork:2,orders.tasks.b=gevent:100",
    "  orders.tasks.a=prefork:2   orders.tasks.b=gevent:100 ;",
])
def test_routes_are_kept_in_one_canonical_form(routes):
    """However the entries are separated, ROUTES is stored one way and read back as task -> (pool, concurrency)."""
    spec = build_spec(app="shop", task="orders.tasks.a", routes=routes)
    assert spec.routes == "orders.tasks.a=prefork:2;orders.tasks.b=gevent:100"
    assert spec.routed == {"orders.tasks.a": ("prefork", 2), "orders.tasks.b": ("gevent", 100)}


CALLS = object()  # replaced by a valid calls file's path

REFUSED = [
    (dict(app="shop"), "APP needs the tasks to run: TASK="),
    (dict(calls=CALLS), "CALLS apply only to your Celery app: give APP=proj too"),
    (dict(routes="orders.tasks.a=prefork:2"), "ROUTES apply only to your Celery app"),
    (dict(in_order=True), "IN_ORDER apply only to your Celery app"),
    (dict(task="orders.tasks.a"), "names registered tasks, which need your app: give APP=proj"),
    (dict(workload="app"), "workload 'app' runs your Celery app: give APP=proj"),
    (dict(app="shop", task="orders.tasks:render"), "with APP, TASK names registered tasks"),
    (dict(app="shop", calls=CALLS, args="[1]"), "ARGS and KWARGS apply to TASK without CALLS"),
    (dict(app="shop", calls=CALLS, kwargs='{"n": 1}'), "ARGS and KWARGS apply to TASK without CALLS"),
    (dict(app="shop", task="orders.tasks.a,orders.tasks.b", args="[1]"),
     "with several TASK names, give CALLS=calls.jsonl"),
    (dict(app="shop", task="orders.tasks.a", workload="cpu"), "leave WORKLOAD out (it is 'cpu')"),
    (dict(app="shop", task="orders.tasks.a", gil_probe=True), "GIL_PROBE do not apply to your Celery app"),
    (dict(app="shop", task="orders.tasks.a", cpu_fraction="0.5"), "CPU_FRACTION do not apply to your Celery app"),
    (dict(app="shop", task="orders.tasks.a", routes="orders.tasks.a=nopool:2"), "unknown ROUTES pool 'nopool'"),
    (dict(app="shop", task="orders.tasks.a", routes="orders.tasks.a=prefork:0"),
     "ROUTES concurrency must be a whole number >= 1"),
    (dict(app="shop", task="orders.tasks.a", routes="orders.tasks.a=prefork:100000"),
     "ROUTES concurrency must be at most 10000"),
    (dict(app="shop", task="orders.tasks.a", routes="orders.tasks.a"), "must be task=pool:concurrency"),
    (dict(app="shop", task="orders.tasks.a", routes="=prefork:2"), "must be task=pool:concurrency"),
    (dict(app="shop", task="orders.tasks.a", routes="orders.tasks.a=prefork"), "must be task=pool:concurrency"),
    (dict(app="shop", task="orders.tasks.a", routes="orders.tasks.a=prefork:2;orders.tasks.a=threads:4"),
     "ROUTES routes a task twice"),
    (dict(app="1bad", task="orders.tasks.a"), "APP must name a Celery app as `celery -A` takes it"),
    (dict(app="shop", calls="nowhere.jsonl"), "nowhere.jsonl: no such file"),
]


@pytest.mark.parametrize("settings,message", REFUSED, ids=[
    " ".join(f"{k}={'CALLS' if v is CALLS else v}" for k, v in s.items()) for s, _ in REFUSED])
def test_settings_that_do_not_fit_app_are_refused(tmp_path, monkeypatch, settings, message):
    """Each setting that needs APP, or means nothing with it, or is malformed, is one SpecError naming it."""
    monkeypatch.chdir(tmp_path)
    path = write_calls(tmp_path, GOOD)
    raw = {k: str(path) if v is CALLS else v for k, v in settings.items()}
    with pytest.raises(SpecError, match=re.escape(message)) as err:
        build_spec(**raw)
    assert "\n" not in str(err.value)


def test_own_function_task_is_unchanged_by_app():
    """TASK=package.module:function without APP is still the user's own function, run as the workload "task"."""
    spec = build_spec(task="examples.tasks:parse_logs")
    assert spec.workload == "task"
    assert spec.app is None and spec.app_tasks == [] and spec.routed == {}
    assert spec.args == "[]" and spec.kwargs == "{}"
    assert spec.task_path == os.getcwd()
    assert spec.prefetch is not None  # the pool's default, not the app's own


# ---------------------------------------------------------------------------------------------- the CLI


def test_the_cli_refuses_a_bad_calls_file_in_one_line_and_writes_nothing(tmp_path):
    """`bench --app --calls` with a broken line 2: exit 2, one line naming the line, no traceback, no results."""
    bad = write_calls(tmp_path, GOOD, "{this is not json")
    results = tmp_path / "res"
    out = harness("bench", "--app", "shop", "--calls", str(bad), "--results-dir", str(results), cwd=ROOT)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "line 2" in lines[-1] and str(bad) in lines[-1]
    assert "Traceback" not in out.stderr
    assert not results.exists() or not any(results.iterdir())



def test_task_with_calls_replays_one_pass_of_that_tasks_calls(tmp_path, monkeypatch):
    """TASK picks calls out of CALLS: by default the run is one pass of those calls, not of the whole sample."""
    monkeypatch.chdir(tmp_path)
    calls = tmp_path / "calls.jsonl"
    calls.write_text('{"task": "a.x", "count": 3}\n{"task": "a.y", "count": 5}\n')
    assert build_spec(app="shop", calls=str(calls), task="a.x").tasks == 3
    assert build_spec(app="shop", calls=str(calls)).tasks == 8


def test_app_refuses_the_interpreters_pool_which_runs_only_the_labs_functions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for settings in (dict(pool="interpreters"), dict(routes="orders.tasks.a=interpreters:2")):
        with pytest.raises(SpecError, match="not your app's registered tasks"):
            build_spec(app="shop", task="orders.tasks.a", **settings)


def test_a_mix_may_take_a_minute_a_wave_beyond_the_first_limit(tmp_path, monkeypatch):
    """Nothing is known of the user's calls: the deadline grows with the waves of slots, and TIMEOUT overrides."""
    from harness.model.spec import MIX_WAVE_LIMIT_S, OWN_TASK_ALONE_LIMIT_S

    monkeypatch.chdir(tmp_path)
    spec = build_spec(app="shop", task="orders.tasks.a", tasks=40, concurrency=4, pool="threads")
    assert spec.deadline_s() == OWN_TASK_ALONE_LIMIT_S + MIX_WAVE_LIMIT_S * 10
    assert build_spec(app="shop", task="orders.tasks.a", timeout=5).deadline_s() == 5


def test_consent_is_asked_once_per_command_and_refused_in_a_script(tmp_path, monkeypatch):
    """The user's tasks run for real: a terminal is asked, a script must say --yes, and nothing agreed to in one
    command carries over to the next."""
    from harness.errors import UsageError
    from harness.lab import consent

    monkeypatch.chdir(tmp_path)
    spec = build_spec(app="shop", task="orders.tasks.a")
    app = {"measured": ["orders.tasks.a"], "django": "5.2",
           "services": [{"kind": "database", "alias": "default", "engine": "postgresql", "name": "shop", "host": "db"}]}
    said: list[str] = []
    assert consent.line(spec, app).startswith("APP shop runs your tasks for real (orders.tasks.a); it reaches "
                                              "database default (postgresql shop on db)")
    consent.begin(yes=True)
    consent.agree(spec, app, said.append)
    assert len(said) == 1
    consent.begin(yes=False)  # a new command: not agreed, and no terminal here (stdin is not a tty under pytest)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(UsageError, match="give --yes"):
        consent.agree(spec, app, said.append)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    asked: list[str] = []
    consent.agree(spec, app, said.append, ask=lambda q: asked.append(q) or "y")
    consent.agree(spec, app, said.append, ask=lambda q: asked.append(q) or "n")  # agreed already in this command
    assert asked == ["run them? [y/N] "]
    consent.begin(yes=False)
    with pytest.raises(UsageError, match="answered no"):
        consent.agree(spec, app, said.append, ask=lambda q: "n")
