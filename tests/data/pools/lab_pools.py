"""Pool classes for the custom-pool tests, imported from the folder the lab is run in."""
from celery.concurrency.thread import TaskPool


class NamedThreadPool(TaskPool):
    """Celery's thread pool under another name: what a user's own pool class looks like to the lab."""


class NotAPool:
    """Not a Celery pool: refused before a worker starts."""
