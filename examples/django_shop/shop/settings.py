"""Minimal Django settings for the example shop: just enough for the ORM and Celery."""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# An example key, never to be used anywhere real.
SECRET_KEY = "django-insecure-example-shop-not-a-real-secret-key"
DEBUG = False
ALLOWED_HOSTS: list[str] = []

# No admin, auth or sessions: the shop only needs its models (contenttypes backs migrations' bookkeeping).
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "orders",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        # SHOP_DATABASE lets a test or the lab put the database elsewhere (e.g. in /tmp).
        "NAME": os.environ.get("SHOP_DATABASE", str(BASE_DIR / "db.sqlite3")),
    }
}

USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery (read by shop/celery.py with namespace="CELERY") ---
# The lab overrides the broker to point at its own; it records the rest as the shop's configuration.
CELERY_BROKER_URL = os.environ.get("SHOP_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = "redis://127.0.0.1:6379/1"
# Acknowledge after the task ran, so a task whose worker dies is delivered again.
CELERY_TASK_ACKS_LATE = True
# Reserve one task per process at a time: with long tasks, prefetching piles work up behind a busy process.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# JSON only: no pickle from the broker.
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Kill a stuck task after 120 s; give it a SoftTimeLimitExceeded at 100 s to clean up first.
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
# Which queue each task goes to. Empty for now: the lab's advice gives the routes to put here
# (e.g. CPU work and waiting-on-calls work in separate queues, each served by a suitable pool).
CELERY_TASK_ROUTES: dict[str, dict[str, str]] = {}
