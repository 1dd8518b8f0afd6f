"""Routing for the example, as a Celery user writes it: every ``montecarlo`` task to ``compute``."""

task_default_queue = "default"
task_queues = {"default": {}, "compute": {}, "result": {}}
task_routes = {"montecarlo.*": {"queue": "compute"}}
