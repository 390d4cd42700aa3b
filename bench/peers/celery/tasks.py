"""Celery peer: a no-op task on Debian's python3-celery, Redis as broker and
result backend. Run with /usr/bin/python3 (Debian's packages live there).

The broker port comes from TASKMESH_BENCH_REDIS_PORT.
"""
import os

from celery import Celery

_port = os.environ.get("TASKMESH_BENCH_REDIS_PORT", "6379")
app = Celery(
    "tasks",
    broker=f"redis://127.0.0.1:{_port}/0",
    backend=f"redis://127.0.0.1:{_port}/0",
)
app.conf.update(
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    task_acks_late=False,
    broker_connection_retry_on_startup=True,
    result_expires=3600,
)


@app.task(name="noop")
def noop():
    return None
