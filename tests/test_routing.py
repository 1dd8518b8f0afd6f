from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from shared.routing import COMPUTE_TASK, HANDLE_RESULT_TASK, SEED_TABLE, load_celeryconfig, topic_matches

# (binding key, routing key, matches) — AMQP 0-9-1 topic semantics as RabbitMQ implements them.
TOPIC_CASES = [
    ("compute.#", "compute.a_result", True),
    ("compute.#", "compute", True),
    ("compute.#", "compute.a.b.c", True),
    ("compute.#", "computer.a", False),
    ("task.#", "compute.a_result", False),
    ("#", "anything.at.all", True),
    ("#", "one", True),
    ("*", "one", True),
    ("*", "one.two", False),
    ("*.orange.*", "quick.orange.rabbit", True),
    ("*.orange.*", "quick.orange.male.rabbit", False),
    ("*.*.rabbit", "lazy.orange.rabbit", True),
    ("*.*.rabbit", "orange.rabbit", False),
    ("lazy.#", "lazy.orange.male.rabbit", True),
    ("lazy.#", "lazy", True),
    ("#.rabbit", "rabbit", True),
    ("a.#.b", "a.b", True),
    ("a.#.b", "a.x.y.b", True),
    ("a.#.b", "a.x.y", False),
    ("a.*.#", "a", False),
    ("a.*.#", "a.b", True),
    ("#.#", "a.b", True),
    ("a.b", "a.b", True),
    ("a.b", "a.b.c", False),
]


@pytest.mark.parametrize(("binding", "key", "expected"), TOPIC_CASES)
def test_topic_matching(binding: str, key: str, expected: bool) -> None:
    assert topic_matches(binding, key) is expected


def test_seed_table_routes_like_celeryconfig() -> None:
    assert SEED_TABLE.queue_for(COMPUTE_TASK) == "compute"
    assert SEED_TABLE.queue_for(HANDLE_RESULT_TASK) == "result"
    assert SEED_TABLE.queue_for("tasks.unrouted") == "default"
    assert SEED_TABLE.routing_key_for("tasks.unrouted") == "task.default"
    assert SEED_TABLE.queues_for_key("compute.a_result") == ["compute"]
    assert SEED_TABLE.queues_for_key("result.handle") == ["result"]
    assert SEED_TABLE.queues_for_key(SEED_TABLE.default_routing_key) == ["default"]
    assert SEED_TABLE.queues_for_key("nothing.bound") == []
    assert SEED_TABLE.queues == ["default", "compute", "result"]


SEED_CONFIG = """
BROKER_URL = 'amqp://localhost//'
CELERY_IMPORTS = ('tasks', )
CELERY_RESULT_BACKEND = 'amqp'
CELERY_DEFAULT_QUEUE = 'default'
CELERY_QUEUES = {
    'default': {'binding_key': 'task.#'},
    'compute': {'binding_key': 'compute.#'},
    'result': {'binding_key': 'result.#'},
}
CELERY_DEFAULT_EXCHANGE = 'tasks'
CELERY_DEFAULT_EXCHANGE_TYPE = 'topic'
CELERY_DEFAULT_ROUTING_KEY = 'task.default'
CELERY_ROUTES = {
    'tasks.compute': {'queue': 'compute', 'routing_key': 'compute.a_result'},
    'tasks.handle_result': {'queue': 'result', 'routing_key': 'result.handle'},
}
"""

CELERY5_CONFIG = """
from kombu import Exchange, Queue
tasks = Exchange('tasks', type='topic')
task_default_queue = 'default'
task_default_exchange = 'tasks'
task_default_exchange_type = 'topic'
task_default_routing_key = 'task.default'
task_queues = (
    Queue('default', tasks, routing_key='task.#'),
    Queue('compute', tasks, routing_key='compute.#'),
    Queue('result', tasks, routing_key='result.#'),
)
task_routes = [
    {'tasks.compute': {'queue': 'compute', 'routing_key': 'compute.a_result'}},
    {'tasks.handle_*': {'routing_key': 'result.handle'}},
]
"""


@pytest.mark.parametrize("text", [SEED_CONFIG, CELERY5_CONFIG], ids=["seed-uppercase", "celery5-lowercase"])
def test_load_celeryconfig_gives_the_seed_table(tmp_path: Path, text: str) -> None:
    path = tmp_path / "celeryconfig.py"
    path.write_text(textwrap.dedent(text))
    table = load_celeryconfig(str(path))
    assert (table.exchange, table.exchange_type) == ("tasks", "topic")
    assert table.default_queue == "default"
    assert table.default_routing_key == "task.default"
    for task in (COMPUTE_TASK, HANDLE_RESULT_TASK, "tasks.other"):
        assert table.queue_for(task) == SEED_TABLE.queue_for(task)
    for key in ("compute.a_result", "result.handle", "task.default", "x.y"):
        assert table.queues_for_key(key) == SEED_TABLE.queues_for_key(key)


def test_load_celeryconfig_by_module_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "myceleryconfig.py").write_text(SEED_CONFIG)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_celeryconfig("myceleryconfig").queue_for(COMPUTE_TASK) == "compute"


def test_direct_exchange_defaults() -> None:
    import types

    module = types.ModuleType("cfg")
    module.CELERY_QUEUES = {"a": {"binding_key": "a"}, "b": {}}  # type: ignore[attr-defined]
    table = load_celeryconfig(module)
    assert table.exchange_type == "direct"
    assert table.default_queue == "celery"
    assert table.queues_for_key("a") == ["a"]
    assert table.queues_for_key("b") == ["b"]
    assert table.queues_for_key("a.x") == []
    assert table.queue_for("anything") == "celery"
