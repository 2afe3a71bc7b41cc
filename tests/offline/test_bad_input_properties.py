"""Property-based: no invalid setting or experiment file gets a traceback; each gets one line and exit 2."""
from __future__ import annotations

import re
import signal
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.errors import ExperimentError
from harness.model.experiment import load_experiment
from harness.model.pools import POOL_NAMES as POOLS
from harness.model.workloads import WORKLOAD_NAMES as WORKLOADS

WHOLE = re.compile(r"^\s*\d+\s*$")


def not_a_whole_number_at_least(minimum: int):
    return st.one_of(st.integers(max_value=minimum - 1).map(str),
                     st.text(min_size=1, max_size=12).filter(lambda t: not WHOLE.match(t) and not t.startswith("-")))


def not_a_positive_number():
    def bad(text: str) -> bool:
        try:
            value = float(text)
        except ValueError:
            return True
        return not value > 0 or value == float("inf")
    return st.one_of(st.floats(max_value=0).map(repr), st.sampled_from(["nan", "inf", "-inf", "0", "-0.0"]),
                     st.text(min_size=1, max_size=12).filter(bad).filter(lambda t: not t.startswith("-")))


INVALID = st.one_of(
    st.tuples(st.just("--pool"),
              st.text(min_size=1, max_size=12).filter(lambda t: t.strip() not in POOLS and not t.startswith("-"))),
    st.tuples(st.just("--workload"),
              st.text(min_size=1, max_size=12).filter(lambda t: t.strip() not in WORKLOADS and not t.startswith("-"))),
    st.tuples(st.just("--concurrency"), not_a_whole_number_at_least(1)),
    st.tuples(st.just("--tasks"), not_a_whole_number_at_least(1)),
    st.tuples(st.just("--duration"), not_a_positive_number()),
    st.tuples(st.just("--switch-interval"), not_a_positive_number()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=INVALID)
def test_every_invalid_bench_setting_gets_one_line_and_exit_2(bad, capsys, tmp_path_factory):
    flag, value = bad
    if "\x00" in value:
        return  # a NUL byte cannot be passed on a real command line
    results = tmp_path_factory.mktemp("results")
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as code:
            raise SystemExit(main(["bench", flag, value, "--results-dir", str(results)]))
    finally:  # main() installs its own Ctrl-C handling; give pytest its own back
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    err = capsys.readouterr().err
    assert code.value.code == 2, (flag, value, err)
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not any(results.iterdir())


def toml_value():
    scalar = st.one_of(st.integers(-5, 50), st.floats(-1, 100, allow_nan=False), st.booleans(),
                       st.text(string.ascii_letters + "_*", max_size=8))
    return st.one_of(scalar, st.lists(scalar, max_size=3))


def toml_literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    return repr(value)


KEYS = st.sampled_from(["pool", "workload", "concurrency", "tasks", "duration", "switch_interval", "prefetch",
                        "repeats", "colour", "background", "timeout"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(top=st.dictionaries(st.sampled_from(["name", "question", "repeats", "extra"]), toml_value(), max_size=4),
       fixed=st.dictionaries(KEYS, toml_value(), max_size=4), axes=st.dictionaries(KEYS, toml_value(), max_size=3))
def test_experiment_files_either_load_or_fail_with_an_experiment_error(top, fixed, axes, tmp_path_factory):
    lines = [f"{k} = {toml_literal(v)}" for k, v in top.items()]
    lines += ["[fixed]"] + [f"{k} = {toml_literal(v)}" for k, v in fixed.items()]
    lines += ["[axes]"] + [f"{k} = {toml_literal(v)}" for k, v in axes.items()]
    path = tmp_path_factory.mktemp("exp") / "exp.toml"
    path.write_text("\n".join(lines) + "\n")
    try:
        exp = load_experiment(path)
    except ExperimentError as exc:
        assert str(path) in str(exc)
        assert "\n" not in str(exc).strip()
    else:
        assert exp.cells()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_any_bytes_as_an_experiment_file_get_an_experiment_error_or_load(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("exp") / "junk.toml"
    path.write_bytes(data)
    try:
        load_experiment(path)
    except ExperimentError as exc:
        assert str(path) in str(exc)
