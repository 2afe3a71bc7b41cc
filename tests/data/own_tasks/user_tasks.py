"""A user's module, as the lab meets them: imported from TASK_PATH=tests/data/own_tasks."""
import time

from celery import Celery

print("user_tasks imported")  # a module that talks on import must not confuse the lab's check

app = Celery("user", set_as_current=True)  # becomes "current" on import: the lab's worker must not care


def spin(n: int, *, label: str = "") -> int:
    x = 0
    for i in range(n):
        x = (x * 31 + i) % 1000003
    return x


def nap(seconds: float) -> None:
    time.sleep(seconds)


def broken(n: int) -> None:
    raise ValueError(f"bad record {n}")


@app.task(bind=True)
def bound(self, n: int) -> int:
    return spin(n)


NOT_CALLABLE = 42
