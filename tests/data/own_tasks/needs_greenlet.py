"""A task whose module imports greenlet: a C extension that refuses to load in a subinterpreter."""
import greenlet  # noqa: F401


def work(n: int) -> int:
    return n
