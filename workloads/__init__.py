"""What runs inside a lab worker: the workload functions, their instrumentation and the Celery app."""
