"""The seed's ``celeryconfig.py`` in Celery 5 (lowercase) settings: the baseline's routing, unchanged.

Kept as a plain module so ``shared.routing.load_celeryconfig`` reads it back into ``SEED_TABLE``.
"""

from __future__ import annotations

import os

from kombu import Exchange, Queue

DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"

broker_url = os.environ.get("CELERY_BROKER_URL") or DEFAULT_BROKER_URL
broker_connection_retry_on_startup = True

tasks_exchange = Exchange("tasks", type="topic")
task_queues = (
    Queue("default", tasks_exchange, routing_key="task.#"),
    Queue("compute", tasks_exchange, routing_key="compute.#"),
    Queue("result", tasks_exchange, routing_key="result.#"),
)
task_default_queue = "default"
task_default_exchange = "tasks"
task_default_exchange_type = "topic"
task_default_routing_key = "task.default"
task_routes = {
    "tasks.compute": {"queue": "compute", "routing_key": "compute.a_result"},
    "tasks.handle_result": {"queue": "result", "routing_key": "result.handle"},
}

# The seed keeps no results (it stores them itself, in handle_result), and JSON only: no pickle.
task_ignore_result = True
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
