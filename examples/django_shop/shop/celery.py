"""The shop's Celery app, laid out as in Celery's documented Django example."""
import os

from celery import Celery

# Set the default Django settings module for the 'celery' program.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

app = Celery("shop")

# Read every setting named CELERY_* from Django's settings (CELERY_BROKER_URL -> broker_url, ...).
app.config_from_object("django.conf:settings", namespace="CELERY")

# Find tasks.py in every installed app (here: orders.tasks).
app.autodiscover_tasks()
